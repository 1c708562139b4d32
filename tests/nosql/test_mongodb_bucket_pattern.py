import dataclasses
import math
from collections import Counter

import pytest

from nosql import mongodb_bucket_pattern as lesson

READINGS = lesson.generate()
PER_SENSOR_HOUR = Counter((r["sensor"], lesson.hour_of(r["ts"])) for r in READINGS)


@pytest.fixture(scope="module")
def result(mongo_client):
    return lesson.run(mongo_client)


def test_every_collection_holds_every_reading(result):
    assert result.readings == len(READINGS)
    assert {s.measurements for s in result.storage.values()} == {len(READINGS)}
    assert result.stored(lesson.PER_READING).documents == len(READINGS)


def test_buckets_hold_one_sensor_hour_each_and_the_cap_splits_the_burst(result):
    burst = PER_SENSOR_HOUR[(lesson.BURST_SENSOR, lesson.START.replace(hour=lesson.BURST_HOUR))]
    assert burst > lesson.BUCKET_CAP
    assert result.buckets_in_burst_hour == math.ceil(burst / lesson.BUCKET_CAP)
    assert result.fullest_bucket == lesson.BUCKET_CAP
    expected = sum(math.ceil(n / lesson.BUCKET_CAP) for n in PER_SENSOR_HOUR.values())
    assert result.stored(lesson.BUCKETS).documents == expected
    assert expected < len(READINGS) / 20


def test_buckets_store_less_data_per_reading(result):
    assert result.stored(lesson.BUCKETS).data_bytes < result.stored(lesson.PER_READING).data_bytes


def test_the_range_query_gives_the_same_answer_every_way(result):
    inside = [
        r["temp_c"]
        for r in READINGS
        if r["sensor"] == lesson.RANGE_SENSOR and lesson.RANGE_FROM <= r["ts"] < lesson.RANGE_TO
    ]
    assert result.same_range_answer
    reads = {r.collection: r for r in result.range_reads}
    assert reads[lesson.PER_READING].answer == lesson.answer(inside)
    assert reads[lesson.PER_READING].documents == reads[lesson.TIME_SERIES].documents == len(inside)
    assert reads[lesson.BUCKETS].documents < len(inside) / 20


def test_bucket_totals_give_the_same_summary_from_fewer_documents(result):
    assert result.same_summary
    assert result.summary_buckets_read < result.summary_readings_read


@pytest.mark.real_mongodb
def test_the_time_series_collection_is_native_and_smaller(result):
    assert result.native_timeseries
    native, per_reading = result.stored(lesson.TIME_SERIES), result.stored(lesson.PER_READING)
    assert native.documents < per_reading.documents  # collStats timeseries.bucketCount
    assert native.data_bytes < per_reading.data_bytes
    assert native.index_bytes > 0  # the meta + time index created with the collection


@pytest.mark.real_mongodb
def test_the_indexes_are_built_and_sized(result):
    assert result.indexes_built
    assert all(s.index_bytes > 0 for s in result.storage.values())


def test_a_second_run_gives_the_same_facts(mongo_client, result):
    def deterministic(found):
        # A native time-series collection sizes its own buckets; the rest is exact BSON.
        storage = {name: s for name, s in found.storage.items() if name != lesson.TIME_SERIES}
        return dataclasses.replace(found, storage=storage)

    assert deterministic(lesson.run(mongo_client)) == deterministic(result)

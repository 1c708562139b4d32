import math
import os

import pytest

from timeseries import timestream_records as lesson

# Like real_mongodb, but decided here: these run against AWS itself, never a stand-in, and only when
# asked to (it costs money, and Timestream for LiveAnalytics serves only accounts that had it before
# 20 June 2025).
real_aws = pytest.mark.skipif(
    os.environ.get("EXAMPLES_REAL_AWS") != "1",
    reason="needs real AWS: set EXAMPLES_REAL_AWS=1 with AWS credentials (AWS_PROFILE or keys, AWS_REGION)",
)


@pytest.fixture(scope="module")
def result(moto):
    return lesson.run(*lesson.clients(moto.url))


def way(result, name):
    return next(w for w in result.ways if w.name == name)


def test_multi_measure_records_need_a_third_of_the_requests(result):
    single, multi = way(result, "one record per measure"), way(result, "multi-measure records")
    assert single.records == len(lesson.MEASURES) * multi.records == len(lesson.MEASURES) * 600
    assert single.requests == 3 * multi.requests == 18
    assert multi.request_bytes < single.request_bytes


def test_common_attributes_send_fewer_bytes_in_as_many_requests(result):
    multi, common = way(result, "multi-measure records"), way(result, "multi-measure + CommonAttributes")
    assert common.requests == multi.requests and common.records == multi.records
    assert common.request_bytes < multi.request_bytes


def test_the_server_reports_every_record_of_every_way_ingested(result):
    assert all(w.ingested == w.records for w in result.ways)
    assert result.series == lesson.HOSTS


def test_batches_stay_within_the_limit_the_api_model_declares(result):
    assert result.batch_limit == 100
    for w in result.ways:
        assert w.requests == math.ceil(w.records / result.batch_limit)


def test_the_oversized_batch_is_refused_or_its_acceptance_is_reported(result):
    """moto 5.2.6 accepts 101 records (the lesson says the limit comes from the model); AWS refuses them."""
    if result.oversized_refused_by.startswith("server"):
        assert result.oversized_ingested == 0
    else:
        assert result.oversized_refused_by == "nobody: the server accepted it"
        assert result.oversized_ingested == result.batch_limit + 1


def test_the_lesson_rejects_the_records_outside_the_write_window(result):
    verdicts = {probe.label: probe.lesson_verdict for probe in result.window}
    assert verdicts == {
        "now": "accepted",
        "11 h ago": "accepted",
        "2 days ago": "older than the memory store's retention",
        "30 min ahead": f"more than {lesson.FUTURE_MINUTES} min ahead",
    }


def test_the_server_never_rejects_what_the_lesson_accepts(result):
    for probe in result.window:
        assert probe.server_verdict == "accepted" or probe.lesson_verdict != "accepted", probe


def test_retention_is_read_back_and_places_each_age(result):
    assert result.retention == {
        "MemoryStoreRetentionPeriodInHours": lesson.MEMORY_HOURS,
        "MagneticStoreRetentionPeriodInDays": lesson.MAGNETIC_DAYS,
    }
    assert [where for _, where in result.placement] == [
        "memory store",
        "magnetic store",
        "magnetic store",
        "deleted",
    ]


def test_the_lesson_checks_the_window_itself():
    retention = {"MemoryStoreRetentionPeriodInHours": 2, "MagneticStoreRetentionPeriodInDays": 1}
    now, hour = 10_000 * lesson.HOUR_MS, lesson.HOUR_MS
    assert lesson.lesson_verdict(now - 3 * hour, now, retention, magnetic_writes=False) != "accepted"
    assert lesson.lesson_verdict(now - 3 * hour, now, retention, magnetic_writes=True) == "accepted"
    assert lesson.lesson_verdict(now - 27 * hour, now, retention, magnetic_writes=True) != "accepted"
    assert lesson.lesson_verdict(now + 14 * 60_000, now, retention, magnetic_writes=False) == "accepted"


def test_the_query_answer_from_moto_does_not_count_the_records(result):
    """moto's query API is canned: whatever it returns, it is not a count of what was written."""
    assert result.server == "moto"
    assert result.query_count != result.expected_rows


def test_a_second_run_gives_the_same_facts(result, moto):
    again = lesson.run(*lesson.clients(moto.url))
    assert [(w.name, w.records, w.requests, w.ingested) for w in again.ways] == [
        (w.name, w.records, w.requests, w.ingested) for w in result.ways
    ]
    assert again.window == result.window and again.oversized_refused_by == result.oversized_refused_by


@real_aws
def test_aws_refuses_what_the_lesson_refuses_and_counts_what_was_written():
    write, query = lesson.clients(None)
    found = lesson.run(write, query, real=True)
    assert found.oversized_refused_by.startswith("server")
    assert found.window_enforced_by_server
    assert found.query_count == found.expected_rows

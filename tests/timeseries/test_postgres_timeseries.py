import math

import psycopg
import pytest

from timeseries import postgres_timeseries as lesson


@pytest.fixture(scope="module")
def result(postgres):
    with psycopg.connect(postgres.url) as conn:
        return lesson.run(conn)


def test_about_a_million_readings_land_in_daily_partitions(result):
    assert result.partitions == lesson.DAYS  # counted in pg_inherits
    total = result.rows_loaded + result.late_rows
    assert 900_000 < total <= lesson.N_SENSORS * lesson.DAYS * 1440
    assert result.late_rows > 0
    assert total == len(lesson.generate_readings())  # counted in the table: every reading landed once


def test_brin_is_a_small_fraction_of_the_btree(result):
    indexes = result.indexes
    assert indexes.brin_bytes * 10 < indexes.btree_bytes
    assert indexes.partitioned_heap_bytes > 0 and indexes.plain_heap_bytes > 0


def test_a_one_hour_query_reads_one_partition_through_its_brin_index(result):
    indexes = result.indexes
    assert indexes.partitions_read == [lesson.day_partition(20)]
    assert "Bitmap Heap Scan" in indexes.brin_nodes and "Bitmap Index Scan" in indexes.brin_nodes
    assert indexes.brin_index_used == "brin"
    assert indexes.btree_index_used == "btree"
    assert indexes.same_answer


def test_date_bin_and_gap_filling_find_the_offline_buckets(result):
    assert result.expected_gaps == 10  # 09:00 to 11:30 is ten 15-minute buckets
    assert result.filled_gaps == result.expected_gaps
    assert result.buckets_in_day == 96 - result.expected_gaps
    assert result.readings_per_full_bucket == 15
    # Every empty bucket carries the last known mean forward.
    carried = [last for _, readings, last in result.gap_rows if readings is None]
    assert carried and len(set(carried)) == 1 and carried[0] is not None


def test_the_incremental_refresh_touches_only_buckets_from_the_watermark(result):
    first, second = result.refreshes
    assert first.rows_touched > 15_000
    # The bucket at the watermark (half filled at the first refresh) plus six new hours, per sensor.
    assert second.rows_touched == lesson.N_SENSORS * 7
    assert second.watermark_after > first.watermark_after
    assert result.summary_mismatches == 0
    assert result.summary_rows == first.rows_touched + second.rows_touched - lesson.N_SENSORS


def test_the_rolling_mean_from_the_summary_equals_the_raw_mean(result):
    assert result.rolling_rows_used == 24
    assert result.raw_rows_used > 1_400
    assert result.rolling_matches_raw
    assert math.isclose(result.rolling_mean, result.raw_mean, rel_tol=1e-12)


def test_a_second_run_gives_the_same_facts(postgres, result):
    with psycopg.connect(postgres.url) as conn:
        again = lesson.run(conn)
    assert again == result

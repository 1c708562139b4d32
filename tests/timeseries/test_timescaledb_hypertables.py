import psycopg
import pytest

from timeseries import timescaledb_hypertables as lesson


@pytest.fixture(scope="module")
def result(timescaledb):
    with psycopg.connect(timescaledb.url, autocommit=True) as conn:
        return lesson.run(conn)


def test_generated_readings_have_the_offline_hours_as_a_gap():
    rows = lesson.generate_readings()
    offline = [
        r
        for r in rows
        if r[1] == lesson.OFFLINE_SENSOR and lesson.OFFLINE_FROM <= r[0] < lesson.OFFLINE_UNTIL
    ]
    assert offline == []
    assert rows == sorted(rows, key=lambda r: r[0])  # time order, as a fleet reports
    assert lesson.hourly_groups(rows) <= lesson.N_SENSORS * lesson.DAYS * 24


def test_the_hypertable_made_one_chunk_per_day(result):
    assert result.chunks == lesson.DAYS
    assert result.rows_loaded > 0 and result.late_rows > 0
    # Counted in the hypertable: every generated reading landed, none twice.
    assert result.rows_loaded + result.late_rows == len(lesson.generate_readings())


def test_a_one_day_query_reads_one_chunk(result):
    assert result.chunks_read_for_one_day == 1


def test_time_bucket_gives_the_same_buckets_as_date_bin(result):
    assert result.time_bucket_equals_date_bin
    assert result.buckets_for_offline_day == 96 - 12  # three offline hours are twelve 15-minute buckets


def test_the_continuous_aggregate_follows_its_refreshes(result):
    assert result.aggregate_rows_before_refresh == 0  # WITH NO DATA
    assert result.aggregate_rows_after_refresh == result.hourly_groups_in_history
    # Real-time aggregation is off by default (2.13+): new rows wait for the next refresh.
    assert result.aggregate_rows_after_late_insert == result.aggregate_rows_after_refresh
    assert result.aggregate_rows_after_second_refresh == result.hourly_groups_in_all
    assert result.aggregate_mismatches == 0


def test_compression_shrinks_the_older_chunks_and_keeps_the_answers(result):
    compression = result.compression
    assert compression.chunks == lesson.DAYS
    assert compression.compressed_chunks == lesson.DAYS - lesson.UNCOMPRESSED_DAYS
    assert compression.after_bytes * 2 < compression.before_bytes
    assert compression.hypertable_bytes_after < compression.hypertable_bytes_before
    assert compression.same_answers
    assert compression.decompress_in_plan


def test_a_second_run_gives_the_same_facts(timescaledb, result):
    with psycopg.connect(timescaledb.url, autocommit=True) as conn:
        again = lesson.run(conn)
    assert again == result

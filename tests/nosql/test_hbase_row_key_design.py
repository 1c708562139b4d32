import pytest

from nosql import hbase_row_key_design as lesson


@pytest.fixture(scope="module")
def result(hbase):
    return lesson.run(hbase.url)


def test_a_timestamp_key_puts_every_row_in_one_region(result):
    counts = result.per_range["timestamp"]
    assert sum(counts) == lesson.N_EVENTS
    assert sorted(counts) == [0] * (lesson.BUCKETS - 1) + [lesson.N_EVENTS]


def test_a_reversed_timestamp_also_hot_spots_but_reads_newest_first(result):
    assert result.per_range["reversed"] == [0] * (lesson.BUCKETS - 1) + [
        lesson.N_EVENTS
    ]  # 92233...: the last
    assert result.newest_first


def test_salting_spreads_the_rows_over_every_region(result):
    counts = result.per_range["salted"]
    assert sum(counts) == lesson.N_EVENTS
    assert min(counts) > 0
    assert max(counts) <= 2 * lesson.N_EVENTS // lesson.BUCKETS


def test_a_salted_time_range_is_one_scan_per_bucket(result):
    assert result.salted_range_scans == lesson.BUCKETS
    assert result.salted_range_rows == 60  # the 60 seconds of events asked for, from all buckets


def test_the_tables_are_one_region_each_through_thrift_1(result):
    assert result.regions_per_table == 1


def test_a_read_of_one_family_returns_only_its_cells(result):
    assert result.family_cells == {"profile": 2, "activity": 1}
    assert result.family_versions == {"profile": 1, "activity": 3}


def test_versions_3_keeps_the_three_newest_of_four_writes(result):
    assert result.versions_written == 4
    assert result.versions_kept == [4, 3, 2]


def test_prefix_scans_and_filters_count_what_python_counts(result):
    assert result.prefix_scan == 10  # user#010 .. user#019
    assert result.prefix_filter == 10
    assert result.value_filter == result.value_filter_expected == lesson.N_USERS // len(lesson.COUNTRIES)


def test_concurrent_counter_increments_add_up(result):
    assert result.counter == result.counter_expected == lesson.THREADS * lesson.INCREMENTS
    assert result.naive_counter <= result.counter_expected  # read-add-write can only lose updates


def test_a_second_run_gives_the_same_facts(result, hbase):
    again = lesson.run(hbase.url)
    assert again.per_range == result.per_range
    assert again.versions_kept == result.versions_kept
    assert again.counter == result.counter

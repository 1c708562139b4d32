import psycopg
import pytest

from relational import partitioning


@pytest.fixture(scope="module")
def result(postgres):
    with psycopg.connect(postgres.url) as conn:
        return partitioning.run(conn)


def test_every_row_lands_in_a_partition_and_defaults_catch_the_rest(result):
    rows, parts = result.rows, result.partition_rows
    assert sum(n for name, n in parts.items() if name.startswith("orders")) == rows["orders"]
    assert sum(n for name, n in parts.items() if name.startswith("customers")) == rows["customers"]
    assert parts["orders_default"] > 0  # the orders dated outside the year
    assert parts["customers_other"] > 0  # latam and mea have no partition of their own
    payments = [parts[f"payments_{r}"] for r in range(partitioning.HASH_MODULUS)]
    assert sum(payments) == rows["payments"]
    assert max(payments) < 1.1 * min(payments)  # hashing spreads customers evenly


def test_a_hash_partitioned_table_refuses_a_default_partition(result):
    assert result.hash_default_refused == "InvalidTableDefinition"


def test_a_one_month_query_reads_one_partition_of_thirteen(result):
    assert result.partitions_of_orders == 13
    assert result.scanned_one_month == [partitioning.month_partition(partitioning.QUERY_MONTH)]
    assert result.scanned_without_pruning == result.scanned_all_months == 13
    assert result.month_result_same_either_way


def test_a_generic_plan_prunes_at_run_time(result):
    assert result.scanned_generic_plan == [partitioning.month_partition(partitioning.QUERY_MONTH)]
    assert result.subplans_removed_at_run_time == 12


def test_list_and_hash_partitions_prune(result):
    assert result.scanned_other_region == ["customers_other"]
    assert len(result.scanned_one_customer) == 1
    assert result.scanned_one_customer[0].startswith("payments_")


def test_delete_and_drop_retire_the_same_rows_but_only_drop_removes_the_partition(result):
    retired = result.retention
    assert retired.month_rows > 0
    assert retired.deleted_rows == retired.rows_gone_after_drop == retired.month_rows
    assert retired.partitions_after_delete == 13
    assert retired.partitions_after_drop == 12
    assert not retired.partition_left_after_drop
    # DELETE gives no space back: the partition is as large as before, until VACUUM reuses it.
    assert retired.bytes_after_delete == retired.bytes_before_delete > 0
    assert result.holds  # what main() exits on


def test_the_hot_query_reads_fewer_pages_after_the_vertical_split(result):
    vertical = result.vertical
    assert vertical.mismatches_after_split == 0
    assert vertical.narrow_buffers * 10 < vertical.wide_buffers
    assert vertical.narrow_bytes * 10 < vertical.wide_bytes
    assert vertical.rows_per_page_narrow > 10 * vertical.rows_per_page_wide
    assert vertical.wide_toast_bytes < 64 * 1024  # the long columns were stored inline, not in TOAST


def test_a_second_run_gives_the_same_facts(postgres, result):
    with psycopg.connect(postgres.url) as conn:
        again = partitioning.run(conn)
    assert again == result

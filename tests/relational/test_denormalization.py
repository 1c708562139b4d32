import psycopg
import pytest

from relational import denormalization
from relational.denormalization import BATCH_LINES_PER_ORDER, BATCH_ORDERS, N_CUSTOMERS, N_ORDERS, TRIGGERS


@pytest.fixture(scope="module")
def result(postgres):
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        return denormalization.run(conn)


def test_the_normalized_schema_is_loaded(result):
    assert result.rows["orders"] == N_ORDERS and result.rows["customers"] == N_CUSTOMERS
    assert 150_000 < result.rows["order_lines"] < 250_000


@pytest.mark.parametrize("copy", ["orders.total", "customer_totals", "monthly_sales"])
def test_each_copy_answers_the_report_reading_far_fewer_rows(result, copy):
    read = result.reads[copy]
    assert read.same_answer
    assert read.denormalized_rows_read * 10 < read.normalized_rows_read
    assert any("order_lines" in scan for scan in read.normalized_scans)
    assert not any("order_lines" in scan for scan in read.denormalized_scans)


def test_the_redundant_column_is_read_through_its_index(result):
    read = result.reads["orders.total"]
    assert read.denormalized_scans in (["Index Scan on orders"], ["Index Only Scan on orders"])
    assert read.denormalized_rows_read == 20


def test_each_trigger_fires_once_per_inserted_line(result):
    lines = BATCH_ORDERS * BATCH_LINES_PER_ORDER
    assert result.trigger_calls["no trigger"] == {}
    assert result.trigger_calls["orders.total trigger"] == {"order_lines_keep_total": lines}
    assert result.trigger_calls["both triggers"] == dict.fromkeys(TRIGGERS, lines)


def test_without_the_triggers_an_update_leaves_the_copies_wrong(result):
    without = result.without_triggers
    assert without.lines_updated > 0
    assert 0 < without.orders_disagreeing <= without.lines_updated
    assert 0 < without.customers_disagreeing <= without.orders_disagreeing


def test_with_the_triggers_the_copies_stay_right(result):
    assert result.with_triggers == denormalization.Drift(result.without_triggers.lines_updated, 0, 0)
    assert result.copies_disagreeing_after_batch == (0, 0)


def test_the_materialized_view_is_stale_until_refreshed(result):
    assert result.stale_rows_before_batch == 0
    assert result.stale_rows_after_batch > 0
    assert result.stale_rows_after_refresh == 0


def test_main_checks_the_headline(result):
    assert result.holds


def test_refresh_concurrently_needs_a_unique_index(result):
    assert "unique index" in result.concurrent_refresh_without_key


def test_a_second_run_gives_the_same_facts(postgres, result):
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        again = denormalization.run(conn)
    assert again == result

import psycopg
import pytest

from performance import query_optimization as lesson

SCALE = 0.1
SIZES = lesson.Sizes.at(SCALE)


@pytest.fixture(scope="module")
def result(postgres):
    with psycopg.connect(postgres.url) as conn:
        return lesson.run(conn, scale=SCALE)


def test_the_tables_hold_the_scaled_rows(result):
    assert result.rows == {"customers": SIZES.customers, "orders": SIZES.orders}


def test_an_index_replaces_the_scan_of_every_block(result):
    fix = result.missing_index
    assert "Seq Scan" in fix.before.nodes and "Sort" in fix.before.nodes
    assert fix.before.rows_read == SIZES.orders
    assert "Seq Scan" not in fix.after.nodes and "Sort" not in fix.after.nodes
    assert fix.after.indexes == ["orders_customer_created"]
    assert fix.after.buffers * 20 < fix.before.buffers
    assert fix.same_answer


def test_a_function_on_the_column_hides_it_from_the_index_and_a_range_does_not(result):
    fix = result.date_predicate
    assert fix.before.nodes[-1] == "Seq Scan" and fix.before.indexes == []
    assert fix.before.rows_read == SIZES.orders
    assert "orders_created_id" in fix.after.indexes
    assert fix.after.rows_read == fix.after.actual_rows < SIZES.orders // 100
    assert fix.same_answer
    assert result.date_expression_index_error == "InvalidObjectDefinition"


def test_an_expression_index_serves_lower_email(result):
    fix = result.email_predicate
    assert fix.before.nodes == ["Seq Scan"]  # the UNIQUE index on email is of no use
    assert fix.after.indexes == ["customers_lower_email"]
    assert fix.after.actual_rows == fix.before.actual_rows == 1
    assert fix.same_answer


def test_n_plus_one_sends_a_query_per_row_and_the_join_one(result):
    counted = result.n_plus_one
    assert counted.orders == SIZES.page_orders
    assert counted.queries_n_plus_one == SIZES.page_orders + 1
    assert counted.queries_join == 1
    assert counted.same_rows
    assert [c.optimized for c in result.comparisons].count("one join") == 1  # timed for `make bench`


def test_offset_reads_the_rows_it_skips_and_keyset_does_not(result):
    fix = result.pagination
    assert fix.before.rows_read == SIZES.offset + lesson.PAGE
    assert fix.after.rows_read == lesson.PAGE
    assert fix.before.indexes == fix.after.indexes == ["orders_created_id"]
    assert fix.after.buffers < fix.before.buffers
    assert fix.same_answer


def test_stale_statistics_mislead_the_planner_until_analyze(result):
    stale = result.stale
    assert stale.reltuples_at_analyze == SIZES.delivered
    assert stale.rows_in_table == SIZES.delivered + SIZES.pending
    assert stale.most_common_status == ["delivered"]
    before, after = stale.fix.before, stale.fix.after
    assert before.actual_rows == after.actual_rows == SIZES.pending
    assert before.estimated_rows * 100 < before.actual_rows
    assert abs(after.estimated_rows - after.actual_rows) < 0.2 * after.actual_rows
    assert before.headline == "Nested Loop"
    assert after.headline == "Hash Join"
    assert stale.fix.same_answer


def test_the_correlated_subqueries_run_per_customer_and_the_join_reads_orders_once(result):
    fix = result.correlated
    assert fix.before.subplan_loops == 2 * SIZES.customers
    assert fix.after.subplan_loops == 0
    assert fix.after.nodes.count("Seq Scan") == 2  # customers and orders, once each
    assert fix.after.rows_read == SIZES.orders
    assert fix.after.buffers * 10 < fix.before.buffers
    assert fix.same_answer


def test_main_checks_the_headline(result):
    assert lesson.holds(result)


def test_every_fix_is_measured_against_its_baseline(result):
    assert len(result.comparisons) == 7


def test_a_second_run_gives_the_same_facts(postgres, result):
    with psycopg.connect(postgres.url) as conn:
        again = lesson.run(conn, scale=SCALE)
    assert again == result

import psycopg
import pytest

from relational import normalization


@pytest.fixture(scope="module")
def result(postgres):
    with psycopg.connect(postgres.url) as conn:
        return normalization.run(conn)


def test_each_anomaly_happens_on_the_sheet(result):
    assert result.before.rows_disagreeing_after_update > 0
    assert result.before.facts_rejected_on_insert == 1
    assert result.before.facts_lost_on_delete == len(normalization.ONLY_ORDERS)


def test_no_anomaly_is_left_after_bcnf(result):
    assert result.after == normalization.Anomalies(0, 0, 0)


def test_each_step_names_what_it_removes(result):
    assert [form for form, _, _ in result.steps] == ["1NF", "2NF", "3NF", "BCNF"]
    assert "lines_2nf" in result.steps[1][2]


def test_the_2nf_line_table_keeps_no_column_set_by_the_order_alone(result):
    assert result.set_by_order_alone_2nf == []
    assert result.tables_after["suppliers"] < result.tables_after["product_suppliers"]
    assert result.tables_after["customers"] == normalization.N_CUSTOMERS


def test_the_decomposition_is_lossless(result):
    assert result.recovered_rows == result.sheet_rows
    assert result.only_in_sheet == result.only_in_join == 0
    assert result.lossless
    assert result.holds  # what main() exits on


def test_a_second_run_gives_the_same_facts(postgres, result):
    with psycopg.connect(postgres.url) as conn:
        again = normalization.run(conn)
    assert again == result

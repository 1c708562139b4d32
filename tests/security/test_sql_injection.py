import psycopg
import pytest

from security import sql_injection


@pytest.fixture(scope="module")
def result(postgres):
    with psycopg.connect(postgres.url) as conn:
        return sql_injection.run(conn)


def test_the_tautology_logs_in_without_a_password_only_on_the_formatted_query(result):
    tautology = result.attacks["tautology"]
    assert tautology.unsafe_rows == len(sql_injection.USERS)
    assert tautology.safe_rows == 0


def test_union_reads_every_api_key_only_on_the_formatted_query(result):
    union = result.attacks["union"]
    assert union.unsafe_rows == sql_injection.N_KEYS
    assert union.safe_rows == 0


def test_a_stacked_query_drops_the_table_only_on_the_formatted_query(result):
    stacked = result.attacks["stacked"]
    assert stacked.unsafe_table_left is False
    assert stacked.safe_table_left is True
    assert stacked.safe_rows == 0


def test_a_safely_stored_name_injects_later_only_through_the_formatted_query(result):
    second = result.attacks["second-order"]
    assert second.unsafe_rows == sql_injection.N_KEYS
    assert second.safe_rows == 0


def test_no_attack_gets_anything_from_bound_parameters(result):
    assert {name: (a.safe_rows, a.safe_table_left) for name, a in result.attacks.items()} == {
        name: (0, True) for name in ("tautology", "union", "stacked", "second-order")
    }
    assert result.holds  # what main() exits on


def test_which_drivers_run_stacked_statements(result):
    assert result.stacked_with_params_sqlstate == psycopg.errors.SyntaxError.sqlstate
    assert result.sqlite_execute_refused is True
    assert result.sqlite_executescript_dropped is True


def test_order_by_goes_through_an_allow_list_and_sql_identifier(result):
    assert result.order_by_rejected == len(sql_injection.ORDER_BY_ATTACKS)
    assert result.quoted_identifier_sqlstate == psycopg.errors.UndefinedColumn.sqlstate
    assert result.sorted_names == sorted((name for name, _ in sql_injection.USERS), reverse=True)


def test_the_table_is_back_and_the_injected_user_gone_after_the_run(postgres, result):
    with psycopg.connect(postgres.url) as conn:
        assert conn.execute("SELECT to_regclass('sql_injection.audit_log') IS NOT NULL").fetchone()[0]
        assert conn.execute("SELECT count(*) FROM sql_injection.users").fetchone()[0] == len(
            sql_injection.USERS
        )


def test_a_second_run_gives_the_same_facts(postgres, result):
    with psycopg.connect(postgres.url) as conn:
        again = sql_injection.run(conn)
    assert again == result

import pymysql
import pytest

from common.settings import mysql_params
from monitoring import mysql_statement_digests as lesson


@pytest.fixture(scope="module")
def found(mysql):
    with pymysql.connect(**mysql_params(mysql.url)) as my:
        return lesson.run(my)


@pytest.fixture(scope="module")
def performance_schema(mysql):
    with pymysql.connect(**mysql_params(mysql.url)) as conn, conn.cursor() as cur:
        cur.execute("SELECT @@performance_schema")
        return bool(cur.fetchone()[0])


def test_the_lesson_uses_the_instrument_the_server_has(found, performance_schema):
    assert found.instrument == (lesson.DIGEST_INSTRUMENT if performance_schema else lesson.COUNTER_INSTRUMENT)


def test_every_call_of_the_workload_is_counted(found):
    expected = {label: per_round * lesson.ROUNDS for label, (_, per_round) in lesson.WORKLOAD.items()}
    assert found.calls == expected


def test_the_bad_query_is_found_with_a_full_scan_per_call(found):
    assert found.top == lesson.BAD
    bad = found.statements[0]
    assert bad.examined >= lesson.CUSTOMERS * bad.calls  # a full scan per call


def test_performance_schema_says_the_bad_query_used_no_index(found, performance_schema):
    if not performance_schema:
        pytest.skip("performance_schema is off on this server: no digests, no SUM_NO_INDEX_USED")
    assert found.no_index_used == found.statements[0].calls
    assert all(s.no_index == 0 for s in found.statements[1:])


def test_the_session_counters_find_the_same_query(found, mysql):
    """The fallback for a server without performance_schema, run here whichever the server has."""
    with pymysql.connect(**mysql_params(mysql.url), autocommit=False) as my:
        my.select_db(lesson.SCHEMA)
        statements = lesson.by_session_counters(my, lesson.plan_of_work())
    assert statements[0].label == lesson.BAD
    assert statements[0].examined >= lesson.CUSTOMERS * statements[0].calls
    assert statements[0].examined > 100 * sum(s.examined for s in statements[1:])


def test_a_second_run_gives_the_same_facts(found, mysql):
    with pymysql.connect(**mysql_params(mysql.url)) as my:
        again = lesson.run(my)
    assert again == found
    assert again.holds and found.holds  # what main() exits on

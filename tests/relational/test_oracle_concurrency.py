"""relational/oracle_concurrency.py: checked here without a server, and against Oracle where Docker is.

Oracle runs only from its image, so the checks that need no server use tests/offline_sql.py: the
statements (the literal lookup as the lesson formats it too) parse as Oracle SQL and bind what the
lesson passes, the locking clauses, `holds` on hand-made facts, the docstring, the admin's connection
and the one-line exit. The `oracle` fixture's tests need the compose image (Docker or ORACLE_URL).
"""

import dataclasses

import pytest
from sqlglot import exp

from common import settings
from common.settings import UNAVAILABLE
from relational import oracle_concurrency as lesson
from servers import containers
from tests import offline_sql

VERBS = {"SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "CREATE", "DROP"}
STATEMENTS = offline_sql.statements_sent(lesson, VERBS, collections=("DROPS", "CREATES"))
# ...and the literal lookup as literal_lookups_vulnerable() formats it.
STATEMENTS["LITERAL_LOOKUP"] = lesson.LITERAL_LOOKUP.format(item_id=17)
# Where each call names its statement and how many positional arguments it takes with keyword binds:
# execute(CONST, name=...), claim(conn, CONST, n, name=...), refused(conn, CONST, name=...).
KEYWORD_CALLS = {"execute": (0, 1), "executemany": (0, 1), "claim": (1, 3), "refused": (1, 2)}


def parse(sql: str) -> exp.Expression:
    return offline_sql.parse_one(sql, "oracle")


# --- local: no server ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(STATEMENTS))
def test_every_statement_parses_as_oracle_sql(name):
    assert parse(STATEMENTS[name]) is not None


def data_binds_passed() -> dict[str, set[str]]:
    """Statements the lesson runs with rows it builds (executemany): those rows' keys."""
    return {
        "INSERT_ITEM": set(lesson.generate_items()[0]),
        "INSERT_JOB": {"id"},  # [{"id": i} ...] in queue()
        "TAKE_JOB": {"worker", "id"},  # take()
    }


def test_the_bind_names_in_each_statement_are_the_ones_the_lesson_passes():
    by_keyword = offline_sql.binds_passed_by_keyword(
        lesson, STATEMENTS, KEYWORD_CALLS, ignore={"arraydmlrowcounts"}
    )
    passed = {**data_binds_passed(), **by_keyword}
    assert not offline_sql.binds_that_differ(STATEMENTS, passed, "oracle")
    assert passed["CURSOR_COUNTS"] == {"pattern", "schema"} and passed["CLAIM_ROWNUM"] == {"n"}


def test_the_items_all_bind_the_same_names():
    assert len({frozenset(row) for row in lesson.generate_items()}) == 1


def test_the_locking_clauses_are_the_ones_each_claim_names():
    def lock(sql):
        return parse(sql).args["locks"][0]

    assert lock(lesson.CLAIM).args["wait"] is False  # SKIP LOCKED
    assert lock(lesson.CLAIM_NOWAIT).args["wait"] is True
    assert lock(lesson.CLAIM_WAIT).args["wait"] == exp.Literal.number(1)
    assert lock(lesson.CLAIM_ROWNUM).args["wait"] is False


def test_the_literal_lookup_only_ever_pastes_an_integer():
    assert lesson.LITERAL_LOOKUP.format(item_id=17).endswith("WHERE id = 17")
    with pytest.raises(ValueError):
        lesson.LITERAL_LOOKUP.format(item_id="1 OR 1 = 1")
    assert lesson.LITERAL_LOOKUP.format(item_id=1).startswith(lesson.PATTERNS["literals"].rstrip("%"))
    assert lesson.BOUND_LOOKUP.startswith(lesson.PATTERNS["binds"].rstrip("%"))


def test_the_lookups_are_distinct_items():
    ids = lesson.lookup_ids()
    assert len(set(ids)) == lesson.N_LOOKUPS and all(1 <= i <= lesson.N_ITEMS for i in ids)


def good_result() -> lesson.ConcurrencyResult:
    """Facts as a working Oracle gives them, made by hand."""
    return lesson.ConcurrencyResult(
        version="23.26.0.0.0",
        cursors=lesson.Cursors(
            50, "EXACT", "SYSTEM", {"literals": 50, "binds": 1}, {"literals": 50, "binds": 1}, {}
        ),
        queue=lesson.Queue(60, 5, 5, 5, 0, "ORA-00054", "ORA-30006", 0, 60, 0, 0, 0),
    )


def broken(result, part: str, **changes):
    return dataclasses.replace(result, **{part: dataclasses.replace(getattr(result, part), **changes)})


def test_holds_on_facts_that_show_shared_cursors_and_no_job_twice():
    assert good_result().holds
    # Without a V$SQL reader the cursor counts are not measured, and the rest still holds.
    assert broken(good_result(), "cursors", reader=None, texts={"literals": None, "binds": None}).holds


@pytest.mark.parametrize(
    ("part", "changes"),
    [
        ("cursors", {"texts": {"literals": 50, "binds": 50}}),
        ("queue", {"overlap": 1}),
        ("queue", {"taken_twice": 1}),
        ("queue", {"taken": 59}),
    ],
)
def test_holds_fails_when_a_fact_is_missing(part, changes):
    assert not broken(good_result(), part, **changes).holds


def test_main_without_a_server_prints_one_line_and_exits_2():
    url = "oracle://examples:examples@127.0.0.1:{port}/FREEPDB1"
    exited = offline_sql.main_on_a_closed_port(lesson, "oracle", url, unset={"ORACLE_PASSWORD"})
    assert exited.code == UNAVAILABLE, exited.lines
    assert offline_sql.says_start_the_image(exited.one_line, "oracle"), exited.lines


def test_the_docstring_names_the_compose_image_and_cites_its_sources():
    assert not offline_sql.docstring_lacks(lesson, "oracle")
    image = containers.compose_services()["oracle"]["image"]
    assert image.partition(":")[2].startswith("23.26.0") and "docs.oracle.com" in lesson.__doc__
    assert "ORACLE_PASSWORD" in lesson.__doc__ and "oracle_specifics.py" in lesson.__doc__


def test_the_admin_connects_as_system_to_the_app_users_service(monkeypatch):
    monkeypatch.setenv("ORACLE_PASSWORD", "s3cret")
    url = "oracle://app:p%40ss@db.example.com:1522/SVC"
    assert settings.oracle_params(url) == {
        "user": "app",
        "password": "p@ss",
        "host": "db.example.com",
        "port": 1522,
        "service_name": "SVC",
        "tcp_connect_timeout": settings.CONNECT_TIMEOUT_S,
    }
    admin = lesson.admin_params(url)
    assert (admin["user"], admin["password"], admin["service_name"], admin["port"]) == (
        "system",
        "s3cret",
        "SVC",
        1522,
    )


# --- against Oracle (the compose image, with Docker or ORACLE_URL) ----------------------------------


@pytest.fixture(scope="module")
def result(oracle):
    return lesson.run(
        settings.oracle_params(oracle.url), lesson.admin_params(oracle.url, oracle.env.get("ORACLE_PASSWORD"))
    )


def test_the_app_user_reads_v_parameter_but_not_v_sql(result):
    assert result.cursors.cursor_sharing == "EXACT"  # else Oracle would replace the literals itself
    assert result.cursors.reader == "SYSTEM"  # DB_DEVELOPER_ROLE: READ on V$PARAMETER, none on V$SQL


def test_literals_make_a_cursor_per_value_and_a_bind_one_shared(result):
    cursors = result.cursors
    assert cursors.texts == {"literals": lesson.N_LOOKUPS, "binds": 1}
    assert cursors.children["literals"] >= lesson.N_LOOKUPS and cursors.children["binds"] >= 1


def test_skip_locked_hands_each_session_other_jobs_without_waiting(result):
    queue = result.queue
    assert queue.first == queue.second == lesson.JOB_BATCH
    assert queue.overlap == 0
    assert queue.nowait_error == "ORA-00054" and queue.wait_error == "ORA-30006"
    assert queue.rownum_skip_locked < lesson.JOB_BATCH  # ROWNUM counted the rows A had locked


def test_two_workers_drain_the_queue_with_no_job_taken_twice(result):
    assert result.queue.taken == lesson.N_JOBS
    assert result.queue.taken_twice == 0 and result.queue.failed == 0


def test_the_headline_fact_holds(result):
    assert result.holds  # what main() exits on


def test_a_second_run_gives_the_same_facts(oracle, result):
    again = lesson.run(
        settings.oracle_params(oracle.url), lesson.admin_params(oracle.url, oracle.env.get("ORACLE_PASSWORD"))
    )
    assert again == result

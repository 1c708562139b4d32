"""relational/sqlserver_row_versioning.py: checked locally without a server, and against one where it runs.

With no SQL Server here (image only), the first half runs everywhere on tests/offline_sql.py: the
statements, as pymssql sends them, parse as T-SQL or else match their documented grammar, and every
call passes its statement's placeholders and no others; the pure logic and `holds` are checked on
facts made by hand. The second half takes the `sqlserver` fixture, skipped where no SQL Server can be
had ("has no local server; runs with Docker or SQLSERVER_URL").
"""

import ast
import dataclasses
import re
from pathlib import Path

import pymssql
import pytest

from common.settings import UNAVAILABLE
from relational import sqlserver_row_versioning as lesson
from tests import offline_sql

VERBS = {"SELECT", "INSERT", "UPDATE", "CREATE", "DROP", "ALTER", "SET", "BEGIN", "COMMIT"}
STATEMENTS = offline_sql.statements_sent(lesson, VERBS)
HELPERS = {"run_sql", "one"}  # (cur, statement, **params) -> pass-throughs
# The T-SQL sqlglot 30 does not parse: ALTER DATABASE ... SET falls back to a bare Command, and
# SET TRANSACTION ISOLATION LEVEL knows only the ANSI levels (SNAPSHOT is refused). Each is held
# to the grammar of its reference page instead (ALTER DATABASE SET options; SET TRANSACTION ISOLATION LEVEL).
ALTER_DATABASE_SET = re.compile(
    r"ALTER DATABASE (?P<db>\w+) SET (SINGLE_USER|(READ_COMMITTED_SNAPSHOT|ALLOW_SNAPSHOT_ISOLATION) (ON|OFF))"
    r"( WITH (ROLLBACK IMMEDIATE|ROLLBACK AFTER \d+( SECONDS)?|NO_WAIT))?"
)
ISOLATION_LEVEL = re.compile(
    r"SET TRANSACTION ISOLATION LEVEL (READ UNCOMMITTED|READ COMMITTED|REPEATABLE READ|SNAPSHOT|SERIALIZABLE)"
)
NOT_PARSED = {
    "KICK_OUT": ALTER_DATABASE_SET,
    "RCSI_ON": ALTER_DATABASE_SET,
    "SNAPSHOT_ON": ALTER_DATABASE_SET,
    "ISOLATION_SNAPSHOT": ISOLATION_LEVEL,
}


# --- local: the SQL, the parameters and the pure logic (no server) -----------------------------


@pytest.mark.parametrize("name", sorted(set(STATEMENTS) - set(NOT_PARSED)))
def test_each_statement_parses_as_tsql(name):
    assert offline_sql.parse(offline_sql.as_pymssql_sends(STATEMENTS[name]), "tsql")  # a Command fails


def test_the_snapshot_level_statement_parses_with_an_ansi_level_in_its_place():
    serializable = offline_sql.parse_one(
        lesson.ISOLATION_SNAPSHOT.replace("SNAPSHOT", "SERIALIZABLE"), "tsql"
    )
    assert serializable.sql("tsql") == "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE"


@pytest.mark.parametrize("name", sorted(NOT_PARSED))
def test_what_sqlglot_cannot_parse_follows_the_documented_grammar(name):
    matched = NOT_PARSED[name].fullmatch(STATEMENTS[name])
    assert matched, STATEMENTS[name]
    if "db" in matched.groupdict():
        assert matched["db"] == lesson.DATABASE


def test_the_lesson_sends_the_statements_found_here():
    assert len(STATEMENTS) >= 20 and set(NOT_PARSED) <= set(STATEMENTS)  # the filter above finds them


def test_every_statement_is_sent_somewhere():
    unsent = set(STATEMENTS) - offline_sql.names_used(offline_sql.lesson_functions(lesson))
    assert not unsent, sorted(unsent)


def test_the_lesson_owns_a_database_named_after_it():
    assert Path(lesson.__file__).stem == lesson.DATABASE  # so no other lesson's database is touched
    named = offline_sql.databases_named(STATEMENTS)
    assert len(named) >= 5 and all(found == [lesson.DATABASE] for found in named.values()), named


def test_placeholders_are_named_only():
    stray = [name for name, statement in STATEMENTS.items() if offline_sql.has_stray_percent(statement)]
    assert not stray, f"{stray}: a positional or stray %"


def test_every_call_passes_exactly_the_statements_placeholders():
    checked = 0
    for owner, call in offline_sql.calls_to(offline_sql.lesson_functions(lesson), HELPERS):
        if owner in HELPERS:
            continue  # the helpers hand on what they were given
        statement = call.args[1]
        assert isinstance(statement, ast.Name) and statement.id in STATEMENTS, ast.unparse(call)
        wanted, given = lesson.placeholders(STATEMENTS[statement.id]), offline_sql.keywords_passed(call)
        assert given == wanted, (
            f"{owner} passes {sorted(given)} to {statement.id}, which takes {sorted(wanted)}"
        )
        checked += 1
    assert checked >= 30  # every call of the helpers above in the lesson (31 when written)


def test_run_sql_binds_what_the_statement_names_and_refuses_anything_else():
    cur = offline_sql.RecordingCursor()
    lesson.run_sql(cur, lesson.READ_BALANCE, id=1)
    lesson.run_sql(cur, lesson.BEGIN)
    assert cur.calls == [(lesson.READ_BALANCE, {"id": 1}), (lesson.BEGIN,)]  # no params: text untouched
    with pytest.raises(ValueError, match="placeholders"):
        lesson.run_sql(cur, lesson.READ_BALANCE, account=1)
    with pytest.raises(ValueError, match="placeholders"):
        lesson.run_sql(cur, lesson.ADD_TO_BALANCE, id=1)


def test_the_error_number_is_read_from_a_pymssql_exception():
    assert (
        lesson.error_number(pymssql.OperationalError(1222, b"Lock request time out period exceeded.")) == 1222
    )
    assert (
        lesson.error_number(pymssql.OperationalError((3960, b"Snapshot isolation transaction aborted")))
        == 3960
    )
    assert lesson.error_number(pymssql.InterfaceError("not connected")) is None


def test_main_without_a_server_prints_one_line_and_exits_2():
    exited = offline_sql.main_on_a_closed_port(lesson, "sqlserver", "mssql://sa:x@127.0.0.1:{port}/master")
    assert exited.code == UNAVAILABLE, exited.lines
    assert offline_sql.says_start_the_image(exited.one_line, "sqlserver"), exited.lines


def made_by_hand() -> lesson.RowVersioningResult:
    """A run as the docs say it goes."""
    return lesson.RowVersioningResult(
        blocking=lesson.Blocking(lesson.LOCK_TIMEOUT, True, "LCK_M_S", "KEY S"),
        committed_snapshot=lesson.CommittedSnapshot(True, lesson.COMMITTED, None, lesson.UPDATED),
        snapshot=lesson.SnapshotConflict(
            "ON", (lesson.UPDATED, lesson.UPDATED), lesson.UPDATE_CONFLICT, 0, lesson.UPDATED + 1
        ),
    )


@pytest.mark.parametrize(
    "broken",
    [
        lambda r: dataclasses.replace(r.blocking, read_error=None),
        lambda r: dataclasses.replace(r.blocking, blocked_by_writer=False),
        lambda r: dataclasses.replace(r.committed_snapshot, rcsi_on=False),
        lambda r: dataclasses.replace(r.committed_snapshot, read_during_write=lesson.UPDATED),
        lambda r: dataclasses.replace(r.committed_snapshot, read_error=lesson.LOCK_TIMEOUT),
        lambda r: dataclasses.replace(r.snapshot, reads=(lesson.UPDATED, lesson.UPDATED + 1)),
        lambda r: dataclasses.replace(r.snapshot, conflict_error=None),
        lambda r: dataclasses.replace(r.snapshot, open_after_conflict=1),
    ],
)
def test_holds_on_hand_made_facts_and_fails_when_one_breaks(broken):
    result = made_by_hand()
    assert result.holds
    part = broken(result)
    part_name = {lesson.Blocking: "blocking", lesson.CommittedSnapshot: "committed_snapshot"}.get(
        type(part), "snapshot"
    )
    setattr(result, part_name, part)
    assert not result.holds


# --- against a SQL Server (skipped where none can be had) --------------------------------------


@pytest.fixture(scope="module")
def result(sqlserver):
    return lesson.run(sqlserver.url)


def test_a_locking_reader_waits_for_the_writer_and_times_out(result):
    assert result.blocking.read_error == lesson.LOCK_TIMEOUT
    assert result.blocking.blocked_by_writer
    assert result.blocking.wait_type.startswith("LCK_M_S")
    assert result.blocking.waiting_lock.endswith(" S")


def test_read_committed_snapshot_reads_the_last_committed_value(result):
    c = result.committed_snapshot
    assert c.rcsi_on
    assert (c.read_during_write, c.read_error) == (lesson.COMMITTED, None)
    assert c.read_after_commit == lesson.UPDATED


def test_snapshot_isolation_refuses_the_second_writer(result):
    s = result.snapshot
    assert s.state == "ON"
    assert s.reads == (lesson.UPDATED, lesson.UPDATED)  # the other session's commit is not seen
    assert (s.conflict_error, s.open_after_conflict) == (lesson.UPDATE_CONFLICT, 0)
    assert s.final_balance == lesson.UPDATED + 1


def test_the_headline_holds(result):
    assert result.holds  # what main() exits on


def test_a_second_run_gives_the_same_facts(sqlserver, result):
    assert lesson.run(sqlserver.url) == result

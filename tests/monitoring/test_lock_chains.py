import time

import psycopg
import pytest

from monitoring import lock_chains as lesson


@pytest.fixture(scope="module")
def result(postgres):
    with psycopg.connect(postgres.url) as pg:
        return lesson.run(pg, postgres.url)


def test_pg_blocking_pids_shows_the_chain(result):
    assert result.chain == {"A": [], "B": ["A"], "C": ["B"]}


def test_pg_stat_activity_shows_who_waits_for_what(result):
    assert result.waits["A"] == "Client: ClientRead"  # idle in transaction, holding its locks
    assert result.waits["B"] == result.waits["C"] == "Lock: relation"


def test_cancel_leaves_the_chain_in_place(result):
    assert result.blocked_after_cancel


def test_terminate_resolves_the_chain(result):
    assert result.blocker_gone  # A's backend ended
    assert result.migration_done  # B's ALTER TABLE went through once A's locks went
    assert not result.blocked_after_terminate


def test_the_live_reader_saw_the_wait(result):
    assert result.reader_blocked >= 1  # the workload recorder saw the reader wait
    assert result.reader_reads > result.reader_blocked  # and it read freely before and after


def test_nothing_of_the_chain_is_left_behind(result, postgres):
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        for _ in range(50):  # a closed session's backend leaves pg_stat_activity a moment later
            left = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE %s", ("lock_chains %",)
            ).fetchone()[0]
            if left == 0:
                break
            time.sleep(0.1)
        columns = conn.execute(
            "SELECT count(*) FROM information_schema.columns WHERE table_schema = %s AND column_name = %s",
            (lesson.SCHEMA, "note"),
        ).fetchone()[0]
    assert left == 0  # A, B and the reader closed
    assert columns == 1  # B's migration committed


def test_a_second_run_gives_the_same_facts(result, postgres):
    with psycopg.connect(postgres.url) as pg:
        again = lesson.run(pg, postgres.url)
    assert again == result
    assert again.holds and result.holds  # what main() exits on

"""Counts only: what the live workload saw during each step, the naive way and the safe way.

"Blocked" in the safe-path assertions is the lesson's lock measure (the server showed the statement
waiting on a lock for over 100 ms), not raw latency: a busy machine can make any operation slow,
but only a lock makes it wait in pg_stat_activity.
"""

import psycopg
import pytest

from migration import zero_downtime_expand_contract as lesson


@pytest.fixture(scope="module")
def result(postgres):
    with psycopg.connect(postgres.url, autocommit=True) as admin:
        return lesson.run(admin, postgres.url)


def test_the_rename_breaks_the_running_application(result):
    rename = result.step("rename, then deploy")
    assert rename.failed > 0
    assert set(rename.errors) == {"UndefinedColumn"}


@pytest.mark.parametrize(
    ("step", "waiting_at_least"),
    [("volatile DEFAULT column", 1 + len(lesson.READERS)), ("CREATE INDEX", 1)],  # everyone; the writer
)
def test_each_naive_ddl_makes_the_application_wait_on_its_lock(result, step, waiting_at_least):
    naive = result.step(step)
    assert naive.queued >= waiting_at_least  # seen waiting on the DDL's lock, at the same time
    assert naive.blocked >= waiting_at_least  # and their statements took over 100 ms
    assert naive.failed == 0


def test_without_lock_timeout_readers_queue_behind_the_waiting_alter(result):
    queue = result.step("ALTER, no timeout")
    # Every worker, the two readers included, was seen waiting at once while the ALTER waited.
    assert queue.queued == 1 + len(lesson.READERS)
    assert queue.lock_blocked > 0


def test_with_lock_timeout_the_alter_gives_up_and_nobody_waits_long(result):
    retried = result.step("ALTER, timeout+retry")
    assert result.lock_timeouts > 0
    assert retried.lock_blocked == 0
    assert retried.failed == 0


def test_the_safe_path_fails_nothing_blocks_nothing_and_loses_nothing(result):
    safe = result.way("safe")
    assert [s.name for s in safe][-1] == "DROP COLUMN mail"
    assert all(s.operations > 0 for s in safe)
    assert sum(s.failed for s in safe) == 0
    assert sum(s.lock_blocked for s in safe) == 0
    assert sum(len(s.acknowledged) for s in safe) > 0
    assert result.lost == {"naive": 0, "safe": 0}


def test_the_backfill_copied_every_row(result):
    assert result.backfilled >= lesson.N_ROWS
    assert result.unmatched == 0


def test_the_final_schema_has_the_new_column_and_not_the_old(result, postgres):
    assert "mail" not in result.columns
    assert result.columns["email"] == "NO"  # NOT NULL, without a long scan
    assert result.email_index_valid
    with psycopg.connect(postgres.url) as conn:
        triggers = conn.execute(
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = %s::regclass AND NOT tgisinternal",
            (f"{lesson.SCHEMA}.customers",),
        ).fetchone()[0]
    assert triggers == 0, "the dual-write trigger went with the old column"


def test_the_headline_holds(result):
    assert result.holds


def test_a_second_run_shows_the_same_facts(postgres, result):
    with psycopg.connect(postgres.url, autocommit=True) as admin:
        again = lesson.run(admin, postgres.url)

    def noticed(step):
        # Naive: the application failed or queued on the lock (whether the sampler sees a short wait,
        # the index build's, pass 100 ms is luck). Safe: no statement waited on a lock that long.
        return step.failed > 0 or step.queued > 0 if step.way == "naive" else step.lock_blocked > 0

    def shape(r):
        return [(s.name, s.way, s.failed > 0, noticed(s)) for s in r.steps], r.lost, r.columns

    assert shape(again) == shape(result)

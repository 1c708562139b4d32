import psycopg
import pymysql
import pytest
from redis import Redis

from common.settings import mysql_params
from polyglot import distributed_transactions as lesson
from servers.local.postgres import PostgresServer

OUTCOME = {"none": "confirmed", "order before": "absent", "order after": "cancelled"}
OUTCOME |= {f"{step} {when}": "cancelled" for step in ("reserve", "charge") for when in ("before", "after")}
OUTCOME |= {"confirm before": "confirmed", "confirm after": "confirmed"}  # after the pivot: retried
COMPENSATED = {
    "order": ("cancel",),
    "reserve": ("release", "cancel"),
    "charge": ("refund", "release", "cancel"),
}
# The coordinator died during the prepare phase (one branch prepared, the other's work lost with its
# session: rolled back, no decision), after the decision and, for 2PC, after the first branch's commit.
IN_DOUBT = {
    "2pc": {"pg_prepared_xacts (orders db)": 2, "pg_prepared_xacts (stock db)": 2},
    "xa": {"XA RECOVER": 2, "pg_prepared_xacts (orders db)": 1},  # MySQL prepares first there
}
RECOVERED = {"2pc": {"committed": 3, "rolled back": 1}, "xa": {"committed": 2, "rolled back": 1}}


@pytest.fixture(scope="module")
def clients(postgres, mysql, mongo_client, redis):
    with Redis.from_url(redis.url) as cache:
        yield postgres.url, mysql_params(mysql.url), mongo_client, cache


@pytest.fixture(scope="module")
def result(clients):
    return lesson.run(*clients)


def prepared_transactions_available(url: str) -> bool:
    with psycopg.connect(url) as conn:
        allowed = int(conn.execute("SHOW max_prepared_transactions").fetchone()[0])
    return allowed >= lesson.PREPARED_NEEDED or PostgresServer.installed()


def ours_in_doubt(postgres_url: str, mysql: dict) -> int:
    with psycopg.connect(postgres_url) as conn:
        found = conn.execute(lesson.IN_DOUBT_PG, (lesson.PREFIX,)).fetchall()
    with pymysql.connect(**mysql) as conn, conn.cursor() as cur:
        cur.execute("XA RECOVER")
        return len(found) + sum(lesson.xid_of(row).startswith(lesson.PREFIX) for row in cur.fetchall())


def two_phase(result, protocol: str) -> lesson.TwoPhase:
    found = {t.protocol: t for t in result.two_phase}
    if protocol not in found:
        pytest.skip(f"no prepared transactions here: {result.server}")
    return found[protocol]


def test_two_phase_ran_where_prepared_transactions_are_available(result, postgres):
    ran = [t.protocol for t in result.two_phase]
    assert ran == (["2pc", "xa"] if prepared_transactions_available(postgres.url) else []), result.server


@pytest.mark.parametrize("protocol", ["2pc", "xa"])
def test_the_crashed_coordinator_leaves_transactions_in_doubt_that_recovery_finishes(result, protocol):
    t = two_phase(result, protocol)
    assert t.in_doubt == IN_DOUBT[protocol]
    assert t.recovered == RECOVERED[protocol]
    assert t.in_doubt_after == 0


@pytest.mark.parametrize("protocol", ["2pc", "xa"])
def test_in_doubt_transactions_hold_their_locks_against_a_writer_until_recovered(result, protocol):
    t = two_phase(result, protocol)
    assert t.writer_failed > 0 and t.writer_blocked > 0
    assert t.writer_failed_after == 0


@pytest.mark.parametrize("protocol", ["2pc", "xa"])
def test_after_recovery_the_participants_agree(result, protocol):
    assert two_phase(result, protocol).consistent


@pytest.mark.parametrize("failure", list(OUTCOME))
def test_every_saga_ends_consistent_across_the_three_stores(result, failure):
    saga = next(s for s in result.sagas if s.failure == failure)
    assert saga.invariants == {"orders": True, "money": True, "stock": True}
    assert saga.outcome == OUTCOME[failure]
    step = failure.split()[0]
    assert saga.compensated == COMPENSATED.get(step, ())


def test_no_prepared_transaction_of_the_lesson_is_left(result, clients):
    url, mysql, _mongo, _cache = clients
    assert result.prepared_left == 0
    assert ours_in_doubt(url, mysql) == 0
    assert result.holds  # what main() exits on


def test_leftovers_are_rolled_back_at_the_start_and_the_end_even_when_the_lesson_fails(clients, monkeypatch):
    url, mysql, *_ = clients
    if not prepared_transactions_available(url):
        pytest.skip("no PostgreSQL that allows prepared transactions")
    leftover = lesson.PREFIX + "left-by-a-killed-run"
    with pymysql.connect(**mysql, autocommit=True) as conn, conn.cursor() as cur:  # in a database of its own
        cur.execute("CREATE DATABASE IF NOT EXISTS shop_distributed_transactions_leftover")
        cur.execute(
            "CREATE TABLE IF NOT EXISTS shop_distributed_transactions_leftover.t (id int) ENGINE=InnoDB"
        )
        for statement in ("XA START %s", "INSERT INTO shop_distributed_transactions_leftover.t VALUES (1)"):
            cur.execute(statement, (leftover,) if "%s" in statement else ())
        cur.execute("XA END %s", (leftover,))
        cur.execute("XA PREPARE %s", (leftover,))
    assert ours_in_doubt(url, mysql) == 1

    recover = lesson.recover

    def fail_for_xa(coordinator, branches):  # when MySQL holds prepared transactions of the lesson
        if any(isinstance(branch, lesson.MySqlBranch) for branch in branches):
            raise RuntimeError("the recovery step failed")
        return recover(coordinator, branches)

    monkeypatch.setattr(lesson, "recover", fail_for_xa)
    try:
        with pytest.raises(RuntimeError):
            lesson.run(*clients)
        assert ours_in_doubt(url, mysql) == 0
    finally:
        with pymysql.connect(**mysql, autocommit=True) as conn, conn.cursor() as cur:
            cur.execute("XA RECOVER")
            if any(lesson.xid_of(row) == leftover for row in cur.fetchall()):
                cur.execute("XA ROLLBACK %s", (leftover,))
            cur.execute("DROP DATABASE IF EXISTS shop_distributed_transactions_leftover")

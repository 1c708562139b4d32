"""Transaction isolation: four anomalies made to happen, level by level, and the two ways to fix them

Two sessions (two connections, stepped one statement at a time in a fixed order, so every run
interleaves the same way) produce the classic anomalies: a lost update (read, modify, write), a
non-repeatable read, a phantom and write skew (two doctors on call, each checks that the other is
still on call, then both go off). Each is run at READ COMMITTED, REPEATABLE READ and SERIALIZABLE
and the outcome recorded: it happened, it was prevented by the snapshot, or it was refused with an
error (which SQLSTATE, which psycopg exception). The result is PostgreSQL's real matrix, which is
stricter than the SQL standard's minimum: no phantom at REPEATABLE READ, and no dirty read even
when READ UNCOMMITTED is asked for. Then the two fixes: a retry loop for the serialization
failures that the strict levels raise, and SELECT ... FOR UPDATE, which makes the second writer wait.

Engine: PostgreSQL (POSTGRES_URL), schema `transactions_isolation`.
Run: `make up SERVICES=postgres` (or `make local-up`), then `python relational/transactions_isolation.py`.
Look for: the matrix (write skew only stopped by SERIALIZABLE, with SQLSTATE 40001), the retry
loop succeeding on its second attempt, and the FOR UPDATE balance ending at 130, not 120.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

import psycopg
from psycopg import IsolationLevel, sql

from common import console
from common.settings import CONNECT_TIMEOUT_S, postgres_url, require
from common.timing import timer

REQUIRES = ("postgres",)
SCHEMA = "transactions_isolation"
LEVELS = {
    "READ COMMITTED": IsolationLevel.READ_COMMITTED,
    "REPEATABLE READ": IsolationLevel.REPEATABLE_READ,
    "SERIALIZABLE": IsolationLevel.SERIALIZABLE,
}
HAPPENED, BY_SNAPSHOT, BY_ERROR = "happened", "prevented by the snapshot", "prevented by an error"
START_BALANCE, A_DEPOSIT, B_DEPOSIT = 100, 10, 20
RICH = 100  # the phantom query counts accounts with at least this balance
WAIT_LIMIT_S = 10  # a bound on waiting for a lock, so a mistake fails instead of hanging

TABLES = """
CREATE TABLE accounts (id integer PRIMARY KEY, owner text NOT NULL, balance integer NOT NULL);
CREATE TABLE doctors (name text PRIMARY KEY, on_call boolean NOT NULL);
"""
ACCOUNTS = [(1, "ana", START_BALANCE), (2, "ben", 250), (3, "cy", 40)]
DOCTORS = [("alice", True), ("bob", True)]
BALANCE = "SELECT balance FROM accounts WHERE id = %s"
BALANCE_FOR_UPDATE = "SELECT balance FROM accounts WHERE id = %s FOR UPDATE"
SET_BALANCE = "UPDATE accounts SET balance = %s WHERE id = %s"
COUNT_RICH = "SELECT count(*) FROM accounts WHERE balance >= %s"
ON_CALL = "SELECT count(*) FROM doctors WHERE on_call"
GO_OFF_CALL = "UPDATE doctors SET on_call = false WHERE name = %s"

T = TypeVar("T")


@dataclass(frozen=True)
class Outcome:
    verdict: str  # HAPPENED, BY_SNAPSHOT or BY_ERROR
    seen: str  # what the sessions observed, in numbers
    error: str = ""  # the psycopg exception class, for BY_ERROR
    sqlstate: str = ""
    failed_at: str = ""  # the step that raised it
    message: str = ""  # the server's words for it

    def cell(self) -> str:
        if self.verdict == BY_ERROR:
            return f"error {self.sqlstate}"
        return "happened" if self.verdict == HAPPENED else "snapshot"


@dataclass
class Trace:
    """The interleaving as it ran: (session, statement, what it returned)."""

    steps: list[tuple[str, str, str]] = field(default_factory=list)

    def __call__(self, session: str, statement: str, seen: object = "") -> None:
        self.steps.append((session, statement, str(seen)))


@dataclass
class ForUpdateFix:
    b_waited_for_a: bool  # B was seen blocked behind A's row lock
    b_read: int  # what B's SELECT ... FOR UPDATE returned once A had committed
    final_balance: int
    waited_s: float = field(compare=False)


@dataclass
class IsolationResult:
    matrix: dict[str, dict[str, Outcome]]  # anomaly -> isolation level -> outcome
    dirty_read_at_read_uncommitted: bool
    retries: int
    attempts_seen: list[str]
    balance_after_retry: int
    for_update: ForUpdateFix

    def verdicts(self) -> dict[str, dict[str, str]]:
        return {
            anomaly: {level: o.verdict for level, o in row.items()} for anomaly, row in self.matrix.items()
        }


def reset_schema(a: psycopg.Connection, b: psycopg.Connection) -> None:
    with a.cursor() as cur:
        cur.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SCHEMA)))
        cur.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(SCHEMA)))
    a.commit()
    for conn in (a, b):
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(SCHEMA)))
        conn.commit()
    a.execute(TABLES)
    a.commit()


def begin_scenario(a: psycopg.Connection, b: psycopg.Connection, level: IsolationLevel) -> None:
    """Fresh rows, both sessions idle at `level` (the level applies from their next BEGIN)."""
    for conn in (a, b):
        conn.rollback()
    with a.cursor() as cur:
        cur.execute("TRUNCATE accounts, doctors")
        cur.executemany("INSERT INTO accounts VALUES (%s, %s, %s)", ACCOUNTS)
        cur.executemany("INSERT INTO doctors VALUES (%s, %s)", DOCTORS)
    a.commit()
    for conn in (a, b):
        conn.isolation_level = level


def value(conn: psycopg.Connection, query: str, params: tuple = ()) -> int:
    return conn.execute(query, params).fetchone()[0]


def refused(error: psycopg.Error, failed_at: str, seen: str) -> Outcome:
    return Outcome(
        BY_ERROR, seen, type(error).__name__, error.sqlstate or "", failed_at, error.diag.message_primary
    )


def lost_update(a: psycopg.Connection, b: psycopg.Connection, trace: Trace) -> Outcome:
    """Both read the balance, both write back what they read plus their deposit."""
    seen_a = value(a, BALANCE, (1,))
    trace("A", "SELECT balance", seen_a)
    seen_b = value(b, BALANCE, (1,))
    trace("B", "SELECT balance", seen_b)
    a.execute(SET_BALANCE, (seen_a + A_DEPOSIT, 1))
    a.commit()
    trace("A", f"UPDATE balance = {seen_a} + {A_DEPOSIT}; COMMIT")
    step = f"B: UPDATE balance = {seen_b} + {B_DEPOSIT}"
    try:
        b.execute(SET_BALANCE, (seen_b + B_DEPOSIT, 1))
        step = "B: COMMIT"
        b.commit()
    except psycopg.errors.SerializationFailure as error:
        b.rollback()
        trace(step[0], step[3:], f"{type(error).__name__}: {error.diag.message_primary}")
        return refused(error, step, f"B refused; balance stays {seen_a + A_DEPOSIT}")
    trace("B", f"UPDATE balance = {seen_b} + {B_DEPOSIT}; COMMIT")
    final = value(a, BALANCE, (1,))
    a.rollback()
    trace("A", "SELECT balance", final)
    expected = START_BALANCE + A_DEPOSIT + B_DEPOSIT
    return Outcome(HAPPENED if final != expected else BY_SNAPSHOT, f"balance {final}, not {expected}")


def non_repeatable_read(a: psycopg.Connection, b: psycopg.Connection, trace: Trace) -> Outcome:
    """A reads a row twice in one transaction; B changes it in between."""
    first = value(a, BALANCE, (1,))
    trace("A", "SELECT balance", first)
    b.execute(SET_BALANCE, (150, 1))
    b.commit()
    trace("B", "UPDATE balance = 150; COMMIT")
    second = value(a, BALANCE, (1,))
    trace("A", "SELECT balance (again)", second)
    a.commit()
    return Outcome(HAPPENED if second != first else BY_SNAPSHOT, f"read {first}, then {second}")


def phantom(a: psycopg.Connection, b: psycopg.Connection, trace: Trace) -> Outcome:
    """A counts the rows matching a condition twice; B inserts a matching row in between."""
    first = value(a, COUNT_RICH, (RICH,))
    trace("A", f"SELECT count(*) WHERE balance >= {RICH}", first)
    b.execute("INSERT INTO accounts VALUES (%s, %s, %s)", (4, "dee", 500))
    b.commit()
    trace("B", "INSERT an account with balance 500; COMMIT")
    second = value(a, COUNT_RICH, (RICH,))
    trace("A", f"SELECT count(*) WHERE balance >= {RICH} (again)", second)
    a.commit()
    return Outcome(HAPPENED if second != first else BY_SNAPSHOT, f"counted {first}, then {second}")


def write_skew(a: psycopg.Connection, b: psycopg.Connection, trace: Trace) -> Outcome:
    """Each doctor checks that two are on call, then goes off: each write is fine, both are not."""
    for session, conn in (("A", a), ("B", b)):
        trace(session, "SELECT count(*) on call", value(conn, ON_CALL))
    a.execute(GO_OFF_CALL, ("alice",))
    trace("A", "alice goes off call")
    step = "B: UPDATE (bob goes off call)"
    try:
        b.execute(GO_OFF_CALL, ("bob",))
        trace("B", "bob goes off call")
        step = "A: COMMIT"
        a.commit()
        trace("A", "COMMIT")
        step = "B: COMMIT"
        b.commit()
        trace("B", "COMMIT")
    except psycopg.errors.SerializationFailure as error:
        b.rollback()
        a.rollback()  # nothing to undo when A had already committed
        trace(step[0], step[3:], f"{type(error).__name__}: {error.diag.message_primary}")
        left = value(a, ON_CALL)
        a.rollback()
        return refused(error, step, f"doctors on call: {left}")
    left = value(a, ON_CALL)
    a.rollback()
    trace("A", "SELECT count(*) on call", left)
    return Outcome(HAPPENED if left == 0 else BY_SNAPSHOT, f"doctors on call: {left}")


ANOMALIES: dict[str, Callable[[psycopg.Connection, psycopg.Connection, Trace], Outcome]] = {
    "lost update": lost_update,
    "non-repeatable read": non_repeatable_read,
    "phantom": phantom,
    "write skew": write_skew,
}


def isolation_matrix(
    a: psycopg.Connection, b: psycopg.Connection
) -> tuple[dict[str, dict[str, Outcome]], dict[tuple[str, str], Trace]]:
    matrix: dict[str, dict[str, Outcome]] = {}
    traces: dict[tuple[str, str], Trace] = {}
    for anomaly, scenario in ANOMALIES.items():
        matrix[anomaly] = {}
        for level_name, level in LEVELS.items():
            begin_scenario(a, b, level)
            trace = Trace()
            matrix[anomaly][level_name] = scenario(a, b, trace)
            traces[(anomaly, level_name)] = trace
    return matrix, traces


def dirty_read(a: psycopg.Connection, b: psycopg.Connection) -> bool:
    """READ UNCOMMITTED is accepted, and behaves as READ COMMITTED: no uncommitted data is seen."""
    begin_scenario(a, b, IsolationLevel.READ_UNCOMMITTED)
    b.execute(SET_BALANCE, (999, 1))  # not committed
    seen = value(a, BALANCE, (1,))
    b.rollback()
    a.rollback()
    return seen == 999


def run_transaction(
    conn: psycopg.Connection, work: Callable[[psycopg.Connection, int], T], attempts: int = 5
) -> tuple[T, int]:
    """Run `work` in a transaction; on a serialization failure roll back and run it again.

    The whole transaction is replayed, reads included: what it read is what went stale.
    Returns the work's result and how many retries it took.
    """
    for attempt in range(attempts):
        try:
            result = work(conn, attempt)
            conn.commit()
            return result, attempt
        except psycopg.errors.SerializationFailure:
            conn.rollback()
    raise RuntimeError(f"still failing after {attempts} attempts")


def retry_demo(a: psycopg.Connection, b: psycopg.Connection) -> tuple[int, list[str], int]:
    begin_scenario(a, b, IsolationLevel.SERIALIZABLE)
    b.autocommit = True  # B's deposit is one statement, committed at once
    attempts_seen = []

    def deposit(conn: psycopg.Connection, attempt: int) -> int:
        balance = value(conn, BALANCE, (1,))
        if attempt == 0:  # on the first attempt only, another session commits in between
            b.execute("UPDATE accounts SET balance = balance + %s WHERE id = %s", (B_DEPOSIT, 1))
        attempts_seen.append(f"attempt {attempt + 1}: read {balance}")
        conn.execute(SET_BALANCE, (balance + A_DEPOSIT, 1))
        return balance + A_DEPOSIT

    try:
        _, retries = run_transaction(a, deposit)
    finally:
        b.autocommit = False
    final = value(a, BALANCE, (1,))
    a.rollback()
    return retries, attempts_seen, final


def blocked_by(observer: psycopg.Connection, waiting_pid: int, holder_pid: int) -> bool:
    return value(observer, "SELECT %s = ANY(pg_blocking_pids(%s))", (holder_pid, waiting_pid))


def wait_until_blocked(observer: psycopg.Connection, waiting_pid: int, holder_pid: int) -> bool:
    """Ask the lock manager until `waiting_pid` is queued behind `holder_pid` (within a bound)."""
    deadline = time.monotonic() + WAIT_LIMIT_S
    while time.monotonic() < deadline:
        if blocked_by(observer, waiting_pid, holder_pid):
            return True
    return False


def for_update_fix(a: psycopg.Connection, b: psycopg.Connection) -> ForUpdateFix:
    """A locks the row as it reads it; B's locking read waits until A commits, then sees A's write."""
    begin_scenario(a, b, IsolationLevel.READ_COMMITTED)
    b.execute("SELECT set_config('lock_timeout', %s, false)", (f"{WAIT_LIMIT_S}s",))
    b.commit()
    seen_a = value(a, BALANCE_FOR_UPDATE, (1,))
    with ThreadPoolExecutor(max_workers=1) as pool, timer() as waited:
        # B's locking read blocks, so it runs in a thread; A goes on only once B is seen waiting.
        b_read = pool.submit(value, b, BALANCE_FOR_UPDATE, (1,))
        b_waited = wait_until_blocked(a, b.info.backend_pid, a.info.backend_pid)
        a.execute(SET_BALANCE, (seen_a + A_DEPOSIT, 1))
        a.commit()
        seen_b = b_read.result(timeout=WAIT_LIMIT_S)
    b.execute(SET_BALANCE, (seen_b + B_DEPOSIT, 1))
    b.commit()
    final = value(a, BALANCE, (1,))
    a.rollback()
    return ForUpdateFix(b_waited, seen_b, final, waited.seconds)


def run(a: psycopg.Connection, b: psycopg.Connection) -> IsolationResult:
    console.title("Transaction isolation: anomalies by level, and how to fix them")

    console.step("Two sessions, A and B, stepped one statement at a time in a fixed order")
    reset_schema(a, b)
    console.say(f"A and B are two connections (backend pids {a.info.backend_pid} and {b.info.backend_pid}).")

    console.step("Make each anomaly happen at READ COMMITTED, PostgreSQL's default")
    matrix, traces = isolation_matrix(a, b)
    for anomaly in ANOMALIES:
        console.say(f"{anomaly}: {matrix[anomaly]['READ COMMITTED'].seen}")
        console.table(["session", "step", "saw"], traces[(anomaly, "READ COMMITTED")].steps)

    console.step("The same interleavings at each level (snapshot: prevented by the transaction's snapshot)")
    console.table(
        ["anomaly", *LEVELS],
        [(anomaly, *(matrix[anomaly][level].cell() for level in LEVELS)) for anomaly in ANOMALIES],
    )
    for anomaly in ANOMALIES:
        for level in LEVELS:
            outcome = matrix[anomaly][level]
            if outcome.verdict == BY_ERROR:
                console.say(
                    f"{anomaly} at {level}: psycopg.errors.{outcome.error} ({outcome.sqlstate})"
                    f" at {outcome.failed_at}: {outcome.message}"
                )
    dirty = dirty_read(a, b)
    console.say(
        f"READ UNCOMMITTED: did A see B's uncommitted 999? {'yes' if dirty else 'no'} (it is READ COMMITTED)"
    )

    console.step("Fix 1: a serialization failure means 'run the whole transaction again'")
    retries, attempts_seen, balance = retry_demo(a, b)
    for number, line in enumerate(attempts_seen):
        console.say(line + (" -> SerializationFailure, rolled back" if number < retries else " -> committed"))
    console.say(
        f"retries: {retries}; balance {balance} = {START_BALANCE} + B's {B_DEPOSIT} + A's {A_DEPOSIT}, nothing lost"
    )

    console.step("Fix 2: SELECT ... FOR UPDATE at READ COMMITTED makes the second writer wait")
    fix = for_update_fix(a, b)
    console.table(
        ["fact", "value"],
        [
            ("B was seen waiting for A's row lock", fix.b_waited_for_a),
            ("B's SELECT ... FOR UPDATE returned", fix.b_read),
            ("final balance", fix.final_balance),
            ("expected", START_BALANCE + A_DEPOSIT + B_DEPOSIT),
        ],
    )
    console.say(f"B waited {console.seconds(fix.waited_s)} for A's COMMIT.")
    console.say(
        "Simpler still when it fits: let the UPDATE do the arithmetic (balance = balance + n), no read needed."
    )

    return IsolationResult(
        matrix=matrix,
        dirty_read_at_read_uncommitted=dirty,
        retries=retries,
        attempts_seen=attempts_seen,
        balance_after_retry=balance,
        for_update=fix,
    )


def holds(result: IsolationResult) -> bool:
    """Lost update and write skew happen at READ COMMITTED, SERIALIZABLE refuses them, both fixes keep 130."""
    verdicts = result.verdicts()
    expected = START_BALANCE + A_DEPOSIT + B_DEPOSIT
    return (
        verdicts["lost update"]["READ COMMITTED"] == verdicts["write skew"]["READ COMMITTED"] == HAPPENED
        and verdicts["lost update"]["SERIALIZABLE"] == verdicts["write skew"]["SERIALIZABLE"] == BY_ERROR
        and result.balance_after_retry == result.for_update.final_balance == expected
    )


def main() -> int:
    require(*REQUIRES)
    url = postgres_url()
    with (
        psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S) as a,
        psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S) as b,
    ):
        result = run(a, b)
    return 0 if holds(result) else 1


if __name__ == "__main__":
    raise SystemExit(main())

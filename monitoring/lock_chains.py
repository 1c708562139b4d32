"""Lock chains: wait events, pg_blocking_pids, and cancel against terminate

Three sessions, one table. A updates a row and never commits: idle in transaction, holding its
row lock and a ROW EXCLUSIVE lock on the table. B, a migration, asks for the ACCESS EXCLUSIVE lock
that ALTER TABLE needs and queues behind A. C, every reader of the application, now queues behind
B: a lock request waits for the requests queued before it, so a plain SELECT that A alone never
blocked stops as well. pg_stat_activity shows each session's state and wait event (A `Client:
ClientRead`, waiting for its client; B and C `Lock: relation`), and pg_blocking_pids(pid) the
chain: A ← B ← C. A live reader, recorded by the shared workload recorder, counts how many of its
reads were blocked (over 100 ms). pg_cancel_backend cancels a running query: A runs none, so
nothing changes. pg_terminate_backend ends A's session, its transaction rolls back, its locks go,
B's ALTER goes through and the reader flows again. Prevention: `idle_in_transaction_session_timeout`
ends an A by itself, and `SET lock_timeout` before a migration makes B give up instead of queueing
everyone behind it.

Engine: PostgreSQL (POSTGRES_URL; any role: its sessions may signal one another), schema `lock_chains`.
Run: `make up SERVICES=postgres` (or `make local-up`), then `python monitoring/lock_chains.py`.
Look for: the chain table (B blocked by A, C blocked by B), B and C still waiting after
pg_cancel_backend(A), the chain gone after pg_terminate_backend(A), and the reader's blocked count.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from common import console
from common.settings import CONNECT_TIMEOUT_S, postgres_url, require
from common.workload import Workload

REQUIRES = ("postgres",)
SCHEMA = "lock_chains"
CUSTOMERS = 1_000
SETUP = [  # %(n)s is the number of customers
    """CREATE TABLE lock_chains.customers (id integer PRIMARY KEY, name text NOT NULL)
    WITH (autovacuum_enabled = off)""",  # off: no background ANALYZE or VACUUM joins the lock chain
    "INSERT INTO lock_chains.customers (id, name) SELECT g, 'customer ' || g FROM generate_series(1, %(n)s) AS g",
    "ANALYZE lock_chains.customers",
]
CHAIN = """SELECT pid, state, coalesce(wait_event_type || ': ' || wait_event, '-'), pg_blocking_pids(pid)
    FROM pg_stat_activity WHERE pid = ANY(%s)"""
SESSIONS = {"A": "A  UPDATE, no COMMIT", "B": "B  ALTER TABLE", "C": "C  SELECT"}
FORGOT_TO_COMMIT = "UPDATE lock_chains.customers SET name = name WHERE id = 1"
MIGRATION = "ALTER TABLE lock_chains.customers ADD COLUMN note text"
READ = "SELECT name FROM lock_chains.customers WHERE id = %s"


@dataclass
class LockChainResult:
    chain: dict[str, list[str]] = field(default_factory=dict)  # session -> the sessions blocking it
    waits: dict[str, str] = field(default_factory=dict, compare=False)  # session -> its wait event
    blocked_after_cancel: bool = False
    blocked_after_terminate: bool = True
    blocker_gone: bool = False  # A's backend, after pg_terminate_backend
    migration_done: bool = False  # B's ALTER TABLE went through (not ended by its statement_timeout)
    reader_blocked: int = field(default=0, compare=False)  # the reader's reads over 100 ms
    reader_reads: int = field(default=0, compare=False)

    @property
    def holds(self) -> bool:
        return (
            self.chain == {"A": [], "B": ["A"], "C": ["B"]}
            and self.blocked_after_cancel
            and not self.blocked_after_terminate
            and self.blocker_gone
            and self.migration_done
        )


def chain_rows(pg: psycopg.Connection, pids: dict[str, int]) -> dict[str, tuple]:
    """pg_stat_activity for the three sessions: session -> (state, wait event, the sessions blocking it)."""
    session_of = {pid: name for name, pid in pids.items()}
    rows = pg.execute(CHAIN, (list(pids.values()),)).fetchall()
    return {
        session_of[pid]: (state, wait, sorted(session_of.get(p, str(p)) for p in blocking))
        for pid, state, wait, blocking in rows
    }


def waiting(rows: dict[str, tuple], session: str) -> bool:
    return session in rows and rows[session][1].startswith("Lock")


def poll(pg: psycopg.Connection, pids: dict[str, int], done, timeout_s: float) -> dict[str, tuple]:
    deadline = time.monotonic() + timeout_s
    rows = chain_rows(pg, pids)
    while not done(rows) and time.monotonic() < deadline:
        time.sleep(0.05)
        rows = chain_rows(pg, pids)
    return rows


def set_up(pg: psycopg.Connection) -> None:
    console.step("A table the application reads all the time")
    pg.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SCHEMA)))
    pg.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(SCHEMA)))
    for statement in SETUP:
        pg.execute(statement, {"n": CUSTOMERS})
    count = pg.execute("SELECT count(*) FROM lock_chains.customers").fetchone()[0]
    console.say(f"{count:,} customers; reader C reads one by primary key, again and again")


def show_chain(pg: psycopg.Connection, pids: dict[str, int], result: LockChainResult) -> None:
    rows = poll(pg, pids, lambda r: waiting(r, "B") and waiting(r, "C"), 10.0)
    result.chain = {name: row[2] for name, row in sorted(rows.items())}
    result.waits = {name: row[1] for name, row in rows.items()}
    console.table(
        ["session", "state", "wait event", "blocked by"],
        [(SESSIONS[n], state, wait, ", ".join(by) or "-") for n, (state, wait, by) in sorted(rows.items())],
    )


def cancel_then_terminate(
    pg: psycopg.Connection, pids: dict[str, int], load: Workload, migration, result: LockChainResult
) -> None:
    console.step("pg_cancel_backend(A), then pg_terminate_backend(A)")
    pg.execute("SELECT pg_cancel_backend(%s)", (pids["A"],))
    rows = poll(pg, pids, lambda r: not waiting(r, "B"), 0.5)
    result.blocked_after_cancel = waiting(rows, "B") and waiting(rows, "C")
    console.say(f"pg_cancel_backend(A): B, C still waiting: {result.blocked_after_cancel} (A runs no query)")

    pg.execute("SELECT pg_terminate_backend(%s, 5000)", (pids["A"],))  # waits up to 5 s for it to end
    migration.join(10.0)
    load.wait_for(len(load.succeeded("read")) + 3, "read", timeout_s=10.0)
    rows = chain_rows(pg, pids)
    result.blocker_gone = "A" not in rows
    result.blocked_after_terminate = any(waiting(rows, n) or rows[n][2] for n in "BC" if n in rows)
    console.say(
        f"pg_terminate_backend(A): A gone: {result.blocker_gone}; B's ALTER done: {result.migration_done};"
    )
    console.say(f"B or C still blocked: {result.blocked_after_terminate}")


def lock_chain(pg: psycopg.Connection, url: str, result: LockChainResult) -> None:
    console.step("A forgotten transaction, a migration behind it, every reader behind that")
    options = {"connect_timeout": CONNECT_TIMEOUT_S, "options": "-c statement_timeout=30s"}
    reader_pids: list[int] = []

    def connect_reader() -> psycopg.Connection:
        conn = psycopg.connect(url, autocommit=True, application_name="lock_chains C", **options)
        reader_pids.append(conn.info.backend_pid)
        return conn

    def migrate() -> None:
        b.execute(MIGRATION)
        result.migration_done = True

    a = psycopg.connect(url, application_name="lock_chains A", **options)
    b = psycopg.connect(url, autocommit=True, application_name="lock_chains B", **options)
    migration = threading.Thread(target=migrate, daemon=True)
    try:
        with Workload() as load, contextlib.closing(a):  # A closes first: a failed run leaves no chain behind
            load.spawn(
                "read", lambda conn, n: conn.execute(READ, (n % CUSTOMERS + 1,)).fetchone(), connect_reader
            )
            load.wait_for(3, "read")
            a.execute(FORGOT_TO_COMMIT)  # and then nothing: idle in transaction, holding its locks
            migration.start()
            pids = {"A": a.info.backend_pid, "B": b.info.backend_pid, "C": reader_pids[-1]}
            show_chain(pg, pids, result)
            cancel_then_terminate(pg, pids, load, migration, result)
        report = load.report("read")
        result.reader_reads, result.reader_blocked = report.operations, report.blocked
        console.say(
            f"reader C: {report.operations} reads, {report.blocked} over 100 ms, slowest {report.slowest_s:.2f} s"
        )
        console.say(
            "Prevention: idle_in_transaction_session_timeout for A, SET lock_timeout before B's ALTER."
        )
    finally:
        for conn in (a, b):
            conn.close()


def run(pg: psycopg.Connection, url: str) -> LockChainResult:
    """`pg` watches (set to autocommit here); sessions A, B and C connect to `url` as the same role."""
    console.title("Lock chains: wait events, pg_blocking_pids, cancel and terminate")
    pg.autocommit = True
    result = LockChainResult()
    set_up(pg)
    lock_chain(pg, url, result)
    return result


def main() -> int:
    require(*REQUIRES)
    with psycopg.connect(postgres_url(), connect_timeout=CONNECT_TIMEOUT_S) as pg:
        result = run(pg, postgres_url())
    return 0 if result.holds else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Feature-flag cut-over: dual writes, flipping back under load, and the go / roll-back checklist

Moving an application to a new store (a new table, schema or database) is safest behind a feature
flag the application reads on every operation: flip it and reads and writes go to the new store;
flip it back and they return, with no deploy. Flipping back loses nothing only if the old store kept
receiving every write meanwhile: the dual write. Here the store the flag names is written first and
the other one in a savepoint of the same transaction, so a shadow write that fails leaves the order
acknowledged (and shows up as drift between the stores). Under a live workload (common/workload.py)
the flag goes to the new store and back, and every acknowledged write is found afterwards. Whether
to flip back is decided by a checklist of measured signals against thresholds: the writes' error
rate since the flip, replication lag (pg_stat_replication: how far the standby is behind the
cut-over's own writes; not applicable without a standby) and row-count drift between the stores.
It says "roll back" for a new store whose CHECK refuses real orders (GBP) and "go" for the fixed
one. The snapshot and down-migration side of rollbacks is rollback_planning.py.

Engine: PostgreSQL (POSTGRES_URL), schema `feature_flag_cutover`.
Run: `make up SERVICES=postgres` (or `make local-up`), then `python migration/feature_flag_cutover.py`.
Look for: 0 lost writes after the flag flips back (good and bad step), the rows the old store has
only thanks to the dual write, and the checklist's verdicts: ROLL BACK, then GO.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from common import console
from common.settings import CONNECT_TIMEOUT_S, postgres_url, require
from common.workload import Workload

REQUIRES = ("postgres",)
SCHEMA = "feature_flag_cutover"
SEED, N_ROWS = 11, 10_000
FIRST_LIVE_ID = 1_000_000  # the live workload's order ids start here
MAX_ERROR_RATE, MAX_LAG_BYTES, MAX_DRIFT = 0.01, 64 * 1024 * 1024, 0
LAG_WAIT_S = 10  # how long a standby gets to replay up to the cut-over's writes before lag is read
GOOD_CHECK, BAD_CHECK = "char_length(currency) = 3", "currency IN ('EUR', 'USD')"

SETUP = """
DROP SCHEMA IF EXISTS {s} CASCADE;
CREATE SCHEMA {s};
CREATE TABLE {s}.orders (
    id bigint PRIMARY KEY, customer text NOT NULL, amount integer NOT NULL, currency text NOT NULL,
    written_via text NOT NULL DEFAULT 'old');
CREATE TABLE {s}.feature_flags (name text PRIMARY KEY, value text NOT NULL);
INSERT INTO {s}.feature_flags VALUES ('orders_store', 'old');
"""
NEW_STORE = """
CREATE TABLE {s}.orders_v2 (LIKE {s}.orders INCLUDING ALL);
ALTER TABLE {s}.orders_v2 ADD CONSTRAINT known_currency CHECK ({check});
INSERT INTO {s}.orders_v2 SELECT * FROM {s}.orders;
"""
FLAG = "SELECT value FROM {s}.feature_flags WHERE name = 'orders_store'"
STORES = {"old": "orders", "new": "orders_v2"}
INSERT = "INSERT INTO {t} (id, customer, amount, currency, written_via) VALUES (%s, %s, %s, %s, %s)"
LAG = """SELECT count(*), max(greatest(pg_wal_lsn_diff(%s::pg_lsn, replay_lsn), 0))::bigint
         FROM pg_stat_replication"""


@dataclass
class Check:
    name: str
    measured: str = field(compare=False)
    threshold: str
    verdict: str  # "ok", "exceeded" or "not applicable"


@dataclass
class CutOver:
    label: str
    checks: list[Check]
    decision: str  # "go" or "roll back"
    lost: int  # acknowledged writes missing from the store the flag points at, after flipping back
    error_rate: float = field(compare=False)
    drift: int = field(compare=False)
    replicas: int = field(compare=False)
    acknowledged: int = field(compare=False)
    via_dual_write: int = field(compare=False)  # rows the old store has only thanks to the dual write
    failed_after_flip_back: int = field(compare=False)


@dataclass
class CutOverResult:
    good: CutOver
    bad: CutOver

    @property
    def holds(self) -> bool:
        good, bad = self.good, self.bad
        return (good.decision, bad.decision) == ("go", "roll back") and good.lost == bad.lost == 0


def q(text: str, **more: sql.Composable) -> sql.Composed:
    return sql.SQL(text).format(s=sql.Identifier(SCHEMA), **more)


def build(conn: psycopg.Connection) -> None:
    """Reset the schema: the old store's orders (EUR and USD only), and the flag pointing at it."""
    conn.execute(q(SETUP))
    rng = random.Random(SEED)
    with conn.cursor().copy(q("COPY {s}.orders (id, customer, amount, currency) FROM STDIN")) as copy:
        for i in range(1, N_ROWS + 1):
            copy.write_row((i, f"customer {i % 700}", rng.randint(1, 5_000), rng.choice(("EUR", "USD"))))
    conn.commit()


def store_sql() -> dict[str, dict[str, sql.Composed]]:
    """The statements of each store, composed once: what the application runs per operation."""
    return {
        flag: {
            "insert": sql.SQL(INSERT).format(t=sql.Identifier(SCHEMA, table)),
            "read": q("SELECT amount FROM {t} WHERE id = %s", t=sql.Identifier(SCHEMA, table)),
        }
        for flag, table in STORES.items()
    }


def writer(worker: int):
    """Reads the flag per operation; writes the store it names, then the other one (the dual write)."""
    statements, flag = store_sql(), q(FLAG)

    def write(conn: psycopg.Connection, n: int) -> int:
        key = FIRST_LIVE_ID + worker * 100_000 + n
        row = (key, f"live {worker}", 10 + n % 90, "GBP" if n % 8 == 7 else ("EUR", "USD")[n % 2])
        with conn.transaction():
            store = conn.execute(flag).fetchone()[0]
            conn.execute(statements[store]["insert"], (*row, store))
            shadow = "new" if store == "old" else "old"
            try:
                with conn.transaction():  # a savepoint: the shadow write may fail without failing the order
                    conn.execute(statements[shadow]["insert"], (*row, store))
            except psycopg.errors.CheckViolation:
                pass  # not in the other store: it shows as drift
        return key

    return write


def reader():
    statements, flag = store_sql(), q(FLAG)

    def read(conn: psycopg.Connection, n: int) -> None:
        store = conn.execute(flag).fetchone()[0]
        conn.execute(statements[store]["read"], (n % N_ROWS + 1,)).fetchone()

    return read


def flip(conn: psycopg.Connection, store: str) -> None:
    conn.execute(q("UPDATE {s}.feature_flags SET value = %s WHERE name = 'orders_store'"), (store,))
    conn.commit()


def lag(conn: psycopg.Connection, wait_s: float = LAG_WAIT_S) -> tuple[int, int | None]:
    """Standbys attached to this server, and the bytes the furthest one is behind the writes so far.

    Against the WAL position at the call, not the newest at each read: on a shared server, WAL that
    others write meanwhile is not this cut-over's lag. A standby gets up to `wait_s` to replay it.
    """
    mark = conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
    deadline = time.monotonic() + wait_s
    while True:
        replicas, behind = conn.execute(LAG, (mark,)).fetchone()
        conn.rollback()
        if not behind or time.monotonic() > deadline:  # caught up, none reporting, or out of time
            return replicas, behind
        time.sleep(0.1)


def drift(conn: psycopg.Connection) -> int:
    """Rows in one store and not the other, counted in one statement: one snapshot of both."""
    old, new = conn.execute(q("SELECT (SELECT count(*) FROM {s}.orders), (SELECT count(*) FROM {s}.orders_v2)")).fetchone()  # fmt: skip
    conn.rollback()
    return abs(old - new)


def checklist(error_rate: float, replicas: int, behind: int | None, rows_apart: int) -> list[Check]:
    """Each measured signal against its threshold; a signal that cannot be measured is not applicable."""

    def verdict(value: float, limit: float) -> str:
        return "ok" if value <= limit else "exceeded"

    limit = f"<= {MAX_LAG_BYTES // 2**20} MB behind"
    if replicas == 0 or behind is None:  # none attached, or one that has not reported a position yet
        shown = "no replica attached" if replicas == 0 else "replica attached, replay position not reported"
        lag = Check("replication lag", shown, limit, "not applicable")
    else:
        lag = Check("replication lag", f"{behind:,} bytes", limit, verdict(behind, MAX_LAG_BYTES))
    return [
        Check("write error rate", f"{error_rate:.1%}", f"<= {MAX_ERROR_RATE:.0%}",
              verdict(error_rate, MAX_ERROR_RATE)),
        lag,
        Check("row drift, old/new", f"{rows_apart} rows", f"<= {MAX_DRIFT} rows", verdict(rows_apart, MAX_DRIFT)),
    ]  # fmt: skip


def cut_over(conn: psycopg.Connection, url: str, label: str, check: str) -> CutOver:
    """Flip reads and writes to the new store under load, decide from the signals, flip back."""
    build(conn)
    conn.execute(q(NEW_STORE, check=sql.SQL(check)))
    conn.commit()
    connect = lambda: psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)  # noqa: E731
    with Workload() as load:
        for worker in range(2):
            load.spawn("write", writer(worker), connect)
            load.spawn("read", reader(), connect)
        load.wait_for(40, "write")
        flip(conn, "new")
        flipped = load.now_s()
        load.wait_for(len(load.succeeded("write")) + 80, "write")
        writes = load.report("write", since_s=flipped)  # the new code path's failures, not diluted by reads
        error_rate, (replicas, behind), rows_apart = writes.failed / writes.operations, lag(conn), drift(conn)
        flip(conn, "old")  # a rehearsal after the good step, the rollback itself after the bad one
        back = load.now_s()
        load.wait_for(len(load.succeeded("write")) + 40, "write")
    store = conn.execute(q(FLAG)).fetchone()[0]  # where the application reads now
    found = [key for (key,) in conn.execute(q("SELECT id FROM {t}", t=sql.Identifier(SCHEMA, STORES[store])))]
    via_new = conn.execute(q("SELECT count(*) FROM {s}.orders WHERE written_via = 'new'")).fetchone()[0]
    conn.rollback()
    checks = checklist(error_rate, replicas, behind, rows_apart)
    return CutOver(
        label, checks, "roll back" if any(c.verdict == "exceeded" for c in checks) else "go",
        len(load.lost(found)), error_rate, rows_apart, replicas, len(load.acknowledged()), via_new,
        load.report(since_s=back).failed,
    )  # fmt: skip


def show_cut_over(result: CutOver) -> None:
    console.table(
        ["check", "measured", "threshold", "verdict"],
        [(c.name, c.measured, c.threshold, c.verdict) for c in result.checks],
    )
    console.say(f"{result.label}: the checklist says {result.decision.upper()}.")
    console.say(
        f"After flipping back: {result.acknowledged:,} acknowledged writes, {result.lost} lost, "
        f"{result.failed_after_flip_back} failed since; {result.via_dual_write:,} reached the old store "
        "only through the dual write."
    )


def run(conn: psycopg.Connection, url: str) -> CutOverResult:
    """`conn` owns the lesson's schema; `url` is the server's address for the workload's connections."""
    console.title(
        "Feature-flag cut-over: dual writes, flipping back under load, and the go / roll-back checklist"
    )
    console.step("Cut over to a new store behind a feature flag, with dual writes, and flip back")
    console.say(
        "Both stores are in one database here, so one transaction writes both; across two, use an outbox."
    )
    good = cut_over(conn, url, "The new store's CHECK fits the data", GOOD_CHECK)
    show_cut_over(good)

    console.step("The rollback checklist on a bad step: the new code path fails on a constraint")
    bad = cut_over(conn, url, "The new store's CHECK forgets GBP", BAD_CHECK)
    show_cut_over(bad)
    return CutOverResult(good, bad)


def main() -> int:
    require(*REQUIRES)
    url = postgres_url()
    with psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S) as conn:
        result = run(conn, url)
    return 0 if result.holds else 1


if __name__ == "__main__":
    raise SystemExit(main())

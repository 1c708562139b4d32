"""Zero-downtime column rename: expand/contract under live traffic, and the lock queue

Renaming `customers.mail` to `email` while an application writes and reads the table. A shared
workload recorder (one writer, two readers, each on its own connection) counts every operation
that failed or took over 100 ms, and a watcher samples pg_stat_activity for statements waiting on
a lock. First the naive way: RENAME COLUMN breaks the running application at once; a plain
CREATE INDEX blocks every writer while it builds; ADD COLUMN with a volatile default rewrites the
table under ACCESS EXCLUSIVE, blocking everyone. Then the lock queue: an instant ALTER that waits
behind one long transaction makes every later query, plain reads too, wait behind it;
`lock_timeout` plus retries makes it give up quickly instead. Last, expand/contract: add the new
column (nullable, no default) with a trigger that dual-writes it, backfill in throttled batches,
CREATE INDEX CONCURRENTLY, a CHECK constraint NOT VALID then VALIDATE (so SET NOT NULL skips its
scan), switch the application to the new column, and drop the old one under lock_timeout.
The table is not scaled down by EXAMPLES_SCALE: the naive steps need a rewrite that takes time.

Engine: PostgreSQL 15 or later (POSTGRES_URL), schema `zero_downtime`. The MySQL/MariaDB side
(ALGORITHM=INSTANT/INPLACE/COPY, metadata locks, pt-online-schema-change) is
migration/mysql_online_ddl.py.
Run: `make up SERVICES=postgres` (or `make local-up`), then `python migration/zero_downtime_expand_contract.py`.
Look for: failed and lock-blocked operations on the naive rows, readers queued behind the ALTER
without lock_timeout and none with it, and zeros on every expand/contract row.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import psycopg
from psycopg import sql

from common import console
from common.settings import CONNECT_TIMEOUT_S, postgres_url, require
from common.workload import BLOCKED_AFTER_S, Workload

REQUIRES = ("postgres",)
SCHEMA = "zero_downtime"
N_ROWS = 300_000
READERS = ("read-1", "read-2")
BATCH, THROTTLE_S = 20_000, 0.01  # backfill batch (rows) and the pause after each
# How long a migration statement may wait for its lock before giving up: a reader queued behind it
# waits about as long, so this stays well under the 100 ms that counts as blocked, even on a busy
# machine where the give-up itself comes late (50 ms let one reader pass 100 ms on a loaded CI run).
LOCK_TIMEOUT = "20ms"
HOLD_S = 0.6  # how long the "report" transaction keeps its lock
DEPLOY_LAG_S = 0.3  # time between the rename and the new application's deploy
PAUSE_S = 0.02  # each worker's pause between operations: about 50 a second each
SEED = 11

CREATE = """
DROP SCHEMA IF EXISTS {s} CASCADE;
CREATE SCHEMA {s};
CREATE TABLE {t} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, mail text NOT NULL,
                  name text NOT NULL, created_at timestamptz NOT NULL DEFAULT now(), note text)
    WITH (autovacuum_enabled = off);  -- off: no background VACUUM or ANALYZE joins a lock queue
"""
LOAD = """
INSERT INTO {t} (mail, name, created_at, note)
SELECT md5(i::text) || '@example.com', 'Customer ' || i, '2025-01-01'::timestamptz - i * interval '1 minute',
       md5(i::text) FROM generate_series(1, %s) AS i
"""
# Expand: the new column, and a trigger that keeps it equal to the old one whichever one is written.
EXPAND = [
    "ALTER TABLE {t} ADD COLUMN email text",
    """CREATE FUNCTION {f}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        NEW.email := coalesce(NEW.email, NEW.mail);  -- the old application writes mail
        NEW.mail := coalesce(NEW.mail, NEW.email);   -- the new one writes email
    ELSE
        NEW.email := NEW.mail;                       -- an UPDATE of mail by the old application
    END IF;
    RETURN NEW;
END $$""",
    "CREATE TRIGGER sync_email BEFORE INSERT OR UPDATE OF mail ON {t} FOR EACH ROW EXECUTE FUNCTION {f}()",
]
UNDO_EXPAND = ["DROP TRIGGER sync_email ON {t}", "DROP FUNCTION {f}()", "ALTER TABLE {t} DROP COLUMN email"]
NAIVE = {  # step -> (statement, what it locks)
    "rename, then deploy": ("ALTER TABLE {t} RENAME COLUMN mail TO email", "instant, but old queries fail"),
    "volatile DEFAULT column": (
        "ALTER TABLE {t} ADD COLUMN public_id uuid NOT NULL DEFAULT gen_random_uuid()",
        "ACCESS EXCLUSIVE for a rewrite: everything waits",
    ),
    "CREATE INDEX": ("CREATE INDEX customers_email_idx ON {t} (email)", "SHARE: writes wait for the build"),
}
# Back to the start, with no one watching: each of these is instant (a dropped column only disappears).
UNDO_NAIVE = [
    "DROP INDEX {s}.customers_email_idx",
    "ALTER TABLE {t} DROP COLUMN public_id",
    "ALTER TABLE {t} RENAME COLUMN email TO mail",
]
BACKFILL = "UPDATE {t} SET email = mail WHERE id > %s AND id <= %s AND email IS NULL"
NOT_NULL = [
    ["ALTER TABLE {t} ADD CONSTRAINT email_not_null CHECK (email IS NOT NULL) NOT VALID"],
    ["ALTER TABLE {t} VALIDATE CONSTRAINT email_not_null"],  # SHARE UPDATE EXCLUSIVE: DML goes on
    ["ALTER TABLE {t} ALTER COLUMN email SET NOT NULL", "ALTER TABLE {t} DROP CONSTRAINT email_not_null"],
]
CONTRACT = ["DROP TRIGGER sync_email ON {t}", "ALTER TABLE {t} DROP COLUMN mail", "DROP FUNCTION {f}()"]
WAITING = """
SELECT application_name, query_start, extract(epoch FROM statement_timestamp())::float8
FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND application_name = ANY(%s)
"""
COLUMNS = """
SELECT column_name, is_nullable FROM information_schema.columns
WHERE table_schema = %s AND table_name = 'customers' ORDER BY ordinal_position
"""
EMAIL_INDEX_VALID = """
SELECT bool_and(i.indisvalid) FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid
WHERE i.indrelid = %s::regclass AND a.attnum = ANY(i.indkey) AND a.attname = 'email'
"""


@dataclass
class Step:
    """What the application saw during one step."""

    name: str
    way: str  # naive or safe
    locks: str
    operations: int
    failed: int
    blocked: int  # the recorder's: took over 100 ms
    # Statements the server showed waiting on a lock for over 100 ms, from the first to the last
    # sample that saw each waiting (every 20 ms): this can undercount a wait, never overcount one.
    # It is the safe path's fact (0); the naive path's is `queued` with `blocked`.
    lock_blocked: int
    queued: int  # most workload sessions seen waiting on a lock at the same time
    slowest_s: float
    errors: dict[str, int] = field(default_factory=dict)
    acknowledged: list[int] = field(default_factory=list, repr=False)


@dataclass
class Result:
    steps: list[Step]
    lost: dict[str, int]  # way -> acknowledged writes missing at the end
    lock_timeouts: int  # the expand's give-ups while the long transaction held its lock
    backfilled: int
    unmatched: int  # rows whose email differs from mail after the backfill
    columns: dict[str, str]  # final column -> is_nullable
    email_index_valid: bool

    def way(self, way: str) -> list[Step]:
        return [s for s in self.steps if s.way == way]

    def step(self, name: str) -> Step:
        return next(s for s in self.steps if s.name == name)

    @property
    def holds(self) -> bool:
        safe = self.way("safe")
        return (
            all(s.failed > 0 or (s.queued > 0 and s.blocked > 0) for s in self.way("naive"))
            and all(s.failed == 0 and s.lock_blocked == 0 for s in safe)
            and self.lost == {"naive": 0, "safe": 0}
            and self.unmatched == 0
            and self.columns.get("email") == "NO"
            and "mail" not in self.columns
            and self.email_index_valid
        )


def q(text: str) -> sql.Composed:
    return sql.SQL(text).format(
        s=sql.Identifier(SCHEMA),
        t=sql.Identifier(SCHEMA, "customers"),
        f=sql.Identifier(SCHEMA, "sync_email"),
    )


def connect(url: str, name: str, autocommit: bool = True) -> psycopg.Connection:
    return psycopg.connect(
        url, autocommit=autocommit, application_name=f"{SCHEMA} {name}", connect_timeout=CONNECT_TIMEOUT_S
    )


def build(admin: psycopg.Connection, app: dict) -> None:
    admin.execute(q(CREATE))
    admin.execute(q(LOAD), (N_ROWS,))
    admin.execute(q("ANALYZE {t}"))  # what autovacuum would have done for a freshly loaded table
    app["column"] = "mail"  # the application as deployed today


# --- the application, and what it saw -----------------------------------------------------------


def operation(app: dict, worker: str, seed: int):
    """What `worker` does, on the column the application's deployed version uses (app["column"])."""
    rng = random.Random(seed)

    def run_once(conn: psycopg.Connection, n: int) -> int | None:
        table, column = sql.Identifier(SCHEMA, "customers"), sql.Identifier(app["column"])
        if worker == "write":
            insert = sql.SQL("INSERT INTO {} ({}, name) VALUES (%s, %s) RETURNING id").format(table, column)
            return conn.execute(insert, (f"live{n}@example.com", f"live {n}")).fetchone()[0]
        select = sql.SQL("SELECT {} FROM {} WHERE id = %s").format(column, table)
        conn.execute(select, (rng.randint(1, N_ROWS),)).fetchone()
        return None

    return run_once


class LockWatch(threading.Thread):
    """Samples pg_stat_activity for workload statements waiting on a lock.

    A statement seen waiting in consecutive samples spanning over 100 ms (server time) waited on a
    lock that long; the span is a lower bound. Not the statement's age: one slowed by a busy machine
    before it queued briefly would count. `most_at_once` is the most sessions seen waiting at once.
    """

    def __init__(self, url: str, workers: list[str]) -> None:
        super().__init__(daemon=True)
        self.conn = connect(url, "watch")
        self.names = [f"{SCHEMA} {worker}" for worker in workers]
        self.spans: dict[tuple, tuple[float, float]] = {}  # (session, statement start) -> first, last seen
        self.long_waits = self.most_at_once = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            rows = self.conn.execute(WAITING, (self.names,)).fetchall()
            self.most_at_once = max(self.most_at_once, len(rows))
            waiting = {(name, started): seen_at for name, started, seen_at in rows}
            for statement in set(self.spans) - set(waiting):
                self._close(statement)
            for statement, seen_at in waiting.items():
                self.spans[statement] = (self.spans.get(statement, (seen_at, seen_at))[0], seen_at)
            time.sleep(0.02)

    def _close(self, statement: tuple) -> None:
        first, last = self.spans.pop(statement)
        self.long_waits += last - first > BLOCKED_AFTER_S

    def stop(self) -> tuple[int, int]:
        """(waits seen lasting over the threshold, most sessions waiting at once)."""
        self.done.set()
        self.join()
        self.conn.close()
        for statement in list(self.spans):
            self._close(statement)
        return self.long_waits, self.most_at_once


@contextmanager
def live(url: str, app: dict, steps: list[Step], name: str, way: str, locks: str) -> Iterator[None]:
    """Run the application (one writer, two readers) and the lock watcher around one step."""
    watch = LockWatch(url, ["write", *READERS])
    watch.start()
    with Workload(pause_s=PAUSE_S) as load:
        for i, worker in enumerate(["write", *READERS]):
            load.spawn(worker, operation(app, worker, SEED + i), connect=lambda w=worker: connect(url, w))
        load.wait_for(3 * (1 + len(READERS)))  # connected and warm: connecting is not what is measured
        began = load.now_s()
        yield
        time.sleep(0.05)  # the queued operations finish; the load is seen to go on
    # operations, failed, blocked, slowest_s, errors; a statement sent just before the DDL counts too
    seen = asdict(load.report(since_s=began, in_flight=True))
    seen["lock_blocked"], seen["queued"] = watch.stop()
    steps.append(Step(name, way, locks, **seen, acknowledged=load.acknowledged()))


def lost(admin: psycopg.Connection, steps: list[Step]) -> int:
    """Acknowledged writes of these steps that are not in the table now."""
    keys = [key for step in steps for key in step.acknowledged]
    found = admin.execute(q("SELECT count(*) FROM {t} WHERE id = ANY(%s)"), (keys,)).fetchone()[0]
    return len(keys) - found


# --- the migration -------------------------------------------------------------------------------


def apply(admin: psycopg.Connection, statements: list[str], lock_timeout: str | None = LOCK_TIMEOUT) -> int:
    """Run the statements as one transaction; under a lock timeout, retry until it goes through.

    One round trip: a multi-statement query is one implicit transaction, so its locks are held only
    while the server runs it, however slow this client is. Returns how many times it gave up.
    """
    parts = [q(statement) for statement in statements]
    if lock_timeout:
        parts.insert(0, sql.SQL("SET LOCAL lock_timeout = {}").format(lock_timeout))
    gave_up = 0
    while True:
        try:
            admin.execute(sql.SQL("; ").join(parts))
            return gave_up
        except psycopg.errors.LockNotAvailable:  # all of it rolled back; the queue behind it moves on
            gave_up += 1
            if gave_up > 100:
                raise
            time.sleep(min(0.02 * gave_up, 0.2))  # back off, and let the queued queries through


@contextmanager
def long_transaction(url: str, hold_s: float = HOLD_S) -> Iterator[None]:
    """A report that reads the table in a transaction left open: it holds ACCESS SHARE for hold_s."""
    report = connect(url, "report", autocommit=False)
    report.execute(q("SELECT count(*) FROM {t} WHERE id <= 1000")).fetchone()
    ends = threading.Timer(hold_s, report.rollback)
    ends.start()
    try:
        yield
    finally:
        ends.join()
        report.close()


def naive(admin: psycopg.Connection, url: str, app: dict, steps: list[Step]) -> None:
    for name, (statement, locks) in NAIVE.items():
        with live(url, app, steps, name, "naive", locks):
            admin.execute(q(statement))
            if "RENAME" in statement:
                time.sleep(DEPLOY_LAG_S)  # the old code runs until the new code is deployed
                app["column"] = "email"
    apply(admin, UNDO_NAIVE)
    app["column"] = "mail"


def lock_queue(admin: psycopg.Connection, url: str, app: dict, steps: list[Step]) -> int:
    """The expand's DDL behind a long transaction: without lock_timeout, then with it (and kept)."""
    name, locks = "ALTER, no timeout", "waits, and everyone queues behind it"
    with live(url, app, steps, name, "naive", locks), long_transaction(url):
        apply(admin, EXPAND, lock_timeout=None)
    apply(admin, UNDO_EXPAND)
    name, locks = "ALTER, timeout+retry", f"gives up after {LOCK_TIMEOUT}, then retries"
    with live(url, app, steps, name, "safe", locks), long_transaction(url):
        return apply(admin, EXPAND)


def backfill(admin: psycopg.Connection) -> int:
    """Copy mail into email in batches by id, pausing between them; newer rows have the trigger."""
    top = admin.execute(q("SELECT max(id) FROM {t}")).fetchone()[0]
    done = 0
    with console.progress("backfill email", total=top) as advance:
        for low in range(0, top, BATCH):
            done += admin.execute(q(BACKFILL), (low, low + BATCH)).rowcount
            advance(min(BATCH, top - low))
            time.sleep(THROTTLE_S)
    return done


def expand_contract(admin: psycopg.Connection, url: str, app: dict, steps: list[Step]) -> tuple[int, int]:
    with live(url, app, steps, "backfill in batches", "safe", "row locks, one batch at a time"):
        backfilled = backfill(admin)
    unmatched = admin.execute(q("SELECT count(*) FROM {t} WHERE email IS DISTINCT FROM mail")).fetchone()[0]
    with live(url, app, steps, "INDEX CONCURRENTLY", "safe", "SHARE UPDATE EXCLUSIVE: DML goes on"):
        admin.execute(q("CREATE INDEX CONCURRENTLY customers_email ON {t} (email)"))
    with live(url, app, steps, "NOT VALID, VALIDATE", "safe", "brief; the scan lets DML go on"):
        for statements in NOT_NULL:
            apply(admin, statements)
    with live(url, app, steps, "switch app (deploy)", "safe", "none"):
        app["column"] = "email"
    with live(url, app, steps, "DROP COLUMN mail", "safe", f"brief, under lock_timeout {LOCK_TIMEOUT}"):
        apply(admin, CONTRACT)
    return backfilled, unmatched


# --- the lesson -----------------------------------------------------------------------------------


def show(steps: list[Step], lost_by_way: dict[str, int]) -> None:
    rows: list[tuple] = []
    for way in ("naive", "safe"):
        chosen = [s for s in steps if s.way == way]
        for s in chosen:
            ms = round(s.slowest_s * 1000)
            rows.append((way, s.name, s.operations, s.failed, s.blocked, s.lock_blocked, ms))
        figures = [
            sum(getattr(s, f) for s in chosen) for f in ("operations", "failed", "blocked", "lock_blocked")
        ]
        rows.append((way, "total", *figures, round(max(s.slowest_s for s in chosen) * 1000)))
        rows.append((way, "lost rows, read back", lost_by_way[way], "", "", "", ""))
    console.table(["way", "step", "ops", "failed", ">100ms", "lock>100ms", "max ms"], rows)
    console.say(
        "'>100 ms' is the recorder's blocked; "
        "'lock >100 ms': the server showed it waiting on a lock that long."
    )


def run(admin: psycopg.Connection, url: str) -> Result:
    """`admin` is an autocommit connection; `url` is the address the application's threads connect to."""
    console.title("Zero-downtime column rename: expand/contract under live traffic")
    steps: list[Step] = []
    app: dict = {}

    console.step("A customers table, and an application that writes and reads mail")
    build(admin, app)
    console.say(f"{N_ROWS:,} rows; one writer and {len(READERS)} readers, each on its own connection.")

    console.step("The naive way: rename, add a column with a volatile default, build an index")
    naive(admin, url, app, steps)
    for s in steps:
        errors = ", ".join(f"{k} x{v}" for k, v in s.errors.items()) or "no errors"
        console.say(f"{s.name} ({s.locks}): {errors}, slowest {s.slowest_s * 1000:.0f} ms")
    console.say("Then each naive step is undone (instantly), so the safe way starts from the same table.")

    console.step("The lock queue: the expand's instant ALTER behind a long transaction")
    timeouts = lock_queue(admin, url, app, steps)
    before, after = steps[-2:]
    console.say(
        f"No lock_timeout: {before.queued} sessions queued behind the ALTER at once, plain reads too; "
        f"slowest {before.slowest_s * 1000:.0f} ms."
    )
    console.say(
        f"lock_timeout {LOCK_TIMEOUT}: it gave up {timeouts} times while the transaction lasted, then "
        f"went through; slowest {after.slowest_s * 1000:.0f} ms."
    )

    console.step("Expand/contract: backfill, index concurrently, validate, switch, contract")
    backfilled, unmatched = expand_contract(admin, url, app, steps)
    lost_by_way = {way: lost(admin, [s for s in steps if s.way == way]) for way in ("naive", "safe")}
    columns = dict(admin.execute(COLUMNS, (SCHEMA,)).fetchall())
    index_valid = bool(admin.execute(EMAIL_INDEX_VALID, (f"{SCHEMA}.customers",)).fetchone()[0])
    console.say(
        f"{backfilled:,} rows backfilled, {unmatched} differ from mail; columns now: {', '.join(columns)}."
    )

    console.step("What the application saw, both ways")
    show(steps, lost_by_way)
    return Result(steps, lost_by_way, timeouts, backfilled, unmatched, columns, index_valid)


def main() -> int:
    require(*REQUIRES)
    url = postgres_url()
    with psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S) as admin:
        result = run(admin, url)
    return 0 if result.holds else 1


if __name__ == "__main__":
    raise SystemExit(main())

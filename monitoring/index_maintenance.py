"""Index maintenance: unused and duplicate indexes, bloat, VACUUM against VACUUM FULL, fillfactor and HOT

Every index costs every write, so the first task is finding those that earn nothing:
`pg_stat_user_indexes.idx_scan` still 0 after the application's queries, and indexes another one
already covers (the same key columns, or a leading prefix of its columns), found by a query over
`pg_index` rather than by reading DDL. Then bloat: updates and deletes leave dead row versions,
measured with pgstattuple (dead tuples, free space, B-tree leaf density). Plain VACUUM makes the
space reusable without giving it back and without blocking anyone; REINDEX INDEX CONCURRENTLY
rebuilds one index without blocking; VACUUM FULL rewrites the table and gives the space back under
an ACCESS EXCLUSIVE lock. A reader recorded by the shared workload shows what that lock means while
a report is reading the table: VACUUM FULL queues behind the report, and every read queues behind
VACUUM FULL, which a watcher sees in pg_stat_activity as the reader's `wait_event_type = 'Lock'`. Then HOT updates: with room left on the page (fillfactor 70), an update of a column no
index covers stays on its page and writes no index entry. Last, MySQL's OPTIMIZE TABLE, which
InnoDB runs as a table rebuild.

Engine: PostgreSQL (POSTGRES_URL, a superuser such as the compose `examples`), schema
`index_maintenance` (which gets the pgstattuple extension when no schema has it yet, and drops it
with the schema); MySQL (MYSQL_URL), database `index_maintenance`, MySQL 8.4 or MariaDB 10.11.
Run: `make up SERVICES="postgres mysql"` (or `make local-up`), then `python monitoring/index_maintenance.py`.
Look for: the unused indexes and the "is covered by" pairs, 0 dead tuples after VACUUM in a file as
big as before, the reader waiting on a lock during VACUUM FULL and never during VACUUM, the HOT ratio at
fillfactor 70 against 100, and InnoDB's note "doing recreate + analyze instead".
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from dataclasses import dataclass, field

import psycopg
import pymysql
from psycopg import sql

from common import console
from common.settings import CONNECT_TIMEOUT_S, mysql_params, postgres_url, require
from common.timing import timer
from common.workload import Workload

REQUIRES = ("postgres", "mysql")
SCHEMA = DATABASE = "index_maintenance"
SEED = 41
N_ORDERS, N_QUERIES = 30_000, 200  # orders, and application queries of each kind
N_EVENTS = 40_000  # the table bloated, vacuumed and rewritten
N_HOT, HOT_SHARE = 20_000, 0.3  # rows per fillfactor table, and the share one batch job updates
N_MYSQL = 20_000
REPORT_HOLD_S = 0.5  # how long a report keeps its lock once the maintenance statement queues behind it
READER = "index_maintenance_reader"  # the reader's application_name, which the watcher looks for
MAINTAINER = "index_maintenance_maintainer"  # the maintenance statement's session
OLDER_SNAPSHOTS_WAIT_S = 60.0  # at most: a neighbour's statement can run long on a busy server; usually 0
NO_AUTOVACUUM = "autovacuum_enabled = false, toast.autovacuum_enabled = false"  # the lesson vacuums

ORDERS = """
CREATE TABLE {s}.orders (id integer PRIMARY KEY, customer_id integer NOT NULL, status text NOT NULL,
    sku text NOT NULL, created_at timestamptz NOT NULL) WITH ({no_autovacuum});
INSERT INTO {s}.orders SELECT i, i % 2000, (ARRAY['new', 'paid', 'shipped'])[i % 3 + 1], 'sku-' || i % 500,
    timestamptz '2025-01-01' + i * interval '1 minute' FROM generate_series(1, {n}) AS i;
CREATE INDEX orders_customer_created_idx ON {s}.orders (customer_id, created_at);
CREATE INDEX orders_customer_idx ON {s}.orders (customer_id);
CREATE INDEX orders_status_idx ON {s}.orders (status);
CREATE INDEX ON {s}.orders (sku);
CREATE INDEX ON {s}.orders (sku);
ANALYZE {s}.orders;
"""
QUERIES = (  # what the application runs; nothing filters on status or sku
    "SELECT status FROM {s}.orders WHERE id = %s",
    "SELECT id FROM {s}.orders WHERE customer_id = %s ORDER BY created_at DESC LIMIT 5",
)
INDEX_USE = """
SELECT s.indexrelname, s.idx_scan, pg_relation_size(s.indexrelid),
       i.indisunique OR EXISTS (SELECT 1 FROM pg_constraint AS c WHERE c.conindid = s.indexrelid)
FROM pg_stat_user_indexes AS s JOIN pg_index AS i USING (indexrelid)
WHERE s.schemaname = %s ORDER BY s.indexrelname
"""
# Index a is covered by index b of the same table and access method when a's key columns (with
# their operator classes, collations and sort options) are b's, or a leading prefix of b's
# (B-tree only), and a is not unique, partial or on expressions. Of two twins, the newer is named.
OVERLAPS = """
WITH keys AS (
    SELECT i.indexrelid, i.indrelid, c.relname, c.relam, i.indisunique,
           i.indexprs IS NULL AND i.indpred IS NULL AS plain,
           array_agg(k.attnum || ' ' || k.opclass || ' ' || k.coll || ' ' || k.opt ORDER BY k.n) AS cols
    FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indexrelid
    CROSS JOIN LATERAL unnest(i.indkey::int2[], i.indclass::oid[], i.indcollation::oid[], i.indoption::int2[])
        WITH ORDINALITY AS k(attnum, opclass, coll, opt, n)
    WHERE c.relnamespace = %s::regnamespace AND k.n <= i.indnkeyatts
    GROUP BY i.indexrelid, i.indrelid, c.relname, c.relam, i.indisunique, plain
)
SELECT a.relname, b.relname, CASE WHEN a.cols = b.cols THEN 'same columns' ELSE 'leading prefix' END
FROM keys AS a JOIN keys AS b ON b.indrelid = a.indrelid AND b.indexrelid <> a.indexrelid AND b.relam = a.relam
WHERE a.plain AND b.plain AND NOT a.indisunique AND b.cols[1:cardinality(a.cols)] = a.cols
  AND (a.cols <> b.cols AND a.relam = (SELECT oid FROM pg_am WHERE amname = 'btree')
       OR a.cols = b.cols AND (b.indisunique OR a.indexrelid > b.indexrelid))
ORDER BY 1, 2
"""
EVENTS = """
CREATE TABLE {s}.events (id integer PRIMARY KEY, account_id integer NOT NULL, payload text NOT NULL)
    WITH ({no_autovacuum});
INSERT INTO {s}.events SELECT i, i % 1000, repeat(md5(i::text), 6) FROM generate_series(1, {n}) AS i;
CREATE INDEX events_account_idx ON {s}.events (account_id);
"""
CHURN = (  # two passes that change an indexed column of every row (no HOT possible), then half go
    "UPDATE {s}.events SET account_id = account_id + 1",
    "UPDATE {s}.events SET account_id = account_id + 1",
    "DELETE FROM {s}.events WHERE id % 2 = 0",
)
MAINTENANCE = (  # (stage, statement, whether a report holds the table meanwhile)
    ("VACUUM", "VACUUM {s}.events", True),
    ("REINDEX CONCURRENTLY", "REINDEX INDEX CONCURRENTLY {s}.events_account_idx", False),
    ("VACUUM FULL", "VACUUM FULL {s}.events", True),
)
# Is the session with this application_name waiting for a lock right now? Sampled for the reader by
# a watcher beside it: a slow read on a busy machine is "blocked" (over 100 ms) without waiting for
# anyone; this says that it was queued.
WAITING_FOR_A_LOCK = """
SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND wait_event_type = 'Lock'
"""
# Sessions of this database whose snapshot or transaction is older than a given transaction id, and
# prepared transactions (two-phase commit) of this database, which hold VACUUM back the same way.
OLDER_SNAPSHOTS = """
SELECT (SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
          AND backend_type <> 'autovacuum worker'  -- another VACUUM's snapshot does not hold this one back
          AND (age(backend_xmin) >= age(%(xid)s::xid) OR age(backend_xid) >= age(%(xid)s::xid)))
     + (SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database()
          AND age(transaction) >= age(%(xid)s::xid))
"""
HOT_TABLE = """
CREATE TABLE {t} (id integer PRIMARY KEY, account_id integer NOT NULL, counter integer NOT NULL,
    note text NOT NULL) WITH (fillfactor = {ff}, {no_autovacuum});
INSERT INTO {t} SELECT i, i % 1000, 0, md5(i::text) FROM generate_series(1, {n}) AS i;
CREATE INDEX ON {t} (account_id);
"""
MYSQL_TABLE = """CREATE TABLE events (id INT NOT NULL PRIMARY KEY, account_id INT NOT NULL,
    payload VARCHAR(255) NOT NULL, KEY ix_account (account_id)) ENGINE=InnoDB"""
MYSQL_SIZES = """SELECT data_length, index_length, data_free FROM information_schema.tables
    WHERE table_schema = %s AND table_name = 'events'"""


@dataclass
class IndexUse:
    name: str
    scans: int
    size: int = field(compare=False)
    enforces_constraint: bool

    @property
    def unused(self) -> bool:
        return self.scans == 0 and not self.enforces_constraint


@dataclass
class Stage:
    """The events table after a step (pgstattuple, pgstatindex), and what a reader saw meanwhile."""

    table_bytes: int
    index_bytes: int  # events_account_idx
    dead_tuples: int
    free_percent: float
    leaf_density: float
    seconds: float = 0.0
    reads: int = 0
    reads_blocked: int = 0  # over 100 ms: queued behind a lock, or only slow
    reader_waiting_seen: int = 0  # watcher samples that found the reader waiting for a lock


@dataclass
class Hot:
    fillfactor: int
    updates: int  # n_tup_upd
    hot_updates: int  # n_tup_hot_upd
    bytes_before: int = field(compare=False)
    bytes_after: int = field(compare=False)

    @property
    def ratio(self) -> float:
        return self.hot_updates / self.updates if self.updates else 0.0


@dataclass
class MysqlRebuild:
    server: str
    is_mariadb: bool
    rows_deleted: int
    note: str  # the 'note' row of OPTIMIZE TABLE's answer
    sizes: dict[str, tuple[int, int, int]] = field(compare=False)  # (data_length, index_length, data_free)


@dataclass
class IndexMaintenanceResult:
    indexes: dict[str, IndexUse]
    overlaps: list[tuple[str, str, str]]  # (covered index, covering index, how)
    stages: dict[str, Stage] = field(default_factory=dict, compare=False)  # sizes, timings: not repeatable
    hot: dict[int, Hot] = field(default_factory=dict)
    older_snapshots: int = field(default=0, compare=False)  # sessions VACUUM had to wait for
    mysql: MysqlRebuild | None = None

    @property
    def unused(self) -> list[str]:
        return [name for name, index in self.indexes.items() if index.unused]

    @property
    def holds(self) -> bool:
        s = self.stages
        return (
            bool(self.unused and self.overlaps)
            and s["VACUUM"].dead_tuples == 0
            and s["REINDEX CONCURRENTLY"].index_bytes < s["VACUUM"].index_bytes
            and s["VACUUM FULL"].table_bytes < s["VACUUM"].table_bytes
            and s["VACUUM FULL"].reader_waiting_seen > 0
            and s["VACUUM"].reader_waiting_seen == 0
            and self.hot[70].ratio > self.hot[100].ratio
            and self.mysql is not None
            and self.mysql.sizes["optimized"][0] < self.mysql.sizes["deleted"][0]
        )


def q(text: str, table: str = "-", **numbers: int) -> sql.Composed:
    """SQL text with {s} (the schema), {t} (`table` in it) and the lesson's numbers filled in."""
    literals = {name: sql.Literal(value) for name, value in numbers.items()}
    names = {"s": sql.Identifier(SCHEMA), "t": sql.Identifier(SCHEMA, table)}
    return sql.SQL(text).format(no_autovacuum=sql.SQL(NO_AUTOVACUUM), **names, **literals)


def flush_statistics(conn: psycopg.Connection) -> None:
    """This session's counters reach the shared statistics when its next transaction ends (15+)."""
    conn.execute("SELECT pg_stat_force_next_flush()")


def pgstattuple_schema(conn: psycopg.Connection) -> str:
    """Where pgstattuple lives: installed in the lesson's schema when no schema has it yet."""
    create = sql.SQL("CREATE EXTENSION IF NOT EXISTS pgstattuple WITH SCHEMA {}").format(
        sql.Identifier(SCHEMA)
    )
    with contextlib.suppress(psycopg.errors.UniqueViolation):  # another session made it just now
        conn.execute(create)
    found = "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pgstattuple'"
    return conn.execute(found).fetchone()[0]


def find_unused_and_covered(conn: psycopg.Connection) -> IndexMaintenanceResult:
    conn.execute(q(ORDERS, n=N_ORDERS))
    rng = random.Random(SEED)
    for _ in range(N_QUERIES):  # on this session, so that the flush below publishes the counts
        conn.execute(q(QUERIES[0]), (rng.randint(1, N_ORDERS),)).fetchall()
        conn.execute(q(QUERIES[1]), (rng.randrange(2000),)).fetchall()
    flush_statistics(conn)
    indexes = {row[0]: IndexUse(*row) for row in conn.execute(INDEX_USE, (SCHEMA,))}
    overlaps = [tuple(row) for row in conn.execute(OVERLAPS, (SCHEMA,))]
    return IndexMaintenanceResult(indexes, overlaps)


def measure(conn: psycopg.Connection) -> Stage:
    stats = pgstattuple_schema(conn)  # looked up each time: another lesson may have dropped its copy
    table = sql.SQL("SELECT table_len, dead_tuple_count, free_percent FROM {}(%s::regclass)")
    index = sql.SQL("SELECT index_size, avg_leaf_density FROM {}(%s::regclass)")
    size, dead, free = conn.execute(
        table.format(sql.Identifier(stats, "pgstattuple")), (f"{SCHEMA}.events",)
    ).fetchone()
    index_size, density = conn.execute(
        index.format(sql.Identifier(stats, "pgstatindex")), (f"{SCHEMA}.events_account_idx",)
    ).fetchone()
    return Stage(size, index_size, dead, float(free), float(density))


def read_event(conn: psycopg.Connection, n: int) -> int:
    key = random.Random(n).randrange(1, N_EVENTS, 2)  # odd ids survive the DELETE
    conn.execute(q("SELECT payload FROM {s}.events WHERE id = %s"), (key,)).fetchone()
    return key


def reader_waiting(conn: psycopg.Connection, n: int) -> int:
    return conn.execute(WAITING_FOR_A_LOCK, (READER,)).fetchone()[0]


def queued_or_done(conn: psycopg.Connection, worker: threading.Thread, timeout_s: float = 30.0) -> None:
    """Return once the maintenance session waits for a lock, or its statement is over (plain VACUUM
    waits for none)."""
    deadline = time.monotonic() + timeout_s
    while worker.is_alive() and time.monotonic() < deadline:
        if conn.execute(WAITING_FOR_A_LOCK, (MAINTAINER,)).fetchone()[0]:
            return
        time.sleep(0.01)


def behind_a_report(conn: psycopg.Connection, url: str, statement: sql.Composed) -> float:
    """Run `statement` while a report's transaction holds ACCESS SHARE on events.

    The report ends REPORT_HOLD_S after `conn` sees the statement queued behind it (or over), not
    after a fixed time: on a busy machine the statement's session may take that long to connect.
    """
    took = []

    def maintain() -> None:
        with (
            psycopg.connect(
                url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S, application_name=MAINTAINER
            ) as c,
            timer() as t,
        ):
            c.execute(statement)
        took.append(t.seconds)

    with psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S) as report:
        report.execute(q("SELECT count(*) FROM {s}.events")).fetchone()  # its lock stays until commit
        worker = threading.Thread(target=maintain)
        worker.start()
        queued_or_done(conn, worker)
        time.sleep(REPORT_HOLD_S)
        report.commit()
        worker.join()
    return took[0]


def maintain_with_a_reader(conn: psycopg.Connection, url: str) -> dict[str, Stage]:
    stages, windows = {}, {}
    with Workload() as load:
        load.spawn(
            "read", read_event, connect=lambda: psycopg.connect(url, autocommit=True, application_name=READER)
        )
        load.spawn("watch", reader_waiting, connect=lambda: psycopg.connect(url, autocommit=True))
        load.wait_for(20, "read")
        for name, statement, with_report in MAINTENANCE:
            began = load.now_s()
            if with_report:
                seconds = behind_a_report(conn, url, q(statement))
            else:
                with timer() as t:
                    conn.execute(q(statement))
                seconds = t.seconds
            windows[name] = (began, load.now_s())
            stages[name] = measure(conn)
            stages[name].seconds = seconds
    for name, (began, ended) in windows.items():
        # The reads that ran while the step ran, if only in part: one queued behind VACUUM FULL may
        # have started just before the step and still be waiting when it ends.
        reads = [a for a in load.succeeded("read") if a.covers(began, in_flight=True) and a.started_s < ended]
        stages[name].reads = len(reads)
        stages[name].reads_blocked = sum(a.latency_s > load.blocked_after_s for a in reads)
        samples = [a for a in load.succeeded("watch") if began <= a.started_s < ended]
        stages[name].reader_waiting_seen = sum(1 for sample in samples if sample.key)
    return stages


def bloat(conn: psycopg.Connection) -> dict[str, Stage]:
    conn.execute(q(EVENTS, n=N_EVENTS))
    stages = {"fresh": measure(conn)}
    for statement in CHURN:
        conn.execute(q(statement))
    stages["bloated"] = measure(conn)
    return stages


def wait_for_older_snapshots(conn: psycopg.Connection, timeout_s: float = OLDER_SNAPSHOTS_WAIT_S) -> int:
    """VACUUM keeps what an older snapshot may still see: wait for sessions that began before now.

    Prepared transactions hold it back too, and are waited for the same way. Returns how many there
    were at first.
    """
    now = conn.execute("SELECT (pg_current_xact_id()::text::bigint % 4294967296)::text").fetchone()[0]
    deadline, first = time.monotonic() + timeout_s, None
    while True:
        older = conn.execute(OLDER_SNAPSHOTS, {"xid": now}).fetchone()[0]
        first = older if first is None else first
        if older == 0 or time.monotonic() > deadline:
            return first
        time.sleep(0.05)


def hot_updates(conn: psycopg.Connection, fillfactor: int) -> Hot:
    """One transaction (a batch job) updates a non-indexed column of 30% of the rows."""
    table = f"hot_ff{fillfactor}"
    conn.execute(q(HOT_TABLE, table, ff=fillfactor, n=N_HOT))
    size = "SELECT pg_relation_size(%s::regclass)"
    before = conn.execute(size, (f"{SCHEMA}.{table}",)).fetchone()[0]
    ids = random.Random(SEED).sample(range(1, N_HOT + 1), int(N_HOT * HOT_SHARE))
    conn.execute(q("UPDATE {t} SET counter = counter + 1 WHERE id = ANY(%s)", table), (ids,))
    flush_statistics(conn)
    counts = "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relid = %s::regclass"
    updates, hot = conn.execute(counts, (f"{SCHEMA}.{table}",)).fetchone()
    return Hot(fillfactor, updates, hot, before, conn.execute(size, (f"{SCHEMA}.{table}",)).fetchone()[0])


def mysql_sizes(cur) -> tuple[int, int, int]:
    cur.execute("ANALYZE TABLE events")  # InnoDB's persistent statistics are what information_schema shows
    cur.fetchall()
    cur.execute(MYSQL_SIZES, (DATABASE,))
    return tuple(int(v) for v in cur.fetchone())


def mysql_optimize(my: pymysql.Connection) -> MysqlRebuild:
    with my.cursor() as cur:
        cur.execute("SELECT VERSION()")
        server = cur.fetchone()[0]
        is_mariadb = "mariadb" in server.lower()
        if not is_mariadb:  # MySQL caches information_schema.tables figures for a day by default
            cur.execute("SET SESSION information_schema_stats_expiry = 0")
        cur.execute("DROP DATABASE IF EXISTS index_maintenance")
        cur.execute("CREATE DATABASE index_maintenance")
        my.select_db(DATABASE)
        cur.execute(MYSQL_TABLE)
        rng = random.Random(SEED)
        rows = [(i, i % 1000, f"{rng.getrandbits(96):024x}" * 8) for i in range(1, N_MYSQL + 1)]
        for start in range(0, N_MYSQL, 5_000):
            cur.executemany("INSERT INTO events VALUES (%s, %s, %s)", rows[start : start + 5_000])
        my.commit()
        sizes = {"loaded": mysql_sizes(cur)}
        deleted = cur.execute("DELETE FROM events WHERE MOD(id, 2) = 0")
        my.commit()
        sizes["deleted"] = mysql_sizes(cur)
        cur.execute("OPTIMIZE TABLE events")
        messages = {kind: text for _table, _op, kind, text in cur.fetchall()}
        sizes["optimized"] = mysql_sizes(cur)
    return MysqlRebuild(server, is_mariadb, deleted, messages.get("note", ""), sizes)


def show_stages(stages: dict[str, Stage]) -> None:
    sizes = [(name, console.size(s.table_bytes), console.size(s.index_bytes), s.dead_tuples,
              f"{s.free_percent:.0f}%", f"{s.leaf_density:.0f}%") for name, s in stages.items()]  # fmt: skip
    console.table(["after", "table", "index", "dead tuples", "free", "leaf density"], sizes)
    reads = [
        (name, console.seconds(s.seconds), s.reads, s.reads_blocked, s.reader_waiting_seen)
        for name, s in stages.items()
        if s.seconds
    ]
    console.table(["while", "took", "reads", "reads blocked", "seen waiting for a lock"], reads)


def show_hot(hot: dict[int, Hot]) -> None:
    rows = [(h.fillfactor, h.updates, h.hot_updates, f"{h.ratio:.0%}", console.size(h.bytes_before),
             console.size(h.bytes_after)) for h in hot.values()]  # fmt: skip
    console.table(["fillfactor", "n_tup_upd", "n_tup_hot_upd", "HOT", "before", "after"], rows)
    console.say("On a full page the new version goes to another page and every index gets an entry;")
    console.say("with 30% of the page kept free it stays on its page: no index write, no growth.")


def run(pg: psycopg.Connection, url: str, my: pymysql.Connection) -> IndexMaintenanceResult:
    """`pg` is a superuser connection (made autocommit here), `url` its address, `my` a MySQL connection."""
    console.title("Index maintenance: unused and duplicate indexes, bloat, VACUUM, REINDEX, fillfactor")
    pg.autocommit = True
    pg.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SCHEMA)))
    pg.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(SCHEMA)))

    console.step("Run the application's two queries, then read idx_scan and compare keys in pg_index")
    result = find_unused_and_covered(pg)
    console.say(f"{N_QUERIES} lookups by id, {N_QUERIES} 'latest orders of a customer', {N_ORDERS:,} orders.")
    uses = [
        (x.name, x.scans, console.size(x.size), "yes" if x.unused else "") for x in result.indexes.values()
    ]
    console.table(["index", "idx_scan", "size", "unused"], uses)
    console.table(["index", "is covered by", "how"], result.overlaps)
    console.say("pg_stat_force_next_flush() published this session's counts at once (else within 1 s).")
    console.say("idx_scan counts since the last statistics reset, on this server only: ask each replica.")

    console.step("Bloat a table (update an indexed column of every row twice, delete half), maintain it")
    result.stages = bloat(pg)
    result.older_snapshots = wait_for_older_snapshots(pg)
    result.stages |= maintain_with_a_reader(pg, url)
    show_stages(result.stages)
    console.say(
        "During VACUUM and VACUUM FULL a report held ACCESS SHARE on the table, until"
        f" {REPORT_HOLD_S} s after the step queued behind it (or ended),"
    )
    console.say("while a reader looked up a row every 5 ms ('blocked': a read that took over 100 ms) and a")
    console.say("watcher sampled pg_stat_activity for the reader's wait_event_type = 'Lock'.")
    if result.older_snapshots:
        console.say(f"VACUUM first waited for older sessions to end ({result.older_snapshots}).")
    console.say("VACUUM: no dead tuples, the space reusable but the file as big; no read waited for a lock.")
    console.say("REINDEX INDEX CONCURRENTLY: a new, dense index built beside the old one, reads carrying on.")
    console.say("VACUUM FULL: the smallest file, but its ACCESS EXCLUSIVE request queued behind the report,")
    console.say("and every read queued behind it. In production: lock_timeout and a retry, or pg_repack.")

    console.step("HOT updates: fillfactor 100 against 70, a batch job updating a column no index covers")
    result.hot = {ff: hot_updates(pg, ff) for ff in (100, 70)}
    show_hot(result.hot)

    console.step("MySQL: delete half an InnoDB table's rows, then OPTIMIZE TABLE")
    result.mysql = rebuilt = mysql_optimize(my)
    flavour = "MariaDB" if rebuilt.is_mariadb else "MySQL"
    console.say(f"{flavour} {rebuilt.server}: {rebuilt.rows_deleted:,} of {N_MYSQL:,} rows deleted.")
    sizes = [(stage, *(console.size(v) for v in values)) for stage, values in rebuilt.sizes.items()]
    console.table(["after", "data_length", "index_length", "data_free"], sizes)
    console.say(f"OPTIMIZE TABLE's note: {rebuilt.note!r}:")
    console.say(
        "InnoDB rebuilds the table (as ALTER TABLE ... FORCE does) and analyzes it: pages packed again."
    )
    return result


def main() -> int:
    require(*REQUIRES)
    url = postgres_url()
    with (
        psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S) as pg,
        pymysql.connect(**mysql_params()) as my,
    ):
        result = run(pg, url, my)
    return 0 if result.holds else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Indexing strategies: which index enables which plan, what it costs on disk, and how much it saves

A million events and 100k accounts built with generate_series, and 30k documents. For each
kind of index PostgreSQL offers, the lesson builds it, runs the query it exists for, reads the
plan node it enables from EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON), weighs the index
(pg_relation_size) and times the query against a sequential scan of the same table (index scans
switched off). B-tree: equality, range, ORDER BY ... LIMIT with no Sort, and a multicolumn (a, b)
that serves a= and a= AND b= but has to read all of itself for b= alone. Hash, for equality only.
BRIN on a time-correlated column, and the same BRIN on shuffled timestamps, where its block
ranges stop excluding anything. GIN on jsonb (@>), arrays (@>, &&) and full text (to_tsvector
@@). A partial, an expression (lower(email)) and a covering (INCLUDE) index, the last giving an
Index Only Scan. And BitmapAnd: PostgreSQL stores no bitmap index; it builds a bitmap from each
of two B-trees at query time and intersects them.

Engine: PostgreSQL (POSTGRES_URL), schema `indexing_strategies`.
Run: `make up SERVICES=postgres` (or `make local-up`), then `python relational/indexing_strategies.py`.
Look for: the summary table (plan node, size, seq scan ms, index ms, speed-up), BRIN at about a
thousandth of the B-tree's size, and its heap blocks going from a few hundred to all of them.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from itertools import accumulate

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from common import console
from common.settings import CONNECT_TIMEOUT_S, postgres_url, require
from common.timing import best_of, timer

REQUIRES = ("postgres",)
SCHEMA = "indexing_strategies"
SEED = 42  # for random.Random, and setseed(0.42) so that random() in SQL repeats itself too
N_EVENTS = 1_000_000
N_ACCOUNTS = 100_000
N_DOCUMENTS = 30_000
START = datetime(2024, 1, 1, tzinfo=timezone.utc)
EVENT_EVERY = timedelta(seconds=30)  # events.created_at follows insertion order
COLORS = ["red", "teal", "amber", "navy", "olive", "plum", "rust", "sand", "jade", "gray", "pink", "gold"]
SIZES = ["XS", "S", "M", "L", "XL"]
MATERIALS = ["wool", "silk", "linen", "cotton", "denim", "felt", "hemp", "jute"]
# Tags and words are drawn with a falling frequency: the first are common, the last rare.
TAGS = ["sale", "new", "eco", "gift", "bulk", "kids", "sport", "home", "garden", "travel",
        "office", "pet", "vintage", "local", "premium", "basic", "outdoor", "winter", "summer", "party"]  # fmt: skip
WORDS = ["the", "and", "ship", "harbour", "light", "storm", "sail", "rope", "anchor", "wave", "night", "tide",
         "crew", "deck", "wind", "map", "coast", "island", "gull", "fog", "bell", "chart", "compass", "mast",
         "keel", "hull", "port", "cargo", "lantern", "reef", "shoal", "beacon", "current", "drift", "ember",
         "fathom", "galley", "helm", "inlet", "jetty", "kelp", "lagoon", "mooring", "narrows", "oar",
         "pilot", "quay", "rigging"]  # fmt: skip

# No background ANALYZE or VACUUM during the lesson: plans stay the ones the lesson explains.
TABLES = [
    """CREATE TABLE events (
        id bigint NOT NULL, account_id integer NOT NULL, country integer NOT NULL, product integer NOT NULL,
        created_at timestamptz NOT NULL, shuffled_at timestamptz NOT NULL, status text NOT NULL,
        amount_cents integer NOT NULL
    ) WITH (autovacuum_enabled = off)""",
    """CREATE TABLE accounts (id integer NOT NULL, email text NOT NULL, api_key text NOT NULL)
    WITH (autovacuum_enabled = off)""",
    """CREATE TABLE documents (id integer NOT NULL, attrs jsonb NOT NULL, tags text[] NOT NULL, body text NOT NULL)
    WITH (autovacuum_enabled = off)""",
]
# created_at rises with id, so it follows the physical order; shuffled_at holds the same
# timestamps scrambled (i * 7919 mod N visits every i once, out of order). One pending event in a
# hundred, four failed, the rest done.
LOAD_EVENTS = """
INSERT INTO events
SELECT i, 1 + floor(random() * %(accounts)s)::int, floor(random() * 100)::int, floor(random() * 1000)::int,
       %(start)s + i * %(every)s, %(start)s + (1 + i::bigint * 7919 %% %(events)s) * %(every)s,
       CASE WHEN i %% 100 = 0 THEN 'pending' WHEN i %% 100 < 5 THEN 'failed' ELSE 'done' END,
       floor(random() * 50000)::int
FROM generate_series(1, %(events)s) AS i
"""
LOAD_ACCOUNTS = """
INSERT INTO accounts
SELECT i, 'User' || i || '@Example.com', md5(i::text) || md5((-i)::text)
FROM generate_series(1, %(accounts)s) AS i
"""
HOUR = START + timedelta(days=100)
DAY = START + timedelta(days=60)
FIRST_ACCOUNTS = (1, 1_000)  # 1% of the accounts
COUNTRY, PRODUCT = 5, 17
COVERED = "SELECT sum(amount_cents) FROM events WHERE account_id BETWEEN %s AND %s"
SEQ_ONLY = ("enable_indexscan", "enable_indexonlyscan", "enable_bitmapscan")
SCANS = ("Seq Scan", "Index Scan", "Index Only Scan", "Bitmap Heap Scan")


@dataclass(frozen=True)
class Demo:
    key: str
    kind: str  # the row label of the summary table
    indexes: tuple[str, ...]  # whose sizes are reported
    query: str
    params: tuple = ()
    force: tuple[str, ...] = ()  # planner switches turned off for the index run


@dataclass
class IndexUse:
    kind: str
    indexes: tuple[str, ...]
    nodes: list[str]  # plan node types, top down
    indexes_used: list[str]
    baseline_nodes: list[str]  # the plan with index scans switched off
    rows: int  # rows the table scan returned
    size_bytes: int  # of the demo's indexes
    heap_blocks: int  # exact + lossy blocks a Bitmap Heap Scan visited
    rows_removed_by_recheck: int
    heap_fetches: int | None  # Index Only Scan: rows it still had to look up in the table
    index_pages_read: int  # buffers of the Bitmap Index Scan / Index Only Scan nodes
    backward: bool
    seq_seconds: float = field(default=0.0, compare=False)
    index_seconds: float = field(default=0.0, compare=False)

    @property
    def headline(self) -> str:
        """The node that shows what the index did."""
        for wanted in ("BitmapAnd", "Index Only Scan", "Index Scan", "Bitmap Heap Scan", "Seq Scan"):
            if wanted in self.nodes:
                return f"{wanted} Backward" if wanted == "Index Scan" and self.backward else wanted
        return self.nodes[0]

    @property
    def speedup(self) -> float:
        return self.seq_seconds / self.index_seconds if self.index_seconds else float("inf")


@dataclass
class IndexingResult:
    rows: dict[str, int]
    table_pages: dict[str, int]
    uses: dict[str, IndexUse]
    covering_without_index_only: IndexUse
    # What the planner picks on its own for the shuffled column: a cost estimate from sampled
    # statistics, so it may differ between servers and runs; printed, not compared.
    shuffled_brin_planner_choice: str = field(compare=False)
    btree_on_api_key_bytes: int  # against the hash index on the same column

    @property
    def holds(self) -> bool:
        """Every query used the index it was built for (b alone on (a, b) need not), and BitmapAnd combined two."""
        return "BitmapAnd" in self.uses["bitmap_and"].nodes and all(
            set(use.indexes) <= set(use.indexes_used)
            for key, use in self.uses.items()
            if key != "multicolumn_b"
        )


def api_key(account_id: int) -> str:
    """The key LOAD_ACCOUNTS gave an account, computed the same way."""
    return "".join(hashlib.md5(str(n).encode()).hexdigest() for n in (account_id, -account_id))


BTREE = [
    Demo("btree_equality", "B-tree =", ("events_pkey",),
         "SELECT account_id, created_at FROM events WHERE id = %s", (424_242,)),
    Demo("btree_range", "B-tree range", ("events_created_at",),
         "SELECT id, amount_cents FROM events WHERE created_at >= %s AND created_at < %s",
         (HOUR, HOUR + timedelta(hours=1))),
    Demo("btree_order_limit", "B-tree order", ("events_created_at",),
         "SELECT id, created_at FROM events ORDER BY created_at DESC LIMIT 10"),
]  # fmt: skip
MULTICOLUMN = [
    Demo("multicolumn_a", "(a,b): a =", ("events_country_product",),
         "SELECT count(*) FROM events WHERE country = %s", (COUNTRY,)),
    Demo("multicolumn_ab", "(a,b): a,b =", ("events_country_product",),
         "SELECT count(*) FROM events WHERE country = %s AND product = %s", (COUNTRY, PRODUCT)),
    Demo("multicolumn_b", "(a,b): b =", ("events_country_product",),
         "SELECT count(*) FROM events WHERE product = %s", (PRODUCT,)),
]  # fmt: skip
COVERING = Demo("covering", "covering", ("events_account_cover",), COVERED, FIRST_ACCOUNTS)
COVERING_HEAP = Demo(
    "covering_heap", "covering, no IOS", ("events_account_cover",), COVERED, FIRST_ACCOUNTS,
    force=("enable_indexonlyscan",),
)  # fmt: skip
BITMAP_AND = Demo(
    "bitmap_and", "BitmapAnd", ("events_account_cover", "events_country_product"),
    "SELECT id, amount_cents FROM events WHERE account_id BETWEEN %s AND %s AND country = %s",
    (*FIRST_ACCOUNTS, COUNTRY),
)  # fmt: skip
PARTIAL = Demo(
    "partial", "partial", ("events_pending",),
    "SELECT id, account_id FROM events WHERE status = 'pending' ORDER BY created_at LIMIT 20",
)  # fmt: skip
BRIN = [
    Demo("brin_in_order", "BRIN ordered", ("events_created_brin",),
         "SELECT count(*) FROM events WHERE created_at >= %s AND created_at < %s", (DAY, DAY + timedelta(days=1))),
    # The planner would rather scan the table here (it knows the column's correlation), so the
    # lesson forbids that, to show what the BRIN would read.
    Demo("brin_shuffled", "BRIN random", ("events_shuffled_brin",),
         "SELECT count(*) FROM events WHERE shuffled_at >= %s AND shuffled_at < %s", (DAY, DAY + timedelta(days=1)),
         force=("enable_seqscan",)),
]  # fmt: skip
ACCOUNTS = [
    Demo("hash", "hash =", ("accounts_api_key_hash",),
         "SELECT id FROM accounts WHERE api_key = %s", (api_key(4242),)),
    Demo("expression", "lower(email)", ("accounts_lower_email",),
         "SELECT id FROM accounts WHERE lower(email) = lower(%s)", ("user4242@example.com",)),
]  # fmt: skip
GIN = [
    Demo("gin_jsonb", "GIN jsonb @>", ("documents_attrs",),
         "SELECT count(*) FROM documents WHERE attrs @> %s", (Jsonb({"color": "teal", "material": "wool"}),)),
    Demo("gin_array_contains", "GIN array @>", ("documents_tags",),
         "SELECT count(*) FROM documents WHERE tags @> %s::text[]", (["eco", "gift"],)),
    Demo("gin_array_overlap", "GIN array &&", ("documents_tags",),
         "SELECT count(*) FROM documents WHERE tags && %s::text[]", (["summer", "party"],)),
    Demo("gin_full_text", "GIN text @@", ("documents_fts",),
         "SELECT count(*) FROM documents WHERE to_tsvector('english', body) @@ to_tsquery('english', %s)",
         ("lantern & reef",)),
]  # fmt: skip


def generate_documents(seed: int = SEED) -> Iterator[tuple[int, str, list[str], str]]:
    """Attributes, tags and words; tags and words drawn with a frequency falling like 1/rank."""
    rng = random.Random(seed)
    word_odds = list(accumulate(1 / rank for rank in range(1, len(WORDS) + 1)))
    tag_odds = list(accumulate(1 / rank for rank in range(1, len(TAGS) + 1)))
    for document_id in range(1, N_DOCUMENTS + 1):
        attrs = {"color": rng.choice(COLORS), "size": rng.choice(SIZES), "material": rng.choice(MATERIALS)}
        tags = sorted(set(rng.choices(TAGS, cum_weights=tag_odds, k=rng.randint(1, 3))))
        body = " ".join(rng.choices(WORDS, cum_weights=word_odds, k=rng.randint(10, 17)))
        yield document_id, json.dumps(attrs), tags, body


def load(cur: psycopg.Cursor) -> tuple[dict[str, int], dict[str, int]]:
    cur.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SCHEMA)))
    cur.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(SCHEMA)))
    cur.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(SCHEMA)))
    # One process per query: plans and page counts do not depend on how many workers were free.
    cur.execute("SET max_parallel_workers_per_gather = 0")
    cur.execute("SET maintenance_work_mem = '256MB'")
    # VACUUM marks a page all-visible only once the commits of its rows are flushed to the WAL.
    cur.execute("SET synchronous_commit = on")
    for statement in TABLES:
        cur.execute(statement)
    cur.execute("SELECT setseed(%s)", (SEED / 100,))
    cur.execute(
        LOAD_EVENTS, {"accounts": N_ACCOUNTS, "start": START, "every": EVENT_EVERY, "events": N_EVENTS}
    )
    cur.execute(LOAD_ACCOUNTS, {"accounts": N_ACCOUNTS})
    with cur.copy("COPY documents (id, attrs, tags, body) FROM STDIN") as copy:
        for document in generate_documents():
            copy.write_row(document)
    rows, pages = {}, {}
    for table in ("events", "accounts", "documents"):
        # One B-tree build after the load costs far less than a million insertions into it.
        cur.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY (id)").format(sql.Identifier(table)))
        vacuum_until_all_visible(cur, table)
        cur.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
        rows[table] = cur.fetchone()[0]
        cur.execute("SELECT relpages FROM pg_class WHERE oid = %s::regclass", (table,))
        pages[table] = cur.fetchone()[0]
    return rows, pages


def vacuum_until_all_visible(cur: psycopg.Cursor, table: str, attempts: int = 20) -> None:
    """VACUUM (ANALYZE): statistics for the planner, and the visibility map an Index Only Scan needs.

    VACUUM marks a page all-visible only when no open transaction in the database could still
    need an older view of it; on a shared server another session may hold one for a moment.
    """
    for _ in range(attempts):
        cur.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(table)))
        cur.execute("SELECT relallvisible >= relpages FROM pg_class WHERE oid = %s::regclass", (table,))
        if cur.fetchone()[0]:
            return
        time.sleep(0.5)


def explain(cur: psycopg.Cursor, query: str, params: tuple) -> dict:
    cur.execute(sql.SQL("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {}").format(sql.SQL(query)), params)
    return cur.fetchone()[0][0]["Plan"]


def plan_shape(cur: psycopg.Cursor, query: str, params: tuple) -> list[str]:
    cur.execute(sql.SQL("EXPLAIN (FORMAT JSON) {}").format(sql.SQL(query)), params)
    return [node["Node Type"] for node in walk(cur.fetchone()[0][0]["Plan"])]


def text_plan(cur: psycopg.Cursor, demo: Demo) -> str:
    cur.execute(sql.SQL("EXPLAIN (COSTS OFF) {}").format(sql.SQL(demo.query)), demo.params)
    return "\n".join(row[0] for row in cur.fetchall())


def walk(node: dict) -> Iterator[dict]:
    yield node
    for child in node.get("Plans", []):
        yield from walk(child)


@contextmanager
def switched_off(cur: psycopg.Cursor, *settings: str) -> Iterator[None]:
    for setting in settings:
        cur.execute(sql.SQL("SET {} = off").format(sql.Identifier(setting)))
    try:
        yield
    finally:
        for setting in settings:
            cur.execute(sql.SQL("RESET {}").format(sql.Identifier(setting)))


def fastest(action: Callable[[], None]) -> float:
    """One run when it is long enough to time on its own; the best of three when it is quick."""
    with timer() as once:
        action()
    return once.seconds if once.seconds > 0.05 else min(once.seconds, best_of(action, repeat=3))


def measure(cur: psycopg.Cursor, demo: Demo) -> IndexUse:
    """The plan with the index, its size, and the query timed with and without index scans."""

    def run_query() -> None:
        cur.execute(demo.query, demo.params)
        cur.fetchall()

    with switched_off(cur, *demo.force):
        nodes = list(walk(explain(cur, demo.query, demo.params)))
        index_seconds = fastest(run_query)
    with switched_off(cur, *SEQ_ONLY):
        baseline = plan_shape(cur, demo.query, demo.params)
        seq_seconds = fastest(run_query)
    cur.execute(
        "SELECT sum(pg_relation_size(name::regclass))::bigint FROM unnest(%s::text[]) AS name",
        (list(demo.indexes),),
    )
    return IndexUse(
        kind=demo.kind,
        indexes=demo.indexes,
        nodes=[node["Node Type"] for node in nodes],
        indexes_used=[node["Index Name"] for node in nodes if "Index Name" in node],
        baseline_nodes=baseline,
        rows=next(node["Actual Rows"] for node in nodes if node["Node Type"] in SCANS),
        size_bytes=cur.fetchone()[0],
        heap_blocks=sum(
            node.get("Exact Heap Blocks", 0) + node.get("Lossy Heap Blocks", 0) for node in nodes
        ),
        rows_removed_by_recheck=sum(node.get("Rows Removed by Index Recheck", 0) for node in nodes),
        heap_fetches=next((node["Heap Fetches"] for node in nodes if "Heap Fetches" in node), None),
        index_pages_read=sum(
            node["Shared Hit Blocks"] + node["Shared Read Blocks"]
            for node in nodes
            if node["Node Type"] in ("Bitmap Index Scan", "Index Only Scan")
        ),
        backward=any(node.get("Scan Direction") == "Backward" for node in nodes),
        seq_seconds=seq_seconds,
        index_seconds=index_seconds,
    )


def measure_all(cur: psycopg.Cursor, demos: list[Demo], uses: dict[str, IndexUse]) -> list[IndexUse]:
    measured = [measure(cur, demo) for demo in demos]
    uses.update({demo.key: use for demo, use in zip(demos, measured, strict=True)})
    return measured


def btree_size_on_api_key(cur: psycopg.Cursor) -> int:
    """Built only to be weighed against the hash index, then dropped."""
    cur.execute("CREATE INDEX accounts_api_key_btree ON accounts (api_key)")
    cur.execute("SELECT pg_relation_size('accounts_api_key_btree')")
    size = cur.fetchone()[0]
    cur.execute("DROP INDEX accounts_api_key_btree")
    return size


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f}"


def speedup(ratio: float) -> str:
    return f"{ratio:,.1f}x" if ratio < 10 else f"{ratio:,.0f}x"


def run(conn: psycopg.Connection) -> IndexingResult:
    """Switches `conn` to autocommit: VACUUM and each index build stand alone."""
    conn.autocommit = True
    console.title("Indexing strategies: the plan each index enables, its size, its speed-up")
    uses: dict[str, IndexUse] = {}
    with conn.cursor() as cur:
        console.step("Load three tables with generate_series, then VACUUM (ANALYZE) them")
        with timer() as loading:
            rows, pages = load(cur)
        console.table(["table", "rows", "pages"], [(table, rows[table], pages[table]) for table in rows])
        console.say(
            f"loaded in {console.seconds(loading.seconds)}. Each query below runs with its index, then"
        )
        console.say("with index scans switched off (enable_indexscan, enable_bitmapscan = off): a Seq Scan.")

        console.step("B-tree: equality, a range, and ORDER BY ... LIMIT read in index order")
        cur.execute("CREATE INDEX events_created_at ON events (created_at)")
        measured = measure_all(cur, BTREE, uses)
        console.table(
            ["query", "plan", "rows", "without the index"],
            [(u.kind, u.headline, u.rows, " > ".join(u.baseline_nodes)) for u in measured],
        )
        console.say(
            "The index returns rows in created_at order: no Sort node, and LIMIT stops after 10 of them."
        )
        cur.execute("DROP INDEX events_created_at")

        console.step("Multicolumn B-tree (country, product): the column order decides what it serves")
        cur.execute("CREATE INDEX events_country_product ON events (country, product)")
        measured = measure_all(cur, MULTICOLUMN, uses)
        index_pages = measured[0].size_bytes // 8192
        console.table(
            ["condition", "plan", "rows", f"index pages read, of {index_pages:,}"],
            [(u.kind, u.headline, u.rows, u.index_pages_read) for u in measured],
        )
        console.say("b alone cannot be looked up in an index sorted by a first: the scan reads all of it.")

        console.step("Covering index: INCLUDE (amount_cents) answers from the index alone")
        cur.execute("CREATE INDEX events_account_cover ON events (account_id) INCLUDE (amount_cents)")
        (covering,) = measure_all(cur, [COVERING], uses)
        heap_way = measure(cur, COVERING_HEAP)
        console.table(
            ["plan", "rows", "heap blocks read", "ms"],
            [(u.headline, u.rows, u.heap_blocks, ms(u.index_seconds)) for u in (covering, heap_way)],
        )
        console.say(
            f"Index Only Scan heap fetches: {covering.heap_fetches} (VACUUM marked every page all-visible)"
        )

        console.step("BitmapAnd: two B-trees combined at query time")
        console.say("PostgreSQL stores no bitmap index. It builds a bitmap of row positions from each")
        console.say("index, ANDs them, and visits only the blocks both name.")
        (bitmap_and,) = measure_all(cur, [BITMAP_AND], uses)
        console.plan(text_plan(cur, BITMAP_AND))
        console.say(f"{bitmap_and.rows} rows from {bitmap_and.heap_blocks} heap blocks")
        cur.execute("DROP INDEX events_country_product, events_account_cover")

        console.step("Partial index: only the rows a hot query asks for")
        cur.execute("CREATE INDEX events_pending ON events (created_at) WHERE status = 'pending'")
        (partial,) = measure_all(cur, [PARTIAL], uses)
        full = uses["btree_range"].size_bytes
        console.say(
            f"{partial.headline} on events_pending (1 row in 100): {console.size(partial.size_bytes)}, "
            f"against {console.size(full)} for created_at over every row"
        )

        console.step("BRIN: a min and max per 128 blocks; tiny, and only as good as the physical order")
        cur.execute("CREATE INDEX events_created_brin ON events USING brin (created_at)")
        cur.execute("CREATE INDEX events_shuffled_brin ON events USING brin (shuffled_at)")
        measured = measure_all(cur, BRIN, uses)
        planner_choice = plan_shape(cur, BRIN[1].query, BRIN[1].params)[-1]
        console.table(
            ["one day of", "rows", "heap blocks read", "rows removed by recheck", "size"],
            [
                (u.kind, u.rows, u.heap_blocks, u.rows_removed_by_recheck, console.size(u.size_bytes))
                for u in measured
            ],
        )
        console.say(
            f"events has {pages['events']:,} blocks; the B-tree on created_at took {console.size(full)}."
        )
        console.say(f"Left to itself, the planner answers the shuffled query with a {planner_choice}.")

        console.step("Hash and expression indexes, on accounts")
        cur.execute("CREATE INDEX accounts_api_key_hash ON accounts USING hash (api_key)")
        cur.execute("CREATE INDEX accounts_lower_email ON accounts (lower(email))")
        cur.execute("ANALYZE accounts")  # gathers statistics on the expression lower(email) too
        measured = measure_all(cur, ACCOUNTS, uses)
        btree_key_bytes = btree_size_on_api_key(cur)
        console.table(
            ["index", "plan", "rows", "size"],
            [(u.kind, u.headline, u.rows, console.size(u.size_bytes)) for u in measured],
        )
        console.say(
            f"The hash index keeps a 4-byte hash per row: a B-tree on the same 64-character keys takes "
            f"{console.size(btree_key_bytes)}."
        )
        console.say("But a hash index answers = only: no range, no order, no prefix.")
        console.say("A plain index on email would not serve lower(email) = ...; the expression index does.")

        console.step("GIN: one entry per key, element or word, listing the rows that hold it")
        cur.execute("CREATE INDEX documents_attrs ON documents USING gin (attrs jsonb_path_ops)")
        cur.execute("CREATE INDEX documents_tags ON documents USING gin (tags)")
        cur.execute("CREATE INDEX documents_fts ON documents USING gin (to_tsvector('english', body))")
        measured = measure_all(cur, GIN, uses)
        console.table(
            ["query", "plan", "rows", "size"],
            [(u.kind, u.headline, u.rows, console.size(u.size_bytes)) for u in measured],
        )

        console.step("Summary")
        console.table(
            ["index kind", "plan node", "size", "seq ms", "index ms", "speed-up"],
            [
                (
                    u.kind,
                    u.headline,
                    console.size(u.size_bytes),
                    ms(u.seq_seconds),
                    ms(u.index_seconds),
                    speedup(u.speedup),
                )
                for u in uses.values()
            ],
        )
        cur.execute("RESET ALL")

    return IndexingResult(
        rows=rows,
        table_pages=pages,
        uses=uses,
        covering_without_index_only=heap_way,
        shuffled_brin_planner_choice=planner_choice,
        btree_on_api_key_bytes=btree_key_bytes,
    )


def main() -> int:
    require(*REQUIRES)
    with psycopg.connect(postgres_url(), connect_timeout=CONNECT_TIMEOUT_S, autocommit=True) as conn:
        result = run(conn)
    return 0 if result.holds else 1


if __name__ == "__main__":
    raise SystemExit(main())

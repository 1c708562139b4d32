"""Query optimization: reading EXPLAIN (ANALYZE, BUFFERS) and fixing what it shows

Six slow queries on a million orders, each diagnosed from its plan and fixed, with the plan and
the time before and after. A missing index (a Seq Scan reading every block, then an Index Scan
reading a dozen). A predicate that hides its column inside a function: date_trunc('day',
created_at) cannot use the index on created_at, and cannot have an expression index of its own
either, so it is rewritten as a range; lower(email) gets an expression index. N+1 queries (one
for the orders, then one per order for its customer) against one join, the statements counted.
OFFSET 90,000 against keyset pagination, the rows read and thrown away taken from the plan.
Stale statistics: a table loaded after ANALYZE, with autovacuum off, where the planner expects
one row, gets a hundred thousand and picks a nested loop; ANALYZE fixes the estimate and the
plan. And a correlated subquery run once per customer, rewritten as one aggregate and a join.

Engine: PostgreSQL (POSTGRES_URL), schema `query_optimization`.
Run: `make up SERVICES=postgres` (or `make local-up`), then `python performance/query_optimization.py`.
Look for: the buffers of each plan before and after, "rows read 90,020 to return 20", the
estimate of 1 row against 100,000 actual, and SubPlan loops against one Seq Scan.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import psycopg
from psycopg import sql

from common import console
from common.settings import CONNECT_TIMEOUT_S, postgres_url, require, scale
from common.timing import Comparison, best_of, timer

REQUIRES = ("postgres",)
SCHEMA = "query_optimization"
SEED = 0.42  # setseed() for random() in SQL: the same data on every run
FULL_ORDERS, MIN_ORDERS = 1_000_000, 20_000
FULL_CUSTOMERS, MIN_CUSTOMERS = 100_000, 2_000
FULL_OFFSET, MIN_OFFSET = 90_000, 2_000
FULL_PAGE_ORDERS, MIN_PAGE_ORDERS = 1_000, 50  # orders listed with their customer (N+1)
FULL_DELIVERED, MIN_DELIVERED = 200_000, 4_000
FULL_PENDING, MIN_PENDING = 100_000, 2_000
PAGE = 20
START = datetime(2024, 1, 1, tzinfo=timezone.utc)
SPAN = timedelta(days=365)  # orders are spread over a year whatever their number
DAY = datetime(2024, 6, 1, tzinfo=timezone.utc)
CUSTOMER = 421
EMAIL = "customer421@example.com"  # stored as Customer421@Example.com
SCANS = ("Seq Scan", "Index Scan", "Index Only Scan", "Bitmap Heap Scan")
JOINS = ("Nested Loop", "Hash Join", "Merge Join")

TABLES = [
    # Autovacuum off: no background ANALYZE changes a plan while the lesson explains it.
    """CREATE TABLE customers (
        id integer PRIMARY KEY, email text NOT NULL UNIQUE, name text NOT NULL, country text NOT NULL
    ) WITH (autovacuum_enabled = off)""",
    """CREATE TABLE orders (
        id bigint NOT NULL, customer_id integer NOT NULL, created_at timestamptz NOT NULL,
        total_cents integer NOT NULL
    ) WITH (autovacuum_enabled = off)""",
]
LOAD_CUSTOMERS = """
INSERT INTO customers
SELECT i, 'Customer' || i || '@Example.com', 'Customer ' || i, (ARRAY['PT', 'FR', 'DE', 'ES', 'IT'])[1 + i %% 5]
FROM generate_series(1, %(customers)s) AS i
"""
# Orders arrive in time order (created_at rises with id), each from a random customer.
LOAD_ORDERS = """
INSERT INTO orders
SELECT i, 1 + floor(random() * %(customers)s)::int, %(start)s + i * %(every)s, 500 + floor(random() * 50000)::int
FROM generate_series(1, %(orders)s) AS i
"""

LATEST_OF_CUSTOMER = (
    "SELECT id, created_at, total_cents FROM orders WHERE customer_id = %s ORDER BY created_at DESC LIMIT 5"
)
ONE_DAY_TRUNC = "SELECT count(*), sum(total_cents) FROM orders WHERE date_trunc('day', created_at) = %s"
ONE_DAY_RANGE = "SELECT count(*), sum(total_cents) FROM orders WHERE created_at >= %s AND created_at < %s"
BY_EMAIL = "SELECT id, name FROM customers WHERE lower(email) = lower(%s)"
LATEST_ORDERS = (
    "SELECT id, created_at, total_cents, customer_id FROM orders ORDER BY created_at DESC, id DESC LIMIT %s"
)
CUSTOMER_BY_ID = "SELECT name, email FROM customers WHERE id = %s"
LATEST_ORDERS_JOINED = """
SELECT o.id, o.created_at, o.total_cents, c.name, c.email
FROM orders o JOIN customers c ON c.id = o.customer_id
ORDER BY o.created_at DESC, o.id DESC LIMIT %s
"""
PAGE_BY_OFFSET = (
    "SELECT id, created_at, total_cents FROM orders ORDER BY created_at DESC, id DESC OFFSET %s LIMIT %s"
)
# The last row of the previous page; an application keeps it from the page it just showed.
PAGE_CURSOR = "SELECT created_at, id FROM orders ORDER BY created_at DESC, id DESC OFFSET %s LIMIT 1"
PAGE_BY_KEYSET = """
SELECT id, created_at, total_cents FROM orders
WHERE (created_at, id) < (%s, %s) ORDER BY created_at DESC, id DESC LIMIT %s
"""
PENDING_BY_COUNTRY = """
SELECT c.country, count(*) FROM deliveries d JOIN customers c ON c.id = d.customer_id
WHERE d.status = 'pending' GROUP BY c.country ORDER BY c.country
"""
SPENT_CORRELATED = """
SELECT c.id,
       (SELECT sum(o.total_cents) FROM orders o WHERE o.customer_id = c.id) AS spent,
       (SELECT max(o.created_at) FROM orders o WHERE o.customer_id = c.id) AS last_order
FROM customers c
"""
SPENT_JOINED = """
SELECT c.id, t.spent, t.last_order
FROM customers c
LEFT JOIN (SELECT customer_id, sum(total_cents) AS spent, max(created_at) AS last_order
           FROM orders GROUP BY customer_id) AS t ON t.customer_id = c.id
"""


@dataclass(frozen=True)
class Sizes:
    orders: int
    customers: int
    offset: int
    page_orders: int
    delivered: int
    pending: int

    @classmethod
    def at(cls, scale: float) -> Sizes:
        def scaled(full: int, least: int) -> int:
            return max(int(full * scale), least)

        return cls(
            orders=scaled(FULL_ORDERS, MIN_ORDERS),
            customers=scaled(FULL_CUSTOMERS, MIN_CUSTOMERS),
            offset=scaled(FULL_OFFSET, MIN_OFFSET),
            page_orders=scaled(FULL_PAGE_ORDERS, MIN_PAGE_ORDERS),
            delivered=scaled(FULL_DELIVERED, MIN_DELIVERED),
            pending=scaled(FULL_PENDING, MIN_PENDING),
        )


@dataclass
class PlanFacts:
    """What EXPLAIN (ANALYZE, BUFFERS) said about one query."""

    nodes: list[str]  # node types, top down
    indexes: list[str]  # indexes the plan used
    # Shared blocks touched (hit + read) by the whole plan. Not compared between runs: an Index Only
    # Scan also reads the heap blocks not yet marked all-visible (see vacuum_until_all_visible).
    buffers: int = field(compare=False)
    rows_read: int  # rows the scans of the table produced or filtered out, all loops
    actual_rows: int  # rows out of the first scan of the table, all loops
    subplan_loops: int  # executions of correlated subqueries
    estimated_rows: int = field(compare=False)  # the planner's guess for that scan (ANALYZE samples)
    text: str = field(compare=False, repr=False)

    @property
    def headline(self) -> str:
        if self.subplan_loops:
            return f"SubPlan x{self.subplan_loops:,}"
        for wanted in (*JOINS, "Index Only Scan", "Index Scan", "Bitmap Heap Scan", "Seq Scan"):
            if wanted in self.nodes:
                return wanted
        return self.nodes[0]


@dataclass
class Fix:
    problem: str
    before: PlanFacts
    after: PlanFacts
    same_answer: bool


@dataclass
class NPlusOne:
    orders: int
    queries_n_plus_one: int
    queries_join: int
    same_rows: bool


@dataclass
class StaleStatistics:
    reltuples_at_analyze: int  # what pg_class said after the first ANALYZE
    rows_in_table: int
    most_common_status: list[str]  # pg_stats at the first ANALYZE
    fix: Fix


@dataclass
class QueryOptimizationResult:
    rows: dict[str, int]
    missing_index: Fix
    date_predicate: Fix
    date_expression_index_error: str  # date_trunc on timestamptz is not IMMUTABLE
    email_predicate: Fix
    n_plus_one: NPlusOne
    pagination: Fix
    stale: StaleStatistics
    correlated: Fix
    comparisons: list[Comparison] = field(default_factory=list, compare=False)


class QueryCounter:
    """Every statement of a variant goes through fetch(), which counts it: one per round trip."""

    def __init__(self) -> None:
        self.count = 0

    def fetch(self, cur: psycopg.Cursor, query: str, params: tuple = ()) -> list[tuple]:
        self.count += 1
        cur.execute(query, params)
        return cur.fetchall()


def load(cur: psycopg.Cursor, sizes: Sizes) -> dict[str, int]:
    cur.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SCHEMA)))
    cur.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(SCHEMA)))
    cur.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(SCHEMA)))
    for statement in TABLES:
        cur.execute(statement)
    cur.execute("SELECT setseed(%s)", (SEED,))
    cur.execute(LOAD_CUSTOMERS, {"customers": sizes.customers})
    cur.execute(
        LOAD_ORDERS,
        {"customers": sizes.customers, "orders": sizes.orders, "start": START, "every": SPAN / sizes.orders},
    )
    cur.execute("ALTER TABLE orders ADD PRIMARY KEY (id)")
    rows = {}
    for table in ("customers", "orders"):
        if not vacuum_until_all_visible(cur, table):
            console.say(f"{table}: not every page is all-visible yet (another session holds an old")
            console.say("snapshot); an Index Only Scan below also reads those heap blocks.")
        cur.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
        rows[table] = cur.fetchone()[0]
    return rows


def vacuum_until_all_visible(cur: psycopg.Cursor, table: str, attempts: int = 20) -> bool:
    """VACUUM (ANALYZE): statistics for the planner, hint bits set before any timing, and every page
    marked all-visible, so that an Index Only Scan reads no heap block. False if some page is not.

    A page is marked only once no transaction anywhere on the server might still need an older
    view of it; another session (an autovacuum worker, say) may hold one for a moment, or longer.
    """
    for _ in range(attempts):
        cur.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(table)))
        cur.execute("SELECT relallvisible >= relpages FROM pg_class WHERE oid = %s::regclass", (table,))
        if cur.fetchone()[0]:
            return True
        time.sleep(0.5)
    return False


def settle_session(cur: psycopg.Cursor) -> None:
    # One process per query, so plans and buffer counts do not depend on free workers; no JIT
    # compilation in the timings; room for the hash tables of a million rows in memory.
    cur.execute("SET max_parallel_workers_per_gather = 0")
    cur.execute("SET jit = off")
    cur.execute("SET work_mem = '64MB'")
    cur.execute("SET maintenance_work_mem = '256MB'")
    # date_trunc('day', timestamptz) cuts days in the session's time zone; the range rewrite
    # below uses UTC days, so the session does too.
    cur.execute("SET TimeZone = 'UTC'")


def explain(cur: psycopg.Cursor, query: str, params: tuple = ()) -> dict:
    # TIMING OFF: row counts and buffers without the cost of reading the clock at every row.
    cur.execute(
        sql.SQL("EXPLAIN (ANALYZE, BUFFERS, TIMING OFF, FORMAT JSON) {}").format(sql.SQL(query)), params
    )
    return cur.fetchone()[0][0]["Plan"]


def walk(node: dict, depth: int = 0) -> Iterator[tuple[int, dict]]:
    yield depth, node
    for child in node.get("Plans", []):
        yield from walk(child, depth + 1)


def describe(node: dict) -> str:
    label = node["Node Type"]
    if node.get("Scan Direction") == "Backward":
        label += " Backward"
    if "Relation Name" in node:
        label += f" on {node['Relation Name']}"
    if "Index Name" in node:
        label += f" using {node['Index Name']}"
    if node.get("Parent Relationship") == "SubPlan":
        label = f"SubPlan: {label}"
    loops = node["Actual Loops"]
    counts = f"rows est {node['Plan Rows']:,}, actual {node['Actual Rows']:,}"
    if loops > 1:
        counts += f" x {loops:,} loops"
    removed = node.get("Rows Removed by Filter", 0)
    if removed:
        counts += f", removed by filter {removed:,}"
    buffers = node.get("Shared Hit Blocks", 0) + node.get("Shared Read Blocks", 0)
    return f"{label}  ({counts}; buffers {buffers:,})"


def plan_facts(plan: dict, table: str) -> PlanFacts:
    """The plan's shape, and the rows read from `table` by its scans, all loops counted."""
    nodes = [node for _, node in walk(plan)]
    scans = [node for node in nodes if node.get("Relation Name") == table and node["Node Type"] in SCANS]
    first = scans[0]
    return PlanFacts(
        nodes=[node["Node Type"] for node in nodes],
        indexes=[node["Index Name"] for node in nodes if "Index Name" in node],
        buffers=plan.get("Shared Hit Blocks", 0) + plan.get("Shared Read Blocks", 0),
        # Actual Rows is an average per loop (a fraction on PostgreSQL 18), hence the round().
        rows_read=round(
            sum(
                (node["Actual Rows"] + node.get("Rows Removed by Filter", 0)) * node["Actual Loops"]
                for node in scans
            )
        ),
        actual_rows=round(first["Actual Rows"] * first["Actual Loops"]),
        subplan_loops=sum(
            node["Actual Loops"] for node in nodes if node.get("Parent Relationship") == "SubPlan"
        ),
        estimated_rows=first["Plan Rows"],
        text="\n".join("  " * depth + describe(node) for depth, node in walk(plan)),
    )


def fetch(cur: psycopg.Cursor, query: str, params: tuple = ()) -> list[tuple]:
    cur.execute(query, params)
    return cur.fetchall()


def timed_fetch(cur: psycopg.Cursor, query: str, params: tuple = ()) -> tuple[list[tuple], float]:
    """The answer and the query's time: one run when it is long enough to time, else the best of five."""
    with timer() as once:
        answer = fetch(cur, query, params)
    if once.seconds >= 0.05:
        return answer, once.seconds
    return answer, min(once.seconds, best_of(lambda: fetch(cur, query, params), repeat=5))


def measure(
    cur: psycopg.Cursor, query: str, params: tuple, table: str
) -> tuple[PlanFacts, list[tuple], float]:
    """The plan's facts, then the answer and the time of the query run on its own, without EXPLAIN."""
    facts = plan_facts(explain(cur, query, params), table)
    answer, seconds = timed_fetch(cur, query, params)
    return facts, answer, seconds


def show_pair(before: PlanFacts, after: PlanFacts) -> None:
    console.say("before:")
    console.plan(before.text)
    console.say("after:")
    console.plan(after.text)


def missing_index(cur: psycopg.Cursor, comparisons: list[Comparison], n_orders: int) -> Fix:
    params = (CUSTOMER,)
    before, answer_before, slow = measure(cur, LATEST_OF_CUSTOMER, params, "orders")
    cur.execute("CREATE INDEX orders_customer_created ON orders (customer_id, created_at)")
    after, answer_after, fast = measure(cur, LATEST_OF_CUSTOMER, params, "orders")
    show_pair(before, after)
    console.say(
        f"blocks touched: {before.buffers:,} (the whole table) before, {after.buffers:,} with the index; "
        "the index also hands the rows over in created_at order, so the Sort is gone."
    )
    comparisons.append(
        Comparison(
            f"a customer's latest orders, {n_orders:,} orders", "no index: Seq Scan", "Index Scan", slow, fast
        )
    )
    console.compare("Seq Scan", slow, "Index Scan", fast)
    return Fix("missing index", before, after, answer_before == answer_after)


def date_predicate(cur: psycopg.Cursor, comparisons: list[Comparison]) -> tuple[Fix, str]:
    cur.execute("CREATE INDEX orders_created_id ON orders (created_at, id)")
    before, answer_before, slow = measure(cur, ONE_DAY_TRUNC, (DAY.date(),), "orders")
    refused = ""
    try:
        cur.execute("CREATE INDEX orders_created_day ON orders (date_trunc('day', created_at))")
    except psycopg.errors.InvalidObjectDefinition as error:
        refused = type(error).__name__
        console.say(f"an expression index on it is refused: {error.diag.message_primary}")
        console.say("(the day a timestamptz falls on depends on the session's TimeZone)")
    day_range = (DAY, DAY + timedelta(days=1))
    after, answer_after, fast = measure(cur, ONE_DAY_RANGE, day_range, "orders")
    show_pair(before, after)
    console.say(
        f"same answer ({answer_after[0][0]:,} orders); rows read {before.rows_read:,} against {after.rows_read:,}"
    )
    comparisons.append(
        Comparison("one day of orders", "date_trunc(...) = day", "range on created_at", slow, fast)
    )
    console.compare("date_trunc", slow, "range", fast)
    return Fix("function on the column", before, after, answer_before == answer_after), refused


def email_predicate(cur: psycopg.Cursor, comparisons: list[Comparison]) -> Fix:
    params = (EMAIL,)
    before, answer_before, slow = measure(cur, BY_EMAIL, params, "customers")
    cur.execute("CREATE INDEX customers_lower_email ON customers (lower(email))")
    cur.execute("ANALYZE customers")  # gathers statistics on the expression lower(email) too
    after, answer_after, fast = measure(cur, BY_EMAIL, params, "customers")
    show_pair(before, after)
    comparisons.append(
        Comparison("customer by lower(email)", "lower(email): Seq Scan", "expression index", slow, fast)
    )
    console.compare("Seq Scan", slow, "expression index", fast)
    return Fix("lower(email)", before, after, answer_before == answer_after)


def orders_then_customers(cur: psycopg.Cursor, counter: QueryCounter, n: int) -> list[tuple]:
    rows = []
    for order_id, created_at, total_cents, customer_id in counter.fetch(cur, LATEST_ORDERS, (n,)):
        ((name, email),) = counter.fetch(cur, CUSTOMER_BY_ID, (customer_id,))
        rows.append((order_id, created_at, total_cents, name, email))
    return rows


def orders_with_customers(cur: psycopg.Cursor, counter: QueryCounter, n: int) -> list[tuple]:
    return counter.fetch(cur, LATEST_ORDERS_JOINED, (n,))


def n_plus_one(cur: psycopg.Cursor, comparisons: list[Comparison], n: int) -> NPlusOne:
    one_by_one, joined = QueryCounter(), QueryCounter()
    with timer() as slow:
        slow_rows = orders_then_customers(cur, one_by_one, n)
    fast_rows = orders_with_customers(cur, joined, n)
    fast = best_of(lambda: orders_with_customers(cur, QueryCounter(), n), repeat=5)
    console.table(
        ["variant", "statements (round trips)", "rows"],
        [("orders, then each order's customer", one_by_one.count, len(slow_rows)),
         ("one join", joined.count, len(fast_rows))],
    )  # fmt: skip
    comparisons.append(
        Comparison(f"{n:,} orders with their customer", "N+1 queries", "one join", slow.seconds, fast)
    )
    console.compare(f"{one_by_one.count:,} queries", slow.seconds, "1 join", fast)
    return NPlusOne(n, one_by_one.count, joined.count, [tuple(r) for r in slow_rows] == fast_rows)


def pagination(cur: psycopg.Cursor, comparisons: list[Comparison], offset: int) -> Fix:
    before, answer_before, slow = measure(cur, PAGE_BY_OFFSET, (offset, PAGE), "orders")
    cur.execute(PAGE_CURSOR, (offset - 1,))
    last_created_at, last_id = cur.fetchone()
    after, answer_after, fast = measure(cur, PAGE_BY_KEYSET, (last_created_at, last_id, PAGE), "orders")
    show_pair(before, after)
    console.say(
        f"OFFSET: rows read {before.rows_read:,} to return {PAGE}; keyset: rows read {after.rows_read:,}"
    )
    comparisons.append(
        Comparison(f"page of {PAGE} after {offset:,} rows", f"OFFSET {offset:,}", "keyset", slow, fast)
    )
    console.compare("OFFSET", slow, "keyset", fast)
    return Fix("deep OFFSET", before, after, answer_before == answer_after)


def stale_statistics(cur: psycopg.Cursor, comparisons: list[Comparison], sizes: Sizes) -> StaleStatistics:
    cur.execute(
        "CREATE TABLE deliveries (order_id bigint NOT NULL, customer_id integer NOT NULL, status text NOT NULL)"
    )
    cur.execute("ALTER TABLE deliveries SET (autovacuum_enabled = off)")
    cur.execute(
        "INSERT INTO deliveries SELECT id, customer_id, 'delivered' FROM orders WHERE id <= %s",
        (sizes.delivered,),
    )
    cur.execute("ANALYZE deliveries")
    cur.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = 'deliveries'::regclass")
    reltuples = cur.fetchone()[0]
    cur.execute(
        "SELECT most_common_vals::text::text[] FROM pg_stats"
        " WHERE schemaname = %s AND tablename = 'deliveries' AND attname = 'status'",
        (SCHEMA,),
    )
    most_common = cur.fetchone()[0]
    # The next batch arrives; nothing analyzes the table again.
    cur.execute(
        "INSERT INTO deliveries SELECT id, customer_id, 'pending' FROM orders WHERE id > %s AND id <= %s",
        (sizes.delivered, sizes.delivered + sizes.pending),
    )
    cur.execute("SELECT count(*) FROM deliveries")
    in_table = cur.fetchone()[0]
    console.say(
        f"statistics from ANALYZE: {reltuples:,} rows, status most common values {most_common}; "
        f"the table now holds {in_table:,}"
    )
    before, answer_before, slow = measure(cur, PENDING_BY_COUNTRY, (), "deliveries")
    cur.execute("ANALYZE deliveries")
    after, answer_after, fast = measure(cur, PENDING_BY_COUNTRY, (), "deliveries")
    show_pair(before, after)
    console.table(
        ["statistics", "pending rows estimated", "actual", "join"],
        [
            ("stale", before.estimated_rows, before.actual_rows, before.headline),
            ("after ANALYZE", after.estimated_rows, after.actual_rows, after.headline),
        ],
    )
    comparisons.append(
        Comparison(
            f"{sizes.pending:,} pending deliveries by country",
            "stale statistics",
            "after ANALYZE",
            slow,
            fast,
        )
    )
    console.compare(f"stale ({before.headline})", slow, f"analyzed ({after.headline})", fast)
    return StaleStatistics(
        reltuples,
        in_table,
        most_common,
        Fix("stale statistics", before, after, answer_before == answer_after),
    )


def correlated_subquery(cur: psycopg.Cursor, comparisons: list[Comparison], n_customers: int) -> Fix:
    before, answer_before, slow = measure(cur, SPENT_CORRELATED, (), "orders")
    after, answer_after, fast = measure(cur, SPENT_JOINED, (), "orders")
    show_pair(before, after)
    console.say(
        f"blocks touched: {before.buffers:,} by {before.subplan_loops:,} subquery runs, "
        f"{after.buffers:,} by one pass over orders"
    )
    comparisons.append(
        Comparison(
            f"{n_customers:,} customers' totals", "correlated subqueries", "GROUP BY + join", slow, fast
        )
    )
    console.compare("correlated", slow, "GROUP BY + join", fast)
    return Fix("correlated subquery", before, after, sorted(answer_before) == sorted(answer_after))


def run(conn: psycopg.Connection, scale: float = 1.0) -> QueryOptimizationResult:
    """Switches `conn` to autocommit: VACUUM and ANALYZE stand alone."""
    conn.autocommit = True
    sizes = Sizes.at(scale)
    comparisons: list[Comparison] = []
    console.title("Query optimization: reading EXPLAIN (ANALYZE, BUFFERS) and fixing what it shows")
    with conn.cursor() as cur:
        settle_session(cur)
        console.step("Load customers and orders with generate_series, then VACUUM (ANALYZE)")
        with timer() as loading:
            rows = load(cur, sizes)
        console.table(["table", "rows"], rows.items())
        console.say(f"loaded in {console.seconds(loading.seconds)}; the plans below come from EXPLAIN")
        console.say("(ANALYZE, BUFFERS): rows estimated and actual, and shared blocks touched, per node.")

        console.step("A missing index: a customer's five latest orders")
        console.say(
            "Without an index on customer_id every block of orders is read to find a handful of rows."
        )
        missing = missing_index(cur, comparisons, rows["orders"])

        console.step("A function around the column: date_trunc('day', created_at) = day")
        console.say(
            "An index on created_at orders created_at values, not date_trunc() of them: it cannot help."
        )
        date_fix, refused = date_predicate(cur, comparisons)

        console.step("The same with lower(email): the UNIQUE index on email does not serve it")
        email_fix = email_predicate(cur, comparisons)

        console.step(f"N+1: {sizes.page_orders:,} orders, then one query per order for its customer")
        console.say("Each statement is a round trip; the join does the same work in one.")
        repeated = n_plus_one(cur, comparisons, sizes.page_orders)

        console.step(f"Deep pagination: OFFSET {sizes.offset:,} LIMIT {PAGE} against keyset")
        console.say(
            "OFFSET reads the rows it skips and throws them away; keyset starts after the last row seen."
        )
        page_fix = pagination(cur, comparisons, sizes.offset)

        console.step("Stale statistics: a table loaded after ANALYZE, autovacuum off")
        console.say(
            "The planner sizes every step from pg_statistic; when that is out of date, so is the plan."
        )
        stale = stale_statistics(cur, comparisons, sizes)

        console.step("A correlated subquery: run once per customer")
        console.say(
            "Each subquery in the select list runs for every outer row; one aggregate reads orders once."
        )
        correlated = correlated_subquery(cur, comparisons, rows["customers"])

        console.step("Summary")
        console.table(
            ["baseline -> optimized", "time", "speed-up"],
            [
                (f"{c.baseline} -> {c.optimized}", f"{console.seconds(c.baseline_s)} -> {console.seconds(c.optimized_s)}",
                 f"{c.ratio:,.1f}x")
                for c in comparisons
            ],
        )  # fmt: skip
        cur.execute("RESET ALL")

    return QueryOptimizationResult(
        rows=rows,
        missing_index=missing,
        date_predicate=date_fix,
        date_expression_index_error=refused,
        email_predicate=email_fix,
        n_plus_one=repeated,
        pagination=page_fix,
        stale=stale,
        correlated=correlated,
        comparisons=comparisons,
    )


def holds(result: QueryOptimizationResult) -> bool:
    """Every fix gave the same answer; the index fixes read through an index, the others fewer times."""
    fixed = [result.missing_index, result.date_predicate, result.email_predicate, result.pagination,
             result.stale.fix, result.correlated]  # fmt: skip
    indexed = [result.missing_index, result.date_predicate, result.email_predicate]
    counted = result.n_plus_one
    return (
        all(fix.same_answer for fix in fixed)
        and all(fix.after.indexes and "Seq Scan" not in fix.after.nodes for fix in indexed)
        and counted.same_rows
        and counted.queries_join < counted.queries_n_plus_one
        and result.pagination.after.rows_read < result.pagination.before.rows_read
        and result.correlated.after.subplan_loops == 0
    )


def main() -> int:
    require(*REQUIRES)
    with psycopg.connect(postgres_url(), connect_timeout=CONNECT_TIMEOUT_S) as conn:
        result = run(conn, scale=scale())
    return 0 if holds(result) else 1


if __name__ == "__main__":
    raise SystemExit(main())

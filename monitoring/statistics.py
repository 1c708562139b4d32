"""Planner statistics: stale after a bulk change, blind to correlated columns, and as fine as their target

The planner chooses a plan from estimates, and the estimates come from statistics that ANALYZE
samples. Four ways they go wrong, each measured as estimated rows against actual rows in
`EXPLAIN (ANALYZE, FORMAT JSON)`. Stale: a batch job marks a quarter of the orders `pending`, a
status the statistics have never seen; the planner expects 1 row, gets 50,000, and runs a Nested
Loop 50,000 times; ANALYZE brings the estimate back and the plan becomes a Hash Join. Autovacuum is
off on the lesson's tables (`autovacuum_enabled = false`) so that no autoanalyze fixes it behind the
lesson's back; the lesson computes when it would have fired, `autovacuum_analyze_threshold +
autovacuum_analyze_scale_factor * reltuples`, against `n_mod_since_analyze` in pg_stat_user_tables.

Correlated columns: a zip code decides its city, but the planner multiplies their selectivities
as if independent, and a city-and-zip lookup is off by two orders of magnitude. CREATE STATISTICS
fixes it, kind by kind: `dependencies` for the WHERE, `ndistinct` for the GROUP BY, `mcv` for
the most common combinations; each leaves some query wrong, measured too. The per-column statistics target (`ALTER TABLE ...
ALTER COLUMN ... SET STATISTICS`) sets how many most-common values and histogram bounds pg_stats
keeps. Last, MySQL and MariaDB keep no statistics on unindexed columns until asked: a histogram on a
skewed column moves EXPLAIN's `filtered` from a guess to the truth (MariaDB: `ANALYZE TABLE ...
PERSISTENT FOR ALL` into mysql.column_stats; MySQL 8: `ANALYZE TABLE ... UPDATE HISTOGRAM` into
information_schema.COLUMN_STATISTICS).

Engine: PostgreSQL (POSTGRES_URL), schema `statistics_lesson`; MySQL or MariaDB (MYSQL_URL),
database `statistics_lesson`.
Run: `make up SERVICES=postgres,mysql` (or `make local-up`), then `python monitoring/statistics.py`.
Look for: `1 estimated, 50,000 actual` and Nested Loop before ANALYZE, Hash Join after; the
CREATE STATISTICS table (each kind fixes some queries and not others); `filtered` before and after
the histogram against the true percentage.
"""

from __future__ import annotations

import contextlib
import json
import random
from dataclasses import dataclass, field

import psycopg
import pymysql
from psycopg import sql

from common import console
from common.settings import CONNECT_TIMEOUT_S, mysql_params, postgres_url, require

REQUIRES = ("postgres", "mysql")
SCHEMA = "statistics_lesson"  # the PostgreSQL schema and the MySQL database
N_CUSTOMERS, N_ORDERS, N_ADDRESSES, MY_ORDERS, SEED = 100_000, 200_000, 200_000, 100_000, 3
SETUP = [  # autovacuum off on each table: only the lesson's ANALYZE refreshes the statistics
    """CREATE TABLE statistics_lesson.customers (id integer PRIMARY KEY, name text NOT NULL)
    WITH (autovacuum_enabled = false)""",
    """CREATE TABLE statistics_lesson.orders (id integer PRIMARY KEY, customer_id integer NOT NULL,
    status text NOT NULL, total numeric(10, 2) NOT NULL) WITH (autovacuum_enabled = false)""",
    """CREATE TABLE statistics_lesson.addresses (id integer PRIMARY KEY, city text NOT NULL, zip text NOT NULL)
    WITH (autovacuum_enabled = false)""",
    "INSERT INTO statistics_lesson.customers SELECT g, 'customer ' || g FROM generate_series(1, %(customers)s) g",
    """INSERT INTO statistics_lesson.orders SELECT g, g %% %(customers)s + 1,
    CASE WHEN g %% 10 = 0 THEN 'delivered' ELSE 'shipped' END, g %% 100 FROM generate_series(1, %(orders)s) g""",
    # 1,000 zip codes, skewed (Z0000 holds a tenth of the rows); each zip lies in one of 100 cities.
    """INSERT INTO statistics_lesson.addresses SELECT g, 'City ' || lpad((z / 10)::text, 3, '0'),
    'Z' || lpad(z::text, 4, '0') FROM (SELECT g, floor(1000 * power((g::bigint * 7919 %% %(addresses)s)::float8
    / %(addresses)s, 3))::integer AS z FROM generate_series(1, %(addresses)s) g) AS numbered""",
    "CREATE INDEX ON statistics_lesson.orders (status)",
]
PENDING = """SELECT count(*), sum(o.total) FROM statistics_lesson.orders o
    JOIN statistics_lesson.customers c ON c.id = o.customer_id WHERE o.status = 'pending'"""
BULK_CHANGE = "UPDATE statistics_lesson.orders SET status = 'pending' WHERE id % 4 = 0"
FLUSH = "SELECT pg_stat_force_next_flush()"  # this backend's counters reach pg_stat_* once it is idle
COUNTERS = """SELECT s.n_mod_since_analyze, s.n_dead_tup, s.n_ins_since_vacuum, c.reltuples,
    current_setting('autovacuum_analyze_threshold')::float8, current_setting('autovacuum_analyze_scale_factor')::float8,
    current_setting('autovacuum_vacuum_threshold')::float8, current_setting('autovacuum_vacuum_scale_factor')::float8,
    current_setting('autovacuum_vacuum_insert_threshold')::float8,
    current_setting('autovacuum_vacuum_insert_scale_factor')::float8
    FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid WHERE s.relid = 'statistics_lesson.orders'::regclass"""
QUERIES = {  # label -> query on addresses whose estimate each kind of extended statistics changes
    "City 030, Z0300": "SELECT * FROM statistics_lesson.addresses WHERE city = 'City 030' AND zip = 'Z0300'",
    "City 000, Z0000": "SELECT * FROM statistics_lesson.addresses WHERE city = 'City 000' AND zip = 'Z0000'",
    "City 001, Z0000": "SELECT * FROM statistics_lesson.addresses WHERE city = 'City 001' AND zip = 'Z0000'",
    "GROUP BY both": "SELECT city, zip, count(*) FROM statistics_lesson.addresses GROUP BY city, zip",
}
RARE, GROUPS = "City 030, Z0300", "GROUP BY both"
KINDS = ("none", "dependencies", "ndistinct", "mcv", "dependencies, ndistinct, mcv")
KIND_NAMES = ("none", "dependencies", "ndistinct", "mcv", "all 3")
TARGETS = (10, 100, 1000)
PG_STATS = """SELECT coalesce(array_length(most_common_vals::text::text[], 1), 0),
    coalesce(array_length(histogram_bounds::text::text[], 1), 0)
    FROM pg_stats WHERE schemaname = 'statistics_lesson' AND tablename = 'addresses' AND attname = 'zip'"""
SCANS = ("Seq Scan", "Index Scan", "Bitmap Heap Scan", "Index Only Scan")
ONE_ZIP = "SELECT * FROM statistics_lesson.addresses WHERE zip = 'Z0300'"
# MySQL: order statuses, skewed; the rare one is what a histogram finds.
STATUSES = (
    ("delivered", 900),
    ("shipped", 60),
    ("pending", 30),
    ("returned", 9),
    ("cancelled", 1),
)  # per 1,000
EXPLAIN_RARE = "EXPLAIN FORMAT=JSON SELECT * FROM orders WHERE status = 'cancelled'"


@dataclass
class Estimate:
    estimated: float
    actual: float

    @property
    def off_by(self) -> float:
        """How many times too many or too few rows the planner expected (1.0: exact)."""
        low, high = sorted((max(self.estimated, 1.0), max(self.actual, 1.0)))
        return high / low


@dataclass
class MySQLHistogram:
    server: str
    is_mariadb: bool
    where: str  # where the histogram is kept
    histogram_exists: bool
    filtered_before: float  # EXPLAIN's estimate, percent of rows the WHERE keeps
    filtered_after: float
    truth: float  # counted


@dataclass
class StatisticsResult:
    stale: Estimate | None = None  # orders with the new status, before ANALYZE
    fresh: Estimate | None = None  # after
    join_stale: str = ""  # the join the planner chose with each
    join_fresh: str = ""
    stale_ms: float = field(default=0.0, compare=False)
    fresh_ms: float = field(default=0.0, compare=False)
    thresholds: dict[str, tuple[float, int]] = field(default_factory=dict)  # kind -> (threshold, counter)
    mod_since_analyze_after: int = -1
    kinds: dict[str, dict[str, Estimate]] = field(
        default_factory=dict
    )  # statistics kind -> query -> estimate
    targets: dict[int, tuple[int, int, Estimate]] = field(default_factory=dict)  # target -> mcv, bounds, est
    mysql: MySQLHistogram | None = None

    def improvement(self, kind: str, query: str = RARE) -> float:
        return self.kinds["none"][query].off_by / self.kinds[kind][query].off_by

    @property
    def holds(self) -> bool:
        my = self.mysql
        return (
            self.stale.off_by > 100
            and self.fresh.off_by < 2
            and self.join_stale != self.join_fresh
            and self.improvement("dependencies") >= 10
            and self.improvement("ndistinct", GROUPS) >= 10
            and my is not None
            and my.histogram_exists
            and abs(my.filtered_after - my.truth) < abs(my.filtered_before - my.truth)
        )


# ---------------------------------------------------------------- PostgreSQL


def analyzed(pg: psycopg.Connection, query: str) -> dict:
    """EXPLAIN (ANALYZE, FORMAT JSON): the plan, run, with estimated and actual rows on every node."""
    return pg.execute(sql.SQL("EXPLAIN (ANALYZE, FORMAT JSON) {}").format(sql.SQL(query))).fetchone()[0][0]


def nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def estimate(plan: dict, node_types: tuple[str, ...], relation: str | None = None) -> Estimate:
    """Estimated against actual rows of the first such node (of `relation`): rows per loop, as EXPLAIN shows."""
    node = next(
        n for n in nodes(plan) if n["Node Type"] in node_types and relation in (None, n.get("Relation Name"))
    )
    return Estimate(node["Plan Rows"], round(node["Actual Rows"]))  # PostgreSQL 18 shows 2 decimals


def join_of(plan: dict) -> str:
    return next(
        (n["Node Type"] for n in nodes(plan) if n["Node Type"] in ("Nested Loop", "Hash Join", "Merge Join")),
        "",
    )


def pending_orders(pg: psycopg.Connection) -> tuple[Estimate, str, float]:
    """The pending orders' query, run: the orders scan's estimate, the join chosen, the execution time."""
    plan = analyzed(pg, PENDING)
    return estimate(plan["Plan"], SCANS, "orders"), join_of(plan["Plan"]), plan["Execution Time"]


def build(pg: psycopg.Connection) -> None:
    pg.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SCHEMA)))
    pg.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(SCHEMA)))
    sizes = {"customers": N_CUSTOMERS, "orders": N_ORDERS, "addresses": N_ADDRESSES}
    for statement in SETUP:
        pg.execute(statement, sizes)
    pg.execute(FLUSH)  # the load's counters are counted before ANALYZE resets them
    pg.execute("ANALYZE statistics_lesson.customers, statistics_lesson.orders, statistics_lesson.addresses")


def autovacuum_would(pg: psycopg.Connection) -> dict[str, tuple[float, int]]:
    """Each autovacuum trigger: threshold + scale factor * reltuples, against the counter it watches."""
    pg.execute(FLUSH)
    mod, dead, inserted, reltuples, a_base, a_scale, v_base, v_scale, i_base, i_scale = pg.execute(
        COUNTERS
    ).fetchone()
    return {
        "autoanalyze: n_mod_since_analyze": (a_base + a_scale * reltuples, mod),
        "autovacuum: n_dead_tup": (v_base + v_scale * reltuples, dead),
        "autovacuum (inserts): n_ins_since_vacuum": (i_base + i_scale * reltuples, inserted),
    }


def stale_statistics(pg: psycopg.Connection, result: StatisticsResult) -> None:
    console.step("A bulk change the statistics have not seen: estimated rows against actual")
    pg.execute(BULK_CHANGE)
    result.stale, result.join_stale, result.stale_ms = pending_orders(pg)
    stale = result.stale
    console.say(
        f"orders WHERE status = 'pending': {stale.estimated:,.0f} estimated, {stale.actual:,.0f} actual"
    )
    console.say(f"so the planner chose a {result.join_stale}: {result.stale_ms:.1f} ms")

    console.step("When autovacuum would have analyzed it (it is off on this table)")
    result.thresholds = autovacuum_would(pg)
    console.table(
        ["trigger: counter", "threshold", "counter", "fires"],
        [
            (name, threshold, counter, "yes" if counter > threshold else "no")
            for name, (threshold, counter) in result.thresholds.items()
        ],
    )
    console.say(
        "An autovacuum worker looks every autovacuum_naptime (60 s by default). A big table crosses late:"
    )
    console.say(
        "a tenth of a billion rows is 100 million changes; lower its scale factor with ALTER TABLE ... SET."
    )

    console.step("ANALYZE: the estimate and the plan, right")
    pg.execute("ANALYZE statistics_lesson.orders")
    result.fresh, result.join_fresh, result.fresh_ms = fresh, join, ms = pending_orders(pg)
    result.mod_since_analyze_after = autovacuum_would(pg)["autoanalyze: n_mod_since_analyze"][1]
    console.say(f"{fresh.estimated:,.0f} estimated, {fresh.actual:,.0f} actual: a {join}, {ms:.1f} ms")
    console.say(f"n_mod_since_analyze after ANALYZE: {result.mod_since_analyze_after}")


def extended_statistics(pg: psycopg.Connection, result: StatisticsResult) -> None:
    console.step("Correlated columns: each kind of CREATE STATISTICS, estimated rows against actual")
    name = sql.Identifier(SCHEMA, "city_zip")
    for kind in KINDS:
        pg.execute(sql.SQL("DROP STATISTICS IF EXISTS {}").format(name))
        if kind != "none":
            pg.execute(
                sql.SQL("CREATE STATISTICS {} ({}) ON city, zip FROM statistics_lesson.addresses").format(
                    name, sql.SQL(kind)
                )
            )
        pg.execute("ANALYZE statistics_lesson.addresses")
        result.kinds[kind] = {
            label: estimate(
                analyzed(pg, query)["Plan"], ("HashAggregate", "GroupAggregate", "Aggregate", "Seq Scan")
            )
            for label, query in QUERIES.items()
        }
    console.table(
        ["rows of", "actual", *KIND_NAMES],
        [
            (label, e.actual, *(result.kinds[kind][label].estimated for kind in KINDS))
            for label, e in result.kinds["none"].items()
        ],
        caption="rows estimated with each kind of statistics on (city, zip)",
    )
    pair, groups = result.improvement("dependencies"), result.improvement("ndistinct", GROUPS)
    console.say(f"dependencies bring the rare pair {pair:.0f}x closer; ndistinct the groups {groups:.0f}x.")
    console.say("dependencies assume the pair matches, so the zip outside its city gets worse. mcv keeps the")
    console.say(
        "commonest pairs exact and treats the rest as independent; with all three kinds it is applied"
    )
    console.say("first, and the rare pair is back to independence. Create the kinds your queries need.")


def statistics_target(pg: psycopg.Connection, result: StatisticsResult) -> None:
    console.step("The statistics target of one column: the size of its MCV list and histogram")
    for target in TARGETS:
        pg.execute(
            sql.SQL("ALTER TABLE statistics_lesson.addresses ALTER COLUMN zip SET STATISTICS {}").format(
                sql.Literal(target)
            )
        )
        pg.execute("ANALYZE statistics_lesson.addresses")
        mcv, bounds = pg.execute(PG_STATS).fetchone()
        result.targets[target] = (mcv, bounds, estimate(analyzed(pg, ONE_ZIP)["Plan"], ("Seq Scan",)))
    console.table(
        ["target", "most common values", "histogram bounds", "Z0300 estimated", "actual"],
        [(t, mcv, bounds, e.estimated, e.actual) for t, (mcv, bounds, e) in result.targets.items()],
    )
    console.say(
        "ANALYZE samples 300 x target rows; at 1,000 it reads the whole table and every zip is a common value."
    )


# ---------------------------------------------------------------- MySQL / MariaDB


def filtered(my: pymysql.Connection) -> float:
    """EXPLAIN FORMAT=JSON's `filtered`: the percentage of rows read that the planner expects to keep."""
    with my.cursor() as cur:
        cur.execute(EXPLAIN_RARE)
        document = json.loads(cur.fetchone()[0])
    pending = [document]
    while pending:  # MySQL: query_block.table; MariaDB: query_block.nested_loop[0].table
        item = pending.pop()
        if isinstance(item, dict) and "filtered" in item:
            return float(item["filtered"])
        pending.extend(item.values() if isinstance(item, dict) else item if isinstance(item, list) else [])
    raise ValueError("no filtered in the plan")


def histogram_of(my: pymysql.Connection, is_mariadb: bool) -> tuple[str, bool]:
    """Collect a histogram on orders.status, the way this server does it; where it is kept, and whether it is."""
    with my.cursor() as cur:
        if is_mariadb:
            with contextlib.suppress(pymysql.MySQLError):  # JSON_HB (10.8+) keeps popular values exactly
                cur.execute("SET SESSION histogram_type = 'JSON_HB'")
            cur.execute("ANALYZE TABLE orders PERSISTENT FOR ALL")
            cur.fetchall()
            cur.execute(
                "SELECT hist_type, hist_size FROM mysql.column_stats"
                " WHERE db_name = %s AND table_name = 'orders' AND column_name = 'status'",
                (SCHEMA,),
            )
            found = cur.fetchone()
            return f"mysql.column_stats ({found[0] if found else 'none'})", bool(found and found[0])
        cur.execute("ANALYZE TABLE orders UPDATE HISTOGRAM ON status WITH 16 BUCKETS")
        cur.fetchall()
        cur.execute(
            "SELECT HISTOGRAM->>'$.\"histogram-type\"' FROM information_schema.COLUMN_STATISTICS"
            " WHERE SCHEMA_NAME = %s AND TABLE_NAME = 'orders' AND COLUMN_NAME = 'status'",
            (SCHEMA,),
        )
        found = cur.fetchone()
        return f"information_schema.COLUMN_STATISTICS ({found[0] if found else 'none'})", found is not None


def mysql_histograms(my: pymysql.Connection) -> MySQLHistogram:
    console.step("MySQL: a histogram on a skewed column, and EXPLAIN's filtered")
    with my.cursor() as cur:
        cur.execute("SELECT VERSION()")
        server = cur.fetchone()[0]
        is_mariadb = "mariadb" in server.lower()
        cur.execute("DROP DATABASE IF EXISTS statistics_lesson")  # its statistics and histograms go with it
        cur.execute("CREATE DATABASE statistics_lesson")
        my.select_db(SCHEMA)
        cur.execute(
            "CREATE TABLE orders (id int PRIMARY KEY, status varchar(16) NOT NULL, total int NOT NULL)"
        )
        per_thousand = [name for name, count in STATUSES for _ in range(count)]
        rows = [
            (i, per_thousand[i % 1000], random.Random(i).randint(1, 10_000)) for i in range(1, MY_ORDERS + 1)
        ]
        for start in range(0, len(rows), 10_000):
            cur.executemany(
                "INSERT INTO orders (id, status, total) VALUES (%s, %s, %s)", rows[start : start + 10_000]
            )
        my.commit()
        cur.execute("ANALYZE TABLE orders")  # index statistics only: no histogram yet
        cur.fetchall()
        cur.execute("SELECT 100 * AVG(status = 'cancelled') FROM orders")
        truth = float(cur.fetchone()[0])
    before = filtered(my)
    where, exists = histogram_of(my, is_mariadb)
    after = filtered(my)
    found = MySQLHistogram(server, is_mariadb, where, exists, before, after, truth)
    console.say(f"{server}: {'MariaDB' if is_mariadb else 'MySQL'}; the histogram is kept in {where}")
    console.table(
        ["WHERE status = 'cancelled'", "filtered %"],
        [
            ("no histogram", before),
            ("with the histogram", after),
            ("true share, counted", truth),
        ],
    )
    console.say(
        "Without one, MariaDB expects every row to match (100) and MySQL guesses 10% for an equality."
    )
    return found


def run(pg: psycopg.Connection, my: pymysql.Connection) -> StatisticsResult:
    """`pg` is a PostgreSQL connection (set to autocommit here); `my` a MySQL or MariaDB connection."""
    console.title("Planner statistics: stale, correlated, and their target")
    pg.autocommit = True
    pg.execute("SET max_parallel_workers_per_gather = 0")  # one process per plan: rows are easier to read
    result = StatisticsResult()
    console.step("Orders, customers and addresses, analyzed once, autovacuum off")
    build(pg)
    console.say(
        f"{N_ORDERS:,} orders (90% shipped, 10% delivered), {N_CUSTOMERS:,} customers, {N_ADDRESSES:,} addresses"
    )
    stale_statistics(pg, result)
    extended_statistics(pg, result)
    statistics_target(pg, result)
    pg.execute("RESET max_parallel_workers_per_gather")
    result.mysql = mysql_histograms(my)
    return result


def main() -> int:
    require(*REQUIRES)
    with (
        psycopg.connect(postgres_url(), connect_timeout=CONNECT_TIMEOUT_S) as pg,
        pymysql.connect(**mysql_params()) as my,
    ):
        result = run(pg, my)
    return 0 if result.holds else 1


if __name__ == "__main__":
    raise SystemExit(main())

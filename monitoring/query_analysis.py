"""Query analysis: the one bad query in pg_stat_statements, its plan from auto_explain, and the fix

An application runs a mix of quick statements and one bad one: a case-insensitive login,
`lower(email) = lower($1)`, which cannot use the index on email and reads the whole table.
pg_stat_statements finds it at once: first by shared blocks, the whole table's per call against a
handful for the others (hit: found in shared_buffers; read: asked of the operating system), first
by mean time, and on a quiet machine by total time too. The lesson ranks by the blocks, a count
that is the same on every run, not by total time, which tools often sort by: time moves with the
machine's load, and on a busy one the waits of many quick statements can add up to more than the
few slow ones.
auto_explain catches its plan as it runs (a Seq Scan, `Rows Removed by Filter: 99999`). An
expression index fixes it; the lesson resets pg_stat_statements for its own statements only
(never the whole server's), runs the same workload again, and the bad query's share of the time
falls from nearly all to a few percent. In production auto_explain is set in postgresql.conf
(say `auto_explain.log_min_duration = '250ms'`) and writes plans to the server log; here a
superuser session sets `auto_explain.log_level = notice` and `client_min_messages = notice`, so the
plan arrives at the client as a NOTICE.

Engine: PostgreSQL (POSTGRES_URL, a superuser such as the compose `examples`; pg_stat_statements
preloaded, auto_explain installed), schema `query_analysis`.
Run: `make up SERVICES=postgres` (or `make local-up`), then `python monitoring/query_analysis.py`.
Look for: `login, any case` first by shared blocks before the index and last after, its share of
the time falling, and its plan going from Seq Scan to Index Scan.
"""

from __future__ import annotations

import contextlib
import random
import re
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from common import console
from common.settings import CONNECT_TIMEOUT_S, postgres_url, require

REQUIRES = ("postgres",)
SCHEMA = "query_analysis"
SEED, ROUNDS, CUSTOMERS = 7, 25, 100_000
BAD = "login, any case"
WORKLOAD = {  # label -> statement, and how many of each in one round of the application's work
    "customer by id": ("SELECT id, name, email FROM query_analysis.customers WHERE id = %s", 30),
    "customer by email": ("SELECT id, name FROM query_analysis.customers WHERE email = %s", 10),
    BAD: ("SELECT id, name FROM query_analysis.customers WHERE lower(email) = lower(%s)", 1),
    "recent orders": (
        "SELECT id, total, placed_at FROM query_analysis.orders WHERE customer_id = %s"
        " ORDER BY placed_at DESC LIMIT 10",
        20,
    ),
    "place order": ("INSERT INTO query_analysis.orders (customer_id, total) VALUES (%s, %s)", 5),
}
SETUP = [  # %(n)s is the number of customers
    """CREATE TABLE query_analysis.customers (id integer PRIMARY KEY, email text NOT NULL, name text NOT NULL)
    WITH (autovacuum_enabled = off)""",  # off: no background ANALYZE changes a plan mid-lesson
    """CREATE TABLE query_analysis.orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id integer NOT NULL, total numeric(10, 2) NOT NULL, placed_at timestamptz NOT NULL DEFAULT now())
    WITH (autovacuum_enabled = off)""",
    """INSERT INTO query_analysis.customers SELECT g, 'Customer' || g || '@Example.com', 'customer ' || g
    FROM generate_series(1, %(n)s) AS g""",
    """INSERT INTO query_analysis.orders (customer_id, total, placed_at)
    SELECT g %% %(n)s + 1, (g %% 997) / 10.0, timestamptz '2025-01-01' + g * interval '1 minute'
    FROM generate_series(1, 3 * %(n)s) AS g""",
    "CREATE INDEX ON query_analysis.customers (email)",
    "CREATE INDEX ON query_analysis.orders (customer_id, placed_at)",
    "ANALYZE query_analysis.customers, query_analysis.orders",
]
FIX = "CREATE INDEX customers_lower_email ON query_analysis.customers (lower(email))"
# The lesson's own statements in pg_stat_statements: this database, texts that name its schema.
SNAPSHOT = """SELECT queryid, query, calls, total_exec_time, rows, shared_blks_hit, shared_blks_read
    FROM {schema}.pg_stat_statements
    WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND strpos(query, %s) > 0"""
# Never pg_stat_statements_reset() without arguments: it empties every database's and user's entries.
# A zero argument means "all", so queryid 0 is left out.
RESET_OWN = """SELECT {schema}.pg_stat_statements_reset(userid, dbid, queryid) FROM {schema}.pg_stat_statements
    WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND strpos(query, %s) > 0
    AND queryid <> 0"""
AUTO_EXPLAIN_ON = [
    "LOAD 'auto_explain'",  # a no-op where it is preloaded; a superuser may load it into a session
    "SET auto_explain.log_min_duration = 0",  # every statement of this session, however fast
    "SET auto_explain.log_analyze = on",  # actual rows and times, as EXPLAIN ANALYZE
    "SET auto_explain.log_buffers = on",
    "SET auto_explain.log_level = notice",  # a superuser-only setting; the default LOG goes to the server log
    "SET client_min_messages = notice",
]
AUTO_EXPLAIN_OFF = ["RESET auto_explain.log_min_duration", "RESET client_min_messages"]
FINGERPRINTS = {  # a piece of each statement's text as pg_stat_statements keeps it (lower case, no spaces)
    BAD: "wherelower(email)",
    "customer by email": "whereemail=",
    "customer by id": "whereid=",
    "recent orders": "orderbyplaced_at",
    "place order": "insertintoquery_analysis.orders",
}


def label_of(text: str) -> str | None:
    """Which of the application's statements a recorded text is (None: the lesson's own set-up)."""
    squeezed = re.sub(r"[\s\"]", "", text).lower()
    if not squeezed.startswith(("select", "insert")):
        return None
    return next((label for label, piece in FINGERPRINTS.items() if piece in squeezed), None)


@dataclass
class Statement:
    label: str
    calls: int
    total_ms: float = field(compare=False)
    rows: int = 0
    hit: int = field(default=0, compare=False)  # shared blocks found in shared_buffers
    read: int = field(default=0, compare=False)  # and blocks asked of the operating system

    @property
    def blocks(self) -> int:
        """Shared blocks the calls touched, hit or read: a count, where time moves with the load."""
        return self.hit + self.read

    @property
    def mean_ms(self) -> float:
        return self.total_ms / self.calls if self.calls else 0.0


def tally(found: list[tuple]) -> list[Statement]:
    """One Statement per label from (label, calls, total_ms, rows, hit, read) rows, by shared blocks.

    The same text can have several entries: psycopg sends a Python int as smallint, integer or
    bigint by its size, and each parameter type makes its own queryid. They are summed here.
    """
    sums: dict[str, list] = {}
    for label, *counters in found:
        sums[label] = [a + b for a, b in zip(sums.get(label, [0] * len(counters)), counters, strict=True)]
    statements = [Statement(label, *counters) for label, counters in sums.items()]
    return sorted(statements, key=lambda s: s.blocks, reverse=True)


@dataclass
class QueryAnalysisResult:
    preloaded: bool = False  # pg_stat_statements in shared_preload_libraries: the ranking ran
    before: list[Statement] = field(default_factory=list, compare=False)  # by shared blocks, descending
    after: list[Statement] = field(default_factory=list, compare=False)
    calls: dict[str, int] = field(default_factory=dict)  # per statement, in each run of the workload
    entries_left_after_reset: int = -1
    plan_before: str = field(default="", compare=False)
    plan_after: str = field(default="", compare=False)

    def top(self, phase: str, key: str = "blocks") -> str:
        ranked = sorted(getattr(self, phase), key=lambda s: getattr(s, key), reverse=True)
        return ranked[0].label if ranked else ""

    def share(self, phase: str) -> float:
        statements = getattr(self, phase)
        total = sum(s.total_ms for s in statements)
        return next((s.total_ms for s in statements if s.label == BAD), 0.0) / total if total else 0.0

    @property
    def holds(self) -> bool:
        return (
            self.top("before") == BAD != self.top("after")
            and "Seq Scan on customers" in self.plan_before
            and "Index Scan using customers_lower_email" in self.plan_after
        )


def plan_of_work(seed: int = SEED) -> list[tuple[str, tuple]]:
    """The application's statements in the order it runs them, with their parameters."""
    rng = random.Random(seed)
    work = []
    for label, (_, per_round) in WORKLOAD.items():
        for _ in range(per_round * ROUNDS):
            customer = rng.randint(1, CUSTOMERS)
            email = f"Customer{customer}@Example.com"
            by_label = {"customer by email": (email,), BAD: (email.upper(),), "place order": (customer, 9.99)}
            work.append((label, by_label.get(label, (customer,))))
    rng.shuffle(work)
    return work


def statements(pg: psycopg.Connection, query: str, params: tuple = ()) -> list[tuple]:
    """A query on pg_stat_statements (`{schema}.`), wherever this database has the extension.

    The counters live in the server's shared memory (the library is preloaded); the extension only
    adds the view and functions, in the schema that created it first. Created here if nowhere, and
    left in place at the end: others read it too. Another lesson may have it in its own schema and
    drop it with that schema: then it is looked up (or created) once more.
    """
    find = "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE extname = %s"
    for attempt in (1, 2):
        found = pg.execute(find, ("pg_stat_statements",)).fetchone()
        if found is None:
            with contextlib.suppress(psycopg.errors.UniqueViolation):  # another session made it just now
                pg.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements WITH SCHEMA public")
            found = pg.execute(find, ("pg_stat_statements",)).fetchone()
        try:
            return pg.execute(sql.SQL(query).format(schema=sql.Identifier(found[0])), params).fetchall()
        except (
            psycopg.errors.UndefinedTable,
            psycopg.errors.UndefinedFunction,
            psycopg.errors.InvalidSchemaName,
        ):
            if attempt == 2:
                raise
    return []


def snapshot(pg: psycopg.Connection) -> dict[int, tuple]:
    """The lesson's own statements in pg_stat_statements: queryid -> (text, counters...)."""
    return {row[0]: row[1:] for row in statements(pg, SNAPSHOT, (SCHEMA + ".",))}


def difference(before: dict[int, tuple], after: dict[int, tuple]) -> list[Statement]:
    """What the workload added to each of the application's statements, by shared blocks."""
    found = []
    for queryid, (text, *counters) in after.items():
        earlier = before.get(queryid, (text, 0, 0.0, 0, 0, 0))[1:]
        calls, total, rows, hit, read = (now - then for now, then in zip(counters, earlier, strict=True))
        if label_of(text) and calls:
            found.append((label_of(text), calls, total, rows, hit, read))
    return tally(found)


def measured_workload(pg: psycopg.Connection, url: str) -> list[Statement]:
    before = snapshot(pg)
    with (
        psycopg.connect(url, autocommit=True, application_name="query_analysis app") as app,
        app.cursor() as cur,
    ):
        for label, params in plan_of_work():
            cur.execute(WORKLOAD[label][0], params)
    return difference(before, snapshot(pg))


def reset_own_statements(pg: psycopg.Connection) -> int:
    """pg_stat_statements_reset(userid, dbid, queryid) for each of the lesson's statements; entries left."""
    statements(pg, RESET_OWN, (SCHEMA + ".",))
    return len(snapshot(pg))


def auto_explained(pg: psycopg.Connection, email: str) -> str:
    """Run the bad query once with auto_explain on for this session; the plan it sent as a NOTICE."""
    notices: list[str] = []

    def keep(diagnostic: psycopg.errors.Diagnostic) -> None:
        notices.append(diagnostic.message_primary or "")

    pg.add_notice_handler(keep)
    for statement in AUTO_EXPLAIN_ON:
        pg.execute(statement)
    try:
        pg.execute(WORKLOAD[BAD][0], (email,)).fetchall()
    finally:
        for statement in AUTO_EXPLAIN_OFF:
            pg.execute(statement)
        pg.remove_notice_handler(keep)
    return next((text.split("plan:\n", 1)[1] for text in notices if "plan:\n" in text), "")


def ranking(statements: list[Statement]) -> None:
    total = sum(s.total_ms for s in statements) or 1.0
    console.table(
        ["statement", "calls", "blocks", "hit", "read", "rows", "total ms", "mean ms", "share of time"],
        [
            (
                s.label,
                s.calls,
                s.blocks,
                s.hit,
                s.read,
                s.rows,
                s.total_ms,
                s.mean_ms,
                f"{s.total_ms / total:.0%}",
            )
            for s in statements
        ],
    )


def set_up(pg: psycopg.Connection) -> None:
    console.step("An application's tables, and a workload of quick statements with one bad one")
    pg.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SCHEMA)))
    pg.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(SCHEMA)))
    for statement in SETUP:
        pg.execute(statement, {"n": CUSTOMERS})
    counts = pg.execute(
        "SELECT (SELECT count(*) FROM query_analysis.customers), (SELECT count(*) FROM query_analysis.orders)"
    ).fetchone()
    console.say(
        f"{counts[0]:,} customers, {counts[1]:,} orders; {len(plan_of_work())} statements per workload run"
    )


def find(pg: psycopg.Connection, url: str, result: QueryAnalysisResult) -> None:
    console.step("pg_stat_statements: the workload's statements ranked by shared blocks")
    result.before = measured_workload(pg, url)
    result.calls = {s.label: s.calls for s in result.before}
    ranking(result.before)
    console.say(
        "blocks: shared blocks touched, hit (found in shared_buffers) or read (asked of the OS)."
        " A full scan piles them up; the count is the same on every run."
    )
    for key, what in (
        ("total_ms", "total time, which moves with the machine's load"),
        ("mean_ms", "mean time"),
        ("calls", "calls"),
        ("rows", "rows returned"),
    ):
        console.say(f"first by {what}: {result.top('before', key)}")


def explain_and_fix(pg: psycopg.Connection, result: QueryAnalysisResult) -> None:
    console.step("auto_explain: the plan of the bad query, as it runs")
    email = "CUSTOMER421@EXAMPLE.COM"
    result.plan_before = auto_explained(pg, email)
    console.plan(result.plan_before)

    console.step("The fix: an index on lower(email), and the same query's plan again")
    pg.execute(FIX)
    pg.execute("ANALYZE query_analysis.customers")  # statistics for the new expression
    result.plan_after = auto_explained(pg, email)
    console.plan(result.plan_after)


def measure_again(pg: psycopg.Connection, url: str, result: QueryAnalysisResult) -> None:
    console.step("Only this lesson's statistics reset, then the same workload again")
    result.entries_left_after_reset = reset_own_statements(pg)
    console.say(
        f"pg_stat_statements_reset(userid, dbid, queryid); entries left: {result.entries_left_after_reset}"
    )
    result.after = measured_workload(pg, url)
    ranking(result.after)
    console.say(
        f"{BAD}: {result.share('before'):.0%} of the time before the index, {result.share('after'):.1%} after"
    )


def run(pg: psycopg.Connection, url: str) -> QueryAnalysisResult:
    """`pg` is a superuser connection (set to autocommit here), `url` its address for the application."""
    console.title("Query analysis: the bad query, its plan, and the fix")
    pg.autocommit = True
    result = QueryAnalysisResult()
    set_up(pg)
    result.preloaded = pg.execute(
        "SELECT strpos(current_setting('shared_preload_libraries'), 'pg_stat_statements') > 0"
    ).fetchone()[0]
    if result.preloaded:
        find(pg, url, result)
    else:  # the compose file and `make local-up` preload it; another server may not
        console.say("This server does not preload pg_stat_statements (shared_preload_libraries): no ranking.")
    explain_and_fix(pg, result)
    if result.preloaded:
        measure_again(pg, url, result)
    return result


def main() -> int:
    require(*REQUIRES)
    with psycopg.connect(postgres_url(), connect_timeout=CONNECT_TIMEOUT_S) as pg:
        result = run(pg, postgres_url())
    return 0 if result.holds else 1


if __name__ == "__main__":
    raise SystemExit(main())

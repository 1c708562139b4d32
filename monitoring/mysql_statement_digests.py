"""MySQL statement digests: the one bad query in performance_schema, or in MariaDB's session counters

An application runs a mix of quick statements and one bad one: a case-insensitive login,
`lower(email) = lower(%s)`, which cannot use the index on email and reads the whole table on every
call. MySQL counts every statement per digest (its text with the values taken out) in
performance_schema.events_statements_summary_by_digest: calls, total time (in picoseconds), rows
sent, rows examined, and SUM_NO_INDEX_USED, the calls that used no index. The table is
server-wide and TRUNCATE empties every database's digests, so the lesson reads it before and after
the workload and keeps the difference, for its own database only. The bad query is first by rows
examined, tens of thousands per call, with no index used on any of them. The lesson ranks by that
count, not by total time, which tools often sort by: on a quiet server the bad query leads there
too, but on a busy one the waits of many quick statements can add up to more than its scans.

performance_schema is ON by default in MySQL 8.4 and OFF in MariaDB, where only a restart changes
it. MariaDB's slow query log is server-wide too (a session can narrow it but not switch it on, and
it goes to a file on the server). Without digests the lesson reads the session's own
Handler_read_* counters (SHOW SESSION STATUS) around each statement's calls: the bad query
examines the most rows by far. It says which server and which instrument ran; either finds the
same query.

Engine: MySQL or MariaDB (MYSQL_URL, a user that may create databases), database
`mysql_statement_digests`.
Run: `make up SERVICES=mysql` (or `make local-up`), then `python monitoring/mysql_statement_digests.py`.
Look for: the instrument line, `login, any case` first in the ranking with its rows examined, and
SUM_NO_INDEX_USED equal to its calls where performance_schema is on.
"""

from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass, field

import pymysql

from common import console
from common.settings import mysql_params, require

REQUIRES = ("mysql",)
SCHEMA = "mysql_statement_digests"  # the lesson's database
SEED, ROUNDS, CUSTOMERS = 7, 25, 50_000
BAD = "login, any case"
WORKLOAD = {  # label -> statement, and how many of each in one round of the application's work
    "customer by id": ("SELECT id, name, email FROM customers WHERE id = %s", 30),
    "customer by email": ("SELECT id, name FROM customers WHERE email = %s", 10),
    BAD: ("SELECT id, name FROM customers WHERE lower(email) = lower(%s)", 1),
    "recent orders": (
        "SELECT id, total, placed_at FROM orders WHERE customer_id = %s ORDER BY placed_at DESC LIMIT 10",
        20,
    ),
    "place order": ("INSERT INTO orders (customer_id, total) VALUES (%s, %s)", 5),
}
SETUP = [
    "CREATE TABLE customers (id int PRIMARY KEY, email varchar(80) NOT NULL, name varchar(80) NOT NULL,"
    " KEY (email))",
    "CREATE TABLE orders (id bigint AUTO_INCREMENT PRIMARY KEY, customer_id int NOT NULL,"
    " total decimal(10, 2) NOT NULL, placed_at datetime NOT NULL DEFAULT CURRENT_TIMESTAMP,"
    " KEY (customer_id, placed_at))",
]
DIGESTS = """SELECT DIGEST, DIGEST_TEXT, COUNT_STAR, SUM_TIMER_WAIT, SUM_ROWS_SENT, SUM_ROWS_EXAMINED,
    SUM_NO_INDEX_USED FROM performance_schema.events_statements_summary_by_digest WHERE SCHEMA_NAME = %s"""
HANDLERS = """SHOW SESSION STATUS WHERE Variable_name IN
    ('Handler_read_rnd_next', 'Handler_read_key', 'Handler_read_next', 'Handler_read_prev')"""
FINGERPRINTS = {  # a piece of each statement's digest text (lower case, no spaces or backquotes)
    BAD: "wherelower(email)",
    "customer by email": "whereemail=",
    "customer by id": "whereid=",
    "recent orders": "orderbyplaced_at",
    "place order": "insertintoorders(customer_id,total)values",
}
DIGEST_INSTRUMENT, COUNTER_INSTRUMENT = "performance_schema digests", "session status counters"


def label_of(text: str) -> str | None:
    """Which of the application's statements a digest text is (None: the lesson's own set-up)."""
    squeezed = re.sub(r"[\s`\"]", "", text).lower()
    if not squeezed.startswith(("select", "insert")):
        return None
    return next((label for label, piece in FINGERPRINTS.items() if piece in squeezed), None)


@dataclass
class Statement:
    label: str
    calls: int
    total_ms: float = field(compare=False)
    rows: int = 0  # rows sent to the client
    examined: int = field(default=0, compare=False)  # rows the server read to answer
    no_index: int = field(default=0, compare=False)  # digests: calls that used no index

    @property
    def mean_ms(self) -> float:
        return self.total_ms / self.calls if self.calls else 0.0


def tally(found: list[tuple]) -> list[Statement]:
    """One Statement per label from (label, calls, total_ms, rows, examined, no_index) rows, ranked."""
    sums: dict[str, list] = {}
    for label, *counters in found:
        sums[label] = [a + b for a, b in zip(sums.get(label, [0] * len(counters)), counters, strict=True)]
    statements = [Statement(label, *counters) for label, counters in sums.items()]
    return sorted(statements, key=lambda s: s.examined, reverse=True)  # a count: the same every run


@dataclass
class DigestFindings:
    server: str
    instrument: str  # DIGEST_INSTRUMENT or COUNTER_INSTRUMENT
    statements: list[Statement] = field(compare=False)  # ranked by rows examined
    calls: dict[str, int] = field(default_factory=dict)  # per statement, in the workload
    top: str = ""
    no_index_used: int | None = None  # the top digest's SUM_NO_INDEX_USED; None without digests

    @property
    def holds(self) -> bool:
        return self.top == BAD


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


def set_up(my: pymysql.Connection) -> None:
    with my.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS mysql_statement_digests")
        cur.execute("CREATE DATABASE mysql_statement_digests")
        my.select_db(SCHEMA)  # performance_schema files each digest under the session's database
        for statement in SETUP:
            cur.execute(statement)
        rows = [(i, f"Customer{i}@Example.com", f"customer {i}") for i in range(1, CUSTOMERS + 1)]
        for start in range(0, len(rows), 10_000):
            cur.executemany(
                "INSERT INTO customers (id, email, name) VALUES (%s, %s, %s)", rows[start : start + 10_000]
            )
        for k in range(3):
            cur.execute(
                "INSERT INTO orders (customer_id, total, placed_at) SELECT id, MOD(id * 7 + %s, 997) / 10,"
                " TIMESTAMP '2025-01-01 00:00:00' + INTERVAL (id * 3 + %s) MINUTE FROM customers",
                (k, k),
            )
        cur.execute("ANALYZE TABLE customers, orders")
        cur.fetchall()
        cur.execute("SELECT (SELECT COUNT(*) FROM customers), (SELECT COUNT(*) FROM orders)")
        customers, orders = cur.fetchone()
    my.commit()
    console.say(
        f"{customers:,} customers, {orders:,} orders; {len(plan_of_work())} statements per workload run"
    )


def by_digest(my: pymysql.Connection, work: list[tuple[str, tuple]]) -> list[Statement]:
    """performance_schema's digests of this database, before and after: what the workload added."""

    def digests() -> dict[str, tuple]:
        with my.cursor() as cur:
            cur.execute(DIGESTS, (SCHEMA,))
            return {row[0]: row[1:] for row in cur.fetchall()}

    before = digests()
    with my.cursor() as cur:
        for label, params in work:
            cur.execute(WORKLOAD[label][0], params)
            cur.fetchall()
    my.commit()
    found = []
    for digest, (text, *counters) in digests().items():
        earlier = before.get(digest, (text, 0, 0, 0, 0, 0))[1:]
        calls, timer_ps, sent, examined, no_index = (
            int(a) - int(b) for a, b in zip(counters, earlier, strict=True)
        )
        if label_of(text or "") and calls:  # SUM_TIMER_WAIT is in picoseconds
            found.append((label_of(text), calls, timer_ps / 1e9, sent, examined, no_index))
    return tally(found)


def by_session_counters(my: pymysql.Connection, work: list[tuple[str, tuple]]) -> list[Statement]:
    """Each statement's calls together, with the session's Handler_read_* counters read around them."""

    def rows_read() -> int:
        with my.cursor() as cur:
            cur.execute(HANDLERS)
            return sum(int(value) for _, value in cur.fetchall())

    overhead = -rows_read() + rows_read()  # what reading the counters itself adds
    found = []
    with my.cursor() as cur:
        for label in WORKLOAD:
            calls = [params for name, params in work if name == label]
            start_rows, started, sent = rows_read(), time.perf_counter(), 0
            for params in calls:
                cur.execute(WORKLOAD[label][0], params)
                sent += len(cur.fetchall())
            elapsed_ms = (time.perf_counter() - started) * 1000
            examined = rows_read() - start_rows - overhead
            found.append((label, len(calls), elapsed_ms, sent, examined, 0))
    my.commit()
    return tally(found)


def ranking(found: DigestFindings) -> None:
    total = sum(s.total_ms for s in found.statements) or 1.0
    digests = found.instrument == DIGEST_INSTRUMENT  # the counters cannot tell index use apart
    console.table(
        ["statement", "calls", "total ms", "mean ms", "rows", "share", "examined", "no index"],
        [
            (s.label, s.calls, s.total_ms, s.mean_ms, s.rows, f"{s.total_ms / total:.0%}", s.examined)
            + (s.no_index if digests else "-",)
            for s in found.statements
        ],
    )


def measure(my: pymysql.Connection, server: str, performance_schema: bool) -> DigestFindings:
    work = plan_of_work()
    if performance_schema:
        found = DigestFindings(server, DIGEST_INSTRUMENT, by_digest(my, work))
        found.no_index_used = found.statements[0].no_index
        console.say("events_statements_summary_by_digest, diffed (TRUNCATE would empty every database's):")
    else:
        found = DigestFindings(server, COUNTER_INSTRUMENT, by_session_counters(my, work))
        console.say(
            "performance_schema is off (only a restart turns it on); the slow log is server-wide (a session"
        )
        console.say(
            "can narrow it, not switch it on). So: the session's Handler_read_* counters around each statement."
        )
    found.top = found.statements[0].label
    found.calls = {s.label: s.calls for s in found.statements}
    return found


def run(my: pymysql.Connection) -> DigestFindings:
    """`my` is a MySQL or MariaDB connection; the lesson switches it to its own database."""
    console.title("MySQL statement digests: the bad query, by digest or by session counters")
    console.step("An application's tables, and a workload of quick statements with one bad one")
    with my.cursor() as cur:
        cur.execute("SELECT VERSION(), @@performance_schema, @@global.slow_query_log, @@global.log_output")
        server, performance_schema, slow_log, log_output = cur.fetchone()
    set_up(my)
    console.say(
        f"{server}: performance_schema = {performance_schema}, slow_query_log = {slow_log} ({log_output})"
    )

    console.step("The workload, and what the server can tell about each statement")
    found = measure(my, server, bool(performance_schema))
    ranking(found)
    bad = found.statements[0]
    console.say(
        f"first by rows examined: {found.top}, {bad.examined / max(bad.calls, 1):,.0f} rows examined per call"
    )
    slowest = max(found.statements, key=lambda s: s.total_ms)
    console.say(f"first by total time, which moves with the server's load: {slowest.label}")
    if found.no_index_used is not None:
        console.say(f"{found.top}: SUM_NO_INDEX_USED = {found.no_index_used} of {bad.calls} calls")
    return found


def main() -> int:
    require(*REQUIRES)
    with pymysql.connect(**mysql_params()) as my:
        found = run(my)
    return 0 if found.holds else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Denormalization: a trigger-kept column, a summary table and a materialized view, each weighed

When reads dominate, copying a derived fact next to where it is read saves the join and the
aggregate on every read, and costs something on every write and a risk that the copy goes wrong.
This lesson starts from a normalized orders schema (customers, orders, order_lines, products;
200k order lines) and adds three copies: orders.total kept right by a trigger, a per-customer
summary table kept right by a trigger, and a monthly sales materialized view refreshed
CONCURRENTLY (which needs a unique index). For each it measures the report query against the
normalized one (rows read from EXPLAIN ANALYZE, and time), the cost on the write path (inserting
2,000 order lines with and without the triggers; the refresh for the view), and the consistency
risk: with the triggers switched off one UPDATE leaves copies that disagree with the lines, and
the view stays stale until it is refreshed.

Engine: PostgreSQL (POSTGRES_URL), schema `denormalization`.
Run: `make up SERVICES=postgres` (or `make local-up`), then `python relational/denormalization.py`.
Look for: rows read falling from hundreds of thousands to tens, the write overhead of each trigger,
disagreeing rows > 0 without the triggers and 0 with them, and stale rows going to 0 after REFRESH.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

import psycopg
from psycopg import sql

from common import console
from common.settings import CONNECT_TIMEOUT_S, postgres_url, require
from common.timing import best_of, timer

REQUIRES = ("postgres",)
SCHEMA = "denormalization"
SEED = 23
N_CUSTOMERS, N_PRODUCTS, N_ORDERS = 5_000, 500, 50_000
BATCH_ORDERS, BATCH_LINES_PER_ORDER = 500, 4  # the write measured: 2,000 order lines
REPORT_MONTH = date(2024, 6, 1)
UPDATED_PRODUCT = 7  # every line of this product gets one more unit

NORMALIZED = [
    "CREATE TABLE customers (customer_id integer PRIMARY KEY, name text NOT NULL, city text NOT NULL)",
    "CREATE TABLE products (product_id integer PRIMARY KEY, name text NOT NULL, unit_price numeric(10,2) NOT NULL)",
    "CREATE TABLE orders (order_id integer PRIMARY KEY, customer_id integer NOT NULL, ordered_at date NOT NULL)",
    # unit_price here is the price the line was sold at: a fact of the line, not a copy of products.
    "CREATE TABLE order_lines (order_id integer NOT NULL, line_no smallint NOT NULL, product_id integer NOT NULL,"
    " quantity integer NOT NULL, unit_price numeric(10,2) NOT NULL, PRIMARY KEY (order_id, line_no))",
]
KEYS = [
    "ALTER TABLE orders ADD FOREIGN KEY (customer_id) REFERENCES customers",
    "ALTER TABLE order_lines ADD FOREIGN KEY (order_id) REFERENCES orders",
    "ALTER TABLE order_lines ADD FOREIGN KEY (product_id) REFERENCES products",
    "CREATE INDEX ON orders (customer_id)",
]

# (a) A redundant column: each order's total, indexed so "the largest orders" is an index read.
ORDER_TOTAL = [
    "ALTER TABLE orders ADD COLUMN total numeric(12,2) NOT NULL DEFAULT 0",
    "UPDATE orders o SET total = s.total"
    " FROM (SELECT order_id, sum(quantity * unit_price) AS total FROM order_lines GROUP BY order_id) s"
    " WHERE o.order_id = s.order_id",
    "CREATE INDEX orders_total ON orders (total DESC, order_id)",
    """CREATE FUNCTION keep_order_total() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP IN ('UPDATE', 'DELETE') THEN
            UPDATE orders SET total = total - OLD.quantity * OLD.unit_price WHERE order_id = OLD.order_id;
        END IF;
        IF TG_OP IN ('INSERT', 'UPDATE') THEN
            UPDATE orders SET total = total + NEW.quantity * NEW.unit_price WHERE order_id = NEW.order_id;
        END IF;
        RETURN NULL;
    END $$""",
    "CREATE TRIGGER order_lines_keep_total AFTER INSERT OR UPDATE OR DELETE ON order_lines"
    " FOR EACH ROW EXECUTE FUNCTION keep_order_total()",
]
# (b) A summary table: lines bought and revenue per customer.
CUSTOMER_TOTALS = [
    "CREATE TABLE customer_totals (customer_id integer PRIMARY KEY REFERENCES customers,"
    " lines integer NOT NULL, revenue numeric(14,2) NOT NULL)",
    "INSERT INTO customer_totals"
    " SELECT o.customer_id, count(*), sum(l.quantity * l.unit_price)"
    " FROM orders o JOIN order_lines l USING (order_id) GROUP BY o.customer_id",
    """CREATE FUNCTION keep_customer_totals() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP IN ('UPDATE', 'DELETE') THEN
            UPDATE customer_totals t SET lines = t.lines - 1, revenue = t.revenue - OLD.quantity * OLD.unit_price
            FROM orders o WHERE o.order_id = OLD.order_id AND t.customer_id = o.customer_id;
        END IF;
        IF TG_OP IN ('INSERT', 'UPDATE') THEN
            INSERT INTO customer_totals AS t (customer_id, lines, revenue)
            SELECT customer_id, 1, NEW.quantity * NEW.unit_price FROM orders WHERE order_id = NEW.order_id
            ON CONFLICT (customer_id) DO UPDATE SET lines = t.lines + 1, revenue = t.revenue + EXCLUDED.revenue;
        END IF;
        RETURN NULL;
    END $$""",
    "CREATE TRIGGER order_lines_keep_customer_totals AFTER INSERT OR UPDATE OR DELETE ON order_lines"
    " FOR EACH ROW EXECUTE FUNCTION keep_customer_totals()",
]
# (c) A materialized view of monthly sales per product; the plain view is the live truth.
MONTHLY_SALES = [
    "CREATE VIEW monthly_sales_live AS"
    " SELECT date_trunc('month', o.ordered_at)::date AS month, l.product_id,"
    " sum(l.quantity) AS units, sum(l.quantity * l.unit_price) AS revenue"
    " FROM orders o JOIN order_lines l USING (order_id) GROUP BY 1, 2",
    "CREATE MATERIALIZED VIEW monthly_sales AS SELECT * FROM monthly_sales_live",
]
MONTHLY_SALES_KEY = "CREATE UNIQUE INDEX monthly_sales_key ON monthly_sales (month, product_id)"
TRIGGERS = ("order_lines_keep_total", "order_lines_keep_customer_totals")

# Each report: the normalized query, and the same answer read from the copy.
REPORTS = {
    "orders.total": (
        "the 20 largest orders",
        "SELECT order_id, sum(quantity * unit_price) AS total FROM order_lines"
        " GROUP BY order_id ORDER BY total DESC, order_id LIMIT 20",
        "SELECT order_id, total FROM orders ORDER BY total DESC, order_id LIMIT 20",
        (),
    ),
    "customer_totals": (
        "the 10 best customers",
        "SELECT o.customer_id, count(*) AS lines, sum(l.quantity * l.unit_price) AS revenue"
        " FROM orders o JOIN order_lines l USING (order_id)"
        " GROUP BY o.customer_id ORDER BY revenue DESC, o.customer_id LIMIT 10",
        "SELECT customer_id, lines, revenue FROM customer_totals ORDER BY revenue DESC, customer_id LIMIT 10",
        (),
    ),
    "monthly_sales": (
        "June's sales by product",
        "SELECT product_id, units, revenue FROM monthly_sales_live WHERE month = %s ORDER BY product_id",
        "SELECT product_id, units, revenue FROM monthly_sales WHERE month = %s ORDER BY product_id",
        (REPORT_MONTH,),
    ),
}

ORDERS_DISAGREEING = """
SELECT count(*) FROM orders o
LEFT JOIN (SELECT order_id, sum(quantity * unit_price) AS total FROM order_lines GROUP BY order_id) l USING (order_id)
WHERE o.total <> coalesce(l.total, 0)
"""
CUSTOMERS_DISAGREEING = """
SELECT count(*) FROM customer_totals t
FULL JOIN (SELECT o.customer_id, count(*) AS lines, sum(l.quantity * l.unit_price) AS revenue
           FROM orders o JOIN order_lines l USING (order_id) GROUP BY o.customer_id) live USING (customer_id)
WHERE (t.lines, t.revenue) IS DISTINCT FROM (live.lines, live.revenue)
"""
STALE_ROWS = "SELECT count(*) FROM (TABLE monthly_sales_live EXCEPT TABLE monthly_sales) AS stale"
INSERT_ORDERS = "INSERT INTO orders (order_id, customer_id, ordered_at) SELECT * FROM unnest(%s::int[], %s::int[], %s::date[])"
INSERT_LINES = (
    "INSERT INTO order_lines (order_id, line_no, product_id, quantity, unit_price)"
    " SELECT * FROM unnest(%s::int[], %s::smallint[], %s::int[], %s::int[], %s::numeric[])"
)


@dataclass
class Read:
    copy: str
    report: str
    same_answer: bool
    normalized_rows_read: int
    denormalized_rows_read: int
    # Not compared between runs: an Index Scan becomes an Index Only Scan once VACUUM could mark the
    # pages all-visible, which another session's open snapshot can delay. The rows read are compared.
    normalized_scans: list[str] = field(compare=False)
    denormalized_scans: list[str] = field(compare=False)
    normalized_seconds: float = field(default=0.0, compare=False)
    denormalized_seconds: float = field(default=0.0, compare=False)


@dataclass
class Drift:
    lines_updated: int
    orders_disagreeing: int  # orders.total <> the sum of the order's lines
    customers_disagreeing: int  # customer_totals rows <> the aggregate of the lines


@dataclass
class DenormalizationResult:
    rows: dict[str, int]
    reads: dict[str, Read]
    batch_lines: int
    trigger_calls: dict[str, dict[str, int]]  # per write path: trigger -> rows it fired for
    without_triggers: Drift
    with_triggers: Drift
    concurrent_refresh_without_key: str  # the hint PostgreSQL gives
    stale_rows_before_batch: int
    stale_rows_after_batch: int
    stale_rows_after_refresh: int
    copies_disagreeing_after_batch: tuple[int, int]  # orders, customers: the triggers kept up
    write_seconds: dict[str, float] = field(default_factory=dict, compare=False)
    refresh_seconds: dict[str, float] = field(default_factory=dict, compare=False)

    @property
    def holds(self) -> bool:
        """Each copy answers its report reading fewer rows; the triggers keep the copies right; REFRESH does."""
        reads = self.reads.values()
        return (
            all(r.same_answer and r.denormalized_rows_read < r.normalized_rows_read for r in reads)
            and self.without_triggers.orders_disagreeing > 0
            and (self.with_triggers.orders_disagreeing, self.with_triggers.customers_disagreeing) == (0, 0)
            and self.stale_rows_after_batch > 0 == self.stale_rows_after_refresh
        )


def generate(seed: int = SEED) -> dict[str, list[tuple]]:
    """Customers, products, a year of orders with 1 to 7 lines each (about 200k lines)."""
    rng = random.Random(seed)
    cities = ["Lisbon", "Lyon", "Bonn", "Turin", "Ghent", "Leeds", "Cork", "Split"]
    customers = [(i, f"Customer {i:05d}", rng.choice(cities)) for i in range(1, N_CUSTOMERS + 1)]
    prices = {i: Decimal(rng.randint(150, 25_000)) / 100 for i in range(1, N_PRODUCTS + 1)}
    products = [(i, f"Product {i:03d}", price) for i, price in prices.items()]
    orders, lines = [], []
    for order_id in range(1, N_ORDERS + 1):
        orders.append(
            (order_id, rng.randint(1, N_CUSTOMERS), date(2024, 1, 1) + timedelta(days=rng.randrange(366)))
        )
        for line_no, product_id in enumerate(
            rng.sample(range(1, N_PRODUCTS + 1), rng.randint(1, 7)), start=1
        ):
            lines.append((order_id, line_no, product_id, rng.randint(1, 5), prices[product_id]))
    return {"customers": customers, "products": products, "orders": orders, "order_lines": lines}


def new_batch(seed: int = SEED) -> tuple[list[tuple], list[tuple]]:
    """December orders placed after the copies were built: the write the lesson measures."""
    rng = random.Random(seed + 1)
    orders = [
        (N_ORDERS + i, rng.randint(1, N_CUSTOMERS), date(2024, 12, rng.randint(1, 31)))
        for i in range(1, BATCH_ORDERS + 1)
    ]
    lines = [
        (
            order_id,
            line_no,
            rng.randint(1, N_PRODUCTS),
            rng.randint(1, 5),
            Decimal(rng.randint(150, 25_000)) / 100,
        )
        for order_id, _, _ in orders
        for line_no in range(1, BATCH_LINES_PER_ORDER + 1)
    ]
    return orders, lines


def columns(rows: list[tuple]) -> list[list]:
    """Rows as one list per column, for INSERT ... SELECT FROM unnest(...)."""
    return [list(column) for column in zip(*rows, strict=True)]


def load(conn: psycopg.Connection, data: dict[str, list[tuple]]) -> dict[str, int]:
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SCHEMA)))
        cur.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(SCHEMA)))
        # A SET in a committed transaction stays for the session.
        cur.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(SCHEMA)))
        for statement in NORMALIZED:
            cur.execute(statement)
        for table, rows in data.items():
            with cur.copy(sql.SQL("COPY {} FROM STDIN").format(sql.Identifier(table))) as copy:
                for row in rows:
                    copy.write_row(row)
        for statement in KEYS:  # after the load: one check per key instead of one per row
            cur.execute(statement)
        counts = {}
        for table in data:
            cur.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
            counts[table] = cur.fetchone()[0]
    return counts


def add_copies(conn: psycopg.Connection) -> str:
    """Build the three copies; returns what REFRESH CONCURRENTLY says before the unique index exists."""
    with conn.transaction(), conn.cursor() as cur:
        for statement in ORDER_TOTAL + CUSTOMER_TOTALS + MONTHLY_SALES:
            cur.execute(statement)
    try:
        with conn.transaction():
            conn.execute("REFRESH MATERIALIZED VIEW CONCURRENTLY monthly_sales")
        refused = ""
    except psycopg.errors.ObjectNotInPrerequisiteState as error:
        refused = error.diag.message_hint or str(error)
    conn.execute(MONTHLY_SALES_KEY)
    conn.execute("VACUUM ANALYZE orders")  # the backfill UPDATE left a dead version of every order
    conn.execute("ANALYZE customers, products, order_lines, customer_totals, monthly_sales")
    return refused


def rows_read(conn: psycopg.Connection, query: str, params: tuple) -> tuple[int, list[str]]:
    """Rows the table scans of the plan returned or filtered out, and those scans."""
    plan = conn.execute(
        sql.SQL("EXPLAIN (ANALYZE, FORMAT JSON) {}").format(sql.SQL(query)), params
    ).fetchone()[0]
    nodes, stack = [], [plan[0]["Plan"]]
    while stack:
        node = stack.pop()
        nodes.append(node)
        stack.extend(reversed(node.get("Plans", [])))
    scans = [node for node in nodes if "Relation Name" in node]
    read = sum(
        (
            node["Actual Rows"]
            + node.get("Rows Removed by Filter", 0)
            + node.get("Rows Removed by Index Recheck", 0)
        )
        * node["Actual Loops"]
        for node in scans
    )
    return round(read), [f"{node['Node Type']} on {node['Relation Name']}" for node in scans]


def compare_reads(conn: psycopg.Connection) -> dict[str, Read]:
    reads = {}
    for technique, (report, normalized, denormalized, params) in REPORTS.items():
        same = conn.execute(normalized, params).fetchall() == conn.execute(denormalized, params).fetchall()
        normalized_read, normalized_scans = rows_read(conn, normalized, params)
        denormalized_read, denormalized_scans = rows_read(conn, denormalized, params)
        reads[technique] = Read(
            copy=technique,
            report=report,
            same_answer=same,
            normalized_rows_read=normalized_read,
            denormalized_rows_read=denormalized_read,
            normalized_scans=normalized_scans,
            denormalized_scans=denormalized_scans,
            normalized_seconds=best_of(
                lambda q=normalized, p=params: conn.execute(q, p).fetchall(), repeat=2
            ),
            denormalized_seconds=best_of(
                lambda q=denormalized, p=params: conn.execute(q, p).fetchall(), repeat=5
            ),
        )
    return reads


def disable(conn: psycopg.Connection, triggers: tuple[str, ...]) -> None:
    """Inside a transaction, so its ROLLBACK turns them back on (other writers wait on the lock meanwhile)."""
    for trigger in triggers:
        conn.execute(sql.SQL("ALTER TABLE order_lines DISABLE TRIGGER {}").format(sql.Identifier(trigger)))


def insert_batch(
    conn: psycopg.Connection, disabled: tuple[str, ...], repeat: int = 2
) -> tuple[dict[str, int], float]:
    """Insert the batch's lines with some triggers off, every attempt rolled back.

    Returns how many times each of the lesson's triggers fired (from EXPLAIN ANALYZE) and the best time.
    """
    orders, lines = new_batch()
    with conn.transaction():
        disable(conn, disabled)
        conn.execute(INSERT_ORDERS, columns(orders))
        plan = conn.execute(
            sql.SQL("EXPLAIN (ANALYZE, FORMAT JSON) {}").format(sql.SQL(INSERT_LINES)), columns(lines)
        ).fetchone()[0][0]
        raise psycopg.Rollback()
    calls = {t["Trigger Name"]: t["Calls"] for t in plan.get("Triggers", []) if t["Trigger Name"] in TRIGGERS}
    runs = []
    for _ in range(repeat):
        with conn.transaction():
            disable(conn, disabled)
            conn.execute(INSERT_ORDERS, columns(orders))
            with timer() as elapsed:
                conn.execute(INSERT_LINES, columns(lines))
            runs.append(elapsed.seconds)
            raise psycopg.Rollback()
    return calls, min(runs)


def drift_after_update(conn: psycopg.Connection, disabled: tuple[str, ...]) -> Drift:
    """Give every line of one product one more unit, count the copies that disagree, roll back."""
    with conn.transaction():
        disable(conn, disabled)
        updated = conn.execute(
            "UPDATE order_lines SET quantity = quantity + 1 WHERE product_id = %s", (UPDATED_PRODUCT,)
        ).rowcount
        drift = Drift(updated, count(conn, ORDERS_DISAGREEING), count(conn, CUSTOMERS_DISAGREEING))
        raise psycopg.Rollback()
    return drift


def count(conn: psycopg.Connection, query: str) -> int:
    return conn.execute(query).fetchone()[0]


def run(conn: psycopg.Connection) -> DenormalizationResult:
    """Switches `conn` to autocommit; each unit of work below is an explicit conn.transaction()."""
    conn.autocommit = True
    console.title("Denormalization: read speed bought with write cost and consistency risk")

    # One process per query, so the rows each plan reads do not depend on free workers.
    conn.execute("SET max_parallel_workers_per_gather = 0")
    # VACUUM marks pages all-visible (Index Only Scans) only once their commits are flushed to the WAL.
    conn.execute("SET synchronous_commit = on")

    console.step("Load the normalized schema")
    rows = load(conn, generate())
    console.table(["table", "rows"], rows.items())

    console.step("Add three copies of derived facts, and what keeps each one right")
    refused = add_copies(conn)
    console.table(
        ["technique", "copy", "kept right by"],
        [
            ("redundant column", "orders.total", "row trigger on order_lines"),
            ("summary table", "customer_totals", "row trigger on order_lines"),
            ("materialized view", "monthly_sales", "REFRESH ... CONCURRENTLY"),
        ],
    )
    console.say(
        "orders.total: the sum of the order's lines. customer_totals: lines and revenue per customer."
    )
    console.say("monthly_sales: units and revenue per month and product.")
    console.say(f"REFRESH CONCURRENTLY before monthly_sales has a unique index is refused: {refused}")

    console.step("Read: the same report from the normalized tables, then from the copy")
    reads = compare_reads(conn)
    console.say("; ".join(f"{r.copy}: {r.report}" for r in reads.values()))
    console.table(
        ["copy", "rows read", "ms", "speed-up"],
        [
            (
                r.copy,
                f"{r.normalized_rows_read:,} -> {r.denormalized_rows_read:,}",
                f"{r.normalized_seconds * 1000:,.1f} -> {r.denormalized_seconds * 1000:,.2f}",
                f"{r.normalized_seconds / r.denormalized_seconds:,.0f}x",
            )
            for r in reads.values()
        ],
    )
    console.say(f"same answers both ways: {all(r.same_answer for r in reads.values())}")

    console.step(
        f"Write: insert {BATCH_ORDERS * BATCH_LINES_PER_ORDER:,} order lines, with and without the triggers"
    )
    write_paths = {"no trigger": TRIGGERS, "orders.total trigger": TRIGGERS[1:], "both triggers": ()}
    calls, seconds = {}, {}
    for path, disabled in write_paths.items():
        calls[path], seconds[path] = insert_batch(conn, disabled)
    base = seconds["no trigger"]
    console.table(
        ["write path", "trigger calls", "ms", "against no trigger"],
        [
            (path, sum(calls[path].values()), f"{s * 1000:.1f}", f"{s / base:.1f}x")
            for path, s in seconds.items()
        ],
    )
    refresh = {}
    for how, statement in (("REFRESH", "REFRESH MATERIALIZED VIEW monthly_sales"),
                           ("REFRESH CONCURRENTLY", "REFRESH MATERIALIZED VIEW CONCURRENTLY monthly_sales")):  # fmt: skip
        with timer() as elapsed:
            conn.execute(statement)
        refresh[how] = elapsed.seconds
    console.say(
        "Each trigger runs one more statement per inserted line. The view costs nothing per write, and"
    )
    console.say(
        f"a full recount per refresh: {console.seconds(refresh['REFRESH'])} plain (readers wait), "
        f"{console.seconds(refresh['REFRESH CONCURRENTLY'])} CONCURRENTLY (readers go on; it diffs old and new)."
    )

    console.step(
        f"Consistency: one UPDATE (every line of product {UPDATED_PRODUCT}), with the triggers off, then on"
    )
    without = drift_after_update(conn, TRIGGERS)
    with_triggers = drift_after_update(conn, ())
    console.table(
        ["triggers", "lines updated", "orders.total wrong", "customer_totals wrong"],
        [
            ("off", without.lines_updated, without.orders_disagreeing, without.customers_disagreeing),
            (
                "on",
                with_triggers.lines_updated,
                with_triggers.orders_disagreeing,
                with_triggers.customers_disagreeing,
            ),
        ],
    )
    console.say("A trigger covers the writes it is attached to and no others: a bulk load with triggers")
    console.say("disabled, or a new write path (moving an order to another customer), needs its own care.")

    console.step("Staleness: commit the new orders, count the rows the view has wrong, REFRESH")
    stale_before = count(conn, STALE_ROWS)
    orders, lines = new_batch()
    with conn.transaction():
        conn.execute(INSERT_ORDERS, columns(orders))
        conn.execute(INSERT_LINES, columns(lines))
    stale_after = count(conn, STALE_ROWS)
    copies_after = (count(conn, ORDERS_DISAGREEING), count(conn, CUSTOMERS_DISAGREEING))
    conn.execute("REFRESH MATERIALIZED VIEW CONCURRENTLY monthly_sales")
    stale_refreshed = count(conn, STALE_ROWS)
    console.table(
        ["moment", "monthly_sales rows stale or missing"],
        [
            ("before the new orders", stale_before),
            (f"after {len(lines):,} new lines committed", stale_after),
            ("after REFRESH ... CONCURRENTLY", stale_refreshed),
        ],
    )
    console.say(
        f"Meanwhile the trigger-kept copies were right all along: {copies_after[0]} orders.total and "
        f"{copies_after[1]} customer_totals rows disagree."
    )
    conn.execute("RESET ALL")

    return DenormalizationResult(
        rows=rows,
        reads=reads,
        batch_lines=len(lines),
        trigger_calls=calls,
        without_triggers=without,
        with_triggers=with_triggers,
        concurrent_refresh_without_key=refused,
        stale_rows_before_batch=stale_before,
        stale_rows_after_batch=stale_after,
        stale_rows_after_refresh=stale_refreshed,
        copies_disagreeing_after_batch=copies_after,
        write_seconds=seconds,
        refresh_seconds=refresh,
    )


def main() -> int:
    require(*REQUIRES)
    with psycopg.connect(postgres_url(), connect_timeout=CONNECT_TIMEOUT_S, autocommit=True) as conn:
        result = run(conn)
    return 0 if result.holds else 1


if __name__ == "__main__":
    raise SystemExit(main())

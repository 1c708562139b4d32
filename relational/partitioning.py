"""Partitioning: range, list and hash partitions, pruning counted in the plan, and a vertical split

Horizontal partitioning splits one table's rows into several tables behind one name. This lesson
builds the three kinds PostgreSQL offers: orders by RANGE of month, customers by LIST of region
and payments by HASH of customer (modulus 4), each with a DEFAULT partition where one is allowed
to catch what no partition takes. It counts, in EXPLAIN (FORMAT JSON), how many partitions a
one-month query reads against all of them (pruning at plan time, and at run time for a generic
prepared plan), then retires a month two ways, DELETE against DETACH + DROP, measuring both.
Vertical partitioning moves the large, rarely read columns of a wide table (a long description and
a jsonb blob) to a 1:1 side table, and EXPLAIN (ANALYZE, BUFFERS) counts the pages a scan of the
hot columns reads before and after.

Engine: PostgreSQL (POSTGRES_URL), schema `partitioning`.
Run: `make up SERVICES=postgres` (or `make local-up`), then `python relational/partitioning.py`.
Look for: one month reading "1 of 13" partitions, "Subplans Removed: 12", DROP beating DELETE (which
leaves the month's bytes on disk), and the hot query reading a fraction of the pages after the split.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

import psycopg
from psycopg import sql

from common import console
from common.settings import CONNECT_TIMEOUT_S, postgres_url, require
from common.timing import best_of, timer

REQUIRES = ("postgres",)
SCHEMA = "partitioning"
SEED = 11
YEAR = 2024
N_ORDERS = 240_000
OUT_OF_RANGE_SHARE = 0.01  # orders dated outside the year: late corrections, early pre-orders
N_CUSTOMERS = 50_000
REGIONS = {"eu": 40, "na": 30, "apac": 20, "latam": 6, "mea": 4}  # share of customers, in %
LISTED_REGIONS = ("eu", "na", "apac")  # the rest land in the DEFAULT partition
N_PAYMENTS = 100_000
HASH_MODULUS = 4
N_PRODUCTS = 12_000
DESCRIPTION_CHARS = 1_200  # stays in the row: TOAST only steps in above about 2 kB per row
QUERY_MONTH = 3
RETIRED_MONTH = 1
UTC = timezone.utc

ORDERS_TABLE = """
CREATE TABLE orders (
    order_id bigint NOT NULL, customer_id integer NOT NULL, ordered_at timestamptz NOT NULL,
    amount_cents integer NOT NULL, status text NOT NULL
) PARTITION BY RANGE (ordered_at)
"""
# Added after the load (one index build per partition beats 240k index insertions). A unique key
# on a partitioned table must contain the partition key: each partition checks only its own rows.
ORDERS_KEY = "ALTER TABLE orders ADD PRIMARY KEY (order_id, ordered_at)"
CUSTOMERS_TABLE = """
CREATE TABLE customers (
    customer_id integer NOT NULL, region text NOT NULL, name text NOT NULL, signed_up date NOT NULL
) PARTITION BY LIST (region)
"""
PAYMENTS_TABLE = """
CREATE TABLE payments (
    payment_id bigint NOT NULL, customer_id integer NOT NULL, paid_at timestamptz NOT NULL,
    amount_cents integer NOT NULL
) PARTITION BY HASH (customer_id)
"""
WIDE_TABLE = """
CREATE TABLE products_wide (
    product_id integer PRIMARY KEY, sku text NOT NULL, name text NOT NULL, category text NOT NULL,
    price_cents integer NOT NULL, stock integer NOT NULL,
    description text NOT NULL, attributes jsonb NOT NULL
)
"""
VERTICAL_SPLIT = [
    "CREATE TABLE products AS SELECT product_id, sku, name, category, price_cents, stock FROM products_wide",
    "ALTER TABLE products ADD PRIMARY KEY (product_id)",
    "CREATE TABLE product_details AS SELECT product_id, description, attributes FROM products_wide",
    "ALTER TABLE product_details ADD PRIMARY KEY (product_id),"
    " ADD FOREIGN KEY (product_id) REFERENCES products ON DELETE CASCADE",
]

MONTH_TOTAL = "SELECT count(*), sum(amount_cents) FROM orders WHERE ordered_at >= %s AND ordered_at < %s"
ALL_TOTAL = "SELECT count(*), sum(amount_cents) FROM orders"
PREPARED_MONTH_TOTAL = (
    "PREPARE month_total(timestamptz) AS SELECT count(*), sum(amount_cents) FROM orders"
    " WHERE ordered_at >= $1 AND ordered_at < $1 + interval '1 month'"
)
HOT_QUERY = {
    "products_wide": "SELECT category, count(*), sum(price_cents * stock) FROM products_wide GROUP BY category",
    "products": "SELECT category, count(*), sum(price_cents * stock) FROM products GROUP BY category",
}
PRODUCT_PAGE = (
    "SELECT p.name, p.price_cents, d.description, d.attributes"
    " FROM products p JOIN product_details d USING (product_id) WHERE p.product_id = %s"
)
SPLIT_MISMATCHES = """
SELECT count(*) FROM products_wide w
LEFT JOIN products p USING (product_id)
LEFT JOIN product_details d USING (product_id)
WHERE (w.sku, w.name, w.category, w.price_cents, w.stock, w.description, w.attributes)
      IS DISTINCT FROM (p.sku, p.name, p.category, p.price_cents, p.stock, d.description, d.attributes)
"""
COPY_TYPES = {
    "orders": ["int8", "int4", "timestamptz", "int4", "text"],
    "customers": ["int4", "text", "text", "date"],
    "payments": ["int8", "int4", "timestamptz", "int4"],
    "products_wide": ["int4", "text", "text", "text", "int4", "int4", "text", "jsonb"],
}
CATEGORIES = ["garden", "kitchen", "toys", "books", "sports", "office", "audio", "bath"]
WORDS = ["solid", "durable", "light", "compact", "handmade", "recycled", "steel", "oak", "cotton", "wool",
         "glass", "ceramic", "matte", "glossy", "quiet", "fast", "portable", "modular", "classic", "modern",
         "warm", "cool", "soft", "sturdy", "washable"]  # fmt: skip
COLORS = ["red", "green", "blue", "black", "white"]
STATUSES = ["paid", "shipped", "returned"]


@dataclass
class Retention:
    month_rows: int  # rows of the retired month
    deleted_rows: int  # what DELETE removed (then rolled back)
    partitions_after_delete: int  # DELETE empties a partition, it does not remove it
    bytes_before_delete: int  # the partition's size before DELETE
    bytes_after_delete: int  # and right after it: the same, the space is not given back
    rows_gone_after_drop: int
    partitions_after_drop: int
    partition_left_after_drop: bool  # to_regclass() still finds the dropped partition's table
    delete_s: float = field(compare=False)
    drop_s: float = field(compare=False)


@dataclass
class VerticalSplit:
    wide_bytes: int
    narrow_bytes: int
    details_bytes: int
    wide_toast_bytes: int
    wide_buffers: int  # pages the hot-column scan touched (shared hit + read)
    narrow_buffers: int
    rows_per_page_wide: float
    rows_per_page_narrow: float
    mismatches_after_split: int  # rows that differ between the wide table and the join of the two
    wide_s: float = field(compare=False)
    narrow_s: float = field(compare=False)


@dataclass
class PartitioningResult:
    rows: dict[str, int]  # table -> rows loaded
    partition_rows: dict[str, int]  # partition -> rows it holds
    hash_default_refused: str  # the error class PostgreSQL raises for a DEFAULT on a hash table
    partitions_of_orders: int
    scanned_one_month: list[str]  # partitions read by the one-month query
    scanned_without_pruning: int  # the same query with enable_partition_pruning off
    scanned_all_months: int  # a query with no condition on the month
    scanned_generic_plan: list[str]  # partitions left in a generic prepared plan after run-time pruning
    subplans_removed_at_run_time: int
    scanned_other_region: list[str]  # WHERE region = 'latam'
    scanned_one_customer: list[str]  # payments WHERE customer_id = ...
    month_result_same_either_way: bool
    retention: Retention
    vertical: VerticalSplit
    pruned_s: float = field(compare=False)
    unpruned_s: float = field(compare=False)

    @property
    def holds(self) -> bool:
        """One month read one partition (at plan and at run time); DROP retired exactly the month's rows."""
        retired = self.retention
        return (
            len(self.scanned_one_month) == 1 < self.scanned_without_pruning
            and len(self.scanned_generic_plan) == 1
            and retired.rows_gone_after_drop == retired.month_rows == retired.deleted_rows
            and not retired.partition_left_after_drop
        )


def cents(draw, low: int, high: int) -> int:
    """An amount in cents between low and high units (draw is rng.random, the cheapest call)."""
    return low * 100 + int(draw() * (high - low) * 100)


def generate_orders(rng: random.Random) -> list[tuple]:
    start, end = month_start(1), month_start(13)
    year_s = int((end - start).total_seconds())
    draw = rng.random
    rows = []
    for order_id in range(1, N_ORDERS + 1):
        if draw() < OUT_OF_RANGE_SHARE:  # up to 20 days either side of the year
            shift = timedelta(seconds=1 + int(draw() * 20 * 86400))
            ordered_at = start - shift if draw() < 0.5 else end + shift
        else:
            ordered_at = start + timedelta(seconds=int(draw() * year_s))
        customer = 1 + int(draw() * N_CUSTOMERS)
        rows.append(
            (order_id, customer, ordered_at, cents(draw, 5, 500), STATUSES[int(draw() * len(STATUSES))])
        )
    return rows


def generate_customers(rng: random.Random) -> list[tuple]:
    regions = rng.choices(list(REGIONS), list(REGIONS.values()), k=N_CUSTOMERS)
    first_day = date(2020, 1, 1)
    return [
        (i, region, f"Customer {i:05d}", first_day + timedelta(days=int(rng.random() * 1800)))
        for i, region in enumerate(regions, start=1)
    ]


def generate_payments(rng: random.Random) -> list[tuple]:
    start, draw = month_start(1), rng.random
    return [
        (
            i,
            1 + int(draw() * N_CUSTOMERS),
            start + timedelta(seconds=int(draw() * 365 * 86400)),
            cents(draw, 5, 500),
        )
        for i in range(1, N_PAYMENTS + 1)
    ]


def generate_products(rng: random.Random) -> list[tuple]:
    sentences = [" ".join(rng.choices(WORDS, k=12)).capitalize() + "." for _ in range(300)]
    per_description = DESCRIPTION_CHARS // 80 + 2  # sentences are about 85 characters long
    rows = []
    for i in range(1, N_PRODUCTS + 1):
        description = " ".join(rng.choices(sentences, k=per_description))[:DESCRIPTION_CHARS]
        attributes = {
            "color": rng.choice(COLORS),
            "weight_g": rng.randint(50, 5000),
            "dimensions_mm": [rng.randint(10, 900) for _ in range(3)],
            "materials": rng.choices(WORDS[6:12], k=2),
            "care": rng.choice(sentences),
        }
        rows.append(
            (i, f"SKU-{i:06d}", f"Product {i:06d}", rng.choice(CATEGORIES), cents(rng.random, 1, 900),
             rng.randint(0, 500), description, attributes)
        )  # fmt: skip
    return rows


def reset_schema(conn: psycopg.Connection) -> None:
    with conn.cursor() as cur:
        cur.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SCHEMA)))
        cur.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(SCHEMA)))
        cur.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(SCHEMA)))
        cur.execute("SET TimeZone TO 'UTC'")  # month boundaries of timestamptz bounds depend on it
    conn.commit()


def month_start(month: int) -> datetime:
    return datetime(YEAR + (month - 1) // 12, (month - 1) % 12 + 1, 1, tzinfo=UTC)


def month_partition(month: int) -> str:
    return f"orders_{YEAR}_{month:02d}"


def create_partitions(conn: psycopg.Connection) -> tuple[str, str]:
    """Range by month, list by region, hash by customer; returns the error a hash DEFAULT raises."""
    with conn.cursor() as cur:
        cur.execute(ORDERS_TABLE)
        for month in range(1, 13):
            # DDL takes no bound parameters: bounds go in as quoted literals, names as identifiers.
            cur.execute(
                sql.SQL("CREATE TABLE {} PARTITION OF orders FOR VALUES FROM ({}) TO ({})").format(
                    sql.Identifier(month_partition(month)),
                    sql.Literal(month_start(month)),
                    sql.Literal(month_start(month + 1)),
                )
            )
        cur.execute("CREATE TABLE orders_default PARTITION OF orders DEFAULT")

        cur.execute(CUSTOMERS_TABLE)
        for region in LISTED_REGIONS:
            cur.execute(
                sql.SQL("CREATE TABLE {} PARTITION OF customers FOR VALUES IN ({})").format(
                    sql.Identifier(f"customers_{region}"), sql.Literal(region)
                )
            )
        cur.execute("CREATE TABLE customers_other PARTITION OF customers DEFAULT")

        cur.execute(PAYMENTS_TABLE)
        for remainder in range(HASH_MODULUS):
            cur.execute(
                sql.SQL(
                    "CREATE TABLE {} PARTITION OF payments FOR VALUES WITH (MODULUS {}, REMAINDER {})"
                ).format(
                    sql.Identifier(f"payments_{remainder}"), sql.Literal(HASH_MODULUS), sql.Literal(remainder)
                )
            )
    conn.commit()
    try:
        conn.execute("CREATE TABLE payments_default PARTITION OF payments DEFAULT")
        refused = ("", "accepted")
    except psycopg.errors.InvalidTableDefinition as error:
        refused = (type(error).__name__, f"{error.sqlstate}: {error.diag.message_primary}")
    conn.rollback()
    return refused


def load(conn: psycopg.Connection) -> dict[str, int]:
    rng = random.Random(SEED)
    batches = {
        "orders": generate_orders(rng),
        "customers": generate_customers(rng),
        "payments": generate_payments(rng),
        "products_wide": generate_products(rng),
    }
    with conn.cursor() as cur:
        cur.execute(WIDE_TABLE)
        with console.progress("loading", sum(len(rows) for rows in batches.values())) as advance:
            for table, rows in batches.items():
                # COPY into the parent: PostgreSQL routes each row to its partition. Binary COPY
                # spares the server parsing every timestamp from text.
                statement = sql.SQL("COPY {} FROM STDIN (FORMAT BINARY)").format(sql.Identifier(table))
                with cur.copy(statement) as copy:
                    copy.set_types(COPY_TYPES[table])
                    for row in rows:
                        copy.write_row(row)
                advance(len(rows))
        cur.execute(ORDERS_KEY)
    conn.commit()
    return {table: len(rows) for table, rows in batches.items()}


def rows_per_partition(conn: psycopg.Connection) -> dict[str, int]:
    with conn.cursor() as cur:
        counts = {}
        for parent in ("orders", "customers", "payments"):
            cur.execute(
                sql.SQL("SELECT tableoid::regclass::text, count(*) FROM {} GROUP BY 1 ORDER BY 1").format(
                    sql.Identifier(parent)
                )
            )
            counts.update(dict(cur.fetchall()))
    conn.rollback()
    return counts


def plan_json(conn: psycopg.Connection, query: str, params: tuple = (), analyze: bool = False) -> dict:
    options = "ANALYZE, BUFFERS, FORMAT JSON" if analyze else "FORMAT JSON"
    with conn.cursor() as cur:
        cur.execute(sql.SQL("EXPLAIN ({}) ").format(sql.SQL(options)) + sql.SQL(query), params)
        return cur.fetchone()[0][0]["Plan"]


def plan_nodes(node: dict) -> list[dict]:
    return [node, *(child for sub in node.get("Plans", []) for child in plan_nodes(sub))]


def scanned_tables(plan: dict) -> list[str]:
    """Tables a plan reads: every node that names a relation (partitions appear by name)."""
    return sorted({node["Relation Name"] for node in plan_nodes(plan) if "Relation Name" in node})


def plan_text(conn: psycopg.Connection, query: str, params: tuple = ()) -> str:
    with conn.cursor() as cur:
        cur.execute(sql.SQL("EXPLAIN (COSTS OFF) ") + sql.SQL(query), params)
        return "\n".join(row[0] for row in cur.fetchall())


def month_bounds(month: int) -> tuple[datetime, datetime]:
    return month_start(month), month_start(month + 1)


def pruning_at_plan_time(conn: psycopg.Connection) -> dict:
    bounds = month_bounds(QUERY_MONTH)
    one_month = scanned_tables(plan_json(conn, MONTH_TOTAL, bounds))
    all_months = scanned_tables(plan_json(conn, ALL_TOTAL))
    shown = plan_text(conn, MONTH_TOTAL, bounds)
    pruned_answer = conn.execute(MONTH_TOTAL, bounds).fetchone()
    pruned_s = best_of(lambda: conn.execute(MONTH_TOTAL, bounds).fetchall(), repeat=5)

    conn.execute("SET enable_partition_pruning = off")
    unpruned = scanned_tables(plan_json(conn, MONTH_TOTAL, bounds))
    unpruned_answer = conn.execute(MONTH_TOTAL, bounds).fetchone()
    unpruned_s = best_of(lambda: conn.execute(MONTH_TOTAL, bounds).fetchall(), repeat=5)
    conn.execute("RESET enable_partition_pruning")
    conn.rollback()
    return {
        "one_month": one_month,
        "unpruned": unpruned,
        "all_months": all_months,
        "plan": shown,
        "same_answer": pruned_answer == unpruned_answer,
        "pruned_s": pruned_s,
        "unpruned_s": unpruned_s,
    }


def pruning_at_run_time(conn: psycopg.Connection) -> tuple[list[str], int, str]:
    """A generic plan cannot know the month; the executor prunes when it learns the parameter."""
    conn.execute("SET plan_cache_mode = force_generic_plan")
    conn.execute(PREPARED_MONTH_TOTAL)
    # EXECUTE takes no server-side parameters, so this one statement binds on the client
    # (psycopg quotes the value); every other query in the lesson binds on the server.
    with psycopg.ClientCursor(conn) as cur:
        cur.execute(
            "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE month_total(%s)",
            [month_start(QUERY_MONTH)],
        )
        text = "\n".join(row[0] for row in cur.fetchall())
        cur.execute("EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE month_total(%s)", [month_start(QUERY_MONTH)])
        plan = cur.fetchone()[0][0]["Plan"]
    conn.execute("DEALLOCATE month_total")
    conn.execute("RESET plan_cache_mode")
    conn.rollback()
    removed = sum(node.get("Subplans Removed", 0) for node in plan_nodes(plan))
    return scanned_tables(plan), removed, text


def retention(conn: psycopg.Connection) -> Retention:
    """Retire one month: DELETE (measured, then rolled back) against DETACH + DROP."""
    partition = month_partition(RETIRED_MONTH)
    bounds = month_bounds(RETIRED_MONTH)
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM orders")
        before = cur.fetchone()[0]
        cur.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(partition)))
        month_rows = cur.fetchone()[0]
    conn.commit()

    with conn.cursor() as cur:
        cur.execute("SELECT pg_relation_size(%s::regclass)", [partition])
        bytes_before_delete = cur.fetchone()[0]
        with timer() as deleting:
            cur.execute("DELETE FROM orders WHERE ordered_at >= %s AND ordered_at < %s", bounds)
            deleted = cur.rowcount
        cur.execute("SELECT pg_relation_size(%s::regclass)", [partition])
        bytes_after_delete = cur.fetchone()[0]
        partitions_after_delete = count_partitions(cur, "orders")
    conn.rollback()  # put the month back, so DROP retires the very same rows

    with conn.cursor() as cur:
        with timer() as dropping:
            cur.execute(sql.SQL("ALTER TABLE orders DETACH PARTITION {}").format(sql.Identifier(partition)))
            cur.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(partition)))
            conn.commit()
        cur.execute("SELECT count(*) FROM orders")
        after = cur.fetchone()[0]
        partitions_after_drop = count_partitions(cur, "orders")
        cur.execute("SELECT to_regclass(%s) IS NOT NULL", [partition])
        left_after_drop = cur.fetchone()[0]
    conn.commit()
    return Retention(
        month_rows=month_rows,
        deleted_rows=deleted,
        partitions_after_delete=partitions_after_delete,
        bytes_before_delete=bytes_before_delete,
        bytes_after_delete=bytes_after_delete,
        rows_gone_after_drop=before - after,
        partitions_after_drop=partitions_after_drop,
        partition_left_after_drop=left_after_drop,
        delete_s=deleting.seconds,
        drop_s=dropping.seconds,
    )


def count_partitions(cur: psycopg.Cursor, parent: str) -> int:
    cur.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = %s::regclass", [parent])
    return cur.fetchone()[0]


def scan_buffers(plan: dict, table: str) -> int:
    return sum(
        node.get("Shared Hit Blocks", 0) + node.get("Shared Read Blocks", 0)
        for node in plan_nodes(plan)
        if node.get("Relation Name") == table
    )


def table_size(cur: psycopg.Cursor, table: str) -> tuple[int, int, int]:
    """Bytes of the table itself, bytes of its TOAST table, and its pages."""
    cur.execute(
        "SELECT pg_relation_size(c.oid), coalesce(pg_total_relation_size(NULLIF(c.reltoastrelid, 0)), 0),"
        " pg_relation_size(c.oid) / current_setting('block_size')::int FROM pg_class c WHERE c.oid = %s::regclass",
        [table],
    )
    return cur.fetchone()


def vertical_split(conn: psycopg.Connection) -> VerticalSplit:
    with conn.cursor() as cur:
        for statement in VERTICAL_SPLIT:
            cur.execute(statement)
        wide, narrow, details = (table_size(cur, t) for t in ("products_wide", "products", "product_details"))
        cur.execute("SELECT count(*) FROM products_wide")
        (products,) = cur.fetchone()
        cur.execute(SPLIT_MISMATCHES)
        mismatches = cur.fetchone()[0]
    conn.commit()
    buffers = {
        table: scan_buffers(plan_json(conn, query, analyze=True), table) for table, query in HOT_QUERY.items()
    }
    seconds = {
        table: best_of(lambda q=query: conn.execute(q).fetchall(), repeat=5)
        for table, query in HOT_QUERY.items()
    }
    conn.rollback()
    return VerticalSplit(
        wide_bytes=wide[0],
        narrow_bytes=narrow[0],
        details_bytes=details[0],
        wide_toast_bytes=wide[1],
        wide_buffers=buffers["products_wide"],
        narrow_buffers=buffers["products"],
        rows_per_page_wide=round(products / wide[2], 1),
        rows_per_page_narrow=round(products / narrow[2], 1),
        mismatches_after_split=mismatches,
        wide_s=seconds["products_wide"],
        narrow_s=seconds["products"],
    )


def run(conn: psycopg.Connection) -> PartitioningResult:
    console.title("Partitioning: range, list, hash, pruning, retention and a vertical split")

    console.step("Create the partitioned tables: orders by month, customers by region, payments by customer")
    reset_schema(conn)
    refused_by, refusal = create_partitions(conn)
    console.say("A DEFAULT partition takes rows no bound matches; a hash table cannot have one:")
    console.say(f"CREATE TABLE payments_default PARTITION OF payments DEFAULT -> {refused_by} ({refusal})")

    console.step("Load them with COPY into the parent: each row is routed to its partition")
    with timer() as loading:
        rows = load(conn)
    partitions = rows_per_partition(conn)
    console.say(f"{sum(rows.values()):,} rows in {console.seconds(loading.seconds)}")
    _show_partitions(partitions)

    console.step(
        f"Ask for one month ({YEAR}-{QUERY_MONTH:02d}): the planner skips the partitions that cannot match"
    )
    pruning = pruning_at_plan_time(conn)
    console.plan(pruning["plan"])
    console.table(
        ["query", "partitions read"],
        [
            ("one month", f"{len(pruning['one_month'])} of {len(pruning['unpruned'])}"),
            ("one month, enable_partition_pruning = off", len(pruning["unpruned"])),
            ("the whole table", len(pruning["all_months"])),
        ],
    )
    console.compare("without pruning", pruning["unpruned_s"], "with pruning", pruning["pruned_s"])

    console.step("A generic prepared plan does not know the month: the executor prunes at run time")
    generic_scanned, removed, generic_text = pruning_at_run_time(conn)
    console.plan(generic_text)
    console.say(
        f"partitions left in the plan: {', '.join(generic_scanned)}; subplans removed at run time: {removed}"
    )

    console.step("List and hash partitions prune too")
    other_region = scanned_tables(
        plan_json(conn, "SELECT count(*) FROM customers WHERE region = %s", ("latam",))
    )
    one_customer = scanned_tables(
        plan_json(conn, "SELECT sum(amount_cents) FROM payments WHERE customer_id = %s", (4242,))
    )
    conn.rollback()
    console.table(
        ["query", "partitions read"],
        [("customers WHERE region = 'latam'", ", ".join(other_region)),
         ("payments WHERE customer_id = 4242", ", ".join(one_customer))],
    )  # fmt: skip

    console.step(f"Retire {YEAR}-{RETIRED_MONTH:02d}: DELETE its rows, or DETACH and DROP its partition")
    retired = retention(conn)
    console.table(
        ["way", "rows gone", "partitions after", "time"],
        [
            (
                "DELETE (rolled back)",
                retired.deleted_rows,
                retired.partitions_after_delete,
                console.seconds(retired.delete_s),
            ),
            (
                "DETACH + DROP",
                retired.rows_gone_after_drop,
                retired.partitions_after_drop,
                console.seconds(retired.drop_s),
            ),
        ],
    )
    console.compare("DELETE", retired.delete_s, "DETACH + DROP", retired.drop_s)
    console.say(
        f"after DELETE the partition still takes {console.size(retired.bytes_after_delete)} until VACUUM;"
        " DROP gives the files back at once (DETACH ... CONCURRENTLY avoids blocking readers of the parent)."
    )

    console.step("Vertical split: move the long description and the jsonb blob to a 1:1 side table")
    vertical = vertical_split(conn)
    console.table(
        ["table", "size", "rows per page", "pages the hot query read"],
        [
            ("products_wide", console.size(vertical.wide_bytes), f"{vertical.rows_per_page_wide:.0f}", vertical.wide_buffers),
            ("products", console.size(vertical.narrow_bytes), f"{vertical.rows_per_page_narrow:.0f}", vertical.narrow_buffers),
            ("product_details", console.size(vertical.details_bytes), "", ""),
        ],
    )  # fmt: skip
    console.say(
        f"TOAST of products_wide: {console.size(vertical.wide_toast_bytes)} (rows under ~2 kB stay inline)"
    )
    console.compare("wide table", vertical.wide_s, "narrow table", vertical.narrow_s)
    console.say(
        f"rows that differ between the wide table and products JOIN product_details: {vertical.mismatches_after_split}"
    )
    console.say("The price: a product page now needs a join on the primary key:")
    console.plan(plan_text(conn, PRODUCT_PAGE, (1,)))
    conn.rollback()

    return PartitioningResult(
        rows=rows,
        partition_rows=partitions,
        hash_default_refused=refused_by,
        partitions_of_orders=len(pruning["unpruned"]),
        scanned_one_month=pruning["one_month"],
        scanned_without_pruning=len(pruning["unpruned"]),
        scanned_all_months=len(pruning["all_months"]),
        scanned_generic_plan=generic_scanned,
        subplans_removed_at_run_time=removed,
        scanned_other_region=other_region,
        scanned_one_customer=one_customer,
        month_result_same_either_way=pruning["same_answer"],
        retention=retired,
        vertical=vertical,
        pruned_s=pruning["pruned_s"],
        unpruned_s=pruning["unpruned_s"],
    )


def _show_partitions(partitions: dict[str, int]) -> None:
    rows = []
    for parent, default in (
        ("orders", "orders_default"),
        ("customers", "customers_other"),
        ("payments", None),
    ):
        own = [n for name, n in partitions.items() if name.startswith(parent) and name != default]
        in_default = f"{partitions[default]:,}" if default else "(not allowed)"
        count = f"{len(own)} + DEFAULT" if default else str(len(own))
        rows.append((parent, count, f"{min(own):,} .. {max(own):,}", in_default))
    console.table(["table", "partitions", "rows in each", "rows in DEFAULT"], rows)


def main() -> int:
    require(*REQUIRES)
    with psycopg.connect(postgres_url(), connect_timeout=CONNECT_TIMEOUT_S) as conn:
        result = run(conn)
    return 0 if result.holds else 1


if __name__ == "__main__":
    raise SystemExit(main())

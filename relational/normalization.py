"""Normalization: one flat orders sheet taken to BCNF, with its anomalies counted before and after

A spreadsheet of order lines repeats every customer, product and supplier fact on every row.
This lesson makes the three classic anomalies happen on it and counts them: an update that
leaves rows disagreeing, a fact that cannot be stored without an order, and facts lost when an
order is deleted. It then decomposes the sheet step by step (1NF, 2NF, 3NF, BCNF), naming the
functional dependency each step removes (and checks on the data that the 2NF line table has no
column left that the order alone determines), repeats the same operations on the result (no anomaly
left), and proves the decomposition lossless: joining the parts gives back the sheet, row for row.

Engine: PostgreSQL (POSTGRES_URL), schema `normalization`.
Run: `make up SERVICES=postgres` (or `make local-up`), then `python relational/normalization.py`.
Look for: the anomaly counts falling to zero, "columns of lines_2nf set by order_id alone: none", and
"rows only in the sheet: 0, only in the join: 0".
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from common import console
from common.settings import CONNECT_TIMEOUT_S, postgres_url, require

REQUIRES = ("postgres",)
SCHEMA = "normalization"
SEED = 7
N_CUSTOMERS, N_PRODUCTS, N_ORDERS = 400, 60, 4000
COUNTRIES = {"Lisbon": "PT", "Porto": "PT", "Lyon": "FR", "Paris": "FR", "Bonn": "DE", "Berlin": "DE"}
TAGS = ["eco", "gift", "sale", "new", "bulk"]
ONLY_ORDERS = list(range(1, 11))  # the single orders of the last ten customers

# The sheet: one row per order line; `product_tags` holds several values in one cell.
FLAT_TABLE = """
CREATE TABLE sheet (
    order_id integer NOT NULL, line_no integer NOT NULL, order_date date NOT NULL,
    customer_id integer NOT NULL, customer_name text NOT NULL, customer_city text NOT NULL,
    city_country text NOT NULL, sku text NOT NULL, product_name text NOT NULL,
    unit_price numeric(8,2) NOT NULL, product_tags text NOT NULL, supplier text NOT NULL,
    quantity integer NOT NULL,
    PRIMARY KEY (order_id, line_no)
)
"""

# Each step: the normal form, the tables it creates from the previous step, and what it removes.
STEPS = [
    (
        "1NF",
        "atomic values: product_tags 'eco,gift' becomes one row per tag",
        [
            "CREATE TABLE lines_1nf AS SELECT order_id, line_no, order_date, customer_id, customer_name,"
            " customer_city, city_country, sku, product_name, unit_price, supplier, quantity FROM sheet",
            "CREATE TABLE product_tags AS SELECT DISTINCT sku, unnest(string_to_array(product_tags, ',')) AS tag"
            " FROM sheet",
        ],
    ),
    (
        "2NF",
        "partial dependency order_id -> order_date, customer_*, city_country (part of the key order_id, line_no)",
        [
            "CREATE TABLE orders_2nf AS SELECT DISTINCT order_id, order_date, customer_id, customer_name,"
            " customer_city, city_country FROM lines_1nf",
            "CREATE TABLE lines_2nf AS SELECT order_id, line_no, sku, product_name, unit_price,"
            " supplier, quantity FROM lines_1nf",
        ],
    ),
    (
        "3NF",
        "transitive dependencies customer_id -> name, city; city -> country; sku -> name, price;"
        " (sku, country) -> supplier",
        [
            "CREATE TABLE cities AS SELECT DISTINCT customer_city AS city, city_country AS country FROM orders_2nf",
            "CREATE TABLE customers AS SELECT DISTINCT customer_id, customer_name AS name, customer_city AS city"
            " FROM orders_2nf",
            "CREATE TABLE orders AS SELECT order_id, order_date, customer_id FROM orders_2nf",
            "CREATE TABLE products AS SELECT DISTINCT sku, product_name AS name, unit_price FROM lines_2nf",
            # The supplier depends on the product and the customer's country: the line meets the order.
            "CREATE TABLE sourcing AS SELECT DISTINCT l.sku, o.city_country AS country, l.supplier"
            " FROM lines_2nf AS l JOIN orders_2nf AS o USING (order_id)",
            "CREATE TABLE order_lines AS SELECT order_id, line_no, sku, quantity FROM lines_2nf",
        ],
    ),
    (
        "BCNF",
        "supplier -> country, where supplier is not a key of sourcing(sku, country, supplier)",
        [
            "CREATE TABLE suppliers AS SELECT DISTINCT supplier, country FROM sourcing",
            "CREATE TABLE product_suppliers AS SELECT DISTINCT sku, supplier FROM sourcing",
        ],
    ),
]

KEYS = [
    "ALTER TABLE cities ADD PRIMARY KEY (city)",
    "ALTER TABLE customers ADD PRIMARY KEY (customer_id)",
    "ALTER TABLE customers ADD FOREIGN KEY (city) REFERENCES cities",
    "ALTER TABLE products ADD PRIMARY KEY (sku)",
    "ALTER TABLE product_tags ADD PRIMARY KEY (sku, tag)",
    "ALTER TABLE product_tags ADD FOREIGN KEY (sku) REFERENCES products",
    "ALTER TABLE orders ADD PRIMARY KEY (order_id)",
    "ALTER TABLE orders ADD FOREIGN KEY (customer_id) REFERENCES customers",
    "ALTER TABLE order_lines ADD PRIMARY KEY (order_id, line_no)",
    "ALTER TABLE order_lines ADD FOREIGN KEY (order_id) REFERENCES orders ON DELETE CASCADE",
    "ALTER TABLE order_lines ADD FOREIGN KEY (sku) REFERENCES products",
    "ALTER TABLE suppliers ADD PRIMARY KEY (supplier)",
    "ALTER TABLE product_suppliers ADD PRIMARY KEY (sku, supplier)",
    "ALTER TABLE product_suppliers ADD FOREIGN KEY (sku) REFERENCES products",
    "ALTER TABLE product_suppliers ADD FOREIGN KEY (supplier) REFERENCES suppliers",
]

# The sheet rebuilt from the BCNF tables. The supplier of a line is the one of the product's
# suppliers that serves the customer's country.
RECOVERED_VIEW = """
CREATE VIEW recovered_sheet AS
SELECT o.order_id, l.line_no, o.order_date, c.customer_id, c.name AS customer_name,
       c.city AS customer_city, ci.country AS city_country, p.sku, p.name AS product_name, p.unit_price,
       (SELECT string_agg(t.tag, ',' ORDER BY t.tag) FROM product_tags t WHERE t.sku = p.sku) AS product_tags,
       s.supplier, l.quantity
FROM order_lines l
JOIN orders o USING (order_id)
JOIN customers c USING (customer_id)
JOIN cities ci ON ci.city = c.city
JOIN products p USING (sku)
JOIN product_suppliers ps ON ps.sku = p.sku
JOIN suppliers s ON s.supplier = ps.supplier AND s.country = ci.country
"""
# A column that order_id alone determines has one value per order: a partial dependency, which
# 2NF removes. Checked on the data, for each non-key column of the 2NF line table.
ONE_VALUE_PER_ORDER = """
SELECT count(*) = 0 FROM (
    SELECT order_id FROM lines_2nf GROUP BY order_id HAVING count(DISTINCT {}) > 1
) AS orders_where_it_varies
"""
COUNT_TABLES = ["cities", "customers", "products", "product_tags", "orders", "order_lines", "suppliers",
                "product_suppliers"]  # fmt: skip


@dataclass
class Anomalies:
    rows_disagreeing_after_update: int  # rows still showing the old price after one update
    facts_rejected_on_insert: int  # a new product that could not be stored
    facts_lost_on_delete: int  # customers who vanished with their only order


@dataclass
class NormalizationResult:
    sheet_rows: int
    before: Anomalies
    after: Anomalies
    steps: list[tuple[str, str, list[str]]] = field(default_factory=list)
    tables_after: dict[str, int] = field(default_factory=dict)
    set_by_order_alone_2nf: list[str] = field(default_factory=list)  # partial dependencies left in lines_2nf
    recovered_rows: int = 0
    only_in_sheet: int = 0
    only_in_join: int = 0

    @property
    def lossless(self) -> bool:
        return self.recovered_rows == self.sheet_rows and self.only_in_sheet == self.only_in_join == 0

    @property
    def holds(self) -> bool:
        """Every anomaly happened on the sheet, none on the BCNF tables, and the join gives the sheet back."""
        before = (self.before.rows_disagreeing_after_update, self.before.facts_rejected_on_insert,
                  self.before.facts_lost_on_delete)  # fmt: skip
        return all(before) and self.after == Anomalies(0, 0, 0) and self.lossless


def generate_sheet(seed: int = SEED) -> list[tuple]:
    """Deterministic order lines: every fact about a customer or product repeated per line."""
    rng = random.Random(seed)
    cities = list(COUNTRIES)
    customers = [(i, f"Customer {i:03d}", rng.choice(cities)) for i in range(1, N_CUSTOMERS + 1)]
    products = [
        (
            f"SKU-{i:03d}",
            f"Product {i:03d}",
            round(rng.uniform(2, 200), 2),
            ",".join(sorted(rng.sample(TAGS, 2))),
        )
        for i in range(1, N_PRODUCTS + 1)
    ]
    # Each product has one supplier per country, and each supplier serves one country.
    supplier_of = {
        (sku, country): f"{country}-supplier-{int(sku[4:]) % 5}"
        for sku, *_ in products
        for country in ("PT", "FR", "DE")
    }
    rows = []
    for order_id in range(1, N_ORDERS + 1):
        # Customers are drawn from all but the last 10, so the last ones have exactly one order
        # (order ids 1..10 go to them below) and show the delete anomaly.
        customer = customers[N_CUSTOMERS - order_id] if order_id <= 10 else rng.choice(customers[:-10])
        day = f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        for line_no, product in enumerate(rng.sample(products, rng.randint(1, 4)), start=1):
            sku, name, price, tags = product
            country = COUNTRIES[customer[2]]
            rows.append(
                (order_id, line_no, day, *customer, country, sku, name, price, tags, supplier_of[(sku, country)],
                 rng.randint(1, 5))
            )  # fmt: skip
    return rows


def load_sheet(conn: psycopg.Connection, rows: list[tuple]) -> int:
    """COPY the rows into the sheet; returns the rows the sheet holds."""
    with conn.cursor() as cur:
        cur.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SCHEMA)))
        cur.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(SCHEMA)))
        cur.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(SCHEMA)))
        cur.execute(FLAT_TABLE)
        with cur.copy("COPY sheet FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cur.execute("SELECT count(*) FROM sheet")
        loaded = cur.fetchone()[0]
    conn.commit()
    return loaded


def stored(cur: psycopg.Cursor, insert: str, params: tuple, check: str, key: tuple) -> int:
    """Try to store a fact in a savepoint of the open transaction; the rows it added (0 if refused)."""
    cur.execute(check, key)  # also opens the transaction, so the block below is a savepoint
    before = cur.fetchone()[0]
    try:
        with cur.connection.transaction():
            cur.execute(insert, params)
    except psycopg.errors.NotNullViolation:
        pass
    cur.execute(check, key)
    return cur.fetchone()[0] - before


def anomalies_in_sheet(conn: psycopg.Connection) -> Anomalies:
    """Make each anomaly happen on the sheet, count it, and roll it all back."""
    with conn.cursor() as cur:
        # Update: a price change applied to the line that was looked at, not to all its copies.
        cur.execute("SELECT sku, order_id, line_no FROM sheet ORDER BY order_id, line_no LIMIT 1")
        sku, order_id, line_no = cur.fetchone()
        cur.execute(
            "UPDATE sheet SET unit_price = unit_price + 1 WHERE order_id = %s AND line_no = %s",
            (order_id, line_no),
        )
        cur.execute(
            "SELECT count(*) FROM sheet WHERE sku = %s AND unit_price <> "
            "(SELECT unit_price FROM sheet WHERE order_id = %s AND line_no = %s)",
            (sku, order_id, line_no),
        )
        disagreeing = cur.fetchone()[0]
        conn.rollback()

        # Insert: a new product has no order yet, and the sheet cannot hold it without one.
        rejected = 1 - stored(
            cur,
            "INSERT INTO sheet (sku, product_name, unit_price, product_tags, supplier) VALUES (%s, %s, %s, %s, %s)",
            ("SKU-NEW", "New product", 9.99, "new", "PT-supplier-0"),
            "SELECT count(*) FROM sheet WHERE sku = %s",
            ("SKU-NEW",),
        )
        conn.rollback()

        # Delete: cancelling the only order of a customer erases the customer too.
        cur.execute("SELECT count(DISTINCT customer_id) FROM sheet")
        customers_before = cur.fetchone()[0]
        cur.execute("DELETE FROM sheet WHERE order_id = ANY(%s)", (ONLY_ORDERS,))
        cur.execute("SELECT count(DISTINCT customer_id) FROM sheet")
        lost = customers_before - cur.fetchone()[0]
        conn.rollback()
    return Anomalies(disagreeing, rejected, lost)


def anomalies_in_bcnf(conn: psycopg.Connection) -> Anomalies:
    """The same three operations on the decomposed tables."""
    with conn.cursor() as cur:
        cur.execute("SELECT sku FROM order_lines ORDER BY order_id, line_no LIMIT 1")
        (sku,) = cur.fetchone()
        cur.execute("UPDATE products SET unit_price = unit_price + 1 WHERE sku = %s", (sku,))
        cur.execute(
            "SELECT count(*) FROM recovered_sheet"
            " WHERE sku = %s AND unit_price <> (SELECT unit_price FROM products WHERE sku = %s)",
            (sku, sku),
        )
        disagreeing = cur.fetchone()[0]
        conn.rollback()

        rejected = 1 - stored(  # the product simply exists now, with no order needed
            cur,
            "INSERT INTO products (sku, name, unit_price) VALUES (%s, %s, %s)",
            ("SKU-NEW", "New product", 9.99),
            "SELECT count(*) FROM products WHERE sku = %s",
            ("SKU-NEW",),
        )
        conn.rollback()

        cur.execute("SELECT count(*) FROM customers")
        customers_before = cur.fetchone()[0]
        cur.execute("DELETE FROM orders WHERE order_id = ANY(%s)", (ONLY_ORDERS,))
        cur.execute("SELECT count(*) FROM customers")
        lost = customers_before - cur.fetchone()[0]
        conn.rollback()
    return Anomalies(disagreeing, rejected, lost)


def set_by_order_alone(cur: psycopg.Cursor, columns: list[str]) -> list[str]:
    """The columns of lines_2nf that hold one value per order in the data: left-over partial dependencies."""
    found = []
    for column in columns:
        cur.execute(sql.SQL(ONE_VALUE_PER_ORDER).format(sql.Identifier(column)))
        if cur.fetchone()[0]:
            found.append(column)
    return found


def decompose(conn: psycopg.Connection) -> tuple[dict[str, int], list[str]]:
    with conn.cursor() as cur:
        for _form, _removed, statements in STEPS:
            for statement in statements:
                cur.execute(statement)
        cur.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s"
            " AND column_name NOT IN ('order_id', 'line_no') ORDER BY ordinal_position",
            (SCHEMA, "lines_2nf"),
        )
        partial = set_by_order_alone(cur, [name for (name,) in cur.fetchall()])
        for intermediate in ("lines_1nf", "orders_2nf", "lines_2nf", "sourcing"):
            cur.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(intermediate)))
        for statement in KEYS:
            cur.execute(statement)
        cur.execute(RECOVERED_VIEW)
        counts = {}
        for table in COUNT_TABLES:
            cur.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
            counts[table] = cur.fetchone()[0]
    conn.commit()
    return counts, partial


def compare_with_sheet(conn: psycopg.Connection) -> tuple[int, int, int]:
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM recovered_sheet")
        recovered = cur.fetchone()[0]
        cur.execute("SELECT count(*) FROM (TABLE sheet EXCEPT ALL TABLE recovered_sheet) AS d")
        only_in_sheet = cur.fetchone()[0]
        cur.execute("SELECT count(*) FROM (TABLE recovered_sheet EXCEPT ALL TABLE sheet) AS d")
        only_in_join = cur.fetchone()[0]
    conn.rollback()
    return recovered, only_in_sheet, only_in_join


def run(conn: psycopg.Connection) -> NormalizationResult:
    console.title("Normalization: from a flat sheet to BCNF")

    console.step("Load the sheet: one row per order line, every fact repeated")
    sheet_rows = load_sheet(conn, generate_sheet())
    console.say(f"{sheet_rows:,} rows; each customer, product and supplier fact is copied onto every line")

    console.step("Make the anomalies happen on the sheet (each in a transaction rolled back)")
    before = anomalies_in_sheet(conn)
    _show_anomalies(before)

    console.step("Decompose, naming the dependency each step removes")
    counts, partial = decompose(conn)
    console.table(["form", "removes", "tables"], [(f, removed, len(stmts)) for f, removed, stmts in STEPS])
    console.say(f"columns of lines_2nf set by order_id alone, in the data: {', '.join(partial) or 'none'}")
    console.say("BCNF's price: (sku, country) -> supplier is no longer enforced by any one table's key.")
    console.table(["table", "rows"], counts.items())

    console.step("Repeat the same operations on the BCNF tables")
    after = anomalies_in_bcnf(conn)
    _show_anomalies(after)

    console.step("Join the parts back together: is the decomposition lossless?")
    recovered, only_in_sheet, only_in_join = compare_with_sheet(conn)
    console.say(
        f"recovered {recovered:,} rows; rows only in the sheet: {only_in_sheet}, only in the join: {only_in_join}"
    )

    return NormalizationResult(
        sheet_rows=sheet_rows,
        before=before,
        after=after,
        steps=[
            (form, removed, [s.split(" AS ")[0].removeprefix("CREATE TABLE ") for s in stmts])
            for form, removed, stmts in STEPS
        ],
        tables_after=counts,
        set_by_order_alone_2nf=partial,
        recovered_rows=recovered,
        only_in_sheet=only_in_sheet,
        only_in_join=only_in_join,
    )


def _show_anomalies(found: Anomalies) -> None:
    console.table(
        ["anomaly", "count"],
        [
            ("update: rows still showing the old price", found.rows_disagreeing_after_update),
            ("insert: facts that could not be stored", found.facts_rejected_on_insert),
            ("delete: customers lost with their only order", found.facts_lost_on_delete),
        ],
    )


def main() -> int:
    require(*REQUIRES)
    with psycopg.connect(postgres_url(), connect_timeout=CONNECT_TIMEOUT_S) as conn:
        result = run(conn)
    return 0 if result.holds else 1


if __name__ == "__main__":
    raise SystemExit(main())

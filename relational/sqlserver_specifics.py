"""SQL Server specifics: clustered keys, key lookups, OUTPUT, MERGE, TOP and paging

A SQL Server table with a primary key is its clustered index: the rows live in the index's leaf
pages, in key order. An ever-increasing key (IDENTITY) appends to the last page; a random one
(NEWID()) lands in the middle of full pages and splits them, which sys.dm_db_index_physical_stats
shows as more, emptier, out-of-order pages. A nonclustered index holds the clustering key as its
row locator, so a query needing one more column does a Key Lookup per row, until INCLUDE puts the
column in the index's leaves; the plan (SET SHOWPLAN_XML) shows both. OUTPUT returns the deleted
and inserted rows of an UPDATE in the same statement, and MERGE's OUTPUT $action says what it did to
each row. Last, TOP without ORDER BY returns rows "in an undefined order" (the TOP docs), WITH TIES
returns the rows that tie for last place, and OFFSET ... FETCH over a unique order of unchanging rows
visits each row once. Readers, writers and row versions: sqlserver_row_versioning.py.

Engine: Microsoft SQL Server 2022 (SQLSERVER_URL, a login that may create databases, such as the
compose `sa`; image mcr.microsoft.com/mssql/server:2022-CU25-ubuntu-22.04, Developer edition),
database `sqlserver_specifics`, dropped and created at the start. Image only: no local server
exists, so it runs where Docker is. pymssql binds each %(name)s value into the text as a quoted
literal before sending it.
Run: `make up SERVICES=sqlserver`, then `python relational/sqlserver_specifics.py`.
Look for: the NEWID() table's fragmentation and page fullness against the IDENTITY one, "Key Lookup"
in the first plan and not after INCLUDE, OUTPUT's old and new prices, MERGE's $action counts, and
TOP WITH TIES returning more rows than asked.
Checked against:
- https://learn.microsoft.com/en-us/sql/linux/install-upgrade/quickstart-install-docker?view=sql-server-ver16
- https://learn.microsoft.com/en-us/sql/linux/containers/deploy (pinned CU tags such as 2022-CU11-ubuntu-22.04)
- https://learn.microsoft.com/en-us/troubleshoot/sql/releases/sqlserver-2022/cumulativeupdate25
- https://learn.microsoft.com/en-us/sql/relational-databases/system-dynamic-management-views/sys-dm-db-index-physical-stats-transact-sql
- https://learn.microsoft.com/en-us/sql/t-sql/statements/set-showplan-xml-transact-sql
- https://learn.microsoft.com/en-us/sql/relational-databases/showplan-logical-and-physical-operators-reference
- https://learn.microsoft.com/en-us/sql/t-sql/queries/output-clause-transact-sql
- https://learn.microsoft.com/en-us/sql/t-sql/statements/merge-transact-sql
- https://learn.microsoft.com/en-us/sql/t-sql/queries/top-transact-sql
- https://learn.microsoft.com/en-us/sql/t-sql/queries/select-order-by-clause-transact-sql
"""

from __future__ import annotations

import random
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

import pymssql

from common import console
from common.settings import require, sqlserver_params, sqlserver_url
from common.timing import timer

REQUIRES = ("sqlserver",)
DATABASE = "sqlserver_specifics"
SEED = 43
N_KEYED = 4_000  # rows inserted one at a time into each clustered-key table
N_ORDERS, N_CUSTOMERS, LOOKUP_CUSTOMER = 4_000, 500, 77
N_PRODUCTS, CATEGORY, TOP_N, TIES_N, PAGE_SIZE = 1_000, 3, 5, 3, 75
BATCH = 500  # pymssql's executemany sends this many INSERTs as one batch
SHOWPLAN = "{http://schemas.microsoft.com/sqlserver/2004/07/showplan}"

FIND_DATABASE = "SELECT DB_ID(%(name)s)"
KICK_OUT = "ALTER DATABASE sqlserver_specifics SET SINGLE_USER WITH ROLLBACK IMMEDIATE"
DROP_DATABASE = "DROP DATABASE sqlserver_specifics"
CREATE_DATABASE = "CREATE DATABASE sqlserver_specifics"
VERSION = """SELECT CAST(SERVERPROPERTY('ProductVersion') AS NVARCHAR(64)),
    CAST(SERVERPROPERTY('ProductUpdateLevel') AS NVARCHAR(64))"""
BEGIN = "BEGIN TRANSACTION"
COMMIT = "COMMIT TRANSACTION"

CREATE_SEQUENTIAL = """CREATE TABLE dbo.orders_sequential (
    id INT IDENTITY(1, 1) NOT NULL, filler CHAR(200) NOT NULL,
    CONSTRAINT pk_orders_sequential PRIMARY KEY CLUSTERED (id))"""
CREATE_GUID = """CREATE TABLE dbo.orders_guid (
    id UNIQUEIDENTIFIER NOT NULL CONSTRAINT df_orders_guid_id DEFAULT NEWID(), filler CHAR(200) NOT NULL,
    CONSTRAINT pk_orders_guid PRIMARY KEY CLUSTERED (id))"""
INSERT_SEQUENTIAL = "INSERT INTO dbo.orders_sequential (filler) VALUES (%(filler)s)"
INSERT_GUID = "INSERT INTO dbo.orders_guid (filler) VALUES (%(filler)s)"
LEAF_STATS = """SELECT page_count, avg_fragmentation_in_percent, avg_page_space_used_in_percent, record_count
FROM sys.dm_db_index_physical_stats(DB_ID(), OBJECT_ID(%(table)s), 1, NULL, 'DETAILED')
WHERE index_level = 0"""

CREATE_ORDERS = """CREATE TABLE dbo.orders (
    id INT NOT NULL, customer_id INT NOT NULL, amount_cents INT NOT NULL, note CHAR(400) NOT NULL,
    CONSTRAINT pk_orders PRIMARY KEY CLUSTERED (id))"""
INSERT_ORDER = """INSERT INTO dbo.orders (id, customer_id, amount_cents, note)
VALUES (%(id)s, %(customer_id)s, %(amount_cents)s, %(note)s)"""
INDEX_CUSTOMER = "CREATE NONCLUSTERED INDEX ix_orders_customer ON dbo.orders (customer_id)"
COVERING_INDEX = """CREATE NONCLUSTERED INDEX ix_orders_customer ON dbo.orders (customer_id)
INCLUDE (amount_cents) WITH (DROP_EXISTING = ON)"""
CUSTOMER_ORDERS = "SELECT id, amount_cents FROM dbo.orders WHERE customer_id = %(customer_id)s"
SHOWPLAN_ON = "SET SHOWPLAN_XML ON"  # the only statement of its batch, as the docs require
SHOWPLAN_OFF = "SET SHOWPLAN_XML OFF"

CREATE_PRODUCTS = """CREATE TABLE dbo.products (
    id INT NOT NULL, name NVARCHAR(40) NOT NULL, category TINYINT NOT NULL, score INT NOT NULL,
    price_cents INT NOT NULL, details CHAR(200) NOT NULL CONSTRAINT df_products_details DEFAULT '-',
    CONSTRAINT pk_products PRIMARY KEY CLUSTERED (id))"""
INDEX_NAME = "CREATE NONCLUSTERED INDEX ix_products_name ON dbo.products (name)"
INSERT_PRODUCT = """INSERT INTO dbo.products (id, name, category, score, price_cents)
VALUES (%(id)s, %(name)s, %(category)s, %(score)s, %(price_cents)s)"""
CATEGORY_PRICES = "SELECT id, price_cents FROM dbo.products WHERE category = %(category)s"
RAISE_PRICES = """UPDATE dbo.products SET price_cents = price_cents + price_cents / 10
OUTPUT deleted.id, deleted.price_cents, inserted.price_cents
WHERE category = %(category)s"""

CREATE_PRICE_LIST = """CREATE TABLE dbo.price_list (
    sku INT NOT NULL CONSTRAINT pk_price_list PRIMARY KEY, price_cents INT NOT NULL)"""
CREATE_PRICE_FEED = """CREATE TABLE dbo.price_feed (
    sku INT NOT NULL CONSTRAINT pk_price_feed PRIMARY KEY, price_cents INT NOT NULL)"""
INSERT_PRICE_LIST = "INSERT INTO dbo.price_list (sku, price_cents) VALUES (%(sku)s, %(price_cents)s)"
INSERT_PRICE_FEED = "INSERT INTO dbo.price_feed (sku, price_cents) VALUES (%(sku)s, %(price_cents)s)"
MERGE_FEED = """MERGE INTO dbo.price_list AS target
USING dbo.price_feed AS source ON target.sku = source.sku
WHEN MATCHED AND target.price_cents <> source.price_cents THEN UPDATE SET price_cents = source.price_cents
WHEN NOT MATCHED BY TARGET THEN INSERT (sku, price_cents) VALUES (source.sku, source.price_cents)
WHEN NOT MATCHED BY SOURCE THEN DELETE
OUTPUT $action, COALESCE(inserted.sku, deleted.sku);"""
LIST_DIFFERS_FROM_FEED = """SELECT COUNT(*) FROM dbo.price_list AS l
FULL OUTER JOIN dbo.price_feed AS f ON l.sku = f.sku
WHERE l.sku IS NULL OR f.sku IS NULL OR l.price_cents <> f.price_cents"""

TOP_UNORDERED = "SELECT TOP (%(n)s) id, name FROM dbo.products"
TOP_ORDERED = "SELECT TOP (%(n)s) id, name FROM dbo.products ORDER BY id"
TOP_WITH_TIES = "SELECT TOP (%(n)s) WITH TIES id, score FROM dbo.products ORDER BY score DESC"
PAGE = """SELECT id FROM dbo.products ORDER BY score DESC, id
OFFSET %(skip)s ROWS FETCH NEXT %(size)s ROWS ONLY"""
COUNT_PRODUCTS = "SELECT COUNT(*) FROM dbo.products"


@dataclass
class KeyShape:
    """A clustered index's leaf level after the same rows were inserted one at a time."""

    key: str
    rows: int
    pages: int = field(compare=False)  # NEWID() is random: the figures move a little between runs
    fragmentation_pct: float = field(compare=False)  # out-of-order pages: avg_fragmentation_in_percent
    fullness_pct: float = field(compare=False)  # avg_page_space_used_in_percent
    insert_s: float = field(default=0.0, compare=False)


@dataclass
class Lookups:
    index_plan: list[str]  # the plan's operators with the index on (customer_id)
    covering_plan: list[str]  # and with INCLUDE (amount_cents)
    rows: int  # what the query returned
    expected: int  # counted in the generated data


@dataclass
class Output:
    rows: int  # rows OUTPUT returned
    category_rows: int  # rows of that category, read before the UPDATE
    deleted_match: bool  # deleted.* are the prices read before
    inserted_match: bool  # inserted.* are the prices read after, and old + old / 10


@dataclass
class Merge:
    actions: dict[str, int]  # OUTPUT $action, counted
    expected: dict[str, int]  # merge_actions() of the generated list and feed
    differences_left: int  # rows where the list still differs from the feed


@dataclass
class Paging:
    top_ordered: list[int]
    top_expected: list[int]
    with_ties_rows: int
    with_ties_expected: int
    pages_read: int  # pages that returned rows (one more, past the end, returned none)
    pages_expected: int
    rows: int  # over all pages
    distinct_rows: int
    products: int
    top_unordered: list[int] = field(compare=False)  # "an undefined order": not compared
    top_unordered_plan: list[str] = field(compare=False)


@dataclass
class SqlServerResult:
    keys: dict[str, KeyShape]
    lookups: Lookups
    output: Output
    merge: Merge
    paging: Paging
    version: str = field(default="", compare=False)

    @property
    def holds(self) -> bool:
        """Every fact the lesson shows, as the docs describe it."""
        seq, guid, p = self.keys["IDENTITY"], self.keys["NEWID()"], self.paging
        return (
            seq.rows == guid.rows
            and guid.fullness_pct < seq.fullness_pct  # not pages: a GUID is wider than an INT anyway
            and guid.fragmentation_pct > seq.fragmentation_pct
            and key_lookups(self.lookups.index_plan) > 0
            and key_lookups(self.lookups.covering_plan) == 0
            and self.lookups.rows == self.lookups.expected
            and self.output.rows == self.output.category_rows > 0
            and self.output.deleted_match
            and self.output.inserted_match
            and self.merge.actions == self.merge.expected
            and self.merge.differences_left == 0
            and p.top_ordered == p.top_expected
            and p.with_ties_rows == p.with_ties_expected
            and p.pages_read == p.pages_expected
            and p.rows == p.distinct_rows == p.products
        )


# --- pure logic: what the server should answer, computed without one ---------------------------


def placeholders(statement: str) -> set[str]:
    """The %(name)s parameters a statement takes (pymssql's pyformat style)."""
    return set(re.findall(r"%\((\w+)\)s", statement))


def filler_rows(n: int = N_KEYED) -> list[dict]:
    return [{"filler": f"order {i}"} for i in range(n)]


def order_rows(seed: int = SEED) -> list[dict]:
    rng = random.Random(seed)
    customers = [rng.randint(1, N_CUSTOMERS) for _ in range(N_ORDERS)]
    return [
        {"id": i, "customer_id": c, "amount_cents": 100 + i * 37 % 9_000, "note": "-"}
        for i, c in enumerate(customers, start=1)
    ]


def product_rows(seed: int = SEED) -> list[dict]:
    """Names in an order of their own (the index on name sorts them apart from id); scores with ties."""
    rng = random.Random(seed + 1)
    names = [f"{rng.choice('KRDAZMPT')}{rng.randint(0, 9999):04d} product" for _ in range(N_PRODUCTS)]
    scores = [rng.randint(0, 99) for _ in range(N_PRODUCTS)]
    return [
        {"id": i, "name": n, "category": i % 7, "score": s, "price_cents": 100 + i * 53 % 20_000}
        for i, (n, s) in enumerate(zip(names, scores, strict=True), start=1)
    ]


def price_list_and_feed(seed: int = SEED) -> tuple[dict[int, int], dict[int, int]]:
    """A list of skus 1-100; a feed of 51-150: the list's upper half (every third sku repriced), fifty new."""
    rng = random.Random(seed + 2)
    prices = {sku: rng.randint(100, 9_999) for sku in range(1, 151)}
    listed = {sku: price for sku, price in prices.items() if sku <= 100}
    feed = {
        sku: price + (5 if sku % 3 == 0 and sku <= 100 else 0) for sku, price in prices.items() if sku > 50
    }
    return listed, feed


def merge_actions(target: dict[int, int], source: dict[int, int]) -> dict[str, int]:
    """What MERGE_FEED should do: insert new skus, update changed prices, delete skus gone from the feed."""
    return {
        "INSERT": len(source.keys() - target.keys()),
        "UPDATE": sum(1 for sku in source.keys() & target.keys() if source[sku] != target[sku]),
        "DELETE": len(target.keys() - source.keys()),
    }


def raised(price_cents: int) -> int:
    """RAISE_PRICES' arithmetic: T-SQL divides two INTs as integers."""
    return price_cents + price_cents // 10


def with_ties_count(scores: list[int], n: int) -> int:
    """Rows of TOP (n) WITH TIES ... ORDER BY score DESC: all that score at least the n-th best."""
    cutoff = sorted(scores, reverse=True)[n - 1]
    return sum(1 for score in scores if score >= cutoff)


def page_offsets(total: int, size: int) -> list[int]:
    """The OFFSET of each page: enough pages to reach every row, the last one possibly short."""
    return list(range(0, total, size))


def plan_operators(showplan_xml: str) -> list[str]:
    """A SHOWPLAN_XML plan's operators in document order, each with the index it reads. The XML writes
    a Key Lookup as a Clustered Index Seek whose IndexScan has Lookup="1" (the operators reference)."""
    operators = []
    for relop in ET.fromstring(showplan_xml).iter(f"{SHOWPLAN}RelOp"):
        name, scan = relop.get("PhysicalOp", "?"), relop.find(f"{SHOWPLAN}IndexScan")
        if scan is not None:
            name = "Key Lookup" if scan.get("Lookup") in ("1", "true") else name
            target = scan.find(f"{SHOWPLAN}Object")
            name += f" {target.get('Index', '')}" if target is not None else ""
        operators.append(name)
    return operators


def key_lookups(operators: list[str]) -> int:
    return sum(1 for op in operators if op.startswith("Key Lookup"))


# --- thin functions that talk to the server ----------------------------------------------------


def connect(url: str, database: str | None = None) -> pymssql.Connection:
    """Autocommit: every transaction here is an explicit BEGIN TRANSACTION ... COMMIT."""
    return pymssql.connect(**sqlserver_params(url, database=database), autocommit=True)


def run_sql(cur, statement: str, **params) -> None:
    """Execute with named parameters; refuses values that do not match the statement's placeholders."""
    if placeholders(statement) != set(params):
        raise ValueError(f"placeholders {sorted(placeholders(statement))}, values for {sorted(params)}")
    if params:
        cur.execute(statement, params)
    else:  # no parameters: pymssql sends the text untouched
        cur.execute(statement)


def one(cur, statement: str, **params):
    run_sql(cur, statement, **params)
    return cur.fetchone()[0]


def insert_many(cur, statement: str, rows: list[dict]) -> None:
    if placeholders(statement) != set(rows[0]):
        raise ValueError(f"placeholders {sorted(placeholders(statement))}, rows of {sorted(rows[0])}")
    cur.executemany(statement, rows, batch_size=BATCH)


def reset_database(admin) -> str:
    """Drop the lesson's database (sending its other sessions away first), create it; the version."""
    if one(admin, FIND_DATABASE, name=DATABASE) is not None:
        run_sql(admin, KICK_OUT)
        run_sql(admin, DROP_DATABASE)
    run_sql(admin, CREATE_DATABASE)
    run_sql(admin, VERSION)
    version, level = admin.fetchone()
    return f"{version} {level or ''}".strip()


def clustered_key(cur, create: str, insert: str, key: str, table: str) -> KeyShape:
    run_sql(cur, create)
    with timer() as took:
        run_sql(cur, BEGIN)
        insert_many(cur, insert, filler_rows())  # one INSERT per row: never sorted by key first
        run_sql(cur, COMMIT)
    run_sql(cur, LEAF_STATS, table=table)
    pages, fragmentation, fullness, rows = cur.fetchone()
    return KeyShape(key, rows, pages, round(fragmentation, 1), round(fullness, 1), took.seconds)


def showplan(cur, statement: str, **params) -> list[str]:
    """The estimated plan, which SET SHOWPLAN_XML ON returns instead of running the statement."""
    run_sql(cur, SHOWPLAN_ON)
    try:
        return plan_operators(one(cur, statement, **params))
    finally:
        run_sql(cur, SHOWPLAN_OFF)


def step_keys(cur) -> dict[str, KeyShape]:
    console.step("The clustering key decides where each row lands: IDENTITY against NEWID()")
    keys = {
        "IDENTITY": clustered_key(
            cur, CREATE_SEQUENTIAL, INSERT_SEQUENTIAL, "IDENTITY", "dbo.orders_sequential"
        ),
        "NEWID()": clustered_key(cur, CREATE_GUID, INSERT_GUID, "NEWID()", "dbo.orders_guid"),
    }
    console.table(
        ["clustered key", "rows", "leaf pages", "fragmentation %", "page fullness %", "inserted in"],
        [(k.key, k.rows, k.pages, k.fragmentation_pct, k.fullness_pct, console.seconds(k.insert_s))
         for k in keys.values()],
    )  # fmt: skip
    console.say("A random key lands in full pages and splits them: more pages, emptier, out of order.")
    return keys


def step_lookups(cur) -> Lookups:
    console.step("A nonclustered index needs a Key Lookup per row, until INCLUDE covers the query")
    rows = order_rows()
    run_sql(cur, CREATE_ORDERS)
    insert_many(cur, INSERT_ORDER, rows)
    run_sql(cur, INDEX_CUSTOMER)
    index_plan = showplan(cur, CUSTOMER_ORDERS, customer_id=LOOKUP_CUSTOMER)
    run_sql(cur, COVERING_INDEX)
    covering_plan = showplan(cur, CUSTOMER_ORDERS, customer_id=LOOKUP_CUSTOMER)
    run_sql(cur, CUSTOMER_ORDERS, customer_id=LOOKUP_CUSTOMER)
    expected = sum(1 for row in rows if row["customer_id"] == LOOKUP_CUSTOMER)
    found = Lookups(index_plan, covering_plan, len(cur.fetchall()), expected)
    console.say(f"index on (customer_id):        {' -> '.join(index_plan)}")
    console.say(f"... INCLUDE (amount_cents):     {' -> '.join(covering_plan)}")
    console.say(f"customer {LOOKUP_CUSTOMER}: {found.rows} rows (the generated data has {found.expected})")
    return found


def step_output(cur) -> Output:
    console.step("OUTPUT returns the deleted and inserted rows of an UPDATE, in the same statement")
    run_sql(cur, CREATE_PRODUCTS)
    insert_many(cur, INSERT_PRODUCT, product_rows())
    run_sql(cur, INDEX_NAME)  # used by step_paging
    run_sql(cur, CATEGORY_PRICES, category=CATEGORY)
    before = dict(cur.fetchall())
    run_sql(cur, RAISE_PRICES, category=CATEGORY)
    returned = cur.fetchall()
    run_sql(cur, CATEGORY_PRICES, category=CATEGORY)
    after, raised_before = dict(cur.fetchall()), {rid: raised(price) for rid, price in before.items()}
    output = Output(len(returned), len(before), {rid: old for rid, old, _ in returned} == before,
                    {rid: new for rid, _, new in returned} == after == raised_before)  # fmt: skip
    console.say(
        f"{output.rows} rows came back for the {output.category_rows} products of category {CATEGORY}; deleted.*"
        f" are the prices read before: {output.deleted_match}; inserted.* those read after: {output.inserted_match}"
    )
    return output


def step_merge(cur) -> Merge:
    console.step("MERGE synchronizes a table with a feed; OUTPUT $action names what it did to each row")
    listed, feed = price_list_and_feed()
    run_sql(cur, CREATE_PRICE_LIST)
    run_sql(cur, CREATE_PRICE_FEED)
    insert_many(cur, INSERT_PRICE_LIST, [{"sku": s, "price_cents": p} for s, p in listed.items()])
    insert_many(cur, INSERT_PRICE_FEED, [{"sku": s, "price_cents": p} for s, p in feed.items()])
    run_sql(cur, MERGE_FEED)
    done = {"INSERT": 0, "UPDATE": 0, "DELETE": 0}
    for action, _sku in cur.fetchall():
        done[action] += 1
    merge = Merge(done, merge_actions(listed, feed), one(cur, LIST_DIFFERS_FROM_FEED))
    console.table(["$action", "rows", "expected"], [(a, done[a], merge.expected[a]) for a in done])
    console.say(f"rows where the list still differs from the feed: {merge.differences_left}")
    return merge


def step_paging(cur) -> Paging:
    console.step("TOP without ORDER BY, TOP WITH TIES, and OFFSET ... FETCH paging")
    rows = product_rows()
    unordered_plan = showplan(cur, TOP_UNORDERED, n=TOP_N)
    run_sql(cur, TOP_UNORDERED, n=TOP_N)
    unordered = [r[0] for r in cur.fetchall()]
    run_sql(cur, TOP_ORDERED, n=TOP_N)
    ordered = [r[0] for r in cur.fetchall()]
    run_sql(cur, TOP_WITH_TIES, n=TIES_N)
    with_ties = len(cur.fetchall())
    # Stable pages, as the ORDER BY docs ask: nothing changes the rows meanwhile, and the order is unique.
    products, seen, pages = one(cur, COUNT_PRODUCTS), [], 0
    for skip in [*page_offsets(products, PAGE_SIZE), products]:  # and one page past the end
        run_sql(cur, PAGE, skip=skip, size=PAGE_SIZE)
        page = [r[0] for r in cur.fetchall()]
        pages, seen = pages + bool(page), seen + page
    paging = Paging(
        ordered, sorted(r["id"] for r in rows)[:TOP_N], with_ties, with_ties_count([r["score"] for r in rows], TIES_N),
        pages, len(page_offsets(len(rows), PAGE_SIZE)), len(seen), len(set(seen)), products, unordered, unordered_plan,
    )  # fmt: skip
    console.say(f"TOP ({TOP_N}) without ORDER BY: ids {unordered}, read by {' -> '.join(unordered_plan)}")
    console.say(f"TOP ({TOP_N}) ... ORDER BY id: ids {ordered}")
    console.say("The TOP docs: without ORDER BY, TOP returns the first N rows in an undefined order.")
    console.say(f"TOP ({TIES_N}) WITH TIES ORDER BY score DESC: {with_ties} rows (ties for the last place)")
    console.say(
        f"{pages} pages of {PAGE_SIZE} ordered by (score DESC, id), a unique order: {len(seen)} rows,"
        f" {len(set(seen))} distinct, of {products}"
    )
    return paging


def run(url: str) -> SqlServerResult:
    """`url`: a SQL Server login that may create databases (SQLSERVER_URL)."""
    console.title("SQL Server specifics: clustered keys, key lookups, OUTPUT, MERGE, TOP and paging")
    with connect(url) as admin_conn:  # in master: the lesson's database is dropped from here
        version = reset_database(admin_conn.cursor())
    console.say(f"SQL Server {version}; database {DATABASE} created anew.")
    with connect(url, DATABASE) as conn:
        cur = conn.cursor()
        keys, lookups = step_keys(cur), step_lookups(cur)
        output, merge, paging = step_output(cur), step_merge(cur), step_paging(cur)
    return SqlServerResult(keys, lookups, output, merge, paging, version)


def main() -> int:
    require(*REQUIRES)
    result = run(sqlserver_url())
    return 0 if result.holds else 1


if __name__ == "__main__":
    raise SystemExit(main())

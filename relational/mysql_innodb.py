"""InnoDB's clustered primary key: random UUIDs against sequential keys, covering indexes and EXPLAIN

An InnoDB table is its primary key: rows live in the leaves of the primary-key B-tree, in key
order. This lesson loads the same 100,000 rows three times, keyed by a BIGINT AUTO_INCREMENT, by a
time-ordered UUID (v7 layout) and by a random UUID (v4), both as BINARY(16), and measures what the
key order does to the table: random keys land in the middle of full pages and split them, so the
table ends up with more, emptier pages. Every secondary index stores the primary key as its row
pointer, which makes a wide key cost twice, and makes (indexed column, primary key) a covering
index for free: EXPLAIN says "Using index" for it, in the tabular and in the JSON form (whose
shape differs between MySQL and MariaDB). Last, INSERT ... ON DUPLICATE KEY UPDATE and its
rows-affected convention: 1 for an insert, 2 for an update, 0 when nothing changed.

Engine: MySQL (MYSQL_URL), database `mysql_innodb`; runs on MySQL 8.4 and on MariaDB 10.11
(the local stand-in), and says which one it ran on.
Run: `make up SERVICES=mysql` (or `make local-up`), then `python relational/mysql_innodb.py`.
Look for: the random-UUID table's data_length and its rows per leaf page against the sequential
ones, and "Using index" for the query that needs only the indexed column and the primary key.
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass

import pymysql

from common import console
from common.settings import mysql_params, require
from common.timing import timer

REQUIRES = ("mysql",)
DATABASE = "mysql_innodb"
SEED = 29
N_ROWS = 100_000
BATCH = 5_000
N_CUSTOMERS = 20_000
LOOKUP_CUSTOMER = 4242
FIRST_MS = 1_750_000_000_000  # the time-ordered keys start here and advance one millisecond a row

# One entry per key kind: the table's DDL and its INSERT. The rows are the same in all three.
TABLES = {
    "orders_auto": (
        "BIGINT auto-increment",
        "CREATE TABLE orders_auto (id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT, "
        "customer_id INT NOT NULL, amount_cents INT NOT NULL, note VARCHAR(40) NOT NULL, "
        "PRIMARY KEY (id), KEY ix_customer (customer_id)) ENGINE=InnoDB",
        "INSERT INTO orders_auto (customer_id, amount_cents, note) VALUES (%s, %s, %s)",
    ),
    "orders_seq_uuid": (
        "UUIDv7, time-ordered",
        "CREATE TABLE orders_seq_uuid (id BINARY(16) NOT NULL, "
        "customer_id INT NOT NULL, amount_cents INT NOT NULL, note VARCHAR(40) NOT NULL, "
        "PRIMARY KEY (id), KEY ix_customer (customer_id)) ENGINE=InnoDB",
        "INSERT INTO orders_seq_uuid (id, customer_id, amount_cents, note) VALUES (%s, %s, %s, %s)",
    ),
    "orders_rand_uuid": (
        "UUIDv4, random",
        "CREATE TABLE orders_rand_uuid (id BINARY(16) NOT NULL, "
        "customer_id INT NOT NULL, amount_cents INT NOT NULL, note VARCHAR(40) NOT NULL, "
        "PRIMARY KEY (id), KEY ix_customer (customer_id)) ENGINE=InnoDB",
        "INSERT INTO orders_rand_uuid (id, customer_id, amount_cents, note) VALUES (%s, %s, %s, %s)",
    ),
}
SIZES = """
SELECT data_length, index_length FROM information_schema.tables
WHERE table_schema = %s AND table_name = %s
"""
# table_rows in information_schema is an estimate for InnoDB: the rows are counted instead.
COUNT_ROWS = {
    "orders_auto": "SELECT count(*) FROM orders_auto",
    "orders_seq_uuid": "SELECT count(*) FROM orders_seq_uuid",
    "orders_rand_uuid": "SELECT count(*) FROM orders_rand_uuid",
}
# Persistent statistics, in both MySQL and MariaDB: leaf pages per index, counted by ANALYZE TABLE.
LEAF_PAGES = """
SELECT index_name, stat_value FROM mysql.innodb_index_stats
WHERE database_name = %s AND table_name = %s AND stat_name = 'n_leaf_pages'
"""
# Each lookup as run, and its two EXPLAINs: tabular, and FORMAT=JSON.
COVERED = (
    "SELECT id, customer_id FROM orders_rand_uuid WHERE customer_id = %s",
    "EXPLAIN SELECT id, customer_id FROM orders_rand_uuid WHERE customer_id = %s",
    "EXPLAIN FORMAT=JSON SELECT id, customer_id FROM orders_rand_uuid WHERE customer_id = %s",
)
NOT_COVERED = (
    "SELECT id, note FROM orders_rand_uuid WHERE customer_id = %s",
    "EXPLAIN SELECT id, note FROM orders_rand_uuid WHERE customer_id = %s",
    "EXPLAIN FORMAT=JSON SELECT id, note FROM orders_rand_uuid WHERE customer_id = %s",
)
COUNTER_TABLE = "CREATE TABLE daily_hits (day DATE NOT NULL PRIMARY KEY, hits INT NOT NULL)"
UPSERT_HIT = "INSERT INTO daily_hits (day, hits) VALUES (%s, 1) ON DUPLICATE KEY UPDATE hits = hits + 1"
UPSERT_SAME = "INSERT INTO daily_hits (day, hits) VALUES (%s, 1) ON DUPLICATE KEY UPDATE hits = hits"


@dataclass
class TableFacts:
    key: str
    rows: int  # count(*) after the load
    insert_s: float  # wall clock, printed, never compared by tests
    data_length: int  # the clustered index: the table itself
    index_length: int  # the secondary index ix_customer
    pk_leaf_pages: int | None  # None where mysql.innodb_index_stats is not readable
    secondary_leaf_pages: int | None

    @property
    def rows_per_leaf(self) -> float | None:
        return self.rows / self.pk_leaf_pages if self.pk_leaf_pages else None


@dataclass
class Explained:
    """One EXPLAIN, read from the tabular output and from FORMAT=JSON."""

    query: str  # as sent, with its parameter bound
    access_type: str
    key: str | None
    extra: str
    json_path: str  # where the table node sits in the JSON (it differs by server)
    json_key: str | None
    json_using_index: bool

    @property
    def covering(self) -> bool:
        return "Using index" in self.extra


@dataclass
class InnoDBResult:
    server: str
    is_mariadb: bool
    page_size: int
    tables: dict[str, TableFacts]
    covered: Explained  # SELECT id, customer_id ... WHERE customer_id = ?
    not_covered: Explained  # SELECT id, note ... WHERE customer_id = ?
    upsert_rows_affected: tuple[int, int, int]  # insert, update, update that changed nothing

    @property
    def holds(self) -> bool:
        """Random keys made the larger table, and only the (indexed column, key) lookup was covered."""
        sequential, scattered = self.tables["orders_seq_uuid"], self.tables["orders_rand_uuid"]
        return (
            scattered.data_length > sequential.data_length
            and self.covered.covering
            and not self.not_covered.covering
            and self.upsert_rows_affected == (1, 2, 0)
        )


def generate_rows(seed: int = SEED) -> list[tuple[int, int, str]]:
    rng = random.Random(seed)
    return [(rng.randint(1, N_CUSTOMERS), rng.randint(100, 50_000), f"order {i:06d}") for i in range(N_ROWS)]


def random_uuids(seed: int = SEED) -> list[bytes]:
    rng = random.Random(seed + 1)
    return [uuid.UUID(int=rng.getrandbits(128), version=4).bytes for _ in range(N_ROWS)]


def time_ordered_uuids(seed: int = SEED) -> list[bytes]:
    """UUIDv7 layout: a 48-bit millisecond timestamp first, so a later id sorts after an earlier one."""
    rng = random.Random(seed + 2)
    keys = []
    for i in range(N_ROWS):
        value = ((FIRST_MS + i) << 80) | rng.getrandbits(80)
        value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
        value = (value & ~(0x3 << 62)) | (0x2 << 62)  # the RFC 9562 variant
        keys.append(uuid.UUID(int=value).bytes)
    return keys


def reset_database(conn: pymysql.Connection) -> None:
    with conn.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS mysql_innodb")
        cur.execute("CREATE DATABASE mysql_innodb")
    conn.select_db(DATABASE)
    with conn.cursor() as cur:
        for _key, create, _insert in TABLES.values():
            cur.execute(create)
        cur.execute(COUNTER_TABLE)
    conn.commit()


def server_facts(conn: pymysql.Connection) -> tuple[str, bool, int]:
    with conn.cursor() as cur:
        cur.execute("SELECT VERSION(), @@innodb_page_size")
        version, page_size = cur.fetchone()
    return version, "mariadb" in version.lower(), int(page_size)


def load(conn: pymysql.Connection, insert: str, rows: list[tuple]) -> float:
    """executemany in batches (PyMySQL sends each batch as one multi-row INSERT), one commit each."""
    with console.progress(insert.split()[2], len(rows)) as advance, timer() as took, conn.cursor() as cur:
        for start in range(0, len(rows), BATCH):
            batch = rows[start : start + BATCH]
            cur.executemany(insert, batch)
            conn.commit()
            advance(len(batch))
    return took.seconds


def measure(conn: pymysql.Connection, table: str, key: str, insert_s: float) -> TableFacts:
    with conn.cursor() as cur:
        cur.execute(COUNT_ROWS[table])
        (rows,) = cur.fetchone()
        cur.execute(SIZES, (DATABASE, table))
        data_length, index_length = cur.fetchone()
        try:
            cur.execute(LEAF_PAGES, (DATABASE, table))
            leaves = dict(cur.fetchall())
        except pymysql.err.OperationalError:  # no SELECT on the mysql schema
            leaves = {}
    return TableFacts(
        key=key,
        rows=int(rows),
        insert_s=insert_s,
        data_length=int(data_length),
        index_length=int(index_length),
        pk_leaf_pages=_int_or_none(leaves.get("PRIMARY")),
        secondary_leaf_pages=_int_or_none(leaves.get("ix_customer")),
    )


def refresh_statistics(conn: pymysql.Connection, is_mariadb: bool) -> None:
    with conn.cursor() as cur:
        if not is_mariadb:
            # MySQL 8 caches information_schema.tables figures for a day unless told otherwise.
            cur.execute("SET SESSION information_schema_stats_expiry = 0")
        cur.execute("ANALYZE TABLE orders_auto, orders_seq_uuid, orders_rand_uuid")
        cur.fetchall()


def explain(conn: pymysql.Connection, statements: tuple[str, str, str], customer_id: int) -> Explained:
    query, tabular_explain, json_explain = statements
    with conn.cursor(pymysql.cursors.DictCursor) as cur:
        cur.execute(tabular_explain, (customer_id,))
        tabular = cur.fetchone()
        cur.execute(json_explain, (customer_id,))
        document = json.loads(next(iter(cur.fetchone().values())))
        shown = cur.mogrify(query, (customer_id,))
    path, node = find_table_node(document)
    return Explained(
        query=shown,
        access_type=tabular["type"],
        key=tabular["key"],
        extra=tabular["Extra"] or "",  # MySQL says NULL where MariaDB says ''
        json_path=path,
        json_key=node.get("key") or node.get("index_name"),
        json_using_index=bool(node.get("using_index") or node.get("covering")),
    )


def find_table_node(document: object, path: str = "") -> tuple[str, dict]:
    """The first object that describes a table access, wherever the server put it.

    MySQL: query_block.table. MariaDB: query_block.nested_loop[0].table. MySQL's format
    version 2 (explain_json_format_version=2) puts table_name and access_type on the node itself.
    """
    if isinstance(document, dict):
        if "table" in document and isinstance(document["table"], dict):
            return f"{path}.table".lstrip("."), document["table"]
        if "table_name" in document and "access_type" in document:
            return path or "(root)", document
        for name, value in document.items():
            found = find_table_node(value, f"{path}.{name}")
            if found[1]:
                return found
    elif isinstance(document, list):
        for index, value in enumerate(document):
            found = find_table_node(value, f"{path}[{index}]")
            if found[1]:
                return found
    return path, {}


def upsert_rows_affected(conn: pymysql.Connection) -> tuple[int, int, int]:
    """PyMySQL's execute() returns the rows affected, the figure the server reports."""
    with conn.cursor() as cur:
        inserted = cur.execute(UPSERT_HIT, ("2025-01-01",))
        updated = cur.execute(UPSERT_HIT, ("2025-01-01",))
        unchanged = cur.execute(UPSERT_SAME, ("2025-01-01",))
    conn.commit()
    return inserted, updated, unchanged


def run(conn: pymysql.Connection) -> InnoDBResult:
    console.title("InnoDB: the clustered primary key, covering indexes and EXPLAIN")

    console.step("Which server is this?")
    server, is_mariadb, page_size = server_facts(conn)
    flavour = "MariaDB (MySQL's local stand-in)" if is_mariadb else "MySQL"
    console.say(f"SELECT VERSION() = {server}: {flavour}; InnoDB page size {console.size(page_size)}")
    reset_database(conn)

    console.step(f"Load the same {N_ROWS:,} rows under three primary keys, {BATCH:,} rows per executemany")
    console.say("The rows are identical; only the key, and so where each row lands in the B-tree, differs.")
    console.say("Both UUIDs are BINARY(16), made in Python: MySQL has UUID_TO_BIN(), MariaDB does not.")
    rows = generate_rows()
    keyed = {
        "orders_auto": rows,
        "orders_seq_uuid": [(key, *row) for key, row in zip(time_ordered_uuids(), rows, strict=True)],
        "orders_rand_uuid": [(key, *row) for key, row in zip(random_uuids(), rows, strict=True)],
    }
    seconds = {table: load(conn, TABLES[table][2], keyed[table]) for table in TABLES}
    refresh_statistics(conn, is_mariadb)
    tables = {table: measure(conn, table, TABLES[table][0], seconds[table]) for table in TABLES}
    console.table(
        ["primary key", "insert", "rows/s"],
        [(t.key, console.seconds(t.insert_s), round(t.rows / t.insert_s)) for t in tables.values()],
    )
    console.say("While the table fits in the buffer pool the gap in time is modest and noisy; the pages")
    console.say(
        "below are what a random key costs for good, and what turns into disk reads once it does not fit."
    )

    console.step("What the key order did to the table (information_schema.tables after ANALYZE TABLE)")
    console.say("A random key lands inside a full page and splits it in two half-empty ones; a rising key")
    console.say("always goes to the last page, which InnoDB fills before it starts the next.")
    console.table(
        ["primary key", "data_length", "PK leaf pages", "rows per leaf page"],
        [(t.key, console.size(t.data_length), _or_na(t.pk_leaf_pages), _or_na(t.rows_per_leaf))
         for t in tables.values()],
    )  # fmt: skip
    sequential, scattered = tables["orders_seq_uuid"], tables["orders_rand_uuid"]
    console.say(
        f"Same 16-byte key, random order: data_length {console.size(scattered.data_length)} vs "
        f"{console.size(sequential.data_length)} in time order, "
        f"{scattered.data_length / sequential.data_length:.2f}x"
    )

    console.step("Every secondary index stores the primary key")
    console.say("ix_customer holds (customer_id, id): a wider key makes every secondary index wider.")
    console.table(
        ["primary key", "index_length (ix_customer)", "its leaf pages"],
        [(t.key, console.size(t.index_length), _or_na(t.secondary_leaf_pages)) for t in tables.values()],
    )

    console.step("A lookup through ix_customer: covered by the index, or back to the clustered key")
    covered = explain(conn, COVERED, LOOKUP_CUSTOMER)
    not_covered = explain(conn, NOT_COVERED, LOOKUP_CUSTOMER)
    console.table(
        ["query", "type", "key", "Extra"],
        [
            (covered.query, covered.access_type, covered.key, covered.extra),
            (not_covered.query, not_covered.access_type, not_covered.key, not_covered.extra or "(empty)"),
        ],
    )  # fmt: skip
    console.say("`id` is in the index entry, so the first query never reads the table; `note` is not,")
    console.say("so the second follows each entry's primary key into the clustered index.")
    console.say(
        f"EXPLAIN FORMAT=JSON on {'MariaDB' if is_mariadb else 'MySQL'} puts the table at {covered.json_path};"
    )
    console.say(
        f"its using_index is {covered.json_using_index} for the first query, {not_covered.json_using_index} for the second."
    )

    console.step("INSERT ... ON DUPLICATE KEY UPDATE: the rows-affected convention")
    affected = upsert_rows_affected(conn)
    console.table(
        ["statement", "rows affected"],
        [
            ("new key: inserted", affected[0]),
            ("existing key, hits = hits + 1: updated", affected[1]),
            ("existing key, hits = hits: nothing changed", affected[2]),
        ],
    )
    console.say("1 and 2 tell an insert from an update; drivers that set CLIENT_FOUND_ROWS report 1, not 0.")

    return InnoDBResult(
        server=server,
        is_mariadb=is_mariadb,
        page_size=page_size,
        tables=tables,
        covered=covered,
        not_covered=not_covered,
        upsert_rows_affected=affected,
    )


def _int_or_none(value: object) -> int | None:
    return None if value is None else int(value)


def _or_na(value: object) -> object:
    if value is None:
        return "n/a"
    return round(value) if isinstance(value, float) else value


def main() -> int:
    require(*REQUIRES)
    with pymysql.connect(**mysql_params()) as conn:
        result = run(conn)
    return 0 if result.holds else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Oracle specifics: identity sequences, MERGE, ROWNUM against FETCH FIRST, '' IS NULL

What surprises people who come to Oracle from PostgreSQL or MySQL, each measured. An identity column
is a system sequence (ISEQ$$_...) with a cache, and a rolled-back insert leaves a gap in it. MERGE
upserts a batch, and the server's counts say how many rows it inserted and updated. ROWNUM is given
to rows as they are read, before ORDER BY, so `WHERE ROWNUM <= 10 ORDER BY score DESC` returns ten
arbitrary rows sorted, not the top ten: the subquery form and FETCH FIRST return the right ids. And
Oracle stores '' as NULL: `= ''` finds nothing, IS NULL finds it, LENGTH('') is NULL. Bind variables,
the shared cursor cache and SKIP LOCKED job queues are the next lesson, oracle_concurrency.py.

Engine: Oracle Database Free 23.26.0 (Oracle AI Database 26ai Free), the compose image
gvenzl/oracle-free:23.26.0-slim. ORACLE_URL is the app user the image creates in FREEPDB1; tables
`oracle_specifics_*` in its schema. There is no local server: without Docker the suite skips it.
Run: `make up SERVICES=oracle`, then `python relational/oracle_specifics.py`.
Look for: the ISEQ$$_ sequence and its gaps, inserted/updated from MERGE, two different top-10 id
lists, and `= ''` finding 0 rows.
Checked against: https://github.com/gvenzl/oci-oracle-free (README, createAppUser);
https://docs.oracle.com/cd/B13789_01/server.101/b10759/pseudocolumns008.htm (ROWNUM);
https://docs.oracle.com/database/122/SQLRF/MERGE.htm;
https://docs.oracle.com/cd/B10500_01/server.920/a96536/ch2123.htm (USER_SEQUENCES.LAST_NUMBER);
https://docs.oracle.com/cd/E16338_01/server.112/b56299/sql_elements005.htm ('' is NULL).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import oracledb

from common import console
from common.settings import oracle_params, require
from common.timing import timer

REQUIRES = ("oracle",)
SEED = 21
N_TICKETS, ROLLBACK_EVERY = 10, 3
N_STOCK, BATCH_UPDATES, BATCH_INSERTS = 300, 120, 80
N_ITEMS, TOP_N = 1000, 10

FIND_TABLES = "SELECT table_name FROM user_tables WHERE table_name LIKE 'ORACLE_SPECIFICS%'"
DROPS = {  # only the lesson's own tables, dropped when the catalog lists them (PURGE: no recycle bin)
    "ORACLE_SPECIFICS_TICKETS": "DROP TABLE oracle_specifics_tickets PURGE",
    "ORACLE_SPECIFICS_STOCK": "DROP TABLE oracle_specifics_stock PURGE",
    "ORACLE_SPECIFICS_ITEMS": "DROP TABLE oracle_specifics_items PURGE",
    "ORACLE_SPECIFICS_NOTES": "DROP TABLE oracle_specifics_notes PURGE",
}
CREATES = (  # sqlglot cannot parse the identity's options (CACHE): the test checks them apart
    "CREATE TABLE oracle_specifics_tickets (id NUMBER GENERATED ALWAYS AS IDENTITY (START WITH 1 CACHE 50)"
    " PRIMARY KEY, label VARCHAR2(40) NOT NULL)",
    "CREATE TABLE oracle_specifics_stock (sku VARCHAR2(12) PRIMARY KEY, qty NUMBER NOT NULL,"
    " updates NUMBER DEFAULT 0 NOT NULL)",
    "CREATE TABLE oracle_specifics_items (id NUMBER PRIMARY KEY, label VARCHAR2(20), score NUMBER NOT NULL)",
    "CREATE TABLE oracle_specifics_notes (id NUMBER PRIMARY KEY, note VARCHAR2(20), title VARCHAR2(20) NOT NULL)",
)
INSERT_TICKET = "INSERT INTO oracle_specifics_tickets (label) VALUES (:label)"
INSERT_TICKET_WITH_ID = "INSERT INTO oracle_specifics_tickets (id, label) VALUES (:id, :label)"
TICKET_GAPS = "SELECT COUNT(*), MAX(id) - MIN(id) + 1 - COUNT(*) FROM oracle_specifics_tickets"
IDENTITY_SEQUENCE = """
SELECT s.sequence_name, s.cache_size, s.last_number
FROM user_tab_identity_columns i JOIN user_sequences s ON s.sequence_name = i.sequence_name
WHERE i.table_name = 'ORACLE_SPECIFICS_TICKETS'
"""
INSERT_STOCK = "INSERT INTO oracle_specifics_stock (sku, qty) VALUES (:sku, :qty)"
MERGE_STOCK = """
MERGE INTO oracle_specifics_stock s
USING (SELECT :sku AS sku, :qty AS qty FROM dual) b
ON (s.sku = b.sku)
WHEN MATCHED THEN UPDATE SET s.qty = s.qty + b.qty, s.updates = s.updates + 1
WHEN NOT MATCHED THEN INSERT (sku, qty, updates) VALUES (b.sku, b.qty, 0)
"""
STOCK_COUNTS = "SELECT COUNT(*), NVL(SUM(updates), 0) FROM oracle_specifics_stock"
INSERT_ITEM = "INSERT INTO oracle_specifics_items (id, label, score) VALUES (:id, :label, :score)"
TOP_QUERIES = {  # the classic mistake first: ROWNUM is given as rows are read, ORDER BY sorts those n
    "WHERE ROWNUM <= n ORDER BY score": "SELECT id FROM oracle_specifics_items"
    " WHERE ROWNUM <= :n ORDER BY score DESC, id",
    "ORDER BY in a subquery, ROWNUM outside": "SELECT id FROM (SELECT id FROM oracle_specifics_items"
    " ORDER BY score DESC, id) WHERE ROWNUM <= :n",
    "ORDER BY ... FETCH FIRST n ROWS ONLY": "SELECT id FROM oracle_specifics_items"
    " ORDER BY score DESC, id FETCH FIRST :n ROWS ONLY",
}
PAGE_TWO = (
    "SELECT id FROM oracle_specifics_items ORDER BY score DESC, id OFFSET :skip ROWS FETCH NEXT :n ROWS ONLY"
)
ROWNUM_ABOVE_ONE = "SELECT COUNT(*) FROM oracle_specifics_items WHERE ROWNUM > 1"
INSERT_NOTE = "INSERT INTO oracle_specifics_notes (id, note, title) VALUES (:id, :note, :title)"
NOTES = [{"id": 1, "note": "", "title": "empty"}, {"id": 2, "note": " ", "title": "a space"}]
EMPTY_TITLE = {"id": 3, "note": "x", "title": ""}
READ_NOTE = "SELECT note FROM oracle_specifics_notes WHERE id = 1"
EMPTY_CHECKS = """
SELECT (SELECT COUNT(*) FROM oracle_specifics_notes WHERE note = ''),
       (SELECT COUNT(*) FROM oracle_specifics_notes WHERE note = :empty),
       (SELECT COUNT(*) FROM oracle_specifics_notes WHERE note IS NULL),
       (SELECT COUNT(*) FROM oracle_specifics_notes WHERE note = ' '),
       LENGTH(''), CASE WHEN '' IS NULL THEN 1 ELSE 0 END, 'a' || '' || 'b'
FROM dual
"""


@dataclass
class Identity:
    sequence_name: str = field(compare=False)  # ISEQ$$_<object number>: new each run
    system_sequence: bool  # the identity's generator is a row of USER_SEQUENCES named ISEQ$$_...
    cache_size: int
    rows: int
    gaps: int  # MAX - MIN + 1 - COUNT, counted by the server
    explicit_id_error: str  # GENERATED ALWAYS refuses an id given by hand
    last_number: int = field(compare=False)


@dataclass
class Merge:
    rows_before: int
    server_rowcount: int  # cursor.rowcount after the batch: inserted + updated
    inserted: int  # COUNT(*) after - before
    updated: int  # SUM(updates)
    expected: tuple[int, int]  # (inserted, updated) computed in Python from the generated data
    seconds: float = field(compare=False)


@dataclass
class TopN:
    ids: dict[str, list[int]]  # query (keys of TOP_QUERIES) -> the ids it returned
    expected_top: list[int]
    expected_mistake: list[int]  # the first n rows inserted, sorted: what a full scan reads first
    page_two: list[int]
    expected_page_two: list[int]
    rownum_above_one: int


@dataclass
class EmptyString:
    reads_back_as_none: bool
    equals_empty: int  # WHERE note = ''
    equals_bound_empty: int  # WHERE note = :empty, bound to ''
    is_null: int
    equals_space: int  # ' ' is a character, not NULL
    length_of_empty: int | None
    empty_is_null: bool
    concatenated: str  # || skips NULLs
    not_null_refuses_empty: str


@dataclass
class OracleResult:
    version: str = field(compare=False)
    identity: Identity
    merge: Merge
    top: TopN
    empty: EmptyString

    @property
    def holds(self) -> bool:
        """Gaps where rollbacks were, MERGE's counts, the wrong and right top-n, '' found only as NULL."""
        ids = list(self.top.ids.values())
        return (
            self.identity.system_sequence
            and self.identity.gaps == expected_gaps(ticket_plan()) > 0
            and self.identity.explicit_id_error == "ORA-32795"
            and (self.merge.inserted, self.merge.updated) == self.merge.expected
            and self.merge.server_rowcount == sum(self.merge.expected)
            and ids[0] != self.top.expected_top
            and ids[1] == ids[2] == self.top.expected_top
            and self.top.page_two == self.top.expected_page_two
            and self.empty.is_null == 1
            and self.empty.equals_empty == self.empty.equals_bound_empty == 0
        )


# --- pure: the data, and what the server should answer --------------------------------------------


def ticket_plan(n: int = N_TICKETS, every: int = ROLLBACK_EVERY) -> list[bool]:
    """One insert per transaction: True commits it, False rolls it back."""
    return [(i + 1) % every != 0 for i in range(n)]


def expected_gaps(plan: list[bool]) -> int:
    """Rolled-back inserts between the first and the last committed one: the holes in the ids."""
    kept = [i for i, keep in enumerate(plan) if keep]
    return sum(not keep for keep in plan[kept[0] : kept[-1]])


def stock_rows(seed: int = SEED) -> list[dict]:
    rng = random.Random(seed)
    return [{"sku": f"SKU-{i:05d}", "qty": rng.randint(1, 50)} for i in range(N_STOCK)]


def merge_batch(seed: int = SEED) -> list[dict]:
    """BATCH_UPDATES skus already in stock and BATCH_INSERTS new ones, shuffled, each sku once."""
    rng = random.Random(seed + 1)
    skus = [*rng.sample(range(N_STOCK), BATCH_UPDATES), *range(N_STOCK, N_STOCK + BATCH_INSERTS)]
    batch = [{"sku": f"SKU-{i:05d}", "qty": rng.randint(1, 9)} for i in skus]
    rng.shuffle(batch)
    return batch


def expected_merge(existing: list[dict], batch: list[dict]) -> tuple[int, int]:
    """(inserted, updated): a batch row updates when its sku is there already, else it inserts."""
    skus = {row["sku"] for row in existing}
    updated = sum(row["sku"] in skus for row in batch)
    return len(batch) - updated, updated


def generate_items(seed: int = SEED) -> list[dict]:
    """Items with distinct scores, inserted in id order."""
    scores = random.Random(seed + 2).sample(range(100_000), N_ITEMS)
    return [{"id": i + 1, "label": f"item {i + 1}", "score": score} for i, score in enumerate(scores)]


def ranked(items: list[dict]) -> list[int]:
    return [item["id"] for item in sorted(items, key=lambda item: (-item["score"], item["id"]))]


def error_code(error: oracledb.Error) -> str:
    return error.args[0].full_code  # ORA-nnnnn


# --- thin functions that talk to the server -----------------------------------------------------


def reset(conn: oracledb.Connection) -> None:
    """Drop the lesson's tables that exist (the identity's sequence goes with its table), create them."""
    with conn.cursor() as cur:
        for (name,) in cur.execute(FIND_TABLES).fetchall():
            if name in DROPS:
                cur.execute(DROPS[name])
        for statement in CREATES:
            cur.execute(statement)


def identity_columns(conn: oracledb.Connection) -> Identity:
    console.step("An identity column is a sequence: cached, and a rollback leaves a gap")
    plan = ticket_plan()
    with conn.cursor() as cur:
        for i, keep in enumerate(plan):
            cur.execute(INSERT_TICKET, label=f"ticket {i + 1}")
            if keep:
                conn.commit()
            else:
                conn.rollback()
        rows, gaps = cur.execute(TICKET_GAPS).fetchone()
        try:
            cur.execute(INSERT_TICKET_WITH_ID, id=999, label="by hand")
            refused = "accepted"
        except oracledb.DatabaseError as error:
            refused = error_code(error)
        conn.rollback()
        name, cache_size, last_number = cur.execute(IDENTITY_SEQUENCE).fetchone()
    console.plan(CREATES[0])
    console.say(
        f"is backed by the sequence {name}: CACHE {cache_size}, LAST_NUMBER {last_number} (written ahead)."
    )
    console.say(f"{len(plan)} inserts, {plan.count(False)} rolled back: {rows} rows, {gaps} gaps in the ids.")
    console.say(f"An id given by hand: {refused} (GENERATED ALWAYS).")
    return Identity(name, name.startswith("ISEQ$$_"), cache_size, rows, gaps, refused, last_number)


def merge(conn: oracledb.Connection) -> Merge:
    console.step("MERGE upserts a batch; the server counts what it inserted and updated")
    existing, batch = stock_rows(), merge_batch()
    with conn.cursor() as cur:
        cur.executemany(INSERT_STOCK, existing)
        conn.commit()
        before, _ = cur.execute(STOCK_COUNTS).fetchone()
        with timer() as merging:
            cur.executemany(MERGE_STOCK, batch)
            rowcount = cur.rowcount
            conn.commit()
        after, updated = cur.execute(STOCK_COUNTS).fetchone()
    done = Merge(before, rowcount, after - before, updated, expected_merge(existing, batch), merging.seconds)
    console.plan(MERGE_STOCK.strip())
    console.say(
        f"{before} rows, then a batch of {len(batch)} in {console.seconds(merging.seconds)}: rowcount {rowcount},"
        f" {done.inserted} inserted (COUNT(*) after - before), {updated} updated (SUM(updates));"
        " expected {} / {}.".format(*done.expected)
    )
    return done


def top_n(conn: oracledb.Connection, items: list[dict]) -> TopN:
    console.step("ROWNUM is assigned before ORDER BY: the classic wrong top-n")
    with conn.cursor() as cur:
        cur.executemany(INSERT_ITEM, items)
        conn.commit()
        ids = {
            name: [r[0] for r in cur.execute(sql, n=TOP_N).fetchall()] for name, sql in TOP_QUERIES.items()
        }
        page_two = [r[0] for r in cur.execute(PAGE_TWO, skip=TOP_N, n=TOP_N).fetchall()]
        (above_one,) = cur.execute(ROWNUM_ABOVE_ONE).fetchone()
    ranking = ranked(items)
    top = TopN(ids, ranking[:TOP_N], ranked(items[:TOP_N]), page_two, ranking[TOP_N : 2 * TOP_N], above_one)
    rows = [[name, got, got == top.expected_top] for name, got in ids.items()]
    rows.append(["page 2: OFFSET n ROWS FETCH NEXT n ROWS ONLY", page_two, page_two == top.expected_page_two])
    console.table(["query", "ids", "right?"], rows)
    mistake = list(ids.values())[0]
    console.say(
        f"The mistake sorted the first {TOP_N} rows read (insertion order: {mistake == top.expected_mistake})."
    )
    console.say(
        f"WHERE ROWNUM > 1 finds {above_one} rows: the first row read is 1, fails, and so does the next."
    )
    return top


def empty_strings(conn: oracledb.Connection) -> EmptyString:
    console.step("The empty string is NULL")
    with conn.cursor() as cur:
        cur.executemany(INSERT_NOTE, NOTES)
        try:
            cur.execute(INSERT_NOTE, EMPTY_TITLE)
            not_null = "accepted"
        except oracledb.DatabaseError as error:
            not_null = error_code(error)
        conn.commit()
        (stored,) = cur.execute(READ_NOTE).fetchone()
        found = cur.execute(EMPTY_CHECKS, empty="").fetchone()
    empty = EmptyString(stored is None, *found[:5], found[5] == 1, found[6], not_null)
    console.table(
        ["'' stored, then", "result"],
        [
            ["read back", "None (NULL)" if empty.reads_back_as_none else repr(stored)],
            ["WHERE note = ''  |  = :empty ('')", f"{empty.equals_empty} | {empty.equals_bound_empty} rows"],
            ["WHERE note IS NULL  |  = ' '", f"{empty.is_null} | {empty.equals_space} rows"],
            [
                "LENGTH('')  |  '' IS NULL  |  'a'||''||'b'",
                f"{found[4]} | {empty.empty_is_null} | {found[6]}",
            ],
            ["'' into a NOT NULL column", not_null],
        ],
    )
    return empty


def run(params: dict) -> OracleResult:
    """`params`: oracledb.connect() arguments of the app user (common.settings.oracle_params())."""
    console.title("Oracle specifics")
    with oracledb.connect(**params) as conn:
        reset(conn)
        console.say(
            f"Oracle Database {conn.version}, schema {conn.username.upper()}: tables oracle_specifics_*."
        )
        return OracleResult(
            conn.version,
            identity_columns(conn),
            merge(conn),
            top_n(conn, generate_items()),
            empty_strings(conn),
        )


def main() -> int:
    require(*REQUIRES)
    return 0 if run(oracle_params()).holds else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""PostgreSQL to MongoDB with a resumable copier: orders with their lines embedded, killed, resumed, caught up

Moving rows into documents is a reshape: an order and its lines become one document, so no tool does
it for you; a small copier does. This one reads orders in keyset pages (`WHERE id > last ORDER BY id
LIMIT n`, never OFFSET), each page with its lines in one REPEATABLE READ snapshot, and maps the types:
numeric to Decimal128 (exact, unlike a double), date to a UTC datetime (BSON has no date-only type),
timestamps to milliseconds (BSON's precision), the enum to its label, and NULL to a missing field
(`{note: null}` still finds it; a ReplaceOne drops a field that became NULL). It writes each page
with ReplaceOne upserts keyed by the order id, then records the last id in a `migration_checkpoints`
collection. The lesson kills it between a page's write and its checkpoint, the worst moment, and
resumes: the replayed page is upserted again, so nothing is duplicated and nothing is lost. The
same kill with insert_many and generated ids duplicates the page.

The application keeps writing during the copy (updates, new orders, deletes), so the copy is stale
the moment it ends. Triggers keep `updated_at` current (a change to a line touches its order) and
record deletes as tombstones; catch-up rounds re-copy what changed since a watermark: the start of
the oldest transaction still open, so a slow transaction is not missed. Then the writes stop, a
last round runs, and the cut-over check compares counts and a checksum per key range, computed on
both sides from the same canonical form, plus a random sample of orders.

Engine: PostgreSQL (POSTGRES_URL), schema `postgres_to_mongodb_copier`; MongoDB (MONGO_URL), database
`postgres_to_mongodb_copier`. The local stand-in (mongo-java-server) keeps Decimal128 and has no
transactions: the lesson checks both and says so; the copier needs neither transactions nor more.
Run: `make up SERVICES="postgres mongodb"` (or `make local-up`), then `python migration/postgres_to_mongodb_copier.py`.
Look for: the replayed page with 0 duplicates (and the naive copy's duplicates), key ranges that
differ before catch-up and none after, and the rows per second of the copy.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
import time
from dataclasses import dataclass, field
from decimal import Decimal

import psycopg
import pymongo
from bson import Decimal128, json_util
from psycopg import sql
from pymongo import InsertOne, ReplaceOne
from pymongo.database import Database
from pymongo.errors import PyMongoError

from common import console
from common.settings import CONNECT_TIMEOUT_S, mongo_url, postgres_url, require, scale
from common.workload import Workload

REQUIRES = ("postgres", "mongodb")
SCHEMA = DATABASE = "postgres_to_mongodb_copier"
SEED, BATCH, KILL_AFTER = 23, 100, 4  # orders per page; the copier dies after writing page 4
STATUSES = ("new", "paid", "shipped", "cancelled")
NEW_IDS = 1_000_000  # orders the application creates during the copy get ids from here

SETUP = """
CREATE SCHEMA {s};
CREATE TYPE {s}.order_status AS ENUM ('new', 'paid', 'shipped', 'cancelled');
CREATE TABLE {s}.orders (
    id bigint PRIMARY KEY, customer text NOT NULL, status {s}.order_status NOT NULL,
    placed_at timestamptz NOT NULL, ship_by date, total numeric(12,2) NOT NULL, note text,
    updated_at timestamptz NOT NULL);
CREATE TABLE {s}.order_lines (
    order_id bigint NOT NULL REFERENCES {s}.orders ON DELETE CASCADE, line_no integer NOT NULL,
    sku text NOT NULL, qty integer NOT NULL, unit_price numeric(10,2) NOT NULL, PRIMARY KEY (order_id, line_no));
CREATE TABLE {s}.order_tombstones (order_id bigint PRIMARY KEY, deleted_at timestamptz NOT NULL);
"""
# After the load, so that the loaded rows keep their historical updated_at.
TRIGGERS = """
CREATE INDEX ON {s}.orders (updated_at);
CREATE FUNCTION {s}.touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.updated_at := clock_timestamp(); RETURN NEW; END $$;
CREATE FUNCTION {s}.touch_order() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
UPDATE {s}.orders SET updated_at = clock_timestamp() WHERE id IN (OLD.order_id, NEW.order_id); RETURN NULL; END $$;
CREATE FUNCTION {s}.tombstone() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
INSERT INTO {s}.order_tombstones VALUES (OLD.id, clock_timestamp()); RETURN NULL; END $$;
CREATE TRIGGER touch BEFORE INSERT OR UPDATE ON {s}.orders FOR EACH ROW EXECUTE FUNCTION {s}.touch();
CREATE TRIGGER touch AFTER INSERT OR UPDATE OR DELETE ON {s}.order_lines
    FOR EACH ROW EXECUTE FUNCTION {s}.touch_order();
CREATE TRIGGER tombstone AFTER DELETE ON {s}.orders FOR EACH ROW EXECUTE FUNCTION {s}.tombstone();
"""
# One keyset page: the orders after `after` changed since `since` ('-infinity' for the bulk copy).
PAGE = """SELECT id, customer, status::text, placed_at, ship_by, total, note, updated_at FROM {s}.orders
WHERE id > %s AND updated_at >= %s ORDER BY id LIMIT %s"""
PAGE_LINES = """SELECT order_id, line_no, sku, qty, unit_price FROM {s}.order_lines
WHERE order_id = ANY(%s) ORDER BY order_id, line_no"""
# The application's writes during the migration.
APP_WRITES = {
    "update": "UPDATE {s}.orders SET status = %s, total = total + 1, note = %s WHERE id = %s",
    "line": "UPDATE {s}.order_lines SET qty = qty + 1 WHERE order_id = %s AND line_no = 1",
    "insert": """WITH o AS (INSERT INTO {s}.orders VALUES (%s, 'walk-in', 'new', now(), NULL, 9.90, NULL, now())
                 RETURNING id) INSERT INTO {s}.order_lines SELECT id, 1, 'SKU-0001', 1, 9.90 FROM o""",
    "delete": "DELETE FROM {s}.orders WHERE id = %s",
}
CHANGED = """SELECT id FROM {s}.orders WHERE updated_at >= %s
UNION SELECT order_id FROM {s}.order_tombstones WHERE deleted_at >= %s"""
# The watermark: now, or the start of the oldest transaction still open if earlier. A row that such a
# transaction changed carries an updated_at at or after that start, so the next round cannot miss it.
WATERMARK = """SELECT least(clock_timestamp(), min(xact_start)) FROM pg_stat_activity
WHERE datname = current_database() AND backend_type = 'client backend'"""


class CopierKilled(RuntimeError):
    """What the lesson injects: the copier dies after writing a page and before its checkpoint."""


@dataclass
class Copy:
    ids: set[int] = field(default_factory=set)  # orders written
    lines: int = 0
    seconds: float = 0.0


def varies(default: object = 0):
    """A figure that depends on the timing of the application's writes: left out of equality, so a
    second run is compared on its invariants, not on its counts."""
    return field(default=default, compare=False)


@dataclass
class CopierResult:
    orders: int  # in PostgreSQL at the start
    lines: int
    decimal128_kept: bool  # the target stored Decimal128, not a double
    transactions: bool  # the target offers multi-document transactions (the copier needs none)
    lost_after_resume: int = -1  # orders read by the killed run or the resumed one, missing from MongoDB
    missed_by_catch_up: int = -1  # orders changed during the copy, neither re-copied nor deleted by catch-up
    ranges_differing_after: int = -1  # key ranges whose checksums differ at cut-over
    sample_differing: int = -1  # of 50 random orders
    checkpoint_at_kill: int = varies()  # the last id the checkpoint held when the copier died
    replayed: int = varies()  # orders both the killed run and the resumed one wrote
    docs_after_resume: int = varies()
    distinct_ids_after_resume: int = varies()
    naive_duplicates: int = varies()  # the same kill and resume with insert_many and server-made _ids
    rows_per_s: float = varies(0.0)
    writes: int = varies()  # the application's writes during copy and catch-up
    changed_during_copy: int = varies()  # orders changed or deleted since the copy started
    ranges_differing_before: int = varies()  # before catch-up
    ranges: int = varies()
    counts_after: tuple[int, ...] = varies(())  # orders, lines in PostgreSQL; documents, lines in MongoDB
    distinct_ids_after: int = varies()

    @property
    def holds(self) -> bool:
        return (
            self.docs_after_resume == self.distinct_ids_after_resume
            and self.replayed > 0
            and self.lost_after_resume == self.missed_by_catch_up == self.ranges_differing_after == 0
            and self.counts_after[:2] == self.counts_after[2:]
            and self.distinct_ids_after == self.counts_after[0]
            and self.sample_differing == 0
        )


def q(text: str) -> sql.Composed:
    return sql.SQL(text).format(s=sql.Identifier(SCHEMA))


def generate(n_orders: int) -> tuple[list[tuple], list[tuple]]:
    rng = random.Random(SEED)
    orders, lines, start = [], [], dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    for oid in range(1, n_orders + 1):
        placed = start + dt.timedelta(milliseconds=rng.randrange(3 * 10**10))
        ship_by = placed.date() + dt.timedelta(days=rng.randint(1, 9)) if rng.random() < 0.7 else None
        note = rng.choice(["leave at the door", "gift 🎁", "fragile: verre", None, None])
        total, customer = Decimal(rng.randrange(100, 10**6)) / 100, f"customer {rng.randrange(500)}"
        orders.append((oid, customer, rng.choice(STATUSES), placed, ship_by, total, note, placed))
        for n in range(1, rng.randint(1, 5) + 1):
            sku, price = f"SKU-{rng.randrange(10**4):04d}", Decimal(rng.randrange(100, 50000)) / 100
            lines.append((oid, n, sku, rng.randint(1, 9), price))
    return orders, lines


def build(pg: psycopg.Connection, n_orders: int) -> tuple[int, int]:
    """The source tables, loaded with COPY; updated_at is the order's own time until the triggers exist."""
    orders, lines = generate(n_orders)
    with pg.transaction(), pg.cursor() as cur:
        cur.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SCHEMA)))
        cur.execute(q(SETUP))
        for table, rows in (("orders", orders), ("order_lines", lines)):
            with cur.copy(sql.SQL("COPY {} FROM STDIN").format(sql.Identifier(SCHEMA, table))) as copy_in:
                for row in rows:
                    copy_in.write_row(row)
        cur.execute(q(TRIGGERS))
    return len(orders), len(lines)


def to_document(order: tuple, lines: list[tuple]) -> dict:
    """One order row and its line rows as one document: the types mapped, NULL left out."""
    oid, customer, status, placed_at, ship_by, total, note, updated_at = order
    doc = {
        "_id": oid,
        "customer": customer,
        "status": status,
        "placed_at": placed_at,
        "total": Decimal128(total),
    }
    if ship_by is not None:  # BSON has no date-only type: midnight UTC
        doc["ship_by"] = dt.datetime.combine(ship_by, dt.time(), tzinfo=dt.timezone.utc)
    if note is not None:  # NULL -> missing
        doc["note"] = note
    doc["updated_at"] = updated_at
    doc["lines"] = [
        {"line_no": n, "sku": s, "qty": k, "unit_price": Decimal128(p)} for _, n, s, k, p in lines
    ]
    return doc


def ms(moment: dt.datetime) -> str:
    """A timestamp at BSON's precision (milliseconds, UTC): how both sides are compared."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return moment.isoformat(timespec="milliseconds")


def canonical_row(order: tuple, lines: list[tuple]) -> str:
    """The canonical form of an order read from PostgreSQL, written without the copier's mapping."""
    oid, customer, status, placed_at, ship_by, total, note, updated_at = order
    shipped, items = ship_by and ship_by.isoformat(), [[n, s, k, str(p)] for _, n, s, k, p in lines]
    return json.dumps(
        [oid, customer, status, ms(placed_at), shipped, str(total), note, ms(updated_at), items]
    )


def canonical_doc(doc: dict) -> str:
    """The same form, read from a document."""
    items = [[x["line_no"], x["sku"], x["qty"], str(x["unit_price"].to_decimal())] for x in doc["lines"]]
    shipped, total = "ship_by" in doc and doc["ship_by"].date().isoformat() or None, doc["total"].to_decimal()
    fields = [doc["customer"], doc["status"], ms(doc["placed_at"]), shipped, str(total), doc.get("note")]
    return json.dumps([doc["_id"], *fields, ms(doc["updated_at"]), items])


def read_page(pg: psycopg.Connection, after: int, since: object, limit: int = BATCH) -> list[tuple]:
    """Orders after `after` changed since `since`, each with its lines, from one snapshot."""
    with pg.transaction():
        orders = pg.execute(q(PAGE), (after, since, limit)).fetchall()
        lines = pg.execute(q(PAGE_LINES), ([o[0] for o in orders],)).fetchall()
    by_order: dict[int, list] = {o[0]: [] for o in orders}
    for line in lines:
        by_order[line[0]].append(line)
    return [(o, by_order[o[0]]) for o in orders]


def copy(pg: psycopg.Connection, db: Database, name: str, since: object = "-infinity", **options) -> Copy:
    """Copy the orders changed since `since` into db.orders, page by page, from checkpoint `name` on.

    Options: naive=True inserts into db.<name> with generated _ids; kill_after=N dies after writing
    page N, before its checkpoint; max_pages=N stops after N pages.
    """
    last = (db.migration_checkpoints.find_one({"_id": name}) or {"last_id": 0})["last_id"]
    done, started, pages = Copy(), time.perf_counter(), 0
    while page := read_page(pg, last, since):
        docs = [to_document(order, lines) for order, lines in page]
        if options.get("naive"):  # a first draft: plain inserts, the server makes the _id
            db[name].bulk_write([InsertOne({"order_id": d.pop("_id"), **d}) for d in docs], ordered=False)
        else:
            db.orders.bulk_write([ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in docs], ordered=False)
        pages, last = pages + 1, page[-1][0][0]
        done.ids |= {order[0] for order, _ in page}
        done.lines += sum(len(lines) for _, lines in page)
        done.seconds = time.perf_counter() - started
        if pages == options.get("kill_after"):
            raise CopierKilled(done)
        db.migration_checkpoints.replace_one({"_id": name}, {"last_id": last}, upsert=True)
        if pages == options.get("max_pages"):
            break
    return done


def watermark(pg: psycopg.Connection) -> dt.datetime:
    with pg.transaction():
        return pg.execute(WATERMARK).fetchone()[0]


def catch_up(
    pg: psycopg.Connection, db: Database, since: dt.datetime
) -> tuple[set[int], set[int], dt.datetime]:
    """Re-copy the orders changed since `since`, delete the tombstoned ones; the next round's watermark."""
    following = watermark(pg)
    recopied = copy(pg, db, f"orders changed since {since.isoformat()}", since).ids
    with pg.transaction():
        query = q("SELECT order_id FROM {s}.order_tombstones WHERE deleted_at >= %s")
        deleted = {oid for (oid,) in pg.execute(query, (since,))}
    db.orders.delete_many({"_id": {"$in": sorted(deleted)}})
    return recopied, deleted, following


def compare(pg: psycopg.Connection, db: Database) -> tuple[list[bool], tuple[int, ...]]:
    """Per key range of BATCH source orders, do both sides hash to the same value? And the counts."""
    with pg.transaction():
        ids = [oid for (oid,) in pg.execute(q("SELECT id FROM {s}.orders ORDER BY id"))]
    highs = [ids[min(i + BATCH, len(ids)) - 1] for i in range(0, len(ids), BATCH)] or [0]
    highs[-1] = 2**62  # the last range is open: documents past the last order count too
    same, counts, low = [], (0, 0, 0, 0), 0
    for high in highs:
        page = [(o, lines) for o, lines in read_page(pg, low, "-infinity", BATCH + 1) if o[0] <= high]
        docs = list(db.orders.find({"_id": {"$gt": low, "$lte": high}}).sort("_id", 1))
        source = hashlib.sha256("\n".join(canonical_row(*order) for order in page).encode()).digest()
        target = hashlib.sha256("\n".join(canonical_doc(doc) for doc in docs).encode()).digest()
        same.append(source == target)
        found = (len(page), sum(len(x) for _, x in page), len(docs), sum(len(d["lines"]) for d in docs))
        counts, low = tuple(a + b for a, b in zip(counts, found, strict=True)), high
    return same, counts


def application(n_orders: int):
    """The application's writes: updates (a note may become NULL), line changes, new orders, deletes."""

    def write(conn: psycopg.Connection, n: int) -> int:
        rng = random.Random(SEED * 7919 + n)
        oid, kind = rng.randint(1, n_orders), ("update",) * 5 + ("line",) * 3 + ("insert", "delete")
        kind = kind[n % 10]
        if kind == "update":
            conn.execute(q(APP_WRITES[kind]), (rng.choice(STATUSES), rng.choice(["call first", None]), oid))
        else:
            oid = NEW_IDS + n if kind == "insert" else oid
            conn.execute(q(APP_WRITES[kind]), (oid,))
        return oid

    return write


def transactions_supported(client: pymongo.MongoClient) -> bool:
    try:
        with client.start_session() as session, session.start_transaction():
            client[DATABASE].migration_checkpoints.find_one({}, session=session)
        return True
    except PyMongoError:
        return False


def order_ids(pg: psycopg.Connection) -> list[int]:
    with pg.transaction():
        return [oid for (oid,) in pg.execute(q("SELECT id FROM {s}.orders ORDER BY id"))]


def sample(pg: psycopg.Connection, db: Database, size: int = 50) -> tuple[int, dict]:
    """Random orders read on both sides: how many differ, and the last one's document."""
    differing, doc = 0, {}
    for oid in random.Random(SEED).sample(ids := order_ids(pg), min(size, len(ids))):
        row = read_page(pg, oid - 1, "-infinity", 1)
        doc = db.orders.find_one({"_id": oid}) or {}
        differing += not doc or canonical_row(*row[0]) != canonical_doc(doc)
    return differing, doc


def kill_and_resume(pg: psycopg.Connection, db: Database, load: Workload, result: CopierResult) -> None:
    console.step("Copy in keyset pages while the application writes; the copier dies after a page")
    try:
        copy(pg, db, "orders", kill_after=KILL_AFTER)
    except CopierKilled as killed:
        first: Copy = killed.args[0]
    result.checkpoint_at_kill = db.migration_checkpoints.find_one({"_id": "orders"})["last_id"]
    result.decimal128_kept = isinstance(db.orders.find_one({})["total"], Decimal128)
    console.say(
        f"Killed after page {KILL_AFTER}: {len(first.ids):,} orders written, the checkpoint at id "
        f"{result.checkpoint_at_kill:,}. Decimal128 kept: {'yes' if result.decimal128_kept else 'NO'}."
    )
    load.wait_for(len(load.succeeded()) + 20)  # the application goes on while the copier is down

    console.step("Resume from the checkpoint: the page after it is written again, as upserts")
    second = copy(pg, db, "orders")
    result.replayed = len(first.ids & second.ids)
    result.docs_after_resume = db.orders.count_documents({})
    in_target = set(db.orders.distinct("_id"))
    result.distinct_ids_after_resume = len(in_target)
    result.lost_after_resume = len((first.ids | second.ids) - in_target)
    rows = len(first.ids) + first.lines + len(second.ids) + second.lines
    result.rows_per_s = rows / (first.seconds + second.seconds)
    twice, docs, lost = result.replayed, result.docs_after_resume, result.lost_after_resume
    headers = ["written twice", "documents", "distinct _id", "duplicates", "read, not in MongoDB"]
    console.table(headers, [(twice, docs, len(in_target), docs - len(in_target), lost)])
    console.say(
        f"{result.rows_per_s:,.0f} rows/s read, reshaped and written ({rows:,} rows: orders and lines)."
    )

    console.step("The same kill and resume with insert_many and server-made _ids")
    try:
        copy(pg, db, "orders_naive", naive=True, kill_after=2)
    except CopierKilled:
        copy(pg, db, "orders_naive", naive=True, max_pages=1)
    naive = db.orders_naive.count_documents({})
    result.naive_duplicates = naive - len(db.orders_naive.distinct("order_id"))
    console.say(
        f"{naive:,} documents for {naive - result.naive_duplicates:,} orders: "
        f"{result.naive_duplicates:,} duplicates, the replayed page."
    )


def run(pg: psycopg.Connection, url: str, client: pymongo.MongoClient) -> CopierResult:
    """`pg` is a connection to `url`, which the application's writer threads also use."""
    console.title("PostgreSQL to MongoDB: a resumable copier, catch-up and cut-over")
    pg.autocommit = True  # each read below is an explicit REPEATABLE READ transaction: one snapshot
    pg.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    console.step("Orders and their lines in PostgreSQL; triggers keep updated_at and record deletes")
    n_orders, n_lines = build(pg, max(6 * BATCH, int(3000 * scale())))
    client.drop_database(DATABASE)
    db = client[DATABASE]
    result = CopierResult(n_orders, n_lines, False, transactions_supported(client))
    console.say(f"{n_orders:,} orders with {n_lines:,} lines: one document per order, its lines embedded.")
    console.say(
        f"Multi-document transactions on this MongoDB: {'yes' if result.transactions else 'no'}; "
        "the copier needs none: a replayed page is simply upserted again."
    )
    start = watermark(pg)
    with Workload() as load:
        load.spawn("write", application(n_orders), connect=lambda: psycopg.connect(url, autocommit=True))
        load.wait_for(5)
        kill_and_resume(pg, db, load, result)

        console.step("Before catch-up: key ranges whose checksums differ between the two sides")
        same, _ = compare(pg, db)
        result.ranges_differing_before = same.count(False)
        console.say(f"{same.count(False)} of {len(same)} ranges differ: rows changed behind the copier.")

        console.step("Catch up while the application writes, then stop the writes and catch up once more")
        recopied, deleted, following = catch_up(pg, db, start)
    result.writes = len(load.succeeded())
    again, deleted_again, _ = catch_up(pg, db, following)
    rounds = [("1, writes going on", recopied, deleted), ("2, writes stopped", again, deleted_again)]
    console.table(
        ["round", "orders re-copied", "orders deleted"], [(r, len(c), len(d)) for r, c, d in rounds]
    )
    with pg.transaction():
        changed = {oid for (oid,) in pg.execute(q(CHANGED), (start, start))}
    result.changed_during_copy = len(changed)
    result.missed_by_catch_up = len(changed - recopied - again - deleted - deleted_again)
    console.say(
        f"{result.writes:,} application writes changed or deleted {len(changed):,} orders; "
        f"missed by catch-up: {result.missed_by_catch_up}."
    )

    console.step("Cut-over check: counts, a checksum per key range on both sides, and a sample")
    same, result.counts_after = compare(pg, db)
    result.ranges, result.ranges_differing_after = len(same), same.count(False)
    result.distinct_ids_after = len(db.orders.distinct("_id"))
    result.sample_differing, doc = sample(pg, db)
    pg_orders, pg_lines, docs, doc_lines = result.counts_after
    rows = [("orders, documents", pg_orders, docs), ("lines, embedded lines", pg_lines, doc_lines)]
    rows.append(("distinct order ids", pg_orders, result.distinct_ids_after))
    console.table(["", "PostgreSQL", "MongoDB"], rows)
    console.say(
        f"Key ranges differing: {result.ranges_differing_after} of {result.ranges}; "
        f"sampled orders differing: {result.sample_differing} of 50."
    )
    console.say("A document: " + json_util.dumps(doc, ensure_ascii=False)[:240] + " ...")
    return result


def main() -> int:
    require(*REQUIRES)
    url = postgres_url()
    with (
        psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S) as pg,
        pymongo.MongoClient(mongo_url(), serverSelectionTimeoutMS=CONNECT_TIMEOUT_S * 1000) as client,
    ):
        result = run(pg, url, client)
    return 0 if result.holds else 1


if __name__ == "__main__":
    raise SystemExit(main())

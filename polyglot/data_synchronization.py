"""Data synchronization: dual writes, the transactional outbox and change data capture, crashed on purpose

PostgreSQL holds the shop's orders (the source of truth); two read models follow it: a catalog
search copy in MongoDB (per product: units sold and the orders that sold them) and a purchase graph
in Neo4j (customer -BOUGHT-> product). Three ways to keep them in step. Dual write: the application
commits to PostgreSQL, then writes the read models itself; a crash between the two leaves orders the
read models never hear of, and nothing durable says which. Transactional outbox: the event row is
written in the order's own transaction; a relay publishes unpublished rows to a Redis stream (XADD)
and marks them; consumer groups (XREADGROUP, XACK) feed idempotent consumers. Change data capture:
logical decoding of the order tables is the relay's source; it peeks at the slot and advances it
only once it has published, so the slot's confirmed LSN is its position. (`test_decoding` is used
because every PostgreSQL build has it; production relays read pgoutput or wal2json over the
replication protocol, with the same position logic.) Every relay and consumer is crashed at every
crash point (the k-th pass raises), restarted, and resumes from what is durable: the outbox rows'
state, the group's pending entries, the slot's confirmed LSN. Delivery is at least once (the
redeliveries are counted); the consumers are idempotent (a guard in the same atomic write as the
effect: the order id in the MongoDB document, an :Applied node in the Neo4j transaction), so no
order is lost and none is applied twice. Lag from commit to both read models is measured live.

Engine: PostgreSQL (POSTGRES_URL), schema `shop_data_synchronization`; for CDC, a database and a
replication slot of that name (dropped at the start and at the end, even on failure) on a server
with wal_level=logical: the shared one when it has it, else a throwaway local node; MongoDB
(MONGO_URL), database `shop_data_synchronization`; Redis (REDIS_URL), keys
`shop:data_synchronization:*`; Neo4j (NEO4J_URL), nodes labelled `ShopDataSynchronization`.
Run: `make up SERVICES="postgres mongodb redis neo4j"` (or `make local-up`), then
`python polyglot/data_synchronization.py`.
Look for: orders missing from the read models after dual writes; for each crash point, the
redeliveries and duplicates caught against 0 lost and 0 applied twice; the lag of each method.
"""

from __future__ import annotations

import contextlib
import json
import re
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import psycopg
import redis
from neo4j import Driver, GraphDatabase
from psycopg import sql
from psycopg.conninfo import make_conninfo
from pymongo import MongoClient

from common import console, shop
from common.neo4j_schema import wait_until_online
from common.settings import (
    CONNECT_TIMEOUT_S,
    mongo_url,
    neo4j_auth,
    neo4j_url,
    postgres_url,
    redis_url,
    require,
    scale,
)
from servers.throwaway import NoThrowaway, throwaway

REQUIRES = ("postgres", "mongodb", "redis", "neo4j")
NS = shop.namespaces("data_synchronization")
SCHEMA = CDC_DATABASE = SLOT = NS.postgres_schema
NEO4J_DATABASE = "neo4j"  # the label, ShopDataSynchronization, is spelled literally in the Cypher below
GROUPS = ("catalog", "graph")
N_PRODUCTS, N_CUSTOMERS, STOCK = 40, 30, 100_000
BATCH, CRASH_AT, SWEEP_ORDERS = 2, 2, 4  # a crash on the 2nd pass; 4 orders = 2 batches per sweep run
FAIL_AFTER_COMMIT = {4, 11, 18, 25}  # dual write: the process dies after PostgreSQL's commit
FAIL_BEFORE_GRAPH = {8, 21}  # dual write: the catalog is written, then the Neo4j connection drops
POLL_S, WRITE_PAUSE_S, CDC_CHANGES = 0.01, 0.02, 20  # 20 changes: about 2 orders
OUTBOX_POINTS = ("relay:read", "relay:published", "relay:marked")
CDC_POINTS = ("relay:read", "relay:published")
CATALOG_POINTS = ("catalog:read", "catalog:line", "catalog:applied")  # line: between two documents
GRAPH_POINTS = ("graph:read", "graph:in_tx", "graph:applied")  # in_tx: inside Neo4j's transaction
CONSUMER_POINTS = CATALOG_POINTS + GRAPH_POINTS

OUTBOX_TABLE = """CREATE TABLE {s}.outbox (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id bigint NOT NULL, payload jsonb NOT NULL, published_at timestamptz)"""
UNPUBLISHED = """SELECT id, payload FROM {s}.outbox WHERE published_at IS NULL ORDER BY id
    LIMIT %s FOR UPDATE SKIP LOCKED"""
INSERT_LINE = "INSERT INTO {s}.order_lines (order_id, sku, quantity, price_cents) VALUES (%s, %s, %s, %s)"
UNPUBLISHED_COUNT = "SELECT count(*) FROM {s}.outbox WHERE published_at IS NULL"
PEEK = """SELECT lsn::text, xid::text, data FROM pg_logical_slot_peek_changes(%s, NULL, %s,
    'include-xids', '0', 'skip-empty-xacts', '1') WHERE data = 'COMMIT' OR starts_with(data, %s)"""
CHANGE = re.compile(r"^table [^.]+\.(\w+): INSERT: (.*)$")  # test_decoding's line for an inserted row
COLUMN = re.compile(r"(\w+)\[[^\]]+\]:('(?:[^']|'')*'|\S+)")  # name[type]:value, text values quoted
GRAPH_SEEN = "MATCH (a:ShopDataSynchronization {key: $key}) RETURN count(a) AS n"
GRAPH_APPLY = """CREATE (:ShopDataSynchronization:Applied {key: $key})
MERGE (c:ShopDataSynchronization:Customer {key: 'customer:' + toString($customer)})
WITH c UNWIND $lines AS line
MERGE (p:ShopDataSynchronization:Product {key: 'product:' + line[0]}) ON CREATE SET p.sku = line[0]
CREATE (c)-[:BOUGHT {order: $order, quantity: line[1]}]->(p)"""
GRAPH_APPLIED = """MATCH (:ShopDataSynchronization)-[b:BOUGHT]->(p:ShopDataSynchronization)
WHERE b.order IN $ids RETURN b.order AS order, p.sku AS sku, count(*) AS n"""
GRAPH_RESET = "MATCH (n:ShopDataSynchronization) DETACH DELETE n"
GRAPH_KEY = """CREATE CONSTRAINT shop_data_synchronization_key IF NOT EXISTS
FOR (n:ShopDataSynchronization) REQUIRE n.key IS UNIQUE"""


class Crash(Exception):
    """Injected: the process dies here (its connections go with it)."""


@dataclass
class CrashPlan:
    """Raises Crash the `at`-th time the run passes `point`; None never crashes."""

    point: str | None = None
    at: int = CRASH_AT
    passes: Counter = field(default_factory=Counter)
    crashes: int = 0

    def tick(self, point: str) -> None:
        self.passes[point] += 1
        if point == self.point and self.passes[point] == self.at:
            self.crashes += 1
            raise Crash(point)


@dataclass
class Run:
    method: str
    point: str
    crashes: int  # how many times the plan killed a component (1 in every sweep run)
    redelivered: int  # stream entries read again from a group's pending list after a restart
    duplicates_caught: int  # deliveries that found some of their effects already applied
    lost: int  # orders committed in PostgreSQL with a line missing from a read model
    double_applied: int  # effects applied more than once, over both read models


@dataclass
class SyncResult:
    dual_write_orders: int
    dual_write_missing: dict[str, int]  # read model -> committed orders it never received
    runs: list[Run]
    cdc_source: str  # where logical decoding ran, or why it did not
    outbox_unpublished: int = -1
    slots_left: int = 0
    lag_s: dict[str, list[float]] = field(default_factory=dict, compare=False)

    @property
    def dual_write_divergence(self) -> int:
        return sum(self.dual_write_missing.values())

    @property
    def holds(self) -> bool:
        safe = all(r.crashes == 1 and r.lost == r.double_applied == 0 for r in self.runs)
        return self.dual_write_divergence > 0 and safe and self.outbox_unpublished == self.slots_left == 0


@dataclass
class Stores:
    """The read models and the stream: what every method feeds."""

    catalog: object  # the MongoDB collection
    cache: redis.Redis
    driver: Driver
    applied_at: dict = field(default_factory=dict)  # (group, order id) -> perf_counter when applied
    stats: Counter = field(default_factory=Counter)
    decoded: list = field(default_factory=list)  # the first rows a CDC relay read, to show


def q(text: str) -> sql.Composed:
    return sql.SQL(text).format(s=sql.Identifier(SCHEMA))


def event_of(order: shop.Order) -> dict:
    return {"order": order.id, "customer": order.customer_id, "lines": [list(line) for line in order.lines]}


def create_tables(conn: psycopg.Connection, products: list[shop.Product], outbox: bool) -> None:
    shop.create_order_tables(conn, SCHEMA)
    with conn.transaction():
        if outbox:
            conn.execute(q(OUTBOX_TABLE))
        with conn.cursor().copy(q("COPY {s}.stock (sku, quantity) FROM STDIN")) as copy:
            for product in products:
                copy.write_row((product.sku, STOCK))


def place(conn: psycopg.Connection, order: shop.Order, prices: dict[str, shop.Product], outbox: bool) -> None:
    """One order in one transaction: the order, its lines, the stock, and with an outbox its event."""
    with conn.transaction():
        conn.execute(
            q("INSERT INTO {s}.orders (id, customer_id, placed_at, total_cents) VALUES (%s, %s, %s, %s)"),
            (order.id, order.customer_id, order.placed_at, shop.order_total(order, prices)),
        )
        for sku, quantity in order.lines:
            conn.execute(q(INSERT_LINE), (order.id, sku, quantity, prices[sku].price_cents))
            conn.execute(q("UPDATE {s}.stock SET quantity = quantity - %s WHERE sku = %s"), (quantity, sku))
        if outbox:
            conn.execute(
                q("INSERT INTO {s}.outbox (order_id, payload) VALUES (%s, %s)"),
                (order.id, json.dumps(event_of(order))),
            )


def apply_catalog(stores: Stores, event: dict, crash: CrashPlan) -> bool:
    """Each line is one atomic single-document write: the guard (order not yet in `orders`) and the effect."""
    caught = False
    for sku, quantity in event["lines"]:
        written = stores.catalog.update_one(
            {"_id": sku, "orders": {"$ne": event["order"]}},
            {"$inc": {"sold": quantity}, "$push": {"orders": event["order"]}},
        )
        caught |= written.modified_count == 0
        crash.tick("catalog:line")
    return caught


def apply_graph(stores: Stores, event: dict, crash: CrashPlan) -> bool:
    """The :Applied node and the BOUGHT relationships in one Neo4j transaction: all or nothing."""

    def work(tx) -> bool:
        if tx.run(GRAPH_SEEN, key=f"event:{event['order']}").single()["n"]:
            return True
        tx.run(GRAPH_APPLY, key=f"event:{event['order']}", **event).consume()
        crash.tick("graph:in_tx")
        return False

    with stores.driver.session(database=NEO4J_DATABASE) as session:
        return session.execute_write(work)


APPLY = {"catalog": apply_catalog, "graph": apply_graph}


class Consumer:
    """One member of a consumer group: its own pending entries first (after a restart), then new ones."""

    def __init__(self, stores: Stores, stream: str, group: str, crash: CrashPlan) -> None:
        self.stores, self.stream, self.group, self.crash = stores, stream, group, crash

    def poll(self) -> int:
        handled = 0
        for start in ("0", ">"):
            reply = self.stores.cache.xreadgroup(self.group, "worker-1", {self.stream: start}, count=BATCH)
            for _stream, entries in reply:
                for entry_id, fields in entries:
                    self.stores.stats["redelivered"] += start == "0"
                    self.crash.tick(f"{self.group}:read")
                    event = json.loads(next(iter(fields.values())))
                    self.stores.stats["caught"] += APPLY[self.group](self.stores, event, self.crash)
                    self.stores.applied_at[(self.group, event["order"])] = time.perf_counter()
                    self.crash.tick(f"{self.group}:applied")
                    self.stores.cache.xack(self.stream, self.group, entry_id)
                    handled += 1
        return handled

    def close(self) -> None:
        """Nothing durable is held here: the group's pending list in Redis is the position."""


class OutboxRelay:
    """Publishes unpublished outbox rows, then marks them, in the transaction that locked them."""

    def __init__(self, url: str, stores: Stores, stream: str, crash: CrashPlan) -> None:
        self.pg = psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S)
        self.stores, self.stream, self.crash = stores, stream, crash

    def poll(self) -> int:
        with self.pg.transaction():
            rows = self.pg.execute(q(UNPUBLISHED), (BATCH,)).fetchall()
            if not rows:
                return 0
            self.crash.tick("relay:read")
            for _id, payload in rows:
                self.stores.cache.xadd(self.stream, {"event": json.dumps(payload)})
                self.crash.tick("relay:published")
            self.pg.execute(
                q("UPDATE {s}.outbox SET published_at = now() WHERE id = ANY(%s)"), ([r[0] for r in rows],)
            )
            self.crash.tick("relay:marked")
        return len(rows)

    def close(self) -> None:
        self.pg.close()  # an open transaction dies with the connection: its rows stay unpublished


def events_of(changes: list[tuple[str, str, str]]) -> list[tuple[str, dict]]:
    """test_decoding's rows, grouped by transaction into one event per order, with its commit LSN."""
    building: dict[str, dict] = {}
    events = []
    for lsn, xid, data in changes:
        if data == "COMMIT":
            if xid in building:
                events.append((lsn, building.pop(xid)))
            continue
        table, columns = CHANGE.match(data).groups()
        row = {name: value.strip("'").replace("''", "'") for name, value in COLUMN.findall(columns)}
        event = building.setdefault(xid, {"lines": []})
        if table == "orders":
            event.update(order=int(row["id"]), customer=int(row["customer_id"]))
        elif table == "order_lines":
            event["lines"].append([row["sku"], int(row["quantity"])])
    return events


class CdcRelay:
    """Reads the slot without consuming it (peek), publishes, then confirms: advances the slot."""

    def __init__(self, url: str, stores: Stores, stream: str, crash: CrashPlan) -> None:
        self.pg = psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S, autocommit=True)
        self.stores, self.stream, self.crash = stores, stream, crash

    def poll(self) -> int:
        """The number of transactions read: those without an order still move the slot on."""
        changes = self.pg.execute(PEEK, (SLOT, CDC_CHANGES, f"table {SCHEMA}.order")).fetchall()
        if not changes:
            return 0
        self.stores.decoded = self.stores.decoded or [data for _lsn, _xid, data in changes[:3]]
        self.crash.tick("relay:read")
        for _lsn, event in events_of(changes):
            self.stores.cache.xadd(self.stream, {"event": json.dumps(event)})
            self.crash.tick("relay:published")
        commits = [lsn for lsn, _xid, data in changes if data == "COMMIT"]
        self.pg.execute("SELECT pg_replication_slot_advance(%s, %s::pg_lsn)", (SLOT, commits[-1]))
        return len(commits)

    def close(self) -> None:
        self.pg.close()


def pipeline(url: str, stores: Stores, method: str, crash: CrashPlan) -> dict[str, Callable[[], object]]:
    stream = NS.redis_key(method)
    for group in GROUPS:
        with contextlib.suppress(redis.ResponseError):  # BUSYGROUP: made by an earlier run of this method
            stores.cache.xgroup_create(stream, group, id="0", mkstream=True)
    relay = OutboxRelay if method == "outbox" else CdcRelay
    factories = {"relay": lambda: relay(url, stores, stream, crash)}
    for group in GROUPS:
        factories[group] = lambda group=group: Consumer(stores, stream, group, crash)
    return factories


def drain(factories: dict[str, Callable[[], object]]) -> None:
    """Poll every part until none moves; a crashed part is restarted from its durable position."""
    parts = {name: make() for name, make in factories.items()}
    try:
        while True:
            try:
                if not sum(part.poll() for part in parts.values()):
                    return
            except Crash as died:
                name = str(died).split(":")[0]
                parts[name].close()
                parts[name] = factories[name]()
    finally:
        for part in parts.values():
            part.close()


def missing_and_doubled(
    conn: psycopg.Connection, stores: Stores, ids: list[int]
) -> dict[str, tuple[int, int]]:
    """Per read model: committed orders with a line missing there, and effects applied more than once."""
    expected = set(
        conn.execute(q("SELECT order_id, sku FROM {s}.order_lines WHERE order_id = ANY(%s)"), (ids,))
    )
    conn.rollback()
    catalog, wanted = Counter(), set(ids)
    for document in stores.catalog.find({"orders": {"$in": ids}}, {"orders": 1}):
        catalog.update((order, document["_id"]) for order in document["orders"] if order in wanted)
    records = stores.driver.execute_query(GRAPH_APPLIED, ids=ids, database_=NEO4J_DATABASE).records
    graph = Counter({(r["order"], r["sku"]): r["n"] for r in records})
    return {
        name: (len({o for o, sku in expected if not applied[(o, sku)]}), sum(n - 1 for n in applied.values()))
        for name, applied in (("catalog", catalog), ("graph", graph))
    }


def dual_write(conn, stores: Stores, orders: list[shop.Order], prices: dict) -> tuple[dict, list[float]]:
    """Orders each read model never got (by failure injected after the commit), and the write times."""
    lags = []
    for n, order in enumerate(orders, start=1):
        place(conn, order, prices, outbox=False)
        committed = time.perf_counter()
        if n in FAIL_AFTER_COMMIT:
            continue  # killed: the request is gone, and with it the only memory of what was owed
        apply_catalog(stores, event_of(order), CrashPlan())
        if n in FAIL_BEFORE_GRAPH:
            continue  # the Neo4j connection dropped: the catalog has the order, the graph never will
        apply_graph(stores, event_of(order), CrashPlan())
        lags.append(time.perf_counter() - committed)
    found = missing_and_doubled(conn, stores, [order.id for order in orders])
    return {name: lost for name, (lost, _doubled) in found.items()}, lags


def sweep(
    url: str, conn, stores: Stores, method: str, points: tuple, orders: list, prices: dict
) -> list[Run]:
    runs = []
    for i, point in enumerate(points):
        batch = orders[i * SWEEP_ORDERS : (i + 1) * SWEEP_ORDERS]
        for order in batch:
            place(conn, order, prices, outbox=method == "outbox")
        stores.stats.clear()
        crash = CrashPlan(point)
        drain(pipeline(url, stores, method, crash))
        found = missing_and_doubled(conn, stores, [order.id for order in batch])
        lost, doubled = (sum(values) for values in zip(*found.values(), strict=True))
        stats = stores.stats
        runs.append(Run(method, point, crash.crashes, stats["redelivered"], stats["caught"], lost, doubled))
    return runs


def live_lag(url: str, stores: Stores, method: str, orders: list, prices: dict) -> list[float]:
    """The relay and each consumer in a thread of its own while orders are placed: commit to both read models."""
    committed: dict[int, float] = {}
    stop = threading.Event()

    def loop(make: Callable[[], object]) -> None:
        part = make()
        try:
            while not stop.is_set():
                if not part.poll():
                    time.sleep(POLL_S)
        finally:
            part.close()

    threads = [
        threading.Thread(target=loop, args=(make,))
        for make in pipeline(url, stores, method, CrashPlan()).values()
    ]
    for thread in threads:
        thread.start()
    try:
        with psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S) as conn:
            for order in orders:
                place(conn, order, prices, outbox=method == "outbox")
                committed[order.id] = time.perf_counter()
                time.sleep(WRITE_PAUSE_S)
        deadline = time.monotonic() + 60
        while not all((g, o.id) in stores.applied_at for g in GROUPS for o in orders):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{method}: orders not in the read models after 60 s")
            time.sleep(POLL_S)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    return [max(stores.applied_at[(g, o.id)] for g in GROUPS) - committed[o.id] for o in orders]


def show_runs(runs: list[Run]) -> None:
    console.say(
        f"Each run: {SWEEP_ORDERS} orders, one component killed at the crash point, restarted, drained."
    )
    console.table(
        ["crashed at", "redelivered", "duplicates caught", "orders lost", "applied twice"],
        [(r.point, r.redelivered, r.duplicates_caught, r.lost, r.double_applied) for r in runs],
    )
    lost, double = sum(r.lost for r in runs), sum(r.double_applied for r in runs)
    console.say(f"Over {len(runs)} crashed runs: {lost} orders lost, {double} effects applied twice.")


@contextlib.contextmanager
def logical_decoding(url: str) -> Iterator[tuple[str | None, str]]:
    """The shared server when its wal_level is logical, else a throwaway local node, else None."""
    with psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S) as conn:
        level = conn.execute("SHOW wal_level").fetchone()[0]
    if level == "logical":
        yield url, "the shared server (wal_level=logical)"
        return
    try:
        with throwaway("postgres", settings={"wal_level": "logical"}) as env:
            yield env["POSTGRES_URL"], f"a throwaway local node (the shared server has wal_level={level})"
    except NoThrowaway:
        yield None, f"skipped: wal_level={level} here and no local PostgreSQL for a throwaway node"


def reset_cdc(admin: psycopg.Connection) -> int:
    """Drop the slot (it would keep WAL forever) and the database; return the slots left."""
    admin.execute(
        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s", (SLOT,)
    )
    admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(CDC_DATABASE)))
    return admin.execute(
        "SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s", (SLOT,)
    ).fetchone()[0]


def cdc(
    server_url: str, stores: Stores, orders: list, prices: dict, products: list, result: SyncResult
) -> None:
    url = make_conninfo(server_url, dbname=CDC_DATABASE)
    with psycopg.connect(server_url, connect_timeout=CONNECT_TIMEOUT_S, autocommit=True) as admin:
        try:
            reset_cdc(admin)
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(CDC_DATABASE)))
            with psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S, autocommit=True) as conn:
                create_tables(conn, products, outbox=False)
                # A new slot waits for every write transaction running on the server, the neighbours'
                # too, and for a running-transactions record (one every 15 s or so): more time for it.
                conn.execute("SET statement_timeout = '300s'")
                conn.execute("SELECT pg_create_logical_replication_slot(%s, 'test_decoding')", (SLOT,))
                conn.execute("SET statement_timeout = '60s'")
                result.runs += sweep(url, conn, stores, "cdc", CDC_POINTS + CONSUMER_POINTS, orders, prices)
                lag_orders = orders[len(CDC_POINTS + CONSUMER_POINTS) * SWEEP_ORDERS :]
                result.lag_s["change data capture"] = live_lag(url, stores, "cdc", lag_orders, prices)
        finally:
            result.slots_left = reset_cdc(admin)
    console.say("The relay peeks (reads without consuming) and advances the slot once it has published;")
    console.say("pg_logical_slot_get_changes would confirm on reading, and a crash would lose the batch.")
    console.say("The first rows the relay read from the slot (test_decoding's text):")
    for data in stores.decoded:
        console.say(f"  {data[:110]}")
    show_runs([r for r in result.runs if r.method == "cdc"])


def reset_stores(stores: Stores, products: list[shop.Product]) -> None:
    stores.catalog.drop()
    stores.catalog.insert_many(
        [{"_id": p.sku, "name": p.name, "category": p.category, "sold": 0, "orders": []} for p in products]
    )
    for key in stores.cache.scan_iter(match=NS.redis_prefix + "*"):
        stores.cache.delete(key)
    stores.driver.execute_query(GRAPH_RESET, database_=NEO4J_DATABASE)
    stores.driver.execute_query(GRAPH_KEY, database_=NEO4J_DATABASE)
    wait_until_online(stores.driver, "ShopDataSynchronization", NEO4J_DATABASE)


def run(url: str, mongo: MongoClient, cache: redis.Redis, driver: Driver, scale: float = 1.0) -> SyncResult:
    """`url` is PostgreSQL's address: the relays and the live writer open connections of their own."""
    console.title("Data synchronization: dual writes, the transactional outbox and change data capture")
    products, customers = shop.products(N_PRODUCTS), shop.customers(N_CUSTOMERS)
    prices = {p.sku: p for p in products}
    n_dual, n_live = max(14, round(28 * scale)), max(10, round(20 * scale))
    n_sweep = SWEEP_ORDERS * len(OUTBOX_POINTS + CONSUMER_POINTS)
    n_cdc = SWEEP_ORDERS * len(CDC_POINTS + CONSUMER_POINTS) + n_live
    orders = shop.orders(customers, products, n=n_dual + n_sweep + n_live + n_cdc)
    dual, outbox, cdc_orders = orders[:n_dual], orders[n_dual:-n_cdc], orders[-n_cdc:]
    stores = Stores(mongo[NS.mongo_database]["catalog"], cache, driver)

    console.step("The shop: orders in PostgreSQL, a catalog copy in MongoDB, a purchase graph in Neo4j")
    reset_stores(stores, products)
    with psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S) as conn:
        create_tables(conn, products, outbox=True)
        console.say(f"{len(products)} products, {len(customers)} customers, {len(orders)} orders to place.")

        console.step("Dual write: commit to PostgreSQL, then write the read models; crashes in between")
        missing, lags = dual_write(conn, stores, dual, prices)
        result = SyncResult(len(dual), missing, [], "", lag_s={"dual write": lags})
        console.table(["read model", "orders committed", "orders it never got"],
                      [(name, len(dual), lost) for name, lost in missing.items()])  # fmt: skip
        console.say("No retry can repair it: nothing durable recorded which writes were owed.")

        console.step("Transactional outbox: the event row commits with the order, a relay streams it")
        console.say("Crash points: relay:read (rows locked, nothing sent), relay:published (after an XADD),")
        console.say("relay:marked (marked, not committed), *:read (delivered), catalog:line (between two")
        console.say(
            "documents), graph:in_tx (inside Neo4j's transaction), *:applied (applied, not acknowledged)."
        )
        result.runs += sweep(url, conn, stores, "outbox", OUTBOX_POINTS + CONSUMER_POINTS, outbox, prices)
        show_runs(result.runs)
        result.lag_s["transactional outbox"] = live_lag(url, stores, "outbox", outbox[n_sweep:], prices)
        result.outbox_unpublished = conn.execute(q(UNPUBLISHED_COUNT)).fetchone()[0]
        console.say(f"Outbox rows still unpublished at the end: {result.outbox_unpublished}.")

    console.step("Change data capture: logical decoding of the order tables feeds the relay")
    with logical_decoding(url) as (cdc_url, where):
        result.cdc_source = where
        console.say(f"Logical decoding on {where}.")
        if cdc_url:
            cdc(cdc_url, stores, cdc_orders, prices, products, result)
            console.say(f"Replication slots left behind: {result.slots_left}.")

    console.step("End-to-end lag, from PostgreSQL's commit to both read models")
    console.table(
        ["method", "orders", "p50", "max"],
        [(name, len(lags), console.seconds(statistics.median(lags)), console.seconds(max(lags)))
         for name, lags in result.lag_s.items() if lags],
    )  # fmt: skip
    return result


def main() -> int:
    require(*REQUIRES)
    with (
        MongoClient(mongo_url(), serverSelectionTimeoutMS=CONNECT_TIMEOUT_S * 1000) as mongo,
        redis.Redis.from_url(redis_url(), socket_connect_timeout=CONNECT_TIMEOUT_S) as cache,
        GraphDatabase.driver(neo4j_url(), auth=neo4j_auth(), connection_timeout=CONNECT_TIMEOUT_S) as driver,
    ):
        result = run(postgres_url(), mongo, cache, driver, scale=scale())
    return 0 if result.holds else 1


if __name__ == "__main__":
    raise SystemExit(main())

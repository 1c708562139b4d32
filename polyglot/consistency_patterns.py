"""Consistency patterns across stores: read-your-writes, compare-and-set, idempotency keys, lag

PostgreSQL is the shop's source of truth, Redis caches it and MongoDB holds a read model built from
it; each copy can be behind. Four patterns, each shown failing and then fixed, counted by the server.
Read-your-writes: a customer cancels an order and at once reads it through the cache, whose
invalidation arrives later (here: always after the read, to make the window visible): a stale read.
A session token, the version the write returned, makes the read skip a cache entry older than it.
Lost updates: two clients read the same stock, both write "quantity - 1", and one sale vanishes;
interleaved explicitly (A reads, B reads, A writes, B writes), not raced. A version checked at write
time refuses the second write in each store: `UPDATE ... WHERE version = %s`, MongoDB's
find_one_and_update with the version in the filter, Redis WATCH and MULTI/EXEC; the loser re-reads
and retries. Idempotency keys: a payment request whose response is lost is sent again; with a new
key each time every retry charges, with one key (UNIQUE, INSERT ... ON CONFLICT DO NOTHING) the
replay returns the first charge, even when the replays arrive at once. Eventual consistency: orders
committed with an outbox row, copied to MongoDB by a projector that polls; an observer measures the
time from each commit to its visibility in the read model.

Engine: PostgreSQL (POSTGRES_URL) schema `shop_consistency_patterns`; Redis (REDIS_URL) keys
`shop:consistency_patterns:*`; MongoDB (MONGO_URL) database `shop_consistency_patterns`.
Run: `make up SERVICES="postgres redis mongodb"` (or `make local-up`), then
`python polyglot/consistency_patterns.py`.
Look for: stale reads N before the session token and 0 after; lost updates N without a version
check and 0 with it in all three stores; charges 3 per order without a key, 1 with it; the
commit-to-visible window (p50/p95/max) and every write visible.
"""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb
from pymongo import MongoClient, ReplaceOne, ReturnDocument
from redis import Redis, WatchError

from common import console, settings, shop

REQUIRES = ("postgres", "redis", "mongodb")
NS = shop.namespaces("consistency_patterns")
SEED, SKU, RETRIES, POLL_S, CACHE_TTL_S = 7, "SH-0001", 3, 0.02, 300

OUTBOX = """CREATE TABLE {s}.outbox (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id bigint NOT NULL, payload jsonb NOT NULL)"""
INSERT_ORDER = "INSERT INTO {s}.orders (id, customer_id, total_cents) VALUES (%s, %s, %s)"
INSERT_OUTBOX = "INSERT INTO {s}.outbox (order_id, payload) VALUES (%s, %s)"
READ_OUTBOX = "SELECT id, order_id, payload FROM {s}.outbox WHERE id > %s ORDER BY id LIMIT 500"
READ_ORDER = "SELECT status, version FROM {s}.orders WHERE id = %s"
CANCEL = "UPDATE {s}.orders SET status = 'cancelled', version = version + 1 WHERE id = %s RETURNING version"
STOCK = "INSERT INTO {s}.stock (sku, quantity) VALUES (%s, %s)"
READ_STOCK = "SELECT quantity, version FROM {s}.stock WHERE sku = %s"
BLIND_WRITE = "UPDATE {s}.stock SET quantity = %s, version = version + 1 WHERE sku = %s"
CAS_WRITE = "UPDATE {s}.stock SET quantity = %s, version = version + 1 WHERE sku = %s AND version = %s"
CHARGE = """INSERT INTO {s}.payments (order_id, idempotency_key, amount_cents) VALUES (%s, %s, %s)
    ON CONFLICT (idempotency_key) DO NOTHING RETURNING id"""
FIRST_CHARGE = "SELECT id, order_id, amount_cents FROM {s}.payments WHERE idempotency_key = %s"
CHARGES = "SELECT count(*) FROM {s}.payments WHERE order_id = ANY(%s)"


def q(template: str) -> sql.Composed:
    return sql.SQL(template).format(s=sql.Identifier(NS.postgres_schema))


@dataclass
class ConsistencyResult:
    reads: int  # reads right after the reader's own write, each way
    stale_without_token: int
    stale_with_token: int
    cache_bypasses: int  # reads the token sent to PostgreSQL instead of the cache
    rounds: int  # interleaved pairs of sales per store and way
    lost: dict[str, dict[str, int]]  # store -> {"blind write": n, "compare-and-set": n}
    conflicts: dict[str, int]  # store -> second writes refused by the version check (each retried)
    payments: int  # orders paid, each request sent 1 + RETRIES times
    charges: dict[str, int]  # "new key per retry", "one key", "one key, replays at once" -> charges
    replays_return_first: bool
    writes: int
    visible: int
    window_ms: dict[str, float] = field(compare=False)  # p50, p95, max from commit to visible

    @property
    def holds(self) -> bool:
        return (
            self.stale_without_token > 0
            and self.stale_with_token == 0
            and all(n["blind write"] > 0 and n["compare-and-set"] == 0 for n in self.lost.values())
            and self.charges["one key"] == self.charges["one key, replays at once"] == self.payments
            and self.replays_return_first
            and self.visible == self.writes
        )


# --- read-your-writes: cache-aside over PostgreSQL, invalidated asynchronously ----------------------


class OrderCache:
    """Cache-aside: a hash per order in Redis, refilled from PostgreSQL on a miss."""

    def __init__(self, pg: psycopg.Connection, r: Redis) -> None:
        self.pg, self.r = pg, r
        self.pending_invalidations: list[str] = []

    def read(self, order_id: int, token: int = 0) -> tuple[str, int, bool]:
        """(status, version, from cache). A cached entry older than `token` is skipped."""
        cached = self.r.hgetall(NS.redis_key("order", order_id))
        if cached and int(cached["version"]) >= token:
            return cached["status"], int(cached["version"]), True
        status, version = self.pg.execute(q(READ_ORDER), (order_id,)).fetchone()
        key = NS.redis_key("order", order_id)
        refill = self.r.pipeline().hset(key, mapping={"status": status, "version": version})
        refill.expire(key, CACHE_TTL_S).execute()
        return status, version, False

    def cancel(self, order_id: int) -> int:
        """The write goes to PostgreSQL; the invalidation is queued (as a change-data-capture consumer would)."""
        version = self.pg.execute(q(CANCEL), (order_id,)).fetchone()[0]
        self.pending_invalidations.append(NS.redis_key("order", order_id))
        return version

    def deliver_invalidations(self) -> None:
        if self.pending_invalidations:
            self.r.delete(*self.pending_invalidations)
        self.pending_invalidations.clear()


def read_your_writes(cache: OrderCache, order_ids: list[int], use_token: bool) -> tuple[int, int]:
    """Cancel each order and read it back at once; (stale reads, reads that bypassed the cache)."""
    for order_id in order_ids:
        cache.read(order_id)  # the cache is warm: someone viewed the order earlier
    stale = bypassed = 0
    for order_id in order_ids:
        token = cache.cancel(order_id)  # the session keeps the version its write returned
        status, _, from_cache = cache.read(order_id, token if use_token else 0)
        stale += status != "cancelled"
        bypassed += not from_cache
        cache.deliver_invalidations()  # lands after the read: the window made visible
    return stale, bypassed


# --- lost updates: the same interleaving against each store, with and without a version check ------


class PostgresStock:
    def __init__(self, url: str) -> None:
        self.clients = {who: psycopg.connect(url, autocommit=True) for who in "ab"}

    def read(self, who: str, cas: bool) -> tuple[int, int]:
        return self.clients[who].execute(q(READ_STOCK), (SKU,)).fetchone()

    def write(self, who: str, state: tuple[int, int], cas: bool) -> bool:
        quantity, version = state
        if cas:
            return self.clients[who].execute(q(CAS_WRITE), (quantity - 1, SKU, version)).rowcount == 1
        self.clients[who].execute(q(BLIND_WRITE), (quantity - 1, SKU))
        return True

    def close(self) -> None:
        for client in self.clients.values():
            client.close()


class MongoStock:
    def __init__(self, mongo: MongoClient) -> None:
        self.stock = mongo[NS.mongo_database]["stock"]

    def read(self, who: str, cas: bool) -> tuple[int, int]:
        doc = self.stock.find_one({"_id": SKU})
        return doc["quantity"], doc["version"]

    def write(self, who: str, state: tuple[int, int], cas: bool) -> bool:
        quantity, version = state
        if cas:  # the filter holds the version read: no match, no update, None returned
            match = {"_id": SKU, "version": version}
            change = {"$set": {"quantity": quantity - 1}, "$inc": {"version": 1}}
            return (
                self.stock.find_one_and_update(match, change, return_document=ReturnDocument.AFTER)
                is not None
            )
        self.stock.update_one({"_id": SKU}, {"$set": {"quantity": quantity - 1}, "$inc": {"version": 1}})
        return True

    def close(self) -> None:
        pass


class RedisStock:
    """Two clients, each a pipeline on its own connection: WATCH is per connection."""

    def __init__(self, r: Redis) -> None:
        self.r, self.key, self.clients = r, NS.redis_key("stock", SKU), {who: r.pipeline() for who in "ab"}

    def read(self, who: str, cas: bool) -> tuple[int, int]:
        if not cas:
            return int(self.r.get(self.key)), 0
        self.clients[who].watch(self.key)  # from here, this client's EXEC fails if the key changes
        return int(self.clients[who].get(self.key)), 0  # a watching pipeline runs commands at once

    def write(self, who: str, state: tuple[int, int], cas: bool) -> bool:
        client = self.clients[who]
        if not cas:
            self.r.set(self.key, state[0] - 1)
            return True
        try:
            client.multi()
            client.set(self.key, state[0] - 1)
            client.execute()
            return True
        except WatchError:
            return False
        finally:
            client.reset()

    def close(self) -> None:
        for client in self.clients.values():
            client.reset()


def interleave(store, cas: bool, rounds: int, start: int) -> tuple[int, int]:
    """A reads, B reads, A writes, B writes, `rounds` times; a refused write re-reads and retries.
    Returns (lost sales, writes refused by the version check)."""
    refused = 0
    for _ in range(rounds):
        states = {who: store.read(who, cas) for who in "ab"}
        for who in "ab":
            while not store.write(who, states[who], cas):
                refused += 1
                states[who] = store.read(who, cas)
    final = store.read("a", False)[0]
    return final - (start - 2 * rounds), refused


def lost_updates(pg_url: str, pg: psycopg.Connection, r: Redis, mongo: MongoClient, rounds: int):
    start = 2 * rounds + 100
    lost: dict[str, dict[str, int]] = {}
    conflicts: dict[str, int] = {}
    for name, make in (("PostgreSQL", lambda: PostgresStock(pg_url)), ("MongoDB", lambda: MongoStock(mongo)),
                       ("Redis", lambda: RedisStock(r))):  # fmt: skip
        lost[name] = {}
        for way, cas in (("blind write", False), ("compare-and-set", True)):
            pg.execute(q("DELETE FROM {s}.stock"))
            pg.execute(q(STOCK), (SKU, start))
            mongo[NS.mongo_database]["stock"].replace_one(
                {"_id": SKU}, {"quantity": start, "version": 1}, upsert=True
            )
            r.set(NS.redis_key("stock", SKU), start)
            store = make()
            try:
                lost[name][way], refused = interleave(store, cas, rounds, start)
            finally:
                store.close()
            if cas:
                conflicts[name] = refused
    return lost, conflicts


# --- idempotency keys on a payment endpoint ------------------------------------------------------


def charge(conn: psycopg.Connection, order_id: int, amount: int, key: str) -> int:
    """The endpoint: one charge per key; a replay returns the first charge's id (a mismatch is refused)."""
    row = conn.execute(q(CHARGE), (order_id, key, amount)).fetchone()
    if row:
        return row[0]
    payment_id, first_order, first_amount = conn.execute(q(FIRST_CHARGE), (key,)).fetchone()
    if (first_order, first_amount) != (order_id, amount):
        raise ValueError(f"idempotency key {key} was used for another request")
    return payment_id


def payments(pg_url: str, pg: psycopg.Connection, orders: list[shop.Order], totals: dict[int, int]):
    """Three equal groups of orders, each paid with 1 + RETRIES requests (the first response lost)."""
    n = len(orders) // 3
    naive, keyed, concurrent = orders[:n], orders[n : 2 * n], orders[2 * n : 3 * n]
    for order in naive:  # the client makes a new key for each attempt: the server cannot tell them apart
        for _ in range(1 + RETRIES):
            charge(pg, order.id, totals[order.id], str(uuid.uuid4()))
    same_result = True
    for order in keyed:  # one key per payment, kept across retries
        key = f"pay-{order.id}"
        ids = {charge(pg, order.id, totals[order.id], key) for _ in range(1 + RETRIES)}
        same_result &= len(ids) == 1
    conns = [psycopg.connect(pg_url, autocommit=True) for _ in range(1 + RETRIES)]
    with ThreadPoolExecutor(len(conns)) as pool:  # the replays arrive at once, each on its own connection
        for o in concurrent:
            ids = set(pool.map(lambda conn, o=o: charge(conn, o.id, totals[o.id], f"pay-{o.id}"), conns))
            same_result &= len(ids) == 1
    for conn in conns:
        conn.close()
    counted = {name: pg.execute(q(CHARGES), ([o.id for o in group],)).fetchone()[0]
               for name, group in (("new key per retry", naive), ("one key", keyed),
                                   ("one key, replays at once", concurrent))}  # fmt: skip
    return n, counted, same_result


# --- eventual consistency: outbox, projector, and an observer of the read model -----------------


def projector(pg_url: str, mongo: MongoClient, stop: threading.Event) -> None:
    """Polls the outbox every POLL_S and upserts new rows into the MongoDB read model.
    Once `stop` is set it still copies what is left, so a projector starved of CPU ends caught up."""
    view = mongo[NS.mongo_database]["orders_view"]
    last = 0
    with psycopg.connect(pg_url, autocommit=True) as conn:
        while True:
            rows = conn.execute(q(READ_OUTBOX), (last,)).fetchall()
            if rows:  # one round trip per batch; an upsert, so a row copied twice is harmless
                view.bulk_write(
                    [ReplaceOne({"_id": order_id}, doc, upsert=True) for _, order_id, doc in rows]
                )
                last = rows[-1][0]
            elif stop.is_set():
                return
            else:
                stop.wait(POLL_S)


def observer(mongo: MongoClient, expected: int, seen: dict[int, float], stop: threading.Event) -> None:
    """Notes when each order first appears in the read model, polling every 2 ms (ids rise with time)."""
    view = mongo[NS.mongo_database]["orders_view"]
    while len(seen) < expected and not stop.is_set():
        for doc in view.find({"_id": {"$gt": max(seen, default=0)}}, {"_id": 1}):
            seen.setdefault(doc["_id"], time.perf_counter())
        stop.wait(0.002)


def eventual(
    pg_url: str, pg: psycopg.Connection, mongo: MongoClient, orders: list[shop.Order], totals
) -> tuple:
    committed: dict[int, float] = {}
    seen: dict[int, float] = {}
    stop = threading.Event()
    threads = [threading.Thread(target=projector, args=(pg_url, mongo, stop)),
               threading.Thread(target=observer, args=(mongo, len(orders), seen, stop))]  # fmt: skip
    for thread in threads:
        thread.start()
    try:
        for order in orders:
            with pg.transaction():  # the order and its outbox row commit together, or neither does
                pg.execute(q(INSERT_ORDER), (order.id, order.customer_id, totals[order.id]))
                payload = {
                    "customer_id": order.customer_id,
                    "total_cents": totals[order.id],
                    "lines": order.lines,
                }
                pg.execute(q(INSERT_OUTBOX), (order.id, Jsonb(payload)))
            committed[order.id] = time.perf_counter()
            time.sleep(0.005)
        deadline = time.monotonic() + 60  # generous: on a busy machine the projector may be starved
        while len(seen) < len(orders) and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    windows = sorted((seen[i] - committed[i]) * 1000 for i in seen if i in committed)
    return len(committed), mongo[NS.mongo_database]["orders_view"].count_documents({}), windows


def run(pg: psycopg.Connection, pg_url: str, r: Redis, mongo: MongoClient) -> ConsistencyResult:
    """`pg` in autocommit mode, `r` with decode_responses=True."""
    console.title("Consistency patterns: read-your-writes, compare-and-set, idempotency keys, lag")
    factor = settings.scale()
    n = max(20, int(100 * factor))
    products, customers = shop.products(seed=SEED), shop.customers(seed=SEED)
    orders = shop.orders(customers, products, 6 * n, SEED)  # n each: 2 for the cache, 3 paid, 1 projected
    by_sku = {p.sku: p for p in products}
    totals = {o.id: shop.order_total(o, by_sku) for o in orders}
    placed, later = orders[: 5 * n], orders[5 * n :]

    console.step("Reset the lesson's schema, keys and database; place the orders")
    shop.create_order_tables(pg, NS.postgres_schema)
    pg.execute(q(OUTBOX))
    with pg.cursor().copy(q("COPY {s}.orders (id, customer_id, placed_at, total_cents) FROM STDIN")) as copy:
        for o in placed:
            copy.write_row((o.id, o.customer_id, o.placed_at, totals[o.id]))
    for key in r.scan_iter(match=NS.redis_prefix + "*", count=1_000):
        r.unlink(key)
    mongo.drop_database(NS.mongo_database)
    console.say(f"{len(placed)} orders in PostgreSQL, the source of truth; Redis and MongoDB are empty.")

    console.step("Read-your-writes: cancel an order, read it back through the cache")
    cache = OrderCache(pg, r)
    stale_without, _ = read_your_writes(cache, [o.id for o in placed[:n]], use_token=False)
    stale_with, bypasses = read_your_writes(cache, [o.id for o in placed[n : 2 * n]], use_token=True)
    console.table(["session", "reads after own write", "stale", "sent to PostgreSQL"],
                  [("no token", n, stale_without, 0), ("token = version the write returned", n, stale_with, bypasses)])  # fmt: skip
    console.say("The token costs one PostgreSQL read per own write, until the invalidation lands; other")
    console.say("sessions are promised nothing. A versioned key (order:7:v3) gives the same guarantee.")

    console.step("Lost updates: two clients sell the same item, interleaved A read, B read, A write, B write")
    lost, conflicts = lost_updates(pg_url, pg, r, mongo, n)
    console.table(["store", "pairs of sales", "lost, blind write", "lost, compare-and-set", "writes refused and retried"],
                  [(s, n, lost[s]["blind write"], lost[s]["compare-and-set"], conflicts[s]) for s in lost])  # fmt: skip

    console.step(f"Idempotency keys: each payment request sent {1 + RETRIES} times, as after a lost response")
    paid, charges, same = payments(pg_url, pg, placed[2 * n :], totals)
    console.table(
        ["client", "orders", "requests", "charges"],
        [(way, paid, paid * (1 + RETRIES), c) for way, c in charges.items()],
    )
    console.say(f"Every replay with the key returned the first charge's id: {same}.")

    console.step("Eventual consistency: orders with an outbox row, projected into MongoDB by a poller")
    writes, visible, windows = eventual(pg_url, pg, mongo, later, totals)
    window_ms = {"p50": statistics.median(windows), "p95": windows[int(0.95 * (len(windows) - 1))],
                 "max": windows[-1]} if windows else {}  # fmt: skip
    console.table(["writes", "visible in the read model", "p50 ms", "p95 ms", "max ms"],
                  [(writes, visible, *(f"{window_ms.get(k, 0):.1f}" for k in ("p50", "p95", "max")))])  # fmt: skip
    console.say(
        f"The projector polls every {POLL_S * 1000:.0f} ms; a window far above that is the copy lagging."
    )

    return ConsistencyResult(n, stale_without, stale_with, bypasses, n, lost, conflicts,
                             paid, charges, same, writes, visible, window_ms)  # fmt: skip


def main() -> int:
    settings.require(*REQUIRES)
    url, timeout = settings.postgres_url(), settings.CONNECT_TIMEOUT_S
    with (
        psycopg.connect(url, connect_timeout=timeout, autocommit=True) as pg,
        Redis.from_url(settings.redis_url(), socket_timeout=timeout, decode_responses=True) as r,
        MongoClient(settings.mongo_url(), serverSelectionTimeoutMS=timeout * 1000) as mongo,
    ):
        result = run(pg, url, r, mongo)
    return 0 if result.holds else 1


if __name__ == "__main__":
    raise SystemExit(main())

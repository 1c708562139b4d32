"""Caching strategies: cache-aside, read-through, write-through, write-behind, TTL jitter and stampedes

A Redis cache in front of a PostgreSQL query worth caching: a product's rank in its category, 800
order lines joined and aggregated per key. The lesson counts every database load and every cache
hit, so each strategy shows what it does: cache-aside (the application checks the cache, loads on a
miss, fills it) and read-through (the cache wraps the loader; the application only asks the cache);
invalidation on write, and the stale read it prevents; write-through (the database and the cache in
the same call) and write-behind (the cache now, the database later from a queue flushed in batches:
the window where the database lags, then catches up; a batch leaves the queue only once its UPDATE
has committed, so a failed flush loses nothing); TTLs with jitter, so keys warmed together do
not all expire in the same second; a cache stampede, twenty requests missing one expensive key at
once, without protection and with a SET NX PX lock; and Zipf-distributed reads, with the hit ratio
and the p50/p99 latency with and without the cache.

Engine: PostgreSQL (POSTGRES_URL), schema `caching_strategies`; Redis (REDIS_URL), keys under
`caching_strategies:`.
Run: `make up SERVICES="postgres redis"` (or `make local-up`), then `python performance/caching_strategies.py`.
Look for: the stale read without invalidation, the database rows lagging before the flush, 20
database loads against 1 in the stampede, and the hit ratio with its p50/p99 against the database's.
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import redis
from psycopg import sql
from psycopg_pool import ConnectionPool

from common import console
from common.settings import CONNECT_TIMEOUT_S, postgres_url, redis_url, require, scale
from common.timing import Comparison, timer

REQUIRES = ("postgres", "redis")
SCHEMA = "caching_strategies"
PREFIX = "caching_strategies:"
SEED = 11
DB_SEED = 0.11  # setseed() for random() in SQL
FULL_PRODUCTS, MIN_PRODUCTS = 10_000, 500  # the keys
PRODUCTS_PER_CATEGORY = 20
FULL_ORDERS, MIN_ORDERS = 100_000, 5_000
LINES_PER_ORDER = 4  # 40 order lines per product, 800 per category, whatever the scale
FULL_READS, MIN_READS = 2_000, 300
FULL_WRITES, MIN_WRITES = 500, 100
FULL_WARMED, MIN_WARMED = 1_000, 200
FLUSH_BATCH = 100
THREADS = 20
ZIPF_S = 1.1
BASE_TTL_S = 300
JITTER_S = 30  # each TTL is BASE_TTL_S plus or minus up to this
LOCK_MS = 5_000  # longer than any load: the lock outlives the loader, never the reverse
POLL_S = 0.005
PRODUCT_ID = 7  # the product the single-key steps use

TABLES = [
    """CREATE TABLE caching_strategies.products (
        id integer PRIMARY KEY, name text NOT NULL, category_id integer NOT NULL, price_cents integer NOT NULL
    )""",
    """CREATE TABLE caching_strategies.order_lines (
        order_id integer NOT NULL, line_no integer NOT NULL, product_id integer NOT NULL, quantity integer NOT NULL,
        PRIMARY KEY (order_id, line_no)
    )""",
]
LOAD = [
    """INSERT INTO caching_strategies.products
       SELECT i, 'Product ' || i, 1 + i %% (%(products)s / %(per_category)s), 100 + floor(random() * 10000)::int
       FROM generate_series(1, %(products)s) AS i""",
    """INSERT INTO caching_strategies.order_lines
       SELECT o, n, 1 + floor(random() * %(products)s)::int, 1 + floor(random() * 4)::int
       FROM generate_series(1, %(orders)s) AS o, generate_series(1, %(lines)s) AS n""",
    "CREATE INDEX ON caching_strategies.products (category_id)",
    "CREATE INDEX ON caching_strategies.order_lines (product_id)",
    "VACUUM (ANALYZE) caching_strategies.products, caching_strategies.order_lines",
]
# What a product page shows: its sales and its rank among the products of its category, which
# takes aggregating the 800 order lines of its category. Worth caching.
SUMMARY = """
WITH category_sales AS (
    SELECT p.id, coalesce(sum(l.quantity), 0) AS units, coalesce(sum(l.quantity * p.price_cents), 0) AS revenue
    FROM caching_strategies.products AS p
    LEFT JOIN caching_strategies.order_lines AS l ON l.product_id = p.id
    WHERE p.category_id = (SELECT category_id FROM caching_strategies.products WHERE id = %(id)s)
    GROUP BY p.id
), ranked AS (
    SELECT id, units, revenue, rank() OVER (ORDER BY revenue DESC) AS rank_in_category,
           count(*) OVER () AS products_in_category, (sum(revenue) OVER ())::bigint AS category_revenue
    FROM category_sales
)
SELECT p.id, p.name, p.category_id, p.price_cents, r.units, r.revenue, r.rank_in_category,
       r.products_in_category, r.category_revenue
FROM ranked AS r JOIN caching_strategies.products AS p ON p.id = r.id
WHERE r.id = %(id)s
"""
PRICE = "SELECT price_cents FROM caching_strategies.products WHERE id = %s"
FIRST_PRODUCTS = "SELECT id, name, price_cents FROM caching_strategies.products WHERE id <= %s ORDER BY id"
SET_PRICE = "UPDATE caching_strategies.products SET price_cents = %s WHERE id = %s RETURNING price_cents"
SET_PRICES = """
UPDATE caching_strategies.products AS p SET price_cents = v.price
FROM unnest(%s::int[], %s::int[]) AS v(id, price) WHERE p.id = v.id
"""
PRICES_DIFFERING = """
SELECT count(*) FROM caching_strategies.products AS p
JOIN unnest(%s::int[], %s::int[]) AS v(id, price) ON p.id = v.id WHERE p.price_cents <> v.price
"""
# The home page's best sellers: every order line aggregated. One key, expensive, read by all.
BEST_SELLERS = """
SELECT p.id, p.name, sum(l.quantity * p.price_cents) AS revenue_cents
FROM caching_strategies.order_lines AS l JOIN caching_strategies.products AS p ON p.id = l.product_id
GROUP BY p.id ORDER BY revenue_cents DESC, p.id LIMIT 10
"""
# Delete the lock only if it is still ours: it may have expired and been taken by another client.
RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


@dataclass(frozen=True)
class Sizes:
    products: int
    orders: int
    reads: int
    writes: int
    warmed: int

    @classmethod
    def at(cls, scale: float) -> Sizes:
        def scaled(full: int, least: int) -> int:
            return max(int(full * scale), least)

        return cls(
            products=scaled(FULL_PRODUCTS, MIN_PRODUCTS),
            orders=scaled(FULL_ORDERS, MIN_ORDERS),
            reads=scaled(FULL_READS, MIN_READS),
            writes=scaled(FULL_WRITES, MIN_WRITES),
            warmed=scaled(FULL_WARMED, MIN_WARMED),
        )


def key(*parts: object) -> str:
    return PREFIX + ":".join(str(part) for part in parts)


class Store:
    """The database behind the cache; it counts every query a cache sends it."""

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool
        self.loads: Counter[str] = Counter()
        self._lock = threading.Lock()

    def _fetch(self, what: str, query: str, params: tuple | dict = ()) -> list[tuple]:
        with self._lock:
            self.loads[what] += 1
        with self.pool.connection() as conn:
            return conn.execute(query, params).fetchall()

    def summary(self, product_id: int) -> dict:
        (row,) = self._fetch("summary", SUMMARY, {"id": product_id})
        names = ("id", "name", "category_id", "price_cents", "units", "revenue_cents", "rank_in_category",
                 "products_in_category", "category_revenue_cents")  # fmt: skip
        return dict(zip(names, row, strict=True))

    def price(self, product_id: int) -> int:
        ((price,),) = self._fetch("price", PRICE, (product_id,))
        return price

    def best_sellers(self) -> list[list]:
        return [[pid, name, revenue] for pid, name, revenue in self._fetch("best_sellers", BEST_SELLERS)]

    def set_price(self, product_id: int, price_cents: int) -> int:
        """The price as stored, which is what a write-through puts in the cache."""
        with self.pool.connection() as conn:
            return conn.execute(SET_PRICE, (price_cents, product_id)).fetchone()[0]

    def set_prices(self, prices: dict[int, int]) -> None:
        with self.pool.connection() as conn:
            conn.execute(SET_PRICES, (list(prices), list(prices.values())))

    def prices_differing(self, prices: dict[int, int]) -> int:
        with self.pool.connection() as conn:
            return conn.execute(PRICES_DIFFERING, (list(prices), list(prices.values()))).fetchone()[0]


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0

    @property
    def hit_ratio(self) -> float:
        return self.hits / (self.hits + self.misses) if self.hits + self.misses else 0.0


class Jitter:
    """TTLs of BASE_TTL_S plus or minus up to JITTER_S seconds, from a seeded generator."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self._lock = threading.Lock()

    def ttl(self) -> int:
        with self._lock:
            return BASE_TTL_S + self.rng.randint(-JITTER_S, JITTER_S)


def summary_cache_aside(
    store: Store, cache: redis.Redis, product_id: int, stats: CacheStats, jitter: Jitter
) -> dict:
    """Cache-aside: the application looks in the cache, and on a miss loads and fills it itself."""
    cached = cache.get(key("summary", product_id))
    if cached is not None:
        stats.hits += 1
        return json.loads(cached)
    stats.misses += 1
    value = store.summary(product_id)
    cache.set(key("summary", product_id), json.dumps(value), ex=jitter.ttl())
    return value


class ReadThrough:
    """Read-through: the cache owns the loader; the application only ever calls get()."""

    def __init__(
        self, cache: redis.Redis, kind: str, loader: Callable[[int], object], jitter: Jitter
    ) -> None:
        self.cache, self.kind, self.loader, self.jitter = cache, kind, loader, jitter
        self.stats = CacheStats()

    def get(self, item_id: int) -> object:
        cached = self.cache.get(key(self.kind, item_id))
        if cached is not None:
            self.stats.hits += 1
            return json.loads(cached)
        self.stats.misses += 1
        value = self.loader(item_id)
        self.cache.set(key(self.kind, item_id), json.dumps(value), ex=self.jitter.ttl())
        return value

    def invalidate(self, item_id: int) -> None:
        self.cache.delete(key(self.kind, item_id))


def reset_cache(cache: redis.Redis, pattern: str = "*") -> int:
    """Delete this lesson's keys (SCAN, never FLUSHDB: other lessons share the server)."""
    deleted = 0
    batch = []
    for found in cache.scan_iter(match=PREFIX + pattern, count=1_000):
        batch.append(found)
        if len(batch) == 1_000:
            deleted += cache.unlink(*batch)
            batch = []
    if batch:
        deleted += cache.unlink(*batch)
    return deleted


def load_database(store: Store, sizes: Sizes) -> dict[str, int]:
    with store.pool.connection() as conn:
        conn.autocommit = True
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SCHEMA)))
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(SCHEMA)))
        for statement in TABLES:
            conn.execute(statement)
        conn.execute("SELECT setseed(%s)", (DB_SEED,))
        params = {"products": sizes.products, "per_category": PRODUCTS_PER_CATEGORY, "orders": sizes.orders,
                  "lines": LINES_PER_ORDER}  # fmt: skip
        for statement in LOAD:
            conn.execute(statement, params)
        rows = {}
        for table in ("products", "order_lines"):
            query = sql.SQL("SELECT count(*) FROM {}.{}").format(
                sql.Identifier(SCHEMA), sql.Identifier(table)
            )
            rows[table] = conn.execute(query).fetchone()[0]
    return rows


@dataclass
class ReadFacts:
    """Three reads of one key, and the database loads they caused."""

    strategy: str
    loads: int
    hits: int
    misses: int
    same_value: bool
    miss_s: float = field(compare=False)
    hit_s: float = field(compare=False)


def read_three_times(
    strategy: str, read: Callable[[], object], loads: Callable[[], int], stats: CacheStats
) -> ReadFacts:
    before = loads()
    with timer() as miss:
        first = read()
    hit_times = []
    values = []
    for _ in range(2):
        with timer() as hit:
            values.append(read())
        hit_times.append(hit.seconds)
    return ReadFacts(strategy, loads() - before, stats.hits, stats.misses, all(v == first for v in values),
                     miss.seconds, min(hit_times))  # fmt: skip


@dataclass
class InvalidationFacts:
    price_cached: int
    price_after_update: int
    read_without_invalidation: int  # the old price, from the cache
    read_with_invalidation: int  # the new one, loaded again
    loads_without: int
    loads_with: int


def invalidation(store: Store, summaries: ReadThrough) -> InvalidationFacts:
    cached = summaries.get(PRODUCT_ID)["price_cents"]
    new_price = cached + 100

    loads = store.loads["summary"]
    store.set_price(PRODUCT_ID, new_price)  # the database changes; nobody tells the cache
    stale = summaries.get(PRODUCT_ID)["price_cents"]
    loads_without = store.loads["summary"] - loads

    newer_price = new_price + 100
    loads = store.loads["summary"]
    store.set_price(PRODUCT_ID, newer_price)
    summaries.invalidate(PRODUCT_ID)  # the write deletes the cached copy
    fresh = summaries.get(PRODUCT_ID)["price_cents"]
    loads_with = store.loads["summary"] - loads
    console.table(
        ["after an UPDATE of the price", "price read", "database loads"],
        [(f"without invalidation (database has {new_price})", stale, loads_without),
         (f"with DEL on write (database has {newer_price})", fresh, loads_with)],
    )  # fmt: skip
    return InvalidationFacts(cached, newer_price, stale, fresh, loads_without, loads_with)


@dataclass
class WriteFacts:
    writes: int
    write_through_db_and_cache: tuple[int, int]  # the price in each, right after the write
    write_through_loads_on_read: int  # 0: the write filled the cache
    queued_before_flush: int
    db_rows_lagging_before_flush: int
    queued_after_failed_flush: int  # a flush whose UPDATE failed: its batch is still queued
    flush_batches: int
    db_rows_lagging_after_flush: int
    queued_after_flush: int
    flush_s: float = field(compare=False)


def write_through(
    store: Store, cache: redis.Redis, product_id: int, price_cents: int, jitter: Jitter
) -> None:
    """The database first, then the cache, in the same call: the caller waits for both."""
    stored = store.set_price(product_id, price_cents)
    cache.set(key("price", product_id), stored, ex=jitter.ttl())


def write_behind(cache: redis.Redis, product_id: int, price_cents: int, jitter: Jitter) -> None:
    """The cache and a queue in one round trip; the database is written later, in batches."""
    with cache.pipeline(transaction=True) as pipe:
        pipe.set(key("price", product_id), price_cents, ex=jitter.ttl())
        pipe.rpush(key("write_queue"), json.dumps([product_id, price_cents]))
        pipe.execute()


def flush(write: Callable[[dict[int, int]], None], cache: redis.Redis) -> int:
    """Drain the queue FLUSH_BATCH writes at a time: one UPDATE per batch, the last write of a key wins.

    A batch is read (LRANGE), written, and only then removed (LTRIM): if the UPDATE fails, the batch
    stays queued for the next flush. Popping it first would lose it. One flusher at a time; several
    would each move a batch to a list of their own (LMOVE) before writing it.
    """
    batches = 0
    while queued := cache.lrange(key("write_queue"), 0, FLUSH_BATCH - 1):
        write(dict(json.loads(item) for item in queued))
        cache.ltrim(key("write_queue"), len(queued), -1)
        batches += 1
    return batches


def database_down(_prices: dict[int, int]) -> None:
    """A write that fails, as the UPDATE does when the database is unreachable."""
    raise ConnectionError("the database did not answer (simulated)")


def price_updates(rng: random.Random, sizes: Sizes) -> list[tuple[int, int]]:
    return [(rng.randint(1, sizes.products), rng.randint(100, 10_099)) for _ in range(sizes.writes)]


def writes(store: Store, cache: redis.Redis, sizes: Sizes, jitter: Jitter, comparisons: list) -> WriteFacts:
    prices = ReadThrough(cache, "price", store.price, jitter)
    rng = random.Random(SEED)

    # One write-through: the next read is a hit, with the price the database holds.
    write_through(store, cache, PRODUCT_ID, 4_242, jitter)
    loads = store.loads["price"]
    in_cache = prices.get(PRODUCT_ID)
    loads_on_read = store.loads["price"] - loads
    in_db = store.price(PRODUCT_ID)
    console.say(f"write-through of 4242: database {in_db}, cache {in_cache}, database loads on the next read: "
                f"{loads_on_read}")  # fmt: skip

    through_updates, behind_updates = price_updates(rng, sizes), price_updates(rng, sizes)
    with timer() as through:
        for product_id, price in through_updates:
            write_through(store, cache, product_id, price, jitter)
    with timer() as behind:
        for product_id, price in behind_updates:
            write_behind(cache, product_id, price, jitter)
    final = dict(behind_updates)  # the last price written to each product
    queued = cache.llen(key("write_queue"))
    lagging = store.prices_differing(final)
    with contextlib.suppress(ConnectionError):  # the flush fails on its first batch
        flush(database_down, cache)
    queued_after_failure = cache.llen(key("write_queue"))
    with timer() as flushing:
        batches = flush(store.set_prices, cache)
    lagging_after = store.prices_differing(final)
    queued_after = cache.llen(key("write_queue"))
    console.table(
        ["write-behind", "queued writes", "database rows behind the cache"],
        [
            ("before the flush", queued, lagging),
            ("after a flush whose UPDATE failed", queued_after_failure, lagging),
            (f"after {batches} batched UPDATEs", queued_after, lagging_after),
        ],
    )
    console.say(
        f"the flush took {console.seconds(flushing.seconds)}; until it ran, losing the cache would have"
    )
    console.say("lost those writes: write-behind trades durability for the caller's latency.")
    comparisons.append(
        Comparison(f"{sizes.writes:,} price updates, time the caller waits", "write-through", "write-behind",
                   through.seconds, behind.seconds)
    )  # fmt: skip
    console.compare(
        "write-through (UPDATE + SET)", through.seconds, "write-behind (SET + RPUSH)", behind.seconds
    )
    return WriteFacts(
        writes=sizes.writes,
        write_through_db_and_cache=(in_db, in_cache),
        write_through_loads_on_read=loads_on_read,
        queued_before_flush=queued,
        db_rows_lagging_before_flush=lagging,
        queued_after_failed_flush=queued_after_failure,
        flush_batches=batches,
        db_rows_lagging_after_flush=lagging_after,
        queued_after_flush=queued_after,
        flush_s=flushing.seconds,
    )


@dataclass
class TtlFacts:
    keys: int
    fixed_ttl_s: int
    jitter_min_s: int  # the TTLs chosen
    jitter_max_s: int
    fixed_spread_ms: int = field(compare=False)  # of the expiry times, from PTTL
    jitter_spread_ms: int = field(compare=False)


def expiry_spread_ms(cache: redis.Redis, keys: list[str]) -> int:
    """max - min of the moments the keys expire, from one pipelined PTTL per key."""
    with cache.pipeline(transaction=False) as pipe:
        for name in keys:
            pipe.pttl(name)
        remaining = pipe.execute()
    return max(remaining) - min(remaining)


def ttl_jitter(store: Store, cache: redis.Redis, sizes: Sizes) -> TtlFacts:
    with store.pool.connection() as conn:
        records = conn.execute(FIRST_PRODUCTS, (sizes.warmed,)).fetchall()
    keys = [key("warm", pid) for pid, _, _ in records]

    def warm(ttls: list[int]) -> None:
        with cache.pipeline(transaction=False) as pipe:
            for (pid, name, price), name_of_key, ttl in zip(records, keys, ttls, strict=True):
                pipe.set(name_of_key, json.dumps({"id": pid, "name": name, "price_cents": price}), ex=ttl)
            pipe.execute()

    warm([BASE_TTL_S] * len(keys))
    fixed = expiry_spread_ms(cache, keys)
    jitter = Jitter(SEED)
    chosen = [jitter.ttl() for _ in keys]
    warm(chosen)
    spread = expiry_spread_ms(cache, keys)
    console.table(
        [f"{len(keys):,} keys warmed at once", "TTLs set", "expiry times spread over"],
        [("fixed TTL", f"{BASE_TTL_S} s", f"{fixed:,} ms"),
         ("TTL with jitter", f"{min(chosen)}..{max(chosen)} s", f"{spread / 1000:,.1f} s")],
    )  # fmt: skip
    console.say("With one TTL every key expires within the same moment, and every reader misses together.")
    return TtlFacts(len(keys), BASE_TTL_S, min(chosen), max(chosen), fixed, spread)


@dataclass
class StampedeFacts:
    requests: int
    loads_with_lock: int
    same_answer: bool
    # How many requests missed depends on how the threads were scheduled: all of them, as a rule.
    loads_without_lock: int = field(compare=False)
    waited_with_lock: int = field(compare=False)  # requests that found the lock taken and re-read
    without_s: float = field(compare=False)  # until the last request had its answer
    with_s: float = field(compare=False)


def best_sellers_unprotected(store: Store, cache: redis.Redis) -> tuple[object, bool]:
    cached = cache.get(key("best_sellers"))
    if cached is not None:
        return json.loads(cached), False
    value = store.best_sellers()
    cache.set(key("best_sellers"), json.dumps(value), ex=BASE_TTL_S)
    return value, False


def best_sellers_locked(
    store: Store, cache: redis.Redis, release: Callable[..., object], token: str
) -> tuple[object, bool]:
    """On a miss, take a lock (SET NX PX); the holder loads, the others wait and re-read."""
    waited = False
    while True:
        cached = cache.get(key("best_sellers"))
        if cached is not None:
            return json.loads(cached), waited
        if cache.set(key("best_sellers", "lock"), token, nx=True, px=LOCK_MS):
            try:
                # Filled between our miss and our lock? Then it is not ours to load.
                cached = cache.get(key("best_sellers"))
                if cached is not None:
                    return json.loads(cached), waited
                value = store.best_sellers()
                cache.set(key("best_sellers"), json.dumps(value), ex=BASE_TTL_S)
                return value, waited
            finally:
                release(keys=[key("best_sellers", "lock")], args=[token])
        waited = True
        time.sleep(POLL_S)


def concurrent_misses(store: Store, cache: redis.Redis, locked: bool) -> tuple[int, int, list, float]:
    cache.delete(key("best_sellers"), key("best_sellers", "lock"))
    before = store.loads["best_sellers"]
    barrier = threading.Barrier(THREADS)
    release = cache.register_script(RELEASE_LOCK)

    def request(number: int) -> tuple[object, bool]:
        barrier.wait()  # all requests arrive together, as after an expiry under load
        if locked:
            return best_sellers_locked(store, cache, release, f"request-{number}")
        return best_sellers_unprotected(store, cache)

    with timer() as elapsed, ThreadPoolExecutor(max_workers=THREADS) as workers:
        answers = list(workers.map(request, range(THREADS)))
    waited = sum(1 for _, did_wait in answers if did_wait)
    return store.loads["best_sellers"] - before, waited, [value for value, _ in answers], elapsed.seconds


def stampede(store: Store, cache: redis.Redis, comparisons: list) -> StampedeFacts:
    loads_without, waited_without, answers_without, without_s = concurrent_misses(store, cache, locked=False)
    loads_with, waited, answers_with, with_s = concurrent_misses(store, cache, locked=True)
    console.table(
        ["requests", "database loads", "waited for the lock", "all answered in"],
        [("no protection", loads_without, waited_without, console.seconds(without_s)),
         ("SET NX PX lock", loads_with, waited, console.seconds(with_s))],
    )  # fmt: skip
    comparisons.append(
        Comparison(f"{THREADS} concurrent misses of one expensive key", "no protection", "SET NX PX lock",
                   without_s, with_s)
    )  # fmt: skip
    console.compare(f"{loads_without} loads", without_s, f"{loads_with} load", with_s)
    first = answers_with[0]
    return StampedeFacts(
        requests=min(len(answers_without), len(answers_with)),  # answers that came back
        loads_with_lock=loads_with,
        same_answer=all(answer == first for answer in answers_without + answers_with),
        loads_without_lock=loads_without,
        waited_with_lock=waited,
        without_s=without_s,
        with_s=with_s,
    )


@dataclass
class ZipfFacts:
    reads: int
    distinct_keys: int
    hottest_key_reads: int
    loads_without_cache: int
    loads_with_cache: int
    hits: int
    misses: int
    same_answers: bool
    p50_without_s: float = field(compare=False)
    p99_without_s: float = field(compare=False)
    p50_with_s: float = field(compare=False)
    p99_with_s: float = field(compare=False)

    @property
    def hit_ratio(self) -> float:
        return self.hits / (self.hits + self.misses)


def zipf_reads(sizes: Sizes) -> list[int]:
    """Product ids drawn with probability proportional to 1 / rank ** ZIPF_S: a few are very hot."""
    rng = random.Random(SEED)
    ids = list(range(1, sizes.products + 1))
    return rng.choices(ids, weights=[1 / rank**ZIPF_S for rank in ids], k=sizes.reads)


def quantile(seconds: list[float], q: float) -> float:
    ordered = sorted(seconds)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def paired_reads(
    reads: list[int], direct: Callable[[int], object], cached: Callable[[int], object]
) -> tuple[list, list, list[float], list[float]]:
    """Each read once from the database and once through the cache, in turns (which goes first
    alternates), so that both see the machine in the same state: a busy neighbour slows both."""
    answers: tuple[list, list] = ([], [])
    latencies: tuple[list[float], list[float]] = ([], [])
    for turn, product_id in enumerate(reads):
        for side in (0, 1) if turn % 2 == 0 else (1, 0):
            started = time.perf_counter()
            answers[side].append((direct, cached)[side](product_id))
            latencies[side].append(time.perf_counter() - started)
    return answers[0], answers[1], latencies[0], latencies[1]


def zipf(store: Store, cache: redis.Redis, sizes: Sizes, comparisons: list) -> ZipfFacts:
    reads = zipf_reads(sizes)
    reset_cache(cache, "summary:*")
    stats, jitter = CacheStats(), Jitter(SEED)
    uncached = Store(store.pool)  # the same database, its loads counted apart
    loads = store.loads["summary"]
    direct, cached, direct_latencies, cached_latencies = paired_reads(
        reads,
        uncached.summary,
        lambda product_id: summary_cache_aside(store, cache, product_id, stats, jitter),
    )
    loads_direct = uncached.loads["summary"]
    loads_cached = store.loads["summary"] - loads
    direct_s, cached_s = sum(direct_latencies), sum(cached_latencies)
    facts = ZipfFacts(
        reads=len(reads),
        distinct_keys=len(set(reads)),
        hottest_key_reads=Counter(reads).most_common(1)[0][1],
        loads_without_cache=loads_direct,
        loads_with_cache=loads_cached,
        hits=stats.hits,
        misses=stats.misses,
        same_answers=direct == cached,
        p50_without_s=quantile(direct_latencies, 0.50),
        p99_without_s=quantile(direct_latencies, 0.99),
        p50_with_s=quantile(cached_latencies, 0.50),
        p99_with_s=quantile(cached_latencies, 0.99),
    )
    console.table(
        ["reads", "database loads", "hit ratio", "p50", "p99", "total"],
        [("database every time", loads_direct, "-", console.seconds(facts.p50_without_s),
          console.seconds(facts.p99_without_s), console.seconds(direct_s)),
         ("cache-aside", loads_cached, f"{facts.hit_ratio:.1%}", console.seconds(facts.p50_with_s),
          console.seconds(facts.p99_with_s), console.seconds(cached_s))],
    )  # fmt: skip
    console.say(
        f"{facts.distinct_keys:,} distinct products among {facts.reads:,} reads; the hottest was read "
        f"{facts.hottest_key_reads:,} times. Misses pay the query plus a SET: the p99 is still a miss."
    )
    comparisons.append(
        Comparison(f"{len(reads):,} Zipf reads over {sizes.products:,} products", "database every time",
                   "cache-aside (Redis)", direct_s, cached_s)
    )  # fmt: skip
    console.compare("database", direct_s, "cache-aside", cached_s)
    return facts


@dataclass
class CachingResult:
    rows: dict[str, int]
    cache_aside: ReadFacts
    read_through: ReadFacts
    invalidation: InvalidationFacts
    writes: WriteFacts
    ttl: TtlFacts
    stampede: StampedeFacts
    zipf: ZipfFacts
    keys_deleted_at_start: int = field(compare=False)  # what a previous run left
    comparisons: list[Comparison] = field(default_factory=list, compare=False)


def run(pool: ConnectionPool, cache: redis.Redis, scale: float = 1.0) -> CachingResult:
    """`pool` should hold THREADS connections, so the stampede's loads really run at once."""
    sizes = Sizes.at(scale)
    store = Store(pool)
    comparisons: list[Comparison] = []
    console.title("Caching strategies: Redis in front of PostgreSQL")

    console.step("Load products and order lines; clear this lesson's Redis keys")
    deleted = reset_cache(cache)
    rows = load_database(store, sizes)
    console.table(["table", "rows"], rows.items())
    per_category = rows["order_lines"] * PRODUCTS_PER_CATEGORY // rows["products"]
    console.say(
        f"{deleted:,} keys under {PREFIX} deleted (SCAN + UNLINK). A product summary ranks the product"
    )
    console.say(f"in its category: {per_category:,} order lines aggregated per read.")

    console.step("Cache-aside and read-through: three reads of one key each")
    console.say("Cache-aside: the application reads the cache, and on a miss loads and fills it itself.")
    console.say("Read-through: the cache wraps the loader; the application asks only the cache.")
    stats, jitter = CacheStats(), Jitter(SEED)
    cache_aside = read_three_times(
        "cache-aside",
        lambda: summary_cache_aside(store, cache, PRODUCT_ID, stats, jitter),
        lambda: store.loads["summary"],
        stats,
    )

    cache.delete(key("summary", PRODUCT_ID))
    summaries = ReadThrough(cache, "summary", store.summary, jitter)
    read_through = read_three_times(
        "read-through", lambda: summaries.get(PRODUCT_ID), lambda: store.loads["summary"], summaries.stats
    )
    console.table(
        ["three reads of one key", "database loads", "hits", "misses", "miss", "hit"],
        [(f.strategy, f.loads, f.hits, f.misses, console.seconds(f.miss_s), console.seconds(f.hit_s))
         for f in (cache_aside, read_through)],
    )  # fmt: skip

    console.step("Invalidation on write: without it, the cache keeps serving the old price")
    invalidated = invalidation(store, summaries)

    console.step("Write-through, then write-behind with a queue flushed in batches")
    written = writes(store, cache, sizes, jitter, comparisons)

    console.step(f"TTL with jitter: {BASE_TTL_S} s plus or minus up to {JITTER_S} s")
    ttl = ttl_jitter(store, cache, sizes)

    console.step(f"A cache stampede: {THREADS} requests miss the best sellers at the same moment")
    console.say("Without protection each request runs the expensive query; with a lock one does, and the")
    console.say("others wait and re-read the cache.")
    stampeded = stampede(store, cache, comparisons)

    console.step(f"Zipf reads (s = {ZIPF_S}): the same {sizes.reads:,} reads without and with the cache")
    zipfian = zipf(store, cache, sizes, comparisons)
    return CachingResult(
        rows=rows,
        cache_aside=cache_aside,
        read_through=read_through,
        invalidation=invalidated,
        writes=written,
        ttl=ttl,
        stampede=stampeded,
        zipf=zipfian,
        keys_deleted_at_start=deleted,
        comparisons=comparisons,
    )


def main() -> int:
    require(*REQUIRES)
    pool_options = {"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_S}
    with (
        ConnectionPool(postgres_url(), min_size=THREADS, max_size=THREADS, kwargs=pool_options) as pool,
        redis.Redis.from_url(redis_url(), socket_connect_timeout=CONNECT_TIMEOUT_S) as cache,
    ):
        pool.wait()
        result = run(pool, cache, scale=scale())
    writes = result.writes
    behind_caught_up = writes.queued_after_failed_flush == writes.queued_before_flush and (
        writes.db_rows_lagging_after_flush == writes.queued_after_flush == 0
    )
    return 0 if result.stampede.loads_with_lock == 1 and result.zipf.same_answers and behind_caught_up else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Choosing the right database: each access pattern of the shop measured on two engines

A shop has four access patterns, and each has an engine it is usually given: the cart (update one
customer's few lines and read them back) to Redis, the catalog (filter products on attributes
that differ by category) to MongoDB, "what do people near me buy" (a 3-hop walk) to Neo4j, and
revenue per hour (a time-window rollup) to a time-series store. Each pattern runs here on that
engine and on PostgreSQL, with the same data and the same question: a hash against a table with an
upsert, documents against jsonb with a GIN index, Cypher against a recursive CTE, Flux's
aggregateWindow against date_bin. Every answer is checked against the other engine's and against
Python's before a figure is printed, so the speeds compared are speeds of right answers. The
decision table names the measured winner of each pattern and what the runner-up costs, and says
where the usual choice loses at this size. One client, operations in sequence, one round trip each.

Engine: PostgreSQL (POSTGRES_URL) schema `shop_choosing_the_right_database`; MongoDB (MONGO_URL)
database of the same name; Redis (REDIS_URL) keys `shop:choosing_the_right_database:*`; Neo4j
(NEO4J_URL) nodes labelled `ShopChoosingTheRightDatabase`; InfluxDB (INFLUX_URL, INFLUX_BUCKET)
measurement `shop_choosing_the_right_database_orders`. Sizes follow EXAMPLES_SCALE.
Run: `make up SERVICES="postgres mongodb redis neo4j influxdb"` (or `make local-up`), then
`python polyglot/choosing_the_right_database.py`.
Look for: "answers agree" on every pattern, the decision table (winner, the runner-up's cost,
storage, "... loses" where the usual choice did), and .local/charts/choosing_the_right_database.png.
"""

from __future__ import annotations

import json
import os
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg
import requests
from influxdb_client import InfluxDBClient, Point, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from neo4j import GraphDatabase
from psycopg import sql
from psycopg.types.json import Jsonb
from pymongo import MongoClient
from redis import Redis

from common import console, settings, shop
from common.timing import timer

REQUIRES = ("postgres", "mongodb", "redis", "neo4j", "influxdb")
LESSON = "choosing_the_right_database"
NS = shop.namespaces(LESSON)
LABEL = "ShopChoosingTheRightDatabase"  # NS.neo4j_label, written out in the Cypher: labels cannot be bound
MEASUREMENT = "shop_choosing_the_right_database_orders"  # NS.measurement("orders")
DATABASE, UTC = "neo4j", timezone.utc
CHART = settings.ROOT / ".local" / "charts" / f"{LESSON}.png"  # .local/ is git-ignored
SEED, TOP_N, HOPS, N_CARTS = 7, 5, 3, 200
USUAL = {"cart": "Redis", "catalog": "MongoDB", "recommendation": "Neo4j", "rollup": "InfluxDB"}
# The catalog's questions: a category, and attribute values a product must have (attributes are sparse).
CATALOG_QUERIES = [
    ("shoe", {"colour": "black", "size": 42}),
    ("laptop", {"ram_gb": 32, "cpu": "arm"}),
    ("book", {"author": "Borges", "language": "fr"}),
    ("coffee", {"roast": "dark"}),
    ("headphones", {"wireless": True, "colour": "red"}),
]

TABLES = """
CREATE TABLE {s}.carts (customer_id int, sku text, quantity int NOT NULL, PRIMARY KEY (customer_id, sku));
CREATE TABLE {s}.products (sku text PRIMARY KEY, category text NOT NULL, name text NOT NULL,
    price_cents int NOT NULL, attributes jsonb NOT NULL);
CREATE TABLE {s}.friends (customer_id int, friend_id int, PRIMARY KEY (customer_id, friend_id));
"""
COPIES = {  # table -> COPY statement, filled in load_postgres in this order
    "products": "COPY {s}.products FROM STDIN",
    "friends": "COPY {s}.friends FROM STDIN",
    "orders": "COPY {s}.orders (id, customer_id, placed_at, total_cents) FROM STDIN",
    "order_lines": "COPY {s}.order_lines FROM STDIN",
}
# Who bought what, once per pair: the same derived model as the graph's BOUGHT relationships.
DERIVED = """
CREATE INDEX ON {s}.products USING gin (attributes jsonb_path_ops);
CREATE INDEX ON {s}.products (category);
CREATE TABLE {s}.bought AS SELECT DISTINCT o.customer_id, l.sku FROM {s}.orders o JOIN {s}.order_lines l ON l.order_id = o.id;
ALTER TABLE {s}.bought ADD PRIMARY KEY (customer_id, sku);
ANALYZE {s}.products; ANALYZE {s}.orders; ANALYZE {s}.friends; ANALYZE {s}.bought;
"""
CART_UPSERT = """INSERT INTO {s}.carts VALUES (%s, %s, %s)
    ON CONFLICT (customer_id, sku) DO UPDATE SET quantity = carts.quantity + excluded.quantity"""
CART_READ = "SELECT sku, quantity FROM {s}.carts WHERE customer_id = %s"
ALL_CARTS = "SELECT customer_id, sku, quantity FROM {s}.carts"
CATALOG = "SELECT sku FROM {s}.products WHERE category = %s AND attributes @> %s ORDER BY sku"
RECOMMEND = """
WITH RECURSIVE reach(id, depth) AS (
    SELECT friend_id, 1 FROM {s}.friends WHERE customer_id = %(id)s
  UNION
    SELECT f.friend_id, r.depth + 1 FROM reach r JOIN {s}.friends f ON f.customer_id = r.id WHERE r.depth < %(hops)s
), people AS (SELECT DISTINCT id FROM reach WHERE id <> %(id)s)
SELECT b.sku, count(*) AS buyers FROM people p JOIN {s}.bought b ON b.customer_id = p.id
WHERE NOT EXISTS (SELECT FROM {s}.bought mine WHERE mine.customer_id = %(id)s AND mine.sku = b.sku)
GROUP BY b.sku ORDER BY buyers DESC, b.sku LIMIT %(n)s
"""
ROLLUP = """SELECT date_bin('1 hour', placed_at, %(start)s), sum(total_cents), count(*) FROM {s}.orders
    WHERE placed_at >= %(start)s AND placed_at < %(stop)s GROUP BY 1 ORDER BY 1"""
SIZE = "SELECT pg_total_relation_size(%s::regclass)"

GRAPH_SCHEMA = [  # on the lesson's own label only: a constraint on Customer would reach other lessons' nodes
    "CREATE CONSTRAINT choosing_the_right_database_customer IF NOT EXISTS"
    " FOR (n:ShopChoosingTheRightDatabase) REQUIRE n.customer_id IS UNIQUE",
    "CREATE CONSTRAINT choosing_the_right_database_sku IF NOT EXISTS"
    " FOR (n:ShopChoosingTheRightDatabase) REQUIRE n.sku IS UNIQUE",
]
DELETE_SOME = (
    "MATCH (n:ShopChoosingTheRightDatabase) WITH n LIMIT 5000 DETACH DELETE n RETURN count(*) AS deleted"
)
LOAD_NODES = """UNWIND $ids AS id CREATE (:ShopChoosingTheRightDatabase:Customer {customer_id: id})
    WITH count(*) AS done UNWIND $skus AS sku CREATE (:ShopChoosingTheRightDatabase:Product {sku: sku})"""
LOAD_FRIENDS = """UNWIND $pairs AS pair
MATCH (a:ShopChoosingTheRightDatabase {customer_id: pair[0]}), (b:ShopChoosingTheRightDatabase {customer_id: pair[1]})
CREATE (a)-[:FRIEND]->(b)"""
LOAD_BOUGHT = """UNWIND $pairs AS pair
MATCH (c:ShopChoosingTheRightDatabase {customer_id: pair[0]}), (p:ShopChoosingTheRightDatabase {sku: pair[1]})
CREATE (c)-[:BOUGHT]->(p)"""
RECOMMEND_CYPHER = """
MATCH (me:ShopChoosingTheRightDatabase {customer_id: $id})-[:FRIEND*1..3]-(other)
WHERE other <> me
WITH DISTINCT me, other
MATCH (other)-[:BOUGHT]->(p)
WHERE NOT (me)-[:BOUGHT]->(p)
RETURN p.sku AS sku, count(*) AS buyers ORDER BY buyers DESC, sku LIMIT $n
"""
# Flux cannot bind values on InfluxDB OSS (1.8 or 2.x): @names are replaced by literals in flux().
ROLLUP_FLUX = """
data = from(bucket: @bucket) |> range(start: @start, stop: @stop)
  |> filter(fn: (r) => r._measurement == @measurement and r._field == "total_cents")
data |> aggregateWindow(every: 1h, fn: sum, createEmpty: false, timeSrc: "_start") |> yield(name: "sum")
data |> aggregateWindow(every: 1h, fn: count, createEmpty: false, timeSrc: "_start") |> yield(name: "count")
"""
NOTES = [
    "Each operation is one round trip from one client, in sequence: the driver and the protocol weigh",
    "as much as the engine. Storage: PostgreSQL's table with TOAST and indexes; Redis MEMORY USAGE;",
    "MongoDB collStats size and index sizes (the local stand-in builds no secondary index: it scans).",
]
DROP_MEASUREMENT = "DROP MEASUREMENT shop_choosing_the_right_database_orders"  # InfluxDB 1.x: InfluxQL
DELETE_PREDICATE = '_measurement="shop_choosing_the_right_database_orders"'  # InfluxDB 2.x: delete API


@dataclass
class Pattern:
    name: str
    question: str
    ops_per_s: dict[str, float] = field(compare=False)  # engine -> operations per second
    storage: dict[str, int | None] = field(compare=False)  # engine -> bytes (None: not measured)
    answers: dict[str, object] = field(default_factory=dict)  # "Python" and each engine -> its answer

    @property
    def agree(self) -> bool:
        return len({json.dumps(answer, sort_keys=True) for answer in self.answers.values()}) == 1

    @property
    def ranking(self) -> list[str]:
        return sorted(self.ops_per_s, key=self.ops_per_s.__getitem__, reverse=True)


@dataclass
class ChoosingResult:
    sizes: dict[str, int]
    patterns: dict[str, Pattern]
    rows: list[list[str]] = field(compare=False)  # the decision table: pattern, winner, runner-up, ...
    chart: Path | None = field(compare=False)

    @property
    def holds(self) -> bool:
        return all(pattern.agree for pattern in self.patterns.values())


@dataclass
class Shop:
    products: list[shop.Product]
    customers: list[shop.Customer]
    orders: list[shop.Order]
    start: datetime  # the orders are moved to the week before this run: inside any retention period
    totals: dict[int, int] = field(default_factory=dict)  # order id -> total in cents


def make_shop(factor: float) -> Shop:
    products = shop.products(max(100, int(500 * factor)), SEED)
    customers = shop.customers(max(100, int(500 * factor)), SEED)
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=8)
    orders = [
        shop.Order(o.id, o.customer_id, o.lines, o.placed_at - shop.START + start)
        for o in shop.orders(customers, products, max(500, int(2_500 * factor)), SEED)
    ]
    by_sku = {p.sku: p for p in products}
    return Shop(products, customers, orders, start, {o.id: shop.order_total(o, by_sku) for o in orders})


def flux(template: str, **values: str | datetime) -> str:
    """Flux text with each @name replaced by a literal (a string quoted and escaped, or an RFC 3339 time)."""
    text = template.strip()
    for name, value in sorted(values.items(), key=lambda item: -len(item[0])):
        if isinstance(value, datetime):
            literal = value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        else:
            literal = '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${") + '"'
        text = text.replace("@" + name, literal)
    return text


def timed(ask, repeat: int, ops_per_call: int) -> tuple[float, object]:
    """Operations per second over `repeat` calls of `ask`, and the last call's answer."""
    with timer() as took:
        for _ in range(repeat):
            answer = ask()
    return repeat * ops_per_call / took.seconds, answer


def measure(askers: dict, repeat: int, ops_per_call: int) -> tuple[dict, dict]:
    """Each engine's operations per second and answer, asked in turn."""
    speeds, answers = {}, {}
    for engine, ask in askers.items():
        speeds[engine], answers[engine] = timed(ask, repeat, ops_per_call)
    return speeds, answers


def q(template: str) -> sql.Composed:
    return sql.SQL(template).format(s=sql.Identifier(NS.postgres_schema))


def pg_size(pg: psycopg.Connection, table: str) -> int:
    return pg.execute(SIZE, (f"{NS.postgres_schema}.{table}",)).fetchone()[0]


def load_postgres(pg: psycopg.Connection, data: Shop) -> None:
    shop.create_order_tables(pg, NS.postgres_schema)
    pg.execute(q(TABLES))
    by_sku = {p.sku: p for p in data.products}
    rows = {
        "products": [
            (p.sku, p.category, p.name, p.price_cents, json.dumps(p.attributes)) for p in data.products
        ],
        "friends": [(c.id, f) for c in data.customers for f in c.friends],
        "orders": [(o.id, o.customer_id, o.placed_at, data.totals[o.id]) for o in data.orders],
        "order_lines": [(o.id, sku, n, by_sku[sku].price_cents) for o in data.orders for sku, n in o.lines],
    }
    with pg.cursor() as cur:
        for table, statement in COPIES.items():
            with cur.copy(q(statement)) as copy:
                for row in rows[table]:
                    copy.write_row(row)
    pg.execute(q(DERIVED))


def load_graph(driver, data: Shop) -> None:
    while driver.execute_query(DELETE_SOME, database_=DATABASE).records[0]["deleted"]:
        pass
    for statement in GRAPH_SCHEMA:
        driver.execute_query(statement, database_=DATABASE)
    ids, skus = [c.id for c in data.customers], [p.sku for p in data.products]
    driver.execute_query(LOAD_NODES, ids=ids, skus=skus, database_=DATABASE)
    friends = [[c.id, f] for c in data.customers for f in c.friends if c.id < f]
    bought = sorted({(o.customer_id, sku) for o in data.orders for sku, _ in o.lines})
    for statement, pairs in ((LOAD_FRIENDS, friends), (LOAD_BOUGHT, [list(pair) for pair in bought])):
        for start in range(0, len(pairs), 5_000):
            driver.execute_query(statement, pairs=pairs[start : start + 5_000], database_=DATABASE)


def load_influx(influx: InfluxDBClient, bucket: str, data: Shop) -> None:
    if influx.version().lstrip("v").startswith("1."):  # 1.8 (the local server) has no delete API
        answer = requests.post(f"{influx.url.rstrip('/')}/query", timeout=30, headers={"Authorization": f"Token {influx.token}"},
                               data={"q": DROP_MEASUREMENT, "db": bucket.split("/")[0]})  # fmt: skip
        answer.raise_for_status()
    else:
        stop = datetime.now(UTC) + timedelta(days=1)
        influx.delete_api().delete(
            datetime(1970, 1, 1, tzinfo=UTC), stop, DELETE_PREDICATE, bucket, influx.org
        )
    points = [Point(MEASUREMENT).field("total_cents", data.totals[o.id]).time(o.placed_at, WritePrecision.S)
              for o in data.orders]  # fmt: skip
    influx.write_api(write_options=SYNCHRONOUS).write(bucket=bucket, record=points)


def cart_pattern(pg: psycopg.Connection, r: Redis, data: Shop, n_ops: int) -> Pattern:
    rng = random.Random(SEED)
    ops = [(rng.randint(1, N_CARTS), rng.choice(data.products).sku, rng.randint(1, 2)) for _ in range(n_ops)]

    def in_postgres() -> None:  # both statements in one round trip: psycopg's pipeline mode
        for customer, sku, quantity in ops:
            with pg.pipeline():
                pg.execute(q(CART_UPSERT), (customer, sku, quantity))
                read = pg.execute(q(CART_READ), (customer,))
            read.fetchall()

    def in_redis() -> None:  # both commands in one round trip: a pipeline (no MULTI needed)
        for customer, sku, quantity in ops:
            key = NS.redis_key("cart", customer)
            r.pipeline(transaction=False).hincrby(key, sku, quantity).hgetall(key).execute()

    speed = {"PostgreSQL": timed(in_postgres, 1, n_ops)[0], "Redis": timed(in_redis, 1, n_ops)[0]}
    answers: dict[str, dict] = {"Python": defaultdict(Counter), "PostgreSQL": defaultdict(dict)}
    for customer, sku, quantity in ops:
        answers["Python"][str(customer)][sku] += quantity
    for customer, sku, quantity in pg.execute(q(ALL_CARTS)):
        answers["PostgreSQL"][str(customer)][sku] = quantity
    keys = list(r.scan_iter(match=NS.redis_key("cart", "*"), count=1_000))
    answers["Redis"] = {k.rsplit(":", 1)[1]: {s: int(n) for s, n in r.hgetall(k).items()} for k in keys}
    storage = {"PostgreSQL": pg_size(pg, "carts"), "Redis": sum(r.memory_usage(k) or 0 for k in keys)}
    answers = {engine: {c: dict(cart) for c, cart in carts.items()} for engine, carts in answers.items()}
    return Pattern("cart", "add to a cart, read the cart back", speed, storage, answers)


def catalog_pattern(pg: psycopg.Connection, mongo: MongoClient, data: Shop, rounds: int) -> Pattern:
    collection = mongo[NS.mongo_database]["products"]

    def in_postgres() -> dict:
        return {
            c: [sku for (sku,) in pg.execute(q(CATALOG), (c, Jsonb(want)))] for c, want in CATALOG_QUERIES
        }

    def in_mongo() -> dict:
        answer = {}
        for category, want in CATALOG_QUERIES:
            query = {"category": category, **{f"attributes.{key}": value for key, value in want.items()}}
            answer[category] = [doc["_id"] for doc in collection.find(query, {"_id": 1}).sort("_id", 1)]
        return answer

    speeds, answers = measure({"PostgreSQL": in_postgres, "MongoDB": in_mongo}, rounds, len(CATALOG_QUERIES))
    answers["Python"] = {
        c: sorted(p.sku for p in data.products if p.category == c and all(p.attributes.get(k) == v for k, v in want.items()))
        for c, want in CATALOG_QUERIES
    }  # fmt: skip
    stats = mongo[NS.mongo_database].command("collStats", "products")
    storage = {
        "PostgreSQL": pg_size(pg, "products"),
        "MongoDB": stats["size"] + stats.get("totalIndexSize", 0),
    }
    return Pattern("catalog", "a category's products with given attribute values", speeds, storage, answers)


def recommendation_pattern(pg: psycopg.Connection, driver, data: Shop, n_customers: int) -> Pattern:
    """The two engines' answers are compared with each other (a walk in Python would be a third copy)."""
    who = [c.id for c in data.customers[:n_customers]]

    def in_postgres() -> dict:
        params = [{"id": c, "hops": HOPS, "n": TOP_N} for c in who]
        return {p["id"]: [list(row) for row in pg.execute(q(RECOMMEND), p)] for p in params}

    def in_neo4j() -> dict:  # one session, auto-commit queries: one round trip each, as for PostgreSQL
        with driver.session(database=DATABASE) as session:
            return {
                c: [[rec["sku"], rec["buyers"]] for rec in session.run(RECOMMEND_CYPHER, id=c, n=TOP_N)]
                for c in who
            }

    speeds, answers = measure({"PostgreSQL": in_postgres, "Neo4j": in_neo4j}, 1, len(who))
    question = f"top {TOP_N} products bought within {HOPS} friendship hops, not by me"
    return Pattern("recommendation", question, speeds, {"PostgreSQL": None, "Neo4j": None}, answers)


def hour_of_week(moment: datetime, start: datetime) -> str:
    """An hour named by its place in the week from `start` ("day 2 13:00"), not by its date: the orders
    move with the run's date, and a second run after midnight UTC must give the same answers."""
    hours = (moment - start) // timedelta(hours=1)
    return f"day {hours // 24 + 1} {hours % 24:02d}:00"


def rollup_pattern(pg: psycopg.Connection, influx, bucket: str, data: Shop, rounds: int) -> Pattern:
    window = {"start": data.start, "stop": data.start + timedelta(days=7)}
    text = flux(ROLLUP_FLUX, bucket=bucket, measurement=MEASUREMENT, **window)

    def in_postgres() -> dict:
        rows = pg.execute(q(ROLLUP), window)
        return {hour_of_week(hour, data.start): [int(total), n] for hour, total, n in rows}

    def in_influx() -> dict:
        rolled: dict[str, list] = defaultdict(lambda: [0, 0])
        for table in influx.query_api().query(text):
            for record in table.records:
                hour = hour_of_week(record.get_time(), data.start)
                rolled[hour][record["result"] == "count"] = int(record.get_value())
        return dict(sorted(rolled.items()))

    speeds, answers = measure({"PostgreSQL": in_postgres, "InfluxDB": in_influx}, rounds, 1)
    expected: dict[str, list] = defaultdict(lambda: [0, 0])
    for order in data.orders:
        hour = expected[hour_of_week(order.placed_at, data.start)]
        hour[0], hour[1] = hour[0] + data.totals[order.id], hour[1] + 1
    answers["Python"] = dict(sorted(expected.items()))
    storage = {"PostgreSQL": pg_size(pg, "orders"), "InfluxDB": None}
    return Pattern("rollup", "revenue and orders per hour over a week", speeds, storage, answers)


def decision_rows(patterns: dict[str, Pattern]) -> list[list[str]]:
    rows = []
    for p in patterns.values():
        (winner, best), (runner_up, second) = ((e, p.ops_per_s[e]) for e in p.ranking[:2])
        stored = ", ".join(f"{e} {console.size(b)}" for e, b in p.storage.items() if b is not None)
        usual = "won" if winner == USUAL[p.name] else f"{USUAL[p.name]} loses"
        cost = f"{runner_up} {second:,.0f}/s: {best / second:.1f}x slower"
        rows.append([p.name, f"{winner} {best:,.0f}/s", cost, stored or "not compared", usual])
    return rows


def draw(patterns: dict[str, Pattern], path: Path) -> Path | None:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    bars = [
        (f"{p.name}: {e}", p.ops_per_s[e], e == p.ranking[0]) for p in patterns.values() for e in p.ranking
    ]
    figure = Figure(figsize=(9, 4.5))
    FigureCanvasAgg(figure)  # the Agg backend: a PNG, no display
    axes = figure.subplots()
    colours = ["#3b7dd8" if winner else "#a0a0a0" for _, _, winner in bars]
    axes.barh([label for label, _, _ in bars], [value for _, value, _ in bars], color=colours)
    for y, (_, value, _) in enumerate(bars):
        axes.text(value, y, f" {value:,.0f}", va="center", fontsize=8)
    axes.set_xscale("log")
    axes.set_xlim(right=max(value for _, value, _ in bars) * 4)  # room for the labels
    axes.invert_yaxis()
    axes.set(
        xlabel="operations per second, log scale (blue: the measured winner)",
        title="Each pattern on two engines, same answers",
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.stem}.{os.getpid()}.png")
    figure.savefig(partial, dpi=90)
    os.replace(partial, path)  # whole or not at all, even with two runs at once
    return path


def load_everything(pg, mongo: MongoClient, r: Redis, driver, influx, bucket: str, data: Shop) -> dict:
    """Reset each store's namespace and load the shop; returns each store's load time."""
    for key in r.scan_iter(match=NS.redis_prefix + "*", count=1_000):
        r.unlink(key)
    mongo.drop_database(NS.mongo_database)
    products = mongo[NS.mongo_database]["products"]
    loads: dict = {}
    with timer() as loads["PostgreSQL"]:
        load_postgres(pg, data)
    with timer() as loads["MongoDB"]:
        products.insert_many(
            [{"_id": p.sku, "category": p.category, "attributes": p.attributes} for p in data.products]
        )
        products.create_index("category")
        products.create_index("attributes.$**")  # a wildcard index: MongoDB's counterpart of GIN over jsonb
    with timer() as loads["Neo4j"]:
        load_graph(driver, data)
    with timer() as loads["InfluxDB"]:
        load_influx(influx, bucket, data)
    return loads


def run(pg: psycopg.Connection, mongo: MongoClient, r: Redis, driver, influx: InfluxDBClient, bucket: str,
        chart: Path | None = CHART) -> ChoosingResult:  # fmt: skip
    """`pg` in autocommit mode, `r` with decode_responses=True; `chart=None` draws nothing."""
    console.title("Choosing the right database: each access pattern measured on two engines")
    factor = settings.scale()

    console.step("Generate one shop and load it into every store, each in its own namespace")
    data = make_shop(factor)
    sizes = {"products": len(data.products), "customers": len(data.customers), "orders": len(data.orders)}
    loads = load_everything(pg, mongo, r, driver, influx, bucket, data)
    console.table(["store", "load time"], [(engine, console.seconds(t.seconds)) for engine, t in loads.items()],
                  caption=", ".join(f"{n:,} {what}" for what, n in sizes.items()))  # fmt: skip

    console.step("Ask each engine the same questions, and check the answers against each other")
    patterns = {
        "cart": cart_pattern(pg, r, data, max(200, int(1_000 * factor))),
        "catalog": catalog_pattern(pg, mongo, data, max(5, int(20 * factor))),
        "recommendation": recommendation_pattern(pg, driver, data, max(10, int(30 * factor))),
        "rollup": rollup_pattern(pg, influx, bucket, data, max(2, int(3 * factor))),
    }
    console.table(
        ["pattern", "question", "answers agree (engines and Python)", "operations/s"],
        [(p.name, p.question, ("yes: " if p.agree else "NO: ") + ", ".join(p.answers),
          ", ".join(f"{e} {v:,.0f}" for e, v in p.ops_per_s.items())) for p in patterns.values()],
    )  # fmt: skip

    console.step("Decide: the measured winner of each pattern, and what the runner-up costs")
    rows = decision_rows(patterns)
    console.table(["pattern", "winner", "runner-up", "storage", "usual choice"], rows)
    for p in patterns.values():
        if p.ranking[0] != USUAL[p.name]:
            console.say(f"{p.name}: {USUAL[p.name]}, the usual choice, lost to {p.ranking[0]} at this size.")
    for line in NOTES:
        console.say(line)
    if pg.execute("SELECT current_setting('fsync')").fetchone()[0] == "off":
        console.say(
            "This PostgreSQL runs with fsync=off: its commits wait for no disk, which flatters its writes."
        )

    console.step("Draw the chart")
    drawn = draw(patterns, chart) if chart else None
    console.say(f"Chart: {drawn}" if drawn else "No chart: matplotlib is not installed, or no path given.")
    return ChoosingResult(sizes, patterns, rows, drawn)


def main() -> int:
    settings.require(*REQUIRES)
    timeout, token, org = (
        settings.CONNECT_TIMEOUT_S,
        settings.setting("INFLUX_TOKEN"),
        settings.setting("INFLUX_ORG"),
    )
    with (
        psycopg.connect(settings.postgres_url(), connect_timeout=timeout, autocommit=True) as pg,
        MongoClient(settings.mongo_url(), serverSelectionTimeoutMS=timeout * 1000) as mongo,
        Redis.from_url(settings.redis_url(), socket_timeout=timeout, decode_responses=True) as r,
        GraphDatabase.driver(
            settings.neo4j_url(), auth=settings.neo4j_auth(), connection_timeout=timeout
        ) as driver,
        InfluxDBClient(settings.influx_url(), token, org=org, timeout=60_000) as influx,
    ):
        result = run(pg, mongo, r, driver, influx, settings.setting("INFLUX_BUCKET"))
    return 0 if result.holds else 1


if __name__ == "__main__":
    raise SystemExit(main())

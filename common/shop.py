"""The shop the polyglot lessons share: products, customers, orders, and each lesson's names.

Deterministic data (same seed, same shop) shaped for each store: attributes that differ by category,
a friendship graph, orders whose lines often come in the same bundles (so "bought together" has a
clear answer) and timestamps. No framework: lessons call psycopg, pymongo, redis and neo4j themselves.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from psycopg import sql

START = datetime(2024, 1, 1, tzinfo=timezone.utc)  # orders are placed over the 7 days from here


@dataclass(frozen=True)
class Product:
    sku: str
    name: str
    category: str
    price_cents: int
    attributes: dict = field(hash=False)  # sparse: which keys depends on the category


@dataclass(frozen=True)
class Customer:
    id: int
    name: str
    friends: tuple[int, ...]  # symmetric: b in a.friends exactly when a in b.friends


@dataclass(frozen=True)
class Order:
    id: int
    customer_id: int
    lines: tuple[tuple[str, int], ...]  # (sku, quantity), one line per sku
    placed_at: datetime = START


def order_total(order: Order, products_by_sku: dict[str, Product]) -> int:
    """The order's total in cents at the products' list prices."""
    return sum(products_by_sku[sku].price_cents * quantity for sku, quantity in order.lines)


# Each category: its SKU prefix and its own attributes with the values they take.
CATEGORIES = {
    "book": ("BK", {"author": ["Le Guin", "Borges", "Calvino", "Morrison", "Eco", "Ishiguro"],
                    "pages": [120, 240, 320, 480, 640], "language": ["en", "fr", "it", "es"]}),
    "shoe": ("SH", {"size": [38, 39, 40, 41, 42, 43, 44, 45], "colour": ["black", "white", "red", "blue"]}),
    "laptop": ("LT", {"ram_gb": [8, 16, 32, 64], "cpu": ["arm", "x86"], "screen_in": [13, 14, 16]}),
    "coffee": ("CF", {"origin": ["Ethiopia", "Colombia", "Kenya", "Brazil"], "roast": ["light", "medium", "dark"]}),
    "headphones": ("HP", {"wireless": [True, False], "colour": ["black", "white", "red", "blue"]}),
}  # fmt: skip


def products(n: int = 200, seed: int = 7) -> list[Product]:
    rng = random.Random(seed)
    result = []
    for i in range(n):
        category = list(CATEGORIES)[i % len(CATEGORIES)]
        prefix, choices = CATEGORIES[category]
        # Most attributes are present; some are left out, so "missing" is part of the data.
        attributes = {key: rng.choice(values) for key, values in choices.items() if rng.random() < 0.9}
        price = rng.randrange(500, 250_000 if category == "laptop" else 20_000, 5)
        result.append(Product(f"{prefix}-{i:04d}", f"{category} {i}", category, price, attributes))
    return result


def customers(n: int = 100, seed: int = 7) -> list[Customer]:
    """Customers in a friendship graph: a ring (everyone is reachable) plus random extra ties."""
    rng = random.Random(seed)
    friends: dict[int, set[int]] = {i: set() for i in range(1, n + 1)}
    ties = [(i, i % n + 1) for i in range(1, n + 1)] if n > 2 else []
    ties += [tuple(rng.sample(range(1, n + 1), 2)) for _ in range(n)] if n > 1 else []
    for a, b in ties:
        friends[a].add(b)
        friends[b].add(a)
    return [Customer(i, f"customer {i}", tuple(sorted(friends[i]))) for i in range(1, n + 1)]


def orders(customers: list[Customer], products: list[Product], n: int = 500, seed: int = 7) -> list[Order]:
    """Orders in which a few bundles recur (bought together often), placed at distinct seconds."""
    rng = random.Random(seed)
    skus = [product.sku for product in products]
    bundles = [tuple(rng.sample(skus, 3)) for _ in range(max(1, len(skus) // 20))]
    seconds = sorted(rng.sample(range(7 * 24 * 3600), n))  # distinct, rising with the order id
    result = []
    for order_id, second in enumerate(seconds, start=1):
        chosen = set(rng.choice(bundles)) if rng.random() < 0.6 else set()
        chosen |= set(rng.sample(skus, rng.randint(1, 2)))
        lines = tuple((sku, rng.randint(1, 3)) for sku in sorted(chosen))
        placed_at = START + timedelta(seconds=second)
        result.append(Order(order_id, rng.choice(customers).id, lines, placed_at))
    return result


@dataclass(frozen=True)
class Namespaces:
    """One lesson's names in every store, from its module name. Neo4j: every node the lesson writes
    carries the label `neo4j_label` (besides Customer, Product...), written out in its Cypher (labels
    cannot be bound); constraints go on that label only. InfluxDB: the bucket is shared (INFLUX_BUCKET),
    the lesson's measurements are prefixed."""

    lesson: str

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", self.lesson):
            raise ValueError(f"a lesson name is snake_case, not {self.lesson!r}")

    @property
    def postgres_schema(self) -> str:
        return f"shop_{self.lesson}"

    @property
    def mongo_database(self) -> str:
        return f"shop_{self.lesson}"

    @property
    def redis_prefix(self) -> str:
        return f"shop:{self.lesson}:"

    def redis_key(self, *parts: object) -> str:
        return self.redis_prefix + ":".join(str(part) for part in parts)

    @property
    def neo4j_label(self) -> str:
        return "Shop" + "".join(word.capitalize() for word in self.lesson.split("_"))

    def measurement(self, name: str) -> str:
        return f"shop_{self.lesson}_{name}"


def namespaces(lesson: str) -> Namespaces:
    return Namespaces(lesson)


# The source of truth: PostgreSQL. `{schema}` is filled with sql.Identifier, never formatted text.
ORDERS_SCHEMA = (
    "CREATE TABLE {schema}.orders (id bigint PRIMARY KEY, customer_id int NOT NULL,"
    " placed_at timestamptz NOT NULL DEFAULT now(), status text NOT NULL DEFAULT 'placed',"
    " total_cents bigint NOT NULL DEFAULT 0, version int NOT NULL DEFAULT 1)",
    "CREATE TABLE {schema}.order_lines (order_id bigint NOT NULL REFERENCES {schema}.orders ON DELETE CASCADE,"
    " sku text NOT NULL, quantity int NOT NULL CHECK (quantity > 0), price_cents int NOT NULL,"
    " PRIMARY KEY (order_id, sku))",
    "CREATE TABLE {schema}.payments (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " order_id bigint NOT NULL REFERENCES {schema}.orders, idempotency_key text NOT NULL UNIQUE,"
    " amount_cents bigint NOT NULL, created_at timestamptz NOT NULL DEFAULT now())",
    "CREATE TABLE {schema}.stock (sku text PRIMARY KEY, quantity int NOT NULL CHECK (quantity >= 0),"
    " version int NOT NULL DEFAULT 1)",
)


def create_order_tables(conn, schema: str) -> None:
    """Drop and recreate `schema` with the order tables (idempotent); commits."""
    name = sql.Identifier(schema)
    with conn.transaction():
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(name))
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(name))
        for statement in ORDERS_SCHEMA:
            conn.execute(sql.SQL(statement).format(schema=name))
    if not conn.autocommit:
        conn.commit()

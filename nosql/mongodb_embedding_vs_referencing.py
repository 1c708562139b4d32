"""Embedding or referencing in MongoDB: the same questions answered both ways, measured

A document database lets related data live inside one document (embedding) or in documents of its
own that point at each other by id (referencing). This lesson stores one shop both ways: a customer
with the few addresses embedded (one-to-few), orders either embedded in the customer or kept in a
collection of their own that references the customer (one-to-many), and products and categories
linked by arrays of ids (many-to-many). It answers the same questions on each shape and counts what
each answer costs: round trips (commands counted by a pymongo CommandListener), documents and bytes
received (`len(bson.encode(doc))` on the client), with and without $lookup. Then it renames a
product: one document changes when orders reference it, every order line that copied its name
changes when they embed it. Last, the unbounded-array anti-pattern: a document whose array grows
with every event, its size and update time measured as it reaches thousands of entries, and the
16 MB document limit computed from the measured growth, not hit.

Engine: MongoDB (MONGO_URL), database `mongodb_embedding_vs_referencing`. Nothing here needs a real
MongoDB: the local stand-in runs all of it, though it does not build non-unique indexes, so its
timings come from collection scans (the lesson says so when it finds them unbuilt).
Run: `make up SERVICES=mongodb` (or `make local-up`), then `python nosql/mongodb_embedding_vs_referencing.py`.
Look for: 1 round trip embedded against 3 referenced (1 with $lookup) for the customer page, the
whole customer shipped to read one order, 1 document modified against dozens for the rename, and
the events left before the array's document reaches 16 MB.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import bson
import pymongo
from pymongo import monitoring
from pymongo.database import Database

from common import console
from common.settings import CONNECT_TIMEOUT_S, mongo_url, require
from common.timing import best_of, timer

REQUIRES = ("mongodb",)
DATABASE = "mongodb_embedding_vs_referencing"
SEED = 23
N_CUSTOMERS, N_PRODUCTS, N_ORDERS = 150, 40, 900
CATEGORIES = ["kitchen", "garden", "office", "outdoor", "lighting", "storage", "textiles", "tools"]
MATERIALS = ["Oak", "Steel", "Linen", "Walnut", "Copper", "Bamboo", "Cotton", "Slate"]
THINGS = ["lamp", "stool", "basket", "kettle", "shelf", "planter", "rug", "toolbox", "tray", "bench"]
CITIES = ["Lisbon", "Porto", "Lyon", "Paris", "Bonn", "Berlin", "Ghent", "Turin"]
ADDRESS_LABELS = ["home", "work", "billing"]
ORDER_WEIGHTS = [1, 1, 1, 2, 3, 10]  # a few customers order far more often than the rest
FIRST_DAY = datetime(2024, 1, 1)
RECENT_ORDERS = 5
GROWTH_STEPS = [10, 100, 1_000, 2_500, 5_000]
EVENT_PAGES = ["/", "/cart", "/checkout", "/account", "/search", "/products/"]
COLLECTIONS = ["customers_embedded", "customers", "orders", "products", "categories"]


class RoundTrips(monitoring.CommandListener):
    """Counts the commands a client sends: each one is a round trip to the server."""

    def __init__(self) -> None:
        self.count = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.count += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@dataclass
class Access:
    """One way of answering one question, and what it cost."""

    question: str
    how: str
    round_trips: int
    documents: int  # documents the client received
    bytes: int  # their BSON size
    seconds: float = field(compare=False)


@dataclass
class RenameCost:
    product_id: int
    referenced_modified: int
    referenced_copies: int  # documents of the referenced shape that held the old name
    embedded_modified: int  # customer documents rewritten
    embedded_copies: int  # order lines that carried the old name
    referenced_bytes_rewritten: int
    embedded_bytes_rewritten: int
    stale_copies_after: int
    referenced_seconds: float = field(compare=False)
    embedded_seconds: float = field(compare=False)


@dataclass
class GrowthStep:
    entries: int
    document_bytes: int
    push_seconds: float = field(compare=False)
    read_seconds: float = field(compare=False)


@dataclass
class EmbeddingResult:
    documents: dict[str, int]
    collection_bytes: dict[str, int]
    indexes_built: bool
    accesses: list[Access]
    same_answers: dict[str, bool]
    rename: RenameCost
    growth: list[GrowthStep]
    max_document_bytes: int
    bytes_per_entry: float
    entries_to_limit: int


@dataclass
class Shop:
    categories: list[dict]
    products: list[dict]
    customers: list[dict]
    orders: list[dict]


def generate_shop(seed: int = SEED) -> Shop:
    """Deterministic customers, products, categories and orders, in referenced form."""
    rng = random.Random(seed)
    categories = [{"_id": i, "name": name} for i, name in enumerate(CATEGORIES, start=1)]
    products = [
        {
            "_id": i,
            "name": f"{rng.choice(MATERIALS)} {rng.choice(THINGS)} {i:02d}",
            "price_cents": rng.randint(300, 9_000),
            "category_ids": sorted(rng.sample(range(1, len(CATEGORIES) + 1), rng.randint(1, 3))),
        }
        for i in range(1, N_PRODUCTS + 1)
    ]
    customers = [
        {
            "_id": i,
            "name": f"Customer {i:03d}",
            "email": f"customer{i:03d}@example.com",
            "addresses": [
                {"label": label, "street": f"{rng.randint(1, 200)} Main Street", "city": rng.choice(CITIES)}
                for label in ADDRESS_LABELS[: rng.randint(1, 3)]
            ],
        }
        for i in range(1, N_CUSTOMERS + 1)
    ]
    weights = [rng.choice(ORDER_WEIGHTS) for _ in customers]
    times = sorted(FIRST_DAY + timedelta(minutes=rng.randint(0, 365 * 24 * 60)) for _ in range(N_ORDERS))
    orders = []
    for order_id, ordered_at in enumerate(times, start=1):
        customer = rng.choices(customers, weights)[0]
        items = [
            {
                "product_id": product["_id"],
                "qty": rng.randint(1, 4),
                "unit_price_cents": product["price_cents"],
            }
            for product in rng.sample(products, rng.randint(1, 4))
        ]
        total = sum(line["qty"] * line["unit_price_cents"] for line in items)
        orders.append(
            {"_id": order_id, "customer_id": customer["_id"], "ordered_at": ordered_at, "items": items,
             "total_cents": total}
        )  # fmt: skip
    return Shop(categories, products, customers, orders)


def embedded_customers(shop: Shop) -> list[dict]:
    """The same data with every order inside its customer, each line copying the product's name."""
    names = {product["_id"]: product["name"] for product in shop.products}
    orders_of: dict[int, list[dict]] = {customer["_id"]: [] for customer in shop.customers}
    for order in shop.orders:  # already in time order
        lines = [{**line, "name": names[line["product_id"]]} for line in order["items"]]
        orders_of[order["customer_id"]].append(
            {"order_id": order["_id"], "ordered_at": order["ordered_at"], "items": lines,
             "total_cents": order["total_cents"]}
        )  # fmt: skip
    return [{**customer, "orders": orders_of[customer["_id"]]} for customer in shop.customers]


def load(db: Database, shop: Shop) -> dict[str, int]:
    db.client.drop_database(DATABASE)
    db.categories.insert_many(shop.categories)
    db.products.insert_many(shop.products)
    db.customers.insert_many(shop.customers)
    db.orders.insert_many(shop.orders)
    db.customers_embedded.insert_many(embedded_customers(shop))
    # What each access path below needs (the local stand-in lists them but does not build them).
    db.orders.create_index([("customer_id", 1), ("ordered_at", -1)])
    db.orders.create_index("items.product_id")
    db.products.create_index("category_ids")
    db.customers_embedded.create_index("orders.order_id")
    db.customers_embedded.create_index("orders.items.product_id")
    return {name: db[name].count_documents({}) for name in COLLECTIONS}


def collection_bytes(db: Database) -> dict[str, int]:
    """collStats `size`: the BSON bytes of the documents, before any compression."""
    return {name: int(db.command("collStats", name)["size"]) for name in COLLECTIONS}


def indexes_built(db: Database) -> bool:
    """Whether the server built a non-unique index (the local stand-in only lists them)."""
    sizes = db.command("collStats", "orders").get("indexSizes", {})
    return sizes.get("customer_id_1_ordered_at_-1", 0) > 0


def measure(
    trips: RoundTrips, question: str, how: str, fetch: Callable[[], list[dict]]
) -> tuple[Access, list]:
    """Run `fetch` once counting round trips, documents and bytes; then time it (best of 3)."""
    before = trips.count
    received = fetch()
    round_trips = trips.count - before
    size = sum(len(bson.encode(doc)) for doc in received)
    return Access(question, how, round_trips, len(received), size, best_of(fetch)), received


# --- question 1: the customer page (profile, addresses, last orders with product names) ---------
def page_embedded_whole(db: Database, customer_id: int) -> list[dict]:
    """embedded, whole document"""
    return [db.customers_embedded.find_one({"_id": customer_id})]


def page_embedded_sliced(db: Database, customer_id: int) -> list[dict]:
    """embedded, $slice"""
    projection = {"name": 1, "email": 1, "addresses": 1, "orders": {"$slice": -RECENT_ORDERS}}
    return [db.customers_embedded.find_one({"_id": customer_id}, projection)]


def page_referenced(db: Database, customer_id: int) -> list[dict]:
    """referenced, find each"""
    customer = db.customers.find_one({"_id": customer_id})
    orders = list(db.orders.find({"customer_id": customer_id}).sort("ordered_at", -1).limit(RECENT_ORDERS))
    product_ids = sorted({line["product_id"] for order in orders for line in order["items"]})
    products = list(db.products.find({"_id": {"$in": product_ids}}, {"name": 1}))
    return [customer, *orders, *products]


def page_lookup(db: Database, customer_id: int) -> list[dict]:
    """referenced, $lookup"""
    recent_orders = [
        {"$match": {"$expr": {"$eq": ["$customer_id", "$$customer_id"]}}},
        {"$sort": {"ordered_at": -1}},
        {"$limit": RECENT_ORDERS},
        # The ids as a plain array first: the local stand-in cannot $lookup from a path inside an array.
        {"$addFields": {"product_ids": "$items.product_id"}},
        {
            "$lookup": {
                "from": "products",
                "localField": "product_ids",
                "foreignField": "_id",
                "as": "products",
            }
        },
    ]
    pipeline = [
        {"$match": {"_id": customer_id}},
        {
            "$lookup": {
                "from": "orders",
                "let": {"customer_id": "$_id"},
                "pipeline": recent_orders,
                "as": "recent",
            }
        },
    ]
    return list(db.customers.aggregate(pipeline))


def page_answer(fetch: Callable, received: list[dict]) -> tuple:
    """(customer name, address count, [(order id, product names)] newest first), from any shape."""
    customer = received[0]
    if fetch in (page_embedded_whole, page_embedded_sliced):
        orders = [(o["order_id"], sorted(line["name"] for line in o["items"])) for o in customer["orders"]]
        orders = orders[::-1][:RECENT_ORDERS]
    elif fetch is page_lookup:
        orders = [(o["_id"], sorted(p["name"] for p in o["products"])) for o in customer["recent"]]
    else:  # the customer, then its orders, then the products they name
        names = {doc["_id"]: doc["name"] for doc in received[1:] if "items" not in doc}
        orders = [
            (doc["_id"], sorted(names[line["product_id"]] for line in doc["items"]))
            for doc in received[1:]
            if "items" in doc
        ]
    return customer["name"], len(customer["addresses"]), orders


# --- question 2: one order by its number (a child read on its own) -----------------------------
def order_referenced(db: Database, order_id: int) -> list[dict]:
    """referenced, by _id"""
    return [db.orders.find_one({"_id": order_id})]


def order_embedded_whole(db: Database, order_id: int) -> list[dict]:
    """embedded, whole customer"""
    return [db.customers_embedded.find_one({"orders.order_id": order_id})]


def order_embedded_elem_match(db: Database, order_id: int) -> list[dict]:
    """embedded, $elemMatch"""
    projection = {"orders": {"$elemMatch": {"order_id": order_id}}}
    return [db.customers_embedded.find_one({"orders.order_id": order_id}, projection)]


def order_answer(order_id: int, received: list[dict]) -> tuple:
    doc = received[0]
    order = doc if "orders" not in doc else next(o for o in doc["orders"] if o["order_id"] == order_id)
    return order["total_cents"], sorted(line["product_id"] for line in order["items"])


# --- question 3: many-to-many through arrays of ids --------------------------------------------
def categories_two_queries(db: Database, product_id: int) -> list[dict]:
    """two queries"""
    product = db.products.find_one({"_id": product_id})
    return [product, *db.categories.find({"_id": {"$in": product["category_ids"]}})]


def categories_lookup(db: Database, product_id: int) -> list[dict]:
    """$lookup on the ids"""
    pipeline = [
        {"$match": {"_id": product_id}},
        {
            "$lookup": {
                "from": "categories",
                "localField": "category_ids",
                "foreignField": "_id",
                "as": "categories",
            }
        },
    ]
    return list(db.products.aggregate(pipeline))


def products_in_category(db: Database, category_id: int) -> list[dict]:
    """multikey array query"""
    return list(db.products.find({"category_ids": category_id}, {"name": 1}))


def category_names(received: list[dict]) -> list[str]:
    if "categories" in received[0]:
        return sorted(c["name"] for c in received[0]["categories"])
    return sorted(doc["name"] for doc in received[1:])


def answer_questions(db: Database, trips: RoundTrips, shop: Shop) -> tuple[list[Access], dict[str, bool]]:
    """Each question answered every way; `same` says whether all the ways agree."""
    orders_of = {
        c["_id"]: [o["_id"] for o in shop.orders if o["customer_id"] == c["_id"]] for c in shop.customers
    }
    busiest = max(orders_of, key=lambda customer_id: len(orders_of[customer_id]))
    order_id = orders_of[busiest][len(orders_of[busiest]) // 2]  # an order inside the biggest customer
    product = shop.products[0]
    category_id = product["category_ids"][0]
    questions = [
        (f"customer page (customer {busiest}, last {RECENT_ORDERS} orders)", busiest,
         [page_embedded_whole, page_embedded_sliced, page_referenced, page_lookup], page_answer),
        (f"one order by its number ({order_id})", order_id,
         [order_referenced, order_embedded_whole, order_embedded_elem_match],
         lambda fetch, received: order_answer(order_id, received)),
        (f"categories of product {product['_id']}", product["_id"], [categories_two_queries, categories_lookup],
         lambda fetch, received: category_names(received)),
        (f"products in category {category_id}", category_id, [products_in_category],
         lambda fetch, received: sorted(doc["_id"] for doc in received)),
    ]  # fmt: skip
    accesses, same = [], {}
    for question, argument, fetches, answer in questions:
        answers = []
        for fetch in fetches:
            access, received = measure(trips, question, fetch.__doc__, lambda f=fetch, a=argument: f(db, a))
            accesses.append(access)
            answers.append(answer(fetch, received))
        same[question] = all(found == answers[0] for found in answers)
    expected = sorted(p["_id"] for p in shop.products if category_id in p["category_ids"])
    same[questions[-1][0]] = answers[0] == expected
    return accesses, same


# --- the cost of duplicated data ----------------------------------------------------------------
def embedded_copies(db: Database, product_id: int, name: str) -> int:
    """Order lines, across all embedded orders, that show `name` for the product."""
    match = {"orders.items.product_id": product_id, "orders.items.name": name}
    pipeline = [{"$unwind": "$orders"}, {"$unwind": "$orders.items"}, {"$match": match}, {"$count": "n"}]
    counted = list(db.customers_embedded.aggregate(pipeline))
    return counted[0]["n"] if counted else 0


def rename_product(db: Database, shop: Shop) -> RenameCost:
    lines_of = {p["_id"]: sum(line["product_id"] == p["_id"] for o in shop.orders for line in o["items"])
                for p in shop.products}  # fmt: skip
    product_id = max(lines_of, key=lines_of.get)
    old_name = db.products.find_one({"_id": product_id})["name"]
    new_name = old_name + " (new edition)"
    copies = embedded_copies(db, product_id, old_name)
    # In the referenced shape orders carry only the product's id: the name lives in one document.
    referenced_copies = db.products.count_documents({"name": old_name}) + db.orders.count_documents(
        {"items.name": old_name}
    )

    with timer() as referenced:
        one = db.products.update_one({"_id": product_id}, {"$set": {"name": new_name}})
    with timer() as embedded:
        many = db.customers_embedded.update_many(
            {"orders.items.product_id": product_id},
            {"$set": {"orders.$[].items.$[line].name": new_name}},
            array_filters=[{"line.product_id": product_id}],
        )
    rewritten = db.customers_embedded.find({"orders.items.product_id": product_id})
    return RenameCost(
        product_id=product_id,
        referenced_modified=one.modified_count,
        referenced_copies=referenced_copies,
        embedded_modified=many.modified_count,
        embedded_copies=copies,
        referenced_bytes_rewritten=len(bson.encode(db.products.find_one({"_id": product_id}))),
        embedded_bytes_rewritten=sum(len(bson.encode(doc)) for doc in rewritten),
        stale_copies_after=embedded_copies(db, product_id, old_name),
        referenced_seconds=referenced.seconds,
        embedded_seconds=embedded.seconds,
    )


# --- the unbounded array ---------------------------------------------------------------------------
def event(rng: random.Random, n: int) -> dict:
    page = rng.choice(EVENT_PAGES)
    if page == "/products/":
        page += str(rng.randint(1, N_PRODUCTS))
    return {"at": FIRST_DAY + timedelta(seconds=37 * n), "page": page, "ms": rng.randint(20, 900)}


def timed_push(db: Database, entry: dict, repeat: int = 3) -> float:
    """Best of `repeat` single $push updates; a $pop between them keeps the entry count exact."""
    runs = []
    for attempt in range(repeat):
        if attempt:
            db.activity.update_one({"_id": 1}, {"$pop": {"events": 1}})
        with timer() as push:
            db.activity.update_one({"_id": 1}, {"$push": {"events": entry}})
        runs.append(push.seconds)
    return min(runs)


def grow_array(db: Database, seed: int = SEED) -> list[GrowthStep]:
    rng = random.Random(seed)
    db.activity.insert_one({"_id": 1, "customer_id": 1, "events": []})
    steps, entries = [], 0
    for target in GROWTH_STEPS:
        batch = [event(rng, n) for n in range(entries, target - 1)]
        db.activity.update_one({"_id": 1}, {"$push": {"events": {"$each": batch}}})
        push_seconds = timed_push(db, event(rng, target))
        entries = target
        read_seconds = best_of(lambda: db.activity.find_one({"_id": 1}))
        doc = db.activity.find_one({"_id": 1})
        steps.append(GrowthStep(len(doc["events"]), len(bson.encode(doc)), push_seconds, read_seconds))
    return steps


def max_document_bytes(client: pymongo.MongoClient) -> int:
    """The server's maxBsonObjectSize from the connection handshake (16 MiB on MongoDB)."""
    servers = client.topology_description.server_descriptions().values()
    return min(server.max_bson_size for server in servers)


def run(client: pymongo.MongoClient, trips: RoundTrips) -> EmbeddingResult:
    console.title("Embedding or referencing: the same shop stored both ways")
    db = client[DATABASE]

    console.step(f"Load the shop both ways into the database `{DATABASE}` (dropped first)")
    shop = generate_shop()
    documents = load(db, shop)
    sizes = collection_bytes(db)
    built = indexes_built(db)
    if not built:
        console.say(
            "This server lists the secondary indexes but did not build them: its times come from scans."
        )
    console.say("Addresses are embedded in both shapes: a customer has one to three, read with the customer.")
    console.table(
        ["collection", "shape", "documents", "data (collStats size)"],
        [
            (name, "embedded" if name == "customers_embedded" else "referenced", documents[name],
             console.size(sizes[name]))
            for name in COLLECTIONS
        ],
    )  # fmt: skip
    referenced_total = sum(sizes[name] for name in COLLECTIONS[1:])
    console.say(
        f"embedded {console.size(sizes['customers_embedded'])} against referenced "
        f"{console.size(referenced_total)}: the embedded lines repeat each product's name"
    )

    console.step("Answer the same questions on each shape: round trips, documents and bytes received")
    accesses, same = answer_questions(db, trips, shop)
    for question, agrees in same.items():
        console.say(f"{question}: the same answer every way: {agrees}")
        console.table(
            ["how", "round trips", "documents", "bytes", "time (best of 3)"],
            [(a.how, a.round_trips, a.documents, console.size(a.bytes), console.seconds(a.seconds))
             for a in accesses if a.question == question],
        )  # fmt: skip
    console.say("Embedding wins when the parent and its children are read together; the child read on its")
    console.say("own ships the whole parent unless a projection ($slice, $elemMatch) trims it.")

    console.step("Rename the most ordered product: the update cost of duplicated data")
    rename = rename_product(db, shop)
    console.table(
        ["shape", "modified", "name copies", "bytes rewritten", "time"],
        [
            ("referenced: update_one", rename.referenced_modified, rename.referenced_copies,
             console.size(rename.referenced_bytes_rewritten), console.seconds(rename.referenced_seconds)),
            ("embedded: update_many", rename.embedded_modified, rename.embedded_copies,
             console.size(rename.embedded_bytes_rewritten), console.seconds(rename.embedded_seconds)),
        ],
    )  # fmt: skip
    console.say(f"order lines still showing the old name after the update_many: {rename.stale_copies_after}")
    console.say("Copy a field into many documents only when it rarely changes, or when the copy is a")
    console.say("historical fact (the unit price paid is one; the product's current name is not).")

    console.step("The unbounded array: one activity document that gets an event pushed on every page view")
    growth = grow_array(db)
    console.table(
        ["events in the array", "document size", "one $push", "read the document"],
        [(g.entries, console.size(g.document_bytes), console.seconds(g.push_seconds), console.seconds(g.read_seconds))
         for g in growth],
        caption="one $push and one find_one of the document, each the best of 3",
    )  # fmt: skip
    first, last = growth[0], growth[-1]
    per_entry = (last.document_bytes - first.document_bytes) / (last.entries - first.entries)
    limit = max_document_bytes(client)
    to_limit = int((limit - last.document_bytes) / per_entry)
    console.say(f"{per_entry:.1f} bytes per event; the server refuses documents over {console.size(limit)}:")
    console.say(
        f"this one reaches that after about {last.entries + to_limit:,} events, {to_limit:,} from now."
    )
    console.say("Long before, every read ships the whole array. Keep such events in a collection of their")
    console.say("own, cap the array ($push with $each and $slice), or group them in buckets.")

    return EmbeddingResult(
        documents=documents,
        collection_bytes=sizes,
        indexes_built=built,
        accesses=accesses,
        same_answers=same,
        rename=rename,
        growth=growth,
        max_document_bytes=limit,
        bytes_per_entry=per_entry,
        entries_to_limit=to_limit,
    )


def main() -> int:
    require(*REQUIRES)
    trips = RoundTrips()
    timeout_ms = CONNECT_TIMEOUT_S * 1000
    with pymongo.MongoClient(
        mongo_url(), serverSelectionTimeoutMS=timeout_ms, event_listeners=[trips]
    ) as client:
        result = run(client, trips)
    rename = result.rename
    one_place = rename.referenced_modified == rename.referenced_copies == 1 < rename.embedded_modified
    return 0 if one_place and rename.stale_copies_after == 0 and all(result.same_answers.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""MongoDB aggregation patterns: the pipeline, the computed pattern, and a report kept with $merge

An aggregation pipeline is a list of stages the server runs in order, each passing documents to the
next. This lesson builds the common ones on a year of orders: $match and $group for revenue per
month, $unwind and $lookup for the best-selling products by name, and $facet for several summaries
from one pass over the data. Then the computed pattern: keep each customer's order count and spend
up to date with $inc on every order written, instead of a $group over every order on every read;
both sides are measured, and the stored totals are checked against a fresh $group. Last, a monthly
report materialized into a collection with $merge; late orders arrive, re-running the $merge for
their month updates that report document in place, and the report equals a recomputation.

Engine: MongoDB (MONGO_URL), database `mongodb_aggregation_patterns`. Nothing here needs a real
MongoDB: the local stand-in runs all of it, though it does not build non-unique indexes, so its
read timings come from collection scans.
Run: `make up SERVICES=mongodb` (or `make local-up`), then `python nosql/mongodb_aggregation_patterns.py`.
Look for: the stored totals "equal to a fresh $group: True", the read of 10 stored customers beating
the $group over every order, and "report documents: 12 before, 12 after" with only March changed.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise

import pymongo
from pymongo.database import Database

from common import console
from common.settings import CONNECT_TIMEOUT_S, mongo_url, require
from common.timing import best_of, timer

REQUIRES = ("mongodb",)
DATABASE = "mongodb_aggregation_patterns"
SEED = 31
YEAR = 2024
N_CUSTOMERS, N_PRODUCTS, N_ORDERS = 120, 30, 1_000
N_NEW_ORDERS = 150  # written one by one through the application's write path
N_LATE_ORDERS = 40  # arrive after the report was built, all dated in LATE_MONTH
LATE_MONTH = 3
TOP = 5
TOP_CUSTOMERS = 10
STATUSES = {"paid": 70, "shipped": 20, "refunded": 7, "cancelled": 3}  # share of orders, in %
REVENUE_STATUSES = ["paid", "shipped"]
CHANNELS = {"web": 55, "app": 35, "store": 10}
CATEGORIES = ["books", "games", "music", "garden", "kitchen"]
BANDS = [0, 2_500, 10_000, 25_000, 50_000, 1_000_000]  # order totals, in cents
REPORT = "report_monthly_sales"


@dataclass
class Orders:
    customers: list[dict]
    products: list[dict]
    orders: list[dict]  # loaded in bulk at the start
    new_orders: list[dict]  # written one at a time, with the computed pattern
    late_orders: list[dict]  # arrive after the report exists


@dataclass
class ComputedPattern:
    new_orders: int
    customers_compared: int
    totals_equal: bool  # stored order_count / spent_cents == a fresh $group, for every customer
    top_equal: bool  # the top customers read both ways agree
    orders_grouped: int  # documents the $group reads on every request
    customers_read: int  # documents the stored read returns
    insert_seconds: float = field(compare=False)
    inc_seconds: float = field(compare=False)
    group_seconds: float = field(compare=False)
    stored_seconds: float = field(compare=False)


@dataclass
class MonthlyReport:
    documents_first: int
    documents_after_rerun: int
    month: str
    before: dict  # the month's report document before the late orders
    after: dict
    rewritten_months: list[str]  # report documents the second $merge wrote (their `refresh` is 2)
    other_months_unchanged: bool
    equals_fresh_group: bool


@dataclass
class AggregationResult:
    counts: dict[str, int]
    revenue_by_month: list[tuple[str, int, int]]  # month, orders, revenue in cents
    top_products: list[tuple[str, int, int]]  # name, units, revenue in cents
    facets: dict[str, list[tuple]]
    computed: ComputedPattern
    report: MonthlyReport


def weighted(rng: random.Random, shares: dict[str, int]) -> str:
    return rng.choices(list(shares), list(shares.values()))[0]


def make_order(rng: random.Random, order_id: int, ordered_at: datetime, products: list[dict]) -> dict:
    items = [
        {"product_id": product["_id"], "qty": rng.randint(1, 3), "unit_price_cents": product["price_cents"]}
        for product in rng.sample(products, rng.randint(1, 4))
    ]
    return {
        "_id": order_id,
        "customer_id": rng.randint(1, N_CUSTOMERS),
        "ordered_at": ordered_at,
        "status": weighted(rng, STATUSES),
        "channel": weighted(rng, CHANNELS),
        "items": items,
        "total_cents": sum(line["qty"] * line["unit_price_cents"] for line in items),
    }


def generate(seed: int = SEED) -> Orders:
    rng = random.Random(seed)
    customers = [
        {"_id": i, "name": f"Customer {i:03d}", "order_count": 0, "spent_cents": 0}
        for i in range(1, N_CUSTOMERS + 1)
    ]
    products = [
        {"_id": i, "name": f"{rng.choice(CATEGORIES).title()} item {i:02d}", "category": rng.choice(CATEGORIES),
         "price_cents": rng.randint(200, 12_000)}
        for i in range(1, N_PRODUCTS + 1)
    ]  # fmt: skip
    start, minutes = datetime(YEAR, 1, 1), 366 * 24 * 60
    times = sorted(start + timedelta(minutes=rng.randrange(minutes)) for _ in range(N_ORDERS + N_NEW_ORDERS))
    orders = [make_order(rng, n, at, products) for n, at in enumerate(times, start=1)]
    late_start = datetime(YEAR, LATE_MONTH, 1)
    late = [
        make_order(
            rng, len(orders) + n, late_start + timedelta(minutes=rng.randrange(28 * 24 * 60)), products
        )
        for n in range(1, N_LATE_ORDERS + 1)
    ]
    return Orders(customers, products, orders[:N_ORDERS], orders[N_ORDERS:], late)


def load(db: Database, data: Orders) -> dict[str, int]:
    db.client.drop_database(DATABASE)
    db.customers.insert_many(data.customers)
    db.products.insert_many(data.products)
    db.orders.insert_many(data.orders)
    db.orders.create_index([("ordered_at", 1)])
    db.orders.create_index([("customer_id", 1)])
    db.customers.create_index([("spent_cents", -1)])
    return {name: db[name].count_documents({}) for name in ("customers", "products", "orders")}


def show_pipeline(pipeline: list[dict]) -> None:
    console.plan("\n".join(json.dumps(stage, default=str) for stage in pipeline), max_lines=20)


# --- the pipeline ------------------------------------------------------------------------------------
MONTH = {"$dateToString": {"format": "%Y-%m", "date": "$ordered_at"}}
REVENUE_BY_MONTH = [
    {"$match": {"status": {"$in": REVENUE_STATUSES}}},
    {"$group": {"_id": MONTH, "orders": {"$sum": 1}, "revenue_cents": {"$sum": "$total_cents"}}},
    {"$sort": {"_id": 1}},
]
TOP_PRODUCTS = [
    {"$match": {"status": {"$in": REVENUE_STATUSES}}},
    {"$unwind": "$items"},
    {
        "$group": {
            "_id": "$items.product_id",
            "units": {"$sum": "$items.qty"},
            "revenue_cents": {"$sum": {"$multiply": ["$items.qty", "$items.unit_price_cents"]}},
        }
    },
    {"$sort": {"revenue_cents": -1, "_id": 1}},
    {"$limit": TOP},
    {"$lookup": {"from": "products", "localField": "_id", "foreignField": "_id", "as": "product"}},
    {"$project": {"name": {"$arrayElemAt": ["$product.name", 0]}, "units": 1, "revenue_cents": 1}},
]
SUMMARIES = [
    {
        "$facet": {
            "by_status": [{"$group": {"_id": "$status", "orders": {"$sum": 1}}}, {"$sort": {"_id": 1}}],
            "by_channel": [
                {"$match": {"status": {"$in": REVENUE_STATUSES}}},
                {
                    "$group": {
                        "_id": "$channel",
                        "orders": {"$sum": 1},
                        "revenue_cents": {"$sum": "$total_cents"},
                    }
                },
                {"$sort": {"_id": 1}},
            ],
            "by_total": [
                {
                    "$bucket": {
                        "groupBy": "$total_cents",
                        "boundaries": BANDS,
                        "output": {"orders": {"$sum": 1}},
                    }
                }
            ],
        }
    }
]


def revenue_by_month(db: Database) -> list[tuple[str, int, int]]:
    return [(d["_id"], d["orders"], d["revenue_cents"]) for d in db.orders.aggregate(REVENUE_BY_MONTH)]


def top_products(db: Database) -> list[tuple[str, int, int]]:
    return [(d["name"], d["units"], d["revenue_cents"]) for d in db.orders.aggregate(TOP_PRODUCTS)]


def summaries(db: Database) -> dict[str, list[tuple]]:
    [facets] = db.orders.aggregate(SUMMARIES)
    band_label = {low: f"{low / 100:,.0f}-{high / 100:,.0f}" for low, high in pairwise(BANDS)}
    return {
        "by_status": [(d["_id"], d["orders"]) for d in facets["by_status"]],
        "by_channel": [(d["_id"], d["orders"], d["revenue_cents"]) for d in facets["by_channel"]],
        "by_total": [(band_label[d["_id"]], d["orders"]) for d in facets["by_total"]],
    }


# --- the computed pattern ------------------------------------------------------------------------------
TOTALS_BY_CUSTOMER = [
    {"$group": {"_id": "$customer_id", "order_count": {"$sum": 1}, "spent_cents": {"$sum": "$total_cents"}}}
]


def backfill_totals(db: Database) -> None:
    """Once, when the pattern is introduced: write today's totals into the customers with $merge."""
    merge = {
        "$merge": {"into": "customers", "on": "_id", "whenMatched": "merge", "whenNotMatched": "discard"}
    }
    db.orders.aggregate([*TOTALS_BY_CUSTOMER, merge])


def write_orders_with_totals(db: Database, orders: list[dict]) -> tuple[float, float]:
    """The application's write path: insert the order, then $inc its customer's totals."""
    insert_seconds = inc_seconds = 0.0
    for order in orders:
        with timer() as insert:
            db.orders.insert_one(order)
        with timer() as inc:
            db.customers.update_one(
                {"_id": order["customer_id"]},
                {"$inc": {"order_count": 1, "spent_cents": order["total_cents"]}},
            )
        insert_seconds += insert.seconds
        inc_seconds += inc.seconds
    return insert_seconds, inc_seconds


def top_customers_by_group(db: Database) -> list[tuple[int, int, int]]:
    """Computed on read: a $group over every order."""
    pipeline = [*TOTALS_BY_CUSTOMER, {"$sort": {"spent_cents": -1, "_id": 1}}, {"$limit": TOP_CUSTOMERS}]
    return [(d["_id"], d["order_count"], d["spent_cents"]) for d in db.orders.aggregate(pipeline)]


def top_customers_stored(db: Database) -> list[tuple[int, int, int]]:
    """Computed on write: read the stored totals."""
    found = db.customers.find({}, {"order_count": 1, "spent_cents": 1})
    found = found.sort([("spent_cents", -1), ("_id", 1)]).limit(TOP_CUSTOMERS)
    return [(d["_id"], d["order_count"], d["spent_cents"]) for d in found]


def computed_pattern(db: Database, data: Orders) -> ComputedPattern:
    backfill_totals(db)
    insert_seconds, inc_seconds = write_orders_with_totals(db, data.new_orders)

    fresh = {d["_id"]: (d["order_count"], d["spent_cents"]) for d in db.orders.aggregate(TOTALS_BY_CUSTOMER)}
    stored = {
        d["_id"]: (d["order_count"], d["spent_cents"])
        for d in db.customers.find({"order_count": {"$gt": 0}}, {"order_count": 1, "spent_cents": 1})
    }
    by_group, by_stored = top_customers_by_group(db), top_customers_stored(db)
    return ComputedPattern(
        new_orders=len(data.new_orders),
        customers_compared=len(fresh),
        totals_equal=fresh == stored,
        top_equal=by_group == by_stored,
        orders_grouped=db.orders.count_documents({}),
        customers_read=len(by_stored),
        insert_seconds=insert_seconds,
        inc_seconds=inc_seconds,
        group_seconds=best_of(lambda: top_customers_by_group(db), repeat=5),
        stored_seconds=best_of(lambda: top_customers_stored(db), repeat=5),
    )


# --- a report materialized with $merge ------------------------------------------------------------------
def report_pipeline(match: dict, refresh: int) -> list[dict]:
    return [
        {"$match": {"status": {"$in": REVENUE_STATUSES}, **match}},
        {
            "$group": {
                "_id": MONTH,
                "orders": {"$sum": 1},
                "revenue_cents": {"$sum": "$total_cents"},
                "customer_ids": {"$addToSet": "$customer_id"},
            }
        },
        {
            "$project": {
                "orders": 1,
                "revenue_cents": 1,
                "customers": {"$size": "$customer_ids"},
                "refresh": {"$literal": refresh},  # which run wrote the document
            }
        },
    ]


MERGE_REPORT = {"$merge": {"into": REPORT, "on": "_id", "whenMatched": "replace", "whenNotMatched": "insert"}}


def month_range(month: int) -> dict:
    return {"ordered_at": {"$gte": datetime(YEAR, month, 1), "$lt": datetime(YEAR, month + 1, 1)}}


def monthly_report(db: Database, data: Orders) -> MonthlyReport:
    db.orders.aggregate([*report_pipeline({}, refresh=1), MERGE_REPORT])
    first = {d["_id"]: d for d in db[REPORT].find()}

    write_orders_with_totals(db, data.late_orders)
    # Only the month that changed is recomputed; $merge replaces its report document in place.
    db.orders.aggregate([*report_pipeline(month_range(LATE_MONTH), refresh=2), MERGE_REPORT])
    after = {d["_id"]: d for d in db[REPORT].find()}

    fresh = {d["_id"]: d for d in db.orders.aggregate(report_pipeline({}, refresh=0))}
    month = f"{YEAR}-{LATE_MONTH:02d}"
    return MonthlyReport(
        documents_first=len(first),
        documents_after_rerun=len(after),
        month=month,
        before=first[month],
        after=after[month],
        rewritten_months=sorted(m for m, doc in after.items() if doc["refresh"] == 2),
        other_months_unchanged=all(after[m] == first[m] for m in first if m != month),
        equals_fresh_group=_totals(after) == _totals(fresh),
    )


def _totals(report: dict[str, dict]) -> dict[str, dict]:
    return {month: {k: v for k, v in doc.items() if k != "refresh"} for month, doc in report.items()}


def run(client: pymongo.MongoClient) -> AggregationResult:
    console.title("Aggregation patterns: pipeline stages, the computed pattern, $merge")
    db = client[DATABASE]

    console.step(f"Load a year of orders into the database `{DATABASE}` (dropped first)")
    data = generate()
    counts = load(db, data)
    console.table(["collection", "documents"], counts.items())

    console.step("$match then $group: revenue per month of paid and shipped orders")
    show_pipeline(REVENUE_BY_MONTH)
    by_month = revenue_by_month(db)
    console.table(["month", "orders", "revenue"], [(m, n, money(cents)) for m, n, cents in by_month])
    last = data.orders[-1]["ordered_at"]
    console.say(f"The first {N_ORDERS:,} orders run to {last:%d %B}; the rest of the year arrives in step 5.")
    console.say(
        "$match first: later stages see only the orders that count, and at the start it can use an index."
    )

    console.step(f"$unwind, $group, $sort, $limit, $lookup: the {TOP} best-selling products by revenue")
    show_pipeline(TOP_PRODUCTS)
    products = top_products(db)
    console.table(["product", "units", "revenue"], [(name, units, money(c)) for name, units, c in products])
    console.say("$lookup after $limit joins 5 documents, not one per order line.")

    console.step("$facet: three summaries from one pass over the orders")
    facets = summaries(db)
    console.table(["status", "orders"], facets["by_status"])
    console.table(["channel", "orders", "revenue"], [(c, n, money(r)) for c, n, r in facets["by_channel"]])
    console.table(["order total", "orders"], facets["by_total"], caption="$bucket on total_cents")

    console.step("The computed pattern: customer totals kept with $inc on write, not a $group on read")
    computed = computed_pattern(db, data)
    console.say("Backfilled once from the existing orders ($group + $merge into customers); then each new")
    console.say(f"order is an insert_one plus an update_one $inc. For {computed.new_orders} new orders:")
    console.table(
        ["write path", "time"],
        [
            ("insert_one of the orders", console.seconds(computed.insert_seconds)),
            ("update_one $inc of the totals", console.seconds(computed.inc_seconds)),
        ],
    )
    console.say(f"Reading the top {TOP_CUSTOMERS} customers by spend (best of 5):")
    console.table(
        ["read path", "documents behind the answer", "time"],
        [
            ("$group over every order", computed.orders_grouped, console.seconds(computed.group_seconds)),
            ("find on the stored totals", computed.customers_read, console.seconds(computed.stored_seconds)),
        ],
    )
    console.compare("the $group", computed.group_seconds, "the stored totals", computed.stored_seconds)
    console.say(
        f"stored totals of {computed.customers_compared} customers equal to a fresh $group: {computed.totals_equal}; "
        f"same top {TOP_CUSTOMERS}: {computed.top_equal}"
    )

    console.step(f"A monthly report materialized with $merge into `{REPORT}`, then refreshed in place")
    report = monthly_report(db, data)
    console.say(
        f"{N_LATE_ORDERS} late orders dated {report.month} arrive; the $merge runs again for that month only."
    )
    console.table(
        ["report document", "orders", "revenue", "customers"],
        [
            (f"{report.month} before", report.before["orders"], money(report.before["revenue_cents"]),
             report.before["customers"]),
            (f"{report.month} after", report.after["orders"], money(report.after["revenue_cents"]),
             report.after["customers"]),
        ],
    )  # fmt: skip
    console.say(
        f"report documents: {report.documents_first} before, {report.documents_after_rerun} after, "
        f"rewritten by the second $merge: {', '.join(report.rewritten_months)}; "
        f"other months unchanged: {report.other_months_unchanged}; "
        f"equal to a full recomputation: {report.equals_fresh_group}"
    )

    return AggregationResult(counts, by_month, products, facets, computed, report)


def money(cents: int) -> str:
    return f"{cents / 100:,.2f}"


def main() -> int:
    require(*REQUIRES)
    with pymongo.MongoClient(mongo_url(), serverSelectionTimeoutMS=CONNECT_TIMEOUT_S * 1000) as client:
        result = run(client)
    report = result.report
    refreshed = report.rewritten_months == [report.month] and report.equals_fresh_group
    return 0 if refreshed and result.computed.totals_equal else 1


if __name__ == "__main__":
    raise SystemExit(main())

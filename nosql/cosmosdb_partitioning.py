"""Cosmos DB partitioning: the partition key, request units, cross-partition queries and consistency

A Cosmos DB container is spread over physical partitions by its partition key: every item with the
same key value is one logical partition (at most 20 GB, served by one physical partition), so the
key decides how far the container can grow and which queries stay on one partition. The lesson
loads the same orders into two containers, one keyed by customer (high cardinality: many small
logical partitions) and one by status (low cardinality: four partitions, one of them hot), and
counts the logical partitions of each. It reads the request-unit charge of every call from the
`x-ms-request-charge` response header, runs one customer's orders as a single-partition query (the
key in the filter and in the request) against the same query fanned out to every partition, and
shows what the five consistency levels promise, with the session token a write hands back.
Cosmos DB for MongoDB (a shard key, charges through getLastRequestStatistics) runs where
COSMOS_MONGO_URL is set; no emulator here serves that API, so otherwise it is explained.

Engine: Azure Cosmos DB, NoSQL API (COSMOS_URL, COSMOS_KEY; the vnext emulator in compose, Cosmium
locally), database `cosmosdb_partitioning`; optionally COSMOS_MONGO_URL.
Run: `make up SERVICES=cosmosdb` (or `make local-up`), then `python nosql/cosmosdb_partitioning.py`.
Look for: nearly 100 logical partitions against 4 with over half the items in one, the same orders
from one partition as from all of them, and which headers (charges, session token) this server sends.
"""

from __future__ import annotations

import contextlib
import logging
import random
import warnings
from collections import Counter
from dataclasses import dataclass, field

from azure.cosmos import CosmosClient, PartitionKey, exceptions

from common import console
from common.settings import UNAVAILABLE, BadSetting, cosmos_client_options, cosmos_mongo_url, require

REQUIRES = ("cosmosdb",)
DATABASE = "cosmosdb_partitioning"
SEED = 11
N_ORDERS, N_CUSTOMERS = 400, 100
# Skewed on purpose: most orders end up delivered, as in a real shop.
STATUSES = {"delivered": 0.55, "shipped": 0.2, "paid": 0.15, "pending": 0.1}
CUSTOMER = "c042"
# One container per partition key choice.
CONTAINERS = {"customerId": "orders_by_customer", "status": "orders_by_status"}
ALL_ITEMS = "SELECT * FROM c"
BY_CUSTOMER = "SELECT c.id FROM c WHERE c.customerId = @customer"
ALL_IDS = "SELECT VALUE c.id FROM c"

CONSISTENCY = [
    ("Strong", "reads see the latest committed write, in every region (linearizable)"),
    ("Bounded Staleness", "reads lag writes by at most K versions or T seconds, in order"),
    ("Session", "one client (one session token) reads its own writes, in order; the default"),
    ("Consistent Prefix", "reads never see writes out of order, but may lag"),
    ("Eventual", "no order promised; replicas converge; the fewest request units"),
]


@dataclass
class PartitionFacts:
    key: str
    container: str
    items: int
    logical_partitions: int
    largest_partition: int  # items in the biggest logical partition


@dataclass
class QueryFacts:
    single_partition_ids: list[str]  # the key in the filter and in the request
    single_partition_keys: list[str]  # the customerId of every item it returned
    cross_partition_ids: list[str]  # the same filter, fanned out to every partition
    other_key_ids: list[str]  # the same filter on the container keyed by status: always a fan-out
    key_alone_count: int  # `SELECT VALUE c.id FROM c` with partition_key=CUSTOMER, no filter
    expected: int  # the customer's orders in the generated data


@dataclass
class PartitioningResult:
    partitions: list[PartitionFacts]
    queries: QueryFacts
    charges: dict[str, float | None]  # operation -> request units, None when not reported
    physical_partitions: int | None  # feed ranges of the customer container, None when not served
    default_consistency: str | None
    regions: int
    session_token: str | None
    mongo: dict | None = field(default=None)

    @property
    def charges_reported(self) -> bool:
        return any(charge is not None for charge in self.charges.values())

    def by_key(self, key: str) -> PartitionFacts:
        return next(facts for facts in self.partitions if facts.key == key)


def connect(options: dict | None = None) -> CosmosClient:
    with warnings.catch_warnings():  # the client reads the account at once (see run())
        warnings.filterwarnings("ignore", message="Unverified HTTPS request")
        return CosmosClient(**(options or cosmos_client_options()))


def generate(seed: int = SEED) -> list[dict]:
    rng = random.Random(seed)
    names, weights = list(STATUSES), list(STATUSES.values())
    return [
        {
            "id": f"o{number:04d}",
            "customerId": f"c{rng.randrange(N_CUSTOMERS):03d}",
            "status": rng.choices(names, weights)[0],
            "total": rng.randrange(500, 50_000) / 100,
        }
        for number in range(N_ORDERS)
    ]


def charge(container) -> float | None:
    """The request units the last call cost, from its x-ms-request-charge header (None: not sent)."""
    value = container.client_connection.last_response_headers.get("x-ms-request-charge")
    return float(value) if value is not None else None


def reset(client: CosmosClient):
    with contextlib.suppress(exceptions.CosmosResourceNotFoundError):
        client.delete_database(DATABASE)
    database = client.create_database(DATABASE)
    containers = {
        key: database.create_container(name, partition_key=PartitionKey(path=f"/{key}"))
        for key, name in CONTAINERS.items()
    }
    return database, containers


def load(containers: dict, orders: list[dict]) -> dict[str, float | None]:
    write_charges: list[float | None] = []
    for order in orders:
        for container in containers.values():
            container.create_item(order)
            write_charges.append(charge(container))
    reported = [value for value in write_charges if value is not None]
    return {"create an item (mean)": sum(reported) / len(reported) if reported else None}


def count_partitions(containers: dict) -> list[PartitionFacts]:
    """Count each container's logical partitions by the partition key the server says it has."""
    facts = []
    for container in containers.values():
        properties = container.read()
        key = properties["partitionKey"]["paths"][0].lstrip("/")
        items = list(container.query_items(ALL_ITEMS, enable_cross_partition_query=True))
        values = Counter(item[key] for item in items)
        facts.append(PartitionFacts(key, properties["id"], len(items), len(values), max(values.values())))
    return facts


def physical_partitions(container) -> int | None:
    """Feed ranges are the physical partitions; a stand-in may not serve their signed read."""
    sdk_log = logging.getLogger("azure.cosmos")
    level = sdk_log.level
    sdk_log.setLevel(logging.CRITICAL)  # the SDK logs the refusal as an error before raising it
    try:
        return len(list(container.read_feed_ranges()))
    except (exceptions.CosmosHttpResponseError, AttributeError):
        return None
    finally:
        sdk_log.setLevel(level)


def compare_queries(containers: dict, orders: list[dict], charges: dict) -> QueryFacts:
    by_customer, by_status = containers["customerId"], containers["status"]
    parameters = [{"name": "@customer", "value": CUSTOMER}]
    single = list(by_customer.query_items(BY_CUSTOMER, parameters=parameters, partition_key=CUSTOMER))
    charges["query, one partition (key in the filter)"] = charge(by_customer)
    cross = list(
        by_customer.query_items(BY_CUSTOMER, parameters=parameters, enable_cross_partition_query=True)
    )
    charges["query, every partition (same filter)"] = charge(by_customer)
    other = list(by_status.query_items(BY_CUSTOMER, parameters=parameters, enable_cross_partition_query=True))
    charges["query on the status container (fan-out)"] = charge(by_status)
    key_alone = list(by_customer.query_items(ALL_IDS, partition_key=CUSTOMER))
    first = single[0]["id"] if single else orders[0]["id"]
    by_customer.read_item(first, partition_key=CUSTOMER)
    charges["point read (id + partition key)"] = charge(by_customer)
    keys = [by_customer.read_item(row["id"], partition_key=CUSTOMER)["customerId"] for row in single]
    return QueryFacts(
        single_partition_ids=sorted(row["id"] for row in single),
        single_partition_keys=keys,
        cross_partition_ids=sorted(row["id"] for row in cross),
        other_key_ids=sorted(row["id"] for row in other),
        key_alone_count=len(key_alone),
        expected=sum(order["customerId"] == CUSTOMER for order in orders),
    )


def session_token_of_a_write(container) -> str | None:
    container.upsert_item({"id": "session-probe", "customerId": CUSTOMER, "status": "pending", "total": 0})
    token = container.client_connection.last_response_headers.get("x-ms-session-token")
    # Reading with that token asks any replica for a state at least as new as the write.
    container.read_item("session-probe", partition_key=CUSTOMER, session_token=token)
    container.delete_item("session-probe", partition_key=CUSTOMER)
    return token


def mongo_part(url: str) -> dict:
    """Cosmos DB for MongoDB: a shard key makes the collection partitioned; charges via a command."""
    from pymongo import MongoClient

    with MongoClient(url, serverSelectionTimeoutMS=10_000) as mongo:
        database = mongo[DATABASE]
        mongo.drop_database(DATABASE)
        database.command(
            {"customAction": "CreateCollection", "collection": "orders", "shardKey": "customerId"}
        )
        database.orders.insert_many(generate()[:50])
        insert_charge = database.command({"getLastRequestStatistics": 1}).get("RequestCharge")
        found = database.orders.count_documents({"customerId": CUSTOMER})
        read_charge = database.command({"getLastRequestStatistics": 1}).get("RequestCharge")
        mongo.drop_database(DATABASE)
    return {"insert_charge": insert_charge, "count_charge": read_charge, "found": found}


def show_partitions(facts: list[PartitionFacts], physical: int | None) -> None:
    console.table(
        ["key", "container", "items", "logical partitions", "largest", "share"],
        [
            (
                f"/{f.key}",
                f.container,
                f.items,
                f.logical_partitions,
                f.largest_partition,
                f"{f.largest_partition / f.items:.0%}",
            )
            for f in facts
        ],
    )
    console.say(
        "A logical partition lives on one physical partition (10,000 RU/s and 50 GB each in the service):"
        " keyed by status, the delivered orders all land on one and it becomes the hot spot; keyed by"
        " customer, load spreads over many small partitions and none nears the 20 GB limit."
    )
    console.say(
        f"Physical partitions (feed ranges) of the customer container: {physical}"
        if physical is not None
        else "This server did not serve the container's partition key ranges (feed ranges)."
    )


def show_queries(facts: QueryFacts) -> None:
    console.table(
        ["query", "orders of " + CUSTOMER],
        [
            ("partition_key=customer, key in the filter", len(facts.single_partition_ids)),
            ("enable_cross_partition_query, same filter", len(facts.cross_partition_ids)),
            ("container keyed by status (must fan out)", len(facts.other_key_ids)),
            ("partition_key=customer, no filter", facts.key_alone_count),
        ],
    )
    if facts.key_alone_count == facts.expected:
        console.say(
            "The partition key alone scoped the query to that logical partition, as the service does."
        )
    else:
        console.say(
            f"This server ignored the partition key of the request ({facts.key_alone_count} items, not"
            f" {facts.expected}): the service would answer from that partition alone. Keep the key in the filter."
        )


def show_charges(charges: dict[str, float | None]) -> None:
    console.table(
        ["operation", "request units"],
        [(name, f"{value:.2f}" if value is not None else "not reported") for name, value in charges.items()],
    )
    if any(value is not None for value in charges.values()):
        console.say("These are the emulator's charges: the service's are of the same order, not the same.")
    else:
        console.say(
            "This server sends no x-ms-request-charge header. In the service a 1 KB point read costs"
            " 1 RU; a query costs more, and a fan-out pays a little on every partition it visits."
        )


def show_consistency(result: PartitioningResult) -> None:
    console.table(["level", "what a read is promised"], CONSISTENCY)
    console.say(
        f"Account default: {result.default_consistency or 'not reported'}; regions: {result.regions}."
        " With one region every level reads the same data: the differences need replicas in other"
        " regions. A client may ask for a weaker level than the account's, never a stronger one."
    )
    if result.session_token:
        console.say(f"A write returned session token {result.session_token!r}; the next read sent it back.")
    else:
        console.say("This server returns no x-ms-session-token: Session consistency cannot be shown here.")


def show_mongo(mongo: dict | None) -> None:
    if mongo is None:
        console.say(
            "COSMOS_MONGO_URL is not set. Cosmos DB for MongoDB speaks the MongoDB wire protocol: a"
            " collection gets its partition key as a shard key (customAction CreateCollection with"
            " shardKey, or shardCollection), and each command's charge comes from"
            " db.command({'getLastRequestStatistics': 1})['RequestCharge']."
        )
        return
    console.table(["MongoDB API call", "value"], sorted(mongo.items()))


def run(client: CosmosClient, mongo_url: str | None = None) -> PartitioningResult:
    with warnings.catch_warnings():
        # An emulator's self-signed certificate (not verified on loopback): urllib3 warns on every request.
        warnings.filterwarnings("ignore", message="Unverified HTTPS request")
        return _run(client, mongo_url)


def _run(client: CosmosClient, mongo_url: str | None) -> PartitioningResult:
    console.title("Cosmos DB partitioning: partition key, request units, queries, consistency")
    orders = generate()

    console.step("Reset the database and create one container per partition key")
    database, containers = reset(client)
    console.say(f"Database {database.id}: " + ", ".join(f"{name} (/{k})" for k, name in CONTAINERS.items()))

    console.step("Load the same orders into both containers")
    charges = load(containers, orders)

    console.step("Count the logical partitions of each partition key choice")
    partitions = count_partitions(containers)
    physical = physical_partitions(containers["customerId"])
    show_partitions(partitions, physical)

    console.step("One partition against every partition: the same customer's orders")
    queries = compare_queries(containers, orders, charges)
    show_queries(queries)

    console.step("Request units read from the response headers")
    show_charges(charges)

    console.step("Consistency levels and the session token")
    account = client.get_database_account()
    policy = getattr(account, "ConsistencyPolicy", None) or {}
    result = PartitioningResult(
        partitions=partitions,
        queries=queries,
        charges=charges,
        physical_partitions=physical,
        default_consistency=policy.get("defaultConsistencyLevel"),
        regions=len(getattr(account, "ReadableLocations", None) or []),
        session_token=session_token_of_a_write(containers["customerId"]),
    )
    show_consistency(result)

    console.step("Cosmos DB for MongoDB: shard key and request charge")
    result.mongo = mongo_part(mongo_url) if mongo_url else None
    show_mongo(result.mongo)
    return result


def main() -> int:
    require(*REQUIRES)
    try:
        mongo_url = cosmos_mongo_url()
    except BadSetting as bad:
        console.error(str(bad))
        return UNAVAILABLE
    result = run(connect(), mongo_url)
    customer, status = result.by_key("customerId"), result.by_key("status")
    queries = result.queries
    return (
        0
        if (
            customer.logical_partitions > status.logical_partitions
            and queries.single_partition_ids == queries.cross_partition_ids
        )
        else 1
    )


if __name__ == "__main__":
    raise SystemExit(main())

"""DynamoDB single-table design: customers, orders and order items in one table, one request per access pattern

DynamoDB has no joins and no ad-hoc queries: a table is designed from the list of questions it must
answer. This lesson lists those questions first, then keys one table so that each is a single
GetItem or Query: a customer under PK `CUSTOMER#<id>`, an order and its items together under PK
`ORDER#<id>` (one item collection), and two global secondary indexes that re-key the orders, by
status (GSI1PK/GSI1SK) and by customer, newest first (GSI2PK/GSI2SK). It then rejects a duplicate
with a conditional write, pages through a long result with Limit and LastEvaluatedKey, and keeps
a unique email and an order's items all-or-nothing with TransactWriteItems. Round trips are
counted from the requests the client really sent. GSI reads are eventually consistent: after the
load the lesson polls the indexes (bounded) until they hold every order, as a reader of the real
service must expect a moment's lag.

Engine: DynamoDB (DYNAMODB_URL; DynamoDB Local in compose, moto locally), table `dynamodb_single_table`.
Run: `make up SERVICES=dynamodb` (or `make local-up`), then `python nosql/dynamodb_single_table.py`.
Look for: the access-pattern table (every pattern one round trip, except the paged one), the
ConditionalCheckFailedException, and the cancelled transaction that wrote nothing.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field
from datetime import date, timedelta

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.config import Config
from botocore.exceptions import ClientError

from common import console
from common.settings import CONNECT_TIMEOUT_S, dynamodb_url, require

REQUIRES = ("dynamodb",)
TABLE = "dynamodb_single_table"
REGION = "us-east-1"
SEED = 3
N_CUSTOMERS, N_ORDERS = 30, 300
STATUSES = ["pending", "paid", "shipped", "delivered"]
FIRST_DAY = date(2024, 1, 1)
PAGE_SIZE = 25
BATCH_SIZE = 25  # BatchWriteItem's limit per request
CUSTOMER, ORDER = "c0007", "o00042"
SHIPPED_MONTH = "2024-03"
WAIT = {"Delay": 1, "MaxAttempts": 60}
INDEX_POLL_S, INDEX_POLL_LIMIT_S = 0.5, 60.0
TO_DYNAMO, FROM_DYNAMO = TypeSerializer(), TypeDeserializer()

# The questions the table must answer, decided before any key is named. A GSIn key means the
# query names IndexName GSIn; otherwise it reads the table itself.
ACCESS_PATTERNS = [
    ("get a customer", "PK=CUSTOMER#<id> AND SK=PROFILE"),
    ("a customer's orders", "GSI2PK=CUSTOMER#<id>, newest first"),
    ("an order with its items", "PK=ORDER#<id>"),
    (f"shipped in {SHIPPED_MONTH}", f"GSI1PK=STATUS#shipped AND begins_with(GSI1SK, {SHIPPED_MONTH})"),
    ("every pending order", f"GSI1PK=STATUS#pending, Limit {PAGE_SIZE} a page"),
]


@dataclass
class PatternRun:
    pattern: str
    key_condition: str
    items: int
    round_trips: int


@dataclass
class ConditionalFacts:
    first_put: str
    duplicate_put: str  # the error code DynamoDB returned
    unconditional_overwrote: bool  # a plain PutItem replaced the item and said nothing


@dataclass
class TransactionFacts:
    supported: bool
    unique_email_first: str = ""
    unique_email_duplicate: str = ""
    duplicate_reasons: list[str] = field(default_factory=list)
    duplicate_profile_written: bool = False
    order_placed_reasons: list[str] = field(default_factory=list)  # [] when it committed
    order_placed_items: int = 0
    customer_order_count: int = 0
    orphan_order_reasons: list[str] = field(default_factory=list)
    orphan_order_items_written: int = 0


@dataclass
class SingleTableResult:
    items_loaded: int
    load_requests: int
    patterns: list[PatternRun]
    customer_orders_placed: list[str]  # GSI2SK of the customer's orders, in the order returned
    expected_customer_orders: int
    order_item_types: list[str]
    expected_order_lines: int
    shipped_in_month: int
    expected_shipped_in_month: int
    pending_pages: list[int]  # items per page
    expected_pending: int
    conditional: ConditionalFacts
    transaction: TransactionFacts


class RequestCounter:
    """Counts the API calls the client makes: one round trip each, as the design intends.

    botocore may send a call again after a throttle or a dropped connection; that retry is the
    network's doing, not the table design's, so it is not counted ("before-call", not "before-send").
    """

    def __init__(self, client) -> None:
        self.sent = 0
        client.meta.events.register("before-call.dynamodb", self._count)

    def _count(self, **_) -> None:
        self.sent += 1


def connect(url: str):
    """A DynamoDB client for `url`; dummy credentials unless the environment supplies real ones."""
    credentials = {}
    if not (os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE")):
        credentials = {"aws_access_key_id": "examples", "aws_secret_access_key": "examples"}
    config = Config(connect_timeout=CONNECT_TIMEOUT_S, retries={"max_attempts": 3, "mode": "standard"})
    return boto3.client("dynamodb", endpoint_url=url, region_name=REGION, config=config, **credentials)


def to_item(values: dict) -> dict:
    return {name: TO_DYNAMO.serialize(value) for name, value in values.items()}


def from_item(item: dict) -> dict:
    return {name: FROM_DYNAMO.deserialize(value) for name, value in item.items()}


def recreate_table(client) -> None:
    try:
        client.delete_table(TableName=TABLE)
        client.get_waiter("table_not_exists").wait(TableName=TABLE, WaiterConfig=WAIT)
    except client.exceptions.ResourceNotFoundException:
        pass
    keys = ["PK", "SK", "GSI1PK", "GSI1SK", "GSI2PK", "GSI2SK"]
    client.create_table(
        TableName=TABLE,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": name, "AttributeType": "S"} for name in keys],
        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": index,
                "KeySchema": [
                    {"AttributeName": f"{index}PK", "KeyType": "HASH"},
                    {"AttributeName": f"{index}SK", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
            for index in ("GSI1", "GSI2")
        ],
    )
    client.get_waiter("table_exists").wait(TableName=TABLE, WaiterConfig=WAIT)


def customer_item(customer_id: str, name: str, email: str) -> dict:
    return {
        "PK": f"CUSTOMER#{customer_id}",
        "SK": "PROFILE",
        "type": "customer",
        "name": name,
        "email": email,
    }


def order_items(
    order_id: str, customer_id: str, placed: str, status: str, lines: list[tuple[str, int, int]]
) -> list[dict]:
    """The order header and its lines: one item collection under PK ORDER#<id>."""
    total = sum(quantity * price for _, quantity, price in lines)
    header = {
        "PK": f"ORDER#{order_id}",
        "SK": "ORDER",
        "type": "order",
        "customer": customer_id,
        "placed": placed,
        "status": status,
        "total_cents": total,
        # Only headers carry the index keys, so the indexes hold orders and nothing else.
        "GSI1PK": f"STATUS#{status}",
        "GSI1SK": f"{placed}#{order_id}",
        "GSI2PK": f"CUSTOMER#{customer_id}",
        "GSI2SK": f"{placed}#{order_id}",
    }
    items = [
        {
            "PK": f"ORDER#{order_id}",
            "SK": f"ITEM#{n:02d}",
            "type": "item",
            "sku": sku,
            "quantity": q,
            "price_cents": p,
        }
        for n, (sku, q, p) in enumerate(lines, start=1)
    ]
    return [header, *items]


def generate(seed: int = SEED) -> list[dict]:
    rng = random.Random(seed)
    rows = [
        customer_item(f"c{n:04d}", f"Customer {n}", f"customer{n}@example.com")
        for n in range(1, N_CUSTOMERS + 1)
    ]
    for n in range(1, N_ORDERS + 1):
        placed = (FIRST_DAY + timedelta(days=rng.randrange(366))).isoformat()
        lines = [
            (f"SKU-{rng.randint(1, 80):03d}", rng.randint(1, 3), rng.randint(199, 9999))
            for _ in range(rng.randint(1, 4))
        ]
        customer = f"c{rng.randint(1, N_CUSTOMERS):04d}"
        rows += order_items(f"o{n:05d}", customer, placed, rng.choice(STATUSES), lines)
    return rows


def load(client, rows: list[dict]) -> None:
    """BatchWriteItem, 25 items a request; whatever the server leaves unprocessed is sent again."""
    for start in range(0, len(rows), BATCH_SIZE):
        requests = {
            TABLE: [{"PutRequest": {"Item": to_item(row)}} for row in rows[start : start + BATCH_SIZE]]
        }
        while requests:
            requests = client.batch_write_item(RequestItems=requests).get("UnprocessedItems") or {}


def run_patterns(client, counter: RequestCounter) -> tuple[list[PatternRun], dict]:
    runs, seen = [], {}

    def record(index: int, items: int, before: int) -> None:
        runs.append(PatternRun(*ACCESS_PATTERNS[index], items, counter.sent - before))

    before = counter.sent
    customer = client.get_item(TableName=TABLE, Key=to_item({"PK": f"CUSTOMER#{CUSTOMER}", "SK": "PROFILE"}))
    record(0, 1 if "Item" in customer else 0, before)

    before = counter.sent
    orders = client.query(
        TableName=TABLE,
        IndexName="GSI2",
        KeyConditionExpression="GSI2PK = :customer",
        ExpressionAttributeValues=to_item({":customer": f"CUSTOMER#{CUSTOMER}"}),
        ScanIndexForward=False,  # the sort key starts with the date, so descending is newest first
    )["Items"]
    record(1, len(orders), before)
    seen["customer_orders"] = [from_item(item)["GSI2SK"] for item in orders]

    before = counter.sent
    order = client.query(
        TableName=TABLE,
        KeyConditionExpression="PK = :order",
        ExpressionAttributeValues=to_item({":order": f"ORDER#{ORDER}"}),
    )["Items"]
    record(2, len(order), before)
    seen["order_types"] = [from_item(item)["type"] for item in order]

    before = counter.sent
    shipped = client.query(
        TableName=TABLE,
        IndexName="GSI1",
        KeyConditionExpression="GSI1PK = :status AND begins_with(GSI1SK, :month)",
        ExpressionAttributeValues=to_item({":status": "STATUS#shipped", ":month": SHIPPED_MONTH}),
        ScanIndexForward=False,
    )["Items"]
    record(3, len(shipped), before)
    seen["shipped"] = len(shipped)

    before = counter.sent
    seen["pending_pages"] = pages_of(client, "STATUS#pending")
    record(4, sum(seen["pending_pages"]), before)
    return runs, seen


def pages_of(client, status: str) -> list[int]:
    """Follow LastEvaluatedKey until the server stops returning one; the size of each page."""
    pages, start = [], {}
    while True:
        page = client.query(
            TableName=TABLE,
            IndexName="GSI1",
            KeyConditionExpression="GSI1PK = :status",
            ExpressionAttributeValues=to_item({":status": status}),
            Limit=PAGE_SIZE,
            **start,
        )
        pages.append(page["Count"])
        if "LastEvaluatedKey" not in page:
            return pages
        start = {"ExclusiveStartKey": page["LastEvaluatedKey"]}


def conditional_writes(client) -> ConditionalFacts:
    item = to_item(customer_item("c0500", "New Customer", "new@example.com"))
    outcomes = []
    for _ in range(2):
        try:
            client.put_item(TableName=TABLE, Item=item, ConditionExpression="attribute_not_exists(PK)")
            outcomes.append("written")
        except client.exceptions.ConditionalCheckFailedException as refused:
            outcomes.append(refused.response["Error"]["Code"])
    replaced = client.put_item(TableName=TABLE, Item=item, ReturnValues="ALL_OLD")
    return ConditionalFacts(outcomes[0], outcomes[1], "Attributes" in replaced)


def cancellation_reasons(error: ClientError) -> list[str]:
    reasons = error.response.get("CancellationReasons")
    if reasons is not None:
        return [reason.get("Code", "None") for reason in reasons]
    # Some servers put the reasons only in the message: "... reasons [None, ConditionalCheckFailed]".
    message = error.response["Error"].get("Message", "")
    return [part.strip() for part in message.rpartition("[")[2].rstrip("]").split(",")]


def register_customer(client, customer_id: str, email: str) -> tuple[str, list[str]]:
    """The profile and an EMAIL#<address> item, both or neither: the email stays unique."""
    profile = customer_item(customer_id, f"Customer {customer_id}", email)
    claim = {"PK": f"EMAIL#{email}", "SK": "EMAIL", "type": "email", "customer": customer_id}
    try:
        client.transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": TABLE,
                        "Item": to_item(row),
                        "ConditionExpression": "attribute_not_exists(PK)",
                    }
                }
                for row in (profile, claim)
            ]
        )
        return "written", []
    except client.exceptions.TransactionCanceledException as cancelled:
        return cancelled.response["Error"]["Code"], cancellation_reasons(cancelled)


def place_order(client, order_id: str, customer_id: str, lines: list[tuple[str, int, int]]) -> list[str]:
    """Header, lines and the customer's order count in one transaction; [] when it committed."""
    rows = order_items(order_id, customer_id, "2024-12-31", "paid", lines)
    puts = [
        {"Put": {"TableName": TABLE, "Item": to_item(row), "ConditionExpression": "attribute_not_exists(PK)"}}
        for row in rows
    ]
    count = {
        "Update": {
            "TableName": TABLE,
            "Key": to_item({"PK": f"CUSTOMER#{customer_id}", "SK": "PROFILE"}),
            "UpdateExpression": "ADD order_count :one",
            "ConditionExpression": "attribute_exists(PK)",  # no order for a customer who does not exist
            "ExpressionAttributeValues": to_item({":one": 1}),
        }
    }
    try:
        client.transact_write_items(TransactItems=[*puts, count])
        return []
    except client.exceptions.TransactionCanceledException as cancelled:
        return cancellation_reasons(cancelled)


def transactions(client) -> TransactionFacts:
    try:
        first, _ = register_customer(client, "c0600", "ana@example.com")
    except ClientError as error:
        if error.response["Error"]["Code"] in ("UnknownOperationException", "NotImplementedException"):
            return TransactionFacts(supported=False)
        raise
    duplicate, reasons = register_customer(client, "c0601", "ana@example.com")
    duplicate_profile = client.get_item(
        TableName=TABLE, Key=to_item({"PK": "CUSTOMER#c0601", "SK": "PROFILE"})
    )

    lines = [("SKU-001", 1, 1250), ("SKU-002", 2, 480)]
    placed_reasons = place_order(client, "o90001", "c0600", lines)
    placed = count_collection(client, "ORDER#o90001")
    profile = from_item(
        client.get_item(TableName=TABLE, Key=to_item({"PK": "CUSTOMER#c0600", "SK": "PROFILE"}))["Item"]
    )
    orphan_reasons = place_order(client, "o90002", "c9999", lines)
    return TransactionFacts(
        supported=True,
        unique_email_first=first,
        unique_email_duplicate=duplicate,
        duplicate_reasons=reasons,
        duplicate_profile_written="Item" in duplicate_profile,
        order_placed_reasons=placed_reasons,
        order_placed_items=placed,
        customer_order_count=int(profile.get("order_count", 0)),
        orphan_order_reasons=orphan_reasons,
        orphan_order_items_written=count_collection(client, "ORDER#o90002"),
    )


def count_collection(client, partition: str) -> int:
    return client.query(
        TableName=TABLE,
        KeyConditionExpression="PK = :pk",
        ExpressionAttributeValues=to_item({":pk": partition}),
        Select="COUNT",
    )["Count"]


def index_count(client, index: str, partition: str) -> int:
    """Select COUNT on one GSI partition, following LastEvaluatedKey (a page stops at 1 MB read)."""
    total, start = 0, {}
    while True:
        page = client.query(
            TableName=TABLE,
            IndexName=index,
            KeyConditionExpression="#pk = :pk",
            ExpressionAttributeNames={"#pk": index + "PK"},
            ExpressionAttributeValues=to_item({":pk": partition}),
            Select="COUNT",
            **start,
        )
        total += page["Count"]
        if "LastEvaluatedKey" not in page:
            return total
        start = {"ExclusiveStartKey": page["LastEvaluatedKey"]}


def wait_for_indexes(client, expected: dict) -> int:
    """Poll the GSI partitions the patterns read until they hold what was written, for at most INDEX_POLL_LIMIT_S; the polls it took."""
    wanted = {
        ("GSI1", "STATUS#pending"): expected["pending"],
        ("GSI1", "STATUS#shipped"): expected["shipped_any_month"],
        ("GSI2", f"CUSTOMER#{CUSTOMER}"): expected["customer_orders"],
    }
    started, polls = time.monotonic(), 0
    while True:
        polls += 1
        if all(index_count(client, *key) == count for key, count in wanted.items()):
            return polls
        if time.monotonic() - started > INDEX_POLL_LIMIT_S:
            raise TimeoutError(f"the GSIs of {TABLE} did not settle within {INDEX_POLL_LIMIT_S} s")
        time.sleep(INDEX_POLL_S)


def expected_from(rows: list[dict]) -> dict:
    headers = [row for row in rows if row["type"] == "order"]
    return {
        "customer_orders": sum(1 for row in headers if row["customer"] == CUSTOMER),
        "order_lines": sum(1 for row in rows if row["PK"] == f"ORDER#{ORDER}"),
        "shipped": sum(
            1 for row in headers if row["status"] == "shipped" and row["placed"].startswith(SHIPPED_MONTH)
        ),
        "pending": sum(1 for row in headers if row["status"] == "pending"),
        "shipped_any_month": sum(1 for row in headers if row["status"] == "shipped"),
    }


def run(client) -> SingleTableResult:
    console.title("DynamoDB single-table design: one request per access pattern")
    counter = RequestCounter(client)

    console.step("List the access patterns first: the keys are derived from them")
    console.table(["access pattern", "key condition"], ACCESS_PATTERNS)

    console.step(f"Recreate table `{TABLE}`: PK/SK, GSI1 (orders by status), GSI2 (by customer)")
    recreate_table(client)
    console.table(
        ["item", "PK", "SK", "GSI1PK, GSI1SK", "GSI2PK, GSI2SK"],
        [
            ("customer", "CUSTOMER#<id>", "PROFILE", "", ""),
            ("order", "ORDER#<id>", "ORDER", "STATUS#<s>, <date>#<id>", "CUSTOMER#<id>, <date>#<id>"),
            ("order line", "ORDER#<id>", "ITEM#<nn>", "", ""),
        ],
    )
    console.say("only order headers carry GSI keys, so each index holds orders and nothing else")

    # The write path runs first, on a near-empty table: moto, the local stand-in, copies the
    # whole table for every item of a transaction, so a big table would make it slow.
    console.step("Conditional write: attribute_not_exists(PK) turns a silent overwrite into an error")
    conditional = conditional_writes(client)
    console.table(
        ["PutItem customer c0500", "outcome"],
        [
            ("first, with the condition", conditional.first_put),
            ("again, with the condition", conditional.duplicate_put),
            ("again, without it (ReturnValues ALL_OLD)",
             "old item replaced" if conditional.unconditional_overwrote else "no old item"),
        ],
    )  # fmt: skip

    console.step("TransactWriteItems: a unique email, and an order with its lines, all or nothing")
    transaction = transactions(client)
    if not transaction.supported:
        console.say("this server does not implement TransactWriteItems: step skipped")
    else:
        console.table(
            ["transaction", "outcome", "written"],
            [
                ("c0600 registers ana@example.com", transaction.unique_email_first, "profile, EMAIL# item"),
                ("c0601 registers the same email", _cancelled(transaction.duplicate_reasons),
                 "profile" if transaction.duplicate_profile_written else "nothing"),
                ("order o90001 for c0600", _cancelled(transaction.order_placed_reasons),
                 f"{transaction.order_placed_items} items, order_count {transaction.customer_order_count}"),
                ("order o90002 for missing c9999", _cancelled(transaction.orphan_order_reasons),
                 f"{transaction.orphan_order_items_written} items"),
            ],
        )  # fmt: skip
        console.say("reasons are per item, in order: only the failed condition says why")

    console.step("Load a year of orders with BatchWriteItem")
    rows = generate()
    before = counter.sent
    load(client, rows)
    load_requests = counter.sent - before
    console.say(
        f"{len(rows):,} items in {load_requests} requests ({BATCH_SIZE} a request, no conditions allowed)"
    )
    expected = expected_from(rows)
    polls = wait_for_indexes(client, expected)
    console.say(
        "A global secondary index is copied from the table asynchronously and its reads are eventually "
        f"consistent (ConsistentRead is refused on a GSI): counts polled {polls} time(s) until both indexes "
        "held every order. Right after a write, a GSI query may still miss it."
    )

    console.step("Run every access pattern, counting the requests actually sent")
    patterns, seen = run_patterns(client, counter)
    console.table(
        ["pattern", "key condition", "items", "round trips"],
        [(p.pattern, p.key_condition, p.items, p.round_trips) for p in patterns],
    )
    newest = ", ".join(placed[:10] for placed in seen["customer_orders"][:3])
    console.say(f"{CUSTOMER}'s orders, newest first: {newest}, ...")
    console.say(
        f"pending orders: {len(seen['pending_pages'])} pages of at most {PAGE_SIZE}: {seen['pending_pages']}"
    )

    return SingleTableResult(
        items_loaded=len(rows),
        load_requests=load_requests,
        patterns=patterns,
        customer_orders_placed=seen["customer_orders"],
        expected_customer_orders=expected["customer_orders"],
        order_item_types=seen["order_types"],
        expected_order_lines=expected["order_lines"],
        shipped_in_month=seen["shipped"],
        expected_shipped_in_month=expected["shipped"],
        pending_pages=seen["pending_pages"],
        expected_pending=expected["pending"],
        conditional=conditional,
        transaction=transaction,
    )


def _cancelled(reasons: list[str]) -> str:
    return "cancelled: " + ", ".join(reasons) if reasons else "committed"


def main() -> int:
    require(*REQUIRES)
    result = run(connect(dynamodb_url()))
    one_request = all(p.round_trips == 1 for p in result.patterns[:-1])
    refused = result.conditional.duplicate_put == "ConditionalCheckFailedException"
    atomic = not result.transaction.supported or result.transaction.orphan_order_items_written == 0
    return 0 if one_request and refused and atomic else 1


if __name__ == "__main__":
    raise SystemExit(main())

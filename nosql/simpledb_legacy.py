"""Amazon SimpleDB, the legacy key-value store: string attributes, lexicographic order, and why DynamoDB replaced it

SimpleDB (2007) stores items in domains; an item is a set of attribute name/value pairs where every
value is a string and a name may hold several values. A PutAttributes without Replace adds a value
instead of overwriting it; its `select` compares strings, so 100 sorts before 25 and numbers must be
stored zero-padded (with an offset for negatives) to compare as numbers. Reads are eventually
consistent unless ConsistentRead is asked for. The same books then go into DynamoDB through the
project's DynamoDB engine: typed attributes (N, SS), a numeric sort key that the server orders.

What runs where: moto serves PutAttributes, GetAttributes, ListDomains and DeleteDomain, but answers
Select, BatchPutAttributes, DeleteAttributes and DomainMetadata with HTTP 500 (checked, December 2026,
moto 5.2.6), ignores ConsistentRead (one in-memory copy: no read is ever stale) and ignores Expected
(conditional puts). So the order `select` would return is computed here in Python, comparing the
stored strings exactly as SimpleDB's select does, and is labelled as such; the lesson still sends
select and batch put and reports what the server answered, so against a real SimpleDB the server's
order is shown beside the computed one.
Where AWS stands: SimpleDB stopped onboarding new customers (announced July 2024; AWS SDK maintainers
had called it "largely deprecated", not available to new accounts nor in newer regions); the newer
AWS SDKs (Java v2, Go v2, JavaScript v3) dropped it, boto3 still has it, signing with Signature
Version 2. AWS's answer for new work is DynamoDB: no 10 GB domain limit, typed values, indexes you
choose instead of every attribute indexed, predictable latency at any size.

Engine: moto (MOTO_URL), domain `simpledb_legacy`; DynamoDB (DYNAMODB_URL), table `simpledb_legacy`.
Run: `make up SERVICES="moto dynamodb"` (or `make local-up`), then `python nosql/simpledb_legacy.py`.
Look for: the tags with 3 values and the price with 2 after a put without Replace, the string order
-5, 10, 100, 25, 9 against the padded 5 numbers in order, "select: HTTP 500", and DynamoDB's Query
returning 9, 10, 25, 100 by itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.parsers import ResponseParserError

from common import console
from common.settings import CONNECT_TIMEOUT_S, dynamodb_url, moto_url, require

REQUIRES = ("moto", "dynamodb")
DOMAIN = TABLE = "simpledb_legacy"
REGION = "us-east-1"
OFFSET, WIDTH = 100_000, 6  # stored = value + OFFSET, zero-padded: -99,999 to 899,999 compare as numbers
BOOKS = {  # item name -> price (a plain number), tags (several values)
    "book-1": (9, ["databases", "history"]),
    "book-2": (10, ["aws"]),
    "book-3": (25, ["databases", "aws", "nosql"]),
    "book-4": (100, ["nosql"]),
    "book-5": (-5, ["refund"]),  # a credit note: negative
}
THRESHOLD = 25
# price > 25 on the encoded strings ('100025' is encode(25)), as an application must write it.
SELECT = "select price from `simpledb_legacy` where price > '100025' order by price"


@dataclass
class SimpleDBResult:
    item_attributes: dict[str, list[str]]  # name -> values, read back
    price_values_after_plain_put: list[str]  # a put without Replace adds a value
    price_values_after_replace: list[str]
    string_order: list[int]  # prices in the order SimpleDB's select would sort their plain strings
    encoded_order: list[int]  # the same, stored zero-padded with an offset
    string_above: list[int]  # price > '25' compared as plain strings
    encoded_above: list[int]  # the same comparison on the encoded strings
    server_answers: dict[str, str]  # operation -> "ok" or "HTTP <status>"
    server_order: list[int] | None  # what select returned, when the server ran it
    puts_sent: int  # PutAttributes requests for the books (batch put refused, or not)
    consistent_read: list[str]
    eventual_read: list[str]
    expected_ignored: bool  # a conditional put whose condition was false was applied anyway
    signature_version: str
    dynamodb_order: list[int]  # prices in the order DynamoDB's Query returned them
    dynamodb_types: dict[str, str]  # attribute -> DynamoDB type, read back

    @property
    def holds(self) -> bool:
        return self.string_order != self.encoded_order == sorted(self.encoded_order) == self.dynamodb_order


class StatusMeter:
    """The HTTP status of each response, before botocore parses it (moto's 500s are HTML, not XML)."""

    def __init__(self, client) -> None:
        self.last: dict[str, int] = {}
        client.meta.events.register("before-parse", self._record)

    def _record(self, operation_model, response_dict, **_) -> None:
        self.last[operation_model.name] = response_dict["status_code"]


def clients(moto: str, dynamodb: str) -> tuple:
    config = Config(connect_timeout=CONNECT_TIMEOUT_S, retries={"max_attempts": 1})  # a 500 is not retried
    credentials = {
        "region_name": REGION,
        "aws_access_key_id": "examples",
        "aws_secret_access_key": "examples",
    }
    return (
        boto3.client("sdb", endpoint_url=moto, config=config, **credentials),
        boto3.client("dynamodb", endpoint_url=dynamodb, **credentials),
    )


def encode(price: int) -> str:
    return f"{price + OFFSET:0{WIDTH}d}"


def decode(stored: str) -> int:
    return int(stored) - OFFSET


def values(sdb, item: str, name: str, consistent: bool = True) -> list[str]:
    found = sdb.get_attributes(
        DomainName=DOMAIN, ItemName=item, AttributeNames=[name], ConsistentRead=consistent
    )
    return [attribute["Value"] for attribute in found.get("Attributes", [])]


def attempt(meter: StatusMeter, operation: str, call) -> tuple[str, dict | None]:
    try:
        return "ok", call()
    except (ClientError, ResponseParserError) as error:
        code = getattr(error, "response", {}).get("Error", {}).get("Code", "")
        return f"HTTP {meter.last.get(operation, '?')}{' ' + code if code else ''}", None


def attribute_model(sdb) -> tuple[dict, list[str], list[str]]:
    price, tags = BOOKS["book-3"]
    pairs = [{"Name": "price", "Value": str(price)}, *({"Name": "tags", "Value": tag} for tag in tags)]
    sdb.put_attributes(DomainName=DOMAIN, ItemName="book-3", Attributes=pairs)
    found = sdb.get_attributes(DomainName=DOMAIN, ItemName="book-3", ConsistentRead=True)["Attributes"]
    read_back: dict[str, list[str]] = {}
    for attribute in found:
        read_back.setdefault(attribute["Name"], []).append(attribute["Value"])
    sdb.put_attributes(DomainName=DOMAIN, ItemName="book-3", Attributes=[{"Name": "price", "Value": "30"}])
    after_plain = values(sdb, "book-3", "price")
    sdb.put_attributes(
        DomainName=DOMAIN,
        ItemName="book-3",
        Attributes=[{"Name": "price", "Value": str(price), "Replace": True}],
    )
    return read_back, after_plain, values(sdb, "book-3", "price")  # fmt: skip


def load_books(sdb, meter: StatusMeter) -> tuple[str, int]:
    """BatchPutAttributes (up to 25 items a request), else one PutAttributes per item."""
    items = [
        {"Name": name, "Attributes": [{"Name": "price", "Value": encode(price), "Replace": True}]}
        for name, (price, _tags) in BOOKS.items()
    ]
    answer, _ = attempt(
        meter, "BatchPutAttributes", lambda: sdb.batch_put_attributes(DomainName=DOMAIN, Items=items)
    )
    if answer == "ok":
        return answer, 0
    for item in items:
        sdb.put_attributes(DomainName=DOMAIN, ItemName=item["Name"], Attributes=item["Attributes"])
    return answer, len(items)  # fmt: skip


def dynamodb_contrast(dynamo) -> tuple[list[int], dict[str, str]]:
    """The same books in DynamoDB: price a Number sort key, tags a String Set."""
    try:
        dynamo.delete_table(TableName=TABLE)
        dynamo.get_waiter("table_not_exists").wait(
            TableName=TABLE, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
        )
    except dynamo.exceptions.ResourceNotFoundException:
        pass
    dynamo.create_table(
        TableName=TABLE, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "shelf", "AttributeType": "S"}, {"AttributeName": "price", "AttributeType": "N"}],
        KeySchema=[{"AttributeName": "shelf", "KeyType": "HASH"}, {"AttributeName": "price", "KeyType": "RANGE"}],
    )  # fmt: skip
    dynamo.get_waiter("table_exists").wait(TableName=TABLE, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    for name, (price, tags) in BOOKS.items():
        item = {
            "shelf": {"S": "books"},
            "price": {"N": str(price)},
            "item": {"S": name},
            "tags": {"SS": tags},
        }
        dynamo.put_item(TableName=TABLE, Item=item)
    found = dynamo.query(
        TableName=TABLE, KeyConditionExpression="shelf = :shelf", ExpressionAttributeValues={":shelf": {"S": "books"}}
    )["Items"]  # fmt: skip
    types = {name: next(iter(value)) for name, value in found[0].items()}
    return [int(item["price"]["N"]) for item in found], types


def run(sdb, dynamo) -> SimpleDBResult:
    console.title("Amazon SimpleDB: the attribute model, string comparison, and DynamoDB beside it")
    meter = StatusMeter(sdb)
    sdb.delete_domain(DomainName=DOMAIN)  # no error when it does not exist, as on SimpleDB
    sdb.create_domain(DomainName=DOMAIN)

    console.step(f"An item's attributes in domain `{DOMAIN}`: strings only, several values per name")
    read_back, after_plain, after_replace = attribute_model(sdb)
    console.table(
        ["attribute", "values read back"], [(name, ", ".join(found)) for name, found in read_back.items()]
    )
    console.say(f"price after a put of 30 without Replace: {after_plain}; after Replace: {after_replace}")

    console.step("Every value is a string: select compares them as strings, so numbers must be encoded")
    prices = {name: price for name, (price, _) in BOOKS.items()}
    string_order = sorted(prices.values(), key=str)
    encoded_order = sorted(prices.values(), key=encode)
    string_above = [p for p in string_order if str(p) > str(THRESHOLD)]
    encoded_above = [p for p in encoded_order if encode(p) > encode(THRESHOLD)]
    console.table(["stored as", "sorted (computed here, as select compares)", f"> {THRESHOLD}"], [
        ("plain string", ", ".join(map(str, string_order)), ", ".join(map(str, string_above))),
        (f"+{OFFSET:,}, {WIDTH} digits", ", ".join(map(str, encoded_order)), ", ".join(map(str, encoded_above)))])  # fmt: skip
    answers = {}
    answers["BatchPutAttributes"], puts = load_books(sdb, meter)
    answers["Select"], selected = attempt(
        meter, "Select", lambda: sdb.select(SelectExpression=SELECT, ConsistentRead=True)
    )
    server_order = (
        None
        if selected is None
        else [decode(a["Value"]) for i in selected.get("Items", []) for a in i["Attributes"]]
    )
    console.say(f"sent: {SELECT}")
    console.table(["operation", "server's answer"], answers.items())
    console.say(
        f"Batch put refused: the books went in as {puts} PutAttributes." if puts else "Batch put accepted."
    )
    if server_order is not None:
        console.say(f"The server's select order: {server_order}")  # fmt: skip

    console.step("Eventually consistent reads by default; ConsistentRead=True for the latest write")
    sdb.put_attributes(
        DomainName=DOMAIN,
        ItemName="book-2",
        Attributes=[{"Name": "price", "Value": encode(12), "Replace": True}],
    )
    consistent, eventual = values(sdb, "book-2", "price"), values(sdb, "book-2", "price", consistent=False)
    console.say(
        f"right after a write of 12: consistent {[decode(v) for v in consistent]}, eventual {[decode(v) for v in eventual]}"
    )
    console.say(
        "On SimpleDB the eventual read may return the old value for about a second; moto keeps one copy."
    )
    sdb.put_attributes(DomainName=DOMAIN, ItemName="book-2", Attributes=[{"Name": "price", "Value": encode(15), "Replace": True}],
                       Expected={"Name": "price", "Value": encode(999)})  # fmt: skip
    ignored = values(sdb, "book-2", "price") == [encode(15)]
    console.say(f"a put with Expected price=999 (false) applied anyway: {ignored}; SimpleDB would refuse it.")

    console.step(f"The same books in DynamoDB (table `{TABLE}`): typed attributes, a numeric sort key")
    dynamodb_order, types = dynamodb_contrast(dynamo)
    console.table(["attribute", "DynamoDB type"], types.items())
    console.say(f"Query on the shelf returns prices in the server's order: {dynamodb_order}")
    signature = sdb.meta.service_model.signature_version
    console.say(
        f"boto3 signs SimpleDB requests with {signature}; SimpleDB stopped onboarding new customers in 2024."
    )

    return SimpleDBResult(read_back, after_plain, after_replace, string_order, encoded_order, string_above, encoded_above,
                          answers, server_order, puts, consistent, eventual, ignored, signature, dynamodb_order, types)  # fmt: skip


def main() -> int:
    require(*REQUIRES)
    result = run(*clients(moto_url(), dynamodb_url()))
    return 0 if result.holds else 1


if __name__ == "__main__":
    raise SystemExit(main())

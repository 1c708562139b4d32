"""Polymorphic documents in MongoDB: several kinds in one collection, indexed, validated and versioned per kind

One collection can hold documents of different shapes when they share a purpose: here a shop's
books, films and games, told apart by a `kind` field, sharing name and price, each with fields of
its own. This lesson queries across kinds and within one; gives each kind its own partial index
(`partialFilterExpression` on the kind), which indexes only that kind's documents and is used only
by queries that name the kind; enforces per-kind rules with a `$jsonSchema` validator whose `oneOf`
holds one branch per kind, and shows the exact refusal (WriteError code 121 and its errInfo); and
evolves the schema with a `schema_version` field: version 1 documents are upgraded in code when
read and written back lazily, so the collection migrates as it is used.

Engine: MongoDB (MONGO_URL), database `mongodb_polymorphic_schemas`. Needs a real MongoDB for three
parts, and detects them at run time: the local stand-in accepts the validator but does not enforce
it, builds a partial index over every document (so the unique ISBN index fails on the films and
games that have none), and has no explain. The lesson says so and goes on.
Run: `make up SERVICES=mongodb` (or `make local-up`), then `python nosql/mongodb_polymorphic_schemas.py`.
Look for: "code 121" with the missing field named, the game query that names its kind using the
partial index while the one that does not is a COLLSCAN, and version 1 documents counting down as
they are read.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from decimal import Decimal

import pymongo
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError, OperationFailure, WriteError

from common import console
from common.settings import CONNECT_TIMEOUT_S, mongo_url, require

REQUIRES = ("mongodb",)
DATABASE = "mongodb_polymorphic_schemas"
SEED = 41
KINDS = ["book", "film", "game"]  # the order of the validator's oneOf branches
COUNTS_V2 = {"book": 150, "film": 120, "game": 90}
COUNTS_V1 = {"book": 25, "film": 20, "game": 15}  # written by the previous version of the application
CHEAP_CENTS = 1_000
PAGE = 30  # products read through the migrating reader
AUTHORS = [
    "Ada Byron",
    "Karel Capek",
    "Clarice Lispector",
    "Italo Calvino",
    "Ursula Le Guin",
    "Stanislaw Lem",
]
DIRECTORS = ["Agnes Varda", "Akira Kurosawa", "Satyajit Ray", "Chantal Akerman", "Wong Kar-wai"]
FORMATS = ["dvd", "bluray", "stream"]
PLATFORMS = ["switch", "ps5", "pc", "xbox"]
WORDS = ["Silent", "Glass", "River", "Northern", "Paper", "Iron", "Hidden", "Last", "Winter", "Golden"]
NOUNS = ["Garden", "Engine", "Harbour", "Letters", "Orbit", "Kingdom", "Signal", "Island", "Atlas"]

COMMON_RULES = {
    "bsonType": "object",
    "required": ["kind", "name", "price_cents", "schema_version"],
    "properties": {
        "kind": {"enum": KINDS},
        "name": {"bsonType": "string", "minLength": 1},
        "price_cents": {"bsonType": "int", "minimum": 0},
        "schema_version": {"enum": [2]},
    },
}
KIND_RULES = {
    "book": {
        "required": ["isbn", "author", "pages"],
        "properties": {
            "isbn": {"bsonType": "string", "pattern": "^97[89][0-9]{10}$"},
            "author": {"bsonType": "string"},
            "pages": {"bsonType": "int", "minimum": 1},
        },
    },
    "film": {
        "required": ["director", "runtime_minutes", "format"],
        "properties": {
            "director": {"bsonType": "string"},
            "runtime_minutes": {"bsonType": "int", "minimum": 1},
            "format": {"enum": FORMATS},
        },
    },
    "game": {
        "required": ["platform", "players"],
        "properties": {"platform": {"enum": PLATFORMS}, "players": {"bsonType": "int", "minimum": 1}},
    },
}
# One branch per kind: a document must satisfy exactly one, the one whose `kind` it carries.
VALIDATOR = {
    "$jsonSchema": {
        **COMMON_RULES,
        "oneOf": [
            {**rules, "properties": {"kind": {"enum": [kind]}, **rules["properties"]}}
            for kind, rules in KIND_RULES.items()
        ],
    }
}
PARTIAL_INDEXES = {
    "book_isbn": ([("isbn", 1)], {"unique": True, "partialFilterExpression": {"kind": "book"}}),
    "film_runtime": ([("runtime_minutes", 1)], {"partialFilterExpression": {"kind": "film"}}),
    "game_platform": ([("platform", 1), ("players", 1)], {"partialFilterExpression": {"kind": "game"}}),
}
# Each is valid except for one rule: the validator must refuse it and say which.
BAD_DOCUMENTS = {
    "a book without an isbn": {"kind": "book", "name": "Unnumbered", "price_cents": 1_500, "schema_version": 2,
                               "author": "Ada Byron", "pages": 120},
    "a film with a negative runtime": {"kind": "film", "name": "Backwards", "price_cents": 900, "schema_version": 2,
                                       "director": "Agnes Varda", "runtime_minutes": -5, "format": "dvd"},
}  # fmt: skip


@dataclass
class PartialIndexFacts:
    built: dict[str, bool]  # name -> created, and sized in collStats (the stand-in only lists some)
    covered: dict[str, int | None]  # name -> index entries (validate's keysPerIndex); None: not built
    sizes: dict[str, int] = field(compare=False)  # collStats indexSizes: bytes on MongoDB
    id_entries: int | None = None  # entries of the _id index: one per document
    other_kinds_admitted: bool = False  # films without an isbn inserted beside the unique book index
    duplicate_isbn_rejected: bool = False
    plan_naming_kind: str | None = None  # None where the server has no explain
    plan_without_kind: str | None = None


@dataclass
class Rejection:
    label: str
    kind: str
    code: int | None  # None: the server accepted the document
    message: str
    kind_branch: list[dict]  # the errInfo details of the oneOf branch for the document's kind


@dataclass
class Migration:
    v1_before: int
    read: int
    read_again: int
    upgraded_on_read: int
    written_back: int
    upgraded_on_second_read: int
    writes_on_second_read: int
    v1_after: int
    all_read_as_v2: bool
    cheap_found_before: int
    cheap_found_after: int


@dataclass
class PolymorphicResult:
    by_kind_and_version: dict[str, int]
    cheap_across_kinds: list[tuple[str, str, int]]  # kind, name, price
    within_kind: dict[str, int]
    partial: PartialIndexFacts
    validation_enforced: bool
    good_document_accepted: bool
    rejections: list[Rejection]
    migration: Migration


def make_product(rng: random.Random, kind: str, product_id: int, isbn: int) -> dict:
    doc = {"_id": product_id, "kind": kind, "name": f"{rng.choice(WORDS)} {rng.choice(NOUNS)}"}
    if kind == "book":
        doc |= {"isbn": f"978{isbn:010d}", "author": rng.choice(AUTHORS), "pages": rng.randint(80, 900)}
    elif kind == "film":
        doc |= {
            "director": rng.choice(DIRECTORS),
            "runtime_minutes": rng.randint(70, 200),
            "format": rng.choice(FORMATS),
        }
    else:
        doc |= {"platform": rng.choice(PLATFORMS), "players": rng.randint(1, 8)}
    return doc


def generate(seed: int = SEED) -> tuple[list[dict], list[dict]]:
    """(version 1 documents, version 2 documents). Version 1 kept the price as a string of euros."""
    rng = random.Random(seed)
    plan = [(kind, 1) for kind, n in COUNTS_V1.items() for _ in range(n)]
    plan += [(kind, 2) for kind, n in COUNTS_V2.items() for _ in range(n)]
    rng.shuffle(plan)
    isbns = rng.sample(range(10**9, 10**10), len(plan))
    v1, v2 = [], []
    for product_id, (kind, version) in enumerate(plan, start=1):
        doc = make_product(rng, kind, product_id, isbns[product_id - 1])
        cents = rng.randint(299, 8_999)
        if version == 1:
            v1.append({**doc, "price": f"{cents / 100:.2f}", "schema_version": 1})
        else:
            v2.append({**doc, "price_cents": cents, "schema_version": 2})
    return v1, v2


def load(db: Database, v1: list[dict], v2: list[dict]) -> Collection:
    db.client.drop_database(DATABASE)
    products = db.create_collection(
        "products", validator=VALIDATOR, validationLevel="strict", validationAction="error"
    )
    # The old documents predate the validator; an import tool copies them as they are.
    products.insert_many(v1, bypass_document_validation=True)
    products.insert_many(v2)
    return products


def counts_by_kind_and_version(products: Collection) -> dict[str, int]:
    pipeline = [{"$group": {"_id": {"kind": "$kind", "v": "$schema_version"}, "n": {"$sum": 1}}}]
    found = {f"{d['_id']['kind']} v{d['_id']['v']}": d["n"] for d in products.aggregate(pipeline)}
    return dict(sorted(found.items()))


def describe(doc: dict) -> str:
    """The kind-specific part of a product, the way a catalog page would show it."""
    if doc["kind"] == "book":
        return f"{doc['author']}, {doc['pages']} pages"
    if doc["kind"] == "film":
        return f"{doc['director']}, {doc['runtime_minutes']} min, {doc['format']}"
    return f"{doc['platform']}, {doc['players']} players"


def cheap_across_kinds(products: Collection) -> list[dict]:
    return list(products.find({"price_cents": {"$lt": CHEAP_CENTS}}).sort([("price_cents", 1), ("_id", 1)]))


def within_kind(products: Collection) -> dict[str, int]:
    queries = {
        "books by Italo Calvino": {"kind": "book", "author": "Italo Calvino"},
        "films over 150 minutes": {"kind": "film", "runtime_minutes": {"$gt": 150}},
        "switch games for 4+ players": {"kind": "game", "platform": "switch", "players": {"$gte": 4}},
    }
    return {label: products.count_documents(query) for label, query in queries.items()}


# --- partial indexes -------------------------------------------------------------------------------
def create_partial_indexes(products: Collection) -> dict[str, bool]:
    """name -> whether the server accepted it."""
    built = {}
    for name, (keys, options) in PARTIAL_INDEXES.items():
        try:
            products.create_index(keys, name=name, **options)
            built[name] = True
        except DuplicateKeyError:
            console.say(
                f"{name}: this server refused it: it indexes every kind, so missing ISBNs collide as null"
            )
            built[name] = False
    return built


def plan_stage(products: Collection, query: dict) -> str | None:
    """IXSCAN or COLLSCAN from the winning plan, or None where the server has no explain."""
    try:
        plan = products.find(query).explain()
    except OperationFailure:
        return None
    text = json.dumps(plan.get("queryPlanner", {}).get("winningPlan", {}), default=str)
    return "IXSCAN" if "IXSCAN" in text else "COLLSCAN" if "COLLSCAN" in text else text[:80]


def probe_partial_indexes(products: Collection, v2: list[dict]) -> tuple[bool, bool]:
    """Insert films without an isbn, then a book reusing one; clean up whatever got in."""
    template = next(doc for doc in v2 if doc["kind"] == "film")
    films = [{**template, "_id": f"probe-film-{n}", "name": f"Probe film {n}"} for n in (1, 2)]
    book = next(doc for doc in v2 if doc["kind"] == "book")
    duplicate = {**book, "_id": "probe-book", "name": "Same ISBN, another book"}
    try:
        products.insert_many(films)
        admitted = True
    except OperationFailure:
        admitted = False
    try:
        products.insert_one(duplicate)
        rejected = False
    except DuplicateKeyError:
        rejected = True
    products.delete_many({"_id": {"$in": [doc["_id"] for doc in [*films, duplicate]]}})
    return admitted, rejected


def partial_indexes(products: Collection, v2: list[dict]) -> PartialIndexFacts:
    created = create_partial_indexes(products)
    reported = products.database.command("collStats", products.name).get("indexSizes", {})
    sizes = {name: int(reported.get(name, 0)) for name in ["_id_", *PARTIAL_INDEXES]}
    built = {name: created[name] and sizes[name] > 0 for name in PARTIAL_INDEXES}
    # The entries each index holds, as the server counts them while it checks the collection.
    keys = products.database.command("validate", products.name).get("keysPerIndex", {})
    admitted, rejected = probe_partial_indexes(products, v2)
    return PartialIndexFacts(
        built=built,
        covered={name: keys.get(name) if built[name] else None for name in PARTIAL_INDEXES},
        id_entries=keys.get("_id_"),
        sizes=sizes,
        other_kinds_admitted=admitted,
        duplicate_isbn_rejected=rejected,
        plan_naming_kind=plan_stage(products, {"kind": "game", "platform": "switch"}),
        plan_without_kind=plan_stage(products, {"platform": "switch"}),
    )


# --- validation ---------------------------------------------------------------------------------------
def try_insert(products: Collection, label: str, doc: dict) -> Rejection:
    try:
        inserted = products.insert_one(dict(doc))
    except WriteError as refused:
        info = (refused.details or {}).get("errInfo", {})
        return Rejection(
            label, doc["kind"], refused.code, refused.details.get("errmsg", ""), kind_branch(info, doc)
        )
    products.delete_one({"_id": inserted.inserted_id})  # accepted: take it out again
    return Rejection(label, doc["kind"], None, "accepted", [])


def good_document_accepted(products: Collection, v2: list[dict]) -> bool:
    doc = {**next(d for d in v2 if d["kind"] == "game"), "_id": "probe-game", "name": "Valid game"}
    return try_insert(products, "a valid game", doc).code is None


def kind_branch(info: dict, doc: dict) -> list[dict]:
    """From errInfo, the reasons given by the oneOf branch that belongs to the document's kind."""
    for rule in info.get("details", {}).get("schemaRulesNotSatisfied", []):
        if rule.get("operatorName") == "oneOf":
            for branch in rule.get("schemasNotSatisfied", []):
                if branch.get("index") == KINDS.index(doc["kind"]):
                    return branch.get("details", [])
    return []


def reasons(branch: list[dict]) -> list[str]:
    """errInfo in words: which rule, which field, what was found."""
    found = []
    for rule in branch:
        if rule["operatorName"] == "required":
            found.append(f"required: missing {', '.join(rule['missingProperties'])}")
        elif rule["operatorName"] == "properties":
            for prop in rule["propertiesNotSatisfied"]:
                for detail in prop["details"]:
                    rule_text = json.dumps(detail.get("specifiedAs", detail["operatorName"]), default=str)
                    found.append(
                        f"{prop['propertyName']}: {detail.get('reason', '')} ({rule_text}), "
                        f"got {detail.get('consideredValue')!r}"
                    )
        else:
            found.append(f"{rule['operatorName']}: {rule.get('reason', '')}")
    return found


# --- schema versions -----------------------------------------------------------------------------------
def upgrade(doc: dict) -> dict:
    """Version 1 -> 2: the price string in euros becomes integer cents."""
    upgraded = {key: value for key, value in doc.items() if key != "price"}
    upgraded["price_cents"] = int(Decimal(doc["price"]) * 100)
    upgraded["schema_version"] = 2
    return upgraded


@dataclass
class Reader:
    """Reads products, upgrading old versions in code and writing them back once."""

    products: Collection
    upgraded: int = 0
    written_back: int = 0

    def get(self, product_id: int) -> dict:
        doc = self.products.find_one({"_id": product_id})
        if doc["schema_version"] == 1:
            doc = upgrade(doc)
            self.upgraded += 1
            # Only if nobody upgraded it meanwhile: the filter names the version we read.
            written = self.products.replace_one({"_id": product_id, "schema_version": 1}, doc)
            self.written_back += written.modified_count
        return doc


def migrate_on_read(products: Collection, v1: list[dict], v2: list[dict]) -> Migration:
    v1_before = products.count_documents({"schema_version": 1})
    cheap_before = products.count_documents({"price_cents": {"$lt": CHEAP_CENTS}})
    # A page mixing new and old documents: the first third of it old.
    page = [doc["_id"] for doc in v1[: PAGE // 3]] + [doc["_id"] for doc in v2[: PAGE - PAGE // 3]]
    first = Reader(products)
    read = [first.get(product_id) for product_id in page]
    second = Reader(products)
    read_again = [second.get(product_id) for product_id in page]
    return Migration(
        v1_before=v1_before,
        read=len(read),
        read_again=len(read_again),
        upgraded_on_read=first.upgraded,
        written_back=first.written_back,
        upgraded_on_second_read=second.upgraded,
        writes_on_second_read=second.written_back,
        v1_after=products.count_documents({"schema_version": 1}),
        all_read_as_v2=all(doc["schema_version"] == 2 and "price_cents" in doc for doc in read),
        cheap_found_before=cheap_before,
        cheap_found_after=products.count_documents({"price_cents": {"$lt": CHEAP_CENTS}}),
    )


def run(client: pymongo.MongoClient) -> PolymorphicResult:
    console.title("Polymorphic documents: several kinds in one collection")
    db = client[DATABASE]

    console.step(
        f"One `products` collection in `{DATABASE}` (dropped first), created with a $jsonSchema validator"
    )
    v1, v2 = generate()
    products = load(db, v1, v2)
    counts = counts_by_kind_and_version(products)
    console.table(["kind and schema version", "documents"], counts.items())
    console.say("Every kind shares kind, name, price_cents and schema_version; the rest is its own.")

    console.step("Query across kinds, then within one kind")
    cheap = cheap_across_kinds(products)
    console.table(
        ["kind", "name", "price", "details"],
        [(d["kind"], d["name"], f"{d['price_cents'] / 100:.2f}", describe(d)) for d in cheap[:6]],
        caption=f"the cheapest 6 of {len(cheap)} products under {CHEAP_CENTS / 100:.2f}, any kind",
    )
    within = within_kind(products)
    console.table(["within one kind", "documents"], within.items())

    console.step("A partial index per kind: it holds only that kind's documents")
    partial = partial_indexes(products, v2)
    console.table(
        ["index", "filter", "built", "entries (validate)", "collStats size"],
        [("_id_", "(none)", True, partial.id_entries, partial.sizes["_id_"])]
        + [
            (name, json.dumps(options["partialFilterExpression"]), partial.built[name],
             "-" if partial.covered[name] is None else partial.covered[name], partial.sizes[name])
            for name, (_, options) in PARTIAL_INDEXES.items()
        ],
    )  # fmt: skip
    unbuilt = [name for name, built in partial.built.items() if not built]
    if unbuilt:
        console.say(f"Not built on this server: {', '.join(unbuilt)} (refused, or listed without a size).")
    duplicate = "rejected" if partial.duplicate_isbn_rejected else "admitted"
    if partial.built["book_isbn"]:
        films = "admitted" if partial.other_kinds_admitted else "rejected"
        console.say(
            f"beside the unique book_isbn: two more films without an isbn {films}; a book reusing an isbn {duplicate}"
        )
    else:
        console.say(
            f"with no book_isbn index nothing guards the ISBNs: a book reusing an isbn was {duplicate}"
        )
    if partial.plan_naming_kind is None:
        console.say("This server has no explain: the plans of the two game queries cannot be shown.")
    else:
        console.say(
            f"find kind=game, platform=switch: {partial.plan_naming_kind} (the query implies the filter)"
        )
        console.say(
            f"find platform=switch:            {partial.plan_without_kind} (it might match other kinds)"
        )

    console.step("Per-kind validation: the validator's oneOf has one branch per kind")
    good = good_document_accepted(products, v2)
    rejections = [try_insert(products, label, doc) for label, doc in BAD_DOCUMENTS.items()]
    enforced = all(r.code is not None for r in rejections)
    console.say(f"a valid game inserted: {good}")
    if not enforced:
        console.say(
            "This server accepted the invalid documents: it stores the validator but does not enforce it."
        )
    for rejection in rejections:
        outcome = f"WriteError code {rejection.code}: {rejection.message}" if rejection.code else "accepted"
        console.say(f"{rejection.label}: {outcome}")
        for reason in reasons(rejection.kind_branch):
            console.say(f"    oneOf branch {KINDS.index(rejection.kind)} ({rejection.kind}): {reason}")

    console.step("Schema versions: version 1 documents upgraded when read, written back lazily")
    migration = migrate_on_read(products, v1, v2)
    console.table(
        ["reader", "first read", "second read"],
        [
            ("products read", migration.read, migration.read_again),
            ("upgraded in code", migration.upgraded_on_read, migration.upgraded_on_second_read),
            ("written back (replace_one where schema_version = 1)", migration.written_back,
             migration.writes_on_second_read),
        ],
    )  # fmt: skip
    console.say(f"version 1 documents left: {migration.v1_before} before, {migration.v1_after} after")
    console.say(
        f"the price query sees {migration.cheap_found_before} products before and {migration.cheap_found_after} "
        "after: old documents keep their price as a string until they are upgraded"
    )

    return PolymorphicResult(
        by_kind_and_version=counts,
        cheap_across_kinds=[(d["kind"], d["name"], d["price_cents"]) for d in cheap],
        within_kind=within,
        partial=partial,
        validation_enforced=enforced,
        good_document_accepted=good,
        rejections=rejections,
        migration=migration,
    )


def main() -> int:
    require(*REQUIRES)
    with pymongo.MongoClient(mongo_url(), serverSelectionTimeoutMS=CONNECT_TIMEOUT_S * 1000) as client:
        result = run(client)
    migration = result.migration
    migrated = (
        migration.upgraded_on_read == migration.written_back == migration.v1_before - migration.v1_after
    )
    return (
        0 if migrated > 0 and migration.upgraded_on_second_read == migration.writes_on_second_read == 0 else 1
    )


if __name__ == "__main__":
    raise SystemExit(main())

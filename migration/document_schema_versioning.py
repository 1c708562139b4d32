"""Document schema versioning in MongoDB: lazy upgrade on read against a batched background migration

A document store holds every shape its application ever wrote. Here a customers collection holds
three: version 1 (`name`, `city`, `country`), version 2 (the name split into `first_name` and
`last_name`) and version 3 (`city` and `country` moved into an `address` subdocument), each
document saying which it is in `schema_version`. Two ways to bring them to version 3, measured as
documents per version after each phase. Lazily: the read path upgrades whatever it reads, step by
step (1 -> 2 -> 3, one small function per step), and writes it back with a filter on the version it
read, so a concurrent upgrade is never overwritten; only the documents read move. In bulk: a
background job walks the old versions in batches, 1 -> 2 with bulk_write ReplaceOne (the name split
needs code) and 2 -> 3 with one update_many per batch ($rename, done by the server), each write
filtered on schema_version, so a document the application upgraded and edited meanwhile is skipped,
not overwritten with the stale copy the job read. Until the last old document is gone, the
application must handle every version: a query on `address.city` alone misses the customers still
on versions 1 and 2.

Engine: MongoDB (MONGO_URL), database `schema_versioning`. Runs the same on the local stand-in.
Run: `make up SERVICES=mongodb` (or `make local-up`), then `python migration/document_schema_versioning.py`.
Look for: the table of documents per version (the lazy reads move exactly the old documents they
read; the bulk job leaves 0 on versions 1 and 2), the edits the version filter kept, and the
city query that finds fewer customers until the migration ends.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field

import pymongo
from pymongo import ReplaceOne
from pymongo.collection import Collection

from common import console
from common.settings import CONNECT_TIMEOUT_S, mongo_url, require, scale

REQUIRES = ("mongodb",)
DATABASE = "schema_versioning"
SEED, BATCH, CURRENT = 31, 250, 3
SHARES = {1: 0.5, 2: 0.33, 3: 0.17}  # of the documents, written by each version of the application
EDITED = 5  # documents of the bulk job's first batch that the application edits meanwhile
FIRST = ["Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Tim"]
LAST = ["Lovelace", "Turing", "Hopper", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Perlman", "Lee"]
PLACES = [("Paris", "FR"), ("Lisbon", "PT"), ("Osaka", "JP"), ("Recife", "BR"), ("Nairobi", "KE")]


# --- the application's code for each version: one small function per step ------------------------
def v1_to_v2(doc: dict) -> dict:
    first, _, last = doc.pop("name").partition(" ")
    return {**doc, "first_name": first, "last_name": last, "schema_version": 2}


def v2_to_v3(doc: dict) -> dict:
    address = {"city": doc.pop("city"), "country": doc.pop("country")}
    return {**doc, "address": address, "schema_version": 3}


UPGRADES = {1: v1_to_v2, 2: v2_to_v3}


def upgrade(doc: dict) -> dict:
    """Any stored version to the current one, one step at a time."""
    doc = dict(doc)
    while doc["schema_version"] < CURRENT:
        doc = UPGRADES[doc["schema_version"]](doc)
    return doc


def read_customer(customers: Collection, cid: int) -> tuple[dict, bool]:
    """The lazy path: read, upgrade, write back only if nobody upgraded it meanwhile."""
    stored = customers.find_one({"_id": cid})
    if stored["schema_version"] == CURRENT:
        return stored, False
    current = upgrade(stored)
    written = customers.replace_one({"_id": cid, "schema_version": stored["schema_version"]}, current)
    return current, written.modified_count == 1


def in_city(city: str) -> dict:
    """A query that matches every stored version: `city` up to version 2, `address.city` from 3."""
    return {"$or": [{"city": city}, {"address.city": city}]}


# --- the background migration ----------------------------------------------------------------------
def bulk_1_to_2(customers: Collection, meanwhile=None) -> tuple[int, int, int]:
    """Batches of version 1 in _id order, each one bulk_write of ReplaceOne filtered on schema_version 1."""
    batches = modified = skipped = 0
    last = -1
    while batch := list(
        customers.find({"schema_version": 1, "_id": {"$gt": last}}).sort("_id", 1).limit(BATCH)
    ):
        if meanwhile and batches == 0:
            meanwhile(batch)  # the application works on documents this batch has already read
        # The whole upgraded document replaces the stored one, but only if it is still version 1.
        ops = [ReplaceOne({"_id": doc["_id"], "schema_version": 1}, v1_to_v2(dict(doc))) for doc in batch]
        written = customers.bulk_write(ops, ordered=False)
        batches, modified = batches + 1, modified + written.modified_count
        skipped += len(ops) - written.matched_count
        last = batch[-1]["_id"]
    return batches, modified, skipped


def bulk_2_to_3(customers: Collection) -> tuple[int, int]:
    """Batches of version 2, each one update_many the server does itself ($rename into a subdocument)."""
    batches = modified = 0
    last = -1
    while ids := [
        d["_id"]
        for d in customers.find({"schema_version": 2, "_id": {"$gt": last}}, {"_id": 1})
        .sort("_id", 1)
        .limit(BATCH)
    ]:
        written = customers.update_many(
            {"_id": {"$in": ids}, "schema_version": 2},
            {
                "$rename": {"city": "address.city", "country": "address.country"},
                "$set": {"schema_version": 3},
            },
        )
        batches, modified, last = batches + 1, modified + written.modified_count, ids[-1]
    return batches, modified


@dataclass
class VersioningResult:
    documents: int
    per_version: list[tuple[str, int, int, int]] = field(default_factory=list)  # phase, v1, v2, v3
    lazy_read: int = 0  # distinct documents the application read
    lazy_old_read: int = 0  # of those, on version 1 or 2 when read
    lazy_written: int = 0  # written back by the read path
    lazy_exactly_the_old_ones_read: bool = False  # the documents whose version changed = the old ones read
    reread_written: int = -1  # reading the same documents again: writes (0: already current)
    city_v3_only_before: int = 0  # customers in Paris found by `address.city` alone, before the bulk job
    city_every_version_before: int = 0
    city_v3_only_after: int = 0
    bulk_1_to_2: tuple[int, int, int] = (0, 0, 0)  # batches, modified, skipped by the version filter
    bulk_2_to_3: tuple[int, int] = (0, 0)  # batches, modified
    edits_kept: int = 0  # of the EDITED documents the application changed during the bulk job
    left_on_old_versions: int = -1
    matches_expected: bool = False  # every document equals its seed upgraded in code, with the edits

    @property
    def holds(self) -> bool:
        return (
            self.lazy_exactly_the_old_ones_read
            and self.lazy_written == self.lazy_old_read > 0
            and self.reread_written == 0
            and self.edits_kept == EDITED == self.bulk_1_to_2[2]
            and self.left_on_old_versions == 0
            and self.city_v3_only_after == self.city_every_version_before > self.city_v3_only_before
            and self.matches_expected
        )


def generate(n: int) -> list[dict]:
    """Customers as three versions of the application wrote them, interleaved by _id."""
    rng = random.Random(SEED)
    versions = [v for v, share in SHARES.items() for _ in range(round(n * share))]
    rng.shuffle(versions)
    docs = []
    for cid, version in enumerate(versions):
        first, last, (city, country) = rng.choice(FIRST), rng.choice(LAST), rng.choice(PLACES)
        doc = {
            "_id": cid,
            "schema_version": 1,
            "name": f"{first} {last}",
            "email": f"{first.lower()}.{cid}@example.org",
        }
        doc |= {"city": city, "country": country}
        while doc["schema_version"] < version:
            doc = UPGRADES[doc["schema_version"]](doc)
        docs.append(doc)
    return docs


def per_version(customers: Collection) -> tuple[int, int, int]:
    found = {
        row["_id"]: row["n"]
        for row in customers.aggregate([{"$group": {"_id": "$schema_version", "n": {"$sum": 1}}}])
    }
    return found.get(1, 0), found.get(2, 0), found.get(3, 0)


def versions_by_id(customers: Collection) -> dict[int, int]:
    return {d["_id"]: d["schema_version"] for d in customers.find({}, {"schema_version": 1})}


def digest(docs) -> str:
    return hashlib.sha256("\n".join(json.dumps(d, sort_keys=True) for d in docs).encode()).hexdigest()


def show(result: VersioningResult, phase: str, customers: Collection) -> None:
    result.per_version.append((phase, *per_version(customers)))
    console.table(["after", "version 1", "version 2", "version 3"], result.per_version)


def lazy_reads(customers: Collection, result: VersioningResult) -> None:
    console.step("Lazy: the read path upgrades what it reads and writes it back")
    before = versions_by_id(customers)
    ids = random.Random(SEED + 1).sample(sorted(before), result.documents // 5)
    result.lazy_written = sum(read_customer(customers, cid)[1] for cid in ids)
    after = versions_by_id(customers)
    old_read = {cid for cid in ids if before[cid] < CURRENT}
    result.lazy_read, result.lazy_old_read = len(ids), len(old_read)
    result.lazy_exactly_the_old_ones_read = {cid for cid in before if before[cid] != after[cid]} == old_read
    result.reread_written = sum(read_customer(customers, cid)[1] for cid in ids)
    show(result, f"{len(ids):,} reads", customers)
    console.say(
        f"{len(ids):,} documents read, {len(old_read):,} of them old: {result.lazy_written:,} written back, "
        f"and no other document moved. Reading them again writes {result.reread_written}."
    )
    console.say("Documents nobody reads stay old for ever: lazy migration alone never finishes.")


def bulk(customers: Collection, result: VersioningResult) -> dict[int, str]:
    console.step("Until the last old document is gone, every query must know every version")
    result.city_v3_only_before = customers.count_documents({"address.city": "Paris"})
    result.city_every_version_before = customers.count_documents(in_city("Paris"))
    console.say(
        f"Customers in Paris: {result.city_v3_only_before:,} by address.city alone, "
        f"{result.city_every_version_before:,} with the query that matches versions 1, 2 and 3."
    )

    console.step("In bulk: batches filtered on schema_version, while the application edits documents")
    edits = {}

    def application_edits(batch: list[dict]) -> None:
        for doc in batch[:EDITED]:
            read_customer(customers, doc["_id"])  # upgraded to version 3 by the read path, then edited
            edits[doc["_id"]] = f"moved.{doc['_id']}@example.net"
            customers.update_one(
                {"_id": doc["_id"], "schema_version": CURRENT}, {"$set": {"email": edits[doc["_id"]]}}
            )

    result.bulk_1_to_2 = bulk_1_to_2(customers, application_edits)
    show(result, f"bulk 1 -> 2, {result.bulk_1_to_2[0]} batches", customers)
    result.bulk_2_to_3 = bulk_2_to_3(customers)
    show(result, f"bulk 2 -> 3, {result.bulk_2_to_3[0]} batches", customers)
    result.edits_kept = customers.count_documents(
        {"$or": [{"_id": cid, "email": email} for cid, email in edits.items()]}
    )
    console.say(
        f"The application upgraded and edited {len(edits)} documents of the first batch after the job read "
        f"them: the version filter skipped {result.bulk_1_to_2[2]}, and {result.edits_kept} edits were kept."
    )
    return edits


def run(client: pymongo.MongoClient) -> VersioningResult:
    console.title("Document schema versioning: lazy upgrade on read against a batched migration")
    console.step("Customers written by three versions of the application, told apart by schema_version")
    client.drop_database(DATABASE)
    customers = client[DATABASE].customers
    seeds = generate(max(300, int(2000 * scale())))
    customers.insert_many(seeds)
    customers.create_index("schema_version")  # what the bulk job filters on
    result = VersioningResult(len(seeds))
    show(result, "seeding", customers)

    lazy_reads(customers, result)
    edits = bulk(customers, result)

    console.step("After the migration: nothing old is left, and every document is what the code expects")
    v1, v2, _ = per_version(customers)
    result.left_on_old_versions = v1 + v2
    result.city_v3_only_after = customers.count_documents({"address.city": "Paris"})
    expected = [upgrade(doc) | ({"email": edits[doc["_id"]]} if doc["_id"] in edits else {}) for doc in seeds]
    result.matches_expected = digest(customers.find({}).sort("_id", 1)) == digest(expected)
    console.say(
        f"Documents on versions 1 and 2: {result.left_on_old_versions}. Customers in Paris by address.city "
        f"alone: {result.city_v3_only_after:,}. Every document equal to its seed upgraded in code: "
        f"{'yes' if result.matches_expected else 'NO'}."
    )
    console.say("Only now may the code for versions 1 and 2 go, unless a backup could bring them back.")
    return result


def main() -> int:
    require(*REQUIRES)
    with pymongo.MongoClient(mongo_url(), serverSelectionTimeoutMS=CONNECT_TIMEOUT_S * 1000) as client:
        result = run(client)
    return 0 if result.holds else 1


if __name__ == "__main__":
    raise SystemExit(main())

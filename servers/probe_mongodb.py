"""Which MongoDB features a server answers correctly, checked one at a time with pymongo.

Why: no MongoDB server can be installed on the machines the local suite runs on, so local
runs use a wire-compatible stand-in. Each row below is something a lesson relies on; running
this against the stand-in (and against a real MongoDB for comparison) shows which lessons can
run locally and which need a real server. A check passes only if the answer is right, not
merely accepted: a server that ignores an option it does not know is reported as missing.

    python servers/probe_mongodb.py mongodb://127.0.0.1:27017/
    python servers/probe_mongodb.py --json URL   # one JSON object per feature

Everything happens in a throwaway database that is dropped at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
import uuid
from collections.abc import Callable

import bson
from pymongo import ASCENDING, DESCENDING, InsertOne, MongoClient, ReplaceOne, UpdateOne
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError, PyMongoError, WriteError

Check = Callable[[Database], str]
CHECKS: list[tuple[str, Check]] = []


class WrongResult(AssertionError):
    """The server accepted the request but answered something a real MongoDB would not."""


def check(name: str) -> Callable[[Check], Check]:
    """Register a feature check; it returns a short detail on success and raises otherwise."""

    def register(function: Check) -> Check:
        CHECKS.append((name, function))
        return function

    return register


def expect(condition: object, what: str) -> None:
    if not condition:
        raise WrongResult(what)


def fresh(db: Database, name: str) -> Collection:
    db.drop_collection(name)
    return db[name]


def aggregate(coll: Collection, pipeline: list[dict]) -> list[dict]:
    return list(coll.aggregate(pipeline))


# --- documents and indexes ----------------------------------------------------------------
@check("insert_many / find / update ($inc $set $push)")
def crud(db: Database) -> str:
    coll = fresh(db, "crud")
    coll.insert_many([{"_id": i, "n": i, "tags": []} for i in range(5)])
    coll.update_one({"_id": 1}, {"$inc": {"n": 10}, "$set": {"name": "one"}, "$push": {"tags": "x"}})
    doc = coll.find_one({"_id": 1})
    expect(doc == {"_id": 1, "n": 11, "tags": ["x"], "name": "one"}, f"got {doc}")
    expect(coll.count_documents({"n": {"$gte": 3}}) == 3, "count_documents")
    return "5 inserted, updated, counted"


@check("upsert")
def upsert(db: Database) -> str:
    coll = fresh(db, "upsert")
    result = coll.update_one({"k": "a"}, {"$inc": {"hits": 1}, "$setOnInsert": {"first": True}}, upsert=True)
    expect(result.upserted_id is not None, "no upserted_id")
    coll.update_one({"k": "a"}, {"$inc": {"hits": 1}}, upsert=True)
    doc = coll.find_one({"k": "a"}, {"_id": 0})
    expect(doc == {"k": "a", "hits": 2, "first": True}, f"got {doc}")
    return "insert then update"


@check("find_one_and_update (return the new document)")
def find_and_modify(db: Database) -> str:
    coll = fresh(db, "counters")
    doc = coll.find_one_and_update({"_id": "seq"}, {"$inc": {"value": 1}}, upsert=True, return_document=True)
    expect(doc == {"_id": "seq", "value": 1}, f"got {doc}")
    return "counter = 1"


@check("query operators ($exists $type $in $elemMatch)")
def query_operators(db: Database) -> str:
    coll = fresh(db, "shapes")
    coll.insert_many(
        [
            {"kind": "circle", "r": 1, "pts": [{"x": 1, "y": 2}]},
            {"kind": "square", "side": "2", "pts": [{"x": 5, "y": 5}]},
            {"kind": "line"},
        ]
    )
    expect(coll.count_documents({"r": {"$exists": True}}) == 1, "$exists")
    expect(coll.count_documents({"side": {"$type": "string"}}) == 1, "$type")
    expect(coll.count_documents({"kind": {"$in": ["circle", "line"]}}) == 2, "$in")
    expect(coll.count_documents({"pts": {"$elemMatch": {"x": 5, "y": 5}}}) == 1, "$elemMatch")
    return "all four"


@check("$jsonSchema as a query (find non-conforming documents)")
def query_json_schema(db: Database) -> str:
    coll = fresh(db, "mixed")
    coll.insert_many([{"kind": "book", "isbn": "1"}, {"kind": "book"}, {"kind": "film", "minutes": 90}])
    schema = {"required": ["isbn"]}
    bad = coll.count_documents({"kind": "book", "$nor": [{"$jsonSchema": schema}]})
    expect(bad == 1, f"{bad} books without isbn")
    return "1 book without isbn"


@check("text index and $text search")
def text_search(db: Database) -> str:
    coll = fresh(db, "articles")
    coll.create_index([("body", "text")])
    coll.insert_many([{"body": "red apples and pears"}, {"body": "green grapes"}])
    got = [d["body"] for d in coll.find({"$text": {"$search": "apples"}})]
    expect(got == ["red apples and pears"], f"got {got}")
    return "1 match"


@check("sort / limit / skip")
def sort_limit_skip(db: Database) -> str:
    coll = fresh(db, "paging")
    coll.insert_many([{"n": i} for i in range(10)])
    got = [d["n"] for d in coll.find().sort("n", DESCENDING).skip(2).limit(3)]
    expect(got == [7, 6, 5], f"got {got}")
    return "page [7, 6, 5]"


@check("bulk_write")
def bulk_write(db: Database) -> str:
    coll = fresh(db, "bulk")
    result = coll.bulk_write(
        [
            InsertOne({"_id": 1, "v": 1}),
            InsertOne({"_id": 2, "v": 2}),
            UpdateOne({"_id": 1}, {"$inc": {"v": 5}}),
            ReplaceOne({"_id": 3}, {"v": 3}, upsert=True),
        ],
        ordered=True,
    )
    counts = (result.inserted_count, result.modified_count, result.upserted_count)
    expect(counts == (2, 1, 1), f"inserted/modified/upserted = {counts}")
    return "inserted 2, modified 1, upserted 1"


@check("index: single field")
def index_single(db: Database) -> str:
    coll = fresh(db, "idx1")
    name = coll.create_index("email")
    expect(name in coll.index_information(), f"{name} not listed")
    return name


@check("index: compound")
def index_compound(db: Database) -> str:
    coll = fresh(db, "idx2")
    name = coll.create_index([("customer", ASCENDING), ("date", DESCENDING)])
    keys = coll.index_information()[name]["key"]
    expect(list(keys) == [("customer", 1), ("date", -1)], f"keys {keys}")
    return name


@check("index: really built (sized in collStats indexSizes)")
def index_built(db: Database) -> str:
    coll = fresh(db, "idx6")
    coll.insert_many([{"n": i} for i in range(100)])
    name = coll.create_index("n")
    sizes = db.command("collStats", "idx6").get("indexSizes", {})
    expect(sizes.get(name, 0) > 0, f"{name} listed but has no size: indexSizes {sizes}")
    return f"{name}: {sizes[name]} bytes"


@check("index: unique (rejects a duplicate)")
def index_unique(db: Database) -> str:
    coll = fresh(db, "idx3")
    coll.create_index("email", unique=True)
    coll.insert_one({"email": "a@x"})
    try:
        coll.insert_one({"email": "a@x"})
    except DuplicateKeyError:
        return "duplicate rejected"
    raise WrongResult("duplicate accepted")


@check("index: partial (partialFilterExpression)")
def index_partial(db: Database) -> str:
    coll = fresh(db, "idx4")
    name = coll.create_index("email", unique=True, partialFilterExpression={"type": "user"})
    info = coll.index_information()[name]
    expect("partialFilterExpression" in info, f"option dropped: {info}")
    coll.insert_many([{"type": "guest", "email": "g@x"}, {"type": "guest", "email": "g@x"}])
    coll.insert_one({"type": "user", "email": "u@x"})
    try:
        coll.insert_one({"type": "user", "email": "u@x"})
    except DuplicateKeyError:
        return "unique only where type = user"
    raise WrongResult("duplicate user accepted")


@check("index: TTL (expireAfterSeconds, creation only)")
def index_ttl(db: Database) -> str:
    coll = fresh(db, "idx5")
    name = coll.create_index("created", expireAfterSeconds=3600)
    info = coll.index_information()[name]
    expect(info.get("expireAfterSeconds") == 3600, f"option dropped: {info}")
    return "created (expiry itself not waited for)"


# --- aggregation --------------------------------------------------------------------------
def orders(db: Database) -> Collection:
    coll = fresh(db, "orders")
    coll.insert_many(
        [
            {"_id": 1, "cust": "a", "amount": 10, "items": ["x", "y"], "day": dt.datetime(2024, 1, 1, 9)},
            {"_id": 2, "cust": "a", "amount": 30, "items": ["y"], "day": dt.datetime(2024, 1, 1, 17)},
            {"_id": 3, "cust": "b", "amount": 20, "items": ["z"], "day": dt.datetime(2024, 1, 2, 12)},
        ]
    )
    return coll


@check("$match")
def stage_match(db: Database) -> str:
    got = aggregate(orders(db), [{"$match": {"amount": {"$gt": 15}}}])
    expect(sorted(d["_id"] for d in got) == [2, 3], f"got {got}")
    return "2 of 3"


GROUP_EXPECTED = {
    "$sum": 40,
    "$avg": 20,
    "$min": 10,
    "$max": 30,
    "$push": [10, 30],
    "$addToSet": [10, 30],
    "$first": 10,
}


def group_check(operator: str) -> Check:
    def run(db: Database) -> str:
        pipeline = [{"$sort": {"_id": 1}}, {"$group": {"_id": "$cust", "v": {operator: "$amount"}}}]
        got = {d["_id"]: d["v"] for d in aggregate(orders(db), pipeline)}
        value = sorted(got.get("a")) if operator == "$addToSet" else got.get("a")
        expect(value == GROUP_EXPECTED[operator], f"customer a: {got.get('a')!r}")
        return f"a -> {value}"

    return run


for _operator in GROUP_EXPECTED:
    check(f"$group with {_operator}")(group_check(_operator))


@check("$unwind")
def stage_unwind(db: Database) -> str:
    got = aggregate(orders(db), [{"$unwind": "$items"}, {"$count": "n"}])
    expect(got == [{"n": 4}], f"got {got}")
    return "4 rows"


def customers(db: Database) -> Collection:
    coll = fresh(db, "customers")
    coll.insert_many([{"_id": "a", "name": "Ann"}, {"_id": "b", "name": "Bob"}])
    return coll


@check("$lookup (localField / foreignField)")
def stage_lookup(db: Database) -> str:
    customers(db)
    pipeline = [
        {"$lookup": {"from": "customers", "localField": "cust", "foreignField": "_id", "as": "c"}},
        {"$sort": {"_id": 1}},
    ]
    got = aggregate(orders(db), pipeline)
    expect([d["c"][0]["name"] for d in got] == ["Ann", "Ann", "Bob"], f"got {got}")
    return "joined 3"


@check("$lookup (let + pipeline)")
def stage_lookup_pipeline(db: Database) -> str:
    customers(db)
    inner = [{"$match": {"$expr": {"$eq": ["$cust", "$$cid"]}}}, {"$project": {"_id": 0, "amount": 1}}]
    pipeline = [
        {"$lookup": {"from": "orders", "let": {"cid": "$_id"}, "pipeline": inner, "as": "o"}},
        {"$sort": {"_id": 1}},
    ]
    orders(db)
    got = aggregate(db.customers, pipeline)
    expect([len(d["o"]) for d in got] == [2, 1], f"got {got}")
    return "2 and 1 orders"


@check("$facet")
def stage_facet(db: Database) -> str:
    facet = {
        "$facet": {"n": [{"$count": "n"}], "big": [{"$match": {"amount": {"$gte": 20}}}, {"$count": "n"}]}
    }
    got = aggregate(orders(db), [facet])
    expect(got == [{"n": [{"n": 3}], "big": [{"n": 2}]}], f"got {got}")
    return "two facets"


@check("$bucket")
def stage_bucket(db: Database) -> str:
    stage = {"$bucket": {"groupBy": "$amount", "boundaries": [0, 15, 100], "output": {"n": {"$sum": 1}}}}
    got = aggregate(orders(db), [stage])
    expect(got == [{"_id": 0, "n": 1}, {"_id": 15, "n": 2}], f"got {got}")
    return "[0,15): 1, [15,100): 2"


@check("$project / $addFields")
def stage_project(db: Database) -> str:
    pipeline = [
        {"$addFields": {"double": {"$multiply": ["$amount", 2]}}},
        {"$project": {"_id": 0, "double": 1, "n": {"$size": "$items"}}},
        {"$sort": {"double": 1}},
    ]
    got = aggregate(orders(db), pipeline)
    expect(got[0] == {"double": 20, "n": 2}, f"got {got[0]}")
    return "computed fields"


@check("$sort / $limit")
def stage_sort_limit(db: Database) -> str:
    got = aggregate(orders(db), [{"$sort": {"amount": -1}}, {"$limit": 2}])
    expect([d["_id"] for d in got] == [2, 3], f"got {got}")
    return "top 2"


@check("$count")
def stage_count(db: Database) -> str:
    got = aggregate(orders(db), [{"$count": "total"}])
    expect(got == [{"total": 3}], f"got {got}")
    return "3"


@check("$merge (into another collection)")
def stage_merge(db: Database) -> str:
    coll = orders(db)
    target = fresh(db, "totals")
    target.insert_one({"_id": "a", "note": "kept"})
    merge = {"$merge": {"into": "totals", "on": "_id", "whenMatched": "merge", "whenNotMatched": "insert"}}
    aggregate(coll, [{"$group": {"_id": "$cust", "total": {"$sum": "$amount"}}}, merge])
    got = {d["_id"]: d for d in target.find()}
    expect(got.get("a") == {"_id": "a", "note": "kept", "total": 40}, f"a = {got.get('a')}")
    expect(got.get("b", {}).get("total") == 20, f"b = {got.get('b')}")
    return "merged into an existing document"


@check("$out")
def stage_out(db: Database) -> str:
    aggregate(orders(db), [{"$match": {"cust": "a"}}, {"$out": "a_orders"}])
    expect(db.a_orders.count_documents({}) == 2, "target count")
    return "2 written"


@check("$replaceRoot")
def stage_replace_root(db: Database) -> str:
    coll = fresh(db, "nested")
    coll.insert_one({"wrap": {"x": 1, "y": 2}})
    got = aggregate(coll, [{"$replaceRoot": {"newRoot": "$wrap"}}])
    expect(got == [{"x": 1, "y": 2}], f"got {got}")
    return "promoted"


@check("$graphLookup")
def stage_graph_lookup(db: Database) -> str:
    coll = fresh(db, "staff")
    coll.insert_many([{"_id": "ceo"}, {"_id": "cto", "boss": "ceo"}, {"_id": "dev", "boss": "cto"}])
    lookup = {
        "$graphLookup": {
            "from": "staff",
            "startWith": "$boss",
            "connectFromField": "boss",
            "connectToField": "_id",
            "as": "chain",
        }
    }
    got = aggregate(coll, [{"$match": {"_id": "dev"}}, lookup])
    expect(sorted(d["_id"] for d in got[0]["chain"]) == ["ceo", "cto"], f"got {got}")
    return "dev -> cto -> ceo"


@check("$dateTrunc")
def expr_date_trunc(db: Database) -> str:
    pipeline = [{"$group": {"_id": {"$dateTrunc": {"date": "$day", "unit": "day"}}, "n": {"$sum": 1}}}]
    got = sorted((d["_id"], d["n"]) for d in aggregate(orders(db), pipeline))
    expect(got == [(dt.datetime(2024, 1, 1), 2), (dt.datetime(2024, 1, 2), 1)], f"got {got}")
    return "per day"


@check("$dateToString")
def expr_date_to_string(db: Database) -> str:
    pipeline = [
        {"$group": {"_id": {"$dateToString": {"date": "$day", "format": "%Y-%m-%d"}}, "n": {"$sum": 1}}}
    ]
    got = sorted((d["_id"], d["n"]) for d in aggregate(orders(db), pipeline))
    expect(got == [("2024-01-01", 2), ("2024-01-02", 1)], f"got {got}")
    return "per day"


@check("$bsonSize (document size in bytes)")
def expr_bson_size(db: Database) -> str:
    coll = fresh(db, "sized")
    doc = {"_id": 1, "s": "abc"}
    coll.insert_one(doc)
    got = aggregate(coll, [{"$project": {"size": {"$bsonSize": "$$ROOT"}}}])
    expect(got == [{"_id": 1, "size": len(bson.encode(doc))}], f"got {got}")
    return f"{got[0]['size']} bytes, as bson.encode says"


# --- collections ----------------------------------------------------------------------------
@check("validator ($jsonSchema) rejects a bad document")
def validator(db: Database) -> str:
    db.drop_collection("validated")
    schema = {
        "bsonType": "object",
        "required": ["kind", "price"],
        "properties": {
            "kind": {"enum": ["book", "film"]},
            "price": {"bsonType": ["int", "double"], "minimum": 0},
        },
    }
    coll = db.create_collection("validated", validator={"$jsonSchema": schema})
    coll.insert_one({"kind": "book", "price": 12})
    try:
        coll.insert_one({"kind": "toy", "price": -1})
    except WriteError as error:
        expect(error.code == 121, f"code {error.code}")
        return "rejected with code 121"
    raise WrongResult("bad document accepted")


@check("time-series collection")
def time_series(db: Database) -> str:
    db.drop_collection("readings")
    coll = db.create_collection("readings", timeseries={"timeField": "ts", "metaField": "sensor"})
    start = dt.datetime(2024, 1, 1)
    coll.insert_many([{"ts": start + dt.timedelta(minutes=i), "sensor": "s1", "v": i} for i in range(10)])
    got = aggregate(coll, [{"$group": {"_id": "$sensor", "avg": {"$avg": "$v"}}}])
    expect(got == [{"_id": "s1", "avg": 4.5}], f"got {got}")
    options = coll.options()
    expect(
        "timeseries" in options, f"created as a plain collection (options {options}); writes and reads work"
    )
    return "created, written, aggregated"


@check("multi-document transaction (commit and abort)")
def transaction(db: Database) -> str:
    coll = fresh(db, "accounts")
    coll.insert_many([{"_id": "a", "bal": 100}, {"_id": "b", "bal": 0}])
    client = db.client
    with client.start_session() as session:
        with session.start_transaction():
            coll.update_one({"_id": "a"}, {"$inc": {"bal": -30}}, session=session)
            coll.update_one({"_id": "b"}, {"$inc": {"bal": 30}}, session=session)
        session.start_transaction()
        coll.update_one({"_id": "a"}, {"$inc": {"bal": -1000}}, session=session)
        session.abort_transaction()
    balances = {d["_id"]: d["bal"] for d in coll.find()}
    expect(balances == {"a": 70, "b": 30}, f"balances {balances}")
    return "commit kept, abort undone"


@check("change stream (watch sees an insert)")
def change_stream(db: Database) -> str:
    coll = fresh(db, "events")
    coll.insert_one({"warm": True})
    with coll.watch(max_await_time_ms=500) as stream:
        coll.insert_one({"_id": "e1"})
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            change = stream.try_next()
            if change is not None:
                expect(change["operationType"] == "insert", f"got {change}")
                expect(change["documentKey"] == {"_id": "e1"}, f"got {change}")
                return "insert event received"
    raise WrongResult("no event within 5 s")


def filled(db: Database) -> Collection:
    coll = fresh(db, "sized_coll")
    coll.insert_many([{"i": i, "pad": "x" * 100} for i in range(200)])
    coll.create_index("i")
    return coll


@check("collStats command (size, count, totalIndexSize)")
def coll_stats(db: Database) -> str:
    filled(db)
    stats = db.command("collStats", "sized_coll")
    missing = [
        key
        for key in ("size", "count", "avgObjSize", "storageSize", "totalIndexSize", "indexSizes")
        if not isinstance(stats.get(key), (int, float, dict))
    ]
    expect(stats.get("count") == 200, f"count {stats.get('count')}")
    expect(stats.get("size", 0) > 200 * 100, f"size {stats.get('size')}")
    expect(not missing, f"fields missing {missing}; has {sorted(stats)}")
    expect(stats["totalIndexSize"] > 0, f"totalIndexSize {stats['totalIndexSize']}")
    return (
        f"size {stats['size']}, storageSize {stats['storageSize']}, totalIndexSize {stats['totalIndexSize']}"
    )


@check("$collStats stage (storageStats)")
def coll_stats_stage(db: Database) -> str:
    got = aggregate(filled(db), [{"$collStats": {"storageStats": {}}}])
    storage = got[0]["storageStats"]
    expect(storage.get("size", 0) > 0 and storage.get("totalIndexSize", 0) > 0, f"got {storage}")
    return f"size {storage['size']}"


@check("dbStats command (dataSize, indexSize)")
def db_stats(db: Database) -> str:
    filled(db)
    stats = db.command("dbStats")
    expect(stats.get("dataSize", 0) > 200 * 100, f"dataSize {stats.get('dataSize')}")
    expect(stats.get("indexSize", 0) > 0, f"indexSize {stats.get('indexSize')}")
    return f"dataSize {stats['dataSize']:.0f}, indexSize {stats['indexSize']}"


@check("explain on find (reports index use)")
def explain(db: Database) -> str:
    plan = filled(db).find({"i": 42}).explain()
    text = json.dumps(plan.get("queryPlanner", plan), default=str)
    expect("IXSCAN" in text, f"no IXSCAN in plan: {text[:200]}")
    return "IXSCAN in winningPlan"


# --- running --------------------------------------------------------------------------------
def run_all(url: str) -> list[dict]:
    client = MongoClient(url, serverSelectionTimeoutMS=5000, socketTimeoutMS=20000)
    db = client[f"probe_{uuid.uuid4().hex[:8]}"]
    results = []
    try:
        for name, function in CHECKS:
            results.append(run_one(name, function, db))
    finally:
        try:
            client.drop_database(db.name)
        finally:
            client.close()
    return results


def run_one(name: str, function: Check, db: Database) -> dict:
    try:
        return {"feature": name, "status": "ok", "detail": function(db)}
    except WrongResult as error:
        return {"feature": name, "status": "missing", "detail": f"wrong result: {error}"}
    except Exception as error:  # a server error (PyMongoError) or a reply pymongo cannot use
        message = " ".join(str(error).split())[:160]
        return {"feature": name, "status": "missing", "detail": f"{type(error).__name__}: {message}"}


def server_line(url: str) -> str:
    with MongoClient(url, serverSelectionTimeoutMS=5000) as client:
        info = client.server_info()
        hello = client.admin.command("isMaster")
    return f"server reports MongoDB {info.get('version')}, wire version {hello.get('maxWireVersion')}"


def print_table(results: list[dict]) -> None:
    width = max(len(r["feature"]) for r in results)
    for result in results:
        print(f"{result['feature']:<{width}}  {result['status']:<7}  {result['detail']}")
    passed = sum(r["status"] == "ok" for r in results)
    print(f"\n{passed} of {len(results)} features ok")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?", default="mongodb://127.0.0.1:27017/")
    parser.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    args = parser.parse_args(argv)
    try:
        server = server_line(args.url)
    except PyMongoError as error:
        print(f"cannot reach {args.url}: {error}", file=sys.stderr)
        return 2
    results = run_all(args.url)
    if args.json:
        for result in results:
            print(json.dumps(result))
    else:
        print(server)
        print_table(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())

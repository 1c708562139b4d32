"""Amazon DocumentDB compatibility: what it would reject in this project's MongoDB lessons, and the rewrites

DocumentDB speaks MongoDB's wire protocol but runs its own engine: some stages and operators are
missing, which ones depending on the engine version (3.6, 4.0, 5.0, 8.0). No DocumentDB runs
locally, so this lesson does what a migration starts with: it reads the source of every lesson here
that imports pymongo with `ast`, collects each `$operator` used as a dict key (a stage when the dict
sits in a list, a pipeline) and the calls and options DocumentDB treats differently (map-reduce,
change streams, transactions, time-series collections, partial indexes, collation), and checks them
against a rule table: operator -> the versions that support it -> the rewrite. Then the connection
settings DocumentDB needs, parsed by pymongo's own URI parser; then the aggregation lesson's
pipelines run on a copy of its data: those the checker passes as they are, the rejected ones
($facet, $bucket, $merge) both as written and rewritten, and the two results compared.

Sources (checked December 2026): AWS, "Supported MongoDB APIs, operations, and data types in Amazon
DocumentDB" https://docs.aws.amazon.com/documentdb/latest/developerguide/mongo-apis.html (tables for
3.6, 4.0, 5.0 and 8.0), "Functional differences: Amazon DocumentDB and MongoDB"
https://docs.aws.amazon.com/documentdb/latest/developerguide/functional-differences.html, the 8.0
notes of https://docs.aws.amazon.com/documentdb/latest/developerguide/compatibility.html, "Partial
index" (5.0) and "Retryable writes" (engine 8.0.2); cross-checked with the table of AWS's own
compat-tool (github.com/awslabs/amazon-documentdb-tools, compat-tool/compat.py, May 2026).
Elastic clusters differ again and are not covered.

Engine: MongoDB (MONGO_URL) stands in for running the pipelines, database `documentdb_compatibility`.
Run: `make up SERVICES=mongodb` (or `make local-up`), then `python nosql/documentdb_compatibility.py`.
Look for: the table of rejected operators per lesson with their rewrites, the URL options
(retryWrites False, readPreference secondaryPreferred), and "same result: True" for each rewrite.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
import warnings
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from urllib.parse import urlencode

import pymongo
from pymongo import ReplaceOne, UpdateOne, uri_parser

from common import console
from common.catalog import TOPICS
from common.settings import CONNECT_TIMEOUT_S, ROOT, mongo_url, require

REQUIRES = ("mongodb",)
DATABASE = "documentdb_compatibility"
VERSIONS = ("3.6", "4.0", "5.0", "8.0")
TARGET = "5.0"  # what a cluster created with the AWS SDK, CLI or CloudFormation gets unless told otherwise
ALL, NONE, FROM_40, FROM_50, ONLY_80 = VERSIONS, (), VERSIONS[1:], VERSIONS[2:], ("8.0",)
PATTERNS = "nosql/mongodb_aggregation_patterns.py"  # the lesson whose pipelines are run
EVERY = 3  # of its orders, every third is copied


@dataclass(frozen=True)
class Rule:
    supported_in: tuple[str, ...]
    rewrite: str


# What some version rejects, or treats differently. Keys: "$op" (anywhere), "stage $op" (as a
# pipeline stage only), a method name for calls, an option name for keyword arguments and dict keys.
RULES = {
    "$facet": Rule(NONE, "one aggregate per facet (run them in parallel), results merged in the application"),
    "$graphLookup": Rule(NONE, "walk the graph level by level with $lookup/find, or model it in Neptune"),
    "$bucket": Rule(ONLY_80, "$match the range, then $group on a nested $cond mapping the value to its band"),
    "$bucketAuto": Rule(NONE, "compute boundaries first (sorted sample), then rewrite as for $bucket"),
    "$sortByCount": Rule(NONE, "$group {_id: expr, count: {$sum: 1}} then $sort {count: -1}"),
    "$merge": Rule(
        ONLY_80, "aggregate without it, then bulk_write ReplaceOne/UpdateOne(upsert) into the target"
    ),
    "$unionWith": Rule(NONE, "two aggregates, concatenated in the application"),
    "$setWindowFields": Rule(NONE, "running values in the application, or kept up to date on write"),
    "$replaceWith": Rule(ONLY_80, "$replaceRoot: {newRoot: expr}"),
    "$where": Rule(NONE, "query operators, or $expr (4.0+): no server-side JavaScript"),
    "$function": Rule(NONE, "compute in the application: no server-side JavaScript"),
    "$accumulator": Rule(NONE, "compute in the application: no server-side JavaScript"),
    "$expr": Rule(FROM_40, "3.6: store the computed value on write and match on it"),
    "$jsonSchema": Rule(FROM_40, "3.6: validate in the application before writing"),
    "$text": Rule(FROM_50, "before 5.0: $regex on a lower-cased copy of the field, or OpenSearch"),
    "$switch": Rule(FROM_40, "nested $cond"),
    "$dateTrunc": Rule(ONLY_80, "$dateToString with a format (and $dateFromString back)"),
    "$round": Rule(NONE, "round in the application ($trunc likewise)"),
    "$collStats": Rule(FROM_40, "3.6: the collStats command"),
    "$regexMatch": Rule(FROM_50, "before 5.0: a $regex query in $match"),
    "stage $set": Rule(ONLY_80, "$addFields (the same stage under its older name)"),
    "stage $unset": Rule(ONLY_80, "$project {field: 0}"),
    "map_reduce": Rule(NONE, "an aggregate with $group (map-reduce is not supported)"),
    "mapReduce": Rule(NONE, "an aggregate with $group (map-reduce is not supported)"),
    "watch": Rule(ALL, "supported, but off until modifyChangeStreams enables it per collection"),
    "start_transaction": Rule(FROM_40, "3.6: single-document atomicity only"),
    "with_transaction": Rule(FROM_40, "3.6: single-document atomicity only"),
    "timeseries": Rule(NONE, "the bucket pattern by hand: one document per sensor-hour"),
    "partialFilterExpression": Rule(FROM_50, "before 5.0: a sparse index, or one collection per kind"),
    "collation": Rule(ONLY_80, "before 8.0: store a normalised (lower-cased) copy and index it"),
    "capped": Rule(NONE, "a TTL index on a timestamp"),
}
# Operators this project's lessons use that every version supports (the same tables).
# fmt: off
SUPPORTED = {
    "$match", "$group", "$sort", "$limit", "$skip", "$project", "$unwind", "$lookup", "$addFields", "$count",
    "$out", "$sample", "$replaceRoot", "$currentOp", "$sum", "$avg", "$min", "$max", "$push", "$addToSet",
    "$first", "$last", "$size", "$multiply", "$add", "$subtract", "$divide", "$arrayElemAt", "$literal",
    "$dateToString", "$cond", "$ifNull", "$in", "$nin", "$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$and",
    "$or", "$not", "$nor", "$exists", "$type", "$regex", "$elemMatch", "$all", "$slice", "$each", "$position",
    "$inc", "$set", "$unset", "$rename", "$pop", "$pull", "$pullAll", "$mul", "$setOnInsert", "$currentDate",
    "$map", "$filter", "$mergeObjects", "$concat", "$toLower", "$toUpper",
}
# fmt: on
EXTENDED_JSON = {"$oid", "$date", "$numberDecimal", "$numberLong", "$numberInt", "$binary"}
# The calls recognised by method name. pymongo's watch() takes a pipeline list or nothing; Redis' WATCH
# takes key names: only the first kind is a change stream.
CALLS = {"map_reduce", "inline_map_reduce", "watch", "start_transaction", "with_transaction"}
OPTIONS = {"timeseries", "partialFilterExpression", "collation", "capped", "mapReduce"}  # also dict keys
# The connection options AWS's examples give every driver (tlsCAFile: AWS's CA bundle, downloaded from
# https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem).
DOCDB_OPTIONS = {"tls": "true", "tlsCAFile": "global-bundle.pem", "replicaSet": "rs0",
                 "readPreference": "secondaryPreferred", "retryWrites": "false"}  # fmt: skip
DOCDB_HOST = "docdb-example.cluster-c0ffee.us-east-1.docdb.amazonaws.com:27017"


@dataclass(frozen=True)
class Use:
    lesson: str
    line: int
    name: str  # "$facet", "stage $set", "map_reduce", "partialFilterExpression", ...

    @property
    def rule(self) -> Rule | None:
        return RULES.get(self.name)

    def verdict(self, version: str) -> str:
        if self.rule is not None:
            return "supported" if version in self.rule.supported_in else "rejected"
        return "supported" if self.name.removeprefix("stage ") in SUPPORTED else "unknown"


@dataclass
class PipelineRun:
    name: str
    rejected: dict[str, list[str]]  # version -> operators the checker rejects there
    rows: int  # documents the pipeline returned (or wrote) as written
    rewritten_rejected: list[str] = field(default_factory=list)  # on TARGET, after the rewrite
    same_result: bool | None = None  # None: passed as written, nothing to compare


@dataclass
class CompatibilityResult:
    lessons_scanned: list[str]
    uses: list[Use]
    rejected: dict[str, dict[str, list[str]]]  # version -> lesson -> operators rejected there
    text_hits: dict[str, int]  # rejected operator -> source lines mentioning it (a text search)
    watch_calls: int  # .watch(...) calls seen
    change_streams: int  # those that open a change stream (the others pass a key: Redis' WATCH)
    # url; raw (its options as written); refusal (pymongo's error while the CA bundle is not on disk);
    # options (validated, without tlsCAFile); client (what a MongoClient from it will do); plain (the
    # same for the bare host: pymongo's defaults); warning (pymongo's, on seeing a DocumentDB host)
    connection: dict
    pipelines: list[PipelineRun]

    @property
    def holds(self) -> bool:
        rewrites = [p for p in self.pipelines if p.rejected[TARGET]]
        return (
            bool(self.rejected[TARGET])
            and bool(rewrites)
            and all(p.same_result and not p.rewritten_rejected for p in rewrites)
            and self.connection["client"]["retry_writes"] is False
        )


# --- the checker -------------------------------------------------------------------------------------
def scan_source(source: str, lesson: str) -> tuple[list[Use], int]:
    """Every $operator dict key, recognised call and option in `source`; and how many .watch() calls."""
    tree = ast.parse(source)
    in_a_list = {
        id(element) for node in ast.walk(tree) if isinstance(node, ast.List) for element in node.elts
    }
    uses, watch_calls = [], 0
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key in node.keys:
                if isinstance(key, ast.Constant) and isinstance(key.value, str):
                    uses += _key_use(key.value, key.lineno, lesson, id(node) in in_a_list)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            name = node.func.attr
            watch_calls += name == "watch"
            if name in CALLS and (name != "watch" or _change_stream(node)):
                uses.append(Use(lesson, node.lineno, "map_reduce" if "map_reduce" in name else name))
            if name == "command" and node.args and _constant(node.args[0]) == "mapReduce":
                uses.append(Use(lesson, node.lineno, "mapReduce"))  # db.command("mapReduce", ...)
            uses += [Use(lesson, node.lineno, kw.arg) for kw in node.keywords if kw.arg in OPTIONS]
    return uses, watch_calls


def _key_use(key: str, line: int, lesson: str, stage: bool) -> list[Use]:
    if key in OPTIONS:
        return [Use(lesson, line, key)]
    if not key.startswith("$") or key in EXTENDED_JSON:
        return []
    return [Use(lesson, line, f"stage {key}" if stage and f"stage {key}" in RULES else key)]


def _change_stream(call: ast.Call) -> bool:
    return not call.args or isinstance(call.args[0], (ast.List, ast.ListComp))


def _constant(node: ast.expr) -> object:
    return node.value if isinstance(node, ast.Constant) else None


def pipeline_uses(pipeline: list[dict], name: str) -> list[Use]:
    """The same checker on a live pipeline (lists of dicts), the top-level dicts being its stages."""
    uses: list[Use] = []

    def walk(value: object, stage: bool) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                uses.extend(_key_use(key, 0, name, stage) if isinstance(key, str) else [])
                walk(inner, False)
        elif isinstance(value, list):
            for inner in value:
                walk(inner, isinstance(inner, dict))

    walk(pipeline, False)
    return uses


def rejected_names(uses: list[Use], version: str) -> list[str]:
    return sorted({use.name for use in uses if use.verdict(version) == "rejected"})


def scan_lessons() -> tuple[list[str], list[Use], dict[str, int], int]:
    """Every lesson that imports pymongo, this one excepted (the topic folders of common.catalog)."""
    scanned, uses, text_hits, watch_calls = [], [], {}, 0
    for path in sorted(
        p for topic in TOPICS for p in (ROOT / topic).glob("*.py") if not p.name.startswith("_")
    ):
        lesson, source = path.relative_to(ROOT).as_posix(), path.read_text()
        if path.name == "documentdb_compatibility.py" or not re.search(
            r"^(import|from) pymongo", source, re.M
        ):
            continue
        found, watches = scan_source(source, lesson)
        scanned.append(lesson)
        uses += found
        watch_calls += watches
        for name in rejected_names(found, TARGET):
            word = re.compile(re.escape(name.removeprefix("stage ")) + r"(?![A-Za-z])")
            text_hits[name] = text_hits.get(name, 0) + sum(
                bool(word.search(line)) for line in source.splitlines()
            )
    return scanned, uses, text_hits, watch_calls


# --- connection settings -----------------------------------------------------------------------------
def connection_settings() -> dict:
    url = f"mongodb://app:app-password@{DOCDB_HOST}/?{urlencode(DOCDB_OPTIONS)}"
    raw = dict(uri_parser.parse_uri(url, validate=False)["options"])
    try:
        uri_parser.parse_uri(url)
        refusal = ""
    except (OSError, ValueError) as error:  # pymongo opens the CA file while it parses
        refusal = f"{type(error).__name__}: {error}"
    without_ca = url.replace("&tlsCAFile=global-bundle.pem", "")
    options = dict(uri_parser.parse_uri(without_ca)["options"])
    with warnings.catch_warnings(record=True) as caught:  # pymongo warns when the host is DocumentDB's
        warnings.simplefilter("always")
        settings = client_settings(without_ca)
        plain = client_settings(f"mongodb://app:app-password@{DOCDB_HOST}/")
    warning = next((str(w.message) for w in caught if "DocumentDB" in str(w.message)), "")
    return {"url": url, "raw": raw, "refusal": refusal, "options": options, "client": settings,
            "plain": plain, "warning": warning}  # fmt: skip


def client_settings(url: str) -> dict[str, object]:
    """What a MongoClient built from `url` will do (connect=False: no connection is attempted)."""
    with pymongo.MongoClient(url, connect=False) as client:
        options = client.options
        return {"retry_writes": options.retry_writes, "read_preference": client.read_preference.mongos_mode,
                "replica_set_name": options.replica_set_name, "tls": options.pool_options._ssl_context is not None}  # fmt: skip


# --- the aggregation lesson's pipelines, as written and rewritten ----------------------------------
def load_patterns():
    """The aggregation lesson's module, loaded from its file (importing a lesson does no work)."""
    spec = importlib.util.spec_from_file_location("_aggregation_patterns", ROOT / PATTERNS)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def bucket_as_group(spec: dict) -> list[dict]:
    """$bucket on a field path, as $match + $group on nested $cond (every version has $cond)."""
    path, bounds = spec["groupBy"], spec["boundaries"]
    if "default" in spec or not (isinstance(path, str) and path.startswith("$")):
        raise ValueError("only $bucket on a field path without `default` is rewritten here")
    band: object = bounds[-2]
    for low, high in reversed(list(pairwise(bounds))[:-1]):
        band = {"$cond": [{"$lt": [path, high]}, low, band]}
    output = spec.get("output", {"count": {"$sum": 1}})
    return [
        {"$match": {path[1:]: {"$gte": bounds[0], "$lt": bounds[-1]}}},
        {"$group": {"_id": band, **output}},
        {"$sort": {"_id": 1}},
    ]


def without_bucket(pipeline: list[dict]) -> list[dict]:
    return [
        part
        for stage in pipeline
        for part in (bucket_as_group(stage["$bucket"]) if "$bucket" in stage else [stage])
    ]


def facets_apart(pipeline: list[dict]) -> dict[str, list[dict]]:
    """A pipeline ending in $facet, as one pipeline per facet."""
    *prefix, last = pipeline
    return {name: without_bucket([*prefix, *inner]) for name, inner in last["$facet"].items()}


def merge_by_hand(db, pipeline: list[dict], into: str) -> None:
    """What $merge does, done by the client: the documents, then upserts (on _id) into `into`."""
    *body, last = pipeline
    spec = last["$merge"]
    insert = spec.get("whenNotMatched", "insert") == "insert"
    if spec.get("whenMatched", "merge") == "replace":
        writes = [ReplaceOne({"_id": d["_id"]}, d, upsert=insert) for d in db.orders.aggregate(body)]
    else:
        writes = [UpdateOne({"_id": d["_id"]}, {"$set": d}, upsert=insert) for d in db.orders.aggregate(body)]
    if writes:
        db[into].bulk_write(writes)


def facet_both_ways(db, pipeline: list[dict]) -> tuple[int, list[str], bool]:
    """Rows as written, what the checker still rejects in the rewrite, and whether the results agree."""
    [native] = db.orders.aggregate(pipeline)
    apart = facets_apart(pipeline)
    left = sorted({n for p in apart.values() for n in rejected_names(pipeline_uses(p, "rewrite"), TARGET)})
    same = native == {facet: list(db.orders.aggregate(p)) for facet, p in apart.items()}
    return sum(len(docs) for docs in native.values()), left, same


def merge_both_ways(db, pipeline: list[dict]) -> tuple[int, list[str], bool]:
    db.orders.aggregate([*pipeline[:-1], {"$merge": {**pipeline[-1]["$merge"], "into": "report_by_merge"}}])
    merge_by_hand(db, pipeline, "report_by_hand")
    left = rejected_names(pipeline_uses(pipeline[:-1], "rewrite"), TARGET)
    by_merge, by_hand = (list(db[name].find().sort("_id")) for name in ("report_by_merge", "report_by_hand"))
    return len(by_merge), left, by_merge == by_hand


def run_pipelines(db, patterns) -> list[PipelineRun]:
    data = patterns.generate()
    db.products.insert_many(data.products)  # what TOP_PRODUCTS' $lookup joins
    db.orders.insert_many(data.orders[::EVERY])  # a year of orders, thinned: the rewrites, not the volume
    runs = []
    for name, pipeline in (
        ("revenue by month", patterns.REVENUE_BY_MONTH),
        ("top products", patterns.TOP_PRODUCTS),
        ("summaries ($facet)", patterns.SUMMARIES),
        ("monthly report ($merge)", [*patterns.report_pipeline({}, refresh=1), patterns.MERGE_REPORT]),
    ):
        uses = pipeline_uses(pipeline, name)
        run = PipelineRun(name, {version: rejected_names(uses, version) for version in VERSIONS}, rows=0)
        if "$facet" in pipeline[-1]:
            run.rows, run.rewritten_rejected, run.same_result = facet_both_ways(db, pipeline)
        elif "$merge" in pipeline[-1]:
            run.rows, run.rewritten_rejected, run.same_result = merge_both_ways(db, pipeline)
        else:
            run.rows = len(list(db.orders.aggregate(pipeline)))
        runs.append(run)
    return runs


# --- the lesson ----------------------------------------------------------------------------------------
def per_version(uses: list[Use]) -> dict[str, dict[str, list[str]]]:
    """Version -> lesson -> the operators that version rejects in it."""
    by_lesson: dict[str, list[Use]] = {}
    for use in uses:
        by_lesson.setdefault(use.lesson, []).append(use)
    return {
        version: {
            lesson: names for lesson, found in by_lesson.items() if (names := rejected_names(found, version))
        }
        for version in VERSIONS
    }


def since(versions: tuple[str, ...]) -> str:
    """("4.0", "5.0", "8.0") as "4.0+", () as "none"."""
    if not versions:
        return "none"
    return f"{versions[0]}+" if versions == VERSIONS[VERSIONS.index(versions[0]) :] else ", ".join(versions)


def show_findings(uses: list[Use]) -> None:
    """What some version rejects (and change streams, which need a setting), then each rewrite."""
    rows: dict[tuple[str, str], list[int]] = {}
    for use in uses:
        if use.rule and (len(use.rule.supported_in) < len(VERSIONS) or use.name == "watch"):
            rows.setdefault((use.lesson, use.name), []).append(use.line)
    console.table(
        ["lesson", "operator", "lines", "DocumentDB"],
        [(Path(lesson).name, name, ", ".join(map(str, sorted(set(lines)))), since(RULES[name].supported_in))
         for (lesson, name), lines in sorted(rows.items())],
    )  # fmt: skip
    console.table(
        ["operator", "rewrite"], [(name, RULES[name].rewrite) for name in sorted({n for _, n in rows})]
    )


def run(client: pymongo.MongoClient) -> CompatibilityResult:
    console.title("Amazon DocumentDB compatibility of this project's MongoDB lessons")

    console.step("Walk the MongoDB lessons' source with ast and check every operator against the rule table")
    scanned, uses, text_hits, watch_calls = scan_lessons()
    rejected = per_version(uses)
    change_streams = sum(use.name == "watch" for use in uses)
    unknown = sorted({use.name for use in uses if use.verdict(TARGET) == "unknown"})
    console.say(f"{len(scanned)} lessons import pymongo; {len(uses)} operator keys, calls and options found.")
    show_findings(uses)
    console.table(
        ["DocumentDB", "lessons with a rejected operator", "distinct operators rejected"],
        [(v, len(rejected[v]), len({n for names in rejected[v].values() for n in names})) for v in VERSIONS],
    )
    console.say(f"Not in the rule table (check the AWS page): {', '.join(unknown) or 'none'}.")
    console.say(
        "A text search line by line (as AWS's compat-tool does) finds "
        + ", ".join(f"{name} on {hits} lines" for name, hits in sorted(text_hits.items()))
        + ": docstrings and step titles too, where the AST sees dict keys only."
    )
    console.say(
        f".watch() calls: {watch_calls}; change streams among them: {change_streams} (a key argument: Redis' WATCH)."
    )

    console.step("The connection settings DocumentDB needs, parsed by pymongo's URI parser")
    settings = connection_settings()
    console.say(settings["url"])
    console.table(
        ["option", "as written", "as pymongo reads it"],
        [(k, v, settings["options"].get(k, "(the file)")) for k, v in settings["raw"].items()],
    )
    console.say(f"With the CA bundle not on disk, pymongo refuses the URL: {settings['refusal']}")
    console.table(
        ["a MongoClient", "from this URL", "from the bare host (pymongo's defaults)"],
        [(name, value, settings["plain"][name]) for name, value in settings["client"].items()],
    )
    console.say("Before DocumentDB engine 8.0.2 a retryable write is refused: pymongo retries by default.")
    console.say(f"pymongo recognises the host: {settings['warning'] or '(no warning)'}")

    console.step(
        f"Run {PATTERNS}'s pipelines on a copy of its data: as written, and rewritten for DocumentDB {TARGET}"
    )
    client.drop_database(DATABASE)
    runs = run_pipelines(client[DATABASE], load_patterns())
    console.table(
        ["pipeline", f"rejected by {TARGET}", "by 8.0", "rows", f"rewrite passes {TARGET}", "same result"],
        [
            (p.name, ", ".join(p.rejected[TARGET]) or "-", ", ".join(p.rejected["8.0"]) or "-", p.rows,
             "-" if p.same_result is None else not p.rewritten_rejected, "-" if p.same_result is None else p.same_result)
            for p in runs
        ],
    )  # fmt: skip
    console.say("MongoDB ran both forms here; DocumentDB would refuse the first and run the second.")

    return CompatibilityResult(
        scanned, uses, rejected, text_hits, watch_calls, change_streams, settings, runs
    )


def main() -> int:
    require(*REQUIRES)
    with pymongo.MongoClient(mongo_url(), serverSelectionTimeoutMS=CONNECT_TIMEOUT_S * 1000) as client:
        result = run(client)
    return 0 if result.holds else 1


if __name__ == "__main__":
    raise SystemExit(main())

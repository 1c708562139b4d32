"""MongoDB backups: mongodump and an extended-JSON export restored, and the export no moment matches

A MongoDB backup that fits any deployment is logical: every document read out and written back.
`mongodump` writes each collection as BSON with its indexes beside it and `mongorestore` loads it,
renamed on the way if asked (`--nsFrom`/`--nsTo`). Without the tools the same backup is a few lines
of pymongo: each collection read in `_id` order into canonical extended JSON (`bson.json_util`, which
keeps what plain JSON loses: Decimal128, dates, int versus long, binary) plus its index list, then
inserted into a node of the lesson's own. Each restore is compared with the source at backup time by
document counts, the index list and a SHA-256 over every canonical document in `_id` order.

Then the silent failure: an export taken while the application writes. Each order insert also
increments its customer's `order_count`, in one transaction where the server has them. The export
reads `customers`, then `orders`: the orders placed in between are in the backup, the increments
are not. The restore equals its files by every count and checksum, and the data breaks its own rule:
orders no customer counts. Only an invariant check sees it. The cure is to read every collection at
one moment: a snapshot session (`readConcern: snapshot`, MongoDB 5.0+ on a replica set), or
`mongodump --oplog` of a whole replica set, replayed with `mongorestore --oplogReplay`.

Engine: MongoDB (MONGO_URL: the source, database `mongodb_backups`, reset first); restores go to a
throwaway node of the lesson's own (the local stand-in, or a container of the compose image).
The local stand-in (mongo-java-server) has no sessions: its snapshot export is refused, and the
lesson says so. mongodump/mongorestore run where they are on PATH (MongoDB Database Tools): the
Go module proxy here refuses github.com/mongodb/mongo-tools, so the local install has no build.
Run: `make up SERVICES=mongodb` (or `make local-up`), then `python recovery/mongodb_backups.py`.
Look for: equal counts, indexes and SHA-256 after each restore; the live export whose restore
matches its files yet leaves orders uncounted; the snapshot export that leaves none (real MongoDB).
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

from bson import json_util
from bson.decimal128 import Decimal128
from pymongo import MongoClient
from pymongo.errors import ConfigurationError, OperationFailure

from common import console
from common.settings import CONNECT_TIMEOUT_S, mongo_url, require
from common.timing import timer
from common.workload import Workload
from servers.throwaway import NoThrowaway, throwaway

REQUIRES = ("mongodb",)
DB = "mongodb_backups"
COLLECTIONS = ("customers", "orders")  # exported in this order
SEED = 29
N_CUSTOMERS, N_ORDERS = 200, 2_000  # the stand-in inserts ~1,500 documents/s: kept small
WRITES_BETWEEN = 50  # orders the application places between the two collections of a live export
TOOLS = ("mongodump", "mongorestore")
JSON = json_util.CANONICAL_JSON_OPTIONS  # types kept exactly: {"$numberDecimal": "12.50"}, ...
EPOCH = datetime(2024, 1, 1)


@dataclass(frozen=True)
class State:
    documents: tuple[tuple[str, int], ...]  # (collection, count)
    indexes: tuple[str, ...]  # "collection.name key unique"
    sha256: str  # over every canonical document, collection by collection, in _id order


@dataclass
class Restore:
    expected: State
    restored: State
    size: int = field(default=0, compare=False)
    backup_s: float = field(default=0.0, compare=False)
    restore_s: float = field(default=0.0, compare=False)

    @property
    def equal(self) -> bool:
        return self.expected == self.restored


@dataclass
class LiveExport:
    restored_equals_files: bool  # counts and SHA-256 of the restore equal those of the export files
    uncounted: int = field(compare=False)  # orders in the restore that no customer's order_count holds
    source_uncounted: int = 0  # on the source once the writer stopped
    writes_during: int = field(default=0, compare=False)


@dataclass
class BackupsResult:
    restores: dict[str, Restore] = field(default_factory=dict)  # "export", "mongodump"
    tool_missing: str = ""  # why mongodump did not run, "" when it did
    live: LiveExport | None = None
    snapshot: LiveExport | None = None  # None where the server has no snapshot reads
    snapshot_refused: str = field(default="", compare=False)
    server: str = field(default="", compare=False)

    @property
    def holds(self) -> bool:
        live, snap = self.live, self.snapshot
        return (
            bool(self.restores)
            and all(restore.equal for restore in self.restores.values())
            and live is not None
            and live.restored_equals_files
            and live.uncounted >= WRITES_BETWEEN
            and live.source_uncounted == 0
            and (snap is None or (snap.uncounted == 0 and snap.restored_equals_files))
        )


def connect(url: str) -> MongoClient:
    return MongoClient(url, serverSelectionTimeoutMS=CONNECT_TIMEOUT_S * 1000)


def canonical(doc: dict) -> str:
    return json_util.dumps(doc, json_options=JSON)


def index_names(db, name: str) -> list[str]:
    specs = (ix for ix in db[name].list_indexes() if ix["name"] != "_id_")
    return [f"{name}.{ix['name']} {dict(ix['key'])} unique={bool(ix.get('unique'))}" for ix in specs]


def state_of_lines(lines: dict[str, list[str]], indexes: list[str]) -> State:
    digest = hashlib.sha256()
    for name in COLLECTIONS:
        digest.update(name.encode())
        for line in lines[name]:
            digest.update(line.encode() + b"\n")
    counts = tuple((name, len(lines[name])) for name in COLLECTIONS)
    return State(counts, tuple(sorted(indexes)), digest.hexdigest())


def state(db) -> State:
    lines = {name: [canonical(doc) for doc in db[name].find().sort("_id", 1)] for name in COLLECTIONS}
    return state_of_lines(lines, [ix for name in COLLECTIONS for ix in index_names(db, name)])


def state_of_files(folder: Path) -> State:
    lines = {name: (folder / f"{name}.json").read_text().splitlines() for name in COLLECTIONS}
    specs = [json_util.loads((folder / f"{name}.indexes.json").read_text()) for name in COLLECTIONS]
    named = [
        f"{name}.{ix['name']} {dict(ix['key'])} unique={bool(ix.get('unique'))}"
        for name, found in zip(COLLECTIONS, specs, strict=True)
        for ix in found
        if ix["name"] != "_id_"
    ]
    return state_of_lines(lines, named)


def load(db) -> None:
    """Customers with an order_count each, and the orders it counts; one unique and one plain index."""
    rng = random.Random(SEED)
    db.client.drop_database(DB)
    orders, counts = [], [0] * N_CUSTOMERS
    for i in range(N_ORDERS):
        customer = rng.randrange(N_CUSTOMERS)
        counts[customer] += 1
        orders.append(order(i, customer, rng))
    customers = [
        {"_id": c, "email": f"c{c}@example.com", "since": EPOCH + timedelta(days=c % 700),
         "balance": Decimal128(Decimal(rng.randrange(100_000)) / 100), "tags": rng.sample("abcdef", 2),
         "order_count": counts[c]}
        for c in range(N_CUSTOMERS)
    ]  # fmt: skip
    db.customers.insert_many(customers)
    db.orders.insert_many(orders)
    db.customers.create_index("email", unique=True)
    db.orders.create_index("customer_id")


def order(i: int, customer: int, rng: random.Random) -> dict:
    return {
        "_id": i,
        "customer_id": customer,
        "placed": EPOCH + timedelta(minutes=i),
        "amount": Decimal128(Decimal(rng.randrange(100, 50_000)) / 100),
        "items": [{"sku": f"sku-{rng.randrange(500)}", "qty": rng.randrange(1, 4)} for _ in range(2)],
        "big": 2**40 + i,  # an int64 that plain JSON would keep, a 32-bit reader would not
    }


def export(db, folder: Path, session=None, between=None) -> float:
    """Each collection in _id order as canonical extended JSON, one document a line, plus its indexes."""
    folder.mkdir(parents=True, exist_ok=True)
    with timer() as took:
        for name in COLLECTIONS:
            with open(folder / f"{name}.json", "w") as out:
                for doc in db[name].find(session=session).sort("_id", 1).batch_size(1_000):
                    out.write(canonical(doc) + "\n")
            specs = [dict(ix) for ix in db[name].list_indexes()]  # the snapshot guards documents
            (folder / f"{name}.indexes.json").write_text(json_util.dumps(specs, json_options=JSON))
            if between:
                between(name)
    return took.seconds


def import_files(folder: Path, db) -> float:
    with timer() as took:
        db.client.drop_database(db.name)
        for name in COLLECTIONS:
            with open(folder / f"{name}.json") as lines:
                docs = [json_util.loads(line, json_options=JSON) for line in lines]
            for start in range(0, len(docs), 1_000):
                db[name].insert_many(docs[start : start + 1_000])
            for ix in json_util.loads((folder / f"{name}.indexes.json").read_text()):
                if ix["name"] != "_id_":
                    db[name].create_index(
                        list(ix["key"].items()), name=ix["name"], unique=bool(ix.get("unique"))
                    )
    return took.seconds


def size_of(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def uncounted(db) -> int:
    """Orders that no customer's order_count accounts for: the rule every write keeps."""
    counted = sum(doc["order_count"] for doc in db.customers.find({}, {"order_count": 1}))
    return db.orders.count_documents({}) - counted


def with_tools(urls: tuple[str, str], work: Path, target: MongoClient, at_backup: State) -> Restore:
    """mongodump of the database, then mongorestore into the target node under another name."""
    dump = work / "dump"
    with timer() as dumped:
        subprocess.run([shutil.which("mongodump"), f"--uri={urls[0]}", f"--db={DB}", f"--out={dump}",
                        "--quiet"], check=True, capture_output=True)  # fmt: skip
    with timer() as restored:
        subprocess.run([shutil.which("mongorestore"), f"--uri={urls[1]}", f"--nsFrom={DB}.*",
                        f"--nsTo={DB}_tool.*", "--drop", "--quiet", str(dump)], check=True, capture_output=True)  # fmt: skip
    return Restore(at_backup, state(target[f"{DB}_tool"]), size_of(dump), dumped.seconds, restored.seconds)


def backups(source, target: MongoClient, work: Path, urls: tuple[str, str], result: BackupsResult) -> None:
    console.step("Back up the database two ways and restore each into a node of the lesson's own")
    load(source)
    at_backup = state(source)
    took = export(source, work / "export")
    restore_s = import_files(work / "export", target[DB])
    result.restores["export"] = Restore(
        at_backup, state(target[DB]), size_of(work / "export"), took, restore_s
    )
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        result.tool_missing = f"{' and '.join(missing)} not on PATH (install the MongoDB Database Tools)"
    else:
        result.restores["mongodump"] = with_tools(urls, work, target, at_backup)
    console.table(
        ["backup", "size", "backup time", "restore time", "documents", "indexes", "SHA-256 equal"],
        [(name, console.size(r.size), console.seconds(r.backup_s), console.seconds(r.restore_s),
          sum(n for _, n in r.restored.documents), len(r.restored.indexes), r.equal)
         for name, r in result.restores.items()],
    )  # fmt: skip
    if result.tool_missing:
        console.say(
            f"mongodump skipped: {result.tool_missing}; the export above is the same backup in Python."
        )


def place_order(atomic: bool, first_id: int):
    """The application's write: an order and its customer's order_count, in a transaction if it can."""

    def write(client: MongoClient, n: int) -> int:
        db = client[DB]
        new = order(first_id + n, n % N_CUSTOMERS, random.Random(n))

        def both(session=None) -> None:
            db.orders.insert_one(new, session=session)
            db.customers.update_one(
                {"_id": new["customer_id"]}, {"$inc": {"order_count": 1}}, session=session
            )

        if not atomic:
            both()
            return n
        with client.start_session() as session:
            session.with_transaction(both)
        return n

    return write


def live_export(source, target, url: str, work: Path, atomic: bool, snapshot: bool) -> LiveExport:
    """Export the source (whose data keeps the rule) while orders are placed; restore; check it."""
    folder = work / ("snapshot" if snapshot else "live")
    with contextlib.ExitStack() as stack:
        # Refused at once where the server has no sessions; on a replica set every read of the
        # session happens at the cluster time of its first read.
        session = stack.enter_context(source.client.start_session(snapshot=True)) if snapshot else None
        writes = stack.enter_context(Workload(pause_s=0.001))
        first_id = source.orders.find_one(sort=[("_id", -1)])["_id"] + 1
        writes.spawn("write", place_order(atomic, first_id), connect=lambda: connect(url))
        writes.wait_for(20, "write")

        def let_writes_through(name: str) -> None:  # as a larger collection's export would take time
            if name == COLLECTIONS[0]:
                writes.wait_for(len(writes.succeeded("write")) + WRITES_BETWEEN, "write")

        export(source, folder, session, let_writes_through)
        writes.stop()
    restored = target[f"{DB}_{folder.name}"]
    import_files(folder, restored)
    return LiveExport(
        restored_equals_files=state(restored) == state_of_files(folder),
        uncounted=uncounted(restored),
        source_uncounted=uncounted(source),
        writes_during=len(writes.succeeded("write")),
    )


def point_in_time(source, target, url: str, work: Path, result: BackupsResult) -> None:
    console.step("Export while the application places orders, restore, and check the data's own rule")
    hello = source.client.topology_description.server_descriptions()
    replica_set = next(iter(hello.values())).replica_set_name is not None
    result.live = live_export(source, target, url, work, replica_set, snapshot=False)
    try:
        result.snapshot = live_export(source, target, url, work, replica_set, snapshot=True)
    except (ConfigurationError, OperationFailure) as refused:
        result.snapshot_refused = str(refused).splitlines()[0][:120]
    rows = [("live export", result.live)] + (
        [("snapshot session", result.snapshot)] if result.snapshot else []
    )
    console.table(
        ["export", "orders placed during it", "restore equals its files", "orders no customer counts"],
        [(name, x.writes_during, x.restored_equals_files, x.uncounted) for name, x in rows],
    )
    console.say(
        f"Each order and its count were written {'in one transaction' if replica_set else 'one after the other'}; "
        f"the source keeps the rule ({result.live.source_uncounted} uncounted once the writes stop). The live "
        "export read customers before the newest orders: every file check passes, the data does not."
    )
    if result.snapshot is None:
        console.say(f"A snapshot session is refused here: {result.snapshot_refused}.")
    console.say("Check a restore against the data's rules, not only against its own files.")


def server_note(url: str) -> str:
    with connect(url) as client:
        info = client.server_info()
        hello = client.topology_description.server_descriptions()
        replica = next(iter(hello.values())).replica_set_name
    kind = f"replica set {replica}" if replica else "a standalone server (no oplog to dump)"
    return f"MongoDB {info.get('version', '?')} at MONGO_URL, {kind}"


def run(url: str) -> BackupsResult:
    """Source: the database `mongodb_backups` at `url`; restores into a throwaway node."""
    console.title("MongoDB backups: mongodump and an extended-JSON export, restored and checked")
    result = BackupsResult(server=server_note(url))
    console.say(result.server)
    with (
        connect(url) as client,
        throwaway("mongodb") as env,
        connect(env["MONGO_URL"]) as target,
        tempfile.TemporaryDirectory(prefix="mongodb-backups-") as work,
    ):
        source = client[DB]
        backups(source, target, Path(work), (url, env["MONGO_URL"]), result)
        point_in_time(source, target, url, Path(work), result)
        client.drop_database(DB)
    return result


def main() -> int:
    require(*REQUIRES)
    try:
        result = run(mongo_url())
    except NoThrowaway as absent:
        console.error(str(absent))
        return 2
    return 0 if result.holds else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""CouchDB multi-master: revisions, conflicts that replicate, and the application that resolves them

Every CouchDB document carries a revision (`_rev`, `generation-hash`), and a write must name the
revision it replaces: a stale one is refused with 409 Conflict. That is MVCC on one database. Two
databases that replicate both ways (here `east` and `west` on one server; two servers work the same)
each accept writes, so the same customer edited on both sides while they are apart becomes a
conflict once replication meets them. CouchDB does not refuse it: both revisions are kept, and each
side picks the same winner on its own, deterministically: the revision with the longest history
(the highest generation), then the highest revision hash. The losers wait in `_conflicts`
(`?conflicts=true`) until the application merges them (here: each field from its latest edit, tags
united), writes the merge on top of the winner and deletes the losing revisions. Then a changes
feed read from a sequence lists each changed document once however often it was written, and a
Mango index and a map/reduce view give the same answer to the same question.

Engine: CouchDB (COUCHDB_URL; CouchDB 3 in compose, pouchdb-server locally), databases
`couchdb_multi_master_east`, `couchdb_multi_master_west` and `couchdb_multi_master_orders`.
Run: `make up SERVICES=couchdb` (or `make local-up`), then `python nosql/couchdb_multi_master.py`.
Look for: 409 for the stale `_rev`; the winner table, every winner the one the rule predicts and the
same on both sides; the tags the winner alone loses; 0 conflicts after the merge; one change per
document in the feed; equal Mango and view answers, and the index `_explain` names.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import requests

from common import console
from common.settings import CONNECT_TIMEOUT_S, couchdb_url, require
from common.timing import timer

REQUIRES = ("couchdb",)
PREFIX = "couchdb_multi_master"
EAST, WEST, ORDERS = f"{PREFIX}_east", f"{PREFIX}_west", f"{PREFIX}_orders"
TIMEOUT = (CONNECT_TIMEOUT_S, 120)  # connect, then read: a replication answers when it is done
SEED = 7
# Customer -> (edits on east, edits on west) while the two are apart. Equal counts: the hash decides;
# unequal: the longer history wins; one side only: no conflict at all.
EDITS = {"ada": (1, 1), "barbara": (2, 2), "grace": (1, 2), "linus": (3, 1), "ken": (1, 0)}
N_ORDERS, PAGE = 300, 10
STATUSES, REGIONS = ("new", "paid", "shipped"), ("eu", "us")
# A view of the same question Mango answers: orders by status and region, their cents summed by _stats.
MAP = "function (doc) { if (doc.type === 'order') { emit([doc.status, doc.region], doc.cents); } }"


@dataclass
class Mvcc:
    stale_put: int  # PUT with a revision that is no longer current
    missing_rev: int  # PUT without `_rev` on a document that exists
    bulk_stale: str  # _bulk_docs answers 201 and reports the conflict per document


@dataclass
class Winner:
    doc_id: str
    east_rev: str  # the leaf each side ended on while apart
    west_rev: str
    decided_by: str  # "generation" (the longer history wins) or "hash" (equal histories: the higher hash)
    predicted: str
    east_says: str  # the `_rev` each side serves once replication has met both leaves
    west_says: str


@dataclass
class Conflicts:
    winners: list[Winner]
    east: int  # documents with `_conflicts`, on each side
    west: int
    tags_lost: int  # edits (a tag each) that the automatic winners alone do not show

    @property
    def as_predicted(self) -> int:
        return sum(w.predicted == w.east_says == w.west_says for w in self.winners)


@dataclass
class Resolution:
    errors: int  # in the _bulk_docs that writes the merges and deletes the losers
    east: int  # documents still in conflict, on each side
    west: int
    tags_lost: int
    same_on_both: bool  # every customer identical on east and west, _rev included


@dataclass
class Feed:
    writes: int  # writes after the remembered sequence
    documents: int  # distinct documents those writes touched
    rows: int  # rows the feed returned, page after page
    distinct: int  # distinct documents among them
    deleted: int


@dataclass
class Queries:
    mango: dict[str, tuple[int, int]]  # "status/region" -> (documents, cents), from _find
    view: dict[str, tuple[int, int]]  # the same from the view's _stats reduce
    same_ids: bool  # the same documents, not only the same counts
    index_used: str  # what _explain names for the indexed selector
    unindexed_index: str  # ... and for a selector no index covers


@dataclass
class MultiMasterResult:
    server: str
    mvcc: Mvcc
    conflicts: Conflicts
    resolution: Resolution
    feed: Feed
    queries: Queries


# --- HTTP, as the CouchDB API documents it ------------------------------------------------------------


def doc_url(url: str, db: str, doc_id: str) -> str:
    return f"{url}/{db}/{quote(doc_id, safe='')}"


def reset(http: requests.Session, url: str, *databases: str) -> None:
    for db in databases:
        http.delete(f"{url}/{db}", timeout=TIMEOUT)  # 404 when it is not there: fine
        http.put(f"{url}/{db}", timeout=TIMEOUT).raise_for_status()


def bulk(http: requests.Session, url: str, db: str, docs: list[dict]) -> list[dict]:
    answer = http.post(f"{url}/{db}/_bulk_docs", json={"docs": docs}, timeout=TIMEOUT)
    answer.raise_for_status()
    return answer.json()


def get(http: requests.Session, url: str, db: str, doc_id: str, **params) -> dict:
    answer = http.get(doc_url(url, db, doc_id), params=params, timeout=TIMEOUT)
    answer.raise_for_status()
    return answer.json()


def put(http: requests.Session, url: str, db: str, doc: dict) -> str:
    answer = http.put(doc_url(url, db, doc["_id"]), json=doc, timeout=TIMEOUT)
    answer.raise_for_status()
    return answer.json()["rev"]


def own_address(http: requests.Session, url: str) -> str:
    """The server as it reaches itself. The replicator runs inside the server, where the address we
    use (a container's published port) may mean nothing: its own port on loopback, our credentials."""
    credentials = urlsplit(url).netloc.rpartition("@")[0]
    for path in ("_node/_local/_config/chttpd/port", "_config/httpd/port"):  # CouchDB 3; the stand-in
        answer = http.get(f"{url}/{path}", timeout=TIMEOUT)
        if answer.ok:
            return f"http://{credentials + '@' if credentials else ''}127.0.0.1:{answer.json()}"
    return url  # no configuration to read (a hosted service): the address we were given


def replicate(http: requests.Session, url: str, source: str, target: str) -> tuple[int, float]:
    """One-shot replication, source to target; (documents written, seconds)."""
    itself = own_address(http, url)
    body = {"source": f"{itself}/{source}", "target": f"{itself}/{target}"}
    with timer() as took:
        answer = http.post(f"{url}/_replicate", json=body, timeout=TIMEOUT)
    answer.raise_for_status()
    report = answer.json()
    if report.get("no_changes"):
        return 0, took.seconds
    # CouchDB reports this session first in `history`; PouchDB's server at the top level.
    return (report.get("history") or [report])[0].get("docs_written", 0), took.seconds


def replicate_both_ways(http: requests.Session, url: str) -> None:
    for source, target in ((EAST, WEST), (WEST, EAST)):
        written, seconds = replicate(http, url, source, target)
        console.say(f"{source} -> {target}: {written} documents written in {console.seconds(seconds)}")


def conflicted(http: requests.Session, url: str, db: str) -> dict[str, list[str]]:
    """Every document with losing revisions, and those revisions."""
    params = {"include_docs": "true", "conflicts": "true"}
    rows = http.get(f"{url}/{db}/_all_docs", params=params, timeout=TIMEOUT).json()["rows"]
    return {row["id"]: row["doc"]["_conflicts"] for row in rows if row["doc"].get("_conflicts")}


# --- the lesson ---------------------------------------------------------------------------------------


def rev_key(rev: str) -> tuple[int, str]:
    """CouchDB's order of revisions: generation first, then the hash compared as text."""
    generation, _, digest = rev.partition("-")
    return int(generation), digest


def short(rev: str) -> str:
    generation, _, digest = rev.partition("-")
    return f"{generation}-{digest[:4]}"  # enough to tell the leaves apart in a table


def customer(name: str) -> dict:
    # `stamps`: the application's own clock of each field's last edit, for its merge.
    email, phone, stamps = f"{name}@example.com", "+1-555-0100", {"email": 0, "phone": 0}
    return {"_id": name, "email": email, "phone": phone, "tags": ["customer"], "stamps": stamps}


def mvcc(http: requests.Session, url: str) -> Mvcc:
    """Write with the current revision, then with a stale one, then with none."""
    first = get(http, url, EAST, "ada")
    current = put(http, url, EAST, {**first, "phone": "+1-555-0101"})
    stale = http.put(doc_url(url, EAST, "ada"), json={**first, "phone": "stale"}, timeout=TIMEOUT)
    no_rev = {k: v for k, v in first.items() if k != "_rev"}
    missing = http.put(doc_url(url, EAST, "ada"), json=no_rev, timeout=TIMEOUT)
    in_bulk = bulk(http, url, EAST, [{**first, "phone": "stale in bulk"}])[0]
    rows = [
        ("PUT, the current _rev", short(first["_rev"]), f"201, new _rev {short(current)}"),
        ("PUT, that _rev again", short(first["_rev"]), f"{stale.status_code} {stale.json()['error']}"),
        ("PUT, no _rev", "none", f"{missing.status_code} {missing.json()['error']}"),
        ("_bulk_docs, that _rev", short(first["_rev"]), f"201, the document: {in_bulk.get('error')}"),
    ]
    console.table(["write", "_rev sent", "answer"], rows)
    return Mvcc(stale.status_code, missing.status_code, in_bulk.get("error", ""))


def edit(http: requests.Session, url: str, db: str, doc_id: str, side: str, n: int, clock: int) -> str:
    """The application's edit: east changes the email, west the phone; each adds a tag."""
    doc = get(http, url, db, doc_id)
    changed = "email" if side == "east" else "phone"
    doc[changed] = f"{doc_id}.{n}@east.example" if side == "east" else f"+1-555-{clock:04}"
    doc["stamps"][changed] = clock
    doc["tags"] = [*doc["tags"], f"{side}-{n}"]
    return put(http, url, db, doc)


def edit_apart(http: requests.Session, url: str) -> dict[str, tuple[str, str]]:
    """Both sides edit while no replication runs; the leaf revision each side ends on."""
    clock, leaves = 0, {}
    for doc_id, (east_edits, west_edits) in EDITS.items():
        leaf = {}
        for side, db, count in (("east", EAST, east_edits), ("west", WEST, west_edits)):
            leaf[side] = get(http, url, db, doc_id)["_rev"]
            for n in range(1, count + 1):
                clock += 1
                leaf[side] = edit(http, url, db, doc_id, side, n, clock)
        leaves[doc_id] = (leaf["east"], leaf["west"])
    return leaves


def expected_tags(doc_id: str) -> set[str]:
    """The tags a document holds once every edit counts: one per edit, on either side."""
    counts = dict(zip(("east", "west"), EDITS[doc_id], strict=True))
    return {"customer"} | {f"{side}-{n}" for side, count in counts.items() for n in range(1, count + 1)}


def winners(http: requests.Session, url: str, leaves: dict[str, tuple[str, str]]) -> list[Winner]:
    """Each conflict's leaves, the winner the rule predicts, and the winner each side shows."""
    found = []
    for doc_id, (east_rev, west_rev) in leaves.items():
        if 0 in EDITS[doc_id]:
            continue  # edited on one side only: replication carried the edit over, no conflict
        by = "generation" if rev_key(east_rev)[0] != rev_key(west_rev)[0] else "hash"
        predicted = max(east_rev, west_rev, key=rev_key)
        east_says, west_says = (get(http, url, db, doc_id)["_rev"] for db in (EAST, WEST))
        found.append(Winner(doc_id, east_rev, west_rev, by, predicted, east_says, west_says))
    console.table(
        ["customer", "east leaf", "west leaf", "decided by", "predicted", "on east", "on west"],
        [
            (w.doc_id, short(w.east_rev), short(w.west_rev), w.decided_by)
            + (short(w.predicted), short(w.east_says), short(w.west_says))
            for w in found
        ],
    )
    return found


def merge(revisions: list[dict]) -> dict:
    """Each field from the revision that edited it last (the application's stamps), tags united."""
    latest = {name: max(revisions, key=lambda doc: doc["stamps"][name]) for name in ("email", "phone")}
    return {
        **revisions[0],  # the winner: its _id, and the _rev the merge replaces
        **{name: doc[name] for name, doc in latest.items()},
        "stamps": {name: doc["stamps"][name] for name, doc in latest.items()},
        "tags": sorted({tag for doc in revisions for tag in doc["tags"]}),
    }


def resolve(http: requests.Session, url: str) -> int:
    """On east: the merge on top of the winner and a deletion of every loser, in one _bulk_docs."""
    writes = []
    for doc_id, losers in conflicted(http, url, EAST).items():
        revisions = [get(http, url, EAST, doc_id), *(get(http, url, EAST, doc_id, rev=rev) for rev in losers)]
        writes.append(merge(revisions))
        writes += [{"_id": doc_id, "_rev": rev, "_deleted": True} for rev in losers]
    answers = bulk(http, url, EAST, writes)
    return sum("error" in answer for answer in answers)


def tags_lost(http: requests.Session, url: str, db: str, doc_ids) -> int:
    return sum(len(expected_tags(d) - set(get(http, url, db, d)["tags"])) for d in doc_ids)


def order(n: int, rng: random.Random) -> dict:
    return {
        "_id": f"order-{n:05}",
        "type": "order",
        "status": rng.choice(STATUSES),
        "region": rng.choice(REGIONS),
        "cents": rng.randrange(500, 50_000),
    }


def write_after(http: requests.Session, url: str) -> tuple[int, int]:
    """Forty orders paid (ten of them written twice), five new, three deleted: (writes, documents)."""
    listing = http.get(f"{url}/{ORDERS}/_all_docs", params={"include_docs": "true"}, timeout=TIMEOUT)
    docs = {row["id"]: row["doc"] for row in listing.json()["rows"]}
    ids = sorted(docs)
    paid, gone = ids[:40], ids[40:43]
    writes = 0
    for batch in (paid, paid[:10]):
        for answer in bulk(http, url, ORDERS, [{**docs[i], "status": "paid"} for i in batch]):
            docs[answer["id"]]["_rev"] = answer["rev"]
        writes += len(batch)
    new = [order(N_ORDERS + n, random.Random(SEED + n)) for n in range(5)]
    writes += len(bulk(http, url, ORDERS, new))
    tombstones = [{"_id": i, "_rev": docs[i]["_rev"], "_deleted": True} for i in gone]
    writes += len(bulk(http, url, ORDERS, tombstones))
    return writes, len(paid) + len(new) + len(gone)


def changes_feed(http: requests.Session, url: str) -> Feed:
    """Remember the sequence, write, then read the feed from it a page at a time."""
    since = http.get(f"{url}/{ORDERS}", timeout=TIMEOUT).json()["update_seq"]  # opaque: keep, never parse
    writes, documents = write_after(http, url)
    rows, pages = [], 0
    while True:
        params = {"since": since, "limit": PAGE}
        page = http.get(f"{url}/{ORDERS}/_changes", params=params, timeout=TIMEOUT).json()
        if not page["results"]:
            break
        rows += page["results"]
        since, pages = page["last_seq"], pages + 1
    feed = Feed(writes, documents, len(rows), len({r["id"] for r in rows}), sum("deleted" in r for r in rows))
    console.say(
        f"{writes} writes to {documents} documents; the feed read {PAGE} rows a page, {pages} pages: "
        f"{feed.rows} rows, {feed.distinct} distinct documents, {feed.deleted} of them deleted"
    )
    return feed


def mango_against_view(http: requests.Session, url: str) -> Queries:
    """The orders of each status and region, with their total: by Mango on an index, and by a view."""
    index = {"index": {"fields": ["status", "region"]}, "name": "by-status-region", "type": "json"}
    http.post(f"{url}/{ORDERS}/_index", json=index, timeout=TIMEOUT).raise_for_status()
    put(
        http,
        url,
        ORDERS,
        {"_id": "_design/reports", "views": {"by_status_region": {"map": MAP, "reduce": "_stats"}}},
    )
    mango, mango_ids = {}, {}
    for status in STATUSES:
        for region in REGIONS:
            query = {"selector": {"status": status, "region": region}, "fields": ["_id", "cents"]}
            query["limit"] = 2 * N_ORDERS  # _find returns 25 documents unless told otherwise
            docs = http.post(f"{url}/{ORDERS}/_find", json=query, timeout=TIMEOUT).json()["docs"]
            mango[f"{status}/{region}"] = (len(docs), sum(doc["cents"] for doc in docs))
            mango_ids[f"{status}/{region}"] = sorted(doc["_id"] for doc in docs)
    view_url = f"{url}/{ORDERS}/_design/reports/_view/by_status_region"
    grouped = http.get(view_url, params={"group": "true"}, timeout=TIMEOUT).json()["rows"]
    view = {"/".join(r["key"]): (r["value"]["count"], int(r["value"]["sum"])) for r in grouped}
    view_ids: dict[str, list[str]] = {}
    for row in http.get(view_url, params={"reduce": "false"}, timeout=TIMEOUT).json()["rows"]:
        view_ids.setdefault("/".join(row["key"]), []).append(row["id"])
    console.table(
        ["status/region", "_find docs", "_find cents", "view count", "view sum"],
        [(key, *mango[key], *view.get(key, ("-", "-"))) for key in mango],
    )
    plans = []
    for selector in ({"status": "paid", "region": "eu"}, {"cents": {"$gt": 40_000}}):
        plan = http.post(f"{url}/{ORDERS}/_explain", json={"selector": selector}, timeout=TIMEOUT)
        plans.append(plan.json()["index"]["name"] if plan.ok else "(no _explain)")
        console.say(f"_explain {json.dumps(selector)}: index {plans[-1]}")
    same_ids = mango_ids == {key: sorted(ids) for key, ids in view_ids.items()}
    return Queries(mango, view, same_ids, *plans)


def run(url: str) -> MultiMasterResult:
    url = url.rstrip("/")
    http = requests.Session()
    welcome = http.get(url, timeout=TIMEOUT).json()
    server = ("CouchDB " if "couchdb" in welcome else "pouchdb-server ") + welcome.get("version", "?")
    console.title(f"CouchDB multi-master: revisions, conflicts and their resolution, on {server}")

    console.step("Reset the three databases; five customers on east, orders on their own")
    reset(http, url, EAST, WEST, ORDERS)
    bulk(http, url, EAST, [customer(name) for name in EDITS])
    rng = random.Random(SEED)
    bulk(http, url, ORDERS, [order(n, rng) for n in range(N_ORDERS)])

    console.step("Revisions: every write names the revision it replaces")
    revisions = mvcc(http, url)

    console.step("Replicate both ways: two copies, either one writable")
    replicate_both_ways(http, url)

    console.step("Edit the same customers on both sides while they are apart")
    leaves = edit_apart(http, url)
    edits = [sum(counts[side] for counts in EDITS.values()) for side in (0, 1)]
    console.say(f"{edits[0]} edits on east, {edits[1]} on west, no replication running")

    console.step("Replicate again: the conflicts travel, and both sides pick the same winner")
    replicate_both_ways(http, url)
    found = winners(http, url, leaves)
    east, west = (len(conflicted(http, url, db)) for db in (EAST, WEST))
    conflicts = Conflicts(found, east, west, tags_lost(http, url, EAST, [w.doc_id for w in found]))
    console.say(f"documents in conflict: east {east}, west {west}")
    console.say(f"tags (one per edit) missing from the winners alone: {conflicts.tags_lost}")

    console.step("Resolve in the application: merge, then delete the losing revisions")
    errors = resolve(http, url)
    replicate_both_ways(http, url)
    east, west = (len(conflicted(http, url, db)) for db in (EAST, WEST))
    lost = sum(tags_lost(http, url, db, EDITS) for db in (EAST, WEST))
    same = all(get(http, url, EAST, name) == get(http, url, WEST, name) for name in EDITS)
    resolution = Resolution(errors, east, west, lost, same)
    console.say(
        f"conflicts left: east {east}, west {west}; tags missing: {lost}; both sides identical: {same}"
    )

    console.step("The changes feed: every changed document once, from a sequence on")
    feed = changes_feed(http, url)

    console.step("A Mango index and a map/reduce view answer the same question")
    queries = mango_against_view(http, url)
    return MultiMasterResult(server, revisions, conflicts, resolution, feed, queries)


def main() -> int:
    require(*REQUIRES)
    result = run(couchdb_url())
    conflicts, resolution = result.conflicts, result.resolution
    holds = (
        result.mvcc.stale_put == 409
        and conflicts.as_predicted == len(conflicts.winners) > 0
        and resolution.east == resolution.west == 0
    )
    return 0 if holds else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""MongoDB replica set: elections, retryable writes, and the w:1 writes a rollback takes back

A replica set has one primary; when it steps down or dies, the other members elect another (after
`electionTimeoutMillis` without a heartbeat, 10 s by default; the manual expects a median under 12 s).
A driver given the set's address finds the new primary itself, and retryable writes (the default in
drivers for MongoDB 4.2 and later) retry a write cut short by the change, once. A writer that records
every write (common/workload.py) goes through three changes; its acknowledged writes are then
compared with what the new primary holds. `replSetStepDown`, one secondary frozen by `replSetFreeze`
so the other must take over: as a rule handed over at once (election handoff, `stepUpRequestSkipDryRun`),
no write failed or lost. The primary cut off from both secondaries (their containers paused) while it
acknowledges `w:1` writes, then killed: the two elect a successor, and when the old primary returns
it rolls back what no other member had, into `<dbpath>/rollback/`; those acknowledged writes are
lost. A read with read concern `local` on the cut-off primary counts them; `majority` does not. The
same crash with `w: "majority"`: nothing is acknowledged before a majority has it, so the rollback
takes no acknowledged write; the price is that writes wait while no majority answers.

Engine: a MongoDB replica set of three members (MONGO_RS_URL, default the compose `cluster` profile
on 127.0.0.1:27018-27020), database `mongodb_replica_set`; MONGO_URL must answer too (the catalog's
MongoDB). The local stand-in (mongo-java-server) has no replication: the lesson says so in one line
and exits 2. Step-down and freeze go through the driver and work on any set; the crash needs the
members to be the compose containers (Docker), else the lesson says so and skips it.
Run: `make up TOPIC=cluster` (Docker), then `python recovery/mongodb_replica_set.py`.
Look for: the new primary and the seconds without a successful write after each change; 0 failed
and 0 lost across the step-down; the w:1 writes lost (and in rollback files); 0 lost with majority.
Documentation (mongodb.com/docs/manual/): core/replica-set-elections, core/retryable-writes,
reference/command/replSetStepDown, replSetFreeze and replSetGetStatus, core/replica-set-write-concern,
reference/read-concern-majority, core/replica-set-rollbacks.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import socket
import tarfile
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import pairwise
from urllib.parse import parse_qsl, urlencode

import bson
import docker
from pymongo import MongoClient, ReadPreference, uri_parser
from pymongo.errors import AutoReconnect, ConfigurationError, InvalidURI, PyMongoError
from pymongo.monitoring import CommandListener
from pymongo.read_concern import ReadConcern

from common import console
from common.settings import CONNECT_TIMEOUT_S, UNAVAILABLE, BadSetting, require
from common.workload import Attempt, Workload

REQUIRES = ("mongodb",)
DB = "mongodb_replica_set"
RS_VARIABLE = "MONGO_RS_URL"
RS_DEFAULT = "mongodb://127.0.0.1:27018,127.0.0.1:27019,127.0.0.1:27020/?replicaSet=cluster"
COMPOSE_PROJECT, MEMBER_SERVICES = "database-examples", ("mongodb_rs1", "mongodb_rs2", "mongodb_rs3")
LOOPBACK = ("127.0.0.1:", "localhost:")
STEP_DOWN, W1, MAJORITY = "step-down", "w:1 crash", "w:majority crash"
STEP_DOWN_S = 10  # the stepped-down primary (and the frozen secondary) may not stand for this long
WARM = AFTER = 30  # successful writes before each change, and after a new primary answers
ISOLATION_S = 1.0  # the cut-off primary acknowledges w:1 writes this long (at most half the timeout)
WAIT_S = 120.0  # longest wait for an election or for a member to rejoin
ROLLBACK_DIR = "/data/db/rollback"  # <dbpath>/rollback in the mongo image


@dataclass(frozen=True)
class Member:
    name: str
    state: str
    behind_s: float | None  # the primary's last optime minus this member's; None when it is down


@dataclass(frozen=True)
class Tally:
    lost: int  # acknowledged writes the new primary does not have
    lost_in_rollback_files: int  # of those, the ones the old primary saved under rollback/
    rolled_back: int  # documents of the setup in the rollback files, acknowledged or not


@dataclass
class Setup:
    """One change the writer went through: a row of recovery/README.md's high-availability table."""

    name: str
    configured: str
    old_primary: str
    new_primary: str
    election_reason: str
    acknowledged: int
    failed: int
    retried: int  # insert commands sent beyond one per attempt: the driver's own retries
    lost: int
    seconds_without_writes: float = field(compare=False)
    election_s: float = field(compare=False)  # from the change until another member accepts writes
    rollback: Tally | None = None  # None: no rollback files read (no crash)


@dataclass
class ReplicaSetResult:
    replica_set: str
    version: str
    members: list[Member]
    votes_for_majority: int
    election_timeout_ms: int
    setups: dict[str, Setup] = field(default_factory=dict)
    step_down_target: str = ""  # the secondary left unfrozen: the one that had to win
    majority_read: int | None = None  # documents of the w:1 crash on the cut-off primary, read majority
    local_read: int | None = None  # the same, read local
    crash_skipped: str = ""  # why the crashes did not run ("" when they did)

    @property
    def holds(self) -> bool:
        down = self.setups.get(STEP_DOWN)
        if down is None or down.lost or down.new_primary != self.step_down_target:
            return False
        if self.crash_skipped:
            return True
        w1, majority = self.setups[W1], self.setups[MAJORITY]
        cut_off_reads = (self.local_read or 0) > (self.majority_read or 0)
        return w1.lost > 0 and majority.lost == 0 and majority.acknowledged > 0 and cut_off_reads


# --- addresses: the set, one member, and what answers there ----------------------------------------


def rs_url() -> str:
    """MONGO_RS_URL, else the compose `cluster` profile's three members; BadSetting when unusable."""
    value = os.environ.get(RS_VARIABLE, RS_DEFAULT)
    try:
        uri_parser.parse_uri(value)
    except (InvalidURI, ConfigurationError, ValueError) as bad:
        shown = re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", value)  # no password in a CI log
        raise BadSetting(RS_VARIABLE, shown, first_line(bad), f"an address like {RS_DEFAULT}") from None
    return value


def _split(url: str) -> tuple[str, str, str, list[tuple[str, str]]]:
    """Scheme, `user:password@`, path and the options other than how to find members."""
    scheme, _, rest = url.partition("://")
    netloc, _, tail = rest.partition("/")
    path, _, query = tail.partition("?")
    userinfo, at, _hosts = netloc.rpartition("@")
    found = ("directconnection", "replicaset")
    options = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k.lower() not in found]
    return scheme, userinfo + at, path, options


def replica_set_url(url: str, name: str) -> str:
    """`url` for the whole set: the driver discovers every member of `name` and follows the primary."""
    scheme, userinfo, path, options = _split(url)
    hosts = url.partition("://")[2].partition("/")[0].rpartition("@")[2]
    return f"{scheme}://{userinfo}{hosts}/{path}?{urlencode([*options, ('replicaSet', name)])}"


def member_url(url: str, address: str) -> str:
    """One member directly (no discovery), with `url`'s credentials and options."""
    scheme, userinfo, path, options = _split(url)
    if scheme == "mongodb+srv" and not any(k.lower() in ("tls", "ssl") for k, _ in options):
        options.append(("tls", "true"))  # +srv implies TLS; a plain address must say so
    return f"mongodb://{userinfo}{address}/{path}?{urlencode([*options, ('directConnection', 'true')])}"


def first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:200]


def _answers(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
        return True
    return False


def replica_set_problem(url: str) -> str | None:
    """Why `url` is not a replica set of three or more members; None when it is one."""
    seeds = [f"{host}:{port}" for host, port in uri_parser.parse_uri(url)["nodelist"]]
    answering = [seed for seed in seeds if _answers(*seed.rsplit(":", 1))]
    if not answering:
        return "nothing answers at " + ", ".join(seeds)
    with MongoClient(member_url(url, answering[0]), serverSelectionTimeoutMS=CONNECT_TIMEOUT_S * 1000) as one:
        try:
            version = one.server_info().get("version", "?")
        except PyMongoError as refused:
            return f"{answering[0]} refuses the lesson ({first_line(refused)})"
        seen = next(iter(one.topology_description.server_descriptions().values()))
    if seen.replica_set_name is None:
        return f"{answering[0]} (MongoDB {version}) is not a replica set member"
    if len(seen.all_hosts) < 3:
        return f"replica set {seen.replica_set_name} has {len(seen.all_hosts)} member(s)"
    return None


def needs(problem: str) -> str:
    """The one line main() prints when there is no replica set to use."""
    return (
        f"This lesson needs a real MongoDB replica set of three members at {RS_VARIABLE}: {problem}; "
        "the local stand-in (mongo-java-server) has no replication. Start one with "
        f"`make up TOPIC=cluster` (Docker), or set {RS_VARIABLE} to yours."
    )


# --- what the members say ---------------------------------------------------------------------------


def members_of(status: dict) -> list[Member]:
    """The members as replSetGetStatus reports them, with how far each is behind the primary."""
    up = [m for m in status["members"] if m.get("health")]
    newest = max(m["optimeDate"] for m in up)  # the primary's, or the most advanced secondary's
    lag = {m["name"]: (newest - m["optimeDate"]).total_seconds() for m in up}
    return [Member(m["name"], m["stateStr"], lag.get(m["name"])) for m in status["members"]]


def new_primary(direct: dict[str, MongoClient], old: str, began: float) -> tuple[str, float]:
    """The member other than `old` that accepts writes, and the seconds since `began` (monotonic)."""
    while time.monotonic() < began + WAIT_S:
        for address, member in direct.items():
            with contextlib.suppress(PyMongoError):
                if address != old and member.admin.command("hello").get("isWritablePrimary"):
                    return address, time.monotonic() - began
        time.sleep(0.05)
    raise TimeoutError(f"no new primary within {WAIT_S:.0f} s")


def primary_of(direct: dict[str, MongoClient]) -> str:
    """The member that accepts writes now, asked directly (no client's view of the set can lag)."""
    return new_primary(direct, "", time.monotonic())[0]


def count(member: MongoClient, setup: str, level: str = "local") -> int:
    """Documents of `setup` on this member (a secondary too), read with read concern `level`."""
    writes = member[DB].get_collection(
        "writes", read_concern=ReadConcern(level), read_preference=ReadPreference.SECONDARY_PREFERRED
    )
    return writes.count_documents({"setup": setup})


# --- the writer: every attempt recorded, every insert command counted --------------------------------


class Sent(CommandListener):
    """Counts the insert commands the driver sends: more than one per write means it retried."""

    def __init__(self) -> None:
        self.inserts: list[int] = []  # list.append is atomic: the writer's reconnects share it

    def started(self, event) -> None:
        if event.command_name == "insert":
            self.inserts.append(event.request_id)

    def succeeded(self, event) -> None: ...

    def failed(self, event) -> None: ...


@contextlib.contextmanager
def writing(url: str, setup: str, run_id: str, w: int | str = "majority") -> Iterator[tuple[Workload, Sent]]:
    """A writer on the set's address, warmed up; after the block, AFTER more writes, then it stops."""
    sent = Sent()

    def write(client: MongoClient, n: int) -> str:
        client[DB].writes.insert_one({"_id": f"{setup}-{n}", "setup": setup, "run": run_id})
        return f"{setup}-{n}"

    with Workload() as load:
        load.spawn("write", write, connect=lambda: MongoClient(url, w=w, event_listeners=[sent]))
        load.wait_for(WARM, "write")
        yield load, sent
        load.wait_for(len(load.succeeded("write")) + AFTER, "write")


def seconds_without_writes(attempts: Iterable[Attempt], since_s: float) -> float:
    """The longest wait, from `since_s` (the change) on, between one successful write's end and the next."""
    ends = sorted(a.started_s + a.latency_s for a in attempts if a.error is None)
    return max((b - a for a, b in pairwise([since_s, *(end for end in ends if end > since_s)])), default=0.0)


def tally(lost: Iterable[str], rolled_back: set[str]) -> Tally:
    """The lost acknowledged writes beside what the old primary saved when it rolled back."""
    lost = set(lost)
    return Tally(len(lost), len(lost & rolled_back), len(rolled_back))


def setup_of(name: str, configured: str, load: Workload, sent: Sent, client: MongoClient, **facts) -> Setup:
    """The writer's record against what the primary holds now, read with read concern majority."""
    writes = client[DB].get_collection("writes", read_concern=ReadConcern("majority"))
    found = {doc["_id"] for doc in writes.find({"setup": name}, {"_id": 1})}
    report, lost = load.report("write"), load.lost(found)
    rolled_back = facts.pop("rolled_back", None)
    return Setup(
        name, configured, acknowledged=len(load.acknowledged()), failed=report.failed,
        retried=max(0, len(sent.inserts) - report.operations), lost=len(lost),
        rollback=None if rolled_back is None else tally(lost, rolled_back), **facts,
    )  # fmt: skip


def election(direct: dict[str, MongoClient], new: str, load: Workload, since_s: float) -> dict:
    metrics = direct[new].admin.command("replSetGetStatus").get("electionCandidateMetrics", {})
    return {"new_primary": new, "election_reason": metrics.get("lastElectionReason", "?"),
            "seconds_without_writes": seconds_without_writes(load.succeeded("write"), since_s)}  # fmt: skip


# --- the changes ------------------------------------------------------------------------------------


def show_members(client: MongoClient, result: ReplicaSetResult) -> None:
    console.step("Find the members, their states and the majority an election needs")
    rows = [
        (m.name, m.state, "down" if m.behind_s is None else console.seconds(m.behind_s))
        for m in result.members
    ]
    console.table(["member", "state", "behind the newest"], rows)
    console.say(
        f"Replica set {result.replica_set}, MongoDB {result.version}: a primary needs "
        f"{result.votes_for_majority} votes; electionTimeoutMillis {result.election_timeout_ms} (default "
        f"10000). The driver found the primary, {':'.join(map(str, client.primary))}, by itself."
    )


def step_down(url: str, direct: dict[str, MongoClient], client: MongoClient, result, run_id: str) -> None:
    console.step("Step the primary down with one secondary frozen: the other takes over, writes retried")
    old = primary_of(direct)
    # The primary hands off to the caught-up secondary of highest priority, then lowest _id: freeze the
    # others, so that one wins even when it lags a moment (then after an election timeout instead).
    rank = {
        m["host"]: (-m.get("priority", 1), m["_id"])
        for m in client.admin.command("replSetGetConfig")["config"]["members"]
    }
    result.step_down_target, *frozen = sorted((a for a in direct if a != old), key=rank.get)
    for member in frozen:
        direct[member].admin.command("replSetFreeze", STEP_DOWN_S)
    try:
        with writing(url, STEP_DOWN, run_id) as (load, sent):
            since_s, began = load.now_s(), time.monotonic()
            with contextlib.suppress(AutoReconnect):  # servers before 4.2 dropped every connection here
                direct[old].admin.command("replSetStepDown", STEP_DOWN_S)
            new, election_s = new_primary(direct, old, began)
    finally:
        for member in frozen:
            direct[member].admin.command("replSetFreeze", 0)  # it may stand again
    result.setups[STEP_DOWN] = setup_of(
        STEP_DOWN, f"w:majority, retryable writes; replSetStepDown, {', '.join(frozen)} frozen", load, sent,
        client, old_primary=old, election_s=election_s, **election(direct, new, load, since_s),
    )  # fmt: skip
    console.say(f"{old} stepped down; {', '.join(frozen)} frozen, so {result.step_down_target} had to stand.")


def port_argument(args: list[str]) -> int | None:
    """The `--port` a container's mongod was started with."""
    for flag, value in pairwise([*args, ""]):
        if flag == "--port" or flag.startswith("--port="):
            return int(value if flag == "--port" else flag.partition("=")[2])
    return None


def member_containers(addresses: Iterable[str]) -> tuple[dict, str]:
    """Each member's compose container, matched by the loopback port it announces; or why there is none."""
    try:
        project = {"label": f"com.docker.compose.project={COMPOSE_PROJECT}"}
        listed = docker.from_env(timeout=10).containers.list(all=True, filters=project)
    except docker.errors.DockerException as absent:
        return {}, f"no Docker engine answers ({first_line(absent)})"
    services = [c for c in listed if c.labels.get("com.docker.compose.service") in MEMBER_SERVICES]
    by_port = {port_argument(c.attrs["Config"]["Cmd"] or []): c for c in services}
    found = {a: by_port.get(int(a.rpartition(":")[2])) for a in addresses if a.startswith(LOOPBACK)}
    strangers = sorted(set(addresses) - {a for a, c in found.items() if c})
    return (
        ({}, f"{', '.join(strangers)}: not a compose `cluster` container here") if strangers else (found, "")
    )


@contextlib.contextmanager
def running_again(containers: Iterable) -> Iterator[None]:
    """Every member container unpaused and started again at the end, even when the block fails."""
    try:
        yield
    finally:
        for container in containers:
            with contextlib.suppress(docker.errors.DockerException):
                container.reload()
                if container.status == "paused":
                    container.unpause()
                elif container.status != "running":
                    container.start()


def rolled_back_ids(container, setup: str, run_id: str) -> set[str]:
    """Documents of this run's `setup` that the member wrote to <dbpath>/rollback/ when it rolled back."""
    try:
        chunks, _ = container.get_archive(ROLLBACK_DIR)
    except docker.errors.NotFound:
        return set()
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as archive:
        files = [archive.extractfile(entry).read() for entry in archive if entry.name.endswith(".bson")]
    docs = [doc for data in files for doc in bson.decode_all(data)]
    return {doc["_id"] for doc in docs if doc.get("run") == run_id and doc.get("setup") == setup}


def rejoined(member: MongoClient, expected: int, setup: str) -> None:
    """Wait until the restarted member is a secondary that holds exactly the new primary's documents."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        with contextlib.suppress(PyMongoError):
            if member.admin.command("hello").get("secondary") and count(member, setup) == expected:
                return
        time.sleep(0.2)
    raise TimeoutError(f"the old primary did not rejoin within {WAIT_S:.0f} s")


def crash(url: str, direct: dict, containers: dict, client, result: ReplicaSetResult, w, run_id: str) -> None:
    """Cut the primary off (secondaries paused), let it acknowledge writes, kill it, elect, bring it back."""
    name, isolation_s = W1 if w == 1 else MAJORITY, min(ISOLATION_S, result.election_timeout_ms / 2000)
    old = primary_of(direct)
    others = [a for a in direct if a != old]
    with running_again(containers.values()):
        with writing(url, name, run_id, w) as (load, sent):
            for address in others:
                containers[address].pause()
            since_s, began = load.now_s(), time.monotonic()
            time.sleep(isolation_s)
            if w == 1:  # majority first: a write it misses is in the local count taken after it
                result.majority_read = count(direct[old], name, "majority")
                result.local_read = count(direct[old], name, "local")
            containers[old].kill()  # SIGKILL: the primary dies with what only it has
            for address in others:
                containers[address].unpause()
            new, election_s = new_primary(direct, old, began)
        containers[old].start()
        rejoined(direct[old], count(direct[new], name), name)
    result.setups[name] = setup_of(
        name, f"w:{w}, retryable writes; secondaries paused {console.seconds(isolation_s)}, primary killed",
        load, sent, client, old_primary=old, election_s=election_s,
        rolled_back=rolled_back_ids(containers[old], name, run_id), **election(direct, new, load, since_s),
    )  # fmt: skip


def crashes(url: str, direct: dict, client: MongoClient, result: ReplicaSetResult, run_id: str) -> None:
    containers, result.crash_skipped = member_containers(direct)
    if result.crash_skipped:
        console.say(f"The crashes need the members' containers ({result.crash_skipped}): skipped.")
        return
    console.step("Cut the primary off, let it acknowledge w:1 writes, kill it, and bring it back")
    crash(url, direct, containers, client, result, 1, run_id)
    w1 = result.setups[W1]
    console.say(
        f"Cut off, {w1.old_primary} counted {result.local_read} documents of this setup with read concern "
        f"local and {result.majority_read} with majority: local shows writes a rollback can take back."
    )
    console.say(
        f"{w1.lost} acknowledged writes are gone; {w1.rollback.lost_in_rollback_files} of them are in "
        f"{ROLLBACK_DIR} on {w1.old_primary}, where nothing replays them unless an operator does."
    )
    console.step("The same crash with w:majority: nothing acknowledged until a majority has it")
    crash(url, direct, containers, client, result, "majority", run_id)


def summary(result: ReplicaSetResult) -> None:
    console.step("What each change cost the writer")
    console.table(
        ["setup", "new primary", "election", "acknowledged", "failed", "retried", "lost",
         "in rollback files", "longest without a write", "to a new primary"],
        [(s.name, s.new_primary, s.election_reason, s.acknowledged, s.failed, s.retried, s.lost,
          "-" if s.rollback is None else s.rollback.rolled_back, console.seconds(s.seconds_without_writes),
          console.seconds(s.election_s)) for s in result.setups.values()],
    )  # fmt: skip
    console.say(
        "w:1 is acknowledged by the primary alone: a primary that dies before another member copies its "
        "writes takes them along. w:majority waits for a majority, and what a majority has survives."
    )


def run(url: str) -> ReplicaSetResult:
    """The lesson against the replica set at `url` (MONGO_RS_URL): members stepped down, frozen, crashed."""
    console.title("MongoDB replica set: elections, retryable writes, and what a rollback takes back")
    run_id = uuid.uuid4().hex  # marks this run's documents in rollback files that earlier runs left
    with MongoClient(url, serverSelectionTimeoutMS=CONNECT_TIMEOUT_S * 1000) as first:
        url = replica_set_url(url, first.admin.command("replSetGetStatus")["set"])
    with contextlib.ExitStack() as stack:
        client = stack.enter_context(MongoClient(url))
        status = client.admin.command("replSetGetStatus")
        config = client.admin.command("replSetGetConfig")["config"]
        voters = sum(1 for m in config["members"] if m.get("votes", 1))
        result = ReplicaSetResult(
            status["set"], client.server_info()["version"], members_of(status),
            status.get("majorityVoteCount", voters // 2 + 1),
            config.get("settings", {}).get("electionTimeoutMillis", 10_000),
        )  # fmt: skip
        direct = {
            m.name: stack.enter_context(MongoClient(member_url(url, m.name), serverSelectionTimeoutMS=2_000))
            for m in result.members
        }
        client.drop_database(DB)
        show_members(client, result)
        step_down(url, direct, client, result, run_id)
        crashes(url, direct, client, result, run_id)
        summary(result)
        client.drop_database(DB)
    return result


def main() -> int:
    require(*REQUIRES)
    try:
        url = rs_url()
    except BadSetting as bad:
        console.error(str(bad))
        return UNAVAILABLE
    problem = replica_set_problem(url)
    if problem:
        console.error(needs(problem))
        return UNAVAILABLE
    return 0 if run(url).holds else 1


if __name__ == "__main__":
    raise SystemExit(main())

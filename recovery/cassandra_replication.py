"""Cassandra replication: consistency levels with nodes down, hints, read repair, last-write-wins and LWT

Three Cassandra nodes on 127.0.0.1, .2 and .3 (two in data centre dc1, one in dc2, placed by
GossipingPropertyFileSnitch) hold every row three times (replication factor 3). A consistency level
says how many replicas must answer before the coordinator replies: ONE, QUORUM (2 of 3), ALL. The
lesson counts the reads and writes that succeed at each level with zero, one and two nodes down,
while a workload writes at each level and records every attempt: QUORUM rides out one node down,
ALL none; ONE keeps writing with two down, on a single copy. A crash (kill -9) is noticed by the
other nodes' failure detector only after seconds, and until then ALL times out instead of
refusing; a clean stop announces itself. When the nodes return, the coordinator replays the hints
it kept for the one it knew was down, and a QUORUM read repairs the node that got none. Two
clients increment one counter at once: plain writes resolve by last-write-wins (the later
timestamp, even from a skewed clock) and lose increments; a lightweight transaction (`IF v = ?`,
Paxos) loses none. Last, the cross-region pattern: NetworkTopologyStrategy with two copies in dc1
and one in dc2, where LOCAL_QUORUM keeps working with dc2 gone and EACH_QUORUM does not.

Engine: Cassandra 5 (CASSANDRA_HOSTS must answer but is not used); the ring is three throwaway nodes
of its own (local `CassandraDaemon`, 256 MB heaps; the lesson prints the memory the three hold),
keyspaces `cassandra_replication` (SimpleStrategy, RF 3) and `cassandra_replication_dc`
(NetworkTopologyStrategy, dc1: 2, dc2: 1). Hints to dc2 are switched off, standing in for a node
down longer than max_hint_window (3 h), after which a coordinator keeps no more hints for it.
Run: `make local-install` (local Cassandra), `make up SERVICES=cassandra` (or `make local-up`),
then `python recovery/cassandra_replication.py`. About a minute: the ring starts in 10-25 s here.
Look for: the success table (QUORUM 10/10 with one down, 0/10 with two; ALL 0/10 with one down);
the seconds between the crash and the first refusal; the hinted row on the returned node and the
repaired one; the lost increments without LWT and none with it; LOCAL_QUORUM with dc2 down.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from itertools import pairwise

from cassandra import ConsistencyLevel, OperationTimedOut, ReadTimeout, WriteTimeout
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
from cassandra.policies import (
    ConstantReconnectionPolicy,
    DCAwareRoundRobinPolicy,
    FallthroughRetryPolicy,
    TokenAwarePolicy,
    WhiteListRoundRobinPolicy,
)

from common import console
from common.settings import require
from common.timing import timer
from common.workload import Workload
from servers.local.base import resident_bytes
from servers.local.cassandra import ring_port
from servers.throwaway import NoThrowaway, node

REQUIRES = ("cassandra",)
LOCAL_ONLY = "a ring of local nodes on 127.0.0.1, .2 and .3, killed and stopped by process"
ADDRESSES = ("127.0.0.1", "127.0.0.2", "127.0.0.3")
DATACENTERS = ("dc1", "dc1", "dc2")
TOKENS = (-(2**63), -3074457345618258603, 3074457345618258602)  # a third of the Murmur3 ring each
HEAP = "256m"
RING_SETTINGS = {
    "auto_bootstrap": False,  # nothing to stream into an empty ring (and seeds, as all three are, never do)
    "phi_convict_threshold": 5.0,  # the lowest allowed: a crash is noticed sooner (default 8)
    "hints_flush_period": "1000ms",  # hints reach disk, and can be replayed, within a second
    "hinted_handoff_disabled_datacenters": ["dc2"],
    "paxos_variant": "v2",  # LWT in fewer round trips, and fewer give-ups under contention
    # Cassandra's default timeouts, which this lesson shows ("ALL waited 2 s"); the launcher's
    # single node raises them for the other lessons' sake.
    "write_request_timeout": "2000ms",
    "read_request_timeout": "5000ms",
    "counter_write_request_timeout": "5000ms",
    "cas_contention_timeout": "1800ms",
}
# The launcher's single node keeps schema changes in the commit log only (no flush, no fsync). A
# node killed and started again would load the schema from disk without the tables made since,
# then refuse every write to them (INCOMPATIBLE_SCHEMA): schema changes are flushed here, as usual.
RING_PROPERTIES = {"cassandra.test.flush_local_schema_changes": "true", "cassandra.unsafesystem": "false"}
ATTEMPTS = 10  # reads and writes per consistency level, per number of nodes down
ROUNDS = 10  # read-modify-write rounds of each of the two clients
REQUEST_TIMEOUT_S = 6.0  # above the server's own (2 s write, 5 s read), so its answer arrives
SERIAL, ONE, QUORUM, ALL = (getattr(ConsistencyLevel, name) for name in ("SERIAL", "ONE", "QUORUM", "ALL"))
LEVELS = {"ONE": (ONE, "1 replica acknowledges"), "QUORUM": (QUORUM, "2 of 3"), "ALL": (ALL, "3 of 3")}
SETUP = (
    "CREATE KEYSPACE cassandra_replication WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 3}",
    "CREATE KEYSPACE cassandra_replication_dc WITH replication = {'class': 'NetworkTopologyStrategy', 'dc1': 2, 'dc2': 1}",
    # No speculative read of a second replica: a read at ONE shows the coordinator's own copy.
    "CREATE TABLE cassandra_replication.kv (k text PRIMARY KEY, v text) WITH speculative_retry = 'NONE'",
    "CREATE TABLE cassandra_replication_dc.kv (k text PRIMARY KEY, v text) WITH speculative_retry = 'NONE'",
    "CREATE TABLE cassandra_replication.log (worker text, n int, PRIMARY KEY (worker, n))",
    "CREATE TABLE cassandra_replication.counter (k text PRIMARY KEY, v int, marks set<text>)",
)  # fmt: skip
CELLS = (  # the success table's rows: label, statement (the "_dc" ones: the NTS keyspace), level
    ("ONE write", "write", ONE), ("ONE read", "read", ONE),
    ("QUORUM write", "write", QUORUM), ("QUORUM read", "read", QUORUM),
    ("ALL write", "write", ALL), ("ALL read", "read", ALL),
    ("LOCAL_QUORUM write (NTS)", "write_dc", ConsistencyLevel.LOCAL_QUORUM),
    ("LOCAL_QUORUM read (NTS)", "read_dc", ConsistencyLevel.LOCAL_QUORUM),
    ("EACH_QUORUM write (NTS)", "write_dc", ConsistencyLevel.EACH_QUORUM),
)  # fmt: skip
CQL = {
    "write": "INSERT INTO cassandra_replication.kv (k, v) VALUES (?, ?)",
    "read": "SELECT v FROM cassandra_replication.kv WHERE k = ?",
    "write_dc": "INSERT INTO cassandra_replication_dc.kv (k, v) VALUES (?, ?)",
    "read_dc": "SELECT v FROM cassandra_replication_dc.kv WHERE k = ?",
    "stamped": "INSERT INTO cassandra_replication.kv (k, v) VALUES (?, ?) USING TIMESTAMP ?",
    "log": "INSERT INTO cassandra_replication.log (worker, n) VALUES (?, ?)",
    "logged": "SELECT n FROM cassandra_replication.log WHERE worker = ?",
    "get": "SELECT v, marks FROM cassandra_replication.counter WHERE k = ?",
    "set": "INSERT INTO cassandra_replication.counter (k, v) VALUES (?, ?)",
    "create": "INSERT INTO cassandra_replication.counter (k, v) VALUES (?, 0) IF NOT EXISTS",
    "cas": "UPDATE cassandra_replication.counter SET v = ?, marks = marks + ? WHERE k = ? IF v = ?",
}
PEERS = "SELECT peer, data_center FROM system.peers"
WRITTEN = "written while down"


@dataclass(frozen=True)
class Setup:
    """A row of the HA table: a consistency level with N nodes down, and what its writer saw."""

    name: str
    acknowledged: int
    lost: int
    seconds_without_writes: float  # the longest stretch within the phase without a successful write
    configured: str


@dataclass
class ReplicationResult:
    datacenters: dict[str, str] = field(default_factory=dict)  # node -> data centre, as node 1 reports
    succeeded: dict[int, dict[str, int]] = field(default_factory=dict)  # nodes down -> cell -> successes
    repair_before: str | None = None  # the row node 3 missed, read at ONE from node 3 on its return
    repair_quorum: str | None = None  # read at QUORUM with node 3 coordinating
    repair_after: str | None = None  # at ONE from node 3 again: repaired by that read
    hinted: str | None = None  # the row written at ONE with two down, read at ONE from node 2 on return
    lost: dict[str, int] = field(default_factory=dict)  # acknowledged workload writes missing, per level
    lost_updates: dict[str, int] = field(default_factory=dict)  # "plain" / "LWT" -> increments lost
    skewed_write_lost: bool = False  # acknowledged, yet older by timestamp than the value it followed
    setups: list[Setup] = field(default_factory=list, compare=False)
    resident_bytes: int | None = field(default=None, compare=False)  # the ring's PSS at the end
    figures: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def holds(self) -> bool:
        one_down, two_down = self.succeeded.get(1, {}), self.succeeded.get(2, {})
        return (
            one_down.get("QUORUM write") == ATTEMPTS == two_down.get("ONE write")
            and two_down.get("QUORUM write") == 0 == one_down.get("ALL write")
            and one_down.get("LOCAL_QUORUM write (NTS)") == ATTEMPTS
            and self.repair_before is None
            and self.repair_after == self.hinted == WRITTEN
            and self.lost_updates.get("plain", 0) > 0
            and self.lost_updates.get("LWT") == 0
            and not any(self.lost.values())
        )


class Ring:
    """The three nodes, one driver session, and the lesson's prepared statements."""

    def __init__(self, nodes: list, port: int):
        self.nodes, self.last_error, self.unknown_outcomes = nodes, "", 0
        routed = TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc="dc1"))  # coordinators: up nodes of dc1
        profiles = {EXEC_PROFILE_DEFAULT: profile(routed)}  # and one profile per node, that node alone
        profiles.update({address: profile(WhiteListRoundRobinPolicy([address])) for address in ADDRESSES})
        self.cluster = Cluster(
            list(ADDRESSES), port=port, protocol_version=5, execution_profiles=profiles, connect_timeout=2,
            control_connection_timeout=2, reconnection_policy=ConstantReconnectionPolicy(0.5, None),
            idle_heartbeat_interval=1, idle_heartbeat_timeout=5,  # a dead node's connections noticed in ~1 s
            max_schema_agreement_wait=30,  # DDL waits until all three agree (10 s by default)
        )  # fmt: skip
        self.session = self.cluster.connect()
        self.prepared: dict[str, object] = {}

    def run(self, name: str, values: tuple, level, via: str = EXEC_PROFILE_DEFAULT):
        """A prepared statement at `level`, through `via` (an address: that node coordinates)."""
        statement = self.prepared[name].bind(values)
        statement.consistency_level = level
        return self.session.execute(statement, execution_profile=via)

    def read(self, key: str, level, via: str = EXEC_PROFILE_DEFAULT) -> str | None:
        row = self.run("read", (key,), level, via).one()
        return row.v if row else None

    def counter(self, key: str, level, via: str = EXEC_PROFILE_DEFAULT):
        return self.run("get", (key,), level, via).one()

    def host_up(self, address: str) -> bool:
        host = self.cluster.metadata.get_host(address)
        return bool(host and host.is_up)

    def probe(self, level, via: str) -> str:
        """A write at `level` through `via`: "ok", or the error's name (Unavailable: refused at once)."""
        try:
            self.run("write", ("probe", "x"), level, via)
            return "ok"
        except Exception as error:
            self.last_error = f"{via}: {error!r}"[:300]
            return type(error).__name__

    def peers_known(self) -> bool:
        """Every node has met the other two, data centres and all (NTS refuses a DC its coordinator
        has not seen yet)."""
        try:
            met = [list(self.session.execute(PEERS, execution_profile=address)) for address in ADDRESSES]
        except Exception as error:
            self.last_error = repr(error)[:300]
            return False
        return all(sum(row.data_center is not None for row in rows) == 2 for rows in met)

    def all_dc1(self, level, answer: str) -> bool:
        return all(self.probe(level, address) == answer for address in ADDRESSES[:2])


def profile(policy) -> ExecutionProfile:
    """No driver retries: every failure counted is the server's answer to one attempt."""
    return ExecutionProfile(
        load_balancing_policy=policy,
        retry_policy=FallthroughRetryPolicy(),
        request_timeout=REQUEST_TIMEOUT_S,
    )


def wait_until(condition, timeout_s: float, pause_s: float = 0.1, ring: Ring | None = None) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"not so after {timeout_s:.0f} s; {ring.last_error if ring else ''}")
        time.sleep(pause_s)
    return time.monotonic() - started


def start_ring(stack: contextlib.ExitStack, result: ReplicationResult) -> Ring:
    console.step("Start three nodes at once: 127.0.0.1 and .2 in dc1, 127.0.0.3 in dc2")
    port = ring_port(ADDRESSES)
    storage = ring_port(ADDRESSES, avoid=[port])
    with timer() as took:
        nodes = [
            stack.enter_context(node(
                "cassandra", start=False, address=address, native_port=port, storage_port=storage,
                seeds=ADDRESSES, cluster_name="cassandra_replication", datacenter=datacenter,
                initial_token=token, heap=HEAP, settings=RING_SETTINGS, properties=RING_PROPERTIES,
                local_only=LOCAL_ONLY,
            ))
            for address, datacenter, token in zip(ADDRESSES, DATACENTERS, TOKENS, strict=True)
        ]  # fmt: skip
        stack.callback(lambda: [each.kill() for each in nodes])  # a throwaway ring: no drain at the end
        for each in nodes:
            each.start(tied_to_parent=True)
        for each in nodes:
            each.wait_ready()
        ring = Ring(nodes, port)
        stack.callback(ring.cluster.shutdown)
        wait_until(lambda: all(map(ring.host_up, ADDRESSES)) and ring.peers_known(), 60, 0.2, ring)
        for statement in SETUP:
            ring.session.execute(statement)
        ring.prepared = {name: ring.session.prepare(text) for name, text in CQL.items()}
        wait_until(lambda: ring.all_dc1(ALL, "ok"), 60, 0.1, ring)
    local = ring.session.execute("SELECT data_center FROM system.local", execution_profile=ADDRESSES[0])
    peers = ring.session.execute(PEERS, execution_profile=ADDRESSES[0])
    result.datacenters = {ADDRESSES[0]: local.one().data_center, **{str(p.peer): p.data_center for p in peers}}  # fmt: skip
    rss = [each.resident_bytes() or 0 for each in nodes]  # all three just answered
    result.figures["ring ready"] = console.seconds(took.seconds)
    result.figures["memory"] = " + ".join(map(console.size, rss)) + f" = {console.size(sum(rss))}"
    console.say(f"ring ready in {result.figures['ring ready']} (started, schema made, all answering ALL)")
    console.say(f"nodes and data centres, as node 1 sees them: {result.datacenters}")
    console.say(f"resident memory with -Xmx{HEAP} heaps: {result.figures['memory']}")
    return ring


def count_successes(ring: Ring, down: int, result: ReplicationResult) -> None:
    """ATTEMPTS writes (of new rows) and reads (of a row written while all were up) per cell."""
    result.succeeded[down] = counts = {}
    for label, statement, level in CELLS:
        counts[label] = sum(succeeds(ring, statement, f"{down} {label} {i}", level) for i in range(ATTEMPTS))


def succeeds(ring: Ring, statement: str, key: str, level) -> bool:
    """One request: refused (Unavailable, the coordinator knows too few are up) or answered.

    A timeout is neither: the replicas were up but slow, as a busy machine makes them, so the same
    request (a write of a fixed value, or a read) is sent again.
    """
    for _ in range(3):
        try:
            if statement.startswith("write"):
                ring.run(statement, (key, "v"), level)
                return True
            return ring.run(statement, ("seed",), level).one() is not None
        except (WriteTimeout, ReadTimeout, OperationTimedOut):
            continue
        except Exception:
            return False
    return False


def show_successes(result: ReplicationResult) -> None:
    console.step("Successes out of each 10 attempts, by nodes down")
    console.table(
        ["", *(f"{down} of 3 down" for down in result.succeeded)],
        [(label, *(f"{counts[label]}/{ATTEMPTS}" for counts in result.succeeded.values())) for label, *_ in CELLS],
        caption="RF 3 (SimpleStrategy) and NTS {dc1: 2, dc2: 1}; 1 down = node 3 (dc2); 2 down = node 2 too",
    )  # fmt: skip


def lost_updates(ring: Ring, lwt: bool) -> int:
    """Two clients on two coordinators: each round both read the counter, then both add one."""
    key, level = ("lwt", SERIAL) if lwt else ("plain", QUORUM)
    ring.run("create" if lwt else "set", (key,) if lwt else (key, 0), QUORUM)  # an LWT row sees LWTs only
    both_read, failures = threading.Barrier(2, timeout=120), []

    def client(via: str) -> None:
        try:
            for r in range(ROUNDS):
                value = patiently(ring.counter, key, level, via).v
                both_read.wait()
                if not lwt:
                    patiently(ring.run, "set", (key, value + 1), QUORUM, via)  # one of the two is lost
                while lwt and not applied(ring, key, value, f"{via}-{r}", via):
                    value = patiently(ring.counter, key, level, via).v
        except Exception as failure:
            failures.append(failure)
            both_read.abort()

    threads = [threading.Thread(target=client, args=(address,)) for address in ADDRESSES[:2]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return 2 * ROUNDS - patiently(ring.counter, key, level).v


def patiently(action, *args, attempts: int = 5):
    """A read, or a write of a fixed value, again after a failure: doing it twice does no harm."""
    for attempt in range(attempts):
        try:
            return action(*args)
        except Exception:  # a timeout, or a SERIAL read that lost to contention
            if attempt == attempts - 1:
                raise


def applied(ring: Ring, key: str, value: int, mark: str, via: str) -> bool:
    """`IF v = value`, by Paxos among the replicas. A failure leaves the outcome unknown: the marks
    each applied update adds say whether it applied, so a retry never adds one twice."""
    try:
        return ring.run("cas", (value + 1, {mark}, key, value), QUORUM, via).was_applied
    except Exception:  # a timeout, or "CAS operation result is unknown" (contention)
        ring.unknown_outcomes += 1
        return mark in (patiently(ring.counter, key, SERIAL, via).marks or ())


def concurrent_writes(ring: Ring, result: ReplicationResult) -> None:
    console.step("Two clients add one to the same counter: last-write-wins, then IF (LWT)")
    rows = []
    for kind, lwt, how in (("plain", False, "read, then INSERT v + 1"), ("LWT", True, "UPDATE ... IF v = ?")):
        with timer() as took:
            result.lost_updates[kind] = lost_updates(ring, lwt)
        rows.append((f"{kind}: {how}", 2 * ROUNDS, result.lost_updates[kind], console.seconds(took.seconds)))
    console.table(["writes", "increments", "lost", "took"], rows)
    now_us = int(time.time() * 1_000_000)
    ring.run("stamped", ("skew", "from A", now_us), QUORUM, ADDRESSES[0])
    ring.run("stamped", ("skew", "from B, 1 s behind", now_us - 1_000_000), QUORUM, ADDRESSES[1])
    result.skewed_write_lost = ring.read("skew", QUORUM) == "from A"
    console.say(f"LWTs that failed without saying whether they applied (checked by mark): {ring.unknown_outcomes}")  # fmt: skip
    console.say(f"client B wrote after A with its clock 1 s behind; B's acknowledged write lost: {result.skewed_write_lost}")  # fmt: skip


def crash_dc2(ring: Ring, result: ReplicationResult, load: Workload) -> float:
    """Returns when node 3 was dead, on the workload's clock: a write started before it may still
    have been acknowledged by all three, one started after cannot."""
    console.step("Crash node 3 (kill -9): the driver notices at once, the other nodes later")
    with timer() as since:
        killed_at = time.perf_counter()
        ring.nodes[2].kill()
        dead_s = load.now_s()
        wait_until(lambda: not ring.host_up(ADDRESSES[2]), 30, 0.01)
        driver_s = time.perf_counter() - killed_at
        ring.run("write", ("repair me", WRITTEN), QUORUM)  # node 3 misses it and gets no hint (dc2)
        wait_until(lambda: ring.all_dc1(ALL, "Unavailable"), 120, 0.2, ring)
    result.figures["driver notices"] = console.seconds(driver_s)
    result.figures["ring notices"] = console.seconds(since.seconds)
    console.say(f"the driver marked node 3 down in {result.figures['driver notices']}; nodes 1 and 2 refuse ALL "
                f"(Unavailable) {result.figures['ring notices']} after the kill, with phi_convict_threshold 5; "
                "until then ALL waited 2 s for node 3 and timed out")  # fmt: skip
    return dead_s


def stop_dc1_node(ring: Ring, result: ReplicationResult, load: Workload) -> float:
    """Returns when node 2 had stopped, on the workload's clock (as crash_dc2 does)."""
    console.step("Stop node 2 as well (SIGTERM): one node of three left")
    with timer() as took:
        ring.nodes[1].stop()
        stopped_s = load.now_s()
        # Node 2 announces its shutdown, but the message can be lost: then node 1's failure detector
        # decides, which takes longer when gossip is slow on a busy machine.
        wait_until(lambda: ring.probe(QUORUM, ADDRESSES[0]) == "Unavailable", 120)
    result.figures["stop"] = console.seconds(took.seconds)
    ring.run("write", ("hint me", WRITTEN), ONE, ADDRESSES[0])  # node 1 keeps a hint for node 2
    console.say(f"node 2 drained and announced its shutdown; QUORUM refused {result.figures['stop']} after the stop")  # fmt: skip
    return stopped_s


def restart(ring: Ring, result: ReplicationResult) -> None:
    console.step("Start nodes 2 and 3 again: read repair and hinted handoff fill them in")
    with timer() as took:
        for each in ring.nodes[1:]:
            each.start(tied_to_parent=True)
        for each in ring.nodes[1:]:
            each.wait_ready()
    result.figures["restart"] = console.seconds(took.seconds)


def read_repair(ring: Ring, result: ReplicationResult) -> None:
    with timer() as took:
        # Every replica answers ALL, and the driver has node 3 back: the reads below go through it alone.
        wait_until(lambda: ring.all_dc1(ALL, "ok") and ring.probe(ONE, ADDRESSES[2]) == "ok", 120, 0.2, ring)
    result.figures["ALL again"] = console.seconds(took.seconds)
    result.repair_before = ring.read("repair me", ONE, ADDRESSES[2])
    result.repair_quorum = ring.read("repair me", QUORUM, ADDRESSES[2])  # digests differ: node 3 is repaired
    result.repair_after = ring.read("repair me", ONE, ADDRESSES[2])
    console.say(f"both answer CQL {result.figures['restart']} after their start, ALL {result.figures['ALL again']} later")  # fmt: skip
    console.say(f"node 3 (no hints for dc2), the row written at QUORUM while it was down, at ONE: "
                f"{result.repair_before!r}; at QUORUM: {result.repair_quorum!r}; at ONE again: {result.repair_after!r}")  # fmt: skip


def await_hint(ring: Ring, result: ReplicationResult) -> None:
    with timer() as took, contextlib.suppress(TimeoutError):
        wait_until(lambda: ring.read("hint me", ONE, ADDRESSES[1]) is not None, 60, 0.2)
    result.hinted = ring.read("hint me", ONE, ADDRESSES[1])
    result.figures["hint replayed"] = console.seconds(took.seconds)
    console.say(f"node 2, the row written at ONE while it was down, at ONE: {result.hinted!r}; node 1 replayed "
                f"its hint {result.figures['hint replayed']} after the repair (hints go out every 10 s)")  # fmt: skip


def writers(load: Workload, ring: Ring) -> None:
    """One writer per consistency level, each appending its attempt numbers to its own partition."""
    for name, (level, _) in LEVELS.items():

        def write(_ring, n, name=name, level=level):
            ring.run("log", (name, n), level)
            return n

        load.spawn(name, write, connect=lambda: ring)


def workload_rows(load: Workload, ring: Ring, marks: dict[str, float], result: ReplicationResult) -> None:
    """Per level and phase: writes acknowledged, those missing when read back at ALL, longest gap."""
    console.step("What the writer at each level saw")
    quorum = [a for a in load.attempts if a.worker == "QUORUM" and a.started_s >= marks["2 of 3 down"]]
    refused = next((a.started_s for a in quorum if a.error), marks["end"])  # node 2 gone: QUORUM fails
    resumed = next((a.started_s for a in quorum if a.started_s > refused and not a.error), marks["end"])
    marks = {**marks, "end": resumed}  # two down until QUORUM writes succeed again: one node is back
    for name, (_, configured) in LEVELS.items():
        missing = set(load.lost({row.n for row in ring.run("logged", (name,), ALL)}, worker=name))
        result.lost[name] = len(missing)
        done = sorted(a.started_s + a.latency_s for a in load.succeeded(name))
        gaps = list(pairwise([0.0, *done, load.now_s()]))
        for (phase, start), (_, end) in pairwise(marks.items()):
            acknowledged = [a for a in load.succeeded(name) if start <= a.started_s < end]
            longest = max(min(b, end) - max(a, start) for a, b in gaps)  # within the phase
            result.setups.append(Setup(f"{name}, {phase}", len(acknowledged), len(missing & {a.key for a in acknowledged}),
                                       round(longest, 1), f"RF 3, {name}: {configured}"))  # fmt: skip
    console.table(
        ["level, nodes down", "acknowledged", "lost", "longest without a write (s)"],
        [(s.name, s.acknowledged, s.lost, f"{s.seconds_without_writes:.1f}") for s in result.setups],
        caption="2 of 3 down: until QUORUM writes resumed (one node back); lost: acknowledged, missing at ALL",
    )


def run() -> ReplicationResult:
    console.title("Cassandra replication: consistency levels with nodes down, hints, read repair, LWW and LWT")  # fmt: skip
    result = ReplicationResult()
    with timer() as whole, contextlib.ExitStack() as stack:
        ring = start_ring(stack, result)
        ring.run("write", ("seed", "v"), ALL)
        ring.run("write_dc", ("seed", "v"), ALL)
        with Workload(pause_s=0.02) as load:
            writers(load, ring)
            load.wait_for(10, "ALL")
            marks = {"0 of 3 down": load.now_s()}
            console.step("All three up: reads and writes at each level")
            count_successes(ring, 0, result)
            concurrent_writes(ring, result)
            marks["1 of 3 down"] = crash_dc2(ring, result, load)
            count_successes(ring, 1, result)
            marks["2 of 3 down"] = stop_dc1_node(ring, result, load)
            count_successes(ring, 2, result)
            show_successes(result)
            restart(ring, result)
            marks["end"] = load.now_s()
            read_repair(ring, result)
        workload_rows(load, ring, marks, result)
        await_hint(ring, result)
        result.resident_bytes = resident_bytes(ring.nodes)  # all three up again, after the workload
        memory = "not measured" if result.resident_bytes is None else console.size(result.resident_bytes)
        result.figures["memory at the end"] = memory
    result.figures["lesson"] = console.seconds(whole.seconds)
    console.say(f"the ring's resident memory at the end: {result.figures['memory at the end']}; "
                f"the whole lesson took {result.figures['lesson']}")  # fmt: skip
    console.say("A real multi-region ring: 3 or more nodes per data centre on 3 racks (zones), RF 3 in each, "
                "LOCAL_QUORUM in each region, 2-3 seeds per data centre, repair within gc_grace_seconds.")  # fmt: skip
    return result


def main() -> int:
    require(*REQUIRES)
    try:
        result = run()
    except NoThrowaway as absent:
        console.error(str(absent))
        return 2
    return 0 if result.holds else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Redis high availability: Sentinel and Cluster failovers, and the acknowledged writes each loses

Redis replicates asynchronously: a primary acknowledges a write before any replica has it. Three
Sentinels (quorum 2) watch a primary with two replicas, promote a replica when the primary stops
answering, and tell clients where the primary is: redis-py's `Sentinel` asks them on every new
connection. Redis Cluster (six nodes joined by `redis-cli --cluster create`) splits 16,384 hash slots
over three primaries with a replica each and promotes a replica by itself; redis-py's `RedisCluster`
keeps the slot map and follows MOVED and ASK. Each drill kills (SIGKILL) or freezes (SIGSTOP) a
primary under writers that record every acknowledged write (common/workload.py), then counts what
the new primary lacks.

WAIT n blocks until n replicas acknowledged the connection's writes (or its timeout passes) and says
how many did. The Redis docs are careful: a failover promotes "the best replica" on a best-effort
basis, so a write WAIT confirmed can still be lost.
Sentinel ranks replicas by `replica-priority` before replication offset, so a preferred replica
whose link was down is promoted without what WAIT 1 confirmed. What WAIT does promise is where the
write is: waiting for every replica (WAIT 2 of 2; WAIT 1 in a cluster shard with one replica) leaves
no candidate without it, so nothing is lost, and no write is acknowledged while a replica is
missing. A frozen primary that resumes after the failover acknowledges writes until Sentinel demotes
it, which discards them (a split brain); `min-replicas-to-write 1` with `min-replicas-max-lag 1`
makes it refuse them with NOREPLICAS instead.

Engine: Redis 7 (REDIS_URL, only read: its replication role); the drills run on throwaway local
`redis-server` nodes of their own (a Sentinel is `redis-server sentinel.conf --sentinel`), keys under
`redis_high_availability:`. Timers are shortened for speed: down-after 1 s, `SENTINEL DEBUG` INFO and
hello periods of 0.5 s (defaults 10 s and 2 s: a returning old primary is demoted after 8 s, not 2),
cluster-node-timeout 1 s. The five topologies run at once, each on nodes of its own.
Run: `make up SERVICES=redis` (or `make local-up`), then `python recovery/redis_high_availability.py`.
Look for: a new primary after every fault, the lost column (0 where WAIT waited for every replica,
some for WAIT 1 when the lagging preferred replica is promoted, hundreds for the split brain without
min-replicas-to-write), NOREPLICAS with it, and keys on all three cluster primaries.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from itertools import pairwise

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster, key_slot
from redis.retry import Retry
from redis.sentinel import Sentinel

from common import console
from common.settings import CONNECT_TIMEOUT_S, redis_url, require
from common.workload import Workload
from servers.local.base import ServerStartError, resident_bytes
from servers.throwaway import NoThrowaway, node

REQUIRES = ("redis",)
PREFIX = "redis_high_availability:"
LOCAL_ONLY = "the drills kill, freeze and cluster local redis-server processes"
GROUP = "lesson"  # the name the Sentinels know the primary by
DOWN_AFTER_MS, FAILOVER_TIMEOUT_MS, NODE_TIMEOUT_MS, WAIT_TIMEOUT_MS = 1000, 3000, 1000, 300
CLIENT_TIMEOUT_S = 60.0  # longer than a freeze, even a slow failover: the write in flight completes on resume
# Acknowledged writes per writer: before the fault, after a replica's link is cut, after the switch.
WARM, CUT, AFTER = 100, 50, 30
SECRET = "replicator-secret"  # the replicas log in as user `replicator`
SPREAD = 3_000  # keys written to the cluster, counted per primary
BASE = f"3 Sentinels, quorum 2, down-after {DOWN_AFTER_MS} ms"
KILLED, LAGGING, FROZEN, FROZEN_MIN, CLUSTER = (
    "Sentinel, kill -9", "Sentinel, kill -9, preferred replica behind", "Sentinel, freeze",
    "Sentinel, freeze, min-replicas", "Cluster, kill -9",
)  # fmt: skip


class NotReplicated(Exception):
    """WAIT answered fewer replicas than asked: the write is not acknowledged."""


@dataclass(frozen=True)
class Drill:
    name: str
    fault: str  # "kill" or "freeze"
    waits: tuple[int, ...]  # one writer per WAIT level; 0: a plain SET
    configured: str
    title: str
    why: str
    settings: dict[str, str] = field(default_factory=dict)  # on every data node
    lagging_preferred: bool = False


SENTINEL_DRILLS = (
    Drill(KILLED, "kill", (0, 1, 2), BASE,
          "Sentinel: kill -9 of the primary under SET, SET + WAIT 1 and SET + WAIT 2 writers",
          "The client's connection breaks; it asks the Sentinels again (MasterNotFoundError while they "
          "agree the primary is down) and writes to the replica they promote. On one machine the stream "
          "to the replicas leaves with the replies, so a kill loses few writes, if any, even without WAIT."),
    Drill(LAGGING, "kill", (0, 1, 2), f"{BASE}; replica-priority 10 on a replica whose link is down",
          "The same kill while the preferred replica's link is down: what WAIT 1 confirmed is lost",
          "Its masterauth is one rotation behind, so it cannot reconnect; replica-priority 10 ranks it "
          "before the up-to-date replica, whose answers kept WAIT 1 going. WAIT 2 of 2 confirmed "
          "nothing after the cut.", lagging_preferred=True),
    Drill(FROZEN, "freeze", (0, 1, 2), f"{BASE}; SIGSTOP through the failover, then SIGCONT",
          "The primary frozen (SIGSTOP) through the failover, then resumed: a split brain",
          "Resumed after the failover, it does not know it was replaced: it acknowledges the client still "
          "connected to it until Sentinel demotes it, which discards those writes. WAIT finds no replica "
          "there (resumed sooner, while the other replica still follows it, WAIT 1 can be confirmed and lost)."),
    Drill(FROZEN_MIN, "freeze", (0,), f"{BASE}; min-replicas-to-write 1, min-replicas-max-lag 1",
          "The same freeze with min-replicas-to-write 1: the old primary refuses writes",
          "Its replicas have left, so it answers NOREPLICAS and the client asks the Sentinels again; only "
          "what it took before it recounted its replicas can be lost.",
          {"min-replicas-to-write": "1", "min-replicas-max-lag": "1"}),
)  # fmt: skip


@dataclass
class Setup:
    """One writer through one failover: a row of the README's high-availability table."""

    setup: str
    writes: str  # SET, SET + WAIT 1, ...
    configured: str
    acknowledged: int = field(compare=False)
    lost: int = field(compare=False)  # acknowledged, and not on the new primary
    seconds_without_writes: float = field(compare=False)  # the longest gap between acknowledged writes
    writes_after_switch: int = field(compare=False)  # acknowledged after the switch, and there
    errors: dict[str, int] = field(default_factory=dict, compare=False)  # class, or a reply's first word

    def row(self) -> list[object]:
        again = self.writes_after_switch or "none: too few replicas"
        seconds = console.seconds(self.seconds_without_writes)
        return [self.writes, self.acknowledged, self.lost, seconds, again, sum(self.errors.values())]


@dataclass
class Failover:
    old_primary: int  # ports, all on 127.0.0.1
    new_primary: int = 0
    must_promote: int | None = None  # the one node that had to win, where one had to
    resident_bytes: int | None = field(default=None, compare=False)  # the topology's PSS, before the fault
    setups: list[Setup] = field(default_factory=list)


@dataclass
class HighAvailabilityResult:
    failovers: dict[str, Failover] = field(default_factory=dict)
    shards: list[tuple[int, int]] = field(default_factory=list)  # the cluster's (slots, keys), slot order
    key_slots: dict[str, int] = field(default_factory=dict)  # CLUSTER KEYSLOT of a few keys
    crossslot_refused: bool = False  # MSET of keys in two slots, on one connection
    moved: str = field(default="", compare=False)  # what a plain client got from the wrong node
    ask: str = field(default="", compare=False)
    followed: int = 0  # keys the cluster client read through MOVED and ASK
    no_cluster: str = ""  # why the cluster part did not run (redis-cli missing)
    shared_server: str = field(default="", compare=False)

    def setup(self, failover: str, writes: str) -> Setup:
        return next(s for s in self.failovers[failover].setups if s.writes == writes)

    @property
    def holds(self) -> bool:
        cluster = self.no_cluster or (
            self.setup(CLUSTER, "SET + WAIT 1").lost == 0 and min(keys for _, keys in self.shards) > 0
        )
        return (
            all(f.new_primary not in (0, f.old_primary) for f in self.failovers.values())
            and all(f.must_promote in (None, f.new_primary) for f in self.failovers.values())
            and all(self.setup(name, "SET + WAIT 2").lost == 0 for name in (KILLED, LAGGING, FROZEN))
            and self.setup(LAGGING, "SET + WAIT 1").lost > 0
            and self.setup(FROZEN_MIN, "SET").errors.get("NOREPLICAS", 0) > 0
            and bool(cluster)
        )


def plain(port: int) -> redis.Redis:
    """A client of one node, without silent retries: what it sees is what the application sees."""
    return redis.Redis(
        port=port, decode_responses=True, socket_timeout=CLIENT_TIMEOUT_S, retry=Retry(NoBackoff(), 0)
    )


def role(port: int) -> dict:
    with plain(port) as r:
        return r.info("replication")


def wait_until(check: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (redis.RedisError, OSError):
            pass  # a node still starting, or the one just killed
        time.sleep(0.05)
    raise TimeoutError(f"gave up waiting for {what} after {timeout_s:.0f} s")


def writer(prefix: str, wait: int) -> Callable[[redis.Redis, int], str]:
    """SET a new key; with `wait`, SET and WAIT in one pipeline (one connection), and check the count."""

    def write(r: redis.Redis, n: int) -> str:
        key = f"{prefix}{n:07d}"
        if not wait:
            r.set(key, n)
            return key
        replicas = r.pipeline(transaction=False).set(key, n).wait(wait, WAIT_TIMEOUT_MS).execute()[-1]
        if replicas < wait:
            raise NotReplicated(f"WAIT {wait} answered {replicas}")
        return key

    return write


def label(wait: int) -> str:
    return f"SET + WAIT {wait}" if wait else "SET"


def keys_on(ports: list[int], prefix: str) -> set[str]:
    found: set[str] = set()
    for port in ports:
        with plain(port) as r:
            found.update(r.scan_iter(match=prefix + "*", count=5_000))
    return found


def write_again(load: Workload, workers: list[str]) -> float:
    """Mark the switch, then wait until each writer has AFTER more acknowledged writes; the mark."""
    switched = load.now_s()
    for worker in workers:
        load.wait_for(len(load.succeeded(worker)) + AFTER, worker)
    load.stop()
    return switched


def setups(name: str, configured: str, load: Workload, found: set[str], switched: float) -> list[Setup]:
    """What each writer saw: acknowledged, lost, the longest gap between acknowledged writes, errors."""
    rows, ended = [], max(a.started_s + a.latency_s for a in load.attempts)
    for worker in sorted({a.worker for a in load.attempts}):  # SET, SET + WAIT 1, SET + WAIT 2
        done = load.succeeded(worker)
        ends = [0.0, *sorted(a.started_s + a.latency_s for a in done), ended]
        errors = Counter(error_kind(a.error) for a in load.attempts if a.worker == worker and a.error)
        after = sum(a.started_s >= switched and a.key in found for a in done)
        gap = max(b - a for a, b in pairwise(ends))
        lost = len(load.lost(found, worker))
        rows.append(Setup(name, worker, configured, len(done), lost, gap, after, dict(errors)))
    return rows


def error_kind(error: str) -> str:
    """The exception's class, or for an error reply its first word (NOREPLICAS, READONLY...)."""
    kind, _, message = error.partition(": ")
    return message.split()[0] if kind == "ResponseError" and message else kind


# --- Sentinel ------------------------------------------------------------------------------


def started(stack: ExitStack, **options):
    """A throwaway local redis-server (or Sentinel), stopped when the stack closes. Tried twice: thirty
    start at once, and a free port can be taken between its choice and the server's bind."""
    try:
        return stack.enter_context(node("redis", local_only=LOCAL_ONLY, **options))
    except ServerStartError:
        return stack.enter_context(node("redis", local_only=LOCAL_ONLY, **options))


@contextmanager
def sentinel_group(drill: Drill) -> Iterator[tuple[list, list]]:
    """A primary, two replicas (the second preferred when the drill says so), three Sentinels."""
    with ExitStack() as stack:
        data = [started(stack, settings=drill.settings) for _ in range(3)]
        for index, server in enumerate(data):
            with plain(server.port) as r:  # every node has the user: any may become the primary
                r.execute_command(
                    "ACL", "SETUSER", "replicator", "on", f">{SECRET}", "+psync", "+replconf", "+ping"
                )
                priority = 10 if drill.lagging_preferred and index == 2 else 100
                # repl-diskless-sync-delay 0: a primary does not wait 5 s for more replicas to sync at once.
                r.config_set("masteruser", "replicator", "masterauth", SECRET, "replica-priority", priority,
                             "repl-diskless-sync-delay", 0)  # fmt: skip
                if index:
                    r.replicaof("127.0.0.1", data[0].port)
        wait_until(lambda: all(role(s.port).get("master_link_status") == "up" for s in data[1:]), "replicas")
        monitor = [f"monitor {GROUP} 127.0.0.1 {data[0].port} 2", f"failover-timeout {GROUP} {FAILOVER_TIMEOUT_MS}",
                   f"down-after-milliseconds {GROUP} {DOWN_AFTER_MS}"]  # fmt: skip
        sentinels = [started(stack, sentinel=monitor) for _ in range(3)]
        for sentinel in sentinels:
            with plain(sentinel.port) as r:
                r.execute_command("SENTINEL", "DEBUG", "info-period", 500, "publish-period", 500)
        wait_until(lambda: all(sentinel_ready(s.port) for s in sentinels), "the Sentinels to see everyone")
        yield data, sentinels


def sentinel_ready(port: int) -> bool:
    with plain(port) as r:
        master = r.sentinel_master(GROUP)
    return master["num-slaves"] == 2 and master["num-other-sentinels"] == 2


def primary_port(sentinels: list) -> int:
    with plain(sentinels[0].port) as r:
        return int(r.sentinel_get_master_addr_by_name(GROUP)[1])


def sentinel_client(sentinels: list) -> redis.Redis:
    """The application's client: asks the Sentinels for the primary on every new connection."""
    sentinel = Sentinel([("127.0.0.1", s.port) for s in sentinels], socket_timeout=CLIENT_TIMEOUT_S)
    return sentinel.master_for(
        GROUP, decode_responses=True, socket_timeout=CLIENT_TIMEOUT_S, retry=Retry(NoBackoff(), 0)
    )


def cut_link(replica) -> None:
    """The replica's link drops and cannot come back: its masterauth is one rotation behind."""
    with plain(replica.port) as r:
        r.config_set("masterauth", "rotated-elsewhere")
        r.client_kill_filter(_type="master")
    wait_until(lambda: role(replica.port)["master_link_status"] == "down", "the replica's link to drop")


def fault(drill: Drill, primary, replicas: list, sentinels: list) -> int:
    """Kill or freeze the primary until Sentinel promotes another; the replicas the new one will have."""
    old = primary_port(sentinels)
    if drill.fault == "kill":
        primary.kill()
        wait_until(lambda: primary_port(sentinels) != old, "Sentinel to promote a replica")
        return 1
    os.kill(primary.process.pid, signal.SIGSTOP)
    try:  # resumed once the failover is over: the other replica follows the new primary too
        wait_until(lambda: primary_port(sentinels) != old, "Sentinel to promote a replica")
        others = [r.port for r in replicas if r.port != primary_port(sentinels)]
        wait_until(lambda: role(others[0])["master_port"] == primary_port(sentinels), "the replica to follow")
    finally:
        os.kill(primary.process.pid, signal.SIGCONT)
    wait_until(lambda: role(primary.port)["role"] == "slave", "Sentinel to demote the old primary")
    return 2


def sentinel_drill(drill: Drill) -> Failover:
    with sentinel_group(drill) as (data, sentinels), Workload() as load:
        primary, *replicas = data
        failover = Failover(primary.port, must_promote=replicas[1].port if drill.lagging_preferred else None)
        for wait in drill.waits:
            load.spawn(label(wait), writer(f"{PREFIX}{wait}:", wait), lambda: sentinel_client(sentinels))
        for wait in drill.waits:
            load.wait_for(WARM, label(wait))
        if drill.lagging_preferred:
            cut_link(replicas[1])
            for wait in drill.waits[:2]:  # WAIT 2 of 2 can no longer be met
                load.wait_for(len(load.succeeded(label(wait))) + CUT, label(wait))
        failover.resident_bytes = resident_bytes(data + sentinels)
        remaining = fault(drill, primary, replicas, sentinels)
        switched = write_again(load, [label(wait) for wait in drill.waits if wait <= remaining])
        failover.new_primary = primary_port(sentinels)
        found = keys_on([failover.new_primary], PREFIX)
    failover.setups = setups(drill.name, drill.configured, load, found, switched)
    return failover


# --- Cluster -------------------------------------------------------------------------------


@contextmanager
def cluster() -> Iterator[list]:
    """Six cluster-enabled nodes joined by `redis-cli --cluster create`: 3 primaries, 1 replica each."""
    # repl-diskless-sync-delay 0: a primary does not wait 5 s for more replicas to sync at once.
    settings = {
        "cluster-enabled": "yes",
        "cluster-node-timeout": str(NODE_TIMEOUT_MS),
        "repl-diskless-sync-delay": "0",
    }
    with ExitStack() as stack:
        nodes = [started(stack, settings=settings) for _ in range(6)]  # each with a bus port of its own
        addresses = [f"127.0.0.1:{n.port}" for n in nodes]
        command = ["redis-cli", "--cluster", "create", *addresses, "--cluster-replicas", "1", "--cluster-yes"]
        create = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if create.returncode:
            raise RuntimeError(f"redis-cli --cluster create failed:\n{create.stdout}{create.stderr}")
        wait_until(lambda: all(cluster_ok(n.port) for n in nodes), "every node to see the whole cluster")
        yield nodes


def cluster_state(port: int) -> str:
    with plain(port) as r:
        return r.cluster("info")["cluster_state"]


def cluster_ok(port: int) -> bool:
    """The node sees the cluster ok with three shards of two nodes, and (a replica) its link up."""
    with plain(port) as r:
        seen = [len(shard["nodes"]) for shard in r.cluster("shards") if shard["slots"]]
    synced = role(port)["role"] == "master" or role(port).get("master_link_status") == "up"
    return cluster_state(port) == "ok" and synced and seen == [2, 2, 2]


def shards(port: int) -> list[tuple[int, int, int]]:
    """(primary port, replica port or 0, hash slots) per shard as the node at `port` sees them, slot order."""
    with plain(port) as r:
        seen = sorted((s for s in r.cluster("shards") if s["slots"]), key=lambda s: s["slots"][0])
    layout = []
    for shard in seen:
        ports = {n["role"]: n["port"] for n in shard["nodes"] if n["health"] != "fail"}
        ranges = zip(shard["slots"][::2], shard["slots"][1::2], strict=True)
        layout.append(
            (ports["master"], ports.get("replica", 0), sum(end - start + 1 for start, end in ranges))
        )
    return layout


def cluster_client(nodes: list) -> RedisCluster:
    """The application's client: keeps the slot map and follows MOVED and ASK (redis-py's defaults)."""
    startup = [ClusterNode("127.0.0.1", n.port) for n in nodes]
    return RedisCluster(startup_nodes=startup, decode_responses=True, socket_timeout=CLIENT_TIMEOUT_S)


def slots_and_keys(primaries: list[tuple], rc: RedisCluster, result: HighAvailabilityResult) -> None:
    pipe = rc.pipeline()  # sent node by node under the hood
    for n in range(SPREAD):
        pipe.set(f"{PREFIX}spread:{n}", n)
    pipe.execute()
    result.shards = [(slots, len(keys_on([primary], PREFIX + "spread:"))) for primary, _, slots in primaries]
    with plain(primaries[0][0]) as r:
        result.key_slots = {k: r.cluster("keyslot", k) for k in ("user:42", "{user:42}:cart", "user:43")}
        try:
            r.mset({f"{PREFIX}a": 1, f"{PREFIX}b": 2})  # two slots: refused whichever node is asked
        except redis.exceptions.ClusterCrossSlotError:
            result.crossslot_refused = True


def redirects(primaries: list[int], rc: RedisCluster, result: HighAvailabilityResult) -> None:
    """A plain client at the wrong node gets MOVED; for a key already migrated off its slot's owner, ASK."""
    key, tag = f"{PREFIX}moved", f"{PREFIX}{{moving}}:"  # ten keys of one slot; five get migrated
    rc.set(key, "here")
    with plain(next(p for p in primaries if p != rc.get_node_from_key(key).port)) as r:
        try:
            r.get(key)
        except redis.exceptions.MovedError as error:
            result.moved = f"MOVED {error}"
    rc.mset_nonatomic({f"{tag}{n}": n for n in range(10)})
    slot, source = key_slot(b"moving"), rc.get_node_from_key(f"{tag}0").port
    target = next(p for p in primaries if p != source)
    with plain(source) as src, plain(target) as dst:
        target_id = dst.cluster("myid")
        dst.cluster("setslot", slot, "importing", src.cluster("myid"))
        src.cluster("setslot", slot, "migrating", target_id)
        src.migrate("127.0.0.1", target, [f"{tag}{n}" for n in range(5)], 0, 5000)
        try:
            src.get(f"{tag}0")
        except redis.exceptions.AskError as error:
            result.ask = f"ASK {error}"
        result.followed = sum(rc.get(f"{tag}{n}") == str(n) for n in range(10)) + (rc.get(key) == "here")
        src.migrate("127.0.0.1", target, [f"{tag}{n}" for n in range(5, 10)], 0, 5000)
    for port in primaries:  # the migration ends: the slot is the target's, on every primary
        with plain(port) as r:
            r.cluster("setslot", slot, "node", target_id)


def cluster_failover(nodes: list, victim_port: int, replica_port: int) -> Failover:
    failover = Failover(victim_port, must_promote=replica_port)
    prefix = f"{PREFIX}cluster:1:"
    wait_one = writer(prefix, 1)

    def on_its_primary(rc: RedisCluster, n: int) -> str:  # WAIT counts its own connection's writes
        return wait_one(rc.get_redis_connection(rc.get_node_from_key(f"{prefix}{n:07d}")), n)

    with Workload() as load:
        load.spawn("SET", writer(f"{PREFIX}cluster:0:", 0), connect=lambda: cluster_client(nodes))
        load.spawn("SET + WAIT 1", on_its_primary, connect=lambda: cluster_client(nodes))
        for worker in ("SET", "SET + WAIT 1"):
            load.wait_for(WARM, worker)
        failover.resident_bytes = resident_bytes(nodes)
        next(n for n in nodes if n.port == victim_port).kill()
        wait_until(lambda: role(replica_port)["role"] == "master", "the replica's promotion")
        wait_until(lambda: cluster_state(replica_port) == "ok", "the cluster to be ok")
        switched = write_again(load, ["SET", "SET + WAIT 1"])
        failover.new_primary = shards(replica_port)[0][0]
        found = keys_on([primary for primary, _, _ in shards(replica_port)], PREFIX + "cluster:")
    configured = f"cluster-node-timeout {NODE_TIMEOUT_MS} ms, 1 replica per primary, RedisCluster's retries"
    failover.setups = setups(CLUSTER, configured, load, found, switched)
    return failover


def cluster_drill(result: HighAvailabilityResult) -> Failover:
    with cluster() as nodes, cluster_client(nodes) as rc:
        layout = shards(nodes[0].port)
        slots_and_keys(layout, rc, result)
        redirects([primary for primary, _, _ in layout], rc, result)
        return cluster_failover(nodes, *shards(nodes[0].port)[0][:2])


# --- What it showed ------------------------------------------------------------------------


def tell_failover(name: str, failover: Failover) -> None:
    chosen = (
        " (the preferred replica)"
        if name == LAGGING and failover.must_promote == failover.new_primary
        else ""
    )
    console.say(f"The primary: 127.0.0.1:{failover.old_primary} -> 127.0.0.1:{failover.new_primary}{chosen}")
    headers = ["writes", "acknowledged", "lost", "longest without a write", "acknowledged after", "errors"]
    console.table(headers, [setup.row() for setup in failover.setups])
    kinds = sum((Counter(setup.errors) for setup in failover.setups), Counter())
    console.say(
        "Errors the writers saw: " + (", ".join(f"{k} {n}" for k, n in sorted(kinds.items())) or "none")
    )


def tell_cluster(result: HighAvailabilityResult) -> None:
    console.step("Redis Cluster: six nodes, 16,384 hash slots over three primaries")
    rows = [(n + 1, *shard) for n, shard in enumerate(result.shards)]
    console.table(["shard", "hash slots", f"of {SPREAD:,} keys"], rows)
    console.step("A key's slot: CRC16 of the key mod 16384, or of its {hash tag} alone")
    rows = [(key, slot, key_slot(key.encode())) for key, slot in result.key_slots.items()]
    console.table(["key", "CLUSTER KEYSLOT", "redis-py key_slot"], rows)
    refused = "CROSSSLOT, refused" if result.crossslot_refused else "accepted"
    console.say(
        f"Keys of one tag share a slot, so MGET, MULTI and Lua may use them together; MSET of two: {refused}."
    )
    console.step("MOVED and ASK from the wrong node; the cluster client follows both")
    console.table(["a plain client got", "meaning"], [
        (result.moved, "the slot lives there: update the slot map, go there"),
        (result.ask, "the slot is migrating and this key has left: send ASKING and the command there, once"),
    ])  # fmt: skip
    console.say(f"RedisCluster read {result.followed} of the 11 keys involved, without an error.")
    console.step("kill -9 of a cluster primary: its replica promoted, the client's errors")
    console.say(
        "RedisCluster retries (10 times, backing off) and refreshes its slot map. The WAIT writer, on"
    )
    console.say(
        "the key's node, sees every error; the shard left without a replica refuses WAIT 1 from then on."
    )
    tell_failover(CLUSTER, result.failovers[CLUSTER])


def shared_server_note(url: str | None = None) -> str:
    """What the server at REDIS_URL (or `url`) has for high availability: only read."""
    address = url or redis_url()
    with redis.Redis.from_url(address, decode_responses=True, socket_connect_timeout=CONNECT_TIMEOUT_S) as r:
        replication, clustered = r.info("replication"), r.info("cluster").get("cluster_enabled")
    return (f"The server at REDIS_URL: role {replication['role']}, {replication.get('connected_slaves', 0)} "
            f"connected replicas, {'a cluster node' if clustered else 'not in a cluster'}.")  # fmt: skip


def run(shared_note: str = "") -> HighAvailabilityResult:
    """The five topologies at once, each on nodes of its own; then what each showed."""
    console.title("Redis high availability: Sentinel and Cluster failovers, and the writes they lose")
    result = HighAvailabilityResult(shared_server=shared_note)
    if shutil.which("redis-cli") is None:
        result.no_cluster = "redis-cli is not installed (Debian: redis-tools): the cluster part did not run"
    with ThreadPoolExecutor(max_workers=len(SENTINEL_DRILLS) + 1) as pool:
        drills = {drill.name: pool.submit(sentinel_drill, drill) for drill in SENTINEL_DRILLS}
        clustered = None if result.no_cluster else pool.submit(cluster_drill, result)
        result.failovers = {name: future.result() for name, future in drills.items()}
        if clustered is not None:
            result.failovers[CLUSTER] = clustered.result()
    for drill in SENTINEL_DRILLS:
        console.step(drill.title)
        console.say(drill.why)
        tell_failover(drill.name, result.failovers[drill.name])
    if result.no_cluster:
        console.say(result.no_cluster + ".")
    else:
        tell_cluster(result)
    console.step("What each topology needs, and the server at REDIS_URL")
    for name in (KILLED, CLUSTER)[: 2 - bool(result.no_cluster)]:  # the Sentinel topologies are alike
        memory = result.failovers[name].resident_bytes
        shown = "not measured (container)" if memory is None else f"{console.size(memory)} resident (PSS)"
        console.say(f"{name}: 6 processes, {shown} under the writers.")
    console.say(shared_note or "The server at REDIS_URL was not asked.")
    return result


def main() -> int:
    require(*REQUIRES)
    try:
        result = run(shared_server_note())
    except NoThrowaway as absent:
        console.error(str(absent))
        return 2
    return 0 if result.holds else 1


if __name__ == "__main__":
    raise SystemExit(main())

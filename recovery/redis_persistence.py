"""Redis persistence: an RDB snapshot and the AOF restored, and what kill -9 loses under each setting

Redis keeps its data in memory; what survives a restart is what it wrote to its folder. An RDB
snapshot (`BGSAVE`: a forked child writes `dump.rdb`) is the whole dataset at one moment; the
append-only file logs every write after its base (Redis 7 keeps it as several files in
`appenddirname`: a base, increments and a manifest). Each is restored the way an operator does it:
the files copied into a new node's `dir`, the node started, the keys compared with the source by
count and by a SHA-256 over the sorted keys and values (`DEBUG DIGEST` would do, but Redis 7
disables it by default).

Then a writer records every acknowledged write while the node is killed with SIGKILL mid-stream
and restarted from the same folder, once per setting. `appendfsync always` loses nothing. Nor, as a
rule, does `everysec` under kill -9: Redis hands its AOF buffer to the OS before it replies, and a
process crash loses nothing the OS holds (the exception: on a disk so slow that a background fsync
is still running, Redis postpones that write for up to 2 s and replies anyway). What everysec risks
is an OS crash or a power cut, which loses up to the last second of writes (as documented): no
kill -9 can show that. RDB alone loses every write since the last snapshot. The lesson takes one
snapshot before the stream (a scheduled BGSAVE) so the loss is exact; with `save` rules it is
whatever came after the last rule fired, from nothing to the rule's whole window. The same stream
measures what each setting costs in writes per second.

Engine: Redis 7 (REDIS_URL, only read: its persistence settings say what a crash would lose there);
the drill runs on throwaway nodes of its own, keys under `redis_persistence:`: local `redis-server`
processes, or where only Docker serves containers of the compose image on host folders (the kill is a
SIGKILL to the container, the restart a new container on the same folder).
Run: `make up SERVICES=redis` (or `make local-up`), then `python recovery/redis_persistence.py`.
Look for: equal key counts and checksums after both restores, the lost-writes table (0 for always,
every write after the snapshot for RDB only) and the writes per second of each setting.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from common import console
from common.settings import CONNECT_TIMEOUT_S, redis_url, require
from common.timing import timer
from common.workload import Workload
from servers.throwaway import NoThrowaway, node

REQUIRES = ("redis",)
PREFIX = "redis_persistence:"
SEED = 23
N_USERS, N_CARTS = 10_000, 1_000  # strings and hashes in the backup part
LATER = 1_000  # new keys, updates and deletes each, written after the snapshot (the AOF has them)
BASE_KEYS = 1_000  # before each crash stream (and its snapshot)
STREAM = 1_000  # acknowledged writes before the kill, at least
# everysec may hold writes back behind a slow background fsync, for up to 2 s: its stream runs longer,
# so the writes older than that are in the file whatever the disk did.
EVERYSEC_STREAM_S = 2.5
AOF = {"appendonly": "yes"}  # start-time: a restarted node must load the AOF, not the RDB
CRASH_SETTINGS = {
    "always": {**AOF, "appendfsync": "always"},
    "everysec": {**AOF, "appendfsync": "everysec"},
    "RDB only": {},  # the launcher's default, save "" and appendonly no: one snapshot before the stream
}


@dataclass(frozen=True)
class State:
    keys: int
    sha256: str  # over the sorted keys, their types and values


@dataclass
class Restore:
    expected: State
    restored: State
    files: str = field(default="", compare=False)  # what was copied
    size: int = field(default=0, compare=False)
    seconds: float = field(default=0.0, compare=False)  # to write the files (BGSAVE / rewrite)

    @property
    def equal(self) -> bool:
        return self.expected == self.restored


@dataclass
class Crash:
    acknowledged: int = field(compare=False)  # writes the server answered OK before the kill
    lost: int = field(compare=False)  # acknowledged, yet gone after the restart
    lost_are_the_last: bool = True  # the lost writes are the newest acknowledged ones: a log loses its end
    base_kept: int = 0  # of the BASE_KEYS written before the stream
    applied_unacknowledged: int = field(default=0, compare=False)  # there, though the client saw an error
    writes_per_s: float = field(default=0.0, compare=False)


@dataclass
class PersistenceResult:
    restores: dict[str, Restore] = field(default_factory=dict)  # "RDB snapshot", "AOF"
    rdb_lacks_later_writes: bool = False  # the snapshot restore is behind the source; the AOF is not
    debug_digest: bool = False  # DEBUG DIGEST allowed on this node (off by default in Redis 7)
    crashes: dict[str, Crash] = field(default_factory=dict)
    shared_server: str = field(default="", compare=False)

    @property
    def holds(self) -> bool:
        always, everysec, rdb = (self.crashes.get(name) for name in CRASH_SETTINGS)
        return (
            len(self.restores) == 2
            and all(restore.equal for restore in self.restores.values())
            and None not in (always, everysec, rdb)
            and always.lost == 0
            and everysec.lost_are_the_last
            and everysec.lost < everysec.acknowledged
            and rdb.lost == rdb.acknowledged > 0
            and all(crash.base_kept == BASE_KEYS for crash in self.crashes.values())
        )


def client(server) -> redis.Redis:
    """No silent retries: a write the kill cut off fails, as the application sees it."""
    return redis.Redis(
        port=server.port, decode_responses=True, socket_timeout=10, retry=Retry(NoBackoff(), 0)
    )


def lesson_keys(r: redis.Redis, pattern: str = PREFIX + "*") -> list[str]:
    return sorted(r.scan_iter(match=pattern, count=2_000))


def state(r: redis.Redis) -> State:
    """Key count and a SHA-256 over every lesson key, its type and value, in key order."""
    keys = lesson_keys(r)
    pipe = r.pipeline(transaction=False)
    for key in keys:
        pipe.type(key)
    types = pipe.execute()
    for key, kind in zip(keys, types, strict=True):
        (pipe.hgetall if kind == "hash" else pipe.get)(key)
    digest = hashlib.sha256()
    for key, kind, value in zip(keys, types, pipe.execute(), strict=True):
        shown = sorted(value.items()) if kind == "hash" else value
        digest.update(json.dumps([key, kind, shown]).encode())
    return State(len(keys), digest.hexdigest())


def load(r: redis.Redis, rng: random.Random) -> None:
    pipe = r.pipeline(transaction=False)
    for i in range(N_USERS):
        pipe.set(f"{PREFIX}user:{i}", json.dumps({"name": f"user {i}", "plan": rng.choice(("free", "pro"))}))
    for i in range(N_CARTS):
        items = {f"sku:{rng.randrange(500)}": rng.randrange(1, 5) for _ in range(rng.randrange(1, 8))}
        pipe.hset(f"{PREFIX}cart:{i}", mapping=items)
    pipe.execute()


def later_writes(r: redis.Redis, rng: random.Random) -> None:
    """New keys, updates and deletes: an AOF must replay all three."""
    pipe = r.pipeline(transaction=False)
    for i in range(LATER):
        pipe.set(f"{PREFIX}user:{N_USERS + i}", json.dumps({"name": f"late {i}", "plan": "free"}))
        pipe.hincrby(f"{PREFIX}cart:{rng.randrange(N_CARTS)}", "sku:1", 1)
        pipe.delete(f"{PREFIX}user:{rng.randrange(N_USERS)}")
    pipe.execute()


def wait_for(r: redis.Redis, done, timeout_s: float = 60.0) -> dict:
    """Poll INFO persistence until `done(info)`: the way to know a background save finished."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        info = r.info("persistence")
        if done(info):
            return info
        time.sleep(0.02)
    raise TimeoutError("the background save did not finish")


def bgsave(r: redis.Redis) -> float:
    """BGSAVE, then wait until no save runs and the save counter moved; the seconds it took."""
    before = r.info("persistence")["rdb_saves"]
    with timer() as took:
        r.bgsave()
        info = wait_for(r, lambda i: i["rdb_bgsave_in_progress"] == 0 and i["rdb_saves"] > before)
    if info["rdb_last_bgsave_status"] != "ok":
        raise RuntimeError("BGSAVE failed: see the node's log")
    return took.seconds


def enable_aof(r: redis.Redis) -> float:
    """appendonly yes at run time: Redis first rewrites the whole dataset as the AOF's base."""
    before = r.info("persistence")["aof_rewrites"]
    with timer() as took:
        r.config_set("appendonly", "yes")
        wait_for(r, lambda i: i["aof_rewrites"] > before and not i["aof_rewrite_in_progress"])
    return took.seconds


@contextmanager
def started_from(backup: Path, settings: dict[str, str] | None = None) -> Iterator:
    """A new node with a copy of `backup` (a file or a folder) in its `dir`, then started."""
    with node("redis", start=False, settings=settings or {}) as fresh:
        if backup.is_dir():
            shutil.copytree(backup, fresh.workdir / backup.name)
        else:
            shutil.copy2(backup, fresh.workdir)
        fresh.start_and_wait(tied_to_parent=True)
        yield fresh


def rdb_restore(source, r: redis.Redis, result: PersistenceResult) -> None:
    console.step("An RDB snapshot: BGSAVE, copy dump.rdb into a new node's dir, start it")
    load(r, random.Random(SEED))
    at_snapshot = state(r)
    took = bgsave(r)
    dump = source.workdir / r.config_get("dbfilename")["dbfilename"]
    console.say(f"LASTSAVE {r.lastsave():%H:%M:%S}; {dump.name} in `dir` {source.workdir}")
    with started_from(dump) as fresh, client(fresh) as restored:
        result.restores["RDB snapshot"] = Restore(
            at_snapshot, state(restored), dump.name, dump.stat().st_size, took
        )
        try:
            restored.execute_command("DEBUG", "DIGEST")
            result.debug_digest = True
        except redis.ResponseError:  # enable-debug-command no: the lesson's own checksum
            result.debug_digest = False


def aof_restore(source, r: redis.Redis, result: PersistenceResult) -> None:
    console.step("The AOF: turn it on, write more, copy appenddirname into a new node, start it")
    took = enable_aof(r)
    later_writes(r, random.Random(SEED + 1))
    now = state(r)
    # Acknowledged is not yet in the file while a background fsync holds the AOF buffer back.
    wait_for(r, lambda info: info["aof_buffer_length"] == 0)
    folder = source.workdir / r.config_get("appenddirname")["appenddirname"]
    files = sorted(path.name for path in folder.iterdir())
    size = sum(path.stat().st_size for path in folder.iterdir())
    with started_from(folder, AOF) as fresh, client(fresh) as restored:
        aof = Restore(now, state(restored), f"{folder.name}/ ({len(files)} files)", size, took)
    result.restores["AOF"] = aof
    rdb = result.restores["RDB snapshot"]
    result.rdb_lacks_later_writes = rdb.restored != now and aof.restored == now
    console.table(
        ["restore", "files copied", "size", "BGSAVE / rewrite", "keys expected", "keys restored", "SHA-256 equal"],
        [
            (name, x.files, console.size(x.size), console.seconds(x.seconds), x.expected.keys,
             x.restored.keys, x.equal)
            for name, x in result.restores.items()
        ],
    )  # fmt: skip
    behind = (
        "its checksum differs from the source now" if rdb.restored != now else "yet it matches the source"
    )
    console.say(f"Redis 7 keeps the AOF as a folder: {', '.join(files)}; copy all of it, manifest included.")
    console.say(
        f"The snapshot restore lacks the {3 * LATER:,} later commands (sets, increments, deletes) and "
        f"{behind}; the AOF replayed them."
    )
    console.say(
        f"DEBUG DIGEST {'answered' if result.debug_digest else 'is refused (enable-debug-command no)'}: "
        "the checksum is the lesson's own, over sorted keys and values."
    )


def write_one(r: redis.Redis, n: int) -> str:
    key = f"{PREFIX}stream:{n:07d}"
    r.set(key, n)
    return key


def crash(settings: dict[str, str]) -> Crash:
    """Base keys (and, without AOF, a snapshot), a write stream, kill -9, restart, count what is gone."""
    with node("redis", settings=settings) as server:
        with client(server) as r:
            r.mset({f"{PREFIX}base:{i}": i for i in range(BASE_KEYS)})
            if "appendonly" not in settings:
                bgsave(r)  # the last snapshot before the crash
        with Workload(pause_s=0) as load:
            load.spawn("write", write_one, connect=lambda: client(server))
            load.wait_for(STREAM, "write")
            if settings.get("appendfsync") == "everysec":
                time.sleep(max(0.0, EVERYSEC_STREAM_S - load.now_s()))
            server.kill()
            load.stop()
        server.start_and_wait(tied_to_parent=True)
        with client(server) as r:
            found = set(lesson_keys(r, PREFIX + "stream:*"))
            base_kept = len(lesson_keys(r, PREFIX + "base:*"))
    acknowledged = load.acknowledged("write")
    lost = load.lost(found)
    kept = [key for key in acknowledged if key in found]
    attempts = load.succeeded("write")
    span = attempts[-1].started_s + attempts[-1].latency_s - attempts[0].started_s
    return Crash(
        acknowledged=len(acknowledged),
        lost=len(lost),
        lost_are_the_last=not lost or not kept or max(kept) < min(lost),
        base_kept=base_kept,
        applied_unacknowledged=len(found - set(acknowledged)),
        writes_per_s=len(acknowledged) / span,
    )


def crashes(result: PersistenceResult) -> None:
    console.step("kill -9 during a write stream, restart from the same folder, count lost writes")
    for name, settings in CRASH_SETTINGS.items():
        result.crashes[name] = crash(settings)
    console.table(
        ["setting", "acknowledged", "lost", "lost are the newest", "applied, not acknowledged", "writes/s"],
        [
            (
                name,
                c.acknowledged,
                c.lost,
                c.lost_are_the_last,
                c.applied_unacknowledged,
                f"{c.writes_per_s:,.0f}",
            )
            for name, c in result.crashes.items()
        ],
    )
    always, everysec, rdb = result.crashes.values()
    if everysec.lost == 0:
        console.say("everysec lost nothing either: Redis hands each write to the OS before it replies, "
                    "and a process crash loses nothing the OS holds.")  # fmt: skip
    else:
        console.say(f"everysec lost its newest {everysec.lost} writes: Redis postponed writing them "
                    "behind a background fsync still running (it does, up to 2 s) and replied anyway.")  # fmt: skip
    console.say(
        "Only an OS crash or a power cut tells always from everysec (everysec then loses up to the last "
        "second of writes, as documented): kill -9 cannot show it. RDB only loses every write since "
        "the snapshot; with save rules, every write since the last rule fired."
    )
    console.say(
        f"The cost, in the same stream: always {always.writes_per_s / rdb.writes_per_s:.0%} and everysec "
        f"{everysec.writes_per_s / rdb.writes_per_s:.0%} of the writes per second of RDB only (one client)."
    )
    console.say(
        "A write applied but never acknowledged (the kill cut its reply) is why a retry after a crash "
        "must be idempotent."
    )


def shared_server_note(url: str | None = None) -> str:
    """What a crash would cost the server at REDIS_URL (or `url`): its settings, only read."""
    with redis.Redis.from_url(
        url or redis_url(), decode_responses=True, socket_connect_timeout=CONNECT_TIMEOUT_S
    ) as r:
        try:
            got = {**r.config_get("appendonly"), **r.config_get("appendfsync"), **r.config_get("save")}
        except redis.ResponseError:  # CONFIG renamed or refused (managed services)
            return "the server at REDIS_URL does not show its persistence settings (CONFIG refused)"
    if got["appendonly"] == "yes":
        keeps = f"AOF with appendfsync {got['appendfsync']}"
    elif got["save"]:
        keeps = f"RDB only (save {got['save']}): a crash loses the writes since the last snapshot"
    else:
        keeps = "no persistence: a restart loses every key"
    return f"the server at REDIS_URL: {keeps}"


def run(shared_note: str = "") -> PersistenceResult:
    """The drill on nodes of its own; `shared_note` describes the server at REDIS_URL (only read)."""
    console.title("Redis persistence: RDB and AOF restored, and what kill -9 loses")
    result = PersistenceResult(shared_server=shared_note)
    with node("redis") as source, client(source) as r:
        rdb_restore(source, r, result)
        aof_restore(source, r, result)
    crashes(result)
    if shared_note:
        console.step("What the server at REDIS_URL keeps across a crash")
        console.say(shared_note)
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

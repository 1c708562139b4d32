"""Redis key design: namespaces, expiry and eviction, memory per structure, transactions, WATCH and Lua

How keys are named, how long they live and how values are grouped decide what a Redis server can
find, what it may evict and how much memory it needs. This lesson names keys `type:id:field`,
finds a namespace with SCAN (and shows the glob that matches more than it should), gives sessions
a time to live and reads the eviction policy without changing it, measures one hash of 10,000
fields against 10,000 string keys, then makes several commands atomic three ways: MULTI/EXEC
(which does not roll back), WATCH (optimistic locking: a concurrent write makes EXEC fail and the
retry succeed) and a Lua script (a check-and-set that cannot be interleaved, against a
read-then-write that oversells under the same interleaving).

Engine: Redis (REDIS_URL), keys under `redis_key_design:`. The server's configuration is only read.
Run: `make up SERVICES=redis` (or `make local-up`), then `python nosql/redis_key_design.py`.
Look for: bytes per entry for strings vs one hash vs small hashes, the WatchError and the retry,
and "sold 2 of 1" for the read-then-write against "sold 1 of 1" for the Lua script.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field

import redis

from common import console
from common.settings import CONNECT_TIMEOUT_S, redis_url, require
from common.timing import timer

REQUIRES = ("redis",)
PREFIX = "redis_key_design:"
SEED = 5
N_USERS = 2_000
ABANDONED_EVERY = 4  # every 4th session is abandoned and gets a short TTL
SHORT_TTL_MS = 200
SESSION_TTL_S = 1_800
POLL_LIMIT_S = 3.0
N_ENTRIES = 10_000
BUCKET_SIZE = 100  # under hash-max-listpack-entries (128), so each small hash stays a compact listpack
SCAN_COUNT = 500
PLANS = ["free", "pro", "team"]
EVICTION_POLICIES = [
    ("noeviction", "nothing: writes fail when full"),
    ("allkeys-*", "any key (lru, lfu, random)"),
    ("volatile-*", "keys with a TTL (lru, lfu, ttl, random)"),
]
# Atomically: take `qty` from the stock if there is enough, else refuse (-1).
CHECK_AND_DECREMENT = """
local stock = tonumber(redis.call('GET', KEYS[1]))
local wanted = tonumber(ARGV[1])
if stock >= wanted then
    return redis.call('DECRBY', KEYS[1], wanted)
end
return -1
"""


def key(*parts: object) -> str:
    return PREFIX + ":".join(str(part) for part in parts)


@dataclass
class NamespaceFacts:
    match_user_star: int  # `user:*` also matches `user:<id>:sessions`
    match_user_star_type_hash: int
    match_sessions: int
    keys_found: int
    keys_same_as_scan: bool
    scan_calls: int = field(compare=False)  # depends on everything else on the server
    scan_longest_s: float = field(compare=False)
    keys_s: float = field(compare=False)


@dataclass
class ExpiryFacts:
    ttl_user: int  # -1: no expiry
    ttl_missing: int  # -2: no such key
    ttl_session: int
    ttl_after_getex: int
    abandoned: int
    sessions_left: int
    maxmemory: str
    policy: str
    candidates: dict[str, int]
    idle_signal: str  # "OBJECT IDLETIME" or "OBJECT FREQ", whichever the policy tracks
    cold_value: int = field(compare=False)  # seconds idle: depends on how long the steps took
    hot_value: int = field(compare=False)
    other_signal_error: str


@dataclass
class MemoryRow:
    layout: str
    keys: int
    encoding: str
    total_bytes: int

    @property
    def bytes_per_entry(self) -> float:
        return self.total_bytes / N_ENTRIES


@dataclass
class TransactionFacts:
    transfer_results: list[int]
    balances_after_transfer: tuple[int, int]
    runtime_error_results: list[str]  # one per queued command: its reply or its error class
    balances_after_runtime_error: tuple[int, int]
    queue_error: str
    balances_after_queue_error: tuple[int, int]


@dataclass
class WatchFacts:
    stock_without_watch: int  # the other client's write is lost
    first_attempt_error: str
    attempts: int
    stock_with_watch: int


@dataclass
class ScriptFacts:
    read_then_write_sold: int
    read_then_write_stock: int
    lua_sold: int
    lua_refused: int
    lua_stock: int
    script_sha: str


@dataclass
class KeyDesignResult:
    namespace: NamespaceFacts
    expiry: ExpiryFacts
    memory: list[MemoryRow]
    transaction: TransactionFacts
    watch: WatchFacts
    script: ScriptFacts

    def memory_of(self, layout: str) -> MemoryRow:
        return next(row for row in self.memory if row.layout == layout)


def reset(client: redis.Redis) -> int:
    """Delete this lesson's keys (SCAN, never FLUSHDB: other lessons share the server)."""
    deleted = 0
    batch: list[str] = []
    for name in client.scan_iter(match=PREFIX + "*", count=SCAN_COUNT):
        batch.append(name)
        if len(batch) == SCAN_COUNT:
            deleted += client.unlink(*batch)
            batch.clear()
    if batch:
        deleted += client.unlink(*batch)
    return deleted


def load_users(client: redis.Redis, seed: int = SEED) -> tuple[list[str], list[str]]:
    """Per user: a hash `user:<id>`, a set `user:<id>:sessions`, and one `session:<token>` with a TTL.

    Returns the session keys: active ones (a long TTL) and abandoned ones (a short TTL).
    """
    rng = random.Random(seed)
    active, abandoned = [], []
    with client.pipeline(transaction=False) as pipe:
        for user_id in range(1, N_USERS + 1):
            token = f"{rng.getrandbits(64):016x}"
            pipe.hset(
                key("user", user_id),
                mapping={
                    "name": f"User {user_id}",
                    "email": f"user{user_id}@example.com",
                    "plan": rng.choice(PLANS),
                },
            )
            pipe.sadd(key("user", user_id, "sessions"), token)
            if user_id % ABANDONED_EVERY == 0:
                pipe.set(key("session", token), f"user:{user_id}", px=SHORT_TTL_MS)
                abandoned.append(key("session", token))
            else:
                pipe.set(key("session", token), f"user:{user_id}", ex=SESSION_TTL_S)
                active.append(key("session", token))
        pipe.execute()
    return active, abandoned


def scan_namespace(
    client: redis.Redis, pattern: str, key_type: str | None = None
) -> tuple[set[str], int, float]:
    """Every key matching `pattern`, the number of SCAN calls it took, and the longest one."""
    found, calls, longest, cursor = set(), 0, 0.0, 0
    while True:
        with timer() as took:
            cursor, names = client.scan(cursor, match=pattern, count=SCAN_COUNT, _type=key_type)
        calls += 1
        longest = max(longest, took.seconds)
        found.update(names)
        if cursor == 0:
            return found, calls, longest


def find_by_namespace(client: redis.Redis) -> NamespaceFacts:
    users_star, calls, longest = scan_namespace(client, key("user", "*"))
    hashes, _, _ = scan_namespace(client, key("user", "*"), key_type="hash")
    sessions, _, _ = scan_namespace(client, key("user", "*", "sessions"))
    with timer() as took:
        # KEYS walks the whole keyspace in one call and blocks every other client meanwhile.
        listed = set(client.keys(key("user", "*")))
    return NamespaceFacts(
        match_user_star=len(users_star),
        match_user_star_type_hash=len(hashes),
        match_sessions=len(sessions),
        keys_found=len(listed),
        keys_same_as_scan=listed == users_star,
        scan_calls=calls,
        scan_longest_s=longest,
        keys_s=took.seconds,
    )


def wait_until(condition: Callable[[], bool], during: Callable[[], object] = lambda: None) -> bool:
    """Poll `condition` (doing `during` each time) for at most POLL_LIMIT_S."""
    started = time.perf_counter()
    while not condition():
        if time.perf_counter() - started > POLL_LIMIT_S:
            return False
        during()
        time.sleep(0.02)
    return True


def expiry_and_eviction(client: redis.Redis, active: list[str], abandoned: list[str]) -> ExpiryFacts:
    session = active[0]
    # One MULTI each, so the TTL is read the moment after it is set, however busy the client is.
    _, ttl_session = client.pipeline().expire(session, 60).ttl(session).execute()
    # GETEX: a read that slides the expiry forward
    _, ttl_after_getex = client.pipeline().getex(session, ex=SESSION_TTL_S).ttl(session).execute()

    # Reading a key whose time is up deletes it, so polling one key tells when its batch is gone.
    wait_until(lambda: client.exists(abandoned[-1]) == 0)
    sessions_left = sum(1 for _ in client.scan_iter(match=key("session", "*"), count=SCAN_COUNT))

    maxmemory, policy = read_eviction_settings(client)
    ttls = ttls_in_namespace(client)
    candidates = {
        "noeviction": 0,
        "allkeys-*": len(ttls),
        "volatile-*": sum(1 for ttl in ttls if ttl >= 0),
    }

    signal, cold, hot, other_error = access_signals(client, cold=key("user", N_USERS), hot=key("user", 1))
    return ExpiryFacts(
        ttl_user=client.ttl(key("user", 1)),
        ttl_missing=client.ttl(key("user", 0)),
        ttl_session=ttl_session,
        ttl_after_getex=ttl_after_getex,
        abandoned=len(abandoned),
        sessions_left=sessions_left,
        maxmemory=maxmemory,
        policy=policy,
        candidates=candidates,
        idle_signal=signal,
        cold_value=cold,
        hot_value=hot,
        other_signal_error=other_error,
    )


def ttls_in_namespace(client: redis.Redis) -> list[int]:
    """The TTL of every key of this lesson (-1 for keys that never expire)."""
    with client.pipeline(transaction=False) as pipe:
        for name in client.scan_iter(match=PREFIX + "*", count=SCAN_COUNT):
            pipe.ttl(name)
        return pipe.execute()


def read_eviction_settings(client: redis.Redis) -> tuple[str, str]:
    """CONFIG GET only: changing maxmemory on a shared server would evict other lessons' keys."""
    try:
        settings = client.config_get("maxmemory*")
    except redis.ResponseError:  # managed services often disable CONFIG
        return "unknown", "unknown"
    return settings.get("maxmemory", "unknown"), settings.get("maxmemory-policy", "unknown")


def access_signals(client: redis.Redis, cold: str, hot: str) -> tuple[str, int, int, str]:
    """What the eviction policy ranks keys by: idle seconds (LRU) or an access counter (LFU).

    The server tracks one or the other, chosen by the policy; asking for the other is an error.
    """
    try:
        client.object("freq", cold)
        tracked, other = "freq", "idletime"
    except redis.ResponseError:
        tracked, other = "idletime", "freq"
    try:
        client.object(other, cold)
        other_error = ""
    except redis.ResponseError as refused:
        other_error = str(refused).split(".")[0]

    def touch_hot() -> None:
        client.hgetall(hot)

    if tracked == "idletime":
        # The LRU clock ticks in whole seconds: wait until the untouched key is at least 1 s idle.
        wait_until(lambda: client.object("idletime", cold) >= 1, during=touch_hot)
    else:
        for _ in range(199):
            touch_hot()
    # The last touch and both reads in one MULTI: the clock cannot tick between them.
    pipe = client.pipeline()
    pipe.hgetall(hot)
    pipe.object(tracked, hot)
    pipe.object(tracked, cold)
    _, hot_value, cold_value = pipe.execute()
    return f"OBJECT {tracked.upper()}", cold_value, hot_value, other_error


def memory_per_structure(client: redis.Redis) -> list[MemoryRow]:
    values = [f"user-{n:05d}" for n in range(N_ENTRIES)]
    client.mset({key("mem", "str", n): value for n, value in enumerate(values)})
    client.hset(key("mem", "hash"), mapping=dict(enumerate(values)))
    with client.pipeline(transaction=False) as pipe:
        for bucket in range(N_ENTRIES // BUCKET_SIZE):
            start = bucket * BUCKET_SIZE
            # Entry n lives in hash `bucket:<n // 100>` under field `<n % 100>`.
            pipe.hset(
                key("mem", "bucket", bucket), mapping=dict(enumerate(values[start : start + BUCKET_SIZE]))
            )
        pipe.execute()

    strings = [key("mem", "str", n) for n in range(N_ENTRIES)]
    buckets = [key("mem", "bucket", b) for b in range(N_ENTRIES // BUCKET_SIZE)]
    # EXISTS with several keys counts those the server holds.
    return [
        MemoryRow(
            "string keys",
            client.exists(*strings),
            client.object("encoding", strings[0]),
            usage(client, strings),
        ),
        MemoryRow(
            "one hash",
            client.exists(key("mem", "hash")),
            client.object("encoding", key("mem", "hash")),
            usage(client, [key("mem", "hash")]),
        ),
        MemoryRow(
            f"hashes of {BUCKET_SIZE}",
            client.exists(*buckets),
            client.object("encoding", buckets[0]),
            usage(client, buckets),
        ),
    ]


def usage(client: redis.Redis, names: list[str]) -> int:
    """MEMORY USAGE summed: value, key name and the key's entry; SAMPLES 0 counts every field."""
    with client.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.memory_usage(name, samples=0)
        return sum(pipe.execute())


def multi_exec(client: redis.Redis) -> TransactionFacts:
    alice, bob = key("account", "alice"), key("account", "bob")
    client.hset(alice, "balance", 100)
    client.hset(bob, "balance", 50)

    def balances() -> tuple[int, int]:
        return int(client.hget(alice, "balance")), int(client.hget(bob, "balance"))

    with client.pipeline(transaction=True) as pipe:  # MULTI ... EXEC: queued, then run as one
        pipe.hincrby(alice, "balance", -30)
        pipe.hincrby(bob, "balance", 30)
        transfer = pipe.execute()
    after_transfer = balances()

    # An error while EXEC runs (INCR on a hash) does not undo the commands around it.
    with client.pipeline(transaction=True) as pipe:
        pipe.hincrby(alice, "balance", -10)
        pipe.incr(alice)
        pipe.hincrby(bob, "balance", 10)
        replies = pipe.execute(raise_on_error=False)
    runtime = [type(reply).__name__ if isinstance(reply, Exception) else str(reply) for reply in replies]
    after_runtime = balances()

    # An error while queueing (a wrong number of arguments) discards the whole transaction.
    queue_error = ""
    with client.pipeline(transaction=True) as pipe:
        pipe.hincrby(alice, "balance", -10)
        pipe.execute_command("HINCRBY", alice)
        pipe.hincrby(bob, "balance", 10)
        try:
            pipe.execute()
        except redis.ResponseError as refused:
            queue_error = str(refused).rsplit(": ", 1)[-1]
    return TransactionFacts(transfer, after_transfer, runtime, after_runtime, queue_error, balances())


def take_stock(
    client: redis.Redis, name: str, qty: int, between: Callable[[], object] | None = None
) -> tuple[int, str]:
    """Optimistic locking: WATCH, read, MULTI, write, EXEC; start again if the key changed meanwhile."""
    attempts, first_error = 0, ""
    with client.pipeline() as pipe:
        while True:
            attempts += 1
            try:
                pipe.watch(name)  # from here the pipeline runs commands at once, until multi()
                stock = int(pipe.get(name))
                if between is not None and attempts == 1:
                    between()
                pipe.multi()
                pipe.set(name, stock - qty)
                pipe.execute()  # raises WatchError if `name` changed since WATCH
                return attempts, first_error
            except redis.WatchError as conflict:
                first_error = first_error or type(conflict).__name__


def optimistic_locking(client: redis.Redis, other: redis.Redis) -> WatchFacts:
    name = key("stock", "sku-1")

    def other_client_takes_one() -> None:
        other.decrby(name, 1)

    client.set(name, 10)
    stock = int(client.get(name))
    other_client_takes_one()
    client.set(name, stock - 2)  # no WATCH: writes 8 over the other client's 9
    without_watch = int(client.get(name))

    client.set(name, 10)
    attempts, first_error = take_stock(client, name, 2, between=other_client_takes_one)
    return WatchFacts(without_watch, first_error, attempts, int(client.get(name)))


def buy_read_then_write(client: redis.Redis, name: str, qty: int) -> Generator[None, None, bool]:
    """Not atomic: another client may run between the check (GET) and the write (DECRBY)."""
    stock = int(client.get(name))
    yield  # where the interleaving happens
    if stock >= qty:
        client.decrby(name, qty)
        return True
    return False


def finish(buyer: Generator[None, None, bool]) -> bool:
    try:
        next(buyer)
    except StopIteration as done:
        return done.value
    raise RuntimeError("a buyer yields once")


def check_and_set(client: redis.Redis, other: redis.Redis) -> ScriptFacts:
    name = key("stock", "last-item")

    # Interleaving: A checks, B checks, A writes, B writes. Both saw 1 in stock.
    client.set(name, 1)
    buyer_a, buyer_b = buy_read_then_write(client, name, 1), buy_read_then_write(other, name, 1)
    next(buyer_a)
    next(buyer_b)
    sold = sum([finish(buyer_a), finish(buyer_b)])
    read_then_write_stock = int(client.get(name))

    # The same two buyers with a script: its check and write run as one step, nothing in between.
    client.set(name, 1)
    script = client.register_script(CHECK_AND_DECREMENT)
    replies = [script(keys=[name], args=[1], client=client), script(keys=[name], args=[1], client=other)]
    return ScriptFacts(
        read_then_write_sold=sold,
        read_then_write_stock=read_then_write_stock,
        lua_sold=sum(1 for reply in replies if reply >= 0),
        lua_refused=sum(1 for reply in replies if reply < 0),
        lua_stock=int(client.get(name)),
        script_sha=script.sha,
    )


def run(client: redis.Redis, other: redis.Redis) -> KeyDesignResult:
    """`other` is a second connection: the concurrent client in the WATCH and Lua steps."""
    console.title("Redis key design: names, lifetimes, memory and atomicity")

    console.step(f"Reset the namespace `{PREFIX}*` with SCAN (never FLUSHDB on a shared server)")
    console.say(f"{reset(client):,} keys from an earlier run removed")

    console.step("Name keys type:id[:field], so a glob pattern finds a namespace")
    active, abandoned = load_users(client)
    console.table(
        ["key", "type", "holds"],
        [
            (key("user", 1), client.type(key("user", 1)), "the record: name, email, plan"),
            (
                key("user", 1, "sessions"),
                client.type(key("user", 1, "sessions")),
                "its session tokens",
            ),
            (key("session", "<token>"), client.type(active[0]), f"a user id, set with EX {SESSION_TTL_S}"),
        ],
    )
    loaded = sum(1 for _ in client.scan_iter(match=PREFIX + "*", count=SCAN_COUNT))
    console.say(f"{loaded:,} keys under the prefix after one pipeline for {N_USERS:,} users")

    console.step("Find a namespace: SCAN MATCH in small steps, not KEYS in one blocking call")
    found = find_by_namespace(client)
    console.table(
        ["pattern", "keys"],
        [
            ("SCAN MATCH user:*", found.match_user_star),
            ("SCAN MATCH user:* TYPE hash", found.match_user_star_type_hash),
            ("SCAN MATCH user:*:sessions", found.match_sessions),
            ("KEYS user:*", found.keys_found),
        ],
    )
    console.say(
        f"`user:*` also matches `user:<id>:sessions`: {found.match_user_star:,} keys for "
        f"{found.match_user_star_type_hash:,} user records"
    )
    console.say(
        f"SCAN took {found.scan_calls} calls (COUNT {SCAN_COUNT}), the longest "
        f"{console.seconds(found.scan_longest_s)}; KEYS: one call of {console.seconds(found.keys_s)}, during which "
        f"the server served no other client; same keys: {found.keys_same_as_scan}"
    )

    console.step("Expiry: every session has a TTL; the eviction policy is read, never changed here")
    expiry = expiry_and_eviction(client, active, abandoned)
    console.table(
        ["command", "result"],
        [
            ("TTL user:1 (no expiry)", expiry.ttl_user),
            ("TTL user:0 (no such key)", expiry.ttl_missing),
            ("EXPIRE session 60, TTL", expiry.ttl_session),
            (f"GETEX session EX {SESSION_TTL_S} (sliding expiry), TTL", expiry.ttl_after_getex),
            (f"sessions given PX {SHORT_TTL_MS} (abandoned ones)", expiry.abandoned),
            ("sessions left once those expired (polled)", expiry.sessions_left),
        ],
    )
    console.say(f"this server: maxmemory {expiry.maxmemory} (0 = no limit), maxmemory-policy {expiry.policy}")
    console.table(
        ["maxmemory-policy", "evicts", "ours at risk"],
        [
            (policy, scope, count)
            for (policy, scope), count in zip(EVICTION_POLICIES, expiry.candidates.values(), strict=True)
        ],
    )
    console.say(
        f"what LRU/LFU eviction ranks by, {expiry.idle_signal}: untouched user {expiry.cold_value}, "
        f"user read all along {expiry.hot_value}"
    )
    console.say(f'the other signal is not tracked under this policy: "{expiry.other_signal_error}"')

    console.step(f"Memory: {N_ENTRIES:,} entries as string keys, as one hash, as small hashes (MEMORY USAGE)")
    memory = memory_per_structure(client)
    console.table(
        ["layout", "keys", "encoding", "total", "bytes per entry"],
        [
            (r.layout, r.keys, r.encoding, console.size(r.total_bytes), f"{r.bytes_per_entry:.1f}")
            for r in memory
        ],
    )
    console.say(
        "every top-level key pays for its name, a keyspace entry and an object header; a listpack "
        f"hash of up to 128 short fields is one flat allocation (entry n: hash n // {BUCKET_SIZE}, field n % {BUCKET_SIZE})"
    )

    console.step("MULTI/EXEC: queued commands run as one, but nothing is rolled back")
    transaction = multi_exec(client)
    console.table(
        ["queued between MULTI and EXEC", "replies", "alice, bob"],
        [
            ("HINCRBY -30, HINCRBY +30 (a transfer)", _joined(transaction.transfer_results),
             _joined(transaction.balances_after_transfer)),
            ("HINCRBY, INCR on a hash, HINCRBY", _joined(transaction.runtime_error_results),
             _joined(transaction.balances_after_runtime_error)),
            ("HINCRBY, HINCRBY missing its value, HINCRBY", "EXECABORT: nothing ran",
             _joined(transaction.balances_after_queue_error)),
        ],
    )  # fmt: skip
    console.say("an error at EXEC time leaves the other writes applied; an error while queueing discards all")

    console.step("WATCH: optimistic locking against a second client writing in between")
    watch = optimistic_locking(client, other)
    console.table(
        ["stock 10; we take 2 while the other client takes 1", "stock after"],
        [
            ("GET, then SET without WATCH (lost update)", watch.stock_without_watch),
            (f"WATCH, GET, MULTI, SET, EXEC: attempt 1 raised {watch.first_attempt_error}, "
             f"attempt {watch.attempts} succeeded", watch.stock_with_watch),
        ],
    )  # fmt: skip

    console.step("Lua: an atomic check-and-set, against read-then-write under the same interleaving")
    script = check_and_set(client, other)
    console.table(
        ["one item in stock, two buyers", "sold", "stock after"],
        [
            ("GET, GET, DECRBY, DECRBY (two clients interleaved)", script.read_then_write_sold,
             script.read_then_write_stock),
            (f"EVALSHA {script.script_sha[:10]}..., twice", script.lua_sold, script.lua_stock),
        ],
    )  # fmt: skip
    console.say(f"sold {script.read_then_write_sold} of 1 without the script; sold {script.lua_sold} of 1 and "
                f"refused {script.lua_refused} with it")  # fmt: skip

    return KeyDesignResult(found, expiry, memory, transaction, watch, script)


def _joined(values) -> str:
    return ", ".join(str(value) for value in values)


def main() -> int:
    require(*REQUIRES)
    url = redis_url()
    client = redis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=CONNECT_TIMEOUT_S)
    other = redis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=CONNECT_TIMEOUT_S)
    with client, other:
        result = run(client, other)
    script = result.script
    return 0 if (script.read_then_write_sold, script.lua_sold, result.watch.attempts) == (2, 1, 2) else 1


if __name__ == "__main__":
    raise SystemExit(main())

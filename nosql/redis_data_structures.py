"""Redis data structures: strings, hashes, lists, sets, sorted sets and streams, each on the job it fits

Redis is not one key-value map but a server of typed values, and the type decides which
operations are atomic and cheap. This lesson uses each type for the job it is made for: a string
with a time to live (and watches it expire), a counter, a hash as a small record, a list as a
reliable work queue that survives a crashed worker, sets for tag intersections, a sorted set as a
leaderboard, and a stream read by a consumer group, where a message one consumer never
acknowledged is found in the pending list and claimed by the other consumer.

Engine: Redis (REDIS_URL), keys under `redis_data_structures:`.
Run: `make up SERVICES=redis` (or `make local-up`), then `python nosql/redis_data_structures.py`.
Look for: the key gone after its short TTL, the job recovered from the crashed worker, and the
stream message pending for consumer-b until consumer-a claims it (delivered twice, then acknowledged).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

import redis

from common import console
from common.settings import CONNECT_TIMEOUT_S, redis_url, require

REQUIRES = ("redis",)
PREFIX = "redis_data_structures:"
SEED = 11
SHORT_TTL_MS = 150
POLL_LIMIT_S = 1.0
PAGE_VIEWS = 100
N_PLAYERS, N_GAMES = 20, 400
JOBS = [f"job-{n}" for n in range(1, 6)]
TAGS = {
    "article:1": ["redis", "database", "cache", "nosql"],
    "article:2": ["redis", "streams", "nosql", "queue"],
}
EVENTS = [f"order-{n}" for n in range(1, 7)]
GROUP, CONSUMER_A, CONSUMER_B = "billing", "consumer-a", "consumer-b"
MIN_IDLE_MS = 50  # how long a message must sit un-acknowledged before another consumer may claim it


def key(*parts: object) -> str:
    return PREFIX + ":".join(str(part) for part in parts)


@dataclass
class StringFacts:
    ttl_after_set_ex: int
    short_key_pttl_positive: bool
    short_key_expired: bool
    expired_after_s: float = field(compare=False)  # measured, so not part of the facts compared
    counter_after_incr: int = 0
    counter_after_incrby: int = 0


@dataclass
class HashFacts:
    record: dict[str, str]
    stock_after_hincrby: int


@dataclass
class QueueFacts:
    processed: list[str]  # in the order workers finished them
    left_by_crash: list[str]  # in the processing list when the worker died
    empty_pop: object  # what BRPOP returns on an empty queue after its timeout


@dataclass
class SetFacts:
    common_tags: list[str]
    all_tags: list[str]
    only_first: list[str]


@dataclass
class LeaderboardFacts:
    top3: list[tuple[str, float]]
    player: str
    score: float
    rank_from_top: int  # ZREVRANK: 0 is the leader
    rank_from_bottom: int  # ZRANK


@dataclass
class StreamFacts:
    length: int
    read_by_a: list[str]
    read_by_b: list[str]
    acked: int
    pending_before_claim: int
    pending_owner: str
    claimed_too_early: int  # messages XAUTOCLAIM took while the owner might still be working
    unacked_event: str
    claimed_by: str
    times_delivered_after_claim: int
    pending_after_ack: int


@dataclass
class DataStructuresResult:
    strings: StringFacts
    hashes: HashFacts
    queue: QueueFacts
    sets: SetFacts
    leaderboard: LeaderboardFacts
    stream: StreamFacts
    keys_at_start: int = field(compare=False)


def reset(client: redis.Redis) -> int:
    """Delete this lesson's keys (SCAN, never FLUSHDB: other lessons share the server)."""
    deleted = 0
    batch: list[str] = []
    for name in client.scan_iter(match=PREFIX + "*", count=500):
        batch.append(name)
        if len(batch) == 500:
            deleted += client.unlink(*batch)
            batch.clear()
    if batch:
        deleted += client.unlink(*batch)
    return deleted


def strings_with_ttl(client: redis.Redis) -> StringFacts:
    # Each write and its TTL read go in one MULTI: the server runs them back to back, so a client
    # paused between two round trips cannot see 59 for 60, or a 150 ms key already gone.
    session = key("session", "abc123")
    _, ttl = client.pipeline().set(session, "user:42", ex=60).ttl(session).execute()

    short = key("otp", "user:42")
    _, pttl = client.pipeline().set(short, "731904", px=SHORT_TTL_MS).pttl(short).execute()
    pttl_positive = pttl > 0
    started = time.perf_counter()
    # Poll rather than sleep a fixed time: reading a key also expires it if its time is up.
    while client.exists(short) and time.perf_counter() - started < POLL_LIMIT_S:
        time.sleep(0.01)
    expired_after = time.perf_counter() - started
    expired = not client.exists(short)

    views = key("page", "home", "views")
    with client.pipeline(transaction=False) as pipe:
        for _ in range(PAGE_VIEWS):
            pipe.incr(views)
        after_incr = pipe.execute()[-1]
    after_incrby = client.incrby(views, 50)
    return StringFacts(ttl, pttl_positive, expired, expired_after, after_incr, after_incrby)


def hash_as_record(client: redis.Redis) -> HashFacts:
    product = key("product", 1001)
    client.hset(product, mapping={"name": "Espresso cup", "price": "7.50", "stock": "12"})
    stock = client.hincrby(product, "stock", -3)
    return HashFacts(client.hgetall(product), stock)


def reliable_queue(client: redis.Redis) -> QueueFacts:
    """LMOVE takes a job and parks it in a processing list in one atomic step."""
    jobs, processing = key("queue", "jobs"), key("queue", "processing")
    client.lpush(jobs, *JOBS)  # LPUSH at the head, take from the tail: first in, first out
    processed = []

    job = client.lmove(jobs, processing, src="RIGHT", dest="LEFT")
    processed.append(job)
    client.lrem(processing, 1, job)  # done: remove it from the processing list

    client.lmove(jobs, processing, src="RIGHT", dest="LEFT")  # this worker dies before LREM
    left_by_crash = client.lrange(processing, 0, -1)

    # A reaper puts stuck jobs back at the tail, so they are taken next.
    while client.lmove(processing, jobs, src="LEFT", dest="RIGHT") is not None:
        pass
    while (job := client.blmove(jobs, processing, 0.1, src="RIGHT", dest="LEFT")) is not None:
        processed.append(job)
        client.lrem(processing, 1, job)

    empty_pop = client.brpop([jobs], timeout=0.1)  # the simple blocking pop: None after its timeout
    return QueueFacts(processed, left_by_crash, empty_pop)


def tag_sets(client: redis.Redis) -> SetFacts:
    first, second = (key("tags", name) for name in TAGS)
    for name, tags in TAGS.items():
        client.sadd(key("tags", name), *tags)
    return SetFacts(
        sorted(client.sinter(first, second)),
        sorted(client.sunion(first, second)),
        sorted(client.sdiff(first, second)),
    )


def leaderboard(client: redis.Redis, seed: int = SEED) -> LeaderboardFacts:
    board = key("leaderboard", "season-1")
    rng = random.Random(seed)
    players = [f"player-{n:02d}" for n in range(1, N_PLAYERS + 1)]
    with client.pipeline(transaction=False) as pipe:
        for _ in range(N_GAMES):
            pipe.zincrby(board, rng.randint(1, 100), rng.choice(players))
        pipe.execute()
    top3 = client.zrevrange(board, 0, 2, withscores=True)
    player = players[0]
    return LeaderboardFacts(
        [(name, score) for name, score in top3],
        player,
        client.zscore(board, player),
        client.zrevrank(board, player),
        client.zrank(board, player),
    )


def stream_with_group(client: redis.Redis) -> StreamFacts:
    stream = key("stream", "orders")
    for n, event in enumerate(EVENTS, start=1):
        client.xadd(stream, {"event": event, "amount_cents": str(n * 1250)})
    client.xgroup_create(stream, GROUP, id="0")  # "0": the group starts from the first entry

    read_by = {}
    for consumer in (CONSUMER_A, CONSUMER_B):
        [[_, messages]] = client.xreadgroup(GROUP, consumer, {stream: ">"}, count=3)
        read_by[consumer] = messages
    acked = client.xack(stream, GROUP, *(message_id for message_id, _ in read_by[CONSUMER_A]))
    # consumer-b acknowledges its first two messages and crashes before the third.
    acked += client.xack(stream, GROUP, *(message_id for message_id, _ in read_by[CONSUMER_B][:2]))

    summary = client.xpending(stream, GROUP)
    _next, too_early, _deleted = client.xautoclaim(stream, GROUP, CONSUMER_A, min_idle_time=60_000)
    [stuck] = client.xpending_range(stream, GROUP, "-", "+", count=10)
    started = time.perf_counter()
    while stuck["time_since_delivered"] < MIN_IDLE_MS and time.perf_counter() - started < POLL_LIMIT_S:
        time.sleep(0.01)
        [stuck] = client.xpending_range(stream, GROUP, "-", "+", count=10)

    _next, claimed, _deleted = client.xautoclaim(stream, GROUP, CONSUMER_A, min_idle_time=MIN_IDLE_MS)
    [after_claim] = client.xpending_range(stream, GROUP, "-", "+", count=10)
    client.xack(stream, GROUP, *(message_id for message_id, _ in claimed))

    def events(messages):
        return [fields["event"] for _, fields in messages]

    return StreamFacts(
        length=client.xlen(stream),
        read_by_a=events(read_by[CONSUMER_A]),
        read_by_b=events(read_by[CONSUMER_B]),
        acked=acked,
        pending_before_claim=summary["pending"],
        pending_owner=stuck["consumer"],
        claimed_too_early=len(too_early),
        unacked_event=events(claimed)[0] if claimed else "",
        claimed_by=after_claim["consumer"],
        times_delivered_after_claim=after_claim["times_delivered"],
        pending_after_ack=client.xpending(stream, GROUP)["pending"],
    )


def run(client: redis.Redis) -> DataStructuresResult:
    console.title("Redis data structures: one type per job")

    console.step(f"Reset the namespace `{PREFIX}*` with SCAN (never FLUSHDB on a shared server)")
    removed = reset(client)
    console.say(f"{removed:,} keys from an earlier run removed")

    console.step("Strings: a value with a time to live, and a counter")
    strings = strings_with_ttl(client)
    console.table(
        ["command", "result"],
        [
            ("SET session EX 60, then TTL", strings.ttl_after_set_ex),
            (f"SET otp PX {SHORT_TTL_MS}, then PTTL > 0", strings.short_key_pttl_positive),
            ("EXISTS otp, polled until it is gone", f"gone after {console.seconds(strings.expired_after_s)}"),
            (f"INCR page views x{PAGE_VIEWS} (pipelined)", strings.counter_after_incr),
            ("INCRBY page views 50", strings.counter_after_incrby),
        ],
    )
    console.say("INCR is atomic on the server: no read-modify-write race between clients.")

    console.step("Hashes: one record, fields read and changed one by one")
    hashes = hash_as_record(client)
    console.table(["field", "value"], hashes.record.items(), caption="HGETALL after HINCRBY stock -3")

    console.step("Lists: a reliable queue (LMOVE into a processing list, LREM when done)")
    queue = reliable_queue(client)
    console.say(
        f"the worker that crashed left {queue.left_by_crash} in the processing list; a reaper moved it back"
    )
    console.table(["order", "job finished"], enumerate(queue.processed, start=1))
    console.say(f"BRPOP on the empty queue with a 0.1 s timeout returns {queue.empty_pop}")

    console.step("Sets: tags, intersected and joined on the server")
    sets = tag_sets(client)
    console.table(
        ["command", "members"],
        [
            ("SINTER", ", ".join(sets.common_tags)),
            ("SUNION", ", ".join(sets.all_tags)),
            ("SDIFF", ", ".join(sets.only_first)),
        ],
    )

    console.step(f"Sorted set: a leaderboard from {N_GAMES} game results (ZINCRBY)")
    board = leaderboard(client)
    console.table(["place", "player", "score"], [(n, p, s) for n, (p, s) in enumerate(board.top3, start=1)])
    console.say(
        f"{board.player}: score {board.score:.0f}, ZREVRANK {board.rank_from_top} (place "
        f"{board.rank_from_top + 1}), ZRANK {board.rank_from_bottom} counted from the bottom"
    )

    console.step("Stream: a consumer group, a message left un-acknowledged, and claimed")
    stream = stream_with_group(client)
    console.table(
        ["step", "result"],
        [
            (f"XADD x{len(EVENTS)}, XGROUP CREATE {GROUP}", f"{stream.length} entries"),
            (f"XREADGROUP {CONSUMER_A} COUNT 3", ", ".join(stream.read_by_a)),
            (f"XREADGROUP {CONSUMER_B} COUNT 3", ", ".join(stream.read_by_b)),
            ("XACK: a all three, b only two (b crashes)", f"{stream.acked} acknowledged"),
            ("XPENDING", f"{stream.pending_before_claim} pending, owned by {stream.pending_owner}"),
            (
                f"XAUTOCLAIM by {CONSUMER_A}, min idle 60 s",
                f"{stream.claimed_too_early} claimed: b may still be busy",
            ),
            (f"XAUTOCLAIM by {CONSUMER_A}, min idle {MIN_IDLE_MS} ms", stream.unacked_event),
            (
                "XPENDING after the claim",
                f"owner {stream.claimed_by}, delivered {stream.times_delivered_after_claim}x",
            ),
            ("XACK, then XPENDING", f"{stream.pending_after_ack} pending"),
        ],
    )

    return DataStructuresResult(strings, hashes, queue, sets, board, stream, keys_at_start=removed)


def main() -> int:
    require(*REQUIRES)
    client = redis.Redis.from_url(
        redis_url(), decode_responses=True, socket_connect_timeout=CONNECT_TIMEOUT_S
    )
    with client:
        result = run(client)
    stream = result.stream
    recovered = stream.claimed_by == CONSUMER_A and stream.pending_after_ack == 0
    return 0 if recovered and result.queue.left_by_crash and result.strings.short_key_expired else 1


if __name__ == "__main__":
    raise SystemExit(main())

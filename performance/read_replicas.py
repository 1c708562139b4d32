"""Read replicas: writes to the primary, reads to a streaming replica, and the lag between them

A streaming replica replays the primary's write-ahead log (WAL) and answers read-only queries,
so reads can move off the primary. This lesson routes statements with a small function (writes
to the primary, plain SELECTs to the replica), shows the replica refusing a write, and measures
replication lag two ways: bytes of WAL the replica has yet to replay (the primary's WAL position,
pg_current_wal_insert_lsn(), against pg_last_wal_replay_lsn() on the replica) and the time from commit until the
row is visible there. It then shows the read-your-writes problem: write, read straight back
through the router, and count the reads that miss the row, first as the servers run, then with
replay paused on the replica (pg_wal_replay_pause(), a stand-in for a replica held back by load
or a long query), where every read misses. Two fixes, each with the stale reads gone: stick a
session to the primary for a while after it writes, and wait until the replica has replayed past
the commit's WAL position before reading there.

Engine: PostgreSQL primary (POSTGRES_URL) and its streaming replica (POSTGRES_REPLICA_URL),
schema `read_replicas` (created on the primary; the replica gets it through the WAL). Pausing
replay takes a superuser on the replica (or EXECUTE on pg_wal_replay_pause granted).
Run: `make up SERVICES="postgres postgres_replica"` (or `make local-up`), then
`python performance/read_replicas.py`.
Look for: "cannot execute INSERT in a read-only transaction", the lag in bytes and milliseconds,
stale reads out of the tries (all of them while replay is paused), and 0 after each fix.
"""

from __future__ import annotations

import random
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from common import console
from common.settings import CONNECT_TIMEOUT_S, postgres_replica_url, postgres_url, require, scale
from common.timing import Comparison, timer

REQUIRES = ("postgres", "postgres_replica")
SCHEMA = "read_replicas"
SEED = 5
FULL_ORDERS, MIN_ORDERS = 100_000, 10_000
FULL_TRIES, MIN_TRIES = 200, 40  # write-then-read attempts per variant
FULL_LAG_WRITES, MIN_LAG_WRITES = 200, 40
STICK_TO_PRIMARY_S = 30.0  # how long a session reads from the primary after it writes
CATCH_UP_TIMEOUT_S = 60.0
POLL_S = 0.0002

ORDERS = """
CREATE TABLE orders (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id integer NOT NULL,
    total_cents integer NOT NULL,
    note text NOT NULL
)
"""
LOAD_ORDERS = """
INSERT INTO orders (customer_id, total_cents, note)
SELECT 1 + (i * 7919) %% 5000, 100 + (i::bigint * 104729) %% 50000, 'order ' || i
FROM generate_series(1, %s) AS i
"""
WRITE = "INSERT INTO orders (customer_id, total_cents, note) VALUES (%s, %s, %s) RETURNING id"
READ_BACK = "SELECT id, total_cents FROM orders WHERE id = %s"
# What the router is shown deciding; each is run through it against the loaded table.
EXAMPLES = [
    ("INSERT INTO orders (customer_id, total_cents, note) VALUES (%s, %s, %s)", (1, 990, "example")),
    ("UPDATE orders SET total_cents = total_cents + 1 WHERE id = %s", (1,)),
    ("SELECT count(*) FROM orders WHERE customer_id = %s", (1,)),
    ("SELECT id FROM orders WHERE id = %s FOR UPDATE", (1,)),
    ("SELECT pg_is_in_recovery()", ()),
]
ROW_LOCKS = ("FOR UPDATE", "FOR NO KEY UPDATE", "FOR SHARE", "FOR KEY SHARE")
# Run on the replica with the primary's position as a parameter: both servers in one comparison.
BEHIND = """
SELECT pg_wal_lsn_diff(%(primary)s::pg_lsn, pg_last_wal_receive_lsn()),
       pg_wal_lsn_diff(%(primary)s::pg_lsn, pg_last_wal_replay_lsn())
"""
# How far replay is behind a primary position; read before the row is looked for (see measure_lag).
BYTES_BEHIND = "SELECT pg_wal_lsn_diff(%s::pg_lsn, pg_last_wal_replay_lsn())"
VISIBLE = "SELECT EXISTS (SELECT 1 FROM orders WHERE id = %s)"
REPLAYED_PAST = "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn"


def is_read(statement: str) -> bool:
    """A plain SELECT only reads. A SELECT that locks rows writes them (a replica refuses it too)."""
    words = " ".join(statement.split()).upper()
    return words.startswith("SELECT ") and not any(lock in words for lock in ROW_LOCKS)


def route(statement: str, primary: psycopg.Connection, replica: psycopg.Connection) -> psycopg.Connection:
    """The router: the replica for a statement that only reads, the primary for anything else."""
    return replica if is_read(statement) else primary


@dataclass
class Session:
    """One user's statements, routed; for `stick_s` after a write its reads go to the primary too."""

    primary: psycopg.Connection
    replica: psycopg.Connection
    stick_s: float = 0.0
    last_write: float = float("-inf")
    reads: Counter = field(default_factory=Counter)  # reads served, by server

    def execute(self, statement: str, params: tuple = ()) -> list[tuple]:
        conn = route(statement, self.primary, self.replica)
        writes = conn is self.primary
        if not writes and time.monotonic() - self.last_write < self.stick_s:
            conn = self.primary
        if is_read(statement):
            self.reads["replica" if conn is self.replica else "primary"] += 1
        cur = conn.execute(statement, params)
        rows = cur.fetchall() if cur.description else []
        if writes:  # the window starts once the commit returned: a slow write must not use it up
            self.last_write = time.monotonic()
        return rows


@dataclass(frozen=True)
class Sizes:
    orders: int
    tries: int
    lag_writes: int

    @classmethod
    def at(cls, scale: float) -> Sizes:
        return cls(
            orders=max(int(FULL_ORDERS * scale), MIN_ORDERS),
            tries=max(int(FULL_TRIES * scale), MIN_TRIES),
            lag_writes=max(int(FULL_LAG_WRITES * scale), MIN_LAG_WRITES),
        )


@dataclass
class Lag:
    """Commit on the primary, then poll the replica until the row is there."""

    writes: int
    visible_on_replica: int  # of the rows written, found on the replica once the polling ended
    not_there_at_first_look: int = field(compare=False)
    # First looks that missed the row while the replica had not replayed up to the primary's
    # position: every miss, if a missing row means replay has not reached its commit yet.
    missed_while_behind: int = field(compare=False)
    bytes_behind_p50: float = field(compare=False)  # WAL not yet replayed at the first look
    bytes_behind_max: float = field(compare=False)
    visible_after_p50_s: float = field(compare=False)
    visible_after_max_s: float = field(compare=False)


@dataclass
class ReadYourWrites:
    """Write through the session, read the row straight back through it, `tries` times."""

    variant: str
    tries: int
    # Reads that did not find the row just written: as the servers run, as many as the race
    # happens to lose, so a rerun compares it only where it is settled (paused, or fixed).
    stale: int = field(compare=False)
    reads: dict[str, int]  # reads served, by server
    read_seconds: float = field(compare=False)  # time spent reading back (and waiting, if it waits)
    waits_p50_s: float = field(default=0.0, compare=False)
    waits_max_s: float = field(default=0.0, compare=False)


@dataclass
class Paused:
    state: str  # pg_get_wal_replay_pause_state() once the pause took hold
    bytes_not_received: float = field(compare=False)
    bytes_not_replayed: float = field(compare=False)
    catch_up_s: float = field(compare=False)  # from resume until replayed past the primary's position
    rows_missing_after_catch_up: int = 0


@dataclass
class ReadReplicasResult:
    primary_in_recovery: bool
    replica_in_recovery: bool
    write_on_replica: str  # the error class the replica raised
    write_on_replica_sqlstate: str
    write_on_replica_message: str
    orders_on_primary: int
    orders_on_replica: int
    routes: list[tuple[str, str]]  # statement, server that ran it
    lag: Lag
    as_it_runs: ReadYourWrites
    replay_paused: ReadYourWrites
    sticky: ReadYourWrites
    paused: Paused
    waiting: ReadYourWrites
    synchronous_commit: str = field(compare=False)  # the server's setting; the session uses "on"
    comparisons: list[Comparison] = field(default_factory=list, compare=False)


def fetch_one(conn: psycopg.Connection, statement: str, params: tuple | dict = ()) -> tuple:
    return conn.execute(statement, params).fetchone()


def resume_replay(replica: psycopg.Connection) -> None:
    """Safe to call when replay is not paused; a run that died while paused is undone here."""
    replica.execute("SELECT pg_wal_replay_resume()")


def primary_position(primary: psycopg.Connection) -> str:
    """Where the primary's WAL ends now: past the commit of everything this session committed."""
    return fetch_one(primary, "SELECT pg_current_wal_insert_lsn()")[0]


def wait_for_replay(replica: psycopg.Connection, lsn: str, timeout_s: float = CATCH_UP_TIMEOUT_S) -> float:
    """Poll until the replica has replayed up to `lsn`; return how long that took."""
    started = time.perf_counter()
    while not fetch_one(replica, REPLAYED_PAST, (lsn,))[0]:
        if time.perf_counter() - started > timeout_s:
            raise TimeoutError(f"the replica did not replay up to {lsn} in {timeout_s:.0f} s")
        time.sleep(POLL_S)
    return time.perf_counter() - started


def load(primary: psycopg.Connection, replica: psycopg.Connection, orders: int) -> tuple[int, int]:
    resume_replay(replica)
    with primary.cursor() as cur:
        cur.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SCHEMA)))
        cur.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(SCHEMA)))
        cur.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(SCHEMA)))
        cur.execute(ORDERS)
        cur.execute(LOAD_ORDERS, (orders,))
    wait_for_replay(replica, primary_position(primary))
    replica.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(SCHEMA)))
    count = "SELECT count(*) FROM orders"
    return fetch_one(primary, count)[0], fetch_one(replica, count)[0]


def refused_write(replica: psycopg.Connection) -> tuple[str, str, str]:
    """The error class, SQLSTATE and message of an INSERT sent to the replica."""
    try:
        replica.execute(EXAMPLES[0][0], EXAMPLES[0][1])
    except psycopg.errors.ReadOnlySqlTransaction as error:
        return type(error).__name__, error.sqlstate or "", error.diag.message_primary or ""
    return "", "", ""


def show_routes(primary: psycopg.Connection, replica: psycopg.Connection) -> list[tuple[str, str]]:
    routes = []
    for statement, params in EXAMPLES:
        conn = route(statement, primary, replica)
        cur = conn.execute(statement, params)
        answer = cur.fetchone() if cur.description else None
        server = "replica" if conn is replica else "primary"
        routes.append((statement, server))
        shown = " ".join(statement.split()).replace("%s", "?")
        console.say(f"{server:<8} {shown}" + (f"  -> {answer[0]}" if answer and len(answer) == 1 else ""))
    return routes


def new_order(rng: random.Random) -> tuple:
    return (
        rng.randint(1, 5000),
        rng.randint(100, 50_000),
        "placed through the router " + "x" * rng.randint(0, 80),
    )


def measure_lag(primary: psycopg.Connection, replica: psycopg.Connection, writes: int) -> Lag:
    rng = random.Random(SEED)
    behind, visible_after, missed, missed_behind, ids = [], [], 0, 0, []
    for _ in range(writes):
        (order_id,) = fetch_one(primary, WRITE, new_order(rng))  # autocommit: committed on return
        committed = time.perf_counter()
        # Replay position first, then the row (two statements): replay only moves forward, so a row
        # still missing at the second look proves replay was behind at the first. In one statement
        # the row's snapshot could be older than the position read beside it.
        (bytes_behind,) = fetch_one(replica, BYTES_BEHIND, (primary_position(primary),))
        (there,) = fetch_one(replica, VISIBLE, (order_id,))
        behind.append(float(bytes_behind))
        missed += not there
        missed_behind += not there and bytes_behind > 0
        while not there:
            time.sleep(POLL_S)
            (there,) = fetch_one(replica, VISIBLE, (order_id,))
        visible_after.append(time.perf_counter() - committed)
        ids.append(order_id)
    (visible,) = fetch_one(replica, "SELECT count(*) FROM orders WHERE id = ANY(%s)", (ids,))
    return Lag(
        len(ids),
        visible,
        missed,
        missed_behind,
        statistics.median(behind),
        max(behind),
        statistics.median(visible_after),
        max(visible_after),
    )


def read_your_writes(session: Session, tries: int, variant: str, wait: bool = False) -> ReadYourWrites:
    """Each try writes an order, then reads it back at once (after waiting for replay if `wait`)."""
    rng = random.Random(SEED + tries)
    stale, reading, waits = 0, 0.0, []
    for _ in range(tries):
        ((order_id,),) = session.execute(WRITE, new_order(rng))
        with timer() as elapsed:
            if wait:
                waits.append(wait_for_replay(session.replica, primary_position(session.primary)))
            stale += not session.execute(READ_BACK, (order_id,))
        reading += elapsed.seconds
    return ReadYourWrites(
        variant,
        tries,
        stale,
        dict(sorted(session.reads.items())),
        reading,
        statistics.median(waits) if waits else 0.0,
        max(waits) if waits else 0.0,
    )


@contextmanager
def replay_paused(replica: psycopg.Connection) -> Iterator[str]:
    """Pause WAL replay on the replica; always resumed on the way out."""
    try:
        replica.execute("SELECT pg_wal_replay_pause()")
        deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
        state = fetch_one(replica, "SELECT pg_get_wal_replay_pause_state()")[0]
        while state != "paused" and time.monotonic() < deadline:
            time.sleep(0.01)
            state = fetch_one(replica, "SELECT pg_get_wal_replay_pause_state()")[0]
        yield state
    finally:
        resume_replay(replica)


def show_tries(*results: ReadYourWrites) -> None:
    console.table(
        ["variant", "tries", "stale", "replica reads", "primary reads", "read time"],
        [
            (r.variant, r.tries, r.stale, r.reads.get("replica", 0), r.reads.get("primary", 0),
             console.seconds(r.read_seconds / r.tries))
            for r in results
        ],
    )  # fmt: skip


def missing_on_replica(primary: psycopg.Connection, replica: psycopg.Connection, newest: int) -> int:
    """Of the `newest` orders on the primary, how many the replica does not have."""
    rows = primary.execute("SELECT id FROM orders ORDER BY id DESC LIMIT %s", (newest,)).fetchall()
    ids = [order_id for (order_id,) in rows]
    return len(ids) - fetch_one(replica, "SELECT count(*) FROM orders WHERE id = ANY(%s)", (ids,))[0]


def while_replay_is_paused(
    primary: psycopg.Connection, replica: psycopg.Connection, tries: int
) -> tuple[ReadYourWrites, ReadYourWrites, Paused]:
    """The routed reads, then fix 1, with replay paused; then resume and let the replica catch up."""
    with replay_paused(replica) as state:
        routed = read_your_writes(Session(primary, replica), tries, "replay paused")
        show_tries(routed)
        console.say(f"pg_get_wal_replay_pause_state(): {state}. Nothing new is replayed, so {routed.stale}")
        console.say(f"of {routed.tries} reads missed the row just written.")

        console.step(
            f"Fix 1: after a write, the session reads from the primary for {STICK_TO_PRIMARY_S:.0f} s"
        )
        console.say("Replay is still paused: the replica is as stale as before, and no read goes there.")
        sticky = read_your_writes(
            Session(primary, replica, stick_s=STICK_TO_PRIMARY_S), tries, "stick to primary"
        )
        show_tries(sticky)
        console.say("It guesses the lag: a replica further behind than the window is read stale again.")
        not_received, not_replayed = fetch_one(replica, BEHIND, {"primary": primary_position(primary)})
        console.say(
            f"meanwhile the replica received the WAL (behind by {console.size(float(not_received))}) "
            f"but did not replay it (behind by {console.size(float(not_replayed))})."
        )
        target = primary_position(primary)
    catch_up = wait_for_replay(replica, target)
    missing = missing_on_replica(primary, replica, newest=2 * tries)  # both loops wrote while paused
    return routed, sticky, Paused(state, float(not_received), float(not_replayed), catch_up, missing)


def run(primary: psycopg.Connection, replica: psycopg.Connection, scale: float = 1.0) -> ReadReplicasResult:
    """Switches both connections to autocommit: each write commits at once, each read sees the latest."""
    primary.autocommit = replica.autocommit = True
    sizes = Sizes.at(scale)
    console.title(
        "Read replicas: writes to the primary, reads to a streaming replica, and the lag between them"
    )

    console.step("Two servers: the primary takes writes, the replica replays the primary's WAL")
    server_commit = fetch_one(primary, "SHOW synchronous_commit")[0]
    # Commit waits for the WAL flush (the default): otherwise WAL may sit in memory up to
    # wal_writer_delay before the replica can receive it, and that would be the lag measured.
    primary.execute("SET synchronous_commit = on")
    primary_recovery = fetch_one(primary, "SELECT pg_is_in_recovery()")[0]
    replica_recovery = fetch_one(replica, "SELECT pg_is_in_recovery()")[0]
    on_primary, on_replica = load(primary, replica, sizes.orders)
    console.table(
        ["server", "pg_is_in_recovery()", "orders"],
        [("primary", primary_recovery, on_primary), ("replica", replica_recovery, on_replica)],
    )
    console.say(
        f"schema {SCHEMA} was created and loaded on the primary only; the replica got it through the WAL."
    )
    console.say(f"synchronous_commit: {server_commit} on this server, on for this lesson's writes.")
    refusal, sqlstate, message = refused_write(replica)
    console.say(f'A write sent to the replica: {refusal} (SQLSTATE {sqlstate}), "{message}".')

    console.step("Route each statement by its kind: writes to the primary, plain SELECTs to the replica")
    console.say("A SELECT ... FOR UPDATE locks rows, which is a write: it goes to the primary too.")
    routes = show_routes(primary, replica)

    console.step(f"Replication lag over {sizes.lag_writes} writes: commit, then look on the replica")
    lag = measure_lag(primary, replica, sizes.lag_writes)
    console.table(
        ["", "median", "max"],
        [
            ("WAL not yet replayed at the first look", console.size(lag.bytes_behind_p50),
             console.size(lag.bytes_behind_max)),
            ("commit until the row is visible", console.seconds(lag.visible_after_p50_s),
             console.seconds(lag.visible_after_max_s)),
        ],
    )  # fmt: skip
    console.say(
        f"the row was not there yet at the first look after {lag.not_there_at_first_look} of {lag.writes}."
    )

    console.step(f"Read your own write through the router: write, read it back at once, {sizes.tries} times")
    as_it_runs = read_your_writes(Session(primary, replica), sizes.tries, "routed")
    show_tries(as_it_runs)
    console.say("As the servers run, a read can reach the replica before the commit does; how often")
    console.say("depends on the machine and its load (it can be 0 on an idle one). Now with replay")
    console.say("paused on the replica, as when load or a long query holds it back:")
    replay_paused_tries, sticky, paused = while_replay_is_paused(primary, replica, sizes.tries)
    console.say(
        f"replay resumed: the replica caught up in {console.seconds(paused.catch_up_s)}; "
        f"rows written while paused and still missing there: {paused.rows_missing_after_catch_up}"
    )

    console.step("Fix 2: after a write, wait until the replica has replayed past the commit, then read there")
    console.say(
        "pg_current_wal_insert_lsn() on the primary after commit; pg_last_wal_replay_lsn() on the replica."
    )
    waiting = read_your_writes(Session(primary, replica), sizes.tries, "wait for replay", wait=True)
    show_tries(waiting)
    console.say(
        f"each read waited {console.seconds(waiting.waits_p50_s)} (median), "
        f"{console.seconds(waiting.waits_max_s)} at most: the lag, paid by the reader."
    )
    console.say("Reading from the primary is faster, but it puts the reads back on the primary:")
    console.compare(
        "wait for replay",
        waiting.read_seconds / waiting.tries,
        "read from the primary",
        sticky.read_seconds / sticky.tries,
    )
    comparisons = [
        Comparison(
            "read your own write right after committing it",
            "wait for the replica to replay it",
            "read it from the primary",
            waiting.read_seconds / waiting.tries,
            sticky.read_seconds / sticky.tries,
        )
    ]
    primary.execute("RESET synchronous_commit")

    return ReadReplicasResult(
        primary_in_recovery=primary_recovery,
        replica_in_recovery=replica_recovery,
        write_on_replica=refusal,
        write_on_replica_sqlstate=sqlstate,
        write_on_replica_message=message,
        orders_on_primary=on_primary,
        orders_on_replica=on_replica,
        routes=routes,
        lag=lag,
        as_it_runs=as_it_runs,
        replay_paused=replay_paused_tries,
        sticky=sticky,
        paused=paused,
        waiting=waiting,
        synchronous_commit=server_commit,
        comparisons=comparisons,
    )


def main() -> int:
    require(*REQUIRES)
    with (
        psycopg.connect(postgres_url(), connect_timeout=CONNECT_TIMEOUT_S) as primary,
        psycopg.connect(postgres_replica_url(), connect_timeout=CONNECT_TIMEOUT_S) as replica,
    ):
        result = run(primary, replica, scale=scale())
    fixed = result.sticky.stale == result.waiting.stale == 0
    return 0 if fixed and result.replay_paused.stale == result.replay_paused.tries else 1


if __name__ == "__main__":
    raise SystemExit(main())

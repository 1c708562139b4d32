"""Connection pooling: connect per request, a psycopg pool, and PgBouncer, under 16 concurrent workers

Opening a PostgreSQL connection starts a server process and authenticates (SCRAM), which costs
far more than the small indexed query most requests send. Sixteen worker threads each send short
requests four ways: a new connection per request, a psycopg_pool.ConnectionPool (8 connections
at most), a new connection per request to PgBouncer in transaction mode, and one long-lived
connection per worker to PgBouncer. Each request also reports the server process that answered
it (pg_backend_pid() and its start time), so connection reuse is counted, not assumed: a process
per request without a pool, at most the pool's size with one. Then the server's limit: connections
opened directly until PostgreSQL refuses one ("sorry, too many clients already"), counted against
max_connections and superuser_reserved_connections, and closed; and more clients than
max_connections, all connected to PgBouncer at once, each served by one of its pooled server
connections.

Engine: PostgreSQL (POSTGRES_URL) behind PgBouncer in transaction mode (PGBOUNCER_URL), schema
`connection_pooling`. PgBouncer in transaction mode cannot keep a prepared statement across
transactions, so psycopg connects to it with prepare_threshold=None.
Run: `make up SERVICES="postgres pgbouncer"` (or `make local-up`), then
`python performance/connection_pooling.py`.
Look for: the server processes each variant used (one per request, then at most 8 or 20), the
requests per second, the refused connection at max_connections, and every PgBouncer client served.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool

from common import console
from common.settings import CONNECT_TIMEOUT_S, pgbouncer_url, postgres_url, require, scale
from common.timing import Comparison, timer

REQUIRES = ("postgres", "pgbouncer")
SCHEMA = "connection_pooling"
APP = "connection_pooling"  # application_name of every connection the lesson opens
FLOOD_APP = "connection_pooling_flood"  # ...but the direct flood's, so they can be counted apart
OWN_CONNECTIONS = "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
SEED = 11
WORKERS = 16
FULL_ACCOUNTS, MIN_ACCOUNTS = 100_000, 10_000
# Requests per worker. Variants that connect for every request are slow enough that fewer
# requests measure them; the rate (requests per second) is what is compared.
FULL_CONNECTING_REQUESTS, MIN_CONNECTING_REQUESTS = 8, 3
FULL_REUSING_REQUESTS, MIN_REUSING_REQUESTS = 60, 10
POOL_MIN, POOL_MAX = 4, 8
PGBOUNCER_POOL_SIZE = 20  # default_pool_size of the PgBouncer this project runs (compose and local)
FULL_BEYOND_LIMIT, MIN_BEYOND_LIMIT = 50, 10  # PgBouncer clients beyond the server's max_connections
EXTRA_ATTEMPTS = 8  # direct connections tried after the server should be full
OPENERS = 8  # threads that open the flood's connections
FLOOD_QUERY_S = 0.01  # each PgBouncer client holds a server connection this long
# Forking two hundred server processes on a busy machine can take seconds; a refusal is immediate.
WORK_CONNECT_TIMEOUT_S = 30
SETTLE_TIMEOUT_S = 15
REFUSED = "too many clients already"
RESERVED = "reserved"  # the message when the slots left are reserved for superusers

ACCOUNTS = """
CREATE TABLE accounts (id integer PRIMARY KEY, owner text NOT NULL, balance_cents bigint NOT NULL)
"""
LOAD_ACCOUNTS = """
INSERT INTO accounts
SELECT i, 'owner ' || i, (i * 7919) %% 1000000 FROM generate_series(1, %s) AS i
"""
# The request: one row by primary key, and which server process answered it. A process id
# alone can be reused once its process exits; with its start time it names one process.
# The schema is written out: through PgBouncer a session's search_path does not follow the client.
REQUEST = """
SELECT a.balance_cents, s.pid, s.backend_start
FROM connection_pooling.accounts AS a
JOIN pg_stat_activity AS s ON s.pid = pg_backend_pid()
WHERE a.id = %s
"""
FLOOD_REQUEST = """
SELECT s.pid, s.backend_start, pg_sleep(%s)
FROM pg_stat_activity AS s WHERE s.pid = pg_backend_pid()
"""
CLIENT_BACKENDS = "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
LIMITS = """
SELECT current_setting('max_connections')::int, current_setting('superuser_reserved_connections')::int,
       coalesce(current_setting('reserved_connections', true)::int, 0),
       (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
"""

Backend = tuple[int, datetime]  # (pid, backend_start): one server process
Worker = Callable[[list[int]], list[Backend]]


@dataclass(frozen=True)
class Sizes:
    accounts: int
    connecting_requests: int  # per worker
    reusing_requests: int  # per worker
    beyond_limit: int

    @classmethod
    def at(cls, scale: float) -> Sizes:
        return cls(
            accounts=max(int(FULL_ACCOUNTS * scale), MIN_ACCOUNTS),
            connecting_requests=max(int(FULL_CONNECTING_REQUESTS * scale), MIN_CONNECTING_REQUESTS),
            reusing_requests=max(int(FULL_REUSING_REQUESTS * scale), MIN_REUSING_REQUESTS),
            beyond_limit=max(int(FULL_BEYOND_LIMIT * scale), MIN_BEYOND_LIMIT),
        )


@dataclass
class Throughput:
    """One way of connecting, measured under WORKERS concurrent threads."""

    variant: str
    requests: int
    client_connections: int = field(compare=False)  # connections the client opened
    server_backends: int = field(compare=False)  # distinct server processes that answered
    seconds: float = field(compare=False)

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else float("inf")

    @property
    def seconds_per_request(self) -> float:
        return self.seconds / self.requests


@dataclass
class Limits:
    max_connections: int
    superuser_reserved: int
    reserved: int  # reserved_connections (PostgreSQL 16+), 0 before
    superuser: bool

    @property
    def held_back_from_this_user(self) -> int:
        return 0 if self.superuser else self.superuser_reserved + self.reserved


@dataclass
class DirectFlood:
    """Connections opened straight to PostgreSQL until it refused."""

    attempts: int = field(compare=False)
    opened: int = field(compare=False)
    refused: int = field(compare=False)
    refusal: str  # the kind of message the server sent: REFUSED or RESERVED
    in_use_before: int = field(compare=False)  # client connections already there
    in_use_at_refusal: int = field(compare=False)  # client connections once it refused
    in_use_after: int = field(compare=False)  # after the flood was closed (other clients may come and go)
    flood_left_open: int  # the flood's own connections still on the server after closing: 0
    message: str = field(compare=False)
    seconds: float = field(compare=False)  # to open the flood's connections


@dataclass
class PgBouncerFlood:
    """More clients than max_connections, all connected to PgBouncer at once."""

    clients: int
    served: int
    server_backends: int = field(compare=False)
    server_connections: int = field(compare=False)  # client backends on PostgreSQL meanwhile
    seconds: float = field(compare=False)


@dataclass
class ConnectionPoolingResult:
    workers: int
    direct: Throughput
    pooled: Throughput
    bouncer_per_request: Throughput
    bouncer_per_worker: Throughput
    pool_stats: dict[str, int] = field(compare=False)
    limits: Limits
    direct_flood: DirectFlood
    bouncer_flood: PgBouncerFlood
    comparisons: list[Comparison] = field(default_factory=list, compare=False)


def load(conn: psycopg.Connection, accounts: int) -> None:
    with conn.cursor() as cur:
        cur.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SCHEMA)))
        cur.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(SCHEMA)))
        cur.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(SCHEMA)))
        cur.execute(ACCOUNTS)
        cur.execute(LOAD_ACCOUNTS, (accounts,))
        cur.execute("ANALYZE accounts")
        cur.execute("RESET search_path")


def account_ids(accounts: int, per_worker: int, seed: int) -> list[list[int]]:
    """The accounts each worker asks for, the same on every run."""
    rng = random.Random(seed)
    return [[rng.randint(1, accounts) for _ in range(per_worker)] for _ in range(WORKERS)]


def ask(conn: psycopg.Connection, account: int) -> Backend:
    _balance, pid, started = conn.execute(REQUEST, (account,)).fetchone()
    return pid, started


def connect(url: str, through_pgbouncer: bool = False, app: str = APP) -> psycopg.Connection:
    options = {"prepare_threshold": None} if through_pgbouncer else {}
    return psycopg.connect(
        url, autocommit=True, application_name=app, connect_timeout=WORK_CONNECT_TIMEOUT_S, **options
    )


def new_connection_per_request(url: str, through_pgbouncer: bool = False) -> Worker:
    """connect, query, close: for every request"""

    def worker(accounts: list[int]) -> list[Backend]:
        seen = []
        for account in accounts:
            with connect(url, through_pgbouncer) as conn:
                seen.append(ask(conn, account))
        return seen

    return worker


def from_the_pool(pool: ConnectionPool) -> Worker:
    """borrow a connection from psycopg_pool, give it back"""

    def worker(accounts: list[int]) -> list[Backend]:
        seen = []
        for account in accounts:
            with pool.connection() as conn:
                seen.append(ask(conn, account))
        return seen

    return worker


def one_connection_per_worker(url: str, through_pgbouncer: bool = False) -> Worker:
    """each worker keeps its connection for all its requests"""

    def worker(accounts: list[int]) -> list[Backend]:
        with connect(url, through_pgbouncer) as conn:
            return [ask(conn, account) for account in accounts]

    return worker


def measure(variant: str, worker: Worker, ids: list[list[int]], client_connections: int) -> Throughput:
    with timer() as elapsed, ThreadPoolExecutor(max_workers=WORKERS) as threads:
        answered = list(threads.map(worker, ids))
    backends = {backend for seen in answered for backend in seen}
    requests = sum(len(seen) for seen in answered)
    return Throughput(variant, requests, client_connections, len(backends), elapsed.seconds)


def read_limits(conn: psycopg.Connection) -> Limits:
    return Limits(*conn.execute(LIMITS).fetchone())


def client_backends(conn: psycopg.Connection) -> int:
    return conn.execute(CLIENT_BACKENDS).fetchone()[0]


def wait_until_closed(conn: psycopg.Connection, at_most: int) -> int:
    """Closed connections end their server processes a moment later: wait for the count to drop."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    in_use = client_backends(conn)
    while in_use > at_most and time.monotonic() < deadline:
        time.sleep(0.05)
        in_use = client_backends(conn)
    return in_use


def wait_until_gone(conn: psycopg.Connection, app: str) -> int:
    """The server processes of closed connections exit a moment later: wait until none is left."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    left = conn.execute(OWN_CONNECTIONS, (app,)).fetchone()[0]
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = conn.execute(OWN_CONNECTIONS, (app,)).fetchone()[0]
    return left


def open_many(
    url: str, attempts: int, opened: list, refusals: list[str], through_pgbouncer: bool, app: str = APP
) -> None:
    """Open `attempts` connections from OPENERS threads; a refusal is kept, anything else raised."""

    def attempt(_: int) -> None:
        try:
            opened.append(connect(url, through_pgbouncer, app))
        except psycopg.OperationalError as error:
            if REFUSED not in str(error) and RESERVED not in str(error):
                raise
            refusals.append(str(error))

    with ThreadPoolExecutor(max_workers=OPENERS) as openers:
        list(openers.map(attempt, range(attempts)))


def close_all(connections: list[psycopg.Connection]) -> None:
    for conn in connections:
        conn.close()


def flood_the_server(conn: psycopg.Connection, url: str, limits: Limits) -> DirectFlood:
    in_use_before = client_backends(conn)
    free = limits.max_connections - limits.held_back_from_this_user - in_use_before
    attempts = max(free, 0) + EXTRA_ATTEMPTS  # enough to fill it, and a few that must be refused
    opened: list[psycopg.Connection] = []
    refusals: list[str] = []
    try:
        with timer() as elapsed:
            open_many(url, attempts, opened, refusals, through_pgbouncer=False, app=FLOOD_APP)
        in_use_at_refusal = client_backends(opened[0]) if opened else client_backends(conn)
    finally:
        close_all(opened)
    in_use_after = wait_until_closed(conn, at_most=in_use_before)
    flood_left_open = wait_until_gone(conn, FLOOD_APP)
    message = refusals[0].rpartition("FATAL:")[2].strip() if refusals else ""
    kind = REFUSED if REFUSED in message else RESERVED if RESERVED in message else ""
    return DirectFlood(
        attempts,
        len(opened),
        len(refusals),
        kind,
        in_use_before,
        in_use_at_refusal,
        in_use_after,
        flood_left_open,
        message,
        elapsed.seconds,
    )


def flood_pgbouncer(conn: psycopg.Connection, url: str, clients: int) -> PgBouncerFlood:
    opened: list[psycopg.Connection] = []
    refusals: list[str] = []
    in_use_before = client_backends(conn)
    try:
        open_many(url, clients, opened, refusals, through_pgbouncer=True)

        def request(client: psycopg.Connection) -> Backend:
            pid, started, _ = client.execute(FLOOD_REQUEST, (FLOOD_QUERY_S,)).fetchone()
            return pid, started

        # Every client sends its request at once; PgBouncer queues them for its server connections.
        with timer() as elapsed, ThreadPoolExecutor(max_workers=len(opened) or 1) as threads:
            answered = list(threads.map(request, opened))
        server_connections = client_backends(conn)
    finally:
        close_all(opened)
    wait_until_closed(conn, at_most=in_use_before)
    return PgBouncerFlood(len(opened), len(answered), len(set(answered)), server_connections, elapsed.seconds)


def raise_open_files_limit(needed: int) -> None:
    """Every connection is a socket: make sure this process may hold the flood's at once."""
    try:
        import resource
    except ImportError:  # Windows has no such limit
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        wanted = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def show_throughput(rows: list[Throughput]) -> None:
    console.table(
        ["variant", "requests", "req/s", "connections", "backends"],
        [(t.variant, t.requests, round(t.per_second), t.client_connections, t.server_backends) for t in rows],
    )


def compare(name: str, baseline: Throughput, optimized: Throughput) -> Comparison:
    console.compare(
        baseline.variant, baseline.seconds_per_request, optimized.variant, optimized.seconds_per_request
    )
    return Comparison(
        name, baseline.variant, optimized.variant, baseline.seconds_per_request, optimized.seconds_per_request
    )


def run(
    conn: psycopg.Connection, server_url: str, bouncer_url: str, scale: float = 1.0
) -> ConnectionPoolingResult:
    """`conn` (to the server) sets up and counts; the workload opens its own connections from the URLs."""
    conn.autocommit = True
    sizes = Sizes.at(scale)
    console.title("Connection pooling: connect per request, a psycopg pool, and PgBouncer")

    console.step(f"Load {sizes.accounts:,} accounts: each request reads one by its primary key")
    load(conn, sizes.accounts)
    limits = read_limits(conn)
    console.say(
        f"{WORKERS} worker threads send the requests; each answer names the server process that sent it"
    )
    console.say("(pg_backend_pid() and its backend_start), so reuse is counted from the server's side.")
    console.say("Below, connections: opened by the client; backends: server processes that answered.")

    console.step("Without a pool: a new connection for every request")
    console.say("Each connection is a new server process, and a SCRAM handshake on both sides.")
    connecting = account_ids(sizes.accounts, sizes.connecting_requests, SEED)
    n_connecting = WORKERS * sizes.connecting_requests
    direct = measure("connect per request", new_connection_per_request(server_url), connecting, n_connecting)
    show_throughput([direct])

    console.step(f"psycopg_pool.ConnectionPool(min_size={POOL_MIN}, max_size={POOL_MAX})")
    console.say(
        f"{WORKERS} workers share {POOL_MAX} open connections: a worker that finds none free waits its turn."
    )
    reusing = account_ids(sizes.accounts, sizes.reusing_requests, SEED + 1)
    options = {"autocommit": True, "application_name": APP}
    with ConnectionPool(server_url, min_size=POOL_MIN, max_size=POOL_MAX, kwargs=options, name=APP) as pool:
        pool.wait()
        pooled = measure(f"pool of {POOL_MAX}", from_the_pool(pool), reusing, 0)
        stats = pool.get_stats()
    pooled.client_connections = stats["connections_num"]
    pool_stats = {key: stats.get(key, 0) for key in ("connections_num", "requests_num", "requests_queued")}
    show_throughput([pooled])
    console.say(
        f"the pool opened {stats['connections_num']} connections for {stats['requests_num']:,} requests; "
        f"{stats.get('requests_queued', 0):,} requests waited for one to come back"
    )

    console.step("PgBouncer in transaction mode: a server connection lent for each transaction")
    console.say("Connecting per request to PgBouncer still costs the client a handshake, now with PgBouncer;")
    console.say("what it saves is the server process. Clients that keep their connection save both.")
    bouncer_per_request = measure(
        "PgBouncer, connect each time",
        new_connection_per_request(bouncer_url, through_pgbouncer=True),
        connecting,
        n_connecting,
    )
    bouncer_per_worker = measure(
        "PgBouncer, kept connection",
        one_connection_per_worker(bouncer_url, through_pgbouncer=True),
        reusing,
        WORKERS,
    )
    show_throughput([bouncer_per_request, bouncer_per_worker])

    console.step("All four side by side; time per request")
    show_throughput([direct, pooled, bouncer_per_request, bouncer_per_worker])
    comparisons = [
        compare(f"{WORKERS} workers, one indexed read per request", direct, pooled),
        compare(
            f"{WORKERS} workers, one indexed read per request, via PgBouncer", direct, bouncer_per_worker
        ),
    ]

    console.step(f"Without a pool, at the server's limit: max_connections = {limits.max_connections}")
    console.say(
        f"superuser_reserved_connections = {limits.superuser_reserved}; this user is "
        + (
            "a superuser, so those slots are open to it too."
            if limits.superuser
            else f"not a superuser: the last {limits.held_back_from_this_user} slots are kept from it."
        )
    )
    raise_open_files_limit(limits.max_connections + sizes.beyond_limit + 64)
    direct_flood = flood_the_server(conn, server_url, limits)
    console.table(
        ["client connections", "count"],
        [
            ("already there (PgBouncer's server connections among them)", direct_flood.in_use_before),
            ("opened by the flood", direct_flood.opened),
            ("refused", direct_flood.refused),
            ("connected when it refused", direct_flood.in_use_at_refusal),
            ("left after closing the flood", direct_flood.in_use_after),
        ],
    )  # fmt: skip
    console.say(
        f"{direct_flood.attempts} attempts from {OPENERS} threads in {console.seconds(direct_flood.seconds)};"
        f' refused with "{direct_flood.message}"'
    )
    console.say("(SQLSTATE 53300, too_many_connections). Every connection was closed at once after.")

    clients = limits.max_connections + sizes.beyond_limit
    console.step(f"The same through PgBouncer: {clients} clients, more than max_connections, at once")
    console.say(
        f"PgBouncer holds them all and queues their transactions for its {PGBOUNCER_POOL_SIZE} server"
    )
    console.say("connections; the last row counts what PostgreSQL saw meanwhile.")
    bouncer_flood = flood_pgbouncer(conn, bouncer_url, clients)
    console.table(
        ["", "count"],
        [
            ("clients connected to PgBouncer at once", bouncer_flood.clients),
            ("requests served", bouncer_flood.served),
            ("server processes that answered them", bouncer_flood.server_backends),
            ("client connections on PostgreSQL meanwhile", bouncer_flood.server_connections),
        ],
    )
    console.say(
        f"all {bouncer_flood.served} served in {console.seconds(bouncer_flood.seconds)} "
        f"({FLOOD_QUERY_S * 1000:.0f} ms of server time each, queued for the pool)"
    )

    return ConnectionPoolingResult(
        workers=WORKERS,
        direct=direct,
        pooled=pooled,
        bouncer_per_request=bouncer_per_request,
        bouncer_per_worker=bouncer_per_worker,
        pool_stats=pool_stats,
        limits=limits,
        direct_flood=direct_flood,
        bouncer_flood=bouncer_flood,
        comparisons=comparisons,
    )


def main() -> int:
    require(*REQUIRES)
    with psycopg.connect(postgres_url(), connect_timeout=CONNECT_TIMEOUT_S, application_name=APP) as conn:
        result = run(conn, postgres_url(), pgbouncer_url(), scale=scale())
    return 0 if result.bouncer_flood.served == result.bouncer_flood.clients else 1


if __name__ == "__main__":
    raise SystemExit(main())

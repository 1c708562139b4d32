"""Connection pooling: connect per request, a psycopg pool, and PgBouncer, under 16 concurrent workers

Opening a PostgreSQL connection starts a server process and authenticates (SCRAM), which costs
far more than the small indexed query most requests send. Sixteen worker threads each send short
requests four ways: a new connection per request, a psycopg_pool.ConnectionPool (8 connections
at most), a new connection per request to PgBouncer in transaction mode, and one long-lived
connection per worker to PgBouncer. Each request also reports the server process that answered
it (pg_backend_pid() and its start time), so connection reuse is counted, not assumed: a process
per request without a pool, at most the pool's size with one, and through PgBouncer only the
server connections its admin console lists (SHOW SERVERS). Then a limit: the lesson's own role,
with a CONNECTION LIMIT of 5, opens connections until PostgreSQL refuses one ("too many
connections for role"); the same refusal at max_connections would turn away every other client of
a shared server, so the lesson never goes there. Last, more clients than max_connections, all
connected to PgBouncer at once, each served by one of its pooled server connections.

Prepared statements through PgBouncer in transaction mode: PgBouncer before 1.21 (Debian's 1.18,
the local stand-in) does not keep them across transactions, so psycopg must not prepare
(prepare_threshold=None). 1.21 and later keep them when max_prepared_statements > 0 (its default is
0 until 1.24, 200 since); compose pins 1.23, so there it takes MAX_PREPARED_STATEMENTS in the
service's environment. The lesson reads SHOW VERSION and SHOW CONFIG on the admin console and lets
psycopg prepare only where PgBouncer says it can.

Engine: PostgreSQL (POSTGRES_URL) behind PgBouncer in transaction mode (PGBOUNCER_URL), schema
`connection_pooling` and role `connection_pooling_app` (created by the lesson; needs CREATEROLE).
Run: `make up SERVICES="postgres pgbouncer"` (or `make local-up`), then
`python performance/connection_pooling.py`.
Look for: the server processes each variant used (one per request, then at most 8 or 20), the
requests per second, the role's refused connections, and every PgBouncer client served.
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
from psycopg.conninfo import make_conninfo
from psycopg_pool import ConnectionPool

from common import console
from common.settings import CONNECT_TIMEOUT_S, pgbouncer_url, postgres_url, require, scale
from common.timing import Comparison, timer

REQUIRES = ("postgres", "pgbouncer")
SCHEMA = "connection_pooling"
APP = "connection_pooling"  # application_name of every connection the lesson opens
ROLE = "connection_pooling_app"  # the lesson's own role: its connection limit touches no one else
ROLE_PASSWORD = "connection_pooling"  # a lesson role on a lesson server
ROLE_LIMIT = 5  # a parameter: the CONNECTION LIMIT the lesson gives its role
ROLE_CONNECTIONS = "SELECT count(*) FROM pg_stat_activity WHERE usename = %s"
SEED = 11
WORKERS = 16
FULL_ACCOUNTS, MIN_ACCOUNTS = 100_000, 10_000
# Requests per worker. Variants that connect for every request are slow enough that fewer
# requests measure them; the rate (requests per second) is what is compared.
FULL_CONNECTING_REQUESTS, MIN_CONNECTING_REQUESTS = 8, 3
FULL_REUSING_REQUESTS, MIN_REUSING_REQUESTS = 60, 10
POOL_MIN, POOL_MAX = 4, 8
FULL_BEYOND_LIMIT, MIN_BEYOND_LIMIT = 50, 10  # PgBouncer clients beyond the server's max_connections
EXTRA_ATTEMPTS = 3  # connections the role tries once it holds its limit
OPENERS = 8  # threads that open the PgBouncer flood's connections
FLOOD_QUERY_S = 0.01  # each PgBouncer client holds a server connection this long
# Forking many server processes on a busy machine can take seconds; a refusal is immediate.
WORK_CONNECT_TIMEOUT_S = 30
SETTLE_TIMEOUT_S = 15
REFUSED = "too many connections for role"

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
MAX_CONNECTIONS = "SELECT current_setting('max_connections')::int"

Backend = tuple[int, datetime]  # (pid, backend_start): one server process
Worker = Callable[[list[int]], tuple[list[Backend], int]]  # answers, connections it opened


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
    client_connections: int = field(compare=False)  # connections the client opened, counted as opened
    server_backends: int = field(compare=False)  # distinct server processes that answered
    seconds: float = field(compare=False)
    # Through PgBouncer: answering processes that are not among its server connections (SHOW
    # SERVERS), None where its admin console is closed to this user.
    outside_pgbouncer: int | None = field(default=None, compare=False)

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else float("inf")

    @property
    def seconds_per_request(self) -> float:
        return self.seconds / self.requests


@dataclass
class PgBouncerFacts:
    """What PgBouncer's admin console says; None where it is closed to this user."""

    version: str | None
    default_pool_size: int | None
    max_prepared_statements: int | None  # None also before 1.21, which has no such setting

    @property
    def keeps_prepared_statements(self) -> bool:
        return bool(self.max_prepared_statements)


@dataclass
class RoleLimit:
    """Connections opened as the lesson's role until PostgreSQL refused."""

    connection_limit: int  # pg_roles.rolconnlimit, as the server stored it
    attempts: int
    opened: int
    refused: int
    message: str  # the server's words for the refusal
    sqlstate: str | None  # what psycopg reports for a refused connection: None, only the message
    in_use_at_refusal: int  # the role's connections on the server once it refused
    left_open: int  # the role's connections still on the server after closing: 0


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
    pgbouncer: PgBouncerFacts
    max_connections: int
    role_limit: RoleLimit
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


def connect(url: str, options: dict | None = None, app: str = APP) -> psycopg.Connection:
    """`options`: psycopg's, e.g. prepare_threshold=None for a PgBouncer that cannot keep prepared statements."""
    return psycopg.connect(
        url, autocommit=True, application_name=app, connect_timeout=WORK_CONNECT_TIMEOUT_S, **(options or {})
    )


def new_connection_per_request(url: str, options: dict | None = None) -> Worker:
    """connect, query, close: for every request"""

    def worker(accounts: list[int]) -> tuple[list[Backend], int]:
        seen, opened = [], 0
        for account in accounts:
            with connect(url, options) as conn:
                opened += 1
                seen.append(ask(conn, account))
        return seen, opened

    return worker


def from_the_pool(pool: ConnectionPool) -> Worker:
    """borrow a connection from psycopg_pool, give it back"""

    def worker(accounts: list[int]) -> tuple[list[Backend], int]:
        seen = []
        for account in accounts:
            with pool.connection() as conn:
                seen.append(ask(conn, account))
        return seen, 0  # the pool opens them: its own statistics count them

    return worker


def one_connection_per_worker(url: str, options: dict | None = None) -> Worker:
    """each worker keeps its connection for all its requests"""

    def worker(accounts: list[int]) -> tuple[list[Backend], int]:
        with connect(url, options) as conn:
            return [ask(conn, account) for account in accounts], 1

    return worker


def measure(variant: str, worker: Worker, ids: list[list[int]]) -> tuple[Throughput, set[int]]:
    """The variant under WORKERS threads; also returns the pids of the processes that answered."""
    with timer() as elapsed, ThreadPoolExecutor(max_workers=WORKERS) as threads:
        answered = list(threads.map(worker, ids))
    backends = {backend for seen, _ in answered for backend in seen}
    requests = sum(len(seen) for seen, _ in answered)
    opened = sum(count for _, count in answered)
    return Throughput(variant, requests, opened, len(backends), elapsed.seconds), {pid for pid, _ in backends}


def admin_console(bouncer_url: str) -> psycopg.Connection | None:
    """PgBouncer's admin console (database `pgbouncer`), if this user is in admin_users or stats_users."""
    try:
        return connect(make_conninfo(bouncer_url, dbname="pgbouncer"), {"prepare_threshold": None})
    except psycopg.OperationalError:
        return None


def pgbouncer_facts(admin: psycopg.Connection | None) -> PgBouncerFacts:
    if admin is None:
        return PgBouncerFacts(None, None, None)
    version = admin.execute("SHOW VERSION").fetchone()[0]
    config = {row[0]: row[1] for row in admin.execute("SHOW CONFIG").fetchall()}
    prepared = config.get("max_prepared_statements")
    return PgBouncerFacts(
        version, int(config["default_pool_size"]), None if prepared is None else int(prepared)
    )


def pgbouncer_server_pids(admin: psycopg.Connection | None) -> set[int] | None:
    """The server processes behind PgBouncer's pooled connections (SHOW SERVERS, remote_pid)."""
    if admin is None:
        return None
    cur = admin.execute("SHOW SERVERS")
    column = [c.name for c in cur.description].index("remote_pid")
    return {row[column] for row in cur.fetchall()}


def through_pgbouncer(
    variant: str, worker: Worker, ids: list[list[int]], admin: psycopg.Connection | None
) -> Throughput:
    measured, pids = measure(variant, worker, ids)
    servers = pgbouncer_server_pids(admin)
    measured.outside_pgbouncer = None if servers is None else len(pids - servers)
    return measured


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


def role_connections(conn: psycopg.Connection) -> int:
    return conn.execute(ROLE_CONNECTIONS, (ROLE,)).fetchone()[0]


def wait_until_role_gone(conn: psycopg.Connection) -> int:
    """The server processes of closed connections exit a moment later: wait until none is left."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    left = role_connections(conn)
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = role_connections(conn)
    return left


def reset_role(conn: psycopg.Connection) -> int:
    """The lesson's role, created once and given its limit and password on every run; returns the limit stored."""
    options = sql.SQL("LOGIN NOSUPERUSER CONNECTION LIMIT {} PASSWORD {}").format(
        sql.Literal(ROLE_LIMIT), sql.Literal(ROLE_PASSWORD)
    )
    try:
        conn.execute(sql.SQL("CREATE ROLE {} {}").format(sql.Identifier(ROLE), options))
    except psycopg.errors.DuplicateObject:
        conn.execute(sql.SQL("ALTER ROLE {} {}").format(sql.Identifier(ROLE), options))
    wait_until_role_gone(conn)  # a run that died may have left connections behind
    return conn.execute("SELECT rolconnlimit FROM pg_roles WHERE rolname = %s", (ROLE,)).fetchone()[0]


def open_many(url: str, attempts: int, opened: list, refusals: list[str], options: dict | None) -> None:
    """Open `attempts` connections from OPENERS threads; anything but a refusal is raised."""

    def attempt(_: int) -> None:
        try:
            opened.append(connect(url, options))
        except psycopg.OperationalError as error:
            if "too many" not in str(error):
                raise
            refusals.append(str(error))

    with ThreadPoolExecutor(max_workers=OPENERS) as openers:
        list(openers.map(attempt, range(attempts)))


def close_all(connections: list[psycopg.Connection]) -> None:
    for conn in connections:
        conn.close()


def fill_the_role(conn: psycopg.Connection, server_url: str) -> RoleLimit:
    """Connect as the lesson's role, one after another, past its CONNECTION LIMIT; then close them."""
    limit = reset_role(conn)
    url = make_conninfo(server_url, user=ROLE, password=ROLE_PASSWORD)
    attempts = limit + EXTRA_ATTEMPTS
    opened: list[psycopg.Connection] = []
    refusals: list[psycopg.OperationalError] = []
    try:
        for _ in range(attempts):
            try:
                opened.append(connect(url))
            except psycopg.OperationalError as error:
                if REFUSED not in str(error):
                    raise
                refusals.append(error)
        in_use = role_connections(conn)
    finally:
        close_all(opened)
    first = refusals[0] if refusals else None
    message = str(first).rpartition("FATAL:")[2].strip() if first else ""
    sqlstate = first.sqlstate if first else None
    return RoleLimit(
        limit, attempts, len(opened), len(refusals), message, sqlstate, in_use, wait_until_role_gone(conn)
    )


def flood_pgbouncer(conn: psycopg.Connection, url: str, clients: int, options: dict) -> PgBouncerFlood:
    opened: list[psycopg.Connection] = []
    refusals: list[str] = []
    in_use_before = client_backends(conn)
    try:
        open_many(url, clients, opened, refusals, options)

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


def show_pgbouncer(facts: PgBouncerFacts, options: dict) -> None:
    if facts.version is None:
        console.say("PgBouncer's admin console is closed to this user: its version and settings are unknown,")
        console.say("so psycopg is told not to prepare statements (prepare_threshold=None), the safe choice.")
        return
    prepared = (
        "none (the setting came in 1.21)"
        if facts.max_prepared_statements is None
        else str(facts.max_prepared_statements)
    )
    console.say(
        f"SHOW VERSION: {facts.version}; default_pool_size = {facts.default_pool_size}; "
        f"max_prepared_statements = {prepared}"
    )
    console.say(
        "psycopg may prepare statements (prepare_threshold left at its default)"
        if "prepare_threshold" not in options
        else "so psycopg must not prepare statements: prepare_threshold=None"
    )


def pooled_variant(server_url: str, reusing: list[list[int]]) -> tuple[Throughput, dict[str, int]]:
    options = {"autocommit": True, "application_name": APP}
    with ConnectionPool(server_url, min_size=POOL_MIN, max_size=POOL_MAX, kwargs=options, name=APP) as pool:
        pool.wait()
        pooled, _pids = measure(f"pool of {POOL_MAX}", from_the_pool(pool), reusing)
        stats = pool.get_stats()
    pooled.client_connections = stats["connections_num"]
    return pooled, {key: stats.get(key, 0) for key in ("connections_num", "requests_num", "requests_queued")}


def run(
    conn: psycopg.Connection, server_url: str, bouncer_url: str, scale: float = 1.0
) -> ConnectionPoolingResult:
    """`conn` (to the server) sets up and counts; the workload opens its own connections from the URLs."""
    conn.autocommit = True
    sizes = Sizes.at(scale)
    console.title("Connection pooling: connect per request, a psycopg pool, and PgBouncer")

    console.step(f"Load {sizes.accounts:,} accounts: each request reads one by its primary key")
    load(conn, sizes.accounts)
    max_connections = conn.execute(MAX_CONNECTIONS).fetchone()[0]
    console.say(
        f"{WORKERS} worker threads send the requests; each answer names the server process that sent it"
    )
    console.say("(pg_backend_pid() and its backend_start), so reuse is counted from the server's side.")
    console.say("Below, connections: opened by the client; backends: server processes that answered.")

    console.step("Without a pool: a new connection for every request")
    console.say("Each connection is a new server process, and a SCRAM handshake on both sides.")
    connecting = account_ids(sizes.accounts, sizes.connecting_requests, SEED)
    direct, _pids = measure("connect per request", new_connection_per_request(server_url), connecting)
    show_throughput([direct])

    console.step(f"psycopg_pool.ConnectionPool(min_size={POOL_MIN}, max_size={POOL_MAX})")
    console.say(
        f"{WORKERS} workers share {POOL_MAX} open connections: a worker that finds none free waits its turn."
    )
    reusing = account_ids(sizes.accounts, sizes.reusing_requests, SEED + 1)
    pooled, pool_stats = pooled_variant(server_url, reusing)
    show_throughput([pooled])
    console.say(
        f"the pool opened {pool_stats['connections_num']} connections for {pool_stats['requests_num']:,} "
        f"requests; {pool_stats['requests_queued']:,} requests waited for one to come back"
    )

    console.step("PgBouncer in transaction mode: a server connection lent for each transaction")
    admin = admin_console(bouncer_url)
    try:
        bouncer = pgbouncer_facts(admin)
        options = {} if bouncer.keeps_prepared_statements else {"prepare_threshold": None}
        show_pgbouncer(bouncer, options)
        console.say("Connecting per request to PgBouncer still costs the client a handshake, now with")
        console.say(
            "PgBouncer; what it saves is the server process. Clients that keep their connection save both."
        )
        bouncer_per_request = through_pgbouncer(
            "PgBouncer, connect each time",
            new_connection_per_request(bouncer_url, options),
            connecting,
            admin,
        )
        bouncer_per_worker = through_pgbouncer(
            "PgBouncer, kept connection", one_connection_per_worker(bouncer_url, options), reusing, admin
        )
    finally:
        if admin is not None:
            admin.close()
    show_throughput([bouncer_per_request, bouncer_per_worker])
    if bouncer_per_worker.outside_pgbouncer is not None:
        outside = bouncer_per_request.outside_pgbouncer + bouncer_per_worker.outside_pgbouncer
        console.say(f"answering processes that are not among PgBouncer's server connections: {outside}")

    console.step("All four side by side; time per request")
    show_throughput([direct, pooled, bouncer_per_request, bouncer_per_worker])
    comparisons = [
        compare(f"{WORKERS} workers, one indexed read per request", direct, pooled),
        compare(
            f"{WORKERS} workers, one indexed read per request, via PgBouncer", direct, bouncer_per_worker
        ),
    ]

    console.step(f"Without a pool, at a limit: the role {ROLE} WITH CONNECTION LIMIT {ROLE_LIMIT}")
    console.say(
        f"max_connections = {max_connections} is the same wall for every client of the server; filling it"
    )
    console.say(
        "would refuse them all. A role's CONNECTION LIMIT refuses in the same way, and only that role."
    )
    role_limit = fill_the_role(conn, server_url)
    console.table(
        ["connections of the role", "count"],
        [
            ("rolconnlimit, as stored in pg_roles", role_limit.connection_limit),
            ("attempted, one after another", role_limit.attempts),
            ("opened", role_limit.opened),
            ("refused", role_limit.refused),
            ("on the server when it refused (pg_stat_activity)", role_limit.in_use_at_refusal),
            ("left after closing them", role_limit.left_open),
        ],
    )  # fmt: skip
    console.say(f'refused with "{role_limit.message}"; error.sqlstate is {role_limit.sqlstate}: libpq passes')
    console.say("an error during connection on as a message only (PostgreSQL's documentation lists this")
    console.say("one as SQLSTATE 53300, too_many_connections). Branch on the message here, not on a code.")

    clients = max_connections + sizes.beyond_limit
    console.step(f"The same through PgBouncer: {clients} clients, more than max_connections, at once")
    pool_size = bouncer.default_pool_size or "its"
    console.say(f"PgBouncer holds them all and queues their transactions for its {pool_size} server")
    console.say("connections; the last row counts what PostgreSQL saw meanwhile.")
    raise_open_files_limit(clients + 64)
    bouncer_flood = flood_pgbouncer(conn, bouncer_url, clients, options)
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
        pgbouncer=bouncer,
        max_connections=max_connections,
        role_limit=role_limit,
        bouncer_flood=bouncer_flood,
        comparisons=comparisons,
    )


def holds(result: ConnectionPoolingResult) -> bool:
    """The headline: reuse where there is a pool, the role refused at its limit, every PgBouncer client served."""
    limit, flood = result.role_limit, result.bouncer_flood
    return (
        result.direct.server_backends == result.direct.requests
        and result.pooled.server_backends <= POOL_MAX
        and result.bouncer_per_request.server_backends < result.bouncer_per_request.client_connections
        and limit.opened == limit.connection_limit
        and limit.refused == limit.attempts - limit.opened > 0
        and flood.served == flood.clients > flood.server_backends
    )


def main() -> int:
    require(*REQUIRES)
    with psycopg.connect(postgres_url(), connect_timeout=CONNECT_TIMEOUT_S, application_name=APP) as conn:
        result = run(conn, postgres_url(), pgbouncer_url(), scale=scale())
    return 0 if holds(result) else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Engine health at a glance: what each server says about itself, and when to worry

Every engine keeps counters about itself: Redis in `INFO`, `SLOWLOG` and `LATENCY`; MongoDB in
`serverStatus` and `$currentOp`; Cassandra in `system.local`, `system.peers` and the virtual tables
of `system_views` (4.0 and later); Neo4j in `SHOW TRANSACTIONS`, `SHOW DATABASES` and
`dbms.components()`; PostgreSQL in `pg_stat_database`; MySQL and MariaDB in `SHOW GLOBAL STATUS`.
A counter means something only when you know what moved it, so the lesson makes a small, known
load in its own namespace, reads the counters around it, and ends with one health table: each
figure, its value, and when to worry. It reads server settings and never changes them.

Engine: Redis (REDIS_URL, keys `engine_health:*`), MongoDB (MONGO_URL, database `engine_health`),
Cassandra (CASSANDRA_HOSTS, keyspace `engine_health`), Neo4j (NEO4J_URL, label `EngineHealth`,
rolled back), PostgreSQL (POSTGRES_URL, only read), MySQL or MariaDB (MYSQL_URL, database
`engine_health`). The local MongoDB stand-in (mongo-java-server) has no opcounters, mem or
$currentOp and answers a constant 1 for connections.current: the lesson names each gap.
Run: `make up` (or `make local-up`), then `python monitoring/engine_health.py`.
Look for: keyspace_hits and keyspace_misses moving by at least the lesson's 200 and 50, its SORT
in SLOWLOG, its open transaction in SHOW TRANSACTIONS (found by its metadata), its connection in
Cassandra's system_views.clients, and the health table at the end.
"""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass, field

import psycopg
import pymongo
import pymysql
import redis
from cassandra import InvalidRequest
from cassandra.cluster import Cluster, Session
from neo4j import Driver, GraphDatabase, Query

from common import console, settings

REQUIRES = ("postgres", "mysql", "redis", "mongodb", "neo4j", "cassandra")
NAMESPACE = "engine_health"  # database, keyspace; Redis keys start with PREFIX
PREFIX = NAMESPACE + ":"
SEED, N_KEYS, HITS, MISSES = 11, 50, 200, 50
SLOW_LIST = 300_000  # its full SORT takes tens of ms on a fast, quiet machine: past the default 10 ms
MONGO_OPS, MONGO_CURSORS, CASSANDRA_READS, N_ROWS = 20, 2, 30, 2_000
VIRTUAL_TABLES = ("clients", "thread_pools", "settings")

# Each engine's step returns its rows of the health table, {figure: value}; this is the last column.
MEANING = {
    "Redis hit ratio": "under ~0.8 the cache saves little; a drop: keys expire or are evicted early",
    "Redis memory": "near maxmemory keys are evicted (or writes fail); evictions rising: data outgrew it",
    "Redis connected clients": "a climb that never falls is a connection leak",
    "Redis SLOWLOG": "each entry blocked every client that long: O(N) commands on big keys",
    "Redis latency monitor": "off by default (server-wide); when on, LATENCY LATEST names spikes",
    "Redis SORT p99": "INFO latencystats (Redis 7+): the tail latency clients feel, per command",
    "MongoDB connections": "against connections.available; a climb that never falls is a leak",
    "MongoDB opcounters": "operations by type since start: their rate is the throughput",
    "MongoDB mem.resident": "far past the WiredTiger cache plus overhead: memory pressure",
    "MongoDB open cursors": "rising, never falling: clients that never exhaust or close cursors",
    "MongoDB currentOp": "what runs now: sort by secs_running; killOp only what you own",
    "Cassandra version, peers": "a node missing from system.peers is one this node cannot see",
    "Cassandra own connection": "system_views.clients: one row per connection, with its requests",
    "Cassandra thread pools": "pending: a stage cannot keep up; blocked transport: clients refused",
    "Neo4j version": "what runs; check it against the drivers and procedures you use",
    "Neo4j databases": "anything not online is unavailable to its clients",
    "Neo4j transactions": "a long-open one holds locks: find it by metadata, TERMINATE it",
    "PostgreSQL hit ratio": "since the stats reset; well under 0.99 on OLTP: shared_buffers too small",
    "PostgreSQL connections": "near max_connections new logins fail: put a pooler in front",
    "MySQL buffer pool hit ratio": "under ~0.99: reads go to disk, innodb_buffer_pool_size too small",
    "MySQL Threads_connected": "near max_connections: 'Too many connections'; pool, find leaks",
}


# The facts run() returns. Fields with compare=False move between runs; the others repeat exactly.
@dataclass
class RedisHealth:
    slowlog_threshold_us: int | None  # slowlog-log-slower-than (None: CONFIG GET refused)
    slow_entry_found: bool  # the lesson's SORT is in SLOWLOG
    latency_threshold_ms: int | None  # latency-monitor-threshold: 0 means the monitor is off
    latency_events: list[str]  # LATENCY LATEST's event names
    hits_delta: int = field(compare=False)  # what INFO's keyspace_hits moved by
    misses_delta: int = field(compare=False)
    slow_entry_us: int = field(compare=False)

    @property
    def hit_ratio(self) -> float:
        return self.hits_delta / max(1, self.hits_delta + self.misses_delta)


@dataclass
class MongoHealth:
    gaps: list[str]  # what this server does not answer
    own_idle_cursors: int | None  # of those entries, the idle cursors: the lesson's, still open
    connections_current: int = field(compare=False)
    opcounter_deltas: dict[str, int] | None = field(compare=False)
    cursors_open_delta: int | None = field(compare=False)  # server-wide: others' cursors move it too
    own_ops: int | None = field(compare=False)  # $currentOp entries with the lesson's comment


@dataclass
class CassandraHealth:
    release_version: str
    virtual_tables: list[str]  # of VIRTUAL_TABLES, the ones this version has
    own_connections: int | None  # system_views.clients rows on the lesson's keyspace
    own_requests_delta: int | None = field(compare=False)


@dataclass
class Neo4jHealth:
    databases: dict[str, str]  # name -> currentStatus
    own_tx_found: bool  # SHOW TRANSACTIONS lists the lesson's open transaction, by its metadata
    own_tx_gone_after_rollback: bool
    own_tx_locks: int = field(compare=False)


@dataclass
class SqlHealth:
    server: str
    hit_ratio: float = field(compare=False)
    connections: int = field(compare=False)  # PostgreSQL client backends; MySQL Threads_connected
    max_connections: int = field(compare=False)


@dataclass
class HealthResult:
    redis: RedisHealth
    mongo: MongoHealth
    cassandra: CassandraHealth
    neo4j: Neo4jHealth
    postgres: SqlHealth
    mysql: SqlHealth
    table: dict[str, str] = field(compare=False)  # figure -> value

    @property
    def holds(self) -> bool:
        """The figures moved with the lesson's own load, and the ratios are ratios."""
        r, c, m = self.redis, self.cassandra, self.mongo
        return (
            r.hits_delta >= HITS
            and r.misses_delta >= MISSES
            and self.neo4j.own_tx_found
            and (c.own_connections is None or c.own_connections >= 1)
            and m.connections_current >= 1
            and (m.own_idle_cursors is None or m.own_idle_cursors >= MONGO_CURSORS)
            and all(0 <= s.hit_ratio <= 1 and s.connections >= 1 for s in (self.postgres, self.mysql))
        )


# --- Redis ---------------------------------------------------------------------------------------


def redis_config(r: redis.Redis, name: str) -> int | None:
    """A setting read with CONFIG GET, never set; None where a managed service refuses CONFIG."""
    try:
        return int(r.config_get(name)[name])
    except (redis.ResponseError, KeyError):
        return None


def slow_sort(r: redis.Redis) -> int | None:
    """A naturally slow command of the lesson's own, a SORT of a big list: its SLOWLOG duration in us."""
    last_id = max((entry["id"] for entry in r.slowlog_get(1)), default=-1)
    key, rng = PREFIX + "big", random.Random(SEED)
    r.rpush(key, *(rng.random() for _ in range(SLOW_LIST)))
    # O(N log N), and STORE writes all N sorted back (LIMIT would sort only part): every other
    # client waits meanwhile. Big enough that a fast, quiet moment still passes the threshold.
    r.sort(key, store=PREFIX + "sorted")
    r.unlink(key, PREFIX + "sorted")
    mine = f"SORT {key}".encode()  # redis-py leaves SLOWLOG's command as bytes
    entries = [e for e in r.slowlog_get(128) if e["id"] > last_id and e["command"].startswith(mine)]
    return max((entry["duration"] for entry in entries), default=None)


def redis_health(r: redis.Redis) -> tuple[RedisHealth, dict[str, str]]:
    console.step("Redis: INFO around a known number of hits and misses, then SLOWLOG and LATENCY")
    for key in r.scan_iter(match=PREFIX + "*", count=1000):
        r.unlink(key)
    r.mset({f"{PREFIX}item:{i}": i for i in range(N_KEYS)})
    before = r.info("stats")
    pipe = r.pipeline(transaction=False)
    for i in range(HITS):
        pipe.get(f"{PREFIX}item:{i % N_KEYS}")
    for i in range(MISSES):
        pipe.get(f"{PREFIX}missing:{i}")
    pipe.execute()
    after = r.info("stats")
    hits, misses = (after[name] - before[name] for name in ("keyspace_hits", "keyspace_misses"))
    console.table(
        ["INFO stats", "the lesson made", "the counter moved by"],
        [("keyspace_hits", HITS, hits), ("keyspace_misses", MISSES, misses)],
    )
    slow_us = redis_config(r, "slowlog-log-slower-than")
    latency_ms = redis_config(r, "latency-monitor-threshold")
    sort_us = slow_sort(r)
    events = [str(event[0]) for event in r.execute_command("LATENCY", "LATEST")]
    health = RedisHealth(slow_us, sort_us is not None, latency_ms, events, hits, misses, sort_us or 0)
    info = r.info("all")  # memory, clients and, from Redis 7, latencystats
    limit = console.size(info["maxmemory"]) if info["maxmemory"] else "no limit"
    slow = f"the lesson's SORT, {sort_us / 1000:.1f} ms" if sort_us else "no entry for the lesson's SORT"
    rows = {
        "Redis hit ratio": f"{health.hit_ratio:.3f} over the lesson's reads",
        "Redis memory": f"{console.size(info['used_memory'])} of {limit}, {info['evicted_keys']} evicted",
        "Redis connected clients": str(info["connected_clients"]),
        "Redis SLOWLOG": f"{slow} (it logs commands over {slow_us} us)",
        "Redis latency monitor": f"on, events {events}" if latency_ms else "off",
    }
    if "latency_percentiles_usec_sort" in info:
        rows["Redis SORT p99"] = f"{info['latency_percentiles_usec_sort']['p99'] / 1000:.1f} ms since start"
    return health, rows


# --- MongoDB -------------------------------------------------------------------------------------


def own_current_ops(client: pymongo.MongoClient, tag: str) -> tuple[int | None, int | None]:
    """$currentOp entries (operations, idle cursors) carrying the lesson's comment, and of them the
    idle cursors; None, None if not answered."""
    try:
        ops = list(client.admin.aggregate([{"$currentOp": {"idleCursors": True}}], comment=tag))
    except pymongo.errors.OperationFailure:
        return None, None
    mine = [op for op in ops if tag in str(op)]  # the tag is random: an entry with it is the lesson's
    return len(mine), sum(op.get("type") == "idleCursor" for op in mine)


def mongo_health(client: pymongo.MongoClient) -> tuple[MongoHealth, dict[str, str]]:
    console.step(f"MongoDB: serverStatus around {MONGO_OPS} inserts and {MONGO_OPS} finds, then $currentOp")
    client.drop_database(NAMESPACE)
    docs, tag = client[NAMESPACE]["load"], f"{NAMESPACE}-{secrets.token_hex(4)}"
    before = client.admin.command("serverStatus")
    for i in range(MONGO_OPS):
        docs.insert_one({"_id": i})
        docs.find_one({"_id": i})
    cursors = [docs.find({}, comment=tag, batch_size=2) for _ in range(MONGO_CURSORS)]
    for cursor in cursors:
        next(cursor)  # the first batch is read; the server keeps the cursor open for the rest
    after = client.admin.command("serverStatus")
    own_ops, own_idle = own_current_ops(client, tag)
    for cursor in cursors:
        cursor.close()
    was, now = (s.get("metrics", {}).get("cursor", {}).get("open", {}).get("total") for s in (before, after))
    ops = None
    if "opcounters" in after:
        ops = {k: after["opcounters"][k] - before["opcounters"][k] for k in ("insert", "query")}
    answered = {"opcounters": ops, "mem": after.get("mem"), "metrics.cursor.open": now, "$currentOp": own_ops}
    gaps = [name for name, value in answered.items() if value is None]
    current = after["connections"]["current"]
    if current < 2:  # this client alone holds a pooled and a monitoring connection
        gaps.append(f"connections.current (says {current} while this client alone holds 2)")
    if gaps:
        console.say("This server does not answer: " + "; ".join(gaps) + ". A real MongoDB does.")
    # The fact is the lesson's own idle cursors; metrics.cursor.open is server-wide, and a
    # neighbour's cursors closing between the two serverStatus calls would lower its delta.
    health = MongoHealth(gaps, own_idle, current, ops, None if now is None else now - was, own_ops)
    available = after["connections"].get("available")
    open_cursors = "not reported" if now is None else f"{now} server-wide, {now - was:+} meanwhile"
    own = f"{own_ops} entries are the lesson's, {own_idle} of them its idle cursors"
    return health, {
        "MongoDB connections": f"{current} of {available} available" if available else str(current),
        "MongoDB opcounters": f"insert +{ops['insert']}, query +{ops['query']}" if ops else "not reported",
        "MongoDB mem.resident": f"{after['mem']['resident']} MB" if "mem" in after else "not reported",
        "MongoDB open cursors": open_cursors,
        "MongoDB currentOp": "not answered" if own_ops is None else own,
    }


# --- Cassandra -----------------------------------------------------------------------------------

VIEWS = "SELECT table_name FROM system_virtual_schema.tables WHERE keyspace_name = 'system_views'"
CLIENTS = "SELECT keyspace_name, request_count FROM system_views.clients"
POOLS = "SELECT name, pending_tasks, blocked_tasks_all_time FROM system_views.thread_pools"
SETTINGS = "SELECT name, value FROM system_views.settings WHERE name IN ?"


def own_clients(session: Session) -> tuple[int, int]:
    """(connections whose keyspace is the lesson's, their requests): how the lesson finds itself."""
    rows = [row for row in session.execute(CLIENTS) if row.keyspace_name == NAMESPACE]
    return len(rows), sum(row.request_count for row in rows)


def cassandra_health(session: Session) -> tuple[CassandraHealth, dict[str, str]]:
    console.step("Cassandra: system.local, system.peers and the virtual tables of system_views")
    session.default_timeout = 30.0  # the driver's 10 s is short for a node busy with other lessons
    session.execute(
        "CREATE KEYSPACE IF NOT EXISTS engine_health"
        " WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}"
    )
    session.execute("CREATE TABLE IF NOT EXISTS engine_health.load (id int PRIMARY KEY, v text)")
    session.set_keyspace(NAMESPACE)  # each connection's keyspace is a column of system_views.clients
    insert = session.prepare("INSERT INTO load (id, v) VALUES (?, ?)")
    for i in range(CASSANDRA_READS):  # the same rows every run: nothing else to reset
        session.execute(insert, (i, f"row {i}"))
    version = session.execute("SELECT release_version FROM system.local").one().release_version
    peers = len(list(session.execute("SELECT peer FROM system.peers")))
    rows = {"Cassandra version, peers": f"{version}, {peers} peers"}
    try:  # the virtual tables and system_virtual_schema arrived in Cassandra 4.0
        names = {row.table_name for row in session.execute(VIEWS)}
    except InvalidRequest:
        names = set()
    have = [name for name in VIRTUAL_TABLES if name in names]
    if len(have) < len(VIRTUAL_TABLES):
        console.say(f"Cassandra {version} lacks system_views {set(VIRTUAL_TABLES) - names} (4.0 and later).")
    before = own_clients(session)[1] if "clients" in have else 0
    select = session.prepare("SELECT v FROM load WHERE id = ?")
    for i in range(CASSANDRA_READS):
        session.execute(select, (i,))
    own = delta = None
    if "clients" in have:
        own, requests = own_clients(session)
        delta = requests - before
        rows["Cassandra own connection"] = f"{own}, request_count +{delta} for {CASSANDRA_READS} reads"
    if "thread_pools" in have:
        pools = list(session.execute(POOLS))
        blocked = sum(p.blocked_tasks_all_time for p in pools if p.name.startswith("Native-Transport"))
        rows["Cassandra thread pools"] = f"{sum(p.pending_tasks for p in pools)} pending, {blocked} blocked"
    if "settings" in have:
        wanted = ["concurrent_reads", "native_transport_max_threads", "read_request_timeout"]
        found = session.execute(session.prepare(SETTINGS), (wanted,))
        console.say("system_views.settings: " + ", ".join(f"{row.name} = {row.value}" for row in found))
    return CassandraHealth(version, have, own, delta), rows


# --- Neo4j ---------------------------------------------------------------------------------------

SHOW_TRANSACTIONS = """SHOW TRANSACTIONS YIELD transactionId, status, activeLockCount, elapsedTime, metaData
    RETURN transactionId, status, activeLockCount, elapsedTime.milliseconds AS ms, metaData"""


def transactions(driver: Driver) -> list[dict]:
    """What SHOW TRANSACTIONS lists. The SHOW carries metadata of its own, as every query should."""
    query = Query(SHOW_TRANSACTIONS, metadata={"lesson": NAMESPACE, "role": "observer"})
    return [record.data() for record in driver.execute_query(query).records]


def neo4j_health(driver: Driver) -> tuple[Neo4jHealth, dict[str, str]]:
    console.step("Neo4j: components, databases, and the lesson's own open transaction")
    driver.execute_query("MATCH (n:EngineHealth) DETACH DELETE n")
    component = driver.execute_query("CALL dbms.components() YIELD versions, edition").records[0]
    found = driver.execute_query("SHOW DATABASES YIELD name, currentStatus", database_="system").records
    databases = {record["name"]: record["currentStatus"] for record in found}
    run_id = secrets.token_hex(4)
    with driver.session() as session:
        tx = session.begin_transaction(metadata={"lesson": NAMESPACE, "run": run_id})
        try:
            tx.run("CREATE (:EngineHealth {run: $run})", run=run_id).consume()  # takes locks and keeps them
            listed = transactions(driver)
        finally:
            tx.rollback()
    console.table(["transaction", "status", "locks", "ms open", "metaData"], [t.values() for t in listed])
    mine = [t for t in listed if t["metaData"].get("run") == run_id]
    gone = not any(t["metaData"].get("run") == run_id for t in transactions(driver))
    health = Neo4jHealth(databases, bool(mine), gone, mine[0]["activeLockCount"] if mine else 0)
    own = f"{mine[0]['status']} with {health.own_tx_locks} locks" if mine else "not found"
    own += ", gone after rollback" if gone else ", still listed after rollback"
    return health, {
        "Neo4j version": f"{component['versions'][0]} {component['edition']}",
        "Neo4j databases": ", ".join(f"{name} {status}" for name, status in databases.items()),
        "Neo4j transactions": f"{len(listed)} open; the lesson's: {own}",
    }


# --- PostgreSQL and MySQL ------------------------------------------------------------------------

PG_STATS = """SELECT blks_hit, blks_read, current_setting('max_connections')::integer,
    (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')
    FROM pg_stat_database WHERE datname = current_database()"""
MY_STATUS = """SHOW GLOBAL STATUS WHERE Variable_name IN
    ('Threads_connected', 'Innodb_buffer_pool_read_requests', 'Innodb_buffer_pool_reads')"""


def postgres_health(conn: psycopg.Connection) -> tuple[SqlHealth, dict[str, str]]:
    console.step("PostgreSQL: pg_stat_database's cache hit ratio, and connections against the limit")
    with conn.transaction():
        hit, read, limit, connections = conn.execute(PG_STATS).fetchone()
    server = f"PostgreSQL {conn.info.server_version // 10000}"
    console.say(f"{server}: blks_hit {hit:,} and blks_read {read:,} since the stats reset.")
    health = SqlHealth(server, hit / max(1, hit + read), connections, limit)
    return health, {
        "PostgreSQL hit ratio": f"{health.hit_ratio:.3f}",
        "PostgreSQL connections": f"{connections} / {limit}",
    }


def mysql_status(cur) -> dict[str, int]:
    cur.execute(MY_STATUS)
    return {name: int(value) for name, value in cur.fetchall()}


def mysql_health(conn: pymysql.Connection) -> tuple[SqlHealth, dict[str, str]]:
    console.step("MySQL or MariaDB: SHOW GLOBAL STATUS, threads and the buffer pool hit ratio")
    with conn.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS engine_health")
        cur.execute("CREATE DATABASE engine_health")
        cur.execute("CREATE TABLE engine_health.load (id INT PRIMARY KEY, v VARCHAR(40)) ENGINE=InnoDB")
        rows = [(i, f"row {i}") for i in range(N_ROWS)]
        cur.executemany("INSERT INTO engine_health.load VALUES (%s, %s)", rows)
        conn.commit()
        before = mysql_status(cur)
        cur.execute("SELECT COUNT(*), MAX(v) FROM engine_health.load")  # a full scan of the lesson's rows
        after = mysql_status(cur)
        cur.execute("SELECT VERSION(), @@GLOBAL.max_connections")
        version, limit = cur.fetchone()
    conn.commit()
    requests, reads = after["Innodb_buffer_pool_read_requests"], after["Innodb_buffer_pool_reads"]
    flavour = f"{'MariaDB' if 'MariaDB' in version else 'MySQL'} {version.split('-')[0]}"
    console.say(
        f"{flavour}: the lesson's scan made {requests - before['Innodb_buffer_pool_read_requests']:,} "
        f"buffer pool read requests; since start {reads:,} of {requests:,} went to disk."
    )
    health = SqlHealth(flavour, 1 - reads / max(1, requests), after["Threads_connected"], limit)
    return health, {
        "MySQL buffer pool hit ratio": f"{health.hit_ratio:.3f} ({flavour})",
        "MySQL Threads_connected": f"{health.connections} / {limit}",
    }


# --- the lesson ----------------------------------------------------------------------------------


def run(
    pg: psycopg.Connection,
    my: pymysql.Connection,
    r: redis.Redis,
    mongo: pymongo.MongoClient,
    neo: Driver,
    cassandra: Session,
) -> HealthResult:
    """`r` decodes responses (decode_responses=True); `cassandra` is moved to the lesson's keyspace."""
    console.title("Engine health at a glance: what each server says about itself")
    parts = [redis_health(r), mongo_health(mongo), cassandra_health(cassandra)]
    parts += [neo4j_health(neo), postgres_health(pg), mysql_health(my)]
    table = {figure: value for _, rows in parts for figure, value in rows.items()}
    console.step("One health table: each figure, its value, and when to worry")
    console.table(["figure", "value", "when to worry"], [(f, v, MEANING[f]) for f, v in table.items()])
    return HealthResult(*(health for health, _ in parts), table=table)


def main() -> int:
    settings.require(*REQUIRES)
    timeout = settings.CONNECT_TIMEOUT_S
    hosts, port = settings.cassandra_contact_points()
    cluster = Cluster(hosts, port=port, connect_timeout=timeout)
    try:
        with (
            psycopg.connect(settings.postgres_url(), connect_timeout=timeout) as pg,
            pymysql.connect(**settings.mysql_params()) as my,
            redis.Redis.from_url(
                settings.redis_url(), socket_connect_timeout=timeout, decode_responses=True
            ) as r,
            pymongo.MongoClient(settings.mongo_url(), serverSelectionTimeoutMS=timeout * 1000) as mongo,
            GraphDatabase.driver(settings.neo4j_url(), auth=settings.neo4j_auth()) as neo,
        ):
            result = run(pg, my, r, mongo, neo, cluster.connect())
    finally:
        cluster.shutdown()
    return 0 if result.holds else 1


if __name__ == "__main__":
    raise SystemExit(main())

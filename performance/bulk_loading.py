"""Bulk loading: one write per round trip against batched, streamed and concurrent writes in four stores

Loading rows one at a time pays a network round trip and a statement's fixed cost for every row,
and the server mostly waits for the client. This lesson loads the same generated rows the naive way
and the batched ways into four stores and counts what went over the wire. PostgreSQL: row-by-row
INSERT in one transaction, psycopg's executemany (pipelined), multi-row INSERT ... VALUES of 1,000
rows per statement, and COPY, with the statements each made the server execute (pg_stat_statements).
MongoDB: insert_one per document against insert_many(ordered=False), with the insert commands the
driver sent (a pymongo command listener) and the server's maxWriteBatchSize that splits them.
Cassandra: synchronous prepared inserts one after another against execute_concurrent_with_args with
64 requests in flight. Redis: one HSET per round trip against a pipeline of 1,000 commands per round
trip, with the replies the server sent back on the lesson's own connection (not INFO commandstats,
which counts every client's HSETs). Every load is checked by counting rows.

Batching saves round trips and per-statement work, not the server's own work on each row. The local
MongoDB stand-in (mongo-java-server) spends milliseconds on every document, so there insert_many
gains far less than against a real MongoDB; likewise a Cassandra node short of CPU gains less from
concurrency than one with cores to spare.

Engine: PostgreSQL (POSTGRES_URL) schema `bulk_loading` (which gets pg_stat_statements where the
database has none), MongoDB (MONGO_URL) database `bulk_loading`,
Cassandra (CASSANDRA_HOSTS) keyspace `bulk_loading`, Redis (REDIS_URL) keys under `bulk_loading:`.
Run: `make up SERVICES="postgres mongodb cassandra redis"` (or `make local-up`), then `python performance/bulk_loading.py`.
Look for: the statements column (one per row, one per 1,000 rows, one COPY) beside rows/s, the
insert commands (one per document against one per maxWriteBatchSize), the requests in flight, the
Redis round trips against the HSET replies, and the speed-up printed for each store.
"""

from __future__ import annotations

import random
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import psycopg
import redis
from cassandra.cluster import Cluster, Session
from cassandra.concurrent import execute_concurrent_with_args
from psycopg import sql
from pymongo import MongoClient, monitoring

from common import console
from common.settings import (
    CONNECT_TIMEOUT_S,
    cassandra_contact_points,
    mongo_url,
    postgres_url,
    redis_url,
    require,
    scale,
)
from common.timing import Comparison, timer

REQUIRES = ("postgres", "mongodb", "cassandra", "redis")
SCHEMA = DATABASE = "bulk_loading"  # also the Cassandra keyspace, written literally in the CQL below
PREFIX = "bulk_loading:"
SEED = 42
# Rows loaded at scale 1.0, so that the whole lesson takes about a minute on two busy cores. The
# naive ways cost up to a few milliseconds per row against the local MongoDB stand-in and Cassandra
# node, so those stores get fewer rows. Within a store every method loads the same rows: each
# comparison is like with like.
FULL_ROWS = {"postgres": 50_000, "mongodb": 1_500, "cassandra": 4_000, "redis": 10_000}
MIN_ROWS = 500
ROWS_PER_STATEMENT = 1_000  # multi-row VALUES: 3,000 parameters, far under PostgreSQL's 65,535
COMMANDS_PER_PIPELINE = 1_000
CONCURRENCY = 64  # Cassandra requests kept in flight
WARM_UP_ROWS = 300  # the JVM servers compile their write path on the first requests
PROGRESS_EVERY = 1_000
WORDS = ["amber", "birch", "cedar", "delta", "ember", "fjord", "garnet", "harbor", "indigo", "juniper"]

PG_METHODS = ["row-by-row INSERT", "executemany", f"multi-row VALUES ({ROWS_PER_STATEMENT:,} rows)", "COPY"]
PG_TABLES = ["by_insert", "by_executemany", "by_values", "by_copy"]
ONE_ROW_PLACEHOLDERS = sql.SQL("(%s, %s, %s)")  # repeated once per row; the values themselves stay bound

MONGO_METHODS = {"insert_one": "one_by_one", "insert_many": "many"}  # method -> collection

CASSANDRA_RESET = [
    "DROP KEYSPACE IF EXISTS bulk_loading",
    "CREATE KEYSPACE bulk_loading WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}",
    "CREATE TABLE bulk_loading.warm_up (id int PRIMARY KEY, name text, price_cents int)",
    "CREATE TABLE bulk_loading.sequential (id int PRIMARY KEY, name text, price_cents int)",
    "CREATE TABLE bulk_loading.concurrent (id int PRIMARY KEY, name text, price_cents int)",
]
CASSANDRA_WARM_UP = "INSERT INTO bulk_loading.warm_up (id, name, price_cents) VALUES (?, ?, ?)"
CASSANDRA_METHODS = {  # method -> its insert, its row count
    "sequential": (
        "INSERT INTO bulk_loading.sequential (id, name, price_cents) VALUES (?, ?, ?)",
        "SELECT count(*) FROM bulk_loading.sequential",
    ),
    f"concurrent ({CONCURRENCY} in flight)": (
        "INSERT INTO bulk_loading.concurrent (id, name, price_cents) VALUES (?, ?, ?)",
        "SELECT count(*) FROM bulk_loading.concurrent",
    ),
}

REDIS_METHODS = {  # method -> the key segment of its hashes
    "round trip per HSET": "round_trips",
    f"pipeline ({COMMANDS_PER_PIPELINE:,} per trip)": "pipeline",
}


@dataclass
class PostgresLoad:
    method: str
    rows_loaded: int
    statements_sent: int  # counted in this code
    statements_executed: int | None  # pg_stat_statements calls; None where the extension is missing
    seconds: float = field(compare=False)


@dataclass
class MongoLoad:
    method: str
    documents_loaded: int
    insert_commands: int  # seen by the command listener
    largest_command: int  # documents in the biggest insert command
    seconds: float = field(compare=False)


@dataclass
class CassandraLoad:
    method: str
    rows_loaded: int
    requests_sent: int  # seen by the session's request listener
    most_in_flight: int = field(compare=False)  # the most requests awaiting an answer at once
    seconds: float = field(compare=False)


@dataclass
class RedisLoad:
    method: str
    keys_loaded: int
    round_trips: int  # writes to the socket, counted by the connection: one request, one round trip
    hset_replies: int  # replies the server sent to the HSETs on this connection, one per command it ran
    seconds: float = field(compare=False)


@dataclass
class BulkLoadingResult:
    rows: dict[str, int]  # store -> rows loaded by each of its methods
    postgres: list[PostgresLoad]
    mongodb: list[MongoLoad]
    max_write_batch_size: int  # MongoDB's limit of documents per insert command
    cassandra: list[CassandraLoad]
    redis: list[RedisLoad]
    comparisons: list[Comparison] = field(compare=False)

    @property
    def complete(self) -> bool:
        """Every method of every store loaded all of its rows."""
        loaded = [("postgres", load.rows_loaded) for load in self.postgres]
        loaded += [("mongodb", load.documents_loaded) for load in self.mongodb]
        loaded += [("cassandra", load.rows_loaded) for load in self.cassandra]
        loaded += [("redis", load.keys_loaded) for load in self.redis]
        return all(count == self.rows[store] for store, count in loaded)


class InsertCommands(monitoring.CommandListener):
    """Counts the insert commands the driver sends into the lesson's database, and their sizes.

    Give it to MongoClient(event_listeners=[...]): pymongo calls it for every command it sends.
    """

    def __init__(self) -> None:
        self.documents_per_command: dict[str, list[int]] = defaultdict(list)  # by collection

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "insert" and event.database_name == DATABASE:
            collection = event.command["insert"]
            self.documents_per_command[collection].append(len(event.command.get("documents", ())))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


class RequestsInFlight:
    """Counts the requests a Cassandra session sends and the most that awaited an answer at once.

    Registered with Session.add_request_init_listener, which calls it before each request is sent.
    Answers arrive on the driver's event loop thread, hence the lock.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.sent = self.in_flight = self.most = 0

    def __call__(self, response_future) -> None:
        with self._lock:
            self.sent += 1
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
        response_future.add_callbacks(self._answered, self._answered)

    def _answered(self, _result) -> None:
        with self._lock:
            self.in_flight -= 1


def rows_for(store: str, scale: float) -> int:
    return max(int(FULL_ROWS[store] * scale), MIN_ROWS)


def generate_rows(n: int) -> list[tuple[int, str, int]]:
    """(id, name, price_cents) from a fixed seed: a smaller load is a prefix of a larger one."""
    rng = random.Random(SEED)
    return [
        (row_id, f"{rng.choice(WORDS)}-{rng.randrange(10_000):04d}", rng.randrange(100, 100_000))
        for row_id in range(1, n + 1)
    ]


def chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def ignore_progress(n: int = 1) -> None:
    """The progress callback of loads that are not shown (warm-ups)."""


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


# PostgreSQL


def pg_table(name: str) -> sql.Identifier:
    # Schema-qualified, so the statement texts in pg_stat_statements name this lesson's tables only.
    return sql.Identifier(SCHEMA, name)


def insert_one_row(table: str) -> sql.Composed:
    return sql.SQL("INSERT INTO {} (id, name, price_cents) VALUES (%s, %s, %s)").format(pg_table(table))


def insert_rows(table: str, n_rows: int) -> sql.Composed:
    """INSERT ... VALUES (%s, %s, %s), (%s, %s, %s), ...: the placeholder group repeated n_rows times."""
    groups = sql.SQL(", ").join([ONE_ROW_PLACEHOLDERS] * n_rows)
    return sql.SQL("INSERT INTO {} (id, name, price_cents) VALUES {}").format(pg_table(table), groups)


def copy_rows(table: str) -> sql.Composed:
    return sql.SQL("COPY {} (id, name, price_cents) FROM STDIN").format(pg_table(table))


def recorded_as(table: str) -> sql.Composed:
    """How the text pg_stat_statements keeps for the load into `table` begins."""
    verb = sql.SQL("COPY") if table == "by_copy" else sql.SQL("INSERT INTO")
    return sql.SQL("{} {}").format(verb, pg_table(table))


def reset_postgres(conn: psycopg.Connection) -> None:
    conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SCHEMA)))
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(SCHEMA)))
    conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(SCHEMA)))
    create = sql.SQL(
        "CREATE TABLE {} (id integer PRIMARY KEY, name text NOT NULL, price_cents integer NOT NULL)"
    )
    for table in PG_TABLES:
        conn.execute(create.format(pg_table(table)))
    conn.commit()


def statement_stats_view(conn: psycopg.Connection) -> sql.Identifier | None:
    """pg_stat_statements, wherever the database has it: its library must be preloaded by the server.

    Where no schema has the extension yet, the lesson installs it in its own schema (dropped with
    it, and the counts live in shared memory, not in the schema), never in a shared one.
    """
    statement = sql.SQL("CREATE EXTENSION IF NOT EXISTS pg_stat_statements WITH SCHEMA {}")
    try:
        with conn.transaction():
            conn.execute(statement.format(sql.Identifier(SCHEMA)))
    except psycopg.Error:
        pass  # not allowed, or another session created it at that moment: the query below decides
    try:
        with conn.transaction():
            (schema,) = conn.execute(
                "SELECT n.nspname FROM pg_extension AS e JOIN pg_namespace AS n ON n.oid = e.extnamespace"
                " WHERE e.extname = 'pg_stat_statements'"
            ).fetchone()
            view = sql.Identifier(schema, "pg_stat_statements")
            conn.execute(sql.SQL("SELECT 1 FROM {} LIMIT 1").format(view))
        return view
    except (psycopg.Error, TypeError):  # TypeError: no row, the extension is not there
        return None


def statement_calls(conn: psycopg.Connection, view: sql.Identifier, prefix: str) -> dict[tuple, int]:
    """The calls the server recorded per statement (userid, queryid) whose text starts with `prefix`,
    in this database."""
    query = sql.SQL(
        "SELECT userid, queryid, sum(calls) FROM {} WHERE starts_with(query, %s)"
        " AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
        " GROUP BY userid, queryid"
    ).format(view)
    with conn.transaction():
        return {(userid, queryid): int(calls) for userid, queryid, calls in conn.execute(query, [prefix])}


def calls_between(before: dict[tuple, int], after: dict[tuple, int]) -> int:
    """Calls made between two readings, statement by statement, not as a difference of sums: the
    queryid includes the table's oid, so earlier runs leave entries with the same text, and the
    server may evict one of those at any moment. A new entry counts from 0; a vanished one is ignored."""
    return sum(calls - before.get(key, 0) for key, calls in after.items())


def load_row_by_row(conn: psycopg.Connection, table: str, rows: list, advance: Callable) -> int:
    """One INSERT per row, all in one transaction (autocommit off): a round trip per row."""
    statement = insert_one_row(table)
    with conn.cursor() as cur:
        for chunk in chunks(rows, PROGRESS_EVERY):
            for row in chunk:
                cur.execute(statement, row)
            advance(len(chunk))
    conn.commit()
    return len(rows)


def load_executemany(conn: psycopg.Connection, table: str, rows: list, advance: Callable) -> int:
    """psycopg's executemany: still one INSERT per row, but pipelined, without waiting for each."""
    with conn.cursor() as cur:
        cur.executemany(insert_one_row(table), rows)
    conn.commit()
    advance(len(rows))
    return len(rows)


def load_multirow_values(conn: psycopg.Connection, table: str, rows: list, advance: Callable) -> int:
    """INSERT ... VALUES with ROWS_PER_STATEMENT rows per statement, every value a bound parameter."""
    full_batch = insert_rows(table, ROWS_PER_STATEMENT)
    sent = 0
    with conn.cursor() as cur:
        for chunk in chunks(rows, ROWS_PER_STATEMENT):
            statement = full_batch if len(chunk) == ROWS_PER_STATEMENT else insert_rows(table, len(chunk))
            cur.execute(statement, [value for row in chunk for value in row])
            sent += 1
            advance(len(chunk))
    conn.commit()
    return sent


def load_copy(conn: psycopg.Connection, table: str, rows: list, advance: Callable) -> int:
    """COPY ... FROM STDIN: one statement, the rows streamed to the server in COPY's format."""
    with conn.cursor() as cur, cur.copy(copy_rows(table)) as copy:
        for chunk in chunks(rows, PROGRESS_EVERY):
            for row in chunk:
                copy.write_row(row)
            advance(len(chunk))
    conn.commit()
    return 1


def count_pg_rows(conn: psycopg.Connection, table: str) -> int:
    with conn.transaction():
        return conn.execute(sql.SQL("SELECT count(*) FROM {}").format(pg_table(table))).fetchone()[0]


def load_postgres(conn: psycopg.Connection, rows: list) -> list[PostgresLoad]:
    reset_postgres(conn)
    view = statement_stats_view(conn)
    if view is None:
        console.say("pg_stat_statements is not available here: statements are counted in this code only.")
    loaders = [load_row_by_row, load_executemany, load_multirow_values, load_copy]
    loads = []
    for method, table, loader in zip(PG_METHODS, PG_TABLES, loaders, strict=True):
        prefix = recorded_as(table).as_string(conn)
        before = statement_calls(conn, view, prefix) if view else {}
        with console.progress(method, total=len(rows)) as advance, timer() as took:
            sent = loader(conn, table, rows, advance)
        executed = calls_between(before, statement_calls(conn, view, prefix)) if view else None
        loads.append(PostgresLoad(method, count_pg_rows(conn, table), sent, executed, took.seconds))
    return loads


# MongoDB


def max_write_batch_size(client: MongoClient) -> int:
    """The server's limit of documents per write command, as it told the driver at the handshake."""
    client.admin.command("ping")
    servers = client.topology_description.server_descriptions().values()
    return min(server.max_write_batch_size for server in servers)


def load_one_by_one(collection, documents: list[dict], advance: Callable) -> None:
    """insert_one per document: a command and a round trip each."""
    for chunk in chunks(documents, PROGRESS_EVERY):
        for document in chunk:
            collection.insert_one(document)
        advance(len(chunk))


def load_insert_many(collection, documents: list[dict], advance: Callable) -> None:
    """insert_many: the driver cuts the list into commands of at most maxWriteBatchSize documents.

    ordered=False lets the server go on past a failing document instead of stopping at it.
    """
    collection.insert_many(documents, ordered=False)
    advance(len(documents))


def load_mongodb(client: MongoClient, inserts: InsertCommands, rows: list) -> list[MongoLoad]:
    client.drop_database(DATABASE)
    db = client[DATABASE]
    warm_up = [
        {"_id": row_id, "name": name, "price_cents": price} for row_id, name, price in rows[:WARM_UP_ROWS]
    ]
    load_one_by_one(db["warm_up"], warm_up[: WARM_UP_ROWS // 2], ignore_progress)
    load_insert_many(db["warm_up"], warm_up[WARM_UP_ROWS // 2 :], ignore_progress)
    db.drop_collection("warm_up")
    loads = []
    for (method, collection), loader in zip(
        MONGO_METHODS.items(), [load_one_by_one, load_insert_many], strict=True
    ):
        documents = [{"_id": row_id, "name": name, "price_cents": price} for row_id, name, price in rows]
        inserts.documents_per_command[collection].clear()
        with console.progress(method, total=len(rows)) as advance, timer() as took:
            loader(db[collection], documents, advance)
        sizes = inserts.documents_per_command[collection]
        loaded = db[collection].count_documents({})
        loads.append(MongoLoad(method, loaded, len(sizes), max(sizes), took.seconds))
    return loads


# Cassandra


def reset_cassandra(session: Session) -> None:
    for statement in CASSANDRA_RESET:
        session.execute(statement, timeout=60)  # schema changes wait for the node to agree


def load_sequential(session: Session, insert, rows: list, advance: Callable) -> None:
    """execute() per row: each waits for its answer before the next is sent."""
    for chunk in chunks(rows, PROGRESS_EVERY):
        for row in chunk:
            session.execute(insert, row)
        advance(len(chunk))


def load_concurrent(session: Session, insert, rows: list, advance: Callable) -> None:
    """execute_concurrent_with_args: the driver keeps CONCURRENCY requests in flight."""
    execute_concurrent_with_args(session, insert, rows, concurrency=CONCURRENCY)
    advance(len(rows))


def load_cassandra(session: Session, rows: list) -> list[CassandraLoad]:
    reset_cassandra(session)
    warm_up = session.prepare(CASSANDRA_WARM_UP)
    load_sequential(session, warm_up, rows[: WARM_UP_ROWS // 2], ignore_progress)
    load_concurrent(session, warm_up, rows[WARM_UP_ROWS // 2 : WARM_UP_ROWS], ignore_progress)
    loaders = [load_sequential, load_concurrent]
    loads = []
    for (method, (insert_text, count_text)), loader in zip(CASSANDRA_METHODS.items(), loaders, strict=True):
        insert = session.prepare(insert_text)
        requests = RequestsInFlight()
        session.add_request_init_listener(requests)
        try:
            with console.progress(method, total=len(rows)) as advance, timer() as took:
                loader(session, insert, rows, advance)
        finally:
            session.remove_request_init_listener(requests)
        loaded = session.execute(count_text, timeout=60).one()[0]
        loads.append(CassandraLoad(method, loaded, requests.sent, requests.most, took.seconds))
    return loads


# Redis


def redis_key(segment: str, row_id: int) -> str:
    return f"{PREFIX}{segment}:{row_id}"


def reset_redis(client: redis.Redis) -> None:
    doomed = list(client.scan_iter(match=PREFIX + "*", count=1_000))
    for chunk in chunks(doomed, 1_000):
        client.unlink(*chunk)


def count_keys(client: redis.Redis, segment: str) -> int:
    return sum(1 for _ in client.scan_iter(match=f"{PREFIX}{segment}:*", count=1_000))


def counting_client(client: redis.Redis) -> tuple[redis.Redis, list[int]]:
    """A client of the same server whose connection counts what it sends: one request per round trip."""
    sent = [0]

    class Counting(client.connection_pool.connection_class):
        def send_packed_command(self, command, check_health=True):
            sent[0] += 1
            super().send_packed_command(command, check_health)

    pool = redis.ConnectionPool(connection_class=Counting, **client.connection_pool.connection_kwargs)
    return redis.Redis(connection_pool=pool), sent


def load_round_trips(client: redis.Redis, rows: list, advance: Callable) -> int:
    """One HSET per row, each waiting for its reply. Returns the replies."""
    replies = 0
    for chunk in chunks(rows, PROGRESS_EVERY):
        for row_id, name, price in chunk:
            client.hset(redis_key("round_trips", row_id), mapping={"name": name, "price_cents": price})
            replies += 1  # hset() returned: its reply came back
        advance(len(chunk))
    return replies


def load_pipeline(client: redis.Redis, rows: list, advance: Callable) -> int:
    """COMMANDS_PER_PIPELINE HSETs buffered, sent together, their replies read together; no MULTI/EXEC."""
    replies = 0
    for chunk in chunks(rows, COMMANDS_PER_PIPELINE):
        pipe = client.pipeline(transaction=False)
        for row_id, name, price in chunk:
            pipe.hset(redis_key("pipeline", row_id), mapping={"name": name, "price_cents": price})
        replies += len(pipe.execute())  # one reply per command, read back in one go
        advance(len(chunk))
    return replies


def load_redis(client: redis.Redis, rows: list) -> list[RedisLoad]:
    reset_redis(client)
    loads = []
    for (method, segment), loader in zip(
        REDIS_METHODS.items(), [load_round_trips, load_pipeline], strict=True
    ):
        counted, sent = counting_client(client)
        with counted:
            counted.ping()  # connected: what the handshake sent is not counted below
            sent[0] = 0
            with console.progress(method, total=len(rows)) as advance, timer() as took:
                replies = loader(counted, rows, advance)
        loads.append(RedisLoad(method, count_keys(client, segment), sent[0], replies, took.seconds))
    return loads


# The lesson


def compare(name: str, baseline: str, optimized: str, baseline_s: float, optimized_s: float) -> Comparison:
    console.compare(baseline, baseline_s, optimized, optimized_s)
    return Comparison(name, baseline, optimized, baseline_s, optimized_s)


def postgres_step(conn: psycopg.Connection, rows: list) -> tuple[list[PostgresLoad], Comparison]:
    console.step(f"PostgreSQL: {len(rows):,} rows four ways, each in one transaction")
    console.say("Every statement costs a round trip, a parse and an executor start; COPY is one statement.")
    loads = load_postgres(conn, rows)
    row_by_row, executemany, _, copy = loads

    def statements(load: PostgresLoad) -> object:
        return (
            load.statements_executed
            if load.statements_executed is not None
            else f"{load.statements_sent:,} sent"
        )

    console.table(
        ["method", "statements executed", "rows loaded", "seconds", "rows/s", "vs row-by-row"],
        [
            (
                load.method,
                statements(load),
                load.rows_loaded,
                load.seconds,
                round(rate(load.rows_loaded, load.seconds)),
                f"{row_by_row.seconds / load.seconds:.1f}x",
            )
            for load in loads
        ],
    )
    console.say(
        f"Fewer statements is not all of it: each multi-row statement carries {3 * ROWS_PER_STATEMENT:,} parameters"
        " that the client converts and binds on every execute; COPY streams the rows as they are."
    )
    comparison = compare(
        f"load {len(rows):,} rows into PostgreSQL",
        "row-by-row INSERT (one transaction)",
        "COPY",
        row_by_row.seconds,
        copy.seconds,
    )
    console.compare(executemany.method, executemany.seconds, copy.method, copy.seconds)
    return loads, comparison


def mongodb_step(
    client: MongoClient, inserts: InsertCommands, rows: list
) -> tuple[list[MongoLoad], int, Comparison]:
    console.step(f"MongoDB: {len(rows):,} documents, insert_one each against insert_many")
    limit = max_write_batch_size(client)
    console.say(f"This server takes at most {limit:,} documents per insert command (maxWriteBatchSize).")
    console.say("insert_many saves the round trips, not the server's own work on each document.")
    loads = load_mongodb(client, inserts, rows)
    console.table(
        ["method", "insert commands", "largest command", "documents loaded", "seconds", "documents/s"],
        [
            (
                m.method,
                m.insert_commands,
                m.largest_command,
                m.documents_loaded,
                m.seconds,
                round(rate(m.documents_loaded, m.seconds)),
            )
            for m in loads
        ],
    )
    one_by_one, many = loads
    comparison = compare(
        f"load {len(rows):,} documents into MongoDB",
        "insert_one per document",
        "insert_many(ordered=False)",
        one_by_one.seconds,
        many.seconds,
    )
    return loads, limit, comparison


def cassandra_step(session: Session, rows: list) -> tuple[list[CassandraLoad], Comparison]:
    console.step(f"Cassandra: {len(rows):,} prepared inserts, one at a time against {CONCURRENCY} in flight")
    console.say(
        "The same requests either way; the concurrent load sends the next before the last is answered."
    )
    loads = load_cassandra(session, rows)
    console.table(
        ["method", "requests sent", "most in flight", "rows loaded", "seconds", "rows/s"],
        [
            (
                c.method,
                c.requests_sent,
                c.most_in_flight,
                c.rows_loaded,
                c.seconds,
                round(rate(c.rows_loaded, c.seconds)),
            )
            for c in loads
        ],
    )
    sequential, concurrent = loads
    comparison = compare(
        f"load {len(rows):,} rows into Cassandra",
        "synchronous execute() per row",
        f"execute_concurrent_with_args, {CONCURRENCY} in flight",
        sequential.seconds,
        concurrent.seconds,
    )
    return loads, comparison


def redis_step(client: redis.Redis, rows: list) -> tuple[list[RedisLoad], Comparison]:
    console.step(f"Redis: {len(rows):,} HSETs, a round trip each against a pipeline")
    console.say(
        "The server runs the same commands either way; the pipeline stops the client waiting for each."
    )
    loads = load_redis(client, rows)
    console.table(
        ["method", "HSET replies", "round trips", "keys loaded", "seconds", "keys/s"],
        [
            (
                r.method,
                r.hset_replies,
                r.round_trips,
                r.keys_loaded,
                r.seconds,
                round(rate(r.keys_loaded, r.seconds)),
            )
            for r in loads
        ],
    )
    one_each, pipeline = loads
    comparison = compare(
        f"load {len(rows):,} hashes into Redis",
        "a round trip per HSET",
        f"pipeline, {COMMANDS_PER_PIPELINE:,} commands per round trip",
        one_each.seconds,
        pipeline.seconds,
    )
    return loads, comparison


def run(
    pg: psycopg.Connection,
    mongo: MongoClient,
    mongo_inserts: InsertCommands,
    cassandra: Session,
    redis_client: redis.Redis,
    scale: float = 1.0,
) -> BulkLoadingResult:
    """Load each store the naive way and the batched ways. `mongo` must have `mongo_inserts` among
    its event_listeners; `pg` must not be in autocommit mode (psycopg's default)."""
    console.title("Bulk loading: PostgreSQL, MongoDB, Cassandra and Redis")

    console.step("Generate the rows: (id, name, price_cents) from one seed")
    sizes = {store: rows_for(store, scale) for store in FULL_ROWS}
    rows = generate_rows(max(sizes.values()))
    console.table(["store", "rows loaded by each method"], sizes.items())
    console.say("Every method of a store loads the same rows, so each comparison is like with like.")

    pg_loads, pg_comparison = postgres_step(pg, rows[: sizes["postgres"]])
    mongo_loads, batch_limit, mongo_comparison = mongodb_step(mongo, mongo_inserts, rows[: sizes["mongodb"]])
    cassandra_loads, cassandra_comparison = cassandra_step(cassandra, rows[: sizes["cassandra"]])
    redis_loads, redis_comparison = redis_step(redis_client, rows[: sizes["redis"]])

    comparisons = [pg_comparison, mongo_comparison, cassandra_comparison, redis_comparison]
    console.step("Summary: the naive way against the best way, per store")
    console.table(
        ["load", "baseline", "optimized", "speed-up"],
        [(c.name, c.baseline, c.optimized, f"{c.ratio:.1f}x") for c in comparisons],
    )
    return BulkLoadingResult(
        rows=sizes,
        postgres=pg_loads,
        mongodb=mongo_loads,
        max_write_batch_size=batch_limit,
        cassandra=cassandra_loads,
        redis=redis_loads,
        comparisons=comparisons,
    )


def main() -> int:
    require(*REQUIRES)
    inserts = InsertCommands()
    hosts, port = cassandra_contact_points()
    cluster = Cluster(hosts, port=port, connect_timeout=CONNECT_TIMEOUT_S)
    try:
        with (
            psycopg.connect(postgres_url(), connect_timeout=CONNECT_TIMEOUT_S) as pg,
            MongoClient(
                mongo_url(), event_listeners=[inserts], serverSelectionTimeoutMS=CONNECT_TIMEOUT_S * 1000
            ) as mongo,
            redis.Redis.from_url(redis_url(), socket_connect_timeout=CONNECT_TIMEOUT_S) as redis_client,
        ):
            result = run(pg, mongo, inserts, cluster.connect(), redis_client, scale=scale())
    finally:
        cluster.shutdown()
    # The timings are for reading and for `make bench`; the exit code says every load was complete
    # and the batched ways sent fewer requests: one COPY, fewer Redis round trips.
    (*_, copy), (one_each, pipeline) = result.postgres, result.redis
    return (
        0
        if result.complete and copy.statements_sent == 1 and pipeline.round_trips < one_each.round_trips
        else 1
    )


if __name__ == "__main__":
    raise SystemExit(main())

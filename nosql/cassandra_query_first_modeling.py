"""Cassandra query-first modeling: a table per query, time buckets, ALLOW FILTERING, TTL, consistency, LWT

In Cassandra the queries come first and the tables follow: each query gets a table whose
partition key is what the query knows and whose clustering columns are the order it wants. This
lesson designs the tables of a small messaging and sensor app from its queries, keeps two of them
in step with one LOGGED BATCH, measures partitions bucketed by day against one partition per sensor
that grows forever, shows why a query without its partition key is refused and what ALLOW FILTERING
costs (rows read against rows returned, from the query trace), lets a row expire with a TTL, times
prepared against simple statements, runs the consistency levels on one node (TWO is unavailable),
and makes two clients' read-then-write lose an update that a lightweight transaction does not.

Engine: Cassandra (CASSANDRA_HOSTS), keyspace `cassandra_query_first_modeling` (SimpleStrategy, RF 1).
Run: `make up SERVICES=cassandra` (or `make local-up`), then `python nosql/cassandra_query_first_modeling.py`.
Look for: the rows read against rows returned with ALLOW FILTERING, rows per partition by day against
per sensor, "Unavailable: 2 replicas required, 1 alive" for TWO, and lost updates 5 with plain
writes against 0 with IF balance = ?.
"""

from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from cassandra import ConsistencyLevel, InvalidRequest, Unavailable
from cassandra.cluster import Cluster, NoHostAvailable, ResultSet, Session
from cassandra.concurrent import execute_concurrent, execute_concurrent_with_args
from cassandra.query import BatchStatement, BatchType, PreparedStatement

from common import console
from common.settings import cassandra_contact_points, require
from common.timing import best_of, timer

REQUIRES = ("cassandra",)
KEYSPACE = "cassandra_query_first_modeling"
SEED = 11
N_USERS, N_CONVERSATIONS, N_MESSAGES = 30, 80, 800
N_SENSORS, N_DAYS, READINGS_PER_DAY = 3, 3, 1_440  # one reading a minute
FIRST_DAY = date(2024, 3, 1)
CHAT_START = datetime(2024, 3, 1, 8, 0)
ROWS_PER_LOAD_BATCH = 240  # a day is 6 batches; the batch-size warning counts only multi-partition batches
HOT_C = 27.5  # the filter of the ALLOW FILTERING query: a few readings in a thousand
MAX_PARTITION_ROWS, MAX_PARTITION_BYTES = 100_000, 100 * 1024 * 1024  # the usual rule of thumb
TTL_S, POLL_S, POLL_LIMIT_S = 2, 0.1, 10.0
# Dropping a keyspace recycles the commit log segments that hold its writes, which flushes every table
# with data in them: seconds on a busy machine, past the driver's default 10 s request timeout.
DDL_TIMEOUT_S = 60.0
N_TIMED = 200  # inserts per way, prepared and simple
ROUNDS, DEPOSIT_A, DEPOSIT_B, OPENING_BALANCE = 5, 10, 20, 100
LEVELS = ("ONE", "TWO", "QUORUM", "ALL")
EXECUTED_LEVELS = ("ONE", "QUORUM", "ALL", "TWO")

# Each query, the table that answers it, and why its keys are what they are.
DESIGN = [
    (
        "Q1 messages of a conversation, newest first",
        "messages_by_conversation",
        "conversation_id",
        "sent_at DESC, message_id DESC",
        "one conversation is one partition; stored newest first, so 'the latest 20' is the first 20 rows",
    ),
    (
        "Q2 conversations of a user by last activity",
        "conversations_by_user",
        "user_id",
        "last_activity DESC, conversation_id",
        "the inbox order is the storage order; a new message moves the row (clustering columns are not updatable)",
    ),
    (
        "Q3 readings of a sensor for a day",
        "readings_by_sensor_day",
        "(sensor_id, day)",
        "ts ASC",
        "the day is in every query, so it bounds the partition: 1,440 rows however long the sensor lives",
    ),
    (
        "(anti-pattern) all readings of a sensor",
        "readings_by_sensor",
        "sensor_id",
        "ts ASC",
        "one partition per sensor that grows by 1,440 rows a day, forever",
    ),
]

TABLES = [
    """CREATE TABLE messages_by_conversation (
        conversation_id int, sent_at timestamp, message_id int, sender_id int, body text,
        PRIMARY KEY ((conversation_id), sent_at, message_id)
    ) WITH CLUSTERING ORDER BY (sent_at DESC, message_id DESC)""",
    """CREATE TABLE conversations_by_user (
        user_id int, last_activity timestamp, conversation_id int, other_user int, last_message text,
        PRIMARY KEY ((user_id), last_activity, conversation_id)
    ) WITH CLUSTERING ORDER BY (last_activity DESC, conversation_id ASC)""",
    """CREATE TABLE readings_by_sensor_day (
        sensor_id int, day date, ts timestamp, temperature double, humidity double,
        PRIMARY KEY ((sensor_id, day), ts)
    )""",
    """CREATE TABLE readings_by_sensor (
        sensor_id int, ts timestamp, temperature double, humidity double,
        PRIMARY KEY ((sensor_id), ts)
    )""",
    "CREATE TABLE presence (user_id int PRIMARY KEY, status text)",
    "CREATE TABLE read_receipts (message_id int, user_id int, read_at timestamp, PRIMARY KEY ((message_id), user_id))",
    "CREATE TABLE wallets (wallet_id text PRIMARY KEY, balance int)",
]

CQL = {
    "insert_message": "INSERT INTO messages_by_conversation (conversation_id, sent_at, message_id, sender_id, body)"
    " VALUES (?, ?, ?, ?, ?)",
    "insert_inbox": "INSERT INTO conversations_by_user (user_id, last_activity, conversation_id, other_user,"
    " last_message) VALUES (?, ?, ?, ?, ?)",
    "delete_inbox": "DELETE FROM conversations_by_user WHERE user_id = ? AND last_activity = ? AND conversation_id = ?",
    "insert_day": "INSERT INTO readings_by_sensor_day (sensor_id, day, ts, temperature, humidity) VALUES (?, ?, ?, ?, ?)",
    "insert_sensor": "INSERT INTO readings_by_sensor (sensor_id, ts, temperature, humidity) VALUES (?, ?, ?, ?)",
    "q1": "SELECT sent_at, message_id, sender_id, body FROM messages_by_conversation WHERE conversation_id = ? LIMIT ?",
    "q2": "SELECT last_activity, conversation_id, other_user FROM conversations_by_user WHERE user_id = ?",
    "q3": "SELECT ts, temperature FROM readings_by_sensor_day WHERE sensor_id = ? AND day = ?",
    "hot_in_partition": "SELECT ts, temperature FROM readings_by_sensor_day"
    " WHERE sensor_id = ? AND day = ? AND temperature > ? ALLOW FILTERING",
    "insert_presence_ttl": "INSERT INTO presence (user_id, status) VALUES (?, ?) USING TTL ?",
    "presence": "SELECT status, TTL(status) AS ttl FROM presence WHERE user_id = ?",
    "insert_receipt": "INSERT INTO read_receipts (message_id, user_id, read_at) VALUES (?, ?, ?)",
    "receipt": "SELECT read_at FROM read_receipts WHERE message_id = ? AND user_id = ?",
    "open_wallet": "INSERT INTO wallets (wallet_id, balance) VALUES (?, ?)",
    "open_wallet_once": "INSERT INTO wallets (wallet_id, balance) VALUES (?, ?) IF NOT EXISTS",
    "balance": "SELECT balance FROM wallets WHERE wallet_id = ?",
    "set_balance": "UPDATE wallets SET balance = ? WHERE wallet_id = ?",
    "set_balance_if": "UPDATE wallets SET balance = ? WHERE wallet_id = ? IF balance = ?",
}
# Unprepared on purpose: the first is refused, the second is the scan it asks for, the third is
# the simple statement whose text the server parses on every execution.
HOT_EVERYWHERE = "SELECT sensor_id, ts, temperature FROM readings_by_sensor_day WHERE temperature > %s"
HOT_EVERYWHERE_FILTERING = HOT_EVERYWHERE + " ALLOW FILTERING"
SIMPLE_RECEIPT = "INSERT INTO read_receipts (message_id, user_id, read_at) VALUES (%s, %s, %s)"
ROWS_PER_DAY_PARTITION = (
    "SELECT sensor_id, day, COUNT(*) AS n FROM readings_by_sensor_day GROUP BY sensor_id, day"
)
ROWS_PER_SENSOR_PARTITION = "SELECT sensor_id, COUNT(*) AS n FROM readings_by_sensor GROUP BY sensor_id"
COUNT_ROWS = {
    "messages_by_conversation": "SELECT COUNT(*) FROM messages_by_conversation",
    "conversations_by_user": "SELECT COUNT(*) FROM conversations_by_user",
    "readings_by_sensor_day": "SELECT COUNT(*) FROM readings_by_sensor_day",
}
READ_LIVE_ROWS = re.compile(r"Read (\d+) live rows")


@dataclass
class Data:
    conversations: dict[int, tuple[int, int]]  # id -> (user, user)
    messages: list[tuple]  # (conversation_id, sent_at, message_id, sender_id, body)
    readings: list[tuple]  # (sensor_id, day, ts, temperature, humidity)


@dataclass
class QueryFacts:
    q1_newest_first: bool
    q2_by_last_activity: bool
    q3_rows: int
    messages: int
    inbox_rows: int
    readings_per_table: int


@dataclass
class BatchFacts:
    batch_type: str
    statements: int
    tables: int
    partitions: int
    position_before: int  # where the conversation was in the user's list
    position_after_user: int
    position_after_other: int
    inbox_rows_before: int
    inbox_rows_after: int
    newest_message_is_the_new_one: bool


@dataclass
class PartitionFacts:
    rows_per_day_partition: list[int]
    rows_per_sensor_partition: list[int]
    payload_bytes_per_row: int
    days_to_row_limit: int  # for one partition per sensor
    days_to_byte_limit: int


@dataclass
class FilteringFacts:
    refused_without_filtering: bool
    refusal: str
    scan_rows_read: int
    scan_rows_returned: int
    partition_rows_read: int
    partition_rows_returned: int
    table_rows: int


@dataclass
class TtlFacts:
    present_right_after: bool
    ttl_right_after: int | None = field(compare=False)  # TTL_S, or one less once a second ticked
    gone: bool
    seconds_to_vanish: float = field(compare=False)


@dataclass
class PreparedFacts:
    parse_events_simple: int  # "Parsing ..." and "Preparing statement" in the trace of one insert
    parse_events_prepared: int
    inserts_each_way: int
    simple_s: float = field(compare=False)
    prepared_s: float = field(compare=False)


@dataclass
class ConsistencyFacts:
    replicas_needed: dict[str, tuple[int, int]]  # level -> (RF 1, RF 3)
    outcomes: dict[str, str]  # level -> "ok" or the error, for a write and a read on this node
    two_required: int
    two_alive: int


@dataclass
class LwtFacts:
    first_insert_applied: bool
    second_insert_applied: bool
    second_insert_saw_balance: int
    expected_balance: int
    plain_final: int
    plain_lost_updates: int  # rounds in which one client's deposit vanished
    lwt_final: int
    lwt_lost_updates: int
    lwt_retries: int  # writes refused with [applied] False, then retried on the value returned


@dataclass
class ModelingResult:
    queries: QueryFacts
    batch: BatchFacts
    partitions: PartitionFacts
    filtering: FilteringFacts
    ttl: TtlFacts
    prepared: PreparedFacts
    consistency: ConsistencyFacts
    lwt: LwtFacts


def generate(seed: int = SEED) -> Data:
    """Conversations between two users, messages in time order, a reading a minute per sensor."""
    rng = random.Random(seed)
    conversations = {c: tuple(rng.sample(range(1, N_USERS + 1), 2)) for c in range(1, N_CONVERSATIONS + 1)}
    # The first N_CONVERSATIONS messages open every conversation once; the rest land anywhere.
    order = rng.sample(list(conversations), N_CONVERSATIONS)
    order += [rng.choice(list(conversations)) for _ in range(N_MESSAGES - N_CONVERSATIONS)]
    sent_at, messages = CHAT_START, []
    for message_id, conversation_id in enumerate(order, start=1):
        sent_at += timedelta(seconds=rng.randint(5, 600))
        sender = rng.choice(conversations[conversation_id])
        messages.append((conversation_id, sent_at, message_id, sender, f"message {message_id}"))
    readings = []
    for sensor_id in range(1, N_SENSORS + 1):
        for day_offset in range(N_DAYS):
            day = FIRST_DAY + timedelta(days=day_offset)
            midnight = datetime(day.year, day.month, day.day)
            for minute in range(READINGS_PER_DAY):
                ts = midnight + timedelta(minutes=minute)
                readings.append(
                    (sensor_id, day, ts, round(rng.gauss(21.0, 2.5), 2), round(rng.uniform(30, 60), 1))
                )
    return Data(conversations, messages, readings)


def inbox_rows(data: Data) -> list[tuple]:
    """conversations_by_user: each conversation once per participant, at its last message."""
    last = {}
    for conversation_id, sent_at, _, _, body in data.messages:
        last[conversation_id] = (sent_at, body)
    rows = []
    for conversation_id, (first, second) in data.conversations.items():
        sent_at, body = last[conversation_id]
        rows.append((first, sent_at, conversation_id, second, body))
        rows.append((second, sent_at, conversation_id, first, body))
    return rows


def reset_keyspace(session: Session) -> dict[str, PreparedStatement]:
    session.execute("DROP KEYSPACE IF EXISTS cassandra_query_first_modeling", timeout=DDL_TIMEOUT_S)
    session.execute(
        "CREATE KEYSPACE cassandra_query_first_modeling"
        " WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}",
        timeout=DDL_TIMEOUT_S,
    )
    session.set_keyspace(KEYSPACE)
    for statement in TABLES:
        session.execute(statement, timeout=DDL_TIMEOUT_S)
    return {name: session.prepare(text) for name, text in CQL.items()}


@dataclass
class Loaded:
    rows: int
    rows_s: float
    readings: int
    batches: int
    readings_s: float


def load(session: Session, stmts: dict[str, PreparedStatement], data: Data) -> Loaded:
    """Messages and inbox rows one INSERT each, concurrently; readings in batches of one partition each."""
    inbox = inbox_rows(data)
    with timer() as rows_took:
        acknowledged = execute_concurrent_with_args(
            session, stmts["insert_message"], data.messages, concurrency=64
        )
        acknowledged += execute_concurrent_with_args(session, stmts["insert_inbox"], inbox, concurrency=64)
    by_day = [stmts["insert_day"].bind(row) for row in data.readings]
    by_sensor = [stmts["insert_sensor"].bind((s, ts, t, h)) for s, _, ts, t, h in data.readings]
    batches = []
    for bound in (by_day, by_sensor):
        # Rows arrive grouped by sensor and day, so each slice holds one partition of either table.
        for start in range(0, len(bound), ROWS_PER_LOAD_BATCH):
            batch = BatchStatement(batch_type=BatchType.UNLOGGED)
            for statement in bound[start : start + ROWS_PER_LOAD_BATCH]:
                batch.add(statement)
            batches.append((batch, ()))
    with timer() as readings_took:
        applied = execute_concurrent(session, batches, concurrency=16, raise_on_first_error=True)
    # What the server acknowledged: one (success, result) per statement, and the rows of each batch applied.
    return Loaded(
        sum(success for success, _ in acknowledged),
        rows_took.seconds,
        sum(len(batch) for (batch, _), (success, _) in zip(batches, applied, strict=True) if success),
        sum(success for success, _ in applied),
        readings_took.seconds,
    )


def answer_queries(session: Session, stmts: dict[str, PreparedStatement], data: Data) -> QueryFacts:
    conversation_id = data.messages[-1][0]
    newest = list(session.execute(stmts["q1"], (conversation_id, 3)))
    console.table(
        ["Q1: sent_at", "message", "sender", "body"],
        [(m.sent_at, m.message_id, m.sender_id, m.body) for m in newest],
        caption=f"conversation {conversation_id}, LIMIT 3",
    )
    user = data.conversations[conversation_id][0]
    inbox = list(session.execute(stmts["q2"], (user,)))
    console.table(
        ["Q2: last_activity", "conversation", "with user"],
        [(row.last_activity, row.conversation_id, row.other_user) for row in inbox[:3]],
        caption=f"user {user}: {len(inbox)} conversations, first 3",
    )
    day_rows = list(session.execute(stmts["q3"], (1, FIRST_DAY)))
    console.say(f"Q3: sensor 1 on {FIRST_DAY}: {len(day_rows):,} readings, from one partition, in ts order")
    facts = QueryFacts(
        q1_newest_first=[m.sent_at for m in newest] == sorted((m.sent_at for m in newest), reverse=True),
        q2_by_last_activity=[r.last_activity for r in inbox]
        == sorted((r.last_activity for r in inbox), reverse=True),
        q3_rows=len(day_rows),
        messages=count_rows(session, "messages_by_conversation"),
        inbox_rows=count_rows(session, "conversations_by_user"),
        readings_per_table=count_rows(session, "readings_by_sensor_day"),
    )
    console.say(
        f"rows counted in each table: {facts.messages:,} messages, {facts.inbox_rows:,} inbox rows (one per "
        f"participant), {facts.readings_per_table:,} readings in each readings table"
    )
    return facts


def count_rows(session: Session, table: str) -> int:
    """SELECT COUNT(*) over the whole table: fine for a few thousand rows, a full scan on a real cluster."""
    return session.execute(COUNT_ROWS[table], timeout=DDL_TIMEOUT_S).one().count


def send_message(session: Session, stmts: dict[str, PreparedStatement], data: Data) -> BatchFacts:
    """A new message in a user's least recent conversation: both tables in one LOGGED BATCH."""
    user = data.messages[0][3]
    inbox = list(session.execute(stmts["q2"], (user,)))
    oldest = inbox[-1]
    conversation_id, other = oldest.conversation_id, oldest.other_user
    sent_at = data.messages[-1][1] + timedelta(minutes=1)
    message = (conversation_id, sent_at, N_MESSAGES + 1, user, "a new message")

    statements = [stmts["insert_message"].bind(message)]
    for owner, peer in ((user, other), (other, user)):
        # Clustering columns cannot be updated: the old inbox row is deleted and a new one inserted.
        statements.append(stmts["delete_inbox"].bind((owner, oldest.last_activity, conversation_id)))
        statements.append(stmts["insert_inbox"].bind((owner, sent_at, conversation_id, peer, message[4])))
    batch = BatchStatement(batch_type=BatchType.LOGGED)
    for statement in statements:
        batch.add(statement)
    session.execute(batch)
    # Read off the statements sent: each knows its table and the partition key the driver routes by.
    tables = {statement.prepared_statement.column_metadata[0].table_name for statement in statements}
    partitions = {(statement.prepared_statement.column_metadata[0].table_name, statement.routing_key)
                  for statement in statements}  # fmt: skip

    after_user = [row.conversation_id for row in session.execute(stmts["q2"], (user,))]
    after_other = [row.conversation_id for row in session.execute(stmts["q2"], (other,))]
    newest = session.execute(stmts["q1"], (conversation_id, 1)).one()
    facts = BatchFacts(
        batch_type=batch.batch_type.name,
        statements=len(batch),
        tables=len(tables),
        partitions=len(partitions),  # the conversation, and the inbox of each participant
        position_before=len(inbox) - 1,
        position_after_user=after_user.index(conversation_id),
        position_after_other=after_other.index(conversation_id),
        inbox_rows_before=len(inbox),
        inbox_rows_after=len(after_user),
        newest_message_is_the_new_one=newest.message_id == N_MESSAGES + 1,
    )
    console.say(
        f"{facts.batch_type} batch: {facts.statements} statements, {facts.tables} tables, {facts.partitions} partitions"
    )
    console.table(
        ["after the batch", "value"],
        [
            (f"conversation {conversation_id} in user {user}'s list", f"position {facts.position_before} -> "
                                                                      f"{facts.position_after_user}"),
            (f"conversation {conversation_id} in user {other}'s list", f"position {facts.position_after_other}"),
            (f"user {user}'s conversations", f"{facts.inbox_rows_before} -> {facts.inbox_rows_after}"),
            ("Q1's newest message is the new one", facts.newest_message_is_the_new_one),
        ],
    )  # fmt: skip
    return facts


def measure_partitions(session: Session, stmts: dict[str, PreparedStatement], data: Data) -> PartitionFacts:
    per_day = sorted(row.n for row in session.execute(ROWS_PER_DAY_PARTITION))
    per_sensor = sorted(row.n for row in session.execute(ROWS_PER_SENSOR_PARTITION))
    # What a row stores beyond its partition key, as the driver encodes it for the server.
    bound = stmts["insert_day"].bind(data.readings[0])
    key = set(stmts["insert_day"].routing_key_indexes)
    payload = sum(len(value) for i, value in enumerate(bound.values) if i not in key)
    rows_a_day = per_sensor[-1] // N_DAYS
    facts = PartitionFacts(
        rows_per_day_partition=per_day,
        rows_per_sensor_partition=per_sensor,
        payload_bytes_per_row=payload,
        days_to_row_limit=-(-MAX_PARTITION_ROWS // rows_a_day),
        days_to_byte_limit=-(-MAX_PARTITION_BYTES // (rows_a_day * payload)),
    )
    console.table(
        ["table", "partitions", "rows each", "payload each"],
        [
            ("readings_by_sensor_day", len(per_day), per_day[-1], console.size(per_day[-1] * payload)),
            ("readings_by_sensor", len(per_sensor), per_sensor[-1], console.size(per_sensor[-1] * payload)),
        ],
        caption=f"after {N_DAYS} days of one reading a minute from {N_SENSORS} sensors",
    )
    console.say(
        f"payload: {payload} bytes a row (ts, temperature, humidity as the driver encodes them; on disk add "
        "per-row and per-cell overhead, minus compression). system.size_estimates counts only flushed SSTables "
        "and refreshes every few minutes, so the size is computed from the rows here."
    )
    console.say(
        f"Rule of thumb: keep a partition under ~100 MB and ~100k rows. After a year a day bucket still holds "
        f"{per_day[-1]:,} rows; one partition per sensor holds {rows_a_day * 365:,} rows "
        f"({console.size(rows_a_day * 365 * payload)} of payload): past 100k rows after "
        f"{facts.days_to_row_limit} days, past 100 MB after {facts.days_to_byte_limit:,}."
    )
    return facts


def rows_read(result: ResultSet) -> int:
    """Rows the replicas read for a traced query: the sum of its "Read N live rows" trace events."""
    trace = result.get_query_trace(max_wait_sec=30)
    seen, unchanged = None, 0
    for _ in range(40):  # events are written asynchronously: read them until three reads agree
        counts = [int(m.group(1)) for e in trace.events if (m := READ_LIVE_ROWS.search(e.description))]
        unchanged = unchanged + 1 if counts and counts == seen else 0
        if unchanged == 2:
            return sum(counts)
        seen = counts
        time.sleep(0.1)
        trace.populate(max_wait=30)
    return sum(seen or [])


def filtering(session: Session, stmts: dict[str, PreparedStatement], data: Data) -> FilteringFacts:
    try:
        session.execute(HOT_EVERYWHERE, (HOT_C,))
        refused, refusal = False, ""
    except InvalidRequest as error:
        refused, refusal = True, str(error).split('message="')[-1].split(" and thus")[0]
    console.say(f"without the partition key: InvalidRequest: {refusal}")

    scan = session.execute(HOT_EVERYWHERE_FILTERING, (HOT_C,), trace=True)
    scan_returned = len(list(scan))
    scan_read = rows_read(scan)
    one_day = session.execute(stmts["hot_in_partition"], (1, FIRST_DAY, HOT_C), trace=True)
    day_returned = len(list(one_day))
    day_read = rows_read(one_day)
    console.table(
        [f"query (temperature > {HOT_C})", "rows read", "rows returned"],
        [
            ("no partition key, ALLOW FILTERING: every partition", scan_read, scan_returned),
            ("sensor_id and day given, ALLOW FILTERING inside it", day_read, day_returned),
        ],
        caption="rows read: the 'Read N live rows' events of the query trace",
    )
    console.say(
        "The scan reads the whole table to return a handful of rows, and the cost grows with the table, not "
        "with the answer. Filtering inside one known partition is fine; across partitions, model a table for it."
    )
    return FilteringFacts(
        refused, refusal, scan_read, scan_returned, day_read, day_returned, len(data.readings)
    )


def expire(session: Session, stmts: dict[str, PreparedStatement]) -> TtlFacts:
    """USING TTL 2 on a presence flag, then poll until the row is gone."""
    user = 1
    # Expiry counts whole seconds: a row written with TTL 2 at 12:00:00.9 is gone at 12:00:02.0. Start
    # just after a second boundary (of this clock, the server's when both run on one machine), so the
    # row lives about two seconds, and a busy machine's slow first read still finds it.
    time.sleep(1 - time.time() % 1)
    session.execute(stmts["insert_presence_ttl"], (user, "online", TTL_S))
    started = time.perf_counter()
    first = session.execute(stmts["presence"], (user,)).one()
    row = first
    while row is not None and time.perf_counter() - started < POLL_LIMIT_S:
        time.sleep(POLL_S)
        row = session.execute(stmts["presence"], (user,)).one()
    facts = TtlFacts(
        first is not None, first.ttl if first else None, row is None, time.perf_counter() - started
    )
    console.table(
        ["", "value"],
        [
            ("right after the insert", f"status={first.status!r}, TTL(status)={first.ttl}" if first else "gone"),
            ("polled every 100 ms", f"gone after {console.seconds(facts.seconds_to_vanish)}" if facts.gone
             else "still there"),
        ],
    )  # fmt: skip
    console.say(
        f"The server counts a TTL in whole seconds of its clock, so TTL {TTL_S} ends at a second boundary, "
        "up to a second short of it after the write: the write here starts just after one. The expired cell "
        "stays as a tombstone until compaction drops it after gc_grace_seconds."
    )
    return facts


def parse_events(result: ResultSet) -> int:
    trace = result.get_query_trace(max_wait_sec=10)
    return sum(e.description.startswith(("Parsing", "Preparing statement")) for e in trace.events)


def prepared_vs_simple(session: Session, stmts: dict[str, PreparedStatement]) -> PreparedFacts:
    read_at = CHAT_START
    rows = [(message_id, 1, read_at) for message_id in range(1, N_TIMED + 1)]

    def simple_inserts():
        """simple statements (text parsed by the server every time)"""
        for row in rows:
            session.execute(SIMPLE_RECEIPT, row)

    def prepared_inserts():
        """prepared statement (parsed once, executed by id)"""
        for row in rows:
            session.execute(stmts["insert_receipt"], row)

    simple_s = best_of(simple_inserts)
    prepared_s = best_of(prepared_inserts)
    simple_parse = parse_events(session.execute(SIMPLE_RECEIPT, (0, 1, read_at), trace=True))
    prepared_parse = parse_events(session.execute(stmts["insert_receipt"], (0, 2, read_at), trace=True))
    console.table(
        ["one insert's trace", "parse/prepare events"],
        [("simple statement", simple_parse), ("prepared statement", prepared_parse)],
    )
    console.compare(f"{N_TIMED} simple inserts", simple_s, f"{N_TIMED} prepared inserts", prepared_s)
    console.say(
        "Parsing a short INSERT costs little next to a round trip, so the time saved is small and varies with "
        "the machine's load; the trace does not vary: the prepared statement is never parsed again. Prepared "
        "statements also let the driver send each row to a replica that owns it (it knows the partition key)."
    )
    return PreparedFacts(simple_parse, prepared_parse, N_TIMED, simple_s, prepared_s)


def replicas_needed(level: str, rf: int) -> int:
    return {"ONE": 1, "TWO": 2, "QUORUM": rf // 2 + 1, "ALL": rf}[level]


def unavailable_in(error: Exception) -> Unavailable | None:
    """The driver retries an Unavailable on the next host; with one host it reports NoHostAvailable."""
    if isinstance(error, Unavailable):
        return error
    if isinstance(error, NoHostAvailable):
        return next((e for e in error.errors.values() if isinstance(e, Unavailable)), None)
    return None


def consistency(session: Session, stmts: dict[str, PreparedStatement]) -> ConsistencyFacts:
    needed = {level: (replicas_needed(level, 1), replicas_needed(level, 3)) for level in LEVELS}
    console.table(
        ["level", "replicas needed, RF 1", "RF 3", "replicas that may be down, RF 3"],
        [
            (level, f"{one} (cannot)" if one > 1 else one, three, 3 - three)
            for level, (one, three) in needed.items()
        ],
        caption="QUORUM writes + QUORUM reads at RF 3: 2 + 2 > 3, so every read meets the latest write",
    )
    outcomes, two = {}, (0, 0)
    for name in EXECUTED_LEVELS:
        level = getattr(ConsistencyLevel, name)
        write = stmts["insert_receipt"].bind((N_TIMED + 1, 1, CHAT_START))
        read = stmts["receipt"].bind((N_TIMED + 1, 1))
        write.consistency_level = read.consistency_level = level
        try:
            session.execute(write)
            found = session.execute(read).one() is not None
            outcomes[name] = "ok" if found else "ok, but no row"
        except (Unavailable, NoHostAvailable) as error:
            missing = unavailable_in(error)
            if missing is None:
                raise
            two = (missing.required_replicas, missing.alive_replicas)
            outcomes[name] = (
                f"Unavailable: {missing.required_replicas} replicas required, {missing.alive_replicas} alive"
            )
    console.table(["level on this node (RF 1)", "write, then read"], outcomes.items())
    return ConsistencyFacts(needed, outcomes, *two)


def balance(session: Session, stmts: dict[str, PreparedStatement], wallet: str) -> int:
    return session.execute(stmts["balance"], (wallet,)).one().balance


def plain_race(session: Session, stmts: dict[str, PreparedStatement]) -> int:
    """Two clients deposit: read, read, write, write. The second write overwrites the first."""
    session.execute(stmts["open_wallet"], ("plain", OPENING_BALANCE))
    lost = 0
    for _ in range(ROUNDS):
        seen_by_a = balance(session, stmts, "plain")
        seen_by_b = balance(session, stmts, "plain")
        session.execute(stmts["set_balance"], (seen_by_a + DEPOSIT_A, "plain"))
        session.execute(stmts["set_balance"], (seen_by_b + DEPOSIT_B, "plain"))
        lost += balance(session, stmts, "plain") != seen_by_a + DEPOSIT_A + DEPOSIT_B
    return lost


def lwt_race(session: Session, stmts: dict[str, PreparedStatement]) -> tuple[int, int]:
    """The same interleaving with UPDATE ... IF balance = ?: the stale write is refused and retried."""
    lost = retries = 0
    for _ in range(ROUNDS):
        seen_by_a = balance(session, stmts, "lwt")
        seen_by_b = balance(session, stmts, "lwt")
        for seen, deposit in ((seen_by_a, DEPOSIT_A), (seen_by_b, DEPOSIT_B)):
            outcome = session.execute(stmts["set_balance_if"], (seen + deposit, "lwt", seen))
            while not outcome.was_applied:  # [applied] False comes with the balance it found
                current = outcome.one().balance
                retries += 1
                outcome = session.execute(stmts["set_balance_if"], (current + deposit, "lwt", current))
        lost += balance(session, stmts, "lwt") != seen_by_a + DEPOSIT_A + DEPOSIT_B
    return lost, retries


def lightweight_transactions(session: Session, stmts: dict[str, PreparedStatement]) -> LwtFacts:
    first = session.execute(stmts["open_wallet_once"], ("lwt", OPENING_BALANCE))
    second = session.execute(stmts["open_wallet_once"], ("lwt", 0))
    console.say(
        f"INSERT ... IF NOT EXISTS: first \\[applied] {first.was_applied}; "
        f"second \\[applied] {second.was_applied}, returning the row that is there (balance {second.one().balance})"
    )
    expected = OPENING_BALANCE + ROUNDS * (DEPOSIT_A + DEPOSIT_B)
    plain_lost = plain_race(session, stmts)
    lwt_lost, retries = lwt_race(session, stmts)
    facts = LwtFacts(
        first_insert_applied=first.was_applied,
        second_insert_applied=second.was_applied,
        second_insert_saw_balance=second.one().balance,
        expected_balance=expected,
        plain_final=balance(session, stmts, "plain"),
        plain_lost_updates=plain_lost,
        lwt_final=balance(session, stmts, "lwt"),
        lwt_lost_updates=lwt_lost,
        lwt_retries=retries,
    )
    console.table(
        ["writes", "expected", "final", "lost updates", "retries"],
        [
            ("plain UPDATE", expected, facts.plain_final, facts.plain_lost_updates, "-"),
            ("UPDATE ... IF balance = ?", expected, facts.lwt_final, facts.lwt_lost_updates, retries),
        ],
        caption=f"balance after {ROUNDS} rounds of: A reads, B reads, "
        f"A writes +{DEPOSIT_A}, B writes +{DEPOSIT_B}",
    )
    console.say(
        f"With IF balance = ?, B's write finds the balance A just wrote: \\[applied] False, with that balance "
        f"returned; B adds its deposit to it and writes again ({retries} retries in {ROUNDS} rounds)."
    )
    console.say(
        "An LWT is a Paxos round (about four round trips): use it where a lost update costs, not everywhere."
    )
    return facts


def run(session: Session) -> ModelingResult:
    console.title("Cassandra query-first modeling")

    console.step("List the queries, then design one table for each")
    for query, table, partition_key, clustering, why in DESIGN:
        console.say(f"{query}  ->  {table}")
        console.say(f"   partition key {partition_key}; clustering {clustering}")
        console.say(f"   {why}")
    stmts = reset_keyspace(session)

    console.step("Load the data: every fact written to each table that answers a query about it")
    data = generate()
    loaded = load(session, stmts, data)
    console.table(
        ["what", "how", "rows", "took"],
        [
            ("messages, inbox rows", "one INSERT each, 64 in flight", loaded.rows, console.seconds(loaded.rows_s)),
            ("readings, both tables", f"{loaded.batches} unlogged batches of {ROWS_PER_LOAD_BATCH} rows",
             loaded.readings, console.seconds(loaded.readings_s)),
        ],
    )  # fmt: skip
    console.say(
        "A batch whose rows share one partition is one mutation for the server: the way to load a partition. "
        "A batch across partitions is not a bulk load: the coordinator must fan it out."
    )

    console.step("Answer each query from its own table: one partition, already in order")
    queries = answer_queries(session, stmts, data)

    console.step("Send a message: the message and both inboxes in one LOGGED BATCH")
    console.say(
        "A logged batch is written to the batchlog first: once accepted, all of its writes apply (replayed if a "
        "node fails), though a reader may briefly see one table updated before the other. It is not faster."
    )
    batch = send_message(session, stmts, data)

    console.step("Partition size: a bucket per sensor and day against one partition per sensor")
    partitions = measure_partitions(session, stmts, data)

    console.step("Why ALLOW FILTERING is a smell: rows read against rows returned")
    filtered = filtering(session, stmts, data)

    console.step(f"TTL: a presence flag written USING TTL {TTL_S} disappears by itself")
    ttl = expire(session, stmts)

    console.step("Prepared against simple statements")
    prepared = prepared_vs_simple(session, stmts)

    console.step("Consistency levels: how many replicas must answer")
    levels = consistency(session, stmts)

    console.step("Lightweight transactions against racing read-then-write")
    lwt = lightweight_transactions(session, stmts)

    return ModelingResult(queries, batch, partitions, filtered, ttl, prepared, levels, lwt)


def main() -> int:
    require(*REQUIRES)
    contact_points, port = cassandra_contact_points()
    cluster = Cluster(contact_points, port=port)
    try:
        result = run(cluster.connect())
    finally:
        cluster.shutdown()
    return 0 if result.lwt.plain_lost_updates > 0 and result.lwt.lwt_lost_updates == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())

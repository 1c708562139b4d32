"""TimescaleDB: a hypertable, time_bucket, a continuous aggregate and native compression

TimescaleDB turns a PostgreSQL table into a hypertable: one table name over chunks that it creates
by time as rows arrive, so nobody writes partition DDL. This lesson loads two weeks of readings from
12 sensors (a daily cycle, noise, lost readings and one sensor offline for hours) into a hypertable
with one-day chunks, shows a one-day query touching one chunk, buckets with time_bucket() (the same
answer as PostgreSQL's date_bin()), keeps hourly means in a continuous aggregate (empty until
refreshed, and behind new rows until refreshed again, since real-time aggregation is off by default
since 2.13), then compresses the older chunks into columnar form and compares their size before and
after with hypertable_compression_stats() and chunk_compression_stats(), checking that queries
give the same answers from compressed chunks.

Engine: TimescaleDB 2.17 (TIMESCALE_URL, the compose image timescale/timescaledb:2.17.2-pg17), schema
`timescaledb_hypertables`. There is no local stand-in: without Docker the suite skips it.
Run: `make up SERVICES=timescaledb`, then `python timeseries/timescaledb_hypertables.py`.
Look for: 14 chunks, "chunks read: 1", the aggregate's row counts before and after each refresh, and
the compression ratio of the older chunks.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import psycopg
from psycopg import sql

from common import console
from common.settings import CONNECT_TIMEOUT_S, require, timescale_url
from common.timing import best_of, timer

REQUIRES = ("timescaledb",)
SCHEMA = "timescaledb_hypertables"
AGGREGATE = "readings_hourly"
SEED = 37
UTC = timezone.utc
START = datetime(2024, 9, 2, tzinfo=UTC)
DAYS = 14
N_SENSORS = 12
LOST_SHARE = 0.005
OFFLINE_SENSOR = 5
OFFLINE_FROM, OFFLINE_UNTIL = START + timedelta(days=4, hours=13), START + timedelta(days=4, hours=16)
LATE_HOURS = 6  # arrive after the first refresh of the continuous aggregate
UNCOMPRESSED_DAYS = 2  # the newest chunks stay row-shaped for fast inserts and updates
QUERY_DAY = START + timedelta(days=3)

READINGS_TABLE = """
CREATE TABLE readings (
    ts timestamptz NOT NULL,
    sensor_id integer NOT NULL,
    value double precision NOT NULL
)
"""
# The generalized API (2.13+): the dimension is built by by_range(). One chunk per day.
MAKE_HYPERTABLE = "SELECT * FROM create_hypertable('readings', by_range('ts', INTERVAL '1 day'))"
CHUNK_COUNT = "SELECT count(*) FROM show_chunks('readings')"
ROW_COUNT = "SELECT count(*) FROM readings"
DAY_QUERY = (
    "SELECT sensor_id, count(*), avg(value), min(value), max(value) FROM readings"
    " WHERE ts >= %s AND ts < %s GROUP BY sensor_id ORDER BY sensor_id"
)
TIME_BUCKETS = """
SELECT time_bucket('15 minutes', ts) AS bucket, count(*) AS n, avg(value) AS mean
FROM readings WHERE sensor_id = %s AND ts >= %s AND ts < %s
GROUP BY bucket ORDER BY bucket
"""
DATE_BINS = """
SELECT date_bin('15 minutes', ts, TIMESTAMPTZ '2000-01-01 00:00+00') AS bucket, count(*) AS n, avg(value) AS mean
FROM readings WHERE sensor_id = %s AND ts >= %s AND ts < %s
GROUP BY bucket ORDER BY bucket
"""
FIND_AGGREGATE = (
    "SELECT 1 FROM timescaledb_information.continuous_aggregates WHERE view_schema = %s AND view_name = %s"
)
CREATE_AGGREGATE = """
CREATE MATERIALIZED VIEW readings_hourly WITH (timescaledb.continuous) AS
SELECT sensor_id, time_bucket('1 hour', ts) AS bucket,
       count(*) AS n, avg(value) AS mean, min(value) AS low, max(value) AS high
FROM readings
GROUP BY sensor_id, bucket
WITH NO DATA
"""
AGGREGATE_ROWS = "SELECT count(*), max(bucket) FROM readings_hourly"
# refresh_continuous_aggregate is a procedure that commits as it goes: it cannot run inside a
# transaction block, so the lesson's connection is in autocommit mode. NULL means "from the start".
REFRESH_ALL = "CALL refresh_continuous_aggregate('readings_hourly', NULL, NULL)"
REFRESH_WINDOW = "CALL refresh_continuous_aggregate('readings_hourly', %s::timestamptz, %s::timestamptz)"
AGGREGATE_MISMATCHES = """
WITH kept AS (
    SELECT sensor_id, bucket, n, round(mean::numeric, 9) AS mean, low, high FROM readings_hourly
), recomputed AS (
    SELECT sensor_id, time_bucket('1 hour', ts) AS bucket, count(*) AS n, round(avg(value)::numeric, 9) AS mean,
           min(value) AS low, max(value) AS high
    FROM readings GROUP BY 1, 2
)
SELECT count(*) FROM ((TABLE kept EXCEPT TABLE recomputed) UNION ALL (TABLE recomputed EXCEPT TABLE kept)) AS d
"""
ENABLE_COMPRESSION = (
    "ALTER TABLE readings SET (timescaledb.compress, timescaledb.compress_segmentby = 'sensor_id',"
    " timescaledb.compress_orderby = 'ts DESC')"
)
COMPRESS_OLD_CHUNKS = "SELECT compress_chunk(c, if_not_compressed => true) FROM show_chunks('readings', older_than => %s::timestamptz) AS c"
HYPERTABLE_BYTES = "SELECT hypertable_size('readings')"
COMPRESSION_STATS = """
SELECT total_chunks, number_compressed_chunks, before_compression_total_bytes, after_compression_total_bytes
FROM hypertable_compression_stats('readings')
"""
CHUNK_STATS = """
SELECT s.chunk_name, s.compression_status, s.before_compression_total_bytes, s.after_compression_total_bytes
FROM chunk_compression_stats('readings') AS s
JOIN timescaledb_information.chunks AS c ON c.chunk_schema = s.chunk_schema AND c.chunk_name = s.chunk_name
ORDER BY c.range_start
"""
WHOLE_TABLE = "SELECT count(*), sum(value) FROM readings WHERE ts < %s"


@dataclass
class Compression:
    chunks: int
    compressed_chunks: int
    same_answers: bool  # the day query and a whole-range sum, before and after compression
    decompress_in_plan: bool
    # Sizes count every fork of every relation: a visibility map written by autovacuum, or not yet,
    # moves them by a few pages between runs.
    before_bytes: int = field(compare=False)
    after_bytes: int = field(compare=False)
    hypertable_bytes_before: int = field(compare=False)
    hypertable_bytes_after: int = field(compare=False)
    uncompressed_s: float = field(compare=False)
    compressed_s: float = field(compare=False)


@dataclass
class TimescaleResult:
    rows_loaded: int
    late_rows: int
    chunks: int
    chunks_read_for_one_day: int
    time_bucket_equals_date_bin: bool
    buckets_for_offline_day: int
    hourly_groups_in_history: int  # (sensor, hour) pairs with data, counted in Python
    hourly_groups_in_all: int
    aggregate_rows_before_refresh: int
    aggregate_rows_after_refresh: int
    aggregate_rows_after_late_insert: int  # materialized only: the new rows are not in it yet
    aggregate_rows_after_second_refresh: int
    aggregate_mismatches: int
    compression: Compression
    load_s: float = field(compare=False)


def generate_readings(seed: int = SEED) -> list[tuple[datetime, int, float]]:
    """One reading a minute per sensor in time order, each sensor at its own second of the minute."""
    rng = random.Random(seed)
    bases = [15 + 10 * rng.random() for _ in range(N_SENSORS)]
    swings = [1 + 5 * rng.random() for _ in range(N_SENSORS)]
    offsets = [timedelta(seconds=3 * sensor) for sensor in range(N_SENSORS)]
    draw = rng.random
    rows = []
    for minute in range(DAYS * 1440):
        at = START + timedelta(minutes=minute)
        cycle = math.sin(2 * math.pi * ((minute % 1440) / 1440 - 0.375))
        offline = OFFLINE_FROM <= at < OFFLINE_UNTIL
        for sensor in range(N_SENSORS):
            value = bases[sensor] + swings[sensor] * cycle + (draw() - 0.5) * 0.8
            if draw() >= LOST_SHARE and not (offline and sensor == OFFLINE_SENSOR):
                rows.append((at + offsets[sensor], sensor, value))
    return rows


def hourly_groups(rows: list[tuple]) -> int:
    return len({(sensor, at.replace(minute=0, second=0)) for at, sensor, _ in rows})


def reset_schema(conn: psycopg.Connection) -> None:
    """Drop the continuous aggregate first (TimescaleDB removes its materialization with it), then the schema."""
    conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    if conn.execute(FIND_AGGREGATE, (SCHEMA, AGGREGATE)).fetchone():
        conn.execute(
            sql.SQL("DROP MATERIALIZED VIEW {}.{}").format(sql.Identifier(SCHEMA), sql.Identifier(AGGREGATE))
        )
    conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SCHEMA)))
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(SCHEMA)))
    conn.execute(sql.SQL("SET search_path TO {}, public").format(sql.Identifier(SCHEMA)))
    conn.execute("SET TimeZone TO 'UTC'")


def copy_rows(conn: psycopg.Connection, rows: list[tuple]) -> None:
    """Binary COPY into the hypertable: TimescaleDB routes each row to its chunk, creating chunks as needed."""
    with (
        conn.cursor() as cur,
        cur.copy("COPY readings (ts, sensor_id, value) FROM STDIN (FORMAT BINARY)") as copy,
    ):
        copy.set_types(["timestamptz", "int4", "float8"])
        for row in rows:
            copy.write_row(row)


def plan_nodes(node: dict) -> list[dict]:
    return [node, *(child for sub in node.get("Plans", []) for child in plan_nodes(sub))]


def chunks_read(conn: psycopg.Connection, day: datetime) -> tuple[list[str], str]:
    plan = conn.execute(
        sql.SQL("EXPLAIN (FORMAT JSON) ") + sql.SQL(DAY_QUERY), (day, day + timedelta(days=1))
    ).fetchone()[0][0]["Plan"]
    text = "\n".join(
        row[0]
        for row in conn.execute(
            sql.SQL("EXPLAIN (COSTS OFF) ") + sql.SQL(DAY_QUERY), (day, day + timedelta(days=1))
        )
    )
    # Chunks are tables of their own (_timescaledb_internal._hyper_<table>_<n>_chunk); the hypertable
    # itself may also be named by a ChunkAppend node, so only the chunks are counted.
    names = {n["Relation Name"] for n in plan_nodes(plan) if "Relation Name" in n}
    return sorted(name for name in names if name.startswith("_hyper_")), text


def aggregate_rows(conn: psycopg.Connection) -> tuple[int, datetime | None]:
    count, newest = conn.execute(AGGREGATE_ROWS).fetchone()
    return count, newest


def compress(conn: psycopg.Connection, cutoff: datetime) -> Compression:
    day = (QUERY_DAY, QUERY_DAY + timedelta(days=1))
    answer_before = conn.execute(DAY_QUERY, day).fetchall()
    whole_before = conn.execute(WHOLE_TABLE, (cutoff,)).fetchone()
    uncompressed_s = best_of(lambda: conn.execute(WHOLE_TABLE, (cutoff,)).fetchone(), repeat=3)
    bytes_before = conn.execute(HYPERTABLE_BYTES).fetchone()[0]

    conn.execute(ENABLE_COMPRESSION)
    conn.execute(COMPRESS_OLD_CHUNKS, (cutoff,)).fetchall()
    conn.execute("ANALYZE readings")

    answer_after = conn.execute(DAY_QUERY, day).fetchall()
    whole_after = conn.execute(WHOLE_TABLE, (cutoff,)).fetchone()
    compressed_s = best_of(lambda: conn.execute(WHOLE_TABLE, (cutoff,)).fetchone(), repeat=3)
    bytes_after = conn.execute(HYPERTABLE_BYTES).fetchone()[0]
    chunks, compressed, before, after = conn.execute(COMPRESSION_STATS).fetchone()
    plan = "\n".join(
        row[0] for row in conn.execute(sql.SQL("EXPLAIN (COSTS OFF) ") + sql.SQL(DAY_QUERY), day)
    )
    same = (
        len(answer_before) == len(answer_after)
        and all(
            b[:2] == a[:2] and math.isclose(b[2], a[2], rel_tol=1e-12) and b[3:] == a[3:]
            for b, a in zip(answer_before, answer_after, strict=True)
        )
        and whole_before[0] == whole_after[0]
        and math.isclose(whole_before[1], whole_after[1], rel_tol=1e-12)
    )
    return Compression(
        chunks=chunks,
        compressed_chunks=compressed,
        same_answers=same,
        decompress_in_plan="DecompressChunk" in plan,
        before_bytes=before,
        after_bytes=after,
        hypertable_bytes_before=bytes_before,
        hypertable_bytes_after=bytes_after,
        uncompressed_s=uncompressed_s,
        compressed_s=compressed_s,
    )


def run(conn: psycopg.Connection) -> TimescaleResult:
    """`conn` must be in autocommit mode: refresh_continuous_aggregate refuses a transaction block."""
    console.title("TimescaleDB: hypertable, time_bucket, continuous aggregate, compression")

    console.step("Create a hypertable with one-day chunks and load two weeks of readings")
    reset_schema(conn)
    version = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'").fetchone()[0]
    conn.execute(READINGS_TABLE)
    conn.execute(MAKE_HYPERTABLE)
    rows = generate_readings()
    cutoff = START + timedelta(days=DAYS) - timedelta(hours=LATE_HOURS)
    history = [row for row in rows if row[0] < cutoff]
    late = [row for row in rows if row[0] >= cutoff]
    with timer() as loading:
        copy_rows(conn, history)
    conn.execute("ANALYZE readings")
    loaded = conn.execute(ROW_COUNT).fetchone()[0]
    chunks = conn.execute(CHUNK_COUNT).fetchone()[0]
    console.say(f"TimescaleDB {version}; {MAKE_HYPERTABLE}")
    console.say(
        f"{loaded:,} readings (counted) by COPY in {console.seconds(loading.seconds)}: {chunks} chunks were created"
        f" as the rows arrived; {len(late):,} more arrive in step 4."
    )

    console.step("A one-day query reads one chunk: chunks are excluded like partitions")
    read, plan = chunks_read(conn, QUERY_DAY)
    console.plan(plan)
    console.say(f"chunks read: {len(read)} of {chunks} ({', '.join(read)})")

    console.step("time_bucket(): 15-minute buckets, the same answer as date_bin()")
    day = OFFLINE_FROM.replace(hour=0, minute=0)
    window = (OFFLINE_SENSOR, day, day + timedelta(days=1))
    bucketed = conn.execute(TIME_BUCKETS, window).fetchall()
    binned = conn.execute(DATE_BINS, window).fetchall()
    same_buckets = len(bucketed) == len(binned) and all(
        t[:2] == d[:2] and math.isclose(t[2], d[2], rel_tol=1e-12)
        for t, d in zip(bucketed, binned, strict=True)
    )
    console.table(
        ["bucket", "readings", "mean"], [(f"{b[0]:%H:%M}", b[1], f"{b[2]:.2f}") for b in bucketed[50:56]]
    )
    console.say(
        f"sensor {OFFLINE_SENSOR} on {day:%m-%d}: {len(bucketed)} buckets with data of 96 (offline"
        f" {OFFLINE_FROM:%H:%M}-{OFFLINE_UNTIL:%H:%M}); identical to date_bin(): {same_buckets}"
    )

    console.step("A continuous aggregate of hourly means: materialized by refreshes, not by every insert")
    conn.execute(CREATE_AGGREGATE)
    before_refresh, _ = aggregate_rows(conn)
    with timer() as first_refresh:
        conn.execute(REFRESH_ALL)
    after_refresh, newest = aggregate_rows(conn)
    copy_rows(conn, late)
    late_rows = conn.execute(ROW_COUNT).fetchone()[0] - loaded
    after_late, newest_late = aggregate_rows(conn)
    with timer() as second_refresh:
        conn.execute(REFRESH_WINDOW, (cutoff - timedelta(hours=1), START + timedelta(days=DAYS)))
    after_second, newest_after = aggregate_rows(conn)
    mismatches = conn.execute(AGGREGATE_MISMATCHES).fetchone()[0]
    console.plan(CREATE_AGGREGATE.strip(), max_lines=6)
    console.table(
        ["moment", "rows in readings_hourly", "newest bucket", "refresh took"],
        [
            ("created WITH NO DATA", before_refresh, "-", "-"),
            ("after refresh (all)", after_refresh, f"{newest:%m-%d %H:%M}", console.seconds(first_refresh.seconds)),
            (f"after {late_rows:,} new readings", after_late, f"{newest_late:%m-%d %H:%M}", "-"),
            ("after refresh (last hours)", after_second, f"{newest_after:%m-%d %H:%M}",
             console.seconds(second_refresh.seconds)),
        ],
    )  # fmt: skip
    console.say(
        f"rows differing from the hourly means computed from the raw table: {mismatches}. Real-time aggregation"
        " (timescaledb.materialized_only = false) would add the unmaterialized hours at query time; a"
        " refresh policy (add_continuous_aggregate_policy) runs the refresh on a schedule."
    )

    console.step(f"Compress every chunk but the newest {UNCOMPRESSED_DAYS}: columnar, segmented by sensor")
    compression = compress(conn, START + timedelta(days=DAYS - UNCOMPRESSED_DAYS))
    console.plan(ENABLE_COMPRESSION)
    chunk_rows = conn.execute(CHUNK_STATS).fetchall()
    console.table(
        ["chunk", "status", "before", "after"],
        [
            (name, status, console.size(b) if b else "-", console.size(a) if a else "-")
            for name, status, b, a in chunk_rows[:3]
        ]
        + [
            (name, status, console.size(b) if b else "-", console.size(a) if a else "-")
            for name, status, b, a in chunk_rows[-2:]
        ],
    )
    console.say(
        f"{compression.compressed_chunks} of {compression.chunks} chunks compressed:"
        f" {console.size(compression.before_bytes)} -> {console.size(compression.after_bytes)}"
        f" ({compression.before_bytes / compression.after_bytes:.1f}x smaller); the whole hypertable"
        f" {console.size(compression.hypertable_bytes_before)} -> {console.size(compression.hypertable_bytes_after)}"
    )
    console.say(
        f"count and sum over the compressed days: {console.seconds(compression.uncompressed_s)} before compression,"
        f" {console.seconds(compression.compressed_s)} after (fewer pages to read, more CPU to decompress)"
    )
    console.say(
        f"same answers from the compressed chunks: {compression.same_answers};"
        f" the plan decompresses on the fly (DecompressChunk): {compression.decompress_in_plan}"
    )

    return TimescaleResult(
        rows_loaded=loaded,
        late_rows=late_rows,
        chunks=chunks,
        chunks_read_for_one_day=len(read),
        hourly_groups_in_history=hourly_groups(history),
        hourly_groups_in_all=hourly_groups(rows),
        time_bucket_equals_date_bin=same_buckets,
        buckets_for_offline_day=len(bucketed),
        aggregate_rows_before_refresh=before_refresh,
        aggregate_rows_after_refresh=after_refresh,
        aggregate_rows_after_late_insert=after_late,
        aggregate_rows_after_second_refresh=after_second,
        aggregate_mismatches=mismatches,
        compression=compression,
        load_s=loading.seconds,
    )


def main() -> int:
    require(*REQUIRES)
    with psycopg.connect(timescale_url(), connect_timeout=CONNECT_TIMEOUT_S, autocommit=True) as conn:
        result = run(conn)
    return 0 if result.aggregate_mismatches == 0 and result.compression.same_answers else 1


if __name__ == "__main__":
    raise SystemExit(main())

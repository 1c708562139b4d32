"""Time series in plain PostgreSQL: daily partitions, BRIN, date_bin, gap filling and an incremental rollup

A million sensor readings (24 sensors, one a minute for four weeks, with a daily cycle, noise, lost
readings and one sensor offline for two and a half hours) go into a table partitioned by day, and a
copy into a plain table. A BRIN index on time is measured against a B-tree: its size, and the plan
and speed of a one-hour query, where the planner prunes to one partition and reads it through a
Bitmap Heap Scan on the BRIN index. date_bin() groups readings into 15-minute buckets;
generate_series LEFT JOINed to them shows the buckets with no data and fills them with the last
known value. An hourly summary table is refreshed incrementally: only buckets from a watermark on are
recomputed, the rows each refresh touches are counted, and the result is compared with a full
recomputation. A rolling 24-hour mean is then read from 24 summary rows instead of 1,440 readings.

Engine: PostgreSQL (POSTGRES_URL), schema `postgres_timeseries`.
Run: `make up SERVICES=postgres` (or `make local-up`), then `python timeseries/postgres_timeseries.py`.
Look for: the BRIN index at a small fraction of the B-tree's size, "partitions read: 1", the filled gap
count, and the second refresh touching a few hundred rows instead of sixteen thousand.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import psycopg
from psycopg import sql

from common import console
from common.settings import CONNECT_TIMEOUT_S, postgres_url, require
from common.timing import best_of, timer

REQUIRES = ("postgres",)
SCHEMA = "postgres_timeseries"
SEED = 31
UTC = timezone.utc
START = datetime(2024, 6, 1, tzinfo=UTC)
DAYS = 28
N_SENSORS = 24
LOST_SHARE = 0.005
OFFLINE_SENSOR = 7
OFFLINE_FROM, OFFLINE_UNTIL = (
    START + timedelta(days=11, hours=9),
    START + timedelta(days=11, hours=11, minutes=30),
)
LATE_MINUTES = 390  # the last six and a half hours arrive after the first refresh of the summary
QUERY_FROM = START + timedelta(days=20, hours=6)  # the one-hour range query
BRIN_PAGES_PER_RANGE = 16  # the default 128 pages is most of a day's partition here; see step 2

READINGS_TABLE = """
CREATE TABLE readings (
    sensor_id integer NOT NULL,
    ts timestamptz NOT NULL,
    value double precision NOT NULL
) PARTITION BY RANGE (ts)
"""
PLAIN_TABLE = "CREATE TABLE readings_plain (sensor_id integer NOT NULL, ts timestamptz NOT NULL, value double precision NOT NULL)"
# The partitions are appended in the order of their bounds, so the copy keeps the time order too.
COPY_PLAIN = "INSERT INTO readings_plain SELECT * FROM readings"
BRIN_INDEX = "CREATE INDEX readings_ts_brin ON readings USING brin (ts) WITH (pages_per_range = {})"
BTREE_INDEX = "CREATE INDEX readings_plain_ts_btree ON readings_plain (ts)"
RANGE_QUERY = {
    "readings": "SELECT sensor_id, count(*), avg(value) FROM readings"
    " WHERE ts >= %s AND ts < %s GROUP BY sensor_id ORDER BY sensor_id",
    "readings_plain": "SELECT sensor_id, count(*), avg(value) FROM readings_plain"
    " WHERE ts >= %s AND ts < %s GROUP BY sensor_id ORDER BY sensor_id",
}
# A partitioned table or index has no storage of its own: its size is the sum of its leaves'.
TREE_BYTES = (
    "SELECT coalesce(sum(pg_relation_size(relid)), 0) FROM pg_partition_tree(%s::regclass) WHERE isleaf"
)
RELATION_BYTES = "SELECT pg_relation_size(%s::regclass)"
ACCESS_METHOD = (
    "SELECT am.amname FROM pg_class c JOIN pg_am am ON am.oid = c.relam WHERE c.oid = to_regclass(%s)"
)

BUCKETS_15M = """
SELECT date_bin('15 minutes', ts, TIMESTAMPTZ '2000-01-01 00:00+00') AS bucket, count(*) AS n,
       round(avg(value)::numeric, 2) AS mean, round(min(value)::numeric, 2) AS low, round(max(value)::numeric, 2) AS high
FROM readings
WHERE sensor_id = %s AND ts >= %s AND ts < %s
GROUP BY bucket ORDER BY bucket
"""
# Every 15-minute bucket of the day, LEFT JOINed to the ones that have readings. `run_id` counts the
# non-empty buckets seen so far, so every empty bucket shares it with the last bucket that had data:
# first_value over that group carries the last known mean forward (LOCF).
GAP_FILLED = """
WITH slots AS (
    SELECT generate_series(%(day)s::timestamptz, %(day)s::timestamptz + interval '1 day' - interval '15 minutes',
                           interval '15 minutes') AS bucket
), measured AS (
    SELECT date_bin('15 minutes', ts, TIMESTAMPTZ '2000-01-01 00:00+00') AS bucket, count(*) AS n, avg(value) AS mean
    FROM readings
    WHERE sensor_id = %(sensor)s AND ts >= %(day)s::timestamptz AND ts < %(day)s::timestamptz + interval '1 day'
    GROUP BY 1
), joined AS (
    SELECT s.bucket, m.n, m.mean, count(m.mean) OVER (ORDER BY s.bucket) AS run_id
    FROM slots s LEFT JOIN measured m USING (bucket)
)
SELECT bucket, n, round(mean::numeric, 2) AS mean,
       round((first_value(mean) OVER (PARTITION BY run_id ORDER BY bucket))::numeric, 2) AS carried_forward
FROM joined ORDER BY bucket
"""
SUMMARY_TABLES = [
    """CREATE TABLE hourly (
        sensor_id integer NOT NULL, bucket timestamptz NOT NULL,
        n integer NOT NULL, total double precision NOT NULL, low double precision NOT NULL,
        high double precision NOT NULL,
        PRIMARY KEY (sensor_id, bucket)
    )""",
    "CREATE TABLE refresh_watermark (summary text PRIMARY KEY, upto timestamptz NOT NULL)",
    "INSERT INTO refresh_watermark VALUES ('hourly', '-infinity')",
]
# Recompute every bucket from the watermark on. The watermark is the start of the newest bucket seen,
# which may still have been filling: it is recomputed whole next time, never summed into twice.
REFRESH = """
INSERT INTO hourly (sensor_id, bucket, n, total, low, high)
SELECT sensor_id, date_bin('1 hour', ts, TIMESTAMPTZ '2000-01-01 00:00+00'), count(*), sum(value), min(value), max(value)
FROM readings
WHERE ts >= (SELECT upto FROM refresh_watermark WHERE summary = 'hourly')
GROUP BY 1, 2
ON CONFLICT (sensor_id, bucket) DO UPDATE
SET n = EXCLUDED.n, total = EXCLUDED.total, low = EXCLUDED.low, high = EXCLUDED.high
"""
ADVANCE_WATERMARK = (
    "UPDATE refresh_watermark SET upto = (SELECT coalesce(max(bucket), '-infinity') FROM hourly)"
    " WHERE summary = 'hourly' RETURNING upto"
)
# Sums are compared to 6 decimals: a parallel aggregate may add the same doubles in another order.
SUMMARY_MISMATCHES = """
WITH kept AS (
    SELECT sensor_id, bucket, n, round(total::numeric, 6) AS total, low, high FROM hourly
), recomputed AS (
    SELECT sensor_id, date_bin('1 hour', ts, TIMESTAMPTZ '2000-01-01 00:00+00') AS bucket, count(*)::integer AS n,
           round(sum(value)::numeric, 6) AS total, min(value) AS low, max(value) AS high
    FROM readings GROUP BY 1, 2
)
SELECT count(*) FROM ((TABLE kept EXCEPT TABLE recomputed) UNION ALL (TABLE recomputed EXCEPT TABLE kept)) AS differing
"""
# A weighted rolling mean: sums of sums and counts over the 24 hourly rows ending at each bucket.
ROLLING_24H = """
SELECT bucket, n, sum(total) OVER day / sum(n) OVER day AS mean_24h, count(*) OVER day AS rows_used
FROM hourly
WHERE sensor_id = %s
WINDOW day AS (ORDER BY bucket RANGE BETWEEN interval '23 hours' PRECEDING AND CURRENT ROW)
ORDER BY bucket DESC LIMIT 4
"""
RAW_24H = "SELECT avg(value), count(*) FROM readings WHERE sensor_id = %s AND ts >= %s AND ts < %s"


@dataclass
class IndexComparison:
    brin_bytes: int
    btree_bytes: int
    partitioned_heap_bytes: int
    plain_heap_bytes: int
    partitions_read: list[str]
    brin_nodes: list[str]  # node types of the partitioned plan
    brin_index_used: str | None  # the access method: "brin"
    btree_nodes: list[str]
    btree_index_used: str | None  # "btree"
    same_answer: bool
    brin_s: float = field(compare=False)
    btree_s: float = field(compare=False)


@dataclass
class Refresh:
    rows_touched: int
    watermark_after: datetime
    seconds: float = field(compare=False)


@dataclass
class TimeseriesResult:
    rows_loaded: int
    late_rows: int
    partitions: int
    indexes: IndexComparison
    buckets_in_day: int
    readings_per_full_bucket: int
    filled_gaps: int
    expected_gaps: int
    gap_rows: list[tuple]
    refreshes: list[Refresh]
    summary_rows: int
    summary_mismatches: int
    rolling_matches_raw: bool
    rolling_rows_used: int
    raw_rows_used: int
    rolling_mean: float = field(compare=False)
    raw_mean: float = field(compare=False)
    load_s: float = field(compare=False)


def generate_readings(seed: int = SEED) -> list[tuple[int, datetime, float]]:
    """In time order, as a fleet of sensors reports: that order is what makes BRIN work.

    Each sensor reports at its own second of the minute (sensor n at 2n s), as real clocks drift apart.
    """
    rng = random.Random(seed)
    bases = [15 + 10 * rng.random() for _ in range(N_SENSORS)]
    swings = [1 + 5 * rng.random() for _ in range(N_SENSORS)]
    offsets = [timedelta(seconds=2 * sensor) for sensor in range(N_SENSORS)]
    draw = rng.random
    rows = []
    for minute in range(DAYS * 1440):
        at = START + timedelta(minutes=minute)
        cycle = math.sin(2 * math.pi * ((minute % 1440) / 1440 - 0.375))
        offline = OFFLINE_FROM <= at < OFFLINE_UNTIL
        for sensor in range(N_SENSORS):
            value = bases[sensor] + swings[sensor] * cycle + (draw() - 0.5) * 0.8
            if draw() >= LOST_SHARE and not (offline and sensor == OFFLINE_SENSOR):
                rows.append((sensor, at + offsets[sensor], value))
    return rows


def reset_schema(conn: psycopg.Connection) -> None:
    with conn.cursor() as cur:
        cur.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SCHEMA)))
        cur.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(SCHEMA)))
        cur.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(SCHEMA)))
        cur.execute("SET TimeZone TO 'UTC'")
    conn.commit()


def day_partition(day: int) -> str:
    return f"readings_{START + timedelta(days=day):%Y%m%d}"


def create_partitions(conn: psycopg.Connection) -> int:
    with conn.cursor() as cur:
        cur.execute(READINGS_TABLE)
        for day in range(DAYS):
            cur.execute(
                sql.SQL("CREATE TABLE {} PARTITION OF readings FOR VALUES FROM ({}) TO ({})").format(
                    sql.Identifier(day_partition(day)),
                    sql.Literal(START + timedelta(days=day)),
                    sql.Literal(START + timedelta(days=day + 1)),
                )
            )
        for statement in SUMMARY_TABLES:
            cur.execute(statement)
        # The partitions the server attached to the parent, counted from the catalog.
        cur.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = 'readings'::regclass")
        attached = cur.fetchone()[0]
    conn.commit()
    return attached


def count_readings(conn: psycopg.Connection) -> int:
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM readings")
        return cur.fetchone()[0]


def copy_rows(conn: psycopg.Connection, rows: list[tuple]) -> None:
    """Binary COPY into the parent: each row is routed to its day's partition."""
    with (
        conn.cursor() as cur,
        cur.copy("COPY readings (sensor_id, ts, value) FROM STDIN (FORMAT BINARY)") as copy,
    ):
        copy.set_types(["int4", "timestamptz", "float8"])
        for row in rows:
            copy.write_row(row)
    conn.commit()


def build_indexes(conn: psycopg.Connection) -> None:
    with conn.cursor() as cur:
        cur.execute(PLAIN_TABLE)
        cur.execute(COPY_PLAIN)
        cur.execute(sql.SQL(BRIN_INDEX).format(sql.Literal(BRIN_PAGES_PER_RANGE)))
        cur.execute(BTREE_INDEX)
    conn.commit()
    conn.execute("ANALYZE readings")
    conn.execute("ANALYZE readings_plain")
    conn.commit()


def plan_json(conn: psycopg.Connection, query: str, params: tuple) -> dict:
    with conn.cursor() as cur:
        cur.execute(sql.SQL("EXPLAIN (FORMAT JSON) ") + sql.SQL(query), params)
        return cur.fetchone()[0][0]["Plan"]


def plan_text(conn: psycopg.Connection, query: str, params: tuple) -> str:
    with conn.cursor() as cur:
        cur.execute(
            sql.SQL("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) ") + sql.SQL(query), params
        )
        return "\n".join(row[0] for row in cur.fetchall())


def plan_nodes(node: dict) -> list[dict]:
    return [node, *(child for sub in node.get("Plans", []) for child in plan_nodes(sub))]


def compare_indexes(conn: psycopg.Connection) -> tuple[IndexComparison, str, str]:
    bounds = (QUERY_FROM, QUERY_FROM + timedelta(hours=1))
    with conn.cursor() as cur:
        sizes = {}
        for name, query in (
            ("readings_ts_brin", TREE_BYTES),
            ("readings", TREE_BYTES),
            ("readings_plain_ts_btree", RELATION_BYTES),
            ("readings_plain", RELATION_BYTES),
        ):
            cur.execute(query, [name])
            sizes[name] = cur.fetchone()[0]
    plans = {table: plan_nodes(plan_json(conn, query, bounds)) for table, query in RANGE_QUERY.items()}
    answers = {table: conn.execute(query, bounds).fetchall() for table, query in RANGE_QUERY.items()}
    seconds = {
        table: best_of(lambda q=query: conn.execute(q, bounds).fetchall(), repeat=5)
        for table, query in RANGE_QUERY.items()
    }
    texts = {table: plan_text(conn, query, bounds) for table, query in RANGE_QUERY.items()}
    conn.rollback()

    def index_used(nodes: list[dict]) -> str | None:
        """The access method of the index the plan reads (a partition's index has a name of its own)."""
        name = next((node["Index Name"] for node in nodes if "Index Name" in node), None)
        found = conn.execute(ACCESS_METHOD, [name]).fetchone() if name else None
        conn.rollback()
        return found[0] if found else None

    comparison = IndexComparison(
        brin_bytes=sizes["readings_ts_brin"],
        btree_bytes=sizes["readings_plain_ts_btree"],
        partitioned_heap_bytes=sizes["readings"],
        plain_heap_bytes=sizes["readings_plain"],
        partitions_read=sorted({n["Relation Name"] for n in plans["readings"] if "Relation Name" in n}),
        brin_nodes=[n["Node Type"] for n in plans["readings"]],
        brin_index_used=index_used(plans["readings"]),
        btree_nodes=[n["Node Type"] for n in plans["readings_plain"]],
        btree_index_used=index_used(plans["readings_plain"]),
        same_answer=answers["readings"] == answers["readings_plain"],
        brin_s=seconds["readings"],
        btree_s=seconds["readings_plain"],
    )
    return comparison, texts["readings"], texts["readings_plain"]


def day_buckets(conn: psycopg.Connection, sensor: int, day: datetime) -> list[tuple]:
    rows = conn.execute(BUCKETS_15M, (sensor, day, day + timedelta(days=1))).fetchall()
    conn.rollback()
    return rows


def gap_filled(conn: psycopg.Connection, sensor: int, day: datetime) -> list[tuple]:
    rows = conn.execute(GAP_FILLED, {"day": day, "sensor": sensor}).fetchall()
    conn.rollback()
    return rows


def expected_gaps(rows: list[tuple], sensor: int, day: datetime) -> int:
    """15-minute buckets of that sensor-day with no reading, counted in Python."""
    seen = {
        int((at - day).total_seconds() // 900)
        for s, at, _ in rows
        if s == sensor and day <= at < day + timedelta(days=1)
    }
    return 96 - len(seen)


def refresh(conn: psycopg.Connection) -> Refresh:
    with timer() as took, conn.cursor() as cur:
        cur.execute(REFRESH)
        touched = cur.rowcount
        cur.execute(ADVANCE_WATERMARK)
        (upto,) = cur.fetchone()
        conn.commit()
    return Refresh(touched, upto, took.seconds)


def rolling_check(conn: psycopg.Connection, sensor: int) -> tuple[list[tuple], float, int]:
    rows = conn.execute(ROLLING_24H, (sensor,)).fetchall()
    newest = rows[0][0]
    raw_mean, raw_rows = conn.execute(
        RAW_24H, (sensor, newest - timedelta(hours=23), newest + timedelta(hours=1))
    ).fetchone()
    conn.rollback()
    return rows, raw_mean, raw_rows


def run(conn: psycopg.Connection) -> TimeseriesResult:
    console.title("Time series in PostgreSQL: partitions, BRIN, date_bin, gap filling, incremental rollups")

    console.step(
        f"Load {N_SENSORS} sensors x {DAYS} days, one reading a minute, into a table partitioned by day"
    )
    reset_schema(conn)
    partitions = create_partitions(conn)
    rows = generate_readings()
    cutoff = START + timedelta(days=DAYS) - timedelta(minutes=LATE_MINUTES)
    history = [row for row in rows if row[1] < cutoff]
    late = [row for row in rows if row[1] >= cutoff]
    with timer() as loading:
        copy_rows(conn, history)
    loaded = count_readings(conn)
    console.say(
        f"{loaded:,} readings (counted) into {partitions} daily partitions by binary COPY in"
        f" {console.seconds(loading.seconds)}; {len(late):,} more (from {cutoff:%m-%d %H:%M}) arrive in step 5."
    )
    console.say(
        f"Sensor {OFFLINE_SENSOR} is offline {OFFLINE_FROM:%m-%d %H:%M}-{OFFLINE_UNTIL:%H:%M}; {LOST_SHARE:.1%} of readings are lost."
    )

    console.step("BRIN on time against a B-tree on a plain copy of the same rows")
    build_indexes(conn)
    indexes, brin_plan, btree_plan = compare_indexes(conn)
    console.table(
        ["", "partitioned by day + BRIN", "plain table + B-tree"],
        [
            ("index size", console.size(indexes.brin_bytes), console.size(indexes.btree_bytes)),
            (
                "table size",
                console.size(indexes.partitioned_heap_bytes),
                console.size(indexes.plain_heap_bytes),
            ),
            ("one-hour query", console.seconds(indexes.brin_s), console.seconds(indexes.btree_s)),
        ],
    )
    console.say(
        f"BRIN keeps the min and max time of every {BRIN_PAGES_PER_RANGE} pages, not one entry per row:"
        f" {indexes.btree_bytes / indexes.brin_bytes:.0f}x smaller. It works because rows arrive in time order."
    )
    console.say(
        f"partitions read: {len(indexes.partitions_read)} ({', '.join(indexes.partitions_read)}) of {partitions}"
    )
    console.plan(brin_plan)
    console.say("the B-tree's plan on the plain table:")
    console.plan(btree_plan)
    console.say(f"same answer from both: {indexes.same_answer}")

    console.step("date_bin(): 15-minute buckets for one sensor and day")
    day = OFFLINE_FROM.replace(hour=0, minute=0)
    buckets = day_buckets(conn, OFFLINE_SENSOR, day)
    console.plan(BUCKETS_15M.strip(), max_lines=4)
    console.table(
        ["bucket", "readings", "mean", "min", "max"], [(f"{b[0]:%H:%M}", *b[1:]) for b in buckets[34:40]]
    )
    console.say(f"{len(buckets)} buckets with data of the 96 in a day: the offline hours left a hole")

    console.step("Fill the gaps: generate_series gives every bucket, LEFT JOIN finds the empty ones")
    filled = gap_filled(conn, OFFLINE_SENSOR, day)
    empty = [row for row in filled if row[1] is None]
    gaps_expected = expected_gaps(rows, OFFLINE_SENSOR, day)
    around = [i for i, row in enumerate(filled) if row[1] is None]
    shown = filled[around[0] - 1 : around[0] + 2] + filled[around[-1] : around[-1] + 2]
    console.table(
        ["bucket", "readings", "mean", "last known mean"],
        [
            (f"{r[0]:%H:%M}", "-" if r[1] is None else r[1], "-" if r[2] is None else r[2], r[3])
            for r in shown
        ],
    )
    console.say(f"buckets filled: {len(empty)} (counted in Python from the generated data: {gaps_expected})")

    console.step("An hourly summary table refreshed from a watermark: only new buckets are recomputed")
    first = refresh(conn)
    console.say(
        f"first refresh (watermark -infinity): {first.rows_touched:,} rows in {console.seconds(first.seconds)}; watermark now {first.watermark_after:%m-%d %H:%M}"
    )
    copy_rows(conn, late)
    late_rows = count_readings(conn) - loaded
    second = refresh(conn)
    console.say(
        f"{late_rows:,} late readings arrive; second refresh: {second.rows_touched:,} rows in"
        f" {console.seconds(second.seconds)}; watermark now {second.watermark_after:%m-%d %H:%M}"
    )
    console.table(
        ["refresh", "rows touched", "time"],
        [("full (first)", first.rows_touched, console.seconds(first.seconds)),
         ("incremental (second)", second.rows_touched, console.seconds(second.seconds))],
    )  # fmt: skip
    summary_rows = conn.execute("SELECT count(*) FROM hourly").fetchone()[0]
    mismatches = conn.execute(SUMMARY_MISMATCHES).fetchone()[0]
    conn.rollback()
    console.say(f"summary rows: {summary_rows:,}; rows differing from a full recomputation: {mismatches}")
    console.say(
        "The bucket at the watermark was still filling at the first refresh: it was recomputed whole."
        " A reading that arrives for a bucket before the watermark would be missed; move the watermark back"
        " by the lateness you accept."
    )

    console.step("A rolling 24-hour mean from the summary: 24 rows per answer instead of 1,440 readings")
    rolling, raw_mean, raw_rows = rolling_check(conn, 0)
    console.plan(ROLLING_24H.strip(), max_lines=5)
    console.table(
        ["hour", "readings", "24 h mean", "summary rows used"],
        [(f"{r[0]:%m-%d %H:%M}", r[1], f"{r[2]:.4f}", r[3]) for r in rolling],
    )
    console.say(f"the same 24 hours from the raw table: {raw_mean:.4f} over {raw_rows:,} readings")

    return TimeseriesResult(
        rows_loaded=loaded,
        late_rows=late_rows,
        partitions=partitions,
        indexes=indexes,
        buckets_in_day=len(buckets),
        readings_per_full_bucket=max(b[1] for b in buckets),
        filled_gaps=len(empty),
        expected_gaps=gaps_expected,
        gap_rows=[(f"{r[0]:%H:%M}", r[1], r[3]) for r in shown],
        refreshes=[first, second],
        summary_rows=summary_rows,
        summary_mismatches=mismatches,
        rolling_matches_raw=math.isclose(rolling[0][2], raw_mean, rel_tol=1e-12),
        rolling_mean=rolling[0][2],
        raw_mean=raw_mean,
        rolling_rows_used=rolling[0][3],
        raw_rows_used=raw_rows,
        load_s=loading.seconds,
    )


def main() -> int:
    require(*REQUIRES)
    with psycopg.connect(postgres_url(), connect_timeout=CONNECT_TIMEOUT_S) as conn:
        result = run(conn)
    return 0 if result.summary_mismatches == 0 and result.filled_gaps == result.expected_gaps else 1


if __name__ == "__main__":
    raise SystemExit(main())

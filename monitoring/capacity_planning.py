"""Capacity planning: bytes per row, a fitted growth line, the day the disk fills, the throughput knee

Capacity planning turns a few measurements into dates. The lesson loads the same kind of row at
four table sizes and measures what each row costs on disk, split into heap, indexes and TOAST (one
row in ten carries a document too large to stay in its page), and what it costs in WAL: from
pg_stat_statements' wal_bytes for the lesson's own INSERT (per statement, untouched by other
sessions; it leaves out the commit record) and from the WAL position before and after, an upper
bound, since every session's WAL moves it. A least-squares line through the sizes gives bytes per
row and a fixed part; with an ingest rate it says when a 100 GB disk fills, as date arithmetic.
Then throughput: the same short read/write transaction from 1, 2, 4 and 8 client threads, to find
the knee where more clients stop buying throughput on this machine, and the connection headroom
left under max_connections. Last, memory per field in Redis for the same data as plain strings, as
small hashes (listpack encoding) and as hashes past `hash-max-listpack-entries` (hashtable). A
chart of the points, the fit and the forecast is written with matplotlib when it is installed.

Engine: PostgreSQL (POSTGRES_URL), schema `capacity_planning` (which gets pg_stat_statements when
the server preloads it and no schema has it yet); Redis (REDIS_URL), keys `capacity:*`.
Run: `make up SERVICES="postgres redis"` (or `make local-up`), then `python monitoring/capacity_planning.py`
(`EXAMPLES_SCALE=0.1` for a tenth of the rows).
Look for: bytes per row steady across sizes, the forecast's arithmetic, the knee among 1/2/4/8
clients, the headroom sum, listpack's bytes per field against hashtable's, and the chart's path.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import partial
from pathlib import Path

import psycopg
import redis
from psycopg import sql

from common import console
from common.settings import CONNECT_TIMEOUT_S, ROOT, postgres_url, redis_url, require, scale
from common.workload import Workload

REQUIRES = ("postgres", "redis")
SCHEMA, PREFIX = "capacity_planning", "capacity:"
SEED = 17
SIZES = (5_000, 10_000, 20_000, 40_000)  # rows, times EXAMPLES_SCALE
DISK_BYTES, ROWS_PER_DAY = 100 * 10**9, 5_000_000  # the forecast: a 100 GB disk, this ingest rate
CLIENTS, RUN_S, KNEE_GAIN = (1, 2, 4, 8), 1.0, 0.10  # a step that adds under 10% is past the knee
N_ACCOUNTS = 10_000
CHART = ROOT / ".local" / "charts" / "capacity_planning.png"  # .local/ is git-ignored

EVENTS = """
CREATE TABLE {s}.events (id bigint PRIMARY KEY, account_id integer NOT NULL, kind text NOT NULL,
    created_at timestamptz NOT NULL, amount numeric(12, 2) NOT NULL, document text)
    WITH (autovacuum_enabled = false, toast.autovacuum_enabled = false);
CREATE INDEX events_account_created_idx ON {s}.events (account_id, created_at);
CREATE TABLE {s}.accounts (id integer PRIMARY KEY, balance bigint NOT NULL DEFAULT 0);
INSERT INTO {s}.accounts (id) SELECT generate_series(1, {accounts});
"""
# One row in ten carries 80 MD5s (2,560 characters that barely compress): stored out of line, in TOAST.
INSERT_BATCH = """
INSERT INTO {s}.events (id, account_id, kind, created_at, amount, document)
SELECT i, i %% 5000, (ARRAY['view', 'click', 'purchase'])[i %% 3 + 1], timestamptz '2025-01-01' + i * interval '1 s',
       (i %% 10000) / 100.0, CASE WHEN i %% 10 = 0 THEN
           (SELECT string_agg(md5(i || ':' || j), '') FROM generate_series(1, 80) AS j) END
FROM generate_series(%s::bigint, %s::bigint) AS i
"""
SIZE = """
SELECT pg_relation_size(c.oid), pg_indexes_size(c.oid), pg_total_relation_size(c.reltoastrelid)
FROM pg_class AS c WHERE c.oid = %s::regclass
"""
WAL_OF_MY_INSERTS = """
SELECT coalesce(sum(wal_bytes), 0) FROM {view}
WHERE starts_with(query, %s) AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
"""
TRANSFER = (
    "UPDATE {s}.accounts SET balance = balance + 1 WHERE id = %s",
    "SELECT balance FROM {s}.accounts WHERE id = %s",
)
CLIENT_BACKENDS = "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
CONNECTION_SETTINGS = """
SELECT name, setting::integer FROM pg_settings
WHERE name IN ('max_connections', 'superuser_reserved_connections', 'reserved_connections')
"""


@dataclass
class Size:
    rows: int
    heap: int  # the table's main fork
    indexes: int
    toast: int  # the TOAST table and its index
    batch_rows: int  # rows the last INSERT added
    wal_statement: int | None = field(compare=False)  # pg_stat_statements wal_bytes of that INSERT
    wal_lsn: int = field(compare=False)  # WAL position moved meanwhile, by everyone: an upper bound

    @property
    def total(self) -> int:
        return self.heap + self.indexes + self.toast


@dataclass
class Forecast:
    bytes_per_row: float  # the fit's slope
    fixed_bytes: float  # its intercept
    rows_now: int
    start: date
    days: float  # until DISK_BYTES at ROWS_PER_DAY
    full_on: date


@dataclass
class Throughput:
    clients: int
    transactions: int
    seconds: float
    failed: int

    @property
    def per_second(self) -> float:
        return self.transactions / self.seconds


@dataclass
class Headroom:
    max_connections: int
    used: int  # client backends, every database
    reserved: int  # superuser_reserved_connections (+ reserved_connections, 16 and later)
    headroom: int


@dataclass
class Layout:
    keys: int
    fields: int
    memory: int  # sum of MEMORY USAGE over the keys
    encoding: str  # OBJECT ENCODING, the same for every key of the layout

    @property
    def per_field(self) -> float:
        return self.memory / self.fields


@dataclass
class CapacityResult:
    sizes: list[Size]
    forecast: Forecast = field(compare=False)
    throughput: list[Throughput] = field(default_factory=list, compare=False)
    knee: int = field(default=0, compare=False)
    headroom: Headroom | None = field(default=None, compare=False)
    redis: dict[str, Layout] = field(default_factory=dict)
    listpack_limit: int = 0
    chart: Path | None = field(default=None, compare=False)

    @property
    def holds(self) -> bool:
        h = self.headroom
        return (
            self.forecast.bytes_per_row > 0
            and all(s.heap > 0 and s.indexes > 0 and s.toast > 0 for s in self.sizes)
            and self.knee in CLIENTS
            and h is not None
            and h.headroom == h.max_connections - h.used - h.reserved
            and self.redis["small hashes"].per_field < self.redis["large hashes"].per_field
            and (self.chart is None or self.chart.exists())
        )


def q(text: str, **numbers: int) -> sql.Composed:
    literals = {name: sql.Literal(value) for name, value in numbers.items()}
    return sql.SQL(text).format(s=sql.Identifier(SCHEMA), **literals)


def scaled_sizes() -> list[int]:
    return [max(500, round(n * scale())) for n in SIZES]


def statements_view(conn: psycopg.Connection) -> sql.Identifier | None:
    """pg_stat_statements, wherever this database has it (installed in the lesson's schema if nowhere)."""
    create = sql.SQL("CREATE EXTENSION IF NOT EXISTS pg_stat_statements WITH SCHEMA {}")
    with contextlib.suppress(psycopg.Error):  # not preloaded, not allowed, or made by another session
        conn.execute(create.format(sql.Identifier(SCHEMA)))
    found = conn.execute(
        "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pg_stat_statements'"
    ).fetchone()
    return sql.Identifier(found[0], "pg_stat_statements") if found else None


def wal_of_my_inserts(conn: psycopg.Connection) -> int | None:
    """The WAL bytes pg_stat_statements has counted for this lesson's INSERT, in this database."""
    view = statements_view(conn)  # looked up each time: another lesson may have dropped its copy
    if view is None:
        return None
    prefix = q("INSERT INTO {s}.events").as_string(conn)  # how the text of INSERT_BATCH starts
    try:
        return int(conn.execute(sql.SQL(WAL_OF_MY_INSERTS).format(view=view), (prefix,)).fetchone()[0])
    except psycopg.Error:  # dropped with another lesson's schema since: no figure this time
        return None


def grow(conn: psycopg.Connection) -> list[Size]:
    """Insert up to each size, one INSERT (one transaction) per step, and measure after each."""
    conn.execute(q(EVENTS, accounts=N_ACCOUNTS))
    sizes, done = [], 0
    for target in scaled_sizes():
        wal_before = wal_of_my_inserts(conn)
        lsn_before = conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
        conn.execute(q(INSERT_BATCH), (done + 1, target))
        lsn = conn.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s)", (lsn_before,)).fetchone()[0]
        wal_after = wal_of_my_inserts(conn)
        wal = None if wal_before is None or wal_after is None else wal_after - wal_before
        heap, indexes, toast = conn.execute(SIZE, (f"{SCHEMA}.events",)).fetchone()
        sizes.append(Size(target, heap, indexes, toast, target - done, wal, int(lsn)))
        done = target
    return sizes


def least_squares(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """The line y = slope * x + intercept closest to the points (sum of squared errors)."""
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    covariance = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    slope = covariance / sum((x - mean_x) ** 2 for x in xs)
    return slope, mean_y - slope * mean_x


def forecast(sizes: list[Size], today: date) -> Forecast:
    slope, intercept = least_squares([s.rows for s in sizes], [s.total for s in sizes])
    rows_now = sizes[-1].rows
    days = (DISK_BYTES - (intercept + slope * rows_now)) / (slope * ROWS_PER_DAY)
    return Forecast(slope, intercept, rows_now, today, days, today + timedelta(days=math.floor(days)))


def transfer(conn: psycopg.Connection, n: int, rng: random.Random) -> int:
    """The transaction measured: an UPDATE of one account and a read of another."""
    with conn.transaction():
        conn.execute(q(TRANSFER[0]), (rng.randint(1, N_ACCOUNTS),))
        conn.execute(q(TRANSFER[1]), (rng.randint(1, N_ACCOUNTS),)).fetchone()
    return n


def throughput(url: str, clients: int, run_s: float) -> Throughput:
    with Workload(pause_s=0) as load:
        for k in range(clients):
            operation = partial(transfer, rng=random.Random(SEED + k))
            load.spawn(f"client {k}", operation, connect=lambda: psycopg.connect(url, autocommit=True))
        load.wait_for(3 * clients)  # every connection open and warm
        began = load.now_s()
        time.sleep(run_s)
        ended = load.now_s()
    during, after = load.report(since_s=began), load.report(since_s=ended)
    count, failed = during.operations - after.operations, during.failed - after.failed
    return Throughput(clients, count, ended - began, failed)


def knee(points: list[Throughput]) -> int:
    """The client count after which one more step adds less than KNEE_GAIN (the last one if none)."""
    for low, high in zip(points, points[1:], strict=False):
        if high.per_second < low.per_second * (1 + KNEE_GAIN):
            return low.clients
    return points[-1].clients


def connection_headroom(conn: psycopg.Connection) -> Headroom:
    settings = dict(conn.execute(CONNECTION_SETTINGS).fetchall())
    used = conn.execute(CLIENT_BACKENDS).fetchone()[0]
    most = settings["max_connections"]
    reserved = settings["superuser_reserved_connections"] + settings.get("reserved_connections", 0)
    return Headroom(most, used, reserved, most - used - reserved)


def listpack_limit(r: redis.Redis) -> int:
    """The server's hash-max-listpack-entries (hash-max-ziplist-entries before Redis 7), read, not set."""
    values = r.config_get("hash-max-*-entries")
    return int(values.get("hash-max-listpack-entries") or values["hash-max-ziplist-entries"])


def store(r: redis.Redis, name: str, per_key: int, n_fields: int) -> Layout:
    """n_fields (field, value) pairs: one string key each (per_key 0), or hashes of per_key fields."""
    pipe = r.pipeline(transaction=False)
    keys = []
    for i in range(n_fields):
        if per_key == 0:
            keys.append(f"{PREFIX}{name}:{i}")
            pipe.set(keys[-1], f"value-{i:08d}")
        else:
            if i % per_key == 0:
                keys.append(f"{PREFIX}{name}:{i // per_key}")
            pipe.hset(keys[-1], f"field-{i}", f"value-{i:08d}")
    pipe.execute()
    for key in keys:
        pipe.memory_usage(key, samples=0)
        pipe.object("encoding", key)
    answers = pipe.execute()
    encodings = {e.decode() if isinstance(e, bytes) else e for e in answers[1::2]}
    return Layout(len(keys), n_fields, sum(answers[0::2]), "/".join(sorted(encodings)))


def redis_layouts(r: redis.Redis) -> tuple[int, dict[str, Layout]]:
    for key in r.scan_iter(match=PREFIX + "*", count=1000):
        r.unlink(key)
    limit = listpack_limit(r)
    n_fields = 4 * limit
    layouts = {
        "strings": store(r, "strings", 0, n_fields),
        "small hashes": store(r, "small", limit // 2, n_fields),  # under the limit: listpack
        "large hashes": store(r, "large", 2 * limit, n_fields),  # over it: hashtable
    }
    return limit, layouts


def draw(result: CapacityResult, path: Path) -> Path | None:
    """The measured sizes with the fitted line, the forecast, and throughput against clients."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    figure = Figure(figsize=(13, 4))
    FigureCanvasAgg(figure)  # the Agg backend: a PNG, no display
    growth, future, scaling = figure.subplots(1, 3)
    f, rows = result.forecast, [s.rows for s in result.sizes]
    for part in ("heap", "indexes", "toast", "total"):
        growth.plot(rows, [getattr(s, part) / 1e6 for s in result.sizes], "o", label=part)
    fitted = [(f.fixed_bytes + f.bytes_per_row * n) / 1e6 for n in rows]
    growth.plot(rows, fitted, "-", label=f"fit: {f.bytes_per_row:.0f} B/row")
    growth.set(xlabel="rows", ylabel="MB", title="measured sizes and least-squares fit")
    days = range(math.ceil(f.days) + 2)
    now = f.fixed_bytes + f.bytes_per_row * f.rows_now
    future.plot(days, [(now + f.bytes_per_row * ROWS_PER_DAY * d) / 1e9 for d in days], "-", label="forecast")
    future.axhline(DISK_BYTES / 1e9, color="red", linestyle="--", label=f"disk: {DISK_BYTES / 1e9:.0f} GB")
    future.axvline(f.days, color="grey", linestyle=":", label=f"full on {f.full_on}")
    future.set(xlabel=f"days from {f.start}", ylabel="GB", title=f"{ROWS_PER_DAY:,} rows a day")
    scaling.plot([t.clients for t in result.throughput], [t.per_second for t in result.throughput], "o-")
    scaling.axvline(result.knee, color="grey", linestyle=":", label=f"knee: {result.knee} clients")
    scaling.set(xlabel="client threads", ylabel="transactions/s", title="throughput", xticks=CLIENTS)
    scaling.set_ylim(bottom=0)
    for axes in (growth, future, scaling):
        axes.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial_file = path.with_name(f".{path.stem}.{os.getpid()}.png")
    figure.savefig(partial_file, dpi=90)
    os.replace(partial_file, path)  # whole or not at all, even with two runs at once
    return path


def show_growth(sizes: list[Size]) -> None:
    rows = []
    for s in sizes:
        wal = "-" if s.wal_statement is None else f"{s.wal_statement / s.batch_rows:.0f}"
        per_row = (f"{v / s.rows:.0f}" for v in (s.heap, s.indexes, s.toast, s.total))
        rows.append((s.rows, *per_row, wal, f"{s.wal_lsn / s.batch_rows:.0f}"))
    console.say("Bytes per row at each size, on disk and in WAL:")
    console.table(["rows", "heap", "indexes", "TOAST", "total", "WAL", "WAL ≤"], rows)
    console.say("WAL: pg_stat_statements' wal_bytes for this lesson's INSERT (the commit record aside);")
    console.say("WAL ≤: how far the WAL position moved meanwhile, an upper bound: every session moves it.")
    console.say(
        "Small sizes pay most for fixed parts (metapages, part-filled pages): fit a line, not a ratio."
    )
    if sizes[0].wal_statement is None:
        console.say("pg_stat_statements is not loaded on this server: only the upper bound is measured.")


def show_forecast(f: Forecast, n_sizes: int) -> None:
    per_day = f.bytes_per_row * ROWS_PER_DAY
    used = f.fixed_bytes + f.bytes_per_row * f.rows_now
    per_row, disk = f"{f.bytes_per_row:.1f} B/row", f"{DISK_BYTES / 1e9:.0f} GB"
    console.say(
        f"size   = {per_row} x rows + {f.fixed_bytes / 1e3:.1f} kB (least squares over {n_sizes} sizes)"
    )
    console.say(f"growth = {per_row} x {ROWS_PER_DAY:,} rows/day = {per_day / 1e9:.3f} GB/day")
    console.say(f"days   = ({disk} - {used / 1e9:.3f} GB used) / {per_day / 1e9:.3f} GB/day = {f.days:.1f}")
    console.say(f"full on {f.start} + {math.floor(f.days)} days = {f.full_on}; alert well before, at 80%.")
    console.say("Add what the line leaves out: WAL kept for replicas and archives, backups, FSM and VM.")


def show_throughput(points: list[Throughput], knee_at: int) -> None:
    rows, previous = [], None
    for t in points:
        gain = f"{t.per_second / previous - 1:+.0%}" if previous else "-"
        rows.append((t.clients, f"{t.per_second:,.0f}", gain, t.failed))
        previous = t.per_second
    console.table(["clients", "transactions/s", "gain", "failed"], rows)
    console.say(f"Knee: {knee_at} clients, the last count whose next step added {KNEE_GAIN:.0%} or more.")
    console.say(f"This machine has {os.cpu_count()} CPUs, shared by the server and the Python clients.")


def show_redis(limit: int, layouts: dict[str, Layout]) -> None:
    console.say(f"hash-max-listpack-entries is {limit} on this server (read with CONFIG GET, not changed).")
    rows = [(name, x.keys, x.encoding, console.size(x.memory), f"{x.per_field:.1f}",
             f"{x.per_field / 10:.1f} GB") for name, x in layouts.items()]  # fmt: skip
    console.table(["layout", "keys", "encoding", "MEMORY USAGE", "B/field", "100 M fields"], rows)
    console.say("Small hashes pack their fields in one listpack; past the limit each field is a dict entry.")


def run(
    pg: psycopg.Connection, url: str, r: redis.Redis, chart: Path = CHART, today: date | None = None
) -> CapacityResult:
    """`pg` is made autocommit, `url` is its address (for the client threads), `r` a Redis client;
    the chart goes to `chart`, and the forecast counts from `today` (the date of the run if None)."""
    console.title("Capacity planning: bytes per row, a growth forecast, the throughput knee, Redis memory")
    pg.autocommit = True
    pg.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SCHEMA)))
    pg.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(SCHEMA)))

    console.step("Grow a table in four steps and measure each row's bytes: heap, indexes, TOAST, WAL")
    sizes = grow(pg)
    show_growth(sizes)

    console.step("Fit a least-squares line to the sizes and forecast the day the disk fills")
    result = CapacityResult(sizes, forecast(sizes, today or date.today()))
    show_forecast(result.forecast, len(sizes))

    console.step("Run a short read/write transaction from 1, 2, 4 and 8 client threads")
    run_s = max(0.25, RUN_S * min(1.0, scale()))
    result.throughput = [throughput(url, clients, run_s) for clients in CLIENTS]
    result.knee = knee(result.throughput)
    show_throughput(result.throughput, result.knee)

    console.step("Connection headroom: max_connections against connections in use and reserved")
    h = result.headroom = connection_headroom(pg)
    console.say(f"headroom = {h.max_connections} max_connections - {h.used} in use - {h.reserved} reserved")
    console.say(f"         = {h.headroom}: room for {h.headroom // result.knee} more pools of {result.knee}.")

    console.step("Redis: the same fields as strings, as small hashes and as hashes past the listpack limit")
    result.listpack_limit, result.redis = redis_layouts(r)
    show_redis(result.listpack_limit, result.redis)

    console.step("Draw the measurements, the fit and the forecast")
    result.chart = draw(result, chart)
    console.say(f"Chart: {result.chart}" if result.chart else "matplotlib is not installed: no chart drawn.")
    return result


def main() -> int:
    require(*REQUIRES)
    url = postgres_url()
    client = redis.Redis.from_url(redis_url(), socket_connect_timeout=CONNECT_TIMEOUT_S)
    with psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S) as pg, client:
        result = run(pg, url, client)
    return 0 if result.holds else 1


if __name__ == "__main__":
    raise SystemExit(main())

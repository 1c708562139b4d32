"""InfluxDB downsampling and retention: raw points kept an hour, one-minute means kept a year

Raw readings are kept briefly and summaries for long: the usual layout is a raw bucket with a short
retention and a downsampled bucket with a long one, filled by a query that aggregates raw windows.
This lesson creates both (retention shown as the server reports it), writes thirty minutes of power
readings from three meters (a daily cycle, noise, lost readings and a meter that went quiet), shows
a point older than the raw retention being refused, downsamples with Flux aggregateWindow into
one-minute means, and checks the downsampled bucket: one point per window that had data, each equal
to the mean of its raw points.

On InfluxDB 2.x the buckets come from the buckets API and Flux `to()` writes the means server-side.
The local InfluxDB 1.8 has neither: its buckets are a database with a one-hour retention policy
(CREATE RETENTION POLICY) and a second database with a 52-week one, and its Flux 0.65 has no `to()`
(the lesson shows the refusal), so the same Flux query's result is written back with the client's
write API. The lesson detects the server and says which way it took.

Engine: InfluxDB (INFLUX_URL, INFLUX_TOKEN, INFLUX_ORG); buckets (2.x) or databases (1.x)
`influxdb_downsampling_retention_raw` and `influxdb_downsampling_retention_rollup`.
Run: `make up SERVICES=influxdb` (or `make local-up`), then `python timeseries/influxdb_downsampling_retention.py`.
Look for: retention 1h against 52w, "points beyond retention policy", and windows and means that match.
"""

from __future__ import annotations

import json
import math
import random
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import requests
from influxdb_client import BucketRetentionRules, InfluxDBClient, Point, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException

from common import console
from common.settings import CONNECT_TIMEOUT_S, influx_url, require, setting
from common.timing import timer

REQUIRES = ("influxdb",)
RAW = "influxdb_downsampling_retention_raw"
ROLLUP = "influxdb_downsampling_retention_rollup"
RAW_RP, ROLLUP_RP = "raw_1h", "rollup_52w"  # 1.x retention policy names
RAW_RETENTION_S = 3600  # the shortest retention InfluxDB 2.x accepts
ROLLUP_RETENTION_S = 52 * 7 * 86400
MEASUREMENT = "influxdb_downsampling_retention_power"
SEED = 23
MINUTES = 30
RAW_STEP_S = 5
METERS = {"meter-a": (420.0, 120.0), "meter-b": (1800.0, 600.0), "meter-c": (95.0, 20.0)}  # base, daily swing
QUIET_METER, QUIET_MINUTES = "meter-c", range(10, 15)
LOST_SHARE = 0.03
UTC = timezone.utc

# Flux text: values cannot be bound (see flux()), so every name in it is an @placeholder.
DOWNSAMPLE = """
from(bucket: @raw)
  |> range(start: @start, stop: @stop)
  |> filter(fn: (r) => r._measurement == @measurement and r._field == "watts")
  |> aggregateWindow(every: 1m, fn: mean, createEmpty: false)
"""
DOWNSAMPLE_TO = """
from(bucket: @raw)
  |> range(start: @start, stop: @stop)
  |> filter(fn: (r) => r._measurement == @measurement and r._field == "watts")
  |> aggregateWindow(every: 1m, fn: mean, createEmpty: false)
  |> to(bucket: @rollup)
"""
READ_BACK = """
from(bucket: @bucket)
  |> range(start: @start, stop: @stop)
  |> filter(fn: (r) => r._measurement == @measurement and r._field == "watts")
"""
# InfluxDB 1.x (InfluxQL over /query): names are written literally, as SQL identifiers would be.
V1_SETUP = [
    "DROP DATABASE influxdb_downsampling_retention_raw",
    "DROP DATABASE influxdb_downsampling_retention_rollup",
    "CREATE DATABASE influxdb_downsampling_retention_raw",
    "CREATE RETENTION POLICY raw_1h ON influxdb_downsampling_retention_raw DURATION 1h REPLICATION 1"
    " SHARD DURATION 1h DEFAULT",
    "CREATE DATABASE influxdb_downsampling_retention_rollup WITH DURATION 52w REPLICATION 1 NAME rollup_52w",
]
V1_SHOW_POLICIES = {
    RAW: "SHOW RETENTION POLICIES ON influxdb_downsampling_retention_raw",
    ROLLUP: "SHOW RETENTION POLICIES ON influxdb_downsampling_retention_rollup",
}


@dataclass(frozen=True)
class Reading:
    meter: str
    time: datetime
    watts: float


@dataclass
class Retention:
    bucket: str
    retention_s: int
    shard_group_s: int
    configured_by: str


@dataclass
class DownsamplingResult:
    server_major: int
    way: str  # how the means reached the rollup bucket
    to_refused: str | None  # the 1.x server's answer to Flux to()
    retention: list[Retention]
    raw_points: int
    raw_stored: int
    old_point_refused: bool
    old_point_message: str
    expected_windows: dict[str, int]
    downsampled: dict[str, int]  # points per meter in the rollup bucket
    max_mean_error: float
    sample: list[tuple] = field(compare=False)  # times move with the clock
    downsample_s: float = field(compare=False)


def flux_string(value: str) -> str:
    """A Flux string literal: backslash and double quote escaped, and `${`, which opens interpolation."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${") + '"'


def flux(template: str, **values: str | datetime) -> str:
    """Flux text with each @name replaced by a quoted literal of its value.

    InfluxDB OSS, 1.8 and 2.x alike, cannot bind values into Flux: the client's `params=` travels
    as an `extern` option that only InfluxDB Cloud reads. So the few values a query needs are
    written into its text here, and only here, quoted as literals. They are this lesson's own
    configuration (bucket names that are module constants, times it computed), never outside data.
    """
    text = template.strip()
    for name in sorted(values, key=len, reverse=True):
        value = values[name]
        if isinstance(value, datetime):
            literal = "time(v: " + flux_string(value.astimezone(UTC).isoformat().replace("+00:00", "Z")) + ")"
        else:
            literal = flux_string(value)
        text = text.replace("@" + name, literal)
    return text


def server_major(client: InfluxDBClient) -> int:
    """1 for the local 1.8 stand-in, 2 for the compose image (its version reads "v2.7.12")."""
    return int(client.version().lstrip("v").split(".")[0])


def influxql(client: InfluxDBClient, statement: str) -> dict:
    """InfluxDB 1.x: an InfluxQL statement over POST /query; errors come back inside a 200 answer."""
    response = requests.post(
        client.url.rstrip("/") + "/query",
        data={"q": statement},
        headers={"Authorization": "Token " + client.token},
        timeout=30,
    )
    response.raise_for_status()
    answer = response.json()
    errors = [result["error"] for result in answer.get("results", []) if "error" in result]
    if errors:
        raise RuntimeError(f"InfluxQL {statement!r}: {'; '.join(errors)}")
    return answer


def go_duration_s(text: str) -> int:
    """InfluxQL reports durations as Go prints them: "8736h0m0s", "1h0m0s", "0s"."""
    units = {"h": 3600, "m": 60, "s": 1}
    return sum(int(amount) * units[unit] for amount, unit in re.findall(r"(\d+)([hms])", text))


def bucket_names(major: int) -> tuple[str, str]:
    """How the write and query APIs address the two buckets: 1.x takes "database/retention-policy"."""
    return (f"{RAW}/{RAW_RP}", f"{ROLLUP}/{ROLLUP_RP}") if major == 1 else (RAW, ROLLUP)


def create_buckets_v1(client: InfluxDBClient) -> list[Retention]:
    for statement in V1_SETUP:
        influxql(client, statement)
    found = []
    for database, policy in ((RAW, RAW_RP), (ROLLUP, ROLLUP_RP)):
        series = influxql(client, V1_SHOW_POLICIES[database])["results"][0]["series"][0]
        rows = [dict(zip(series["columns"], values, strict=True)) for values in series["values"]]
        row = next(r for r in rows if r["name"] == policy)
        found.append(
            Retention(
                f"{database}/{policy}",
                go_duration_s(row["duration"]),
                go_duration_s(row["shardGroupDuration"]),
                "InfluxQL retention policy",
            )
        )
    return found


def create_buckets_v2(client: InfluxDBClient) -> list[Retention]:
    """The buckets API: delete the lesson's buckets if a previous run left them, create them anew."""
    buckets = client.buckets_api()
    found = []
    for name, seconds in ((RAW, RAW_RETENTION_S), (ROLLUP, ROLLUP_RETENTION_S)):
        existing = buckets.find_bucket_by_name(name)
        if existing is not None:
            buckets.delete_bucket(existing)
        rule = BucketRetentionRules(type="expire", every_seconds=seconds)
        created = buckets.create_bucket(bucket_name=name, retention_rules=rule, org=client.org)
        kept = created.retention_rules[0]
        found.append(
            Retention(name, kept.every_seconds, kept.shard_group_duration_seconds or 0, "buckets API")
        )
    return found


def window_end() -> datetime:
    """The current minute's start: the raw data covers the MINUTES before it, well inside one hour."""
    return datetime.now(UTC).replace(second=0, microsecond=0)


def generate_readings(end: datetime, seed: int = SEED) -> list[Reading]:
    """A reading every RAW_STEP_S seconds per meter: a daily cycle by time of day, noise, and gaps."""
    rng = random.Random(seed)
    start = end - timedelta(minutes=MINUTES)
    readings = []
    for step in range(MINUTES * 60 // RAW_STEP_S):
        at = start + timedelta(seconds=step * RAW_STEP_S)
        seconds_of_day = at.hour * 3600 + at.minute * 60 + at.second
        phase = 2 * math.pi * (seconds_of_day / 86400 - 0.3)
        minute = step * RAW_STEP_S // 60
        for meter, (base, swing) in METERS.items():
            watts = round(base + swing * math.sin(phase) + rng.gauss(0, base * 0.05), 1)
            quiet = meter == QUIET_METER and minute in QUIET_MINUTES
            if not (quiet or rng.random() < LOST_SHARE):
                readings.append(Reading(meter, at, watts))
    return readings


def to_point(meter: str, at: datetime, watts: float) -> Point:
    return Point(MEASUREMENT).tag("meter", meter).field("watts", watts).time(at, WritePrecision.S)


def expected_means(readings: list[Reading]) -> dict[tuple[str, datetime], float]:
    """Mean per meter and minute, keyed by the window's stop time as aggregateWindow stamps it."""
    groups: dict[tuple[str, datetime], list[float]] = {}
    for reading in readings:
        stop = reading.time.replace(second=0) + timedelta(minutes=1)
        groups.setdefault((reading.meter, stop), []).append(reading.watts)
    return {key: sum(values) / len(values) for key, values in groups.items()}


def write_old_point(client: InfluxDBClient, raw: str, end: datetime) -> tuple[bool, str]:
    """A point two hours old, written to a bucket that keeps one hour."""
    point = to_point("meter-a", end - timedelta(hours=2), 1.0)
    try:
        client.write_api(write_options=SYNCHRONOUS).write(bucket=raw, record=point)
    except ApiException as error:
        return True, f"HTTP {error.status}: {error_message(error)}"
    return False, "accepted"


def error_message(error: Exception) -> str:
    """The server's reason: 1.x answers {"error": ...}, 2.x {"code": ..., "message": ...}."""
    try:
        body = json.loads(getattr(error, "body", None))
    except (TypeError, ValueError):
        return str(getattr(error, "reason", None) or error)
    if not isinstance(body, dict):
        return str(body)
    return body.get("message") or body.get("error") or str(error)


def query_rows(client: InfluxDBClient, text: str) -> list[dict]:
    return [record.values for table in client.query_api().query(text) for record in table.records]


def downsample_v2(client: InfluxDBClient, raw: str, rollup: str, start: datetime, stop: datetime) -> int:
    """One Flux query reads, aggregates and writes: to() stores each output row in the rollup bucket."""
    text = flux(DOWNSAMPLE_TO, raw=raw, rollup=rollup, start=start, stop=stop, measurement=MEASUREMENT)
    return len(query_rows(client, text))


def to_refusal_v1(client: InfluxDBClient, raw: str, rollup: str, start: datetime, stop: datetime) -> str:
    """Ask 1.8 for to() anyway, to show why the lesson writes the means back itself."""
    text = flux(DOWNSAMPLE_TO, raw=raw, rollup=rollup, start=start, stop=stop, measurement=MEASUREMENT)
    try:
        query_rows(client, text)
    except ApiException as error:
        return error_message(error)
    return "accepted"


def downsample_v1(client: InfluxDBClient, raw: str, rollup: str, start: datetime, stop: datetime) -> int:
    """Flux computes the means; the client writes its result rows into the rollup database."""
    rows = query_rows(client, flux(DOWNSAMPLE, raw=raw, start=start, stop=stop, measurement=MEASUREMENT))
    points = [to_point(row["meter"], row["_time"], row["_value"]) for row in rows]
    client.write_api(write_options=SYNCHRONOUS).write(bucket=rollup, record=points)
    return len(points)


def read_rollup(client: InfluxDBClient, rollup: str, start: datetime, stop: datetime) -> list[dict]:
    # aggregateWindow stamps each window with its stop, so the last one sits at `stop`: read one minute past it.
    text = flux(
        READ_BACK, bucket=rollup, start=start, stop=stop + timedelta(minutes=1), measurement=MEASUREMENT
    )
    return query_rows(client, text)


def count_raw(client: InfluxDBClient, raw: str, start: datetime, stop: datetime) -> int:
    return len(
        query_rows(client, flux(READ_BACK, bucket=raw, start=start, stop=stop, measurement=MEASUREMENT))
    )


def run(client: InfluxDBClient) -> DownsamplingResult:
    console.title("InfluxDB: downsampling into a long-lived bucket, raw data kept an hour")

    console.step("Create a raw bucket that keeps one hour and a rollup bucket that keeps 52 weeks")
    major = server_major(client)
    console.say(f"InfluxDB {client.version()}")
    retention = create_buckets_v1(client) if major == 1 else create_buckets_v2(client)
    raw, rollup = bucket_names(major)
    if major == 1:
        console.plan("\n".join(V1_SETUP[2:]))
        console.say("1.x has no buckets API: a database with a retention policy plays each bucket.")
    else:
        console.plan(
            "\n".join(
                f"create_bucket(bucket_name={name!r}, retention_rules=BucketRetentionRules(type='expire',"
                f" every_seconds={seconds}))"
                for name, seconds in ((RAW, RAW_RETENTION_S), (ROLLUP, ROLLUP_RETENTION_S))
            )
        )
    console.table(
        ["role", "retention", "shard group", "configured with"],
        [
            (
                role,
                _duration(r.retention_s),
                _duration(r.shard_group_s) if r.shard_group_s else "-",
                r.configured_by,
            )
            for role, r in zip(("raw", "rollup"), retention, strict=True)
        ],
    )
    console.say(f"addressed as {raw!r} and {rollup!r}")
    console.say("Expiry drops whole shard groups once they are older than the retention, not single points.")

    console.step(f"Write {MINUTES} minutes of raw readings, one every {RAW_STEP_S} s per meter")
    end = window_end()
    start = end - timedelta(minutes=MINUTES)
    readings = generate_readings(end)
    client.write_api(write_options=SYNCHRONOUS).write(
        bucket=raw, record=[to_point(r.meter, r.time, r.watts) for r in readings]
    )
    stored = count_raw(client, raw, start, end)
    console.say(
        f"{len(readings):,} readings from {len(METERS)} meters, {start:%H:%M}-{end:%H:%M} UTC;"
        f" {QUIET_METER} sent nothing for {len(QUIET_MINUTES)} minutes. Stored: {stored:,}."
    )
    refused, message = write_old_point(client, raw, end)
    console.say(
        f"a point two hours old, written to the raw bucket: {'refused' if refused else 'accepted'} ({message})"
    )

    console.step("Downsample: aggregateWindow(every: 1m, fn: mean) into the rollup bucket")
    to_refused = None
    with timer() as took:
        if major == 2:
            way = "Flux to(): the server reads, aggregates and writes in one query"
            console.plan(
                flux(DOWNSAMPLE_TO, raw=raw, rollup=rollup, start=start, stop=end, measurement=MEASUREMENT)
            )
            written = downsample_v2(client, raw, rollup, start, end)
        else:
            to_refused = to_refusal_v1(client, raw, rollup, start, end)
            way = "Flux aggregateWindow, then the client's write API (Flux 0.65 on 1.8 has no to())"
            console.plan(flux(DOWNSAMPLE, raw=raw, start=start, stop=end, measurement=MEASUREMENT))
            written = downsample_v1(client, raw, rollup, start, end)
    if to_refused is not None:
        console.say(f"to() on this server: {to_refused}")
    console.say(f"way taken: {way}; {written} means written in {console.seconds(took.seconds)}")
    console.say(
        "(on 1.x, InfluxQL SELECT mean(watts) INTO ... GROUP BY time(1m), * would do it server-side too)"
    )

    console.step("Check the rollup bucket: one point per window with data, each the mean of its raw points")
    rows = read_rollup(client, rollup, start, end)
    expected = expected_means(readings)
    downsampled = {meter: sum(1 for row in rows if row["meter"] == meter) for meter in METERS}
    windows = {meter: sum(1 for m, _ in expected if m == meter) for meter in METERS}
    worst = max(
        (abs(row["_value"] - expected[(row["meter"], row["_time"])]) for row in rows), default=math.inf
    )
    console.table(
        ["meter", "raw points", "windows with data", "points in rollup"],
        [(m, sum(1 for r in readings if r.meter == m), windows[m], downsampled[m]) for m in METERS],
    )
    sample = [
        (
            f"{row['_time']:%H:%M}",
            row["meter"],
            f"{row['_value']:.2f}",
            f"{expected[(row['meter'], row['_time'])]:.2f}",
        )
        for row in rows
        if row["meter"] == QUIET_METER
    ][QUIET_MINUTES.start - 2 : QUIET_MINUTES.start + 1]
    console.table(["window stop", "meter", "rollup mean", "Python mean"], sample)
    console.say(
        f"largest difference from the Python means: {worst:.2e}; the {len(QUIET_MINUTES)} quiet minutes have"
        " no point at all (createEmpty: false), so a gap stays a gap."
    )

    return DownsamplingResult(
        server_major=major,
        way=way,
        to_refused=to_refused,
        retention=retention,
        raw_points=len(readings),
        raw_stored=stored,
        old_point_refused=refused,
        old_point_message=message,
        expected_windows=windows,
        downsampled=downsampled,
        max_mean_error=round(worst, 9),
        sample=sample,
        downsample_s=took.seconds,
    )


def _duration(seconds: int) -> str:
    if seconds and seconds % (7 * 86400) == 0:
        return f"{seconds // (7 * 86400)}w"
    if seconds and seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    return f"{seconds}s" if seconds else "infinite"


def main() -> int:
    require(*REQUIRES)
    with InfluxDBClient(
        url=influx_url(),
        token=setting("INFLUX_TOKEN"),
        org=setting("INFLUX_ORG"),
        timeout=CONNECT_TIMEOUT_S * 10_000,
    ) as client:
        result = run(client)
    return 0 if result.downsampled == result.expected_windows and result.max_mean_error < 1e-6 else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""InfluxDB writes and queries: line protocol, tags against fields, batching, and Flux windows

Two days of readings from four climate sensors (a daily temperature cycle, noise, lost readings and
a sensor that went offline for three hours) are written as line protocol, a few lines of which are
shown. The same 5,000 requests are then written twice, once with the request id as a tag and once
as a field, and the series each way creates are counted: every distinct tag value is one more series
in the index. One HTTP request per point is measured against the client's batching writer, whose
errors are surfaced through its callbacks; the requests and the points in them are counted as they
leave the client's HTTP layer: a field type conflict is reported, not lost in a
background thread. Flux reads the data back with range, filter, aggregateWindow and pivot, and the
hourly means are checked against the same means computed in Python.

Engine: InfluxDB (INFLUX_URL, INFLUX_TOKEN, INFLUX_ORG, INFLUX_BUCKET), measurements prefixed
`influxdb_write_and_query_`. Runs on InfluxDB 2.x (compose) and on the local 1.8 with Flux.
Run: `make up SERVICES=influxdb` (or `make local-up`), then `python timeseries/influxdb_write_and_query.py`.
Look for: 5,000 series for the tag against 4 for the field, the batching writer's points per second
against one request per point, the conflict reported by the error callback, and an hourly mean error of 0.
"""

from __future__ import annotations

import json
import math
import random
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import requests
from influxdb_client import InfluxDBClient, Point, WriteOptions, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException

from common import console
from common.settings import CONNECT_TIMEOUT_S, influx_url, require, setting
from common.timing import best_of, timer

REQUIRES = ("influxdb",)
CLIMATE = "influxdb_write_and_query_climate"
BY_TAG = "influxdb_write_and_query_requests_by_tag"
BY_FIELD = "influxdb_write_and_query_requests_by_field"
MEASUREMENTS = (CLIMATE, BY_TAG, BY_FIELD)
SEED = 17
DAYS = 2
DAYS_BACK = 3  # the data ends a day before today: inside any retention, and never in the future
STEP_S = 60
SENSORS = {"greenhouse": (24.0, 6.0), "office": (21.0, 2.0), "attic": (19.0, 9.0), "cellar": (13.0, 0.5)}
OFFLINE_SENSOR, OFFLINE_HOURS = "cellar", range(30, 33)  # hours after the anchor with no reading at all
LOST_SHARE = 0.02  # single readings lost in transit
N_REQUESTS = 5_000
REQUEST_STEP_S = 30
ROUTES = {"/search": 40.0, "/cart": 25.0, "/checkout": 90.0, "/profile": 15.0}  # median latency, ms
SYNC_POINTS = 200  # written one HTTP request per point
BATCH_SIZE = 5_000
PIVOT_SENSOR = "greenhouse"
UTC = timezone.utc

# Flux text: values cannot be bound (see flux()), so every name in it is an @placeholder.
HOURLY_MEANS = """
from(bucket: @bucket)
  |> range(start: @start, stop: @stop)
  |> filter(fn: (r) => r._measurement == @measurement and r._field == "temperature")
  |> aggregateWindow(every: 1h, fn: mean, createEmpty: true)
"""
PIVOTED_HOURS = """
from(bucket: @bucket)
  |> range(start: @start, stop: @stop)
  |> filter(fn: (r) => r._measurement == @measurement and r.sensor == @sensor)
  |> aggregateWindow(every: 1h, fn: mean, createEmpty: false)
  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")
"""
COUNT_SERIES = """
from(bucket: @bucket)
  |> range(start: @start, stop: @stop)
  |> filter(fn: (r) => r._measurement == @measurement and r._field == "latency_ms")
  |> first()
  |> group()
  |> count()
"""
MEAN_BY_ROUTE = """
from(bucket: @bucket)
  |> range(start: @start, stop: @stop)
  |> filter(fn: (r) => r._measurement == @measurement and r._field == "latency_ms")
  |> group(columns: ["route"])
  |> mean()
"""
COUNT_TEMPERATURES = """
from(bucket: @bucket)
  |> range(start: @start, stop: @stop)
  |> filter(fn: (r) => r._measurement == @measurement and r._field == "temperature")
  |> group()
  |> count()
"""
# InfluxDB 1.x only (InfluxQL): the measurement names are written literally, as SQL identifiers would be.
DROP_STATEMENTS = [
    "DROP MEASUREMENT influxdb_write_and_query_climate",
    "DROP MEASUREMENT influxdb_write_and_query_requests_by_tag",
    "DROP MEASUREMENT influxdb_write_and_query_requests_by_field",
]
CARDINALITY_STATEMENTS = {
    BY_TAG: "SHOW SERIES EXACT CARDINALITY FROM influxdb_write_and_query_requests_by_tag",
    BY_FIELD: "SHOW SERIES EXACT CARDINALITY FROM influxdb_write_and_query_requests_by_field",
}
# InfluxDB 2.x only: the delete API's predicates, one per measurement.
DELETE_PREDICATES = [
    '_measurement="influxdb_write_and_query_climate"',
    '_measurement="influxdb_write_and_query_requests_by_tag"',
    '_measurement="influxdb_write_and_query_requests_by_field"',
]


@dataclass(frozen=True)
class Reading:
    sensor: str
    time: datetime
    temperature: float
    humidity: float


class WriteRequests:
    """Counts the write requests the client's HTTP layer (urllib3) sends, and the lines in their bodies.

    It wraps the client's connection pool, so the count is what went over the wire, from any thread:
    the batching writer sends from a background thread of its own.
    """

    def __init__(self, client: InfluxDBClient) -> None:
        self.requests = self.points = 0
        self._lock = threading.Lock()
        pool = client.api_client.rest_client.pool_manager
        send = pool.request

        def counting(method, url, *args, **kwargs):
            if method == "POST" and "/write" in url:
                with self._lock:
                    self.requests += 1
                    self.points += len(_lines(kwargs.get("body") or b""))
            return send(method, url, *args, **kwargs)

        pool.request = counting

    def snapshot(self) -> tuple[int, int]:
        with self._lock:
            return self.requests, self.points


@dataclass
class WriteRun:
    points: int  # lines in the bodies of the write requests
    requests: int = field(compare=False)  # HTTP requests sent: the writer's also depend on its flush timer
    errors: int  # batches the error callback received
    retries: int
    seconds: float = field(compare=False)

    @property
    def points_per_s(self) -> float:
        return self.points / self.seconds if self.seconds else float("inf")


@dataclass
class Cardinality:
    series_by_tag: int
    series_by_field: int
    influxql_by_tag: int | None  # SHOW SERIES EXACT CARDINALITY, on 1.x where InfluxQL has it
    influxql_by_field: int | None
    same_means: bool  # both layouts answer "mean latency by route" alike
    mean_by_route: dict[str, float]
    by_tag_s: float = field(compare=False)
    by_field_s: float = field(compare=False)


@dataclass
class InfluxWriteQueryResult:
    server_major: int
    readings: int
    line_protocol: list[str] = field(compare=False)  # the timestamps move with the day the lesson runs
    one_per_request: WriteRun
    in_lists: WriteRun
    batched: WriteRun
    conflict_raised: str  # the exception the synchronous API raised
    conflict_status: int
    conflict_message: str
    conflict_reported: int  # errors the batching writer's callback received for the same bad point
    temperatures_stored: int  # the bad point is not among them
    cardinality: Cardinality
    hourly_windows: int
    empty_windows: dict[str, int]
    max_hourly_error: float
    expected_empty_windows: dict[str, int]
    pivot_rows: int
    pivot_columns: list[str]


def flux_string(value: str) -> str:
    """A Flux string literal: backslash and double quote escaped, and `${`, which opens interpolation."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${") + '"'


def flux(template: str, **values: str | datetime) -> str:
    """Flux text with each @name replaced by a quoted literal of its value.

    InfluxDB OSS, 1.8 and 2.x alike, cannot bind values into Flux: the client's `params=` travels
    as an `extern` option that only InfluxDB Cloud reads (1.8 answers `undefined identifier
    "params"`). So the few values a query needs are written into its text here, and only here,
    quoted as literals. They are this lesson's configuration (the bucket setting, measurement
    names that are module constants, times it computed), never data from outside.
    """
    text = template.strip()
    for name in sorted(values, key=len, reverse=True):  # @start before @s, should both exist
        value = values[name]
        if isinstance(value, datetime):
            literal = "time(v: " + flux_string(value.astimezone(UTC).isoformat().replace("+00:00", "Z")) + ")"
        else:
            literal = flux_string(value)
        text = text.replace("@" + name, literal)
    return text


def anchor_time() -> datetime:
    """Midnight UTC, DAYS_BACK days ago: fixed timestamps for the day, so a rerun overwrites the same points."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=DAYS_BACK)


def generate_readings(anchor: datetime, seed: int = SEED) -> list[Reading]:
    """One reading a minute per sensor: a daily cycle peaking mid-afternoon, noise, and gaps."""
    rng = random.Random(seed)
    readings = []
    for minute in range(DAYS * 24 * 60):
        at = anchor + timedelta(seconds=minute * STEP_S)
        phase = 2 * math.pi * ((minute % 1440) / 1440 - 0.375)
        for sensor, (mean, swing) in SENSORS.items():
            temperature = round(mean + swing * math.sin(phase) + rng.gauss(0, 0.3), 2)
            humidity = round(60 - 1.5 * (temperature - mean) + rng.gauss(0, 1.0), 1)
            lost = rng.random() < LOST_SHARE
            offline = sensor == OFFLINE_SENSOR and minute // 60 in OFFLINE_HOURS
            if not (lost or offline):
                readings.append(Reading(sensor, at, temperature, humidity))
    return readings


def climate_point(reading: Reading) -> Point:
    return (
        Point(CLIMATE)
        .tag("sensor", reading.sensor)
        .tag("site", "north" if reading.sensor != "cellar" else "north-basement")
        .field("temperature", reading.temperature)
        .field("humidity", reading.humidity)
        .time(reading.time, WritePrecision.S)
    )


def request_points(anchor: datetime, seed: int = SEED) -> tuple[list[Point], list[Point], dict]:
    """The same requests twice: request_id as a tag (one series each) and as a field."""
    rng = random.Random(seed + 1)
    routes = list(ROUTES)
    by_tag, by_field, latencies = [], [], {route: [] for route in routes}
    for i in range(N_REQUESTS):
        route = rng.choice(routes)
        latency = round(rng.lognormvariate(math.log(ROUTES[route]), 0.5), 2)
        at = anchor + timedelta(seconds=i * REQUEST_STEP_S)
        request_id = f"req-{i:06d}"
        by_tag.append(
            Point(BY_TAG)
            .tag("route", route)
            .tag("request_id", request_id)
            .field("latency_ms", latency)
            .time(at, WritePrecision.S)
        )
        by_field.append(
            Point(BY_FIELD)
            .tag("route", route)
            .field("request_id", request_id)
            .field("latency_ms", latency)
            .time(at, WritePrecision.S)
        )
        latencies[route].append(latency)
    return by_tag, by_field, {route: sum(values) / len(values) for route, values in latencies.items()}


def server_major(client: InfluxDBClient) -> int:
    """1 for the local 1.8 stand-in, 2 for the compose image (its version reads "v2.7.12")."""
    return int(client.version().lstrip("v").split(".")[0])


def influxql(client: InfluxDBClient, statement: str, database: str) -> dict:
    """InfluxDB 1.x: an InfluxQL statement over POST /query; errors come back inside a 200 answer."""
    response = requests.post(
        client.url.rstrip("/") + "/query",
        data={"q": statement, "db": database},
        headers={"Authorization": "Token " + client.token},
        timeout=30,
    )
    response.raise_for_status()
    answer = response.json()
    errors = [result["error"] for result in answer.get("results", []) if "error" in result]
    if errors:
        raise RuntimeError(f"InfluxQL {statement!r}: {'; '.join(errors)}")
    return answer


def database_of(bucket: str) -> str:
    """On 1.x a bucket is "database/retention-policy"."""
    return bucket.split("/")[0]


def reset_measurements(client: InfluxDBClient, bucket: str, major: int) -> str:
    """Remove the lesson's points: InfluxQL DROP MEASUREMENT on 1.x, the delete API on 2.x."""
    if major == 1:
        for statement in DROP_STATEMENTS:
            influxql(client, statement, database_of(bucket))
        return "InfluxQL DROP MEASUREMENT (1.x has no delete API)"
    deleter = client.delete_api()
    stop = datetime.now(UTC) + timedelta(days=1)
    for predicate in DELETE_PREDICATES:
        deleter.delete(datetime(1970, 1, 1, tzinfo=UTC), stop, predicate, bucket=bucket, org=client.org)
    return "the delete API, one predicate per measurement"


def write_one_per_request(
    client: InfluxDBClient, bucket: str, points: list[Point], sent: WriteRequests
) -> WriteRun:
    """The naive way: every point is its own HTTP request, and its own round trip."""
    writer = client.write_api(write_options=SYNCHRONOUS)
    requests_before, points_before = sent.snapshot()
    with timer() as took:
        for point in points:
            writer.write(bucket=bucket, record=point)
    requests_after, points_after = sent.snapshot()
    return WriteRun(points_after - points_before, requests_after - requests_before, 0, 0, took.seconds)


def write_in_lists(client: InfluxDBClient, bucket: str, points: list[Point], sent: WriteRequests) -> WriteRun:
    """Batching by hand: the synchronous API sends a list of points as one request and raises on failure."""
    writer = client.write_api(write_options=SYNCHRONOUS)
    requests_before, points_before = sent.snapshot()
    with timer() as took:
        for start in range(0, len(points), BATCH_SIZE):
            writer.write(bucket=bucket, record=points[start : start + BATCH_SIZE])
    requests_after, points_after = sent.snapshot()
    return WriteRun(points_after - points_before, requests_after - requests_before, 0, 0, took.seconds)


def write_batched(
    client: InfluxDBClient, bucket: str, points: list[Point], sent: WriteRequests
) -> tuple[WriteRun, list[Exception]]:
    """The batching writer: points queue up and go out BATCH_SIZE at a time from a background thread.

    A background writer cannot raise into the code that queued the point, so the callbacks are the
    only place its failures appear: without an error callback a rejected batch is only logged.
    Leaving the `with` block waits until every queued batch has been sent.
    """
    errors, retries = [], []
    options = WriteOptions(batch_size=BATCH_SIZE, flush_interval=1_000, max_retries=3, retry_interval=500)
    requests_before, points_before = sent.snapshot()
    with (
        timer() as took,
        client.write_api(
            write_options=options,
            error_callback=lambda _conf, _data, error: errors.append(error),
            retry_callback=lambda _conf, _data, error: retries.append(error),
        ) as writer,
    ):
        writer.write(bucket=bucket, record=points)
    requests_after, points_after = sent.snapshot()
    run = WriteRun(
        points_after - points_before,
        requests_after - requests_before,
        len(errors),
        len(retries),
        took.seconds,
    )
    return run, errors


def _lines(data: bytes | str) -> list:
    return (data.decode() if isinstance(data, bytes) else data).splitlines()


def conflicting_point(reading: Reading) -> Point:
    """The same series and time as a stored reading, with temperature as a string: a type conflict."""
    return (
        Point(CLIMATE)
        .tag("sensor", reading.sensor)
        .tag("site", "north" if reading.sensor != "cellar" else "north-basement")
        .field("temperature", f"{reading.temperature} C")
        .time(reading.time, WritePrecision.S)
    )


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


def count_series(
    client: InfluxDBClient, bucket: str, measurement: str, start: datetime, stop: datetime
) -> int:
    rows = query_rows(
        client, flux(COUNT_SERIES, bucket=bucket, start=start, stop=stop, measurement=measurement)
    )
    return rows[0]["_value"] if rows else 0


def influxql_cardinality(client: InfluxDBClient, bucket: str, measurement: str) -> int:
    answer = influxql(client, CARDINALITY_STATEMENTS[measurement], database_of(bucket))
    series = answer["results"][0].get("series", [])
    return series[0]["values"][0][0] if series else 0


def mean_by_route(
    client: InfluxDBClient, bucket: str, measurement: str, start: datetime, stop: datetime
) -> dict:
    text = flux(MEAN_BY_ROUTE, bucket=bucket, start=start, stop=stop, measurement=measurement)
    return {row["route"]: row["_value"] for row in query_rows(client, text)}


def tags_against_fields(
    client: InfluxDBClient, bucket: str, major: int, anchor: datetime, sent: WriteRequests
) -> tuple[Cardinality, list[str]]:
    by_tag, by_field, python_means = request_points(anchor)
    for points in (by_tag, by_field):
        write_in_lists(client, bucket, points, sent)
    start, stop = anchor, anchor + timedelta(days=DAYS)
    series = {m: count_series(client, bucket, m, start, stop) for m in (BY_TAG, BY_FIELD)}
    cardinality = (
        {m: influxql_cardinality(client, bucket, m) for m in (BY_TAG, BY_FIELD)}
        if major == 1
        else {BY_TAG: None, BY_FIELD: None}
    )
    means, seconds = {}, {}
    for m in (BY_TAG, BY_FIELD):
        answers = []
        seconds[m] = best_of(
            lambda m=m, a=answers: a.append(mean_by_route(client, bucket, m, start, stop)), 2
        )
        means[m] = answers[-1]
    same = all(
        math.isclose(means[BY_TAG][route], means[BY_FIELD][route], rel_tol=1e-9)
        and math.isclose(means[BY_TAG][route], python_means[route], rel_tol=1e-9)
        for route in ROUTES
    )
    return (
        Cardinality(
            series_by_tag=series[BY_TAG],
            series_by_field=series[BY_FIELD],
            influxql_by_tag=cardinality[BY_TAG],
            influxql_by_field=cardinality[BY_FIELD],
            same_means=same,
            mean_by_route={route: round(value, 3) for route, value in sorted(means[BY_TAG].items())},
            by_tag_s=seconds[BY_TAG],
            by_field_s=seconds[BY_FIELD],
        ),
        [by_tag[0].to_line_protocol(), by_field[0].to_line_protocol()],
    )


def python_hourly_means(readings: list[Reading], anchor: datetime) -> dict[tuple[str, datetime], float]:
    """Key: sensor and the window's stop time, as aggregateWindow stamps it."""
    sums: dict[tuple[str, datetime], list[float]] = {}
    for reading in readings:
        hour = int((reading.time - anchor).total_seconds() // 3600)
        stop = anchor + timedelta(hours=hour + 1)
        sums.setdefault((reading.sensor, stop), []).append(reading.temperature)
    return {key: sum(values) / len(values) for key, values in sums.items()}


def hourly_means(client: InfluxDBClient, bucket: str, readings: list[Reading], anchor: datetime) -> dict:
    start, stop = anchor, anchor + timedelta(days=DAYS)
    text = flux(HOURLY_MEANS, bucket=bucket, start=start, stop=stop, measurement=CLIMATE)
    rows = query_rows(client, text)
    expected = python_hourly_means(readings, anchor)
    empty = {sensor: 0 for sensor in SENSORS}
    worst = 0.0
    for row in rows:
        if row["_value"] is None:
            empty[row["sensor"]] += 1
        else:
            worst = max(worst, abs(row["_value"] - expected[(row["sensor"], row["_time"])]))
    return {"rows": rows, "windows": len(rows), "empty": empty, "max_error": worst}


def pivoted(client: InfluxDBClient, bucket: str, anchor: datetime) -> list[dict]:
    start, stop = anchor, anchor + timedelta(days=DAYS)
    text = flux(
        PIVOTED_HOURS, bucket=bucket, start=start, stop=stop, measurement=CLIMATE, sensor=PIVOT_SENSOR
    )
    return query_rows(client, text)


def run(client: InfluxDBClient, bucket: str) -> InfluxWriteQueryResult:
    console.title("InfluxDB: line protocol, tags against fields, batching, and Flux windows")

    console.step("Which server answers: the write and query paths differ between 1.x and 2.x")
    major = server_major(client)
    console.say(f"InfluxDB {client.version()} (ping: {client.ping()}); bucket {bucket!r}")
    how = reset_measurements(client, bucket, major)
    console.say(f"The lesson's measurements were removed with {how}.")

    console.step("Line protocol: measurement,tags fields timestamp, one point per line")
    anchor = anchor_time()
    readings = generate_readings(anchor)
    points = [climate_point(reading) for reading in readings]
    console.say(
        f"{len(readings):,} readings from {len(SENSORS)} sensors, one a minute for {DAYS} days from"
        f" {anchor:%Y-%m-%d %H:%M} UTC; the {OFFLINE_SENSOR} sensor is silent for {len(OFFLINE_HOURS)} hours."
    )
    lines = [point.to_line_protocol() for point in points[:3]]
    console.plan("\n".join(lines))
    console.say("Tags (sensor, site) are indexed strings that name a series; fields are the measured values.")

    console.step(f"Write {SYNC_POINTS} points one HTTP request each, then all of them in batches, two ways")
    sent = WriteRequests(client)
    one_each = write_one_per_request(client, bucket, points[:SYNC_POINTS], sent)
    in_lists = write_in_lists(client, bucket, points, sent)
    batched, _ = write_batched(client, bucket, points, sent)
    console.table(
        ["way", "points sent", "HTTP requests sent", "errors", "points per second"],
        [
            ("one request per point", one_each.points, one_each.requests, one_each.errors, f"{one_each.points_per_s:,.0f}"),
            (f"synchronous, lists of {BATCH_SIZE:,}", in_lists.points, in_lists.requests, in_lists.errors,
             f"{in_lists.points_per_s:,.0f}"),
            ("batching writer (background thread)", batched.points, batched.requests, batched.errors,
             f"{batched.points_per_s:,.0f}"),
        ],
    )  # fmt: skip
    console.say(
        f"batching: {in_lists.points_per_s / one_each.points_per_s:.0f}x (lists) and"
        f" {batched.points_per_s / one_each.points_per_s:.0f}x (writer) the points per second of one request"
        " per point. The writer costs client CPU; what it buys is writes that never block the caller,"
        " retries with backoff, and a flush every second even when batches are not full."
    )
    console.say(
        "Every way wrote the same points: one series and timestamp hold one value, so rewrites overwrite."
    )

    console.step("A bad point: temperature as a string where the series already holds floats")
    bad = conflicting_point(readings[0])
    console.plan(bad.to_line_protocol())
    try:
        client.write_api(write_options=SYNCHRONOUS).write(bucket=bucket, record=bad)
        raised, status, message = "nothing", 0, "accepted"
    except ApiException as error:
        raised, status, message = type(error).__name__, error.status, error_message(error)
    console.say(f"synchronous write: {raised} (HTTP {status}): {message}")
    _, reported = write_batched(client, bucket, [bad], sent)
    console.say(
        f"batching writer: the call returned at once; its error callback received {len(reported)} error(s):"
        f" {error_message(reported[0]) if reported else 'none'}"
    )
    console.say("(the client also logs the failed batch at ERROR level; 4xx answers are not retried)")
    counted = query_rows(
        client,
        flux(
            COUNT_TEMPERATURES,
            bucket=bucket,
            start=anchor,
            stop=anchor + timedelta(days=DAYS),
            measurement=CLIMATE,
        ),
    )
    stored = counted[0]["_value"] if counted else 0
    console.say(
        f"temperatures stored: {stored:,} of {len(readings):,} readings written; the string was dropped"
    )

    console.step(f"Tags against fields: {N_REQUESTS:,} requests with request_id as a tag, then as a field")
    cardinality, request_lines = tags_against_fields(client, bucket, major, anchor, sent)
    console.plan("\n".join(request_lines))
    console.table(
        ["layout", "series (Flux)", "series (InfluxQL)", "mean latency by route"],
        [
            ("request_id as a tag", cardinality.series_by_tag, _or_dash(cardinality.influxql_by_tag),
             console.seconds(cardinality.by_tag_s)),
            ("request_id as a field", cardinality.series_by_field, _or_dash(cardinality.influxql_by_field),
             console.seconds(cardinality.by_field_s)),
        ],
    )  # fmt: skip
    console.compare("request_id as a tag", cardinality.by_tag_s, "as a field", cardinality.by_field_s)
    console.say(
        "Each series costs memory in the index for as long as it is retained, and a query touches every"
        " series it matches. Unique ids belong in fields; tags are for the few values you group and filter by."
    )
    console.say(f"Both answer the same mean latency by route: {cardinality.same_means}")

    console.step("Flux: range, filter, aggregateWindow(every: 1h, fn: mean), checked against Python")
    hourly = hourly_means(client, bucket, readings, anchor)
    console.plan(
        flux(
            HOURLY_MEANS, bucket=bucket, start=anchor, stop=anchor + timedelta(days=DAYS), measurement=CLIMATE
        )
    )
    shown = [r for r in hourly["rows"] if r["sensor"] == OFFLINE_SENSOR][
        OFFLINE_HOURS.start - 1 : OFFLINE_HOURS.stop + 1
    ]
    console.table(
        ["window stop", "sensor", "mean temperature"],
        [(f"{r['_time']:%m-%d %H:%M}", r["sensor"], "(empty)" if r["_value"] is None else f"{r['_value']:.2f}")
         for r in shown],
    )  # fmt: skip
    expected_empty = {sensor: len(OFFLINE_HOURS) if sensor == OFFLINE_SENSOR else 0 for sensor in SENSORS}
    console.say(
        f"{hourly['windows']} hourly windows; empty ones (createEmpty: true) per sensor: {hourly['empty']};"
        f" largest difference from Python's means: {hourly['max_error']:.2e}"
    )

    console.step("pivot(): one row per hour with a column per field, as a table-shaped client wants it")
    rows = pivoted(client, bucket, anchor)
    console.table(
        ["hour ending", "temperature", "humidity"],
        [
            (f"{r['_time']:%m-%d %H:%M}", f"{r['temperature']:.2f}", f"{r['humidity']:.1f}")
            for r in rows[10:16]
        ],
    )
    columns = sorted(key for key in rows[0] if not key.startswith("_") and key not in ("result", "table"))
    console.say(f"{len(rows)} rows for {PIVOT_SENSOR}; columns besides the group key: {columns}")

    return InfluxWriteQueryResult(
        server_major=major,
        readings=len(readings),
        line_protocol=lines,
        one_per_request=one_each,
        in_lists=in_lists,
        batched=batched,
        conflict_raised=raised,
        conflict_status=status,
        conflict_message=message,
        conflict_reported=len(reported),
        temperatures_stored=stored,
        cardinality=cardinality,
        hourly_windows=hourly["windows"],
        empty_windows=hourly["empty"],
        max_hourly_error=round(hourly["max_error"], 9),
        expected_empty_windows=expected_empty,
        pivot_rows=len(rows),
        pivot_columns=columns,
    )


def _or_dash(value: int | None) -> object:
    return "-" if value is None else value


def main() -> int:
    require(*REQUIRES)
    with InfluxDBClient(
        url=influx_url(),
        token=setting("INFLUX_TOKEN"),
        org=setting("INFLUX_ORG"),
        timeout=CONNECT_TIMEOUT_S * 10_000,  # milliseconds: a query over 5,000 series takes a moment
    ) as client:
        result = run(client, setting("INFLUX_BUCKET"))
    batched = result.in_lists.requests * 1000 < result.in_lists.points
    return 0 if batched and result.max_hourly_error < 1e-6 and result.conflict_reported == 1 else 1


if __name__ == "__main__":
    raise SystemExit(main())

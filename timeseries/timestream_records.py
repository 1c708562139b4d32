"""Amazon Timestream records: dimensions and measures, multi-measure records, batches and the write window

Timestream for LiveAnalytics stores a record as dimensions (what identifies the series: region, az,
host) plus measures (the values: cpu, memory, disk) at a time. One record per measure repeats the
dimensions for every value; a multi-measure record carries all of a host's values at once, and
CommonAttributes sends what every record of a request shares only once: both are counted here in
requests and bytes. WriteRecords takes at most 100 records (read from the API model botocore ships);
a 101-record batch is sent to see who refuses it. A record must fall inside the write window: not
older than the table's memory-store retention (unless magnetic-store writes are on) and not more
than 15 minutes ahead (AWS's quota); the lesson checks each record itself and compares with what the
server rejected. Memory store (recent, fast point queries) against magnetic store (older, cheaper,
analytical): where a record of each age lives, from the retention read back from the table.

What runs where: locally and in compose the server is moto, whose write API stores records and
reports counts, but enforces neither the 100-record limit nor the window (checked, December 2026,
moto 5.2.6), and whose query API returns canned results: a query answered by moto proves nothing, so
no figure here comes from one. With EXAMPLES_REAL_AWS=1 and AWS credentials the same run goes to
AWS, where the server's refusals and a real count(*) are compared with the lesson's own checks.
Where AWS stands: Timestream for LiveAnalytics has been closed to new customers since 20 June 2025
(existing accounts keep using it); for new work AWS points to Amazon Timestream for InfluxDB, a
managed InfluxDB, which timeseries/influxdb_*.py teach.

Engine: moto (MOTO_URL; or AWS with EXAMPLES_REAL_AWS=1), database `timestream_records`.
Run: `make up SERVICES=moto` (or `make local-up`), then `python timeseries/timestream_records.py`.
Look for: 18 requests against 6 for the same values, the 101-record batch and who refused it, the
window table (the lesson rejects 2 of 4; moto accepted all 4), and "query rows: 0 (canned)".
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass

import boto3
import botocore.session
from botocore.config import Config
from botocore.exceptions import ClientError, ParamValidationError

from common import console
from common.settings import CONNECT_TIMEOUT_S, BadSetting, flag, moto_url, require

REQUIRES = ("moto",)
DATABASE, TABLE = "timestream_records", "host_metrics"
SEED = 7
HOSTS, MINUTES = 20, 30  # one reading a minute per host
MEASURES = ("cpu_utilization", "memory_utilization", "disk_io_ops")
MEMORY_HOURS, MAGNETIC_DAYS = 12, 7
FUTURE_MINUTES = 15  # "Future ingestion period in minutes", AWS's Timestream quotas page
HOUR_MS = 3_600_000
# Records written at these offsets from now, to probe the window (hours; negative is the past).
PROBES = {"now": 0.0, "11 h ago": -11.0, "2 days ago": -48.0, "30 min ahead": 0.5}
COUNT = 'SELECT count(*) FROM "timestream_records"."host_metrics"'  # no bound parameters in Timestream


@dataclass
class WriteWay:
    name: str
    records: int
    requests: int
    request_bytes: int
    ingested: int  # the server's RecordsIngested.Total, summed


@dataclass
class WindowProbe:
    label: str
    lesson_verdict: str  # "accepted" or why the lesson's check rejects it
    server_verdict: str  # "accepted" or the server's reason


@dataclass
class TimestreamResult:
    server: str  # "moto" or "AWS"
    series: int
    ways: list[WriteWay]
    batch_limit: int  # from the API model
    oversized_refused_by: str  # "server" or "nobody: the server accepted it"
    oversized_ingested: int
    window: list[WindowProbe]
    retention: dict  # read back from the table
    placement: list[tuple[str, str]]  # record age -> where it lives
    query_rows: int  # rows the count(*) query returned
    query_count: int | None  # the count it returned, when it returned one
    records_reported: int  # RecordsIngested the server reported, re-sent duplicates included
    expected_rows: int  # distinct records the lesson's checks accept: what a real count(*) returns

    @property
    def window_enforced_by_server(self) -> bool:
        return all((p.lesson_verdict == "accepted") == (p.server_verdict == "accepted") for p in self.window)

    @property
    def holds(self) -> bool:
        single, multi = self.ways[0], self.ways[1]
        lesson_rejects = sum(p.lesson_verdict != "accepted" for p in self.window)
        return multi.requests < single.requests and self.batch_limit == 100 and lesson_rejects == 2


def clients(url: str | None) -> tuple:
    """(write, query) clients: moto at `url`, or AWS itself (endpoint discovery, real credentials)."""
    options = {"region_name": os.environ.get("AWS_REGION", os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))}
    if url:
        options |= {"endpoint_url": url, "aws_access_key_id": "examples", "aws_secret_access_key": "examples"}
    config = Config(connect_timeout=CONNECT_TIMEOUT_S, retries={"max_attempts": 2, "mode": "standard"})
    return tuple(
        boto3.client(name, config=config, **options) for name in ("timestream-write", "timestream-query")
    )


def model_limits() -> dict[str, int]:
    """The limits the service model (shipped with botocore) declares: what AWS validates."""
    model = botocore.session.get_session().get_service_model("timestream-write")
    retention = model.shape_for("RetentionProperties").members
    return {
        "records": model.operation_model("WriteRecords").input_shape.members["Records"].metadata["max"],
        "memory_hours": retention["MemoryStoreRetentionPeriodInHours"].metadata["max"],
        "magnetic_days": retention["MagneticStoreRetentionPeriodInDays"].metadata["max"],
    }


def reset(write) -> None:
    """Drop the table and database if they exist (moto answers 500, not NotFound, for a missing one)."""
    names = [db["DatabaseName"] for db in write.list_databases()["Databases"]]
    if DATABASE in names:
        for table in write.list_tables(DatabaseName=DATABASE)["Tables"]:
            write.delete_table(DatabaseName=DATABASE, TableName=table["TableName"])
        write.delete_database(DatabaseName=DATABASE)
    write.create_database(DatabaseName=DATABASE)
    write.create_table(
        DatabaseName=DATABASE,
        TableName=TABLE,
        RetentionProperties={"MemoryStoreRetentionPeriodInHours": MEMORY_HOURS, "MagneticStoreRetentionPeriodInDays": MAGNETIC_DAYS},
        MagneticStoreWriteProperties={"EnableMagneticStoreWrites": False},
    )  # fmt: skip


def readings(now_ms: int) -> list[dict]:
    rng = random.Random(SEED)
    return [
        {"host": f"host-{h:02d}", "az": f"us-east-1{'abc'[h % 3]}", "time": now_ms - (MINUTES - m) * 60_000,
         "values": {"cpu_utilization": round(rng.uniform(5, 95), 1), "memory_utilization": round(rng.uniform(20, 90), 1),
                    "disk_io_ops": rng.randint(0, 500)}}
        for h in range(HOSTS) for m in range(MINUTES)
    ]  # fmt: skip


def dimensions(reading: dict, with_region: bool = True) -> list[dict]:
    found = [{"Name": "az", "Value": reading["az"]}, {"Name": "host", "Value": reading["host"]}]
    return [{"Name": "region", "Value": "us-east-1"}, *found] if with_region else found


def single_measure(reading: dict) -> list[dict]:
    """One record per measure: the dimensions and time repeated for each value."""
    return [
        {"Dimensions": dimensions(reading), "MeasureName": name, "MeasureValue": str(value),
         "MeasureValueType": "BIGINT" if isinstance(value, int) else "DOUBLE",
         "Time": str(reading["time"]), "TimeUnit": "MILLISECONDS"}
        for name, value in reading["values"].items()
    ]  # fmt: skip


def multi_measure(reading: dict, with_region: bool = True) -> dict:
    """One record for all of a reading's values (MeasureValueType MULTI)."""
    values = [
        {"Name": name, "Value": str(value), "Type": "BIGINT" if isinstance(value, int) else "DOUBLE"}
        for name, value in reading["values"].items()
    ]
    return {"Dimensions": dimensions(reading, with_region), "MeasureName": "host_metrics", "MeasureValues": values,
            "MeasureValueType": "MULTI", "Time": str(reading["time"]), "TimeUnit": "MILLISECONDS"}  # fmt: skip


def batches(records: list[dict], size: int) -> list[list[dict]]:
    return [records[i : i + size] for i in range(0, len(records), size)]


class RequestMeter:
    """Counts the WriteRecords calls the client makes, and their serialized bodies' bytes.

    botocore may send a call again after a throttle or a dropped connection; that retry is the
    network's doing, not the record layout's, so it is not counted ("before-call", not "before-send").
    """

    def __init__(self, write) -> None:
        self.requests = self.bytes = 0
        write.meta.events.register("before-call.timestream-write.WriteRecords", self._count)

    def _count(self, params, **_) -> None:
        self.requests += 1
        self.bytes += len(params["body"] or b"")


def write_all(
    write, meter: RequestMeter, name: str, records: list[dict], limit: int, common: dict | None = None
) -> WriteWay:
    before = (meter.requests, meter.bytes)
    ingested = 0
    for batch in batches(records, limit):
        extra = {"CommonAttributes": common} if common else {}
        answer = write.write_records(DatabaseName=DATABASE, TableName=TABLE, Records=batch, **extra)
        ingested += answer["RecordsIngested"]["Total"]
    return WriteWay(name, len(records), meter.requests - before[0], meter.bytes - before[1], ingested)


def send_oversized(write, records: list[dict]) -> tuple[str, int]:
    """One batch over the model's limit: refused by the server, or accepted."""
    try:
        answer = write.write_records(DatabaseName=DATABASE, TableName=TABLE, Records=records)
    except ClientError as error:
        return f"server ({error.response['Error']['Code']})", 0
    except ParamValidationError:
        return "client (botocore)", 0
    return "nobody: the server accepted it", answer["RecordsIngested"]["Total"]


def lesson_verdict(time_ms: int, now_ms: int, retention: dict, magnetic_writes: bool) -> str:
    """The write window, checked as AWS documents it."""
    if time_ms > now_ms + FUTURE_MINUTES * 60_000:
        return f"more than {FUTURE_MINUTES} min ahead"
    memory_edge = now_ms - retention["MemoryStoreRetentionPeriodInHours"] * HOUR_MS
    if time_ms < memory_edge and not magnetic_writes:
        return "older than the memory store's retention"
    if time_ms < memory_edge - retention["MagneticStoreRetentionPeriodInDays"] * 24 * HOUR_MS:
        return "older than the magnetic store's retention"
    return "accepted"


def probe_window(write, now_ms: int, retention: dict, magnetic_writes: bool) -> list[WindowProbe]:
    probes = []
    for n, (label, hours) in enumerate(PROBES.items()):
        reading = {
            "host": f"probe-{n}",
            "az": "us-east-1a",
            "time": now_ms + int(hours * HOUR_MS),
            "values": {"cpu_utilization": 1.0},
        }
        try:
            write.write_records(DatabaseName=DATABASE, TableName=TABLE, Records=[multi_measure(reading)])
            server = "accepted"
        except write.exceptions.RejectedRecordsException as error:
            server = error.response.get("RejectedRecords", [{}])[0].get("Reason", "rejected")
        probes.append(
            WindowProbe(label, lesson_verdict(reading["time"], now_ms, retention, magnetic_writes), server)
        )
    return probes  # fmt: skip


def placement(retention: dict) -> list[tuple[str, str]]:
    memory_h, magnetic_h = (
        retention["MemoryStoreRetentionPeriodInHours"],
        retention["MagneticStoreRetentionPeriodInDays"] * 24,
    )
    rows = []
    for age_h in (1, memory_h + 1, memory_h + magnetic_h - 1, memory_h + magnetic_h + 1):
        where = (
            "memory store"
            if age_h < memory_h
            else "magnetic store"
            if age_h < memory_h + magnetic_h
            else "deleted"
        )
        rows.append((f"{age_h} h", where))
    return rows  # fmt: skip


def count_rows(query, real: bool) -> tuple[int, int | None]:
    """count(*) through the query API. On AWS the count can lag the writes (poll briefly); moto's is canned."""
    deadline = time.monotonic() + (60 if real else 0)
    while True:
        rows = query.query(QueryString=COUNT)["Rows"]
        count = int(rows[0]["Data"][0]["ScalarValue"]) if rows else None
        if not real or time.monotonic() > deadline or count:
            return len(rows), count
        time.sleep(2)


def run(write, query, real: bool = False) -> TimestreamResult:
    server = "AWS" if real else "moto"
    console.title(f"Timestream records: dimensions, measures, batches and the write window ({server})")
    limits = model_limits()

    console.step(f"Create database `{DATABASE}` and table `{TABLE}` (dropped first), retention read back")
    reset(write)
    table = write.describe_table(DatabaseName=DATABASE, TableName=TABLE)["Table"]
    retention, magnetic_writes = (
        table["RetentionProperties"],
        table["MagneticStoreWriteProperties"]["EnableMagneticStoreWrites"],
    )
    console.table(["setting", "value", "API model's maximum"], [
        ("memory-store retention, hours", retention["MemoryStoreRetentionPeriodInHours"], limits["memory_hours"]),
        ("magnetic-store retention, days", retention["MagneticStoreRetentionPeriodInDays"], limits["magnetic_days"]),
        ("magnetic-store writes", magnetic_writes, "-")])  # fmt: skip

    console.step(
        "Dimensions identify a series, measures are its values: the same readings written three ways"
    )
    now_ms = int(time.time() * 1000)
    data = readings(now_ms)
    meter = RequestMeter(write)
    shared = {"Dimensions": [{"Name": "region", "Value": "us-east-1"}], "TimeUnit": "MILLISECONDS"}
    ways = [
        write_all(write, meter, "one record per measure", [r for d in data for r in single_measure(d)], limits["records"]),
        write_all(write, meter, "multi-measure records", [multi_measure(d) for d in data], limits["records"]),
        write_all(write, meter, "multi-measure + CommonAttributes", [multi_measure(d, False) for d in data], limits["records"], shared),
    ]  # fmt: skip
    series = len({(d["az"], d["host"]) for d in data})
    console.say(f"{len(data)} readings of {len(MEASURES)} measures from {series} series (region, az, host).")
    console.table(["way", "records", "WriteRecords requests", "request bytes", "ingested (server's count)"],
                  [(w.name, w.records, w.requests, w.request_bytes, w.ingested) for w in ways])  # fmt: skip

    console.step(f"A batch of {limits['records'] + 1} records: the API model allows {limits['records']}")
    refused_by, oversized = send_oversized(
        write, [r for d in data for r in single_measure(d)][: limits["records"] + 1]
    )
    console.say(
        f"Refused by: {refused_by}. The lesson's batches() never sends more than {limits['records']}."
    )
    if not refused_by.startswith("server"):
        console.say("The limit is the API model's and AWS's docs; this server does not enforce it.")

    console.step("The write window: memory-store retention behind, 15 minutes ahead")
    window = probe_window(write, now_ms, retention, magnetic_writes)
    console.table(
        ["record time", "the lesson's check", f"{server}'s answer"],
        [(p.label, p.lesson_verdict, p.server_verdict) for p in window],
    )
    enforced = all((p.lesson_verdict == "accepted") == (p.server_verdict == "accepted") for p in window)
    console.say(
        f"{server} enforced the window: {enforced}"
        + ("" if enforced else "; the lesson's check is what stands.")
    )

    console.step("Memory store against magnetic store: where a record lives as it ages")
    rows = placement(retention)
    console.table(["record age", "lives in"], rows)
    console.say(
        "Memory store: recent data, fast point-in-time queries. Magnetic store: older data, cheaper, analytical."
    )

    console.step("The query API: count(*) of the table")
    query_rows, query_count = count_rows(query, real)
    reported = sum(w.ingested for w in ways) + oversized + sum(p.server_verdict == "accepted" for p in window)
    expected = ways[0].records + ways[1].records + sum(p.lesson_verdict == "accepted" for p in window)
    console.say(
        f"RecordsIngested reported: {reported} (re-sent duplicates included); distinct records: {expected}"
    )
    console.say(f"query rows: {query_rows}, count(*): {query_count}")
    if not real:
        console.say(
            "moto's query API returns canned results (0 rows unless results were queued): it proves nothing."
        )
    console.say(
        "Timestream for LiveAnalytics is closed to new customers (since 20 June 2025); see Timestream for InfluxDB."
    )
    return TimestreamResult(server, series, ways, limits["records"], refused_by, oversized, window, retention, rows,
                            query_rows, query_count, reported, expected)  # fmt: skip


def main() -> int:
    try:
        real = flag("EXAMPLES_REAL_AWS")
    except BadSetting as bad:
        console.error(str(bad))
        return 2
    if not real:
        require(*REQUIRES)
    write, query = clients(None if real else moto_url())
    result = run(write, query, real)
    return 0 if result.holds else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""The bucket pattern in MongoDB: one document per reading, hourly buckets, and a time-series collection

Sensor readings are small, many and always read by sensor and time range. Stored one document per
reading, each repeats the sensor and the field names and needs its own index entry. The bucket
pattern groups a sensor's readings of one hour into one document, written with an upsert that
$push-es the reading and $inc-s a count, with a cap on the count so a sensor that suddenly reports
six times faster opens a new bucket instead of growing one without limit; the bucket also keeps
running totals, so summaries need not open it. MongoDB 5.0+ does this itself in a time-series
collection. This lesson loads the same readings all three ways and measures, side by side, the
documents stored, the data and index sizes (collStats), the write time, and a range query whose
answers must agree.

Engine: MongoDB (MONGO_URL), database `mongodb_bucket_pattern`. The time-series collection and the
index sizes need a real MongoDB; the lesson checks at run time (`list_collections` options for
`timeseries`, an index with a size) and says what it found: the local stand-in creates the
time-series collection as a plain one and does not build non-unique indexes.
Run: `make up SERVICES=mongodb` (or `make local-up`), then `python nosql/mongodb_bucket_pattern.py`.
Look for: the bucket count (one per sensor-hour, three for the hour of the burst), the data per
reading and the index size falling with buckets, and the same range answer from all three.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import bson
import pymongo
from pymongo import UpdateOne
from pymongo.database import Database

from common import console
from common.settings import CONNECT_TIMEOUT_S, mongo_url, require
from common.timing import best_of, timer

REQUIRES = ("mongodb",)
DATABASE = "mongodb_bucket_pattern"
SEED = 53
START = datetime(2024, 6, 1)
N_SENSORS, HOURS = 4, 8
EVERY_S = 120  # a reading every 2 minutes: 30 an hour
BURST_SENSOR, BURST_HOUR, BURST_EVERY_S = "s-03", 5, 20  # one sensor reports 6x faster for an hour
BUCKET_CAP = 60  # readings per bucket document at most
BATCH = 500  # upserts per bulk_write
RANGE_SENSOR = BURST_SENSOR
RANGE_FROM, RANGE_TO = START + timedelta(hours=4, minutes=30), START + timedelta(hours=7, minutes=30)
PER_READING, BUCKETS, TIME_SERIES = "readings", "buckets", "readings_ts"
COLLECTIONS = [PER_READING, BUCKETS, TIME_SERIES]


@dataclass
class Storage:
    collection: str
    measurements: int
    documents: int  # documents stored (for a native time-series collection: its internal buckets)
    data_bytes: int  # collStats size
    index_bytes: int = field(compare=False)  # collStats totalIndexSize
    write_seconds: float = field(compare=False)


@dataclass
class RangeRead:
    collection: str
    documents: int  # documents the client received
    bytes: int
    answer: tuple  # (readings, min, max, mean) in the range
    seconds: float = field(compare=False)


@dataclass
class BucketResult:
    readings: int
    buckets_in_burst_hour: int
    fullest_bucket: int
    native_timeseries: bool
    indexes_built: bool
    storage: dict[str, Storage]
    range_reads: list[RangeRead]
    same_range_answer: bool
    summary_readings_read: int  # documents the $group reads for a per-sensor average
    summary_buckets_read: int
    same_summary: bool

    def stored(self, collection: str) -> Storage:
        return self.storage[collection]


def generate(seed: int = SEED) -> list[dict]:
    """Readings of every sensor in time order; BURST_SENSOR reports faster during BURST_HOUR."""
    rng = random.Random(seed)
    sensors = [f"s-{n:02d}" for n in range(1, N_SENSORS + 1)]
    temperature = {sensor: rng.uniform(18, 24) for sensor in sensors}
    readings = []
    for sensor in sensors:
        at, end = START, START + timedelta(hours=HOURS)
        while at < end:
            temperature[sensor] += rng.uniform(-0.3, 0.3)
            readings.append(
                {"sensor": sensor, "ts": at, "temp_c": round(temperature[sensor], 2),
                 "humidity": round(rng.uniform(30, 70), 1)}
            )  # fmt: skip
            burst = sensor == BURST_SENSOR and (at - START) // timedelta(hours=1) == BURST_HOUR
            at += timedelta(seconds=BURST_EVERY_S if burst else EVERY_S)
    readings.sort(key=lambda r: (r["ts"], r["sensor"]))
    return readings


def hour_of(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def bucket_upsert(reading: dict) -> UpdateOne:
    """Add one reading to its sensor's open bucket for the hour, or open a new one if it is full."""
    value = reading["temp_c"]
    return UpdateOne(
        {"sensor": reading["sensor"], "hour": hour_of(reading["ts"]), "count": {"$lt": BUCKET_CAP}},
        {
            "$push": {"readings": {"ts": reading["ts"], "temp_c": value, "humidity": reading["humidity"]}},
            "$inc": {"count": 1, "sum_temp": value},
            "$min": {"first": reading["ts"], "min_temp": value},
            "$max": {"last": reading["ts"], "max_temp": value},
        },
        upsert=True,
    )


def reset(db: Database) -> bool:
    """Drop the database, create the collections; True if the time-series collection is native."""
    db.client.drop_database(DATABASE)
    db.create_collection(
        TIME_SERIES, timeseries={"timeField": "ts", "metaField": "sensor", "granularity": "minutes"}
    )
    db.readings.create_index([("sensor", 1), ("ts", 1)])
    db.buckets.create_index([("sensor", 1), ("hour", 1)])
    # Picked by name here too: the local stand-in ignores list_collections' filter.
    info = next(c for c in db.list_collections(filter={"name": TIME_SERIES}) if c["name"] == TIME_SERIES)
    return "timeseries" in info.get("options", {})


def write_all(db: Database, readings: list[dict]) -> dict[str, float]:
    seconds = {}
    with timer() as one_per_reading:
        db[PER_READING].insert_many([dict(r) for r in readings])
    seconds[PER_READING] = one_per_reading.seconds
    with timer() as bucketed:
        for start in range(0, len(readings), BATCH):
            # ordered: each upsert sees the buckets the previous ones filled
            db[BUCKETS].bulk_write([bucket_upsert(r) for r in readings[start : start + BATCH]], ordered=True)
    seconds[BUCKETS] = bucketed.seconds
    with timer() as native:
        db[TIME_SERIES].insert_many([dict(r) for r in readings])
    seconds[TIME_SERIES] = native.seconds
    return seconds


def storage(db: Database, name: str, write_seconds: float) -> Storage:
    stats = db.command("collStats", name)
    # A time-series collection reports its internal bucket documents, and no count.
    documents = stats.get("timeseries", {}).get("bucketCount", stats.get("count", 0))
    measurements = db[name].count_documents({})
    if name == BUCKETS:
        measurements = sum(d["count"] for d in db[name].find({}, {"count": 1}))
    return Storage(
        collection=name,
        measurements=measurements,
        documents=int(documents),
        data_bytes=int(stats.get("size", 0)),
        index_bytes=int(stats.get("totalIndexSize", 0)),
        write_seconds=write_seconds,
    )


def indexes_built(db: Database) -> bool:
    """Whether the non-unique index on readings has a size (the local stand-in lists it only)."""
    return db.command("collStats", PER_READING).get("indexSizes", {}).get("sensor_1_ts_1", 0) > 0


# --- the range query, three ways ---------------------------------------------------------------
def range_per_reading(db: Database, collection: str) -> tuple[list[dict], list[float]]:
    query = {"sensor": RANGE_SENSOR, "ts": {"$gte": RANGE_FROM, "$lt": RANGE_TO}}
    found = list(db[collection].find(query, {"_id": 0}))
    return found, [d["temp_c"] for d in found]


def range_buckets(db: Database, collection: str) -> tuple[list[dict], list[float]]:
    """Fetch the buckets that overlap the range, then keep the readings inside it."""
    query = {"sensor": RANGE_SENSOR, "hour": {"$gte": hour_of(RANGE_FROM), "$lt": RANGE_TO}}
    found = list(db[collection].find(query, {"_id": 0}))
    values = [r["temp_c"] for b in found for r in b["readings"] if RANGE_FROM <= r["ts"] < RANGE_TO]
    return found, values


def answer(values: list[float]) -> tuple:
    return len(values), min(values), max(values), round(math.fsum(values) / len(values), 6)


def range_reads(db: Database) -> list[RangeRead]:
    reads = []
    for collection, fetch in [(PER_READING, range_per_reading), (BUCKETS, range_buckets),
                              (TIME_SERIES, range_per_reading)]:  # fmt: skip
        found, values = fetch(db, collection)
        size = sum(len(bson.encode(doc)) for doc in found)
        seconds = best_of(lambda f=fetch, c=collection: f(db, c), repeat=5)
        reads.append(RangeRead(collection, len(found), size, answer(values), seconds))
    return reads


# --- summaries from the bucket totals --------------------------------------------------------------
def average_per_sensor(db: Database) -> tuple[dict, dict]:
    """The mean temperature per sensor: from every reading, and from the buckets' running totals."""
    from_readings = {
        d["_id"]: (d["n"], round(d["mean"], 6))
        for d in db[PER_READING].aggregate(
            [{"$group": {"_id": "$sensor", "n": {"$sum": 1}, "mean": {"$avg": "$temp_c"}}}]
        )
    }
    totals = [{"$group": {"_id": "$sensor", "n": {"$sum": "$count"}, "sum": {"$sum": "$sum_temp"}}}]
    from_buckets = {d["_id"]: (d["n"], round(d["sum"] / d["n"], 6)) for d in db[BUCKETS].aggregate(totals)}
    return from_readings, from_buckets


def run(client: pymongo.MongoClient) -> BucketResult:
    console.title("The bucket pattern: readings one by one, in hourly buckets, in a time-series collection")
    db = client[DATABASE]

    console.step(f"Create the three collections in `{DATABASE}` (dropped first)")
    native = reset(db)
    console.say(f"{TIME_SERIES} created with timeseries options; native time-series collection: {native}")
    if not native:
        console.say("This server created it as a plain collection: it stores one document per reading.")

    readings = generate()
    console.step(
        f"Write {len(readings):,} readings of {N_SENSORS} sensors over {HOURS} hours, all three ways"
    )
    console.say(
        f"{BURST_SENSOR} reports every {BURST_EVERY_S} s instead of {EVERY_S} s during hour {BURST_HOUR}."
    )
    console.say(f"buckets: one upsert per reading (filter count < {BUCKET_CAP}, $push + $inc + $min/$max),")
    console.say(f"sent in ordered bulk_write batches of {BATCH}.")
    seconds = write_all(db, readings)
    built = indexes_built(db)
    stored = {name: storage(db, name, seconds[name]) for name in COLLECTIONS}
    console.table(
        ["collection", "documents", "data", "indexes", "data per reading", "write time"],
        [
            (s.collection, s.documents, console.size(s.data_bytes), console.size(s.index_bytes),
             f"{s.data_bytes / s.measurements:.0f} B", console.seconds(s.write_seconds))
            for s in stored.values()
        ],
        caption="from collStats: count (or timeseries.bucketCount), size, totalIndexSize",
    )  # fmt: skip
    if not built:
        console.say("This server lists the non-unique indexes but does not build them: their size is 0.")
    burst_hour = START + timedelta(hours=BURST_HOUR)
    in_burst = db[BUCKETS].count_documents({"sensor": BURST_SENSOR, "hour": burst_hour})
    fullest = db[BUCKETS].find_one(sort=[("count", -1)])["count"]
    console.say(
        f"{BURST_SENSOR} at {burst_hour:%H:%M}: {in_burst} buckets (the cap of {BUCKET_CAP} opened new ones); "
        f"fullest bucket: {fullest} readings"
    )

    console.step(f"A range query: {RANGE_SENSOR} from {RANGE_FROM:%H:%M} to {RANGE_TO:%H:%M}")
    reads = range_reads(db)
    console.table(
        ["collection", "documents", "bytes", "readings", "min-max", "mean", "time"],
        [
            (
                r.collection,
                r.documents,
                console.size(r.bytes),
                r.answer[0],
                f"{r.answer[1]:.2f}-{r.answer[2]:.2f}",
                f"{r.answer[3]:.3f}",
                console.seconds(r.seconds),
            )
            for r in reads
        ],
        caption="documents and bytes the client received; time: best of 5",
    )
    same_range = all(r.answer == reads[0].answer for r in reads)
    console.say(f"the same answer from all three: {same_range}. The buckets that overlap the range are")
    console.say("fetched whole and trimmed by the application; the time-series collection unpacks its own.")

    console.step("A summary from the buckets' running totals: each sensor's mean temperature")
    from_readings, from_buckets = average_per_sensor(db)
    console.table(
        ["sensor", "readings", "mean from every reading", "mean from bucket totals"],
        [(sensor, n, mean, from_buckets[sensor][1]) for sensor, (n, mean) in sorted(from_readings.items())],
    )
    console.say(
        f"$group over {stored[PER_READING].documents:,} reading documents against {stored[BUCKETS].documents} "
        f"bucket documents; same result: {from_readings == from_buckets}"
    )

    return BucketResult(
        readings=len(readings),
        buckets_in_burst_hour=in_burst,
        fullest_bucket=fullest,
        native_timeseries=native,
        indexes_built=built,
        storage=stored,
        range_reads=reads,
        same_range_answer=same_range,
        summary_readings_read=stored[PER_READING].documents,
        summary_buckets_read=stored[BUCKETS].documents,
        same_summary=from_readings == from_buckets,
    )


def main() -> int:
    require(*REQUIRES)
    with pymongo.MongoClient(mongo_url(), serverSelectionTimeoutMS=CONNECT_TIMEOUT_S * 1000) as client:
        result = run(client)
    fewer = result.summary_buckets_read < result.summary_readings_read
    return 0 if fewer and result.same_range_answer and result.same_summary else 1


if __name__ == "__main__":
    raise SystemExit(main())

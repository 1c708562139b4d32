"""HBase row key design: hot-spotting, salting, reversed timestamps, families, versions, filters, counters

An HBase table is sorted by row key and cut into regions, contiguous key ranges, each served by one
region server. So the row key decides where every write goes. A key that grows (a timestamp) sends
every new row to the last range: one region, one server, takes all the writes while the others
idle (hot-spotting). Salting puts a small hash bucket in front (`3-1796...`): the writes spread over
the buckets, and a time-range read becomes one scan per bucket. A reversed timestamp
(`Long.MAX_VALUE - ts`) makes the newest row sort first (a scan with limit 1 gives the latest event)
but still hot-spots: it decreases as steadily as the timestamp grows.

The lesson writes the same events with the three key designs and counts the rows in each of 8 key
ranges, the regions of a table pre-split at the split keys 1..7 (the HBase shell's `create 't',
'e', SPLITS => ['1', ..., '7']`), by scanning each range. happybase speaks HBase's Thrift 1 API,
whose createTable takes no split keys, so the tables here stay one region each (the lesson prints
`regions()` to show it); the ranges counted are the ones those regions would have, row for row.

Then: column families are separate stores (their own files, and their own settings such as
VERSIONS), so a family per access pattern: a read of one family never touches the other's. Cell
versions: VERSIONS=3 keeps three timestamped values of a cell, a fourth write pushes the oldest
out. Scans: a row-prefix scan, and server-side filters given as filter strings
(`PrefixFilter`, `SingleColumnValueFilter`). Counters: `counter_inc` is one atomic increment on the
server, correct from concurrent threads, where read-add-write in the client loses updates.

Engine: HBase (HBASE_THRIFT_URL, thrift://localhost:9095; HBase 2.6 standalone behind its Thrift server, locally and in compose),
tables `hbase_row_key_design_*`, dropped and recreated at start.
Run: `make up SERVICES=hbase` (or `make local-up`), then `python nosql/hbase_row_key_design.py`.
Look for: all rows in one range for the timestamp and reversed keys, every range used by the salted
key; 3 versions of 4 writes; the filter counts; the counter equal to the increments made.
"""

from __future__ import annotations

import threading
import zlib
from dataclasses import dataclass

import happybase

from common import console
from common.settings import hbase_address, hbase_url, require

REQUIRES = ("hbase",)
PREFIX = "hbase_row_key_design_"
DESIGNS = ("timestamp", "salted", "reversed")
BUCKETS = 8
SPLIT_KEYS = [str(n).encode() for n in range(1, BUCKETS)]  # regions: [..1) [1..2) ... [7..)
N_EVENTS = 800
START_MS = 1_796_000_000_000  # 2026-11-29, epoch milliseconds: 13 digits, so keys sort as numbers
STEP_MS = 1_000
LONG_MAX = 2**63 - 1
N_USERS, COUNTRIES = 60, ("NO", "SE", "DK")
THREADS, INCREMENTS = 8, 50


@dataclass
class Facts:
    regions_per_table: int  # real regions of each design's table (Thrift 1 cannot pre-split)
    per_range: dict[str, list[int]]  # design -> rows in each of the BUCKETS key ranges
    newest_first: bool  # the reversed table's first row is the newest event
    salted_range_scans: int  # scans a time-range read needs on the salted table
    salted_range_rows: int  # rows they return together
    family_cells: dict[str, int]  # cells a one-family read returns, per family
    family_versions: dict[str, int]  # VERSIONS of each family
    versions_written: int
    versions_kept: list[int]  # timestamps read back, newest first
    prefix_scan: int  # rows of a row-prefix scan
    prefix_filter: int  # rows of a PrefixFilter scan
    value_filter: int  # rows a SingleColumnValueFilter keeps
    value_filter_expected: int  # rows with that value, counted in Python
    counter: int  # the atomic counter after all threads
    counter_expected: int
    naive_counter: int  # the read-add-write counter (updates lost when threads interleave)


def connect(url: str) -> happybase.Connection:
    host, port = hbase_address(url)
    return happybase.Connection(host, port, timeout=30_000)  # milliseconds


def reset(connection: happybase.Connection) -> None:
    """Drop every table of this lesson (happybase disables a table before deleting it)."""
    for name in connection.tables():
        if name.startswith(PREFIX.encode()):
            connection.delete_table(name, disable=True)


def row_key(design: str, ts_ms: int) -> bytes:
    if design == "timestamp":
        return b"%013d" % ts_ms
    if design == "reversed":
        return b"%019d" % (LONG_MAX - ts_ms)
    bucket = zlib.crc32(b"%d" % ts_ms) % BUCKETS  # a stable hash: the same bucket on every run
    return b"%d-%013d" % (bucket, ts_ms)


def region_ranges() -> list[tuple[bytes, bytes]]:
    """The (start, stop) of each region of a table pre-split at SPLIT_KEYS; b"" = open end."""
    bounds = [b"", *SPLIT_KEYS, b""]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def count_range(table: happybase.Table, start: bytes, stop: bytes) -> int:
    """Rows in [start, stop): keys only (FirstKeyOnlyFilter, KeyOnlyFilter), counted as they stream."""
    scan = table.scan(
        row_start=start or None,
        row_stop=stop or None,
        filter="FirstKeyOnlyFilter() AND KeyOnlyFilter()",
        batch_size=1000,
    )
    return sum(1 for _ in scan)


def key_designs(connection: happybase.Connection) -> tuple[dict[str, list[int]], int, bool]:
    console.step(f"The same {N_EVENTS} events, one second apart, under three row key designs")
    per_range, regions = {}, 0
    stamps = [START_MS + i * STEP_MS for i in range(N_EVENTS)]
    for design in DESIGNS:
        name = f"{PREFIX}events_{design}"
        connection.create_table(name, {"e": {"max_versions": 1}})
        table = connection.table(name)
        with table.batch(batch_size=200) as batch:
            for ts in stamps:
                batch.put(row_key(design, ts), {b"e:ts": b"%d" % ts})
        regions = max(regions, len(table.regions()))
        per_range[design] = [count_range(table, start, stop) for start, stop in region_ranges()]
    labels = ["<1", *(f"{key.decode()}.." for key in SPLIT_KEYS[:-1]), f"{SPLIT_KEYS[-1].decode()}+"]
    console.table(
        ["key", *labels],
        [(design, *per_range[design]) for design in DESIGNS],
        caption="rows per region of a table split at 1..7, counted by scanning each region's key range",
    )
    console.say("First keys: " + ", ".join(f"{d} {row_key(d, START_MS).decode()}" for d in DESIGNS) + ".")
    console.say(
        f"Each table here is {regions} region(s): happybase's Thrift 1 createTable takes no split keys. "
        "A growing (or steadily shrinking) key writes every row into one region; the salted key uses all of them."
    )
    newest = next(connection.table(f"{PREFIX}events_reversed").scan(limit=1))[1][b"e:ts"]
    newest_first = int(newest) == stamps[-1]
    console.say(f"Reversed timestamps: the first row of a scan is the newest event ({newest_first}).")
    return per_range, regions, newest_first


def salted_time_range(connection: happybase.Connection) -> tuple[int, int]:
    """The events of one minute on the salted table: one scan per bucket, merged by the client."""
    table = connection.table(f"{PREFIX}events_salted")
    start, stop = START_MS + 100 * STEP_MS, START_MS + 160 * STEP_MS
    rows = []
    for bucket in range(BUCKETS):
        rows += list(
            table.scan(row_start=b"%d-%013d" % (bucket, start), row_stop=b"%d-%013d" % (bucket, stop))
        )
    console.say(
        f"The price of salting: one minute of events is {BUCKETS} scans (one per bucket), {len(rows)} rows merged."
    )
    return BUCKETS, len(rows)


def column_families(connection: happybase.Connection) -> tuple[dict[str, int], dict[str, int]]:
    console.step("Column families: separate stores, a family per access pattern")
    name = f"{PREFIX}users"
    connection.create_table(name, {"profile": {"max_versions": 1}, "activity": {"max_versions": 3}})
    table = connection.table(name)
    with table.batch() as batch:
        for n in range(N_USERS):
            country = COUNTRIES[n % len(COUNTRIES)].encode()
            batch.put(
                b"user#%03d" % n,
                {
                    b"profile:name": b"user %d" % n,
                    b"profile:country": country,
                    b"activity:last_login": b"%d" % n,
                },
            )
    cells = {
        family: len(table.row(b"user#007", columns=[family.encode()])) for family in ("profile", "activity")
    }
    versions = {
        family: spec["max_versions"]
        for family, spec in ((f.decode(), s) for f, s in table.families().items())
    }
    console.table(
        ["family", "cells in one row's read of it", "VERSIONS"],
        [(family, cells[family], versions[family]) for family in ("profile", "activity")],
        caption="each family is its own store (files on disk, memstore, settings): a read of one skips the other",
    )
    return cells, versions


def cell_versions(connection: happybase.Connection) -> tuple[int, list[int]]:
    console.step("Cell versions: VERSIONS=3, four writes to one cell")
    name = f"{PREFIX}versions"
    connection.create_table(name, {"v": {"max_versions": 3}})
    table = connection.table(name)
    for version in range(1, 5):
        table.put(b"sensor#1", {b"v:reading": b"%d" % (version * 10)}, timestamp=version)
    cells = table.cells(b"sensor#1", b"v:reading", versions=10, include_timestamp=True)
    console.table(
        ["value", "timestamp"],
        [(value.decode(), ts) for value, ts in cells],
        caption="read back, newest first",
    )
    return 4, [ts for _, ts in cells]


def scans_and_filters(connection: happybase.Connection) -> tuple[int, int, int, int]:
    console.step("Scans: a row prefix, and filters the region server applies")
    table = connection.table(f"{PREFIX}users")
    prefix = sum(1 for _ in table.scan(row_prefix=b"user#01"))
    prefix_filter = sum(1 for _ in table.scan(filter="PrefixFilter('user#02')"))
    value_filter = sum(
        1
        for _ in table.scan(
            columns=[b"profile"],
            filter="SingleColumnValueFilter('profile', 'country', =, 'binary:NO', true, true)",
        )
    )
    expected = sum(1 for n in range(N_USERS) if COUNTRIES[n % len(COUNTRIES)] == "NO")
    console.table(
        ["scan", "rows"],
        [
            ("row_prefix=b'user#01' (row_start/row_stop)", prefix),
            ("PrefixFilter('user#02')", prefix_filter),
            ("SingleColumnValueFilter(profile:country = NO)", value_filter),
        ],
    )
    return prefix, prefix_filter, value_filter, expected


def counters(url: str) -> tuple[int, int]:
    console.step(f"Counters: {THREADS} threads x {INCREMENTS} increments")
    name = f"{PREFIX}counters"
    with _connection(url) as connection:
        connection.create_table(name, {"c": {"max_versions": 1}})

    def atomic() -> None:
        with _connection(url) as connection:  # a happybase connection is not thread-safe: one each
            table = connection.table(name)
            for _ in range(INCREMENTS):
                table.counter_inc(b"page#home", b"c:views")

    def read_add_write() -> None:
        with _connection(url) as connection:
            table = connection.table(name)
            for _ in range(INCREMENTS):
                value = int(table.row(b"page#home").get(b"c:naive", b"0"))
                table.put(b"page#home", {b"c:naive": b"%d" % (value + 1)})

    for work in (atomic, read_add_write):
        threads = [threading.Thread(target=work) for _ in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    with _connection(url) as connection:
        table = connection.table(name)
        total = table.counter_get(b"page#home", b"c:views")
        naive = int(table.row(b"page#home")[b"c:naive"])
    expected = THREADS * INCREMENTS
    console.table(
        ["counter", "final value", "increments made"],
        [
            ("counter_inc (atomic, on the server)", total, expected),
            ("get + put in the client", naive, expected),
        ],
    )
    return total, naive


class _connection:
    def __init__(self, url: str):
        self.connection = connect(url)

    def __enter__(self) -> happybase.Connection:
        return self.connection

    def __exit__(self, *_) -> None:
        self.connection.close()


def run(url: str | None = None) -> Facts:
    url = url or hbase_url()
    console.title("HBase row key design")
    with _connection(url) as connection:
        reset(connection)
        per_range, regions, newest_first = key_designs(connection)
        range_scans, range_rows = salted_time_range(connection)
        cells, versions = column_families(connection)
        written, kept = cell_versions(connection)
        prefix, prefix_filter, value_filter, expected = scans_and_filters(connection)
    total, naive = counters(url)
    return Facts(
        regions_per_table=regions,
        per_range=per_range,
        newest_first=newest_first,
        salted_range_scans=range_scans,
        salted_range_rows=range_rows,
        family_cells=cells,
        family_versions=versions,
        versions_written=written,
        versions_kept=kept,
        prefix_scan=prefix,
        prefix_filter=prefix_filter,
        value_filter=value_filter,
        value_filter_expected=expected,
        counter=total,
        counter_expected=THREADS * INCREMENTS,
        naive_counter=naive,
    )


def main() -> int:
    require(*REQUIRES)
    facts = run()
    holds = (
        max(facts.per_range["timestamp"]) == N_EVENTS
        and min(facts.per_range["salted"]) > 0
        and facts.counter == facts.counter_expected
    )
    return 0 if holds else 1


if __name__ == "__main__":
    raise SystemExit(main())

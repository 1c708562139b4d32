"""Cross-region replication: lag over a slow link, what losing a region costs, and write conflicts

Two PostgreSQL clusters stand for two regions. Region 1 publishes a table (`CREATE PUBLICATION`),
region 2 subscribes (`CREATE SUBSCRIPTION ... WITH (disable_on_error = true)`) through Toxiproxy,
which delays the stream from region 1 to region 2 (a latency toxic: the one-way delay between the
regions) and can cut the link. Logical replication is asynchronous: region 1 acknowledges a commit
before region 2 has it, so what is still on the way when region 1 is lost is the recovery point.
The lesson measures the lag at 0, 50 and 200 ms one-way, then loses region 1 under a write load (in
one instant: its processes frozen, its network cut, its server killed), counts the rows region 1
committed that region 2 lacks, and cuts the client over to region 2 (its URL switches), counting
the writes that failed meanwhile and the acknowledged ones lost. Two setups lose no acknowledged
write: synchronous replication through the subscription (`synchronous_standby_names`), paid on
every commit, and a planned switchover that waits for region 2 to catch up before the switch.
Last, both regions take a write with the same key: region 2's apply worker fails on the unique
violation, the subscription disables itself and replication stops until someone resolves it;
`ALTER SUBSCRIPTION ... SKIP (lsn = ...)`, with the LSN from the log, resumes it by dropping the
whole remote transaction, and a repair evens out what the skip dropped. Sequences are not
replicated: this client makes its own keys; a region that takes over identity columns needs `setval`.

Engine: PostgreSQL 15 or later (SKIP and disable_on_error arrived in 15; Debian's 15 here, the compose
image's 17 alike) on two nodes of its own with `wal_level=logical` and fsync on, never the shared
server; Toxiproxy 2.12 (`servers/install/toxiproxy.sh` builds it; without it the link is direct and
every setup runs at 0 ms). Schema, publication and subscription `cross_region_replication`.
Run: `make local-install` (PostgreSQL and Toxiproxy), then `python recovery/cross_region_replication.py`.
Look for: rows lost = committed in region 1 - present in region 2, growing with the delay; no
acknowledged write lost with synchronous replication or the planned switchover, and what each costs;
the ERROR line and its LSN; equal counts and checksums after SKIP and the repair.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import psycopg
import requests
from psycopg import sql
from psycopg.conninfo import make_conninfo

from common import console
from common.settings import CONNECT_TIMEOUT_S, ENGINES, require
from common.workload import Workload
from servers.local import server_class
from servers.local.base import resident_bytes
from servers.throwaway import NoThrowaway, node

REQUIRES = ("postgres",)
SCHEMA = PUBLICATION = SUBSCRIPTION = "cross_region_replication"
DURABLE = {"fsync": "on", "full_page_writes": "on"}  # the launcher turns both off for lesson data
# wal_retrieve_retry_interval (5 s by default) is also how long the logical replication launcher
# waits before it starts an apply worker again, even for a new subscription.
SETTINGS = {**DURABLE, "wal_level": "logical", "wal_retrieve_retry_interval": "200ms"}
LOCAL_ONLY = "the drill freezes and kills local PostgreSQL processes, linked through a local Toxiproxy"
LAG_PROBES, CUTOVER_WRITES, CONFLICT_KEY = 5, 20, 1_000_000
FINISH_LSN = re.compile(r"finished at ([0-9A-F]+/[0-9A-F]+)")  # the CONTEXT line of an apply error

TABLES = """
DROP SCHEMA IF EXISTS {s} CASCADE;
CREATE SCHEMA {s};
CREATE TABLE {s}.orders (id bigint PRIMARY KEY, region text NOT NULL, item text NOT NULL);
CREATE TABLE {s}.lag_probes (id integer PRIMARY KEY);
"""
INSERT = "INSERT INTO {s}.orders (id, region, item) VALUES (%s, %s, %s)"
CHECKSUM = "SELECT count(*), md5(coalesce(string_agg(o::text, ',' ORDER BY o.id), '')) FROM {s}.orders o"
SUBSCRIBE = """CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION {}
    WITH (copy_data = false, disable_on_error = true, synchronous_commit = {})"""
ERRORS = "SELECT apply_error_count FROM pg_stat_subscription_stats WHERE subname = %s"
DOES = {
    "async": "subscription with disable_on_error; the client switches once it has stopped",
    "sync": "synchronous_standby_names = the subscription, whose synchronous_commit = on",
    "planned": "writes paused until region 2 has every row, then the client switches",
}


@dataclass(frozen=True)
class Setup:
    kind: str  # a key of DOES
    delay_ms: int  # one-way, region 1 to region 2
    warmup: int = 100  # acknowledged writes in region 1 before it is lost

    @property
    def name(self) -> str:
        return f"{self.kind}, {self.delay_ms} ms"

    @property
    def configured(self) -> str:
        return f"{DOES[self.kind]}; {self.delay_ms} ms one-way (Toxiproxy latency)"


SETUPS = (
    *(Setup("async", delay_ms) for delay_ms in (0, 50, 200)),
    Setup("sync", 50, warmup=15),  # a commit waits for region 2: fewer writes, the same lesson
    Setup("planned", 200),
)


@dataclass
class RegionLoss:
    """One setup: region 1 lost under load, the client cut over to region 2 (a row of the HA table)."""

    setup: str
    configured: str
    target_within_source: bool  # region 2 held only rows region 1 had committed
    target_is_prefix: bool  # ... the oldest ones: it lacks the newest writes, never one in the middle
    acknowledged: int = field(default=0, compare=False)  # by region 1, before the loss
    source_committed: int = field(default=0, compare=False)  # read back from region 1, restarted
    target_present: int = field(default=0, compare=False)  # in region 2 once its subscription stopped
    lost_rows: int = field(default=0, compare=False)  # committed in region 1, missing in region 2
    lost_acknowledged: int = field(default=0, compare=False)  # acknowledged, missing in region 2 at the end
    failed_during_cutover: int = field(default=0, compare=False)
    written_after_cutover: int = field(default=0, compare=False)  # acknowledged by region 2
    seconds_without_writes: float = field(default=0.0, compare=False)
    lag_s: float | None = field(default=None, compare=False)  # idle, commit in 1 to visible in 2 (median)
    commit_latency_s: float = field(default=0.0, compare=False)  # median, in region 1


@dataclass
class Conflict:
    stopped: bool  # the subscription disabled itself
    apply_errors: int  # pg_stat_subscription_stats.apply_error_count
    error: str  # the ERROR line in region 2's log
    finish_lsn: str  # of the failed remote transaction, from the log's CONTEXT line
    behind_while_stopped: int  # rows region 1 wrote meanwhile that region 2 did not get
    resumed: bool  # after SKIP and ENABLE, region 1's later rows arrived
    skipped_rows: int  # rows region 2 lacks after the skip: the whole transaction, not just the conflict
    differs_after_skip: bool  # the two regions' checksums differ
    counts_after_repair: tuple[int, int]
    equal_after_repair: bool  # counts and checksums


@dataclass
class CrossRegionResult:
    shaped: bool  # Toxiproxy ran: the delays and the cut are real
    losses: dict[str, RegionLoss] = field(default_factory=dict)
    conflict: Conflict | None = None
    memory: dict[str, int | None] = field(default_factory=dict, compare=False)  # node -> PSS, after losses

    @property
    def holds(self) -> bool:
        counted = all(
            x.target_within_source and x.target_is_prefix and x.written_after_cutover >= CUTOVER_WRITES
            and x.lost_rows == x.source_committed - x.target_present
            for x in self.losses.values()
        )  # fmt: skip
        safe = [x for x in self.losses.values() if not x.setup.startswith("async")]
        c = self.conflict
        return (
            counted and bool(safe) and all(x.lost_acknowledged == 0 for x in safe)
            and c is not None and c.stopped and c.apply_errors >= 1 and c.resumed and c.equal_after_repair
        )  # fmt: skip


def q(text: str) -> sql.Composed:
    return sql.SQL(text).format(s=sql.Identifier(SCHEMA))


def connect(server) -> psycopg.Connection:
    return psycopg.connect(server.url(), autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)


def eventually(check: Callable[[], object], what: str = "") -> bool:
    """Poll `check` for up to 30 s: True once it holds; at the end False, or TimeoutError naming `what`."""
    deadline = time.monotonic() + 30
    while not check():
        if time.monotonic() > deadline:
            if what:
                raise TimeoutError(f"{what}: not after 30 s")
            return False
        time.sleep(0.01)
    return True


class Link:
    """The network in front of region 1: two Toxiproxy proxies, or none (a direct link).

    One carries the subscription (region 1 to region 2: the delay goes there), the other the client's
    connections to region 1, with no toxic, so that losing the region cuts both (see go_dark).
    """

    def __init__(self, region1, toxiproxy=None) -> None:
        self.server, self.api = toxiproxy, (toxiproxy.url() if toxiproxy else None)
        self.port = self.client_port = region1.port
        if self.api:
            self.port = self._proxy("region1", region1.port)
            self.client_port = self._proxy("region1_clients", region1.port)

    def _proxy(self, name: str, upstream: int) -> int:
        proxy = {"name": name, "listen": "127.0.0.1:0", "upstream": f"127.0.0.1:{upstream}"}
        made = requests.post(f"{self.api}/proxies", json=proxy, timeout=5)
        made.raise_for_status()
        return int(made.json()["listen"].rsplit(":", 1)[1])  # port 0: Toxiproxy picked a free one

    def _post(self, path: str, body: dict | None = None) -> None:
        if self.api:
            requests.post(f"{self.api}{path}", json=body, timeout=5).raise_for_status()

    def delay(self, ms: int) -> None:
        """Region 1 to region 2 only: `downstream` runs from the server (region 1) to its client."""
        if ms:
            toxic = {"type": "latency", "stream": "downstream", "attributes": {"latency": ms, "jitter": 0}}
            self._post("/proxies/region1/toxics", toxic)

    def cut(self) -> None:
        """Both proxies down: their connections close; what the latency toxic still holds never arrives."""
        self._post("/proxies/region1_clients", {"enabled": False})
        self._post("/proxies/region1", {"enabled": False})

    def restore(self) -> None:
        self._post("/reset")  # every proxy up, every toxic gone


@contextlib.contextmanager
def link_to(region1) -> Iterator[Link]:
    """Toxiproxy when it is registered and built; else a direct link (no delay, no cut)."""
    launcher = server_class("toxiproxy") if "toxiproxy" in ENGINES else None
    if launcher is None or not launcher.installed():
        yield Link(region1)
        return
    with node("toxiproxy") as toxiproxy:
        yield Link(region1, toxiproxy)


class Route:
    """Where the client sends its writes: the URL it connects to, switched at the cut-over."""

    def __init__(self, region1, region2, link: Link) -> None:
        self.names = {link.client_port: "region 1", region2.port: "region 2"}
        self.url = make_conninfo(region1.url(), host="127.0.0.1", port=link.client_port)
        self.paused = False

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(self.url, autocommit=True, connect_timeout=2)

    def write(self, conn: psycopg.Connection, n: int) -> tuple[str, int]:
        """One order with the client's own key `n`; returns the region that acknowledged it, and the key."""
        if self.paused:
            raise RuntimeError("writes paused for the switchover")
        region = self.names[conn.info.port]
        conn.execute(q(INSERT), (n, region, f"order {n}"))
        return region, n


def rows(server) -> set[tuple[str, int]]:
    with connect(server) as conn:
        return set(conn.execute(q("SELECT region, id FROM {s}.orders")).fetchall())


def checksum(server) -> tuple[int, str]:
    with connect(server) as conn:
        return conn.execute(q(CHECKSUM)).fetchone()


def subscription_enabled(region2) -> bool:
    with connect(region2) as conn:
        enabled = conn.execute("SELECT subenabled FROM pg_subscription WHERE subname = %s", (SUBSCRIPTION,))
        return enabled.fetchone()[0]


def reset(region1, region2, link: Link, setup: Setup) -> None:
    """Both regions empty, a new subscription streaming through the link, then the setup's delay."""
    link.restore()
    subscription, publication = sql.Identifier(SUBSCRIPTION), sql.Identifier(PUBLICATION)
    with connect(region2) as conn:
        if conn.execute("SELECT 1 FROM pg_subscription WHERE subname = %s", (SUBSCRIPTION,)).fetchone():
            # Detached from its slot first (region 1 may be down): the slot is dropped in region 1 below.
            for statement in ("DISABLE", "SET (slot_name = NONE)"):
                conn.execute(sql.SQL("ALTER SUBSCRIPTION {} " + statement).format(subscription))
            conn.execute(sql.SQL("DROP SUBSCRIPTION {}").format(subscription))
        conn.execute(q(TABLES))
    with connect(region1) as conn:
        conn.execute("ALTER SYSTEM RESET synchronous_standby_names")
        conn.execute("SELECT pg_reload_conf()")
        slot = "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s"
        conn.execute(slot, (SUBSCRIPTION,))
        conn.execute(q(TABLES))
        conn.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(publication))
        tables = sql.SQL(", ").join(sql.Identifier(SCHEMA, table) for table in ("orders", "lag_probes"))
        conn.execute(sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(publication, tables))
    through_link = make_conninfo(region1.url(), host="127.0.0.1", port=link.port)
    commit = sql.Literal("on" if setup.kind == "sync" else "off")
    with connect(region2) as conn:
        conn.execute(sql.SQL(SUBSCRIBE).format(subscription, sql.Literal(through_link), publication, commit))
    probe(region1, region2, 0)  # the apply worker is up and streaming
    link.delay(setup.delay_ms)
    if setup.kind == "sync":
        with connect(region1) as conn:
            standby = sql.SQL("ALTER SYSTEM SET synchronous_standby_names = {}").format(
                sql.Literal(SUBSCRIPTION)
            )
            conn.execute(standby)
            conn.execute("SELECT pg_reload_conf()")
            state = "SELECT sync_state FROM pg_stat_replication WHERE application_name = %s"
            eventually(lambda: conn.execute(state, (SUBSCRIPTION,)).fetchone() == ("sync",), "a sync standby")


def probe(region1, region2, key: int) -> float:
    """Commit one row in region 1; the seconds until region 2 shows it."""
    with connect(region1) as source, connect(region2) as target:
        source.execute(q("INSERT INTO {s}.lag_probes VALUES (%s)"), (key,))
        started = time.perf_counter()
        there = q("SELECT 1 FROM {s}.lag_probes WHERE id = %s")
        eventually(lambda: target.execute(there, (key,)).fetchone(), "the probe row in region 2")
        return time.perf_counter() - started


def drain(region1, region2, route: Route, load: Workload) -> None:
    """Planned: stop writing, wait for a refused write (none is in flight), then for region 2 to catch up."""
    route.paused = True
    paused_at = load.now_s()
    eventually(lambda: load.report("write", since_s=paused_at).failed, "a refused write")
    count = q("SELECT count(*) FROM {s}.orders")
    with connect(region1) as source, connect(region2) as target:
        committed = source.execute(count).fetchone()[0]
        eventually(lambda: target.execute(count).fetchone()[0] == committed, "region 2 caught up")


def go_dark(region1, link: Link) -> None:
    """Region 1 lost at one instant: every process frozen at once, its network cut, then killed.

    Freezing first (SIGSTOP to its process group) makes the three steps one moment: a frozen region
    commits and sends nothing more while Toxiproxy drops what its link still held. Each process runs
    again just to die (kill() waits for running parents to reap their children).
    """
    os.killpg(region1.process.pid, signal.SIGSTOP)
    link.cut()
    os.killpg(region1.process.pid, signal.SIGCONT)
    region1.kill()


def lose_region(region1, region2, link: Link, setup: Setup) -> RegionLoss:
    reset(region1, region2, link, setup)
    lag = None
    if setup.kind == "async":  # idle lag: a row at a time, commit in region 1 to visible in region 2
        lag = statistics.median(probe(region1, region2, i + 1) for i in range(LAG_PROBES))
    route = Route(region1, region2, link)
    with Workload() as load:
        load.spawn("write", route.write, connect=route.connect)
        load.wait_for(setup.warmup, "write")
        if setup.kind == "planned":
            drain(region1, region2, route, load)
        go_dark(region1, link)
        lost_at = load.now_s()
        eventually(lambda: not subscription_enabled(region2), "region 2's subscription stopped")
        eventually(lambda: load.report("write", since_s=lost_at).failed, "the client noticed")
        target = rows(region2)
        route.url, route.paused = region2.url(), False  # the cut-over: the client's URL switches
        load.wait_for(len(load.succeeded("write")) + CUTOVER_WRITES, "write")
    region1.start_and_wait(tied_to_parent=True)  # crash recovery: what region 1 had committed
    return tally(setup, load, rows(region1), target, rows(region2), lag)


def tally(
    setup: Setup, load: Workload, source: set, target: set, final: set, lag: float | None
) -> RegionLoss:
    attempts = load.succeeded("write")
    in_region1 = [a for a in attempts if a.key[0] == "region 1"]
    last, first = in_region1[-1], next(a for a in attempts if a.key[0] == "region 2")
    lost = source - target
    return RegionLoss(
        setup=setup.name,
        configured=setup.configured,
        target_within_source=target <= source,
        target_is_prefix=not lost or not target or max(k[1] for k in target) < min(k[1] for k in lost),
        acknowledged=len(in_region1),
        source_committed=len(source),
        target_present=len(target),
        lost_rows=len(lost),
        lost_acknowledged=len(load.lost(final)),
        failed_during_cutover=load.report("write", since_s=last.started_s).failed,
        written_after_cutover=len(attempts) - len(in_region1),
        seconds_without_writes=first.started_s + first.latency_s - (last.started_s + last.latency_s),
        lag_s=lag,
        commit_latency_s=statistics.median(a.latency_s for a in in_region1),
    )


def show_losses(losses: dict[str, RegionLoss]) -> None:
    console.table(
        ["setup", "acked by 1", "committed in 1", "in 2 at the loss", "rows lost", "acked, lost"],
        [(x.setup, x.acknowledged, x.source_committed, x.target_present, x.lost_rows, x.lost_acknowledged)
         for x in losses.values()],
    )  # fmt: skip
    console.say("rows lost = committed in region 1 (read back after its restart) - in region 2 when "
                "its subscription stopped; acked, lost = acknowledged by 1, never in 2.")  # fmt: skip
    console.table(
        ["setup", "failed at cut-over", "written to 2", "s without writes", "lag (idle)", "commit latency"],
        [(x.setup, x.failed_during_cutover, x.written_after_cutover, f"{x.seconds_without_writes:.2f}",
          "-" if x.lag_s is None else console.seconds(x.lag_s), console.seconds(x.commit_latency_s))
         for x in losses.values()],
    )  # fmt: skip
    console.say("Asynchronous, the loss is what was still on the way: about one delay's worth of "
                "writes. Synchronous, a commit waits for region 2, so no acknowledged write is lost, "
                "and every commit pays the delay. Planned, nothing is lost; writes wait for the "
                "catch-up.")  # fmt: skip


def failed_transaction(region2, since: int) -> tuple[str, str]:
    """The ERROR line and the finish LSN of the remote transaction, from region 2's log after `since`."""
    lines = region2.log_path.read_text(errors="replace")[since:].splitlines()
    where = max(i for i, line in enumerate(lines) if FINISH_LSN.search(line))
    error = next(line for line in reversed(lines[: where + 1]) if "ERROR:" in line)
    return error.split("ERROR:", 1)[1].strip(), FINISH_LSN.search(lines[where]).group(1)


def conflict(region1, region2, link: Link) -> Conflict:
    """The same key written in both regions; the apply worker stops; SKIP resumes it; a repair evens out."""
    reset(region1, region2, link, Setup("async", 0))
    log_start, key = region2.log_path.stat().st_size, CONFLICT_KEY
    subscription = sql.Identifier(SUBSCRIPTION)
    with connect(region1) as source, connect(region2) as target:
        target.execute(q(INSERT), (key, "region 2", "written in region 2"))  # a client writing in region 2
        with source.transaction():  # the same key, and an innocent one, in one transaction in region 1
            source.execute(q(INSERT), (key, "region 1", "written in region 1"))
            source.execute(q(INSERT), (key + 1, "region 1", "same transaction"))
        stopped = eventually(lambda: not subscription_enabled(region2))
        # The worker reports its error to the statistics as it exits: wait for it.
        eventually(lambda: target.execute(ERRORS, (SUBSCRIPTION,)).fetchone()[0])
        apply_errors = target.execute(ERRORS, (SUBSCRIPTION,)).fetchone()[0]
        error, lsn = failed_transaction(region2, log_start)
        for later in range(key + 2, key + 6):
            source.execute(q(INSERT), (later, "region 1", "while replication is stopped"))
        behind = checksum(region1)[0] - checksum(region2)[0]
        console.say(f"region 2's log: ERROR: {error}")
        console.say(f"the failed remote transaction finished at LSN {lsn} (the log's CONTEXT line)")
        shown = [(not stopped, apply_errors, behind)]
        console.table(["subenabled", "apply_error_count", "rows region 2 lacks"], shown)
        console.say(
            "subenabled is in pg_subscription, apply_error_count in pg_stat_subscription_stats (15+)."
        )
        skip = sql.SQL("ALTER SUBSCRIPTION {} SKIP (lsn = {})").format(subscription, sql.Literal(lsn))
        target.execute(skip)
        target.execute(sql.SQL("ALTER SUBSCRIPTION {} ENABLE").format(subscription))
        arrived = q("SELECT 1 FROM {s}.orders WHERE id = %s")
        resumed = eventually(lambda: target.execute(arrived, (key + 5,)).fetchone())
        after_skip = checksum(region1), checksum(region2)
        upsert = q(INSERT + " ON CONFLICT (id) DO UPDATE SET region = excluded.region, item = excluded.item")
        skipped = source.execute(q("SELECT * FROM {s}.orders WHERE id IN (%s, %s)"), (key, key + 1))
        for row in skipped.fetchall():  # region 1's version wins, written by hand in region 2
            target.execute(upsert, row)
    after_repair = checksum(region1), checksum(region2)
    return Conflict(
        stopped=stopped,
        apply_errors=apply_errors,
        error=error,
        finish_lsn=lsn,
        behind_while_stopped=behind,
        resumed=resumed,
        skipped_rows=after_skip[0][0] - after_skip[1][0],
        differs_after_skip=after_skip[0] != after_skip[1],
        counts_after_repair=(after_repair[0][0], after_repair[1][0]),
        equal_after_repair=after_repair[0] == after_repair[1],
    )


def show_repair(c: Conflict) -> None:
    console.table(
        ["", "rows region 2 lacks", "checksums equal"],
        [("after SKIP and ENABLE", c.skipped_rows, not c.differs_after_skip),
         ("after the repair", c.counts_after_repair[0] - c.counts_after_repair[1], c.equal_after_repair)],
    )  # fmt: skip
    console.say(f"Replication resumed: {'yes' if c.resumed else 'no'}. SKIP dropped the whole remote "
                "transaction, the innocent row with the conflicting one; region 2 kept its own "
                "version of the key.")  # fmt: skip
    console.say("The repair copied region 1's rows of that transaction into region 2 (region 1 wins). "
                "Someone has to choose the surviving write: with two writing regions, give each "
                "its own keys.")  # fmt: skip


def run(setups: tuple[Setup, ...] = SETUPS) -> CrossRegionResult:
    console.title("Cross-region replication: lag, lost writes when a region goes, and conflicts")
    with contextlib.ExitStack() as stack:
        region1 = stack.enter_context(node("postgres", settings=SETTINGS, local_only=LOCAL_ONLY))
        region2 = stack.enter_context(node("postgres", settings=SETTINGS, local_only=LOCAL_ONLY))
        link = stack.enter_context(link_to(region1))
        result = CrossRegionResult(shaped=link.api is not None)

        console.step("Two regions: region 1 publishes, region 2 subscribes through the link")
        through = "Toxiproxy, in front of region 1." if link.api else (
            "region 1 itself: no Toxiproxy (servers/install/toxiproxy.sh), so no delay, no cut, all at 0 ms."
        )  # fmt: skip
        console.say(f"region 1 on port {region1.port}, region 2 on {region2.port}; "
                    f"the subscription connects to port {link.port}: {through}")  # fmt: skip

        console.step("Region 1 lost under write load, the client cut over to region 2, once per setup")
        # Without Toxiproxy every setup runs at 0 ms (sync and planned still show their facts).
        for setup in dict.fromkeys(s if result.shaped else Setup(s.kind, 0, s.warmup) for s in setups):
            result.losses[setup.name] = lose_region(region1, region2, link, setup)
        nodes = {"region 1": region1, "region 2": region2, "Toxiproxy": link.server}
        result.memory = {name: resident_bytes([x]) for name, x in nodes.items() if x}
        show_losses(result.losses)

        console.step("Both regions accept a write with the same key: replication stops")
        result.conflict = conflict(region1, region2, link)
        console.say(
            "disable_on_error makes the apply worker's endless retry one error and a stopped subscription."
        )

        console.step("ALTER SUBSCRIPTION ... SKIP (lsn = ...), ENABLE, then repair what the skip dropped")
        show_repair(result.conflict)

        console.step("What the nodes hold in memory (PSS, after the losses)")
        held = [
            (k, "not measured (container)" if v is None else console.size(v))
            for k, v in result.memory.items()
        ]
        console.table(["node", "resident memory"], held)
    return result


def main() -> int:
    require(*REQUIRES)
    try:
        result = run()
    except NoThrowaway as missing:
        console.error(f"{missing} (this lesson starts PostgreSQL nodes of its own from the local binaries)")
        return 2
    return 0 if result.holds else 1


if __name__ == "__main__":
    raise SystemExit(main())

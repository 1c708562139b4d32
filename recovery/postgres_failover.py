"""PostgreSQL failover: kill -9 the primary under writes, promote a replica, count what was lost

A primary streams its WAL to a replica made with `pg_basebackup -R`. Three writers insert rows
through one libpq multi-host URL with `target_session_attrs=read-write` (libpq tries each host and
keeps the one that accepts writes) and record every acknowledged write (common/workload.py). The
primary is killed (SIGKILL to all its processes) mid-stream and the replica promoted: by hand with
`SELECT pg_promote()`, first asynchronous, then synchronous, the two nodes swapping roles; then by
pg_auto_failover, whose monitor notices the dead node and promotes its standby by itself. Each time
the lesson counts the acknowledged writes the new primary lacks, the longest time no write
succeeded, and the writes that resumed on the new primary through the same URL. Then the old
primary comes back as a replica of the new one with pg_rewind, which needs `wal_log_hints = on` (or
data checksums), a CHECKPOINT on the freshly promoted source (PostgreSQL 15 answers "no rewind
required" without one) and the target's WAL back to the last common checkpoint (`wal_keep_size`);
first pg_waldump counts the commits the old primary wrote past the fork: the rewind throws them away.

Asynchronous: the primary acknowledges a commit before the replica has it, so writes can be lost;
how many depends on the instant of the crash and the replica's lag (printed), usually none on one
machine. Synchronous (`synchronous_standby_names`, `synchronous_commit = remote_apply`): a commit is
acknowledged once the replica has applied it, so none is lost, whatever the instant. The old
primary can still hold a commit whose acknowledgment never left: the client saw an error, and the
rewind discards it. By hand, promotion here follows the kill at once; a person paged takes minutes.

Why pg_auto_failover rather than Patroni with etcd, measured here (Debian 12, 2 busy cores): both
install in seconds (2 packages in 4.6 s, against 13 in 6.2 s) and use about 90 MB (PSS) for a
monitor or etcd plus two nodes. Patroni fails over once the leader key expires: at its documented
minimum `ttl` of 20 s that took 20 s (10 s at ttl=10). pg_auto_failover's monitor health-checks the
nodes: with its timers shortened (MONITOR below; by default 20 s before a node is unhealthy and 30 s
for a demote) it fails over in a few seconds. And Patroni's PostgreSQL leaves Patroni's process
group (its parent becomes PID 1), so killing a node's processes leaves it running, while
pg_autoctl's runs below `pg_autoctl run`: one kill takes keeper and PostgreSQL, as a lost machine
(killed alone, PostgreSQL is restarted by its keeper within seconds, and with timers this short the
monitor has failed over meanwhile). pg_autoctl owns its PostgreSQL (it initialises, starts, promotes
and rewinds it), so its nodes are pg_autoctl processes: servers/local/pg_auto_failover.py.

Engine: PostgreSQL on nodes of its own from the local binaries (Debian's 15 here; fsync and
full_page_writes on), never the shared server; schema `postgres_failover`. pg_auto_failover 2.0
(`apt-get install pg-auto-failover-cli postgresql-15-auto-failover`); without it, its part is skipped.
Run: `make local-up`, then `python recovery/postgres_failover.py`.
Look for: lost 0 for the synchronous setups (and what the asynchronous one lost, if any), seconds
without writes (about 0.2 s by hand, a few seconds with pg_auto_failover), writes resumed through
the same URL, the commits pg_rewind discarded, and equal row counts on the old and new primaries.
"""

from __future__ import annotations

import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import pairwise

import psycopg
from psycopg import sql

from common import console
from common.settings import require
from common.timing import timer
from common.workload import Workload
from servers.local import pg_auto_failover
from servers.local.base import resident_bytes
from servers.local.postgres import DATABASE, PASSWORD, USER
from servers.throwaway import NoThrowaway, node

REQUIRES = ("postgres",)
SCHEMA = "postgres_failover"
WRITERS, WARM_WRITES, AFTER_WRITES = 3, 300, 60  # writers; acknowledged writes before the kill, after
LOCAL_ONLY = "this lesson kills nodes and runs pg_rewind and pg_waldump on their data folders"
NODE = {"fsync": "on", "full_page_writes": "on", "wal_log_hints": "on"}  # the launcher turns 2 off
# In the folder's configuration too (postgresql.auto.conf, copied to the replica): on a crashed target
# pg_rewind first runs crash recovery (`postgres --single`, no command-line settings), which would record
# wal_log_hints off, and its end-of-recovery checkpoint would remove the WAL back to the last common
# checkpoint, which pg_rewind reads, unless wal_keep_size keeps it.
IN_FOLDER = {"wal_log_hints": "on", "wal_keep_size": "256MB"}
SYNC = {"synchronous_standby_names": "node_a", "synchronous_commit": "remote_apply"}
MONITOR = {  # pg_auto_failover's monitor, in milliseconds (defaults: 5000, 5000, 2, 2000, 20000, 30000)
    "pgautofailover.health_check_period": "1000",
    "pgautofailover.health_check_timeout": "1000",
    "pgautofailover.health_check_max_retries": "1",
    "pgautofailover.health_check_retry_delay": "500",
    "pgautofailover.node_considered_unhealthy_timeout": "2000",
    "pgautofailover.primary_demote_timeout": "3000",
}
ASYNC, SYNCHRONOUS, HA = "asynchronous, by hand", "synchronous, by hand", "pg_auto_failover"
BEHIND = "SELECT max(pg_wal_lsn_diff(pg_current_wal_lsn(), flush_lsn))::bigint FROM pg_stat_replication"
TABLE = """
CREATE SCHEMA {s};
CREATE TABLE {s}.writes (setup text, writer integer, n integer,
    port integer NOT NULL DEFAULT inet_server_port(), PRIMARY KEY (setup, writer, n));
"""


@dataclass
class Setup:
    """One failover under writes: a row of the README's high-availability table."""

    setup: str
    configured: str = field(compare=False)
    topology: tuple = field(default=(), compare=False, repr=False)  # its nodes, for their memory
    sync_state: str = ""  # the replica's, in pg_stat_replication, before the crash
    acknowledged: int = field(default=0, compare=False)
    lost: int = field(default=0, compare=False)  # acknowledged and not on the new primary
    failed_but_there: int = field(default=0, compare=False)  # the client saw an error, the row is there
    seconds_without_writes: float = field(default=0.0, compare=False)  # longest gap between acknowledgments
    writes_after_failover: int = field(default=0, compare=False)  # acknowledged, begun once the kill was done
    landed_on_new_primary: int = field(default=0, compare=False)  # of those, rows the new primary wrote
    new_primary_in_recovery: bool | None = None
    promote_s: float = field(default=0.0, compare=False)  # kill done to promoted (by hand, or the manager)
    discarded: int = field(default=0, compare=False)  # the old primary's commits past the fork
    rewind_s: float = field(default=0.0, compare=False)
    rejoined_in_recovery: bool | None = None
    rows: tuple[int, int] = field(default=(0, 0), compare=False)  # (new primary, rejoined old primary)
    resident_bytes: int | None = field(default=None, compare=False)  # the topology's PSS, under the writers
    behind_bytes: int = field(default=0, compare=False)  # WAL the replica had not flushed, just before

    @property
    def converged(self) -> bool:
        return self.rows[0] == self.rows[1] > 0

    def row(self) -> list[object]:
        lost, gap = f"{self.lost} of {self.acknowledged:,}", console.seconds(self.seconds_without_writes)
        return [self.setup, lost, gap, self.discarded, f"{self.rows[0]}/{self.rows[1]}"]


@dataclass
class FailoverResult:
    setups: dict[str, Setup] = field(default_factory=dict)
    ha_missing: str = ""  # why the pg_auto_failover part did not run

    @property
    def holds(self) -> bool:
        """Every failover happened and writes resumed there; nothing lost where a replica had to
        confirm; every old primary rejoined as a replica with the new primary's rows."""
        return (
            ASYNC in self.setups
            and (HA in self.setups or bool(self.ha_missing))
            and all(s.lost == 0 for k, s in self.setups.items() if k != ASYNC)
            and all(
                s.new_primary_in_recovery is False
                and 0 < s.writes_after_failover == s.landed_on_new_primary
                and s.rejoined_in_recovery
                and s.converged
                for s in self.setups.values()
            )
        )


def q(text: str) -> sql.Composed:
    return sql.SQL(text).format(s=sql.Identifier(SCHEMA))


def multi_host_url(*nodes) -> str:
    """Every node in one URL: libpq tries them in turn and keeps the first that accepts writes."""
    hosts = ",".join(f"127.0.0.1:{n.port}" for n in nodes)
    return (
        f"postgresql://{USER}:{PASSWORD}@{hosts}/{DATABASE}?target_session_attrs=read-write&connect_timeout=2"
    )


def shown(url: str) -> str:
    return url.replace(f":{PASSWORD}@", ":***@")


def alter_system(url: str, settings: dict[str, str]) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for name, value in settings.items():
            conn.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), sql.Literal(value)))
        conn.execute("SELECT pg_reload_conf()")
        # The reload is a signal: wait until this session sees the new values, then the postmaster has
        # them too, and so does any session started from now on.
        for name, value in settings.items():
            while conn.execute("SELECT current_setting(%s)", (name,)).fetchone()[0] != value:
                time.sleep(0.01)


def writer(setup: str, number: int):
    statement = q("INSERT INTO {s}.writes (setup, writer, n) VALUES (%s, %s, %s)")

    def write(conn: psycopg.Connection, n: int) -> tuple[int, int]:
        conn.execute(statement, (setup, number, n))  # autocommit: acknowledged = committed
        return number, n

    return write


def streaming(primary, timeout_s: float = 30.0) -> str:
    """The replica's sync_state once one streams from `primary`. Never start writers without one: a
    synchronous commit would wait for a replica that is not there, and no timeout ends that wait safely.

    Where the primary names synchronous standbys, wait until one is "sync" or "quorum": after a reload
    the walsender reports "async" until it has read the new setting itself."""
    query = """SELECT sync_state, current_setting('synchronous_standby_names') <> ''
        FROM pg_stat_replication WHERE state = 'streaming'"""
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(primary.url(), autocommit=True) as conn:
        while not (found := conn.execute(query).fetchall()) or (
            found[0][1] and all(state == "async" for state, _ in found)
        ):
            if time.monotonic() > deadline:
                raise RuntimeError(f"no replica streams from port {primary.port} after {timeout_s:.0f} s")
            time.sleep(0.05)
    return ",".join(state for state, _ in found)


def count(result: Setup, load: Workload, killed_at: float, new) -> None:
    """What the writers saw, against what the new primary has: (writer, n) -> the port that wrote it."""
    with psycopg.connect(new.url(), autocommit=True) as conn:
        result.new_primary_in_recovery = conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]
        rows = conn.execute(q("SELECT writer, n, port FROM {s}.writes WHERE setup = %s"), (result.setup,))
        found = {(w, n): port for w, n, port in rows}
    acknowledged, after = [], []
    for number in range(WRITERS):
        attempts = [a for a in load.attempts if a.worker == f"write {number}"]
        for n, attempt in enumerate(attempts):  # attempt n wrote key (number, n)
            if attempt.error is None:
                acknowledged.append(attempt.key)
                after += [attempt.key] if attempt.started_s > killed_at else []
            result.failed_but_there += attempt.error is not None and (number, n) in found
    ends = sorted(a.started_s + a.latency_s for a in load.succeeded())
    result.acknowledged, result.lost = len(acknowledged), sum(k not in found for k in acknowledged)
    result.seconds_without_writes = max((b - a for a, b in pairwise(ends)), default=0.0)
    result.writes_after_failover = len(after)
    result.landed_on_new_primary = sum(found.get(key) == new.port for key in after)


def drill(result: Setup, old, new, url: str, fail_over) -> None:
    """Writers on `url`; kill -9 `old` mid-stream; `fail_over()` makes `new` the primary."""
    result.sync_state = streaming(old)
    with Workload() as load:
        for number in range(WRITERS):
            connect = lambda: psycopg.connect(url, autocommit=True)  # noqa: E731
            load.spawn(f"write {number}", writer(result.setup, number), connect=connect)
        try:
            load.wait_for(WARM_WRITES, timeout_s=60)
            result.resident_bytes = resident_bytes(result.topology)  # every node up, before the crash
            with psycopg.connect(old.url(), autocommit=True) as conn:
                result.behind_bytes = conn.execute(BEHIND).fetchone()[0] or 0
            old.kill()  # SIGKILL to every process of the node; returns once they are gone
            killed_at = load.now_s()  # a write begun from now on can only be acknowledged by `new`
            with timer() as took:
                fail_over()
            result.promote_s = took.seconds
            load.wait_for(len(load.succeeded()) + AFTER_WRITES, timeout_s=120)
        except BaseException:  # a writer waiting for a synchronous commit returns only when its server goes
            for server in result.topology:
                server.kill()
            raise
    count(result, load, killed_at, new)
    r = result
    console.say(f"acknowledged {r.acknowledged}, lost {r.lost}, failed yet there {r.failed_but_there}")
    console.say(
        f"no write for {console.seconds(r.seconds_without_writes)}; promoted {console.seconds(r.promote_s)} "
        f"after the kill (pg_is_in_recovery: {r.new_primary_in_recovery}); the replica was {r.sync_state}, "
        f"{console.size(r.behind_bytes)} of WAL behind just before it"
    )
    console.say(
        f"{r.landed_on_new_primary} of the {r.writes_after_failover} writes acknowledged after the kill came "
        "from the new primary, through the same URL"
    )


def discarded_commits(old, new) -> int:
    """Commit records the crashed old primary wrote past the fork point (read from its WAL with
    pg_waldump): the fork is the last line of the new primary's newest timeline history file."""
    with psycopg.connect(new.url(), autocommit=True) as conn:
        segment = conn.execute("SELECT pg_walfile_name(pg_current_wal_lsn())").fetchone()[0]
        history = conn.execute("SELECT pg_read_file(%s)", (f"pg_wal/{segment[:8]}.history",)).fetchone()[0]
    timeline, lsn = history.strip().splitlines()[-1].split()[:2]
    dump = old.tool(["pg_waldump", "-p", old.data / "pg_wal", "-t", timeline, "-s", lsn, "-r", "Transaction"])
    return sum("desc: COMMIT" in line for line in dump.stdout.splitlines())  # it ends on an error: the end


def converge(old, new, result: Setup, timeout_s: float = 60.0) -> None:
    """Wait until the rejoined node has replayed everything the new primary wrote; both row counts."""
    counting = q("SELECT count(*) FROM {s}.writes")
    with psycopg.connect(new.url(), autocommit=True) as primary:
        rows = primary.execute(counting).fetchone()[0]
        target = primary.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
    replayed = "SELECT pg_is_in_recovery(), coalesce(pg_last_wal_replay_lsn() >= %s::pg_lsn, false)"
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(old.url(), autocommit=True) as standby:
        while (
            not (state := standby.execute(replayed, (target,)).fetchone())[1] and time.monotonic() < deadline
        ):
            time.sleep(0.05)
        result.rejoined_in_recovery, result.rows = state[0], (rows, standby.execute(counting).fetchone()[0])


def configured(primary) -> str:
    """The primary's replication settings, read from it."""
    with psycopg.connect(primary.url(), autocommit=True) as conn:
        names, commit = conn.execute(
            "SELECT current_setting('synchronous_standby_names'), current_setting('synchronous_commit')"
        ).fetchone()
    return f"synchronous_standby_names '{names}', synchronous_commit {commit}"


def by_hand(old, new, setup: str) -> Setup:
    """Kill `old`, promote `new` with pg_promote(), pg_rewind `old` into a replica of `new`."""
    result = Setup(setup, configured(old), topology=(old, new))

    def promote() -> None:
        with psycopg.connect(new.url(), autocommit=True) as conn:
            conn.execute("SELECT pg_promote(wait => true, wait_seconds => 60)")

    drill(result, old, new, multi_host_url(old, new), promote)
    names = old.extra_settings["cluster_name"], new.extra_settings["cluster_name"]
    console.step("pg_rewind: the old primary rejoins as a replica of the new one")
    result.discarded = discarded_commits(old, new)
    with psycopg.connect(new.url(), autocommit=True) as conn:
        conn.execute("CHECKPOINT")  # pg_rewind reads the source's timeline from its last checkpoint
    source = f"host=127.0.0.1 port={new.port} user={USER} dbname=postgres"
    argv = ["pg_rewind", "--target-pgdata", old.data, "--source-server", source, "--write-recovery-conf"]
    with timer() as took:
        done = old.tool(argv, env={"PGPASSWORD": PASSWORD})
    if done.returncode != 0:
        raise RuntimeError(f"pg_rewind failed: {done.stderr.strip()}")
    result.rewind_s = took.seconds
    console.say(
        " ".join(line for line in done.stderr.splitlines() if "diverged" in line or "required" in line)
    )
    old.start_and_wait(tied_to_parent=True)  # standby.signal and primary_conninfo: from --write-recovery-conf
    converge(old, new, result)
    console.say(
        f"{names[0]} rewound in {console.seconds(result.rewind_s)}, {result.discarded} commits past the fork "
        f"thrown away (pg_waldump); rows on {names[1]} {result.rows[0]}, on {names[0]} {result.rows[1]}"
    )
    return result


def start_ha(stack: contextlib.ExitStack) -> tuple:
    """A monitor and two keepers: node_1 the primary, node_2 its synchronous standby."""
    monitor = stack.enter_context(pg_auto_failover.node("monitor", settings=MONITOR))
    first = stack.enter_context(pg_auto_failover.node(monitor=monitor.url(), name="node_1"))
    second = stack.enter_context(pg_auto_failover.node(monitor=monitor.url(), name="node_2"))
    monitor.wait_for({"node_1": "primary", "node_2": "secondary"})
    return monitor, first, second


def with_manager(monitor, first, second) -> Setup:
    """Kill node_1 whole (keeper and PostgreSQL); the monitor promotes node_2; node_1 restarted rejoins."""
    with psycopg.connect(first.url()) as conn:
        conn.execute(q(TABLE))
    with psycopg.connect(monitor.url()) as conn:
        found = [conn.execute("SELECT current_setting(%s)", (k,)).fetchone()[0] for k in MONITOR]
    period, unhealthy, demote = found[0], found[4], found[5]
    timers = f"health checks every {period}, unhealthy after {unhealthy}, demote timeout {demote}"
    settings = f"{configured(first)}; {timers}"
    result = Setup(HA, settings, topology=(monitor, first, second))
    url = monitor.formation_uri().replace("postgres://", f"postgresql://{USER}:{PASSWORD}@", 1)
    console.say(f"the monitor hands clients {shown(url)}")
    drill(result, first, second, url, lambda: monitor.wait_for({"node_2": "wait_primary"}))
    result.discarded = discarded_commits(first, second)
    with timer() as took:
        first.start_and_wait(tied_to_parent=True)  # ready once the monitor has it as a secondary again
    result.rewind_s = took.seconds
    rewound = "Rewinding PostgreSQL" in first.log_path.read_text(errors="replace")
    converge(first, second, result)
    console.say(
        f"node_1 restarted: a secondary again in {console.seconds(result.rewind_s)}, pg_autoctl ran "
        f"pg_rewind: {rewound}; {result.discarded} commits past the fork thrown away"
    )
    console.say(f"rows on node_2 {result.rows[0]}, on node_1 {result.rows[1]}")
    return result


def run() -> FailoverResult:
    """The lesson on nodes it starts itself: two for the drills by hand, a pg_auto_failover formation."""
    console.title("PostgreSQL failover: kill -9 the primary, promote a replica, count what was lost")
    result = FailoverResult()
    with ThreadPoolExecutor(1) as pool, contextlib.ExitStack() as stack:
        ha_stack, ha = stack.enter_context(contextlib.ExitStack()), None
        if pg_auto_failover.PgAutoctlServer.installed():  # it starts meanwhile, on a thread of its own
            ha = pool.submit(start_ha, ha_stack)
            stack.callback(ha.exception)  # wait for the thread before its nodes are stopped
        else:
            result.ha_missing = "pg_autoctl not installed (pg-auto-failover-cli, postgresql-15-auto-failover)"

        console.step("A primary and a streaming replica made with pg_basebackup -R")
        a = stack.enter_context(
            node("postgres", settings={**NODE, "cluster_name": "node_a"}, local_only=LOCAL_ONLY)
        )
        with psycopg.connect(a.url(), autocommit=True) as conn:
            conn.execute(q(TABLE))
        alter_system(a.url(), IN_FOLDER)
        b_settings = {**NODE, "cluster_name": "node_b"}
        b = stack.enter_context(
            node("postgres", settings=b_settings, replica_of=a.url(), local_only=LOCAL_ONLY)
        )
        console.say(f"node_a primary on port {a.port}, node_b its replica on port {b.port}; the writers use")
        console.say(shown(multi_host_url(a, b)))

        console.step("Asynchronous: kill -9 node_a under writes, pg_promote() node_b")
        result.setups[ASYNC] = by_hand(a, b, ASYNC)

        console.step("Synchronous, remote_apply: kill -9 node_b under writes, pg_promote() node_a")
        alter_system(b.url(), SYNC)
        result.setups[SYNCHRONOUS] = by_hand(b, a, SYNCHRONOUS)

        console.step("pg_auto_failover: the monitor sees node_1 die and promotes node_2")
        if ha is None:
            console.say(f"skipped: {result.ha_missing}")
        else:
            result.setups[HA] = with_manager(*ha.result())

    console.step("Acknowledged writes lost and seconds without writes, per setup")
    headers = ["setup", "lost", "no writes for", "discarded", "rows new/old"]
    console.table(headers, [s.row() for s in result.setups.values()])
    for s in result.setups.values():
        memory = "not measured (container)" if s.resident_bytes is None else console.size(s.resident_bytes)
        console.say(f"{s.setup}: {s.configured}; memory under the writers {memory} (PSS of every process)")
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

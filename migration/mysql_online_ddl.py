"""MySQL online DDL: ALGORITHM=INSTANT, INPLACE or COPY, LOCK=NONE, metadata locks and pt-online-schema-change

Which ALTER TABLE can run while the application works on the table? Each change asks for the least
disruptive way first: ALGORITHM=INSTANT (the data dictionary only), then INPLACE with LOCK=NONE
(built in place while DML goes on), then COPY with LOCK=NONE, then COPY with LOCK=SHARED (a full
copy while every write waits). The server refuses a way it cannot do, and its error says why: the
lesson prints it. A writer and two readers run through each change and count what each way cost
them. Then the metadata lock: a transaction left open holds a shared metadata lock on the table,
an instant ALTER waits for its exclusive one, and every later query, plain reads too, waits behind
the ALTER ("Waiting for table metadata lock"). A short lock_wait_timeout and retries bound the
stall: MariaDB accepts 0 (give up at once), MySQL's minimum is 1 second. MariaDB also has
ALGORITHM=NOCOPY and, from 11.2, COPY with LOCK=NONE; the lesson asks the same four ways of both.
Last, pt-online-schema-change does the COPY-only change online: a shadow table kept current by
triggers, a chunked copy, then an atomic RENAME.

Engine: MySQL 8.4 or MariaDB 10.11, the local stand-in (MYSQL_URL), database `zero_downtime`; it
says which one ran. pt-online-schema-change from Debian's percona-toolkit when installed (the
password goes to it in a temporary option file, not on its command line).
Run: `make up SERVICES=mysql` (or `make local-up`), then `python migration/mysql_online_ddl.py`.
Look for: the refusals' reasons, the writes held up by COPY with LOCK=SHARED, the sessions queued
behind the waiting ALTER, and pt-online-schema-change's change with no failed operation.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pymysql

from common import console
from common.settings import mysql_params, require
from common.workload import BLOCKED_AFTER_S, Workload

REQUIRES = ("mysql",)
DATABASE = "zero_downtime"
N_ROWS = 200_000
READERS = ("read-1", "read-2")
PAUSE_S = 0.02  # each worker's pause between operations
HOLD_S = 0.6  # how long the open transaction holds its metadata lock (longer on MySQL: see mdl())
SEED = 13
PT_OSC = "pt-online-schema-change"
PT_OSC_ALTER = "MODIFY COLUMN amount DECIMAL(14,2) NOT NULL"  # a type change: COPY only, natively
# pt-osc pauses when the server's Threads_running passes 25 and aborts past 50 (its defaults), and
# that counts every client: on a server shared with other lessons, set the bounds far above them.
PT_OSC_LOAD = "Threads_running=1000"
PT_OSC_TIMEOUT_S = 120

CREATE = [
    "CREATE TABLE customers (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, mail VARCHAR(100) NOT NULL, "
    "name VARCHAR(100) NOT NULL, amount INT NOT NULL, note VARCHAR(40) NULL) ENGINE=InnoDB",
    "CREATE TABLE digits (d INT NOT NULL PRIMARY KEY)",
    "INSERT INTO digits VALUES (0), (1), (2), (3), (4), (5), (6), (7), (8), (9)",
]
LOAD = """
INSERT INTO customers (mail, name, amount, note)
SELECT CONCAT('user', n, '@example.com'), CONCAT('Customer ', n), n MOD 1000, CONCAT('note ', n)
FROM (SELECT a.d + 10 * b.d + 100 * c.d + 1000 * e.d + 10000 * f.d + 100000 * g.d AS n
      FROM digits a, digits b, digits c, digits e, digits f, digits g) AS numbers
WHERE n < %s
"""
# Each change, asked the four ways, most online first. The first one the server accepts is kept.
ATTEMPTS = {
    "add column": [
        "ALTER TABLE customers ADD COLUMN email VARCHAR(120) NULL, ALGORITHM=INSTANT",
        "ALTER TABLE customers ADD COLUMN email VARCHAR(120) NULL, ALGORITHM=INPLACE, LOCK=NONE",
        "ALTER TABLE customers ADD COLUMN email VARCHAR(120) NULL, ALGORITHM=COPY, LOCK=NONE",
        "ALTER TABLE customers ADD COLUMN email VARCHAR(120) NULL, ALGORITHM=COPY, LOCK=SHARED",
    ],
    "rename column": [
        "ALTER TABLE customers RENAME COLUMN note TO remark, ALGORITHM=INSTANT",
        "ALTER TABLE customers RENAME COLUMN note TO remark, ALGORITHM=INPLACE, LOCK=NONE",
        "ALTER TABLE customers RENAME COLUMN note TO remark, ALGORITHM=COPY, LOCK=NONE",
        "ALTER TABLE customers RENAME COLUMN note TO remark, ALGORITHM=COPY, LOCK=SHARED",
    ],
    "add index": [
        "ALTER TABLE customers ADD INDEX ix_name (name), ALGORITHM=INSTANT",
        "ALTER TABLE customers ADD INDEX ix_name (name), ALGORITHM=INPLACE, LOCK=NONE",
        "ALTER TABLE customers ADD INDEX ix_name (name), ALGORITHM=COPY, LOCK=NONE",
        "ALTER TABLE customers ADD INDEX ix_name (name), ALGORITHM=COPY, LOCK=SHARED",
    ],
    "change type": [
        "ALTER TABLE customers MODIFY COLUMN amount BIGINT NOT NULL, ALGORITHM=INSTANT",
        "ALTER TABLE customers MODIFY COLUMN amount BIGINT NOT NULL, ALGORITHM=INPLACE, LOCK=NONE",
        "ALTER TABLE customers MODIFY COLUMN amount BIGINT NOT NULL, ALGORITHM=COPY, LOCK=NONE",
        "ALTER TABLE customers MODIFY COLUMN amount BIGINT NOT NULL, ALGORITHM=COPY, LOCK=SHARED",
    ],
}
MDL_ALTER = "ALTER TABLE customers ADD COLUMN flag TINYINT NULL, ALGORITHM=INSTANT"
MDL_UNDO = "ALTER TABLE customers DROP COLUMN flag"
MDL_WAITERS = """
SELECT ID FROM information_schema.PROCESSLIST
WHERE DB = %s AND STATE = 'Waiting for table metadata lock' AND ID <> %s
"""
COLUMN_TYPE = """
SELECT DATA_TYPE FROM information_schema.COLUMNS
WHERE TABLE_SCHEMA = %s AND TABLE_NAME = 'customers' AND COLUMN_NAME = %s
"""


@dataclass
class Seen:
    """What the application saw during one step."""

    name: str
    operations: int
    failed: int
    blocked: int  # the recorder's: over 100 ms
    mdl_blocked: int  # waits for a metadata lock seen lasting over 100 ms
    mdl_waiting: int  # most workload sessions seen "Waiting for table metadata lock" at once
    slowest_s: float
    errors: dict[str, int] = field(default_factory=dict)  # error class -> count
    failures: list[str] = field(default_factory=list)  # each failure's class and first line
    acknowledged: list[int] = field(default_factory=list, repr=False)


@dataclass
class Change:
    name: str
    outcomes: dict[str, str]  # way -> "accepted" or the refusal (error code and reason)
    accepted: str | None  # the first way accepted
    seen: Seen | None = None


@dataclass
class OnlineDdlResult:
    server: str
    is_mariadb: bool
    version: tuple[int, int]
    changes: dict[str, Change]
    mdl_unbounded: Seen
    mdl_bounded: Seen
    lock_wait_timeout: int  # the shortest this server allows, in seconds
    gave_up: int  # 1205 errors of the ALTER under it while the transaction was open
    pt_osc: str  # "done", "not installed", or why it failed
    pt_osc_seen: Seen | None = None
    amount_type_after: str = ""
    lost: int = 0  # acknowledged writes missing at the end, every step included

    @property
    def holds(self) -> bool:
        pt_ok = self.pt_osc in ("not installed", "done")
        return (
            self.changes["add column"].accepted == "INSTANT"
            and self.changes["add index"].accepted == "INPLACE, LOCK=NONE"
            and self.mdl_unbounded.mdl_blocked > 0
            and self.gave_up > 0
            and pt_ok
            and self.lost == 0
        )


def way(statement: str) -> str:
    return statement.partition(", ALGORITHM=")[2]  # INSTANT, INPLACE, LOCK=NONE, ...


def reason(message: str) -> str:
    """The part of a refusal that says why: MariaDB and MySQL word it differently."""
    message = message.split(". Try")[0]
    return message.split("Reason: ")[-1]


def connect(params: dict) -> pymysql.Connection:
    return pymysql.connect(**{**params, "database": DATABASE}, autocommit=True)


def scalar(conn: pymysql.Connection, query: str, args: tuple = ()) -> object:
    with conn.cursor() as cur:
        cur.execute(query, args)
        row = cur.fetchone()
    return row[0] if row else None


def build(admin: pymysql.Connection) -> None:
    with admin.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS zero_downtime")
        cur.execute("CREATE DATABASE zero_downtime")
        cur.execute("USE zero_downtime")
        for statement in CREATE:
            cur.execute(statement)
        cur.execute(LOAD, (N_ROWS,))


# --- the application, and what it saw ---------------------------------------------------------------


def operation(worker: str, seed: int):
    rng = random.Random(seed)

    def run_once(conn: pymysql.Connection, n: int) -> int | None:
        with conn.cursor() as cur:
            if worker == "write":
                cur.execute(
                    "INSERT INTO customers (mail, name, amount) VALUES (%s, %s, %s)", (f"w{n}@x.org", "w", n)
                )
                return cur.lastrowid
            cur.execute("SELECT mail FROM customers WHERE id = %s", (rng.randint(1, N_ROWS),))
            cur.fetchone()
            return None

    return run_once


class MdlWatch(threading.Thread):
    """Samples the process list for workload sessions "Waiting for table metadata lock".

    A wait seen in consecutive samples spanning over 100 ms is a statement held up by a metadata
    lock that long (the span is a lower bound); `most` is the most sessions seen waiting at once.
    """

    def __init__(self, params: dict, ignore_id: int) -> None:
        super().__init__(daemon=True)
        self.conn = connect(params)
        self.ignore_id = ignore_id  # the session running the ALTER
        self.spans: dict[int, tuple[float, float]] = {}  # session -> (first, last) seen waiting
        self.long_waits = self.most = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            with self.conn.cursor() as cur:
                cur.execute(MDL_WAITERS, (DATABASE, self.ignore_id))
                waiting = {row[0] for row in cur.fetchall()}
            now = time.monotonic()
            self.most = max(self.most, len(waiting))
            for session in set(self.spans) - waiting:
                self._close(session)
            for session in waiting:
                self.spans[session] = (self.spans.get(session, (now, now))[0], now)
            time.sleep(0.01)

    def _close(self, session: int) -> None:
        first, last = self.spans.pop(session)
        self.long_waits += last - first > BLOCKED_AFTER_S

    def stop(self) -> tuple[int, int]:
        """(waits seen lasting over 100 ms, most sessions waiting at once)."""
        self.done.set()
        self.join()
        self.conn.close()
        for session in list(self.spans):
            self._close(session)
        return self.long_waits, self.most


@contextmanager
def live(params: dict, ddl: pymysql.Connection, name: str, seen: list[Seen]) -> Iterator[None]:
    """The application (a writer, two readers) and the watcher around one step; counted from its start."""
    watch = MdlWatch(params, ddl.thread_id())
    watch.start()
    with Workload(pause_s=PAUSE_S) as load:
        for i, worker in enumerate(["write", *READERS]):
            load.spawn(worker, operation(worker, SEED + i), connect=lambda: connect(params))
        load.wait_for(3 * (1 + len(READERS)))  # connected and warm: connecting is not what is measured
        began = load.now_s()
        yield
        time.sleep(0.1)  # the queued operations finish; the load is seen to go on
    # operations, failed, blocked, slowest_s, errors; a statement sent just before the DDL counts too
    seen_now = asdict(load.report(since_s=began, in_flight=True))
    seen_now["mdl_blocked"], seen_now["mdl_waiting"] = watch.stop()
    failures = [a.error for a in load.attempts if a.error and a.covers(began, in_flight=True)]
    seen.append(Seen(name, **seen_now, failures=failures, acknowledged=load.acknowledged()))


# --- the lesson's steps ---------------------------------------------------------------------------


def try_ways(admin: pymysql.Connection, params: dict, name: str, seen: list[Seen]) -> Change:
    """Each way in turn, while the application works, until the server accepts one."""
    outcomes: dict[str, str] = {}
    with admin.cursor() as cur, live(params, admin, name, seen):
        for statement in ATTEMPTS[name]:
            try:
                cur.execute(statement)
            except pymysql.err.MySQLError as refused:  # at once: nothing was done
                outcomes[way(statement)] = f"refused {refused.args[0]}: {reason(refused.args[1])}"
                continue
            outcomes[way(statement)] = "accepted"
            break
    accepted = next((w for w, outcome in outcomes.items() if outcome == "accepted"), None)
    return Change(name, outcomes, accepted, seen[-1])


@contextmanager
def open_transaction(params: dict) -> Iterator[Callable[[float], None]]:
    """A transaction that read the table and stays open, holding a shared metadata lock.

    It yields `release(after_s)`: the transaction ends `after_s` seconds after the first call. The
    clock starts when the lesson says, not at BEGIN, so a slow machine cannot end it before the
    ALTER it is meant to hold up has even been sent.
    """
    conn = connect(params)
    conn.begin()
    scalar(conn, "SELECT count(*) FROM customers WHERE id <= 1000")
    timers: list[threading.Timer] = []

    def release(after_s: float) -> None:
        if not timers:
            timers.append(threading.Timer(after_s, conn.rollback))
            timers[0].start()

    try:
        yield release
    finally:
        release(0)
        timers[0].join()
        conn.close()


def mdl(admin: pymysql.Connection, params: dict, is_mariadb: bool, seen: list[Seen]) -> tuple[int, int]:
    """The ALTER behind an open transaction: waiting as long as it takes, then under lock_wait_timeout."""
    shortest = 0 if is_mariadb else 1  # seconds: MariaDB gives up at once with 0; MySQL's minimum is 1
    hold_s = max(HOLD_S, 2 * shortest + 0.5)  # long enough for the ALTER to give up more than once
    with admin.cursor() as cur:
        with live(params, admin, "ALTER, no timeout", seen), open_transaction(params) as release:
            release(hold_s)
            cur.execute(MDL_ALTER)
        cur.execute(MDL_UNDO)
        gave_up = 0
        cur.execute("SET SESSION lock_wait_timeout = %s", (shortest,))
        with live(params, admin, "ALTER, timeout+retry", seen), open_transaction(params) as release:
            while True:
                try:
                    cur.execute(MDL_ALTER)
                    break
                except pymysql.err.OperationalError as error:
                    if error.args[0] != 1205 or gave_up > 100:  # ER_LOCK_WAIT_TIMEOUT
                        raise
                    gave_up += 1
                    release(hold_s)  # from the first refusal: the transaction was surely open for it
                    time.sleep(0.05)  # let the queries queued behind it through
        cur.execute("SET SESSION lock_wait_timeout = DEFAULT")
    return shortest, gave_up


def pt_online_schema_change(admin: pymysql.Connection, params: dict, seen: list[Seen]) -> str:
    """Run the tool with --execute while the application works; the password goes in an option file."""
    tool = shutil.which(PT_OSC)
    if tool is None:
        return "not installed"
    with tempfile.TemporaryDirectory(prefix="zero_downtime-") as folder:
        options = Path(folder) / "client.cnf"
        options.touch(mode=0o600)
        # MySQL's client library (under Perl's DBD::mysql) takes the host "localhost", the compose
        # default, for its Unix socket and ignores the port: name the loopback address instead.
        host = "127.0.0.1" if params["host"] == "localhost" else params["host"]
        options.write_text(
            f"[client]\nhost={host}\nport={params['port']}\n"
            f"user={params['user']}\npassword={params['password']}\n"
        )
        command = [
            tool, "--execute", "--no-version-check", "--recursion-method=none", "--alter", PT_OSC_ALTER,
            "--max-load", PT_OSC_LOAD, "--critical-load", PT_OSC_LOAD,
            f"F={options},D={DATABASE},t=customers",
        ]  # fmt: skip
        with live(params, admin, "pt-osc", seen):
            try:
                finished = subprocess.run(command, capture_output=True, text=True, timeout=PT_OSC_TIMEOUT_S)
            except subprocess.TimeoutExpired:  # killed: its triggers and copy stay until a rerun resets
                return f"failed (no exit in {PT_OSC_TIMEOUT_S} s)"
    if finished.returncode != 0:
        lines = (finished.stderr or finished.stdout).strip().splitlines() or ["no output"]
        return f"failed (exit {finished.returncode}): {lines[-1][:160]}"
    return "done"


def lost(admin: pymysql.Connection, seen: list[Seen]) -> int:
    keys = [key for s in seen for key in s.acknowledged]
    found = 0
    for start in range(0, len(keys), 1000):
        chunk = keys[start : start + 1000]
        found += scalar(admin, "SELECT count(*) FROM customers WHERE id IN %s", (chunk,)) if chunk else 0
    return len(keys) - found


def show(result: OnlineDdlResult, seen: list[Seen]) -> None:
    rows = [(c.name, w, outcome) for c in result.changes.values() for w, outcome in c.outcomes.items()]
    console.table(["change", "ALGORITHM=", "server's answer"], rows)
    console.say("A refusal costs nothing: ask for ALGORITHM and LOCK, and never get a silent COPY.")
    console.table(
        ["step", "ops", "failed", ">100 ms", "MDL wait >100 ms", "slowest ms"],
        [(s.name, s.operations, s.failed, s.blocked, s.mdl_blocked, round(s.slowest_s * 1000)) for s in seen],
    )


def run(admin: pymysql.Connection, params: dict) -> OnlineDdlResult:
    """`admin` may create databases; `params` (common.settings.mysql_params) open the application's sessions."""
    server = str(scalar(admin, "SELECT VERSION()"))
    is_mariadb = "mariadb" in server.lower()
    version = tuple(int(part) for part in server.split("-")[0].split(".")[:2])
    console.title(f"Online DDL on {'MariaDB' if is_mariadb else 'MySQL'} {server}")
    seen: list[Seen] = []

    console.step("A customers table, and an application that writes and reads it")
    build(admin)
    console.say(f"{N_ROWS:,} rows; one writer and {len(READERS)} readers, each on its own connection.")

    console.step("Four changes, each asked the most online way first")
    changes = {name: try_ways(admin, params, name, seen) for name in ATTEMPTS}

    console.step("The metadata lock: an instant ALTER behind an open transaction")
    shortest, gave_up = mdl(admin, params, is_mariadb, seen)
    unbounded, bounded = seen[-2:]
    console.say(f"Without a timeout {unbounded.mdl_waiting} sessions waited behind the ALTER at once.")
    console.say(f"lock_wait_timeout = {shortest} s: it gave up {gave_up} times, then went through.")

    console.step("pt-online-schema-change: the COPY-only change, online")
    pt_osc = pt_online_schema_change(admin, params, seen)
    pt_seen = None if pt_osc == "not installed" else seen[-1]
    amount = str(scalar(admin, COLUMN_TYPE, (DATABASE, "amount")))
    console.say(f"{PT_OSC}: {pt_osc}; amount is now {amount}.")
    if pt_seen is not None:
        console.say(f"Meanwhile: {pt_seen.failed} failed, {pt_seen.blocked} took over 100 ms.")
        for error in sorted(set(pt_seen.failures)):
            console.say(f"  {error}")
        console.say("Its chunks copy rows LOCK IN SHARE MODE while its triggers write: retry 1213 and 1205.")

    result = OnlineDdlResult(
        server, is_mariadb, version, changes, unbounded, bounded, shortest, gave_up, pt_osc, pt_seen, amount
    )
    result.lost = lost(admin, seen)
    console.step("What the application saw")
    show(result, seen)
    console.say(f"Acknowledged writes missing afterwards: {result.lost}.")
    return result


def main() -> int:
    require(*REQUIRES)
    params = mysql_params()
    with pymysql.connect(**params, autocommit=True) as admin:
        result = run(admin, params)
    return 0 if result.holds else 1


if __name__ == "__main__":
    raise SystemExit(main())

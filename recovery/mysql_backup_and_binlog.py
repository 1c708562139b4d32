"""MySQL backups: full and incremental mariadb-backup, then binlog replay to just before a mistake

A physical backup copies InnoDB's files while the server runs and `--prepare` makes them consistent;
an incremental copies only the pages changed since its base (by LSN); the binary log holds every
change since. On MariaDB nodes of its own: a full backup, writes, an incremental, writes across
binlog files, then the mistake, `DELETE FROM orders` with no WHERE. Each backup is prepared, copied
back into a fresh node's data folder, started, and compared with the source at backup time by row
count and an MD5 over the ordered rows. Then the binlog, from the position the incremental
recorded, is replayed with `mariadb-binlog --stop-position` at the mistake's transaction: every row
is back, the mistake is not. Last, the silent failure: an archive missing one binlog file in the
middle of the chain replays without an error, the client exits 0, and rows are missing; only the
count, or a check that the file numbers run without a gap, tells.

On MySQL 8.4 (the compose image) the drill is the same with other tools: Percona XtraBackup 8.4
(`xtrabackup --backup --target-dir`, `--incremental-basedir`, then `--prepare --apply-log-only` on
the base and on every incremental but the last: mariadb-backup needs no such flag) or MySQL
Enterprise Backup, and `mysqlbinlog` with the same `--start-position` / `--stop-position`. Binary
logging is on by default there (ROW format), SHOW MASTER STATUS is SHOW BINARY LOG STATUS, and with
GTIDs on a server skips transactions whose GTIDs it already executed: replay into the node restored
from the backup, or pass `--skip-gtids`.

Engine: MySQL (MYSQL_URL, only read: its version and binary log settings say which tools fit it);
the drill runs on throwaway MariaDB nodes (local `mariadbd`, `mariadb-backup`, `mariadb-binlog`,
`mariadb`), database `mysql_backup_and_binlog`, removed at the end. Local only: the compose image
(MySQL 8.4) has no mariadb-backup and no XtraBackup, so Docker alone cannot run the drill.
Run: `make up SERVICES=mysql` (or `make local-up`), then `python recovery/mysql_backup_and_binlog.py`.
Look for: equal counts and MD5s after each restore, the mistake's binlog position, the full count
after the replay, and the replay with a missing file that exits 0 with rows missing.
"""

from __future__ import annotations

import hashlib
import random
import re
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pymysql

from common import console
from common.settings import mysql_params, require
from common.timing import timer
from servers.throwaway import NoThrowaway, node

REQUIRES = ("mysql",)
# Why its nodes are local MariaDB, never a container of the compose image (node() says it when absent):
LOCAL_ONLY = (
    "mariadb-backup and mariadb-binlog back up and replay MariaDB only, and the compose MySQL 8.4 image "
    "has no physical backup tool (Percona XtraBackup is not in it): this drill needs local MariaDB nodes"
)
DATABASE = "mysql_backup_and_binlog"
BACKUP_USER = "mysql_backup_and_binlog"
SEED = 17
FULL_ROWS, INC_ROWS, INC_UPDATES = 20_000, 4_000, 2_000  # before the full, then before the incremental
FILE_ROWS = (3_000, 2_000)  # inserted into each of two binlog files after the incremental
LATE_UPDATES = 1_000  # in the second file, on rows of the full backup
BACKUP_TOOL = "mariadb-backup"
TOOLS = (BACKUP_TOOL, "mariadb-binlog", "mariadb")
# Binary logging is a start-time setting: the source node starts with it (ROW, as on MySQL 8.4).
BINLOG = {"log-bin": "binlog", "server-id": "1", "binlog-format": "ROW"}
# What mariadb-backup needs from 10.5 on (xtrabackup on MySQL 8.4: BACKUP_ADMIN, PROCESS, RELOAD,
# LOCK TABLES, REPLICATION CLIENT and SELECT on performance_schema.log_status).
BACKUP_GRANTS = "RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR"
GRANT = "GRANT RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR ON *.* TO %s@'127.0.0.1'"
CREATE_DATABASE = "CREATE DATABASE mysql_backup_and_binlog"  # DATABASE; the node is new: nothing to reset
CREATE = (
    "CREATE TABLE orders (id BIGINT NOT NULL PRIMARY KEY, customer INT NOT NULL, "
    "amount DECIMAL(10,2) NOT NULL, status VARCHAR(10) NOT NULL) ENGINE=InnoDB"
)
INSERT = "INSERT INTO orders (id, customer, amount, status) VALUES (%s, %s, %s, %s)"
UPDATE = "UPDATE orders SET status = %s, amount = amount + %s WHERE id = %s"
MISTAKE = "DELETE FROM orders"  # meant: DELETE FROM orders WHERE status = 'cancelled'


@dataclass(frozen=True)
class State:
    rows: int
    md5: str  # over every row in id order


@dataclass
class Restore:
    expected: State  # the source at the moment this restore should bring back
    restored: State

    @property
    def equal(self) -> bool:
        return self.expected == self.restored


@dataclass
class Backup:
    path: Path
    binlog_file: str  # where the binary log stood when the backup was consistent
    binlog_pos: int
    size: int
    seconds: float


@dataclass
class DrillResult:
    server: str  # the version that ran the drill
    restores: dict[str, Restore] = field(default_factory=dict)  # full, full+incremental, point in time
    mistake_deleted: int = 0  # rows the DELETE removed on the source
    replay_exit: int = -1  # the client's exit code for the point-in-time replay
    rows_after_mistake: int = -1  # on the source: what an unprepared team would have
    gap_replay_exit: int = -1  # the replay with a file missing: also 0
    gap_rows_missing: int = -1  # rows short of the moment before the mistake
    rows_in_missing_file: int = 0  # what the missing file held
    gap_found: list[str] = field(default_factory=list)  # files the chain check says are missing
    mistake_at: str = field(default="", compare=False)  # binlog file:position
    figures: dict[str, str] = field(default_factory=dict, compare=False)  # sizes and times, printed
    backups: dict[str, Backup] = field(default_factory=dict, compare=False)  # full, incremental
    shared_server: str = field(default="", compare=False)

    @property
    def holds(self) -> bool:
        return (
            len(self.restores) == 3
            and all(restore.equal for restore in self.restores.values())
            and self.restores["point in time"].restored.rows == self.mistake_deleted > 0
            and self.replay_exit == 0
            and self.gap_replay_exit == 0
            and self.gap_rows_missing == self.rows_in_missing_file > 0
            and len(self.gap_found) == 1
        )


def connect(port: int, database: str | None = DATABASE) -> pymysql.Connection:
    return pymysql.connect(host="127.0.0.1", port=port, user="root", database=database, autocommit=True)


def state(conn: pymysql.Connection) -> State:
    digest, rows = hashlib.md5(usedforsecurity=False), 0
    with conn.cursor(pymysql.cursors.SSCursor) as cur:
        cur.execute("SELECT id, customer, amount, status FROM orders ORDER BY id")
        for row in cur:
            digest.update(repr(row).encode())
            rows += 1
    return State(rows, digest.hexdigest())


def insert(conn: pymysql.Connection, rng: random.Random, first_id: int, count: int) -> int:
    rows = [
        (first_id + i, rng.randrange(1, 2_000), f"{rng.uniform(5, 500):.2f}", rng.choice(("new", "paid")))
        for i in range(count)
    ]
    with conn.cursor() as cur:
        cur.executemany(INSERT, rows)
    return first_id + count


def update(conn: pymysql.Connection, rng: random.Random, max_id: int, count: int) -> None:
    ids = rng.sample(range(1, max_id + 1), count)
    with conn.cursor() as cur:
        cur.executemany(UPDATE, [(rng.choice(("shipped", "cancelled")), "1.00", i) for i in ids])


def folder_size(path: Path) -> int:
    return sum(file.stat().st_size for file in path.rglob("*") if file.is_file())


def tool(*argv: str) -> subprocess.CompletedProcess:
    """A MariaDB tool, reading no option file but the one named (never /etc/mysql)."""
    options = [] if any(a.startswith("--defaults-file=") for a in argv) else ["--no-defaults"]
    finished = subprocess.run([argv[0], *options, *argv[1:]], capture_output=True, text=True)
    if finished.returncode != 0:
        raise RuntimeError(f"{argv[0]} {argv[1]} failed:\n{finished.stderr[-2000:]}")
    return finished


def backup_user(conn: pymysql.Connection, port: int, folder: Path) -> Path:
    """A user with only what backups need, its password in an option file (not on a command line)."""
    password = secrets.token_urlsafe(18)
    with conn.cursor() as cur:
        cur.execute("CREATE USER %s@'127.0.0.1' IDENTIFIED BY %s", (BACKUP_USER, password))
        cur.execute(GRANT, (BACKUP_USER,))
    options = folder / "backup.cnf"
    options.write_text(
        f"[mariadb-backup]\nuser={BACKUP_USER}\npassword={password}\nhost=127.0.0.1\nport={port}\n"
    )
    options.chmod(0o600)
    return options


def backup(options: Path, target: Path, base: Path | None = None) -> Backup:
    incremental = [f"--incremental-basedir={base}"] if base else []
    with timer() as took:
        tool(BACKUP_TOOL, f"--defaults-file={options}", "--backup", f"--target-dir={target}", *incremental)
    name, position = (target / "xtrabackup_binlog_info").read_text().split()[:2]
    return Backup(target, name, int(position), folder_size(target), took.seconds)


def prepare(full: Path, incremental: Path | None = None) -> float:
    """Make the copied files consistent (redo applied); with an incremental, roll the full forward."""
    extra = [f"--incremental-dir={incremental}"] if incremental else []
    with timer() as took:
        tool(BACKUP_TOOL, "--prepare", f"--target-dir={full}", *extra)
    return took.seconds


@contextmanager
def restored(prepared: Path) -> Iterator:
    """A fresh node whose data folder is a copy of the prepared backup, started."""
    with node("mysql", start=False, local_only=LOCAL_ONLY) as fresh:
        tool(BACKUP_TOOL, "--copy-back", f"--target-dir={prepared}", f"--datadir={fresh.workdir / 'data'}")
        fresh.start_and_wait(tied_to_parent=True)
        yield fresh


def binlog_files(conn: pymysql.Connection) -> list[str]:
    with conn.cursor() as cur:
        cur.execute("SHOW BINARY LOGS")
        return [row[0] for row in cur.fetchall()]


def find_mistake(conn: pymysql.Connection, files: list[str]) -> tuple[str, int, str]:
    """The first row deletion in the binlog: the file and position of its transaction's start."""
    for name in files:
        with conn.cursor() as cur:
            cur.execute("SHOW BINLOG EVENTS IN %s", (name,))
            events = cur.fetchall()  # Log_name, Pos, Event_type, Server_id, End_log_pos, Info
        start, statement = None, ""
        for _log, pos, kind, _server, _end, info in events:
            if kind in ("Gtid", "Anonymous_Gtid"):
                start, statement = pos, ""
            elif kind == "Annotate_rows":  # MariaDB logs the statement beside its row events
                statement = info
            elif kind.startswith("Delete_rows"):
                return name, start, statement
    raise RuntimeError("no row deletion found in the binary log")


def replay(files: list[Path], start: int, stop: int, port: int) -> int:
    """mariadb-binlog from `start` in the first file to `stop` in the last, piped into a node."""
    decode = ["mariadb-binlog", "--no-defaults", f"--start-position={start}", f"--stop-position={stop}"]
    apply = ["mariadb", "--no-defaults", "--host=127.0.0.1", f"--port={port}", "--user=root"]
    with subprocess.Popen([*decode, *map(str, files)], stdout=subprocess.PIPE) as reader:
        finished = subprocess.run(apply, stdin=reader.stdout, capture_output=True, text=True)
    if reader.returncode != 0:
        raise RuntimeError("mariadb-binlog failed")
    return finished.returncode


def rows_inserted_in(binlog: Path) -> int:
    """Rows a binlog file inserts, counted by decoding its row events (`--verbose` writes them out)."""
    decoded = tool("mariadb-binlog", "--verbose", str(binlog)).stdout
    return sum(line.startswith("### INSERT INTO") for line in decoded.splitlines())


def missing_from_chain(first: str, archived: list[str]) -> list[str]:
    """Binlog names between the backup's file and the newest archived one that the archive lacks."""
    number = re.compile(r"^(.*\.)(\d+)$")
    prefix, low = number.match(first).groups()
    high = max(int(number.match(name).group(2)) for name in archived)
    wanted = [f"{prefix}{n:0{len(low)}d}" for n in range(int(low), high + 1)]
    return [name for name in wanted if name not in archived]


def shared_server_note(url: str | None = None) -> str:
    """What the server at MYSQL_URL (or `url`) would need: read only, nothing is changed there."""
    params = {**mysql_params(url), "database": None}
    with pymysql.connect(**params) as conn, conn.cursor() as cur:
        cur.execute("SELECT VERSION(), @@log_bin, @@binlog_format")
        version, log_bin, binlog_format = cur.fetchone()
    tools = "mariadb-backup and mariadb-binlog" if "MariaDB" in version else "xtrabackup 8.4 and mysqlbinlog"
    pitr = f"binary log on ({binlog_format})" if log_bin else "binary log OFF: no point-in-time recovery"
    return f"the server at MYSQL_URL is {version}: {tools}; {pitr}"


def run(shared_note: str = "") -> DrillResult:
    """The drill on nodes of its own; `shared_note` describes the server at MYSQL_URL (only read)."""
    console.title("MySQL backups: full, incremental, and binlog replay to a point in time")
    with (
        tempfile.TemporaryDirectory(prefix="mysql-backup-") as scratch,
        node("mysql", settings=BINLOG, local_only=LOCAL_ONLY) as source,
    ):
        result = drill(source, Path(scratch))
    result.shared_server = shared_note
    if shared_note:
        console.step("Which tools fit the server at MYSQL_URL")
        console.say(shared_note)
    return result


def setup(source, rng: random.Random, scratch: Path) -> tuple[str, Path]:
    """The table and its first rows, the backup user; then a clean restart, which checkpoints."""
    with connect(source.port, database=None) as conn, conn.cursor() as cur:
        cur.execute(CREATE_DATABASE)
        conn.select_db(DATABASE)
        cur.execute(CREATE)
        insert(conn, rng, 1, FULL_ROWS)
        options = backup_user(conn, source.port, scratch)
        cur.execute("SELECT VERSION()")
        version = cur.fetchone()[0]
    # In production the full backup starts long after the tables were made. Here the table is
    # seconds old: without a checkpoint after its creation, the incremental would copy it whole.
    source.stop()
    source.start_and_wait(tied_to_parent=True)
    return version, options


def drill(source, scratch: Path) -> DrillResult:
    rng = random.Random(SEED)
    console.step("Load the source, take a full backup, write more, take an incremental")
    version, options = setup(source, rng, scratch)
    result = DrillResult(server=version)
    with connect(source.port) as conn:
        at_full = state(conn)
        full = backup(options, scratch / "full")
        next_id = insert(conn, rng, FULL_ROWS + 1, INC_ROWS)
        update(conn, rng, next_id - 1, INC_UPDATES)
        at_incremental = state(conn)
        inc = backup(options, scratch / "inc", base=full.path)
        result.backups.update(full=full, incremental=inc)
        rows = [(n, at.rows, console.size(b.size), console.seconds(b.seconds), f"{b.binlog_file}:{b.binlog_pos}")
                for n, at, b in (("full", at_full, full), ("incremental", at_incremental, inc))]  # fmt: skip
        console.table(["backup", "rows at backup", "size", "took", "binlog position recorded"], rows)
        console.say(f"{version}; backups by a user with only {BACKUP_GRANTS}.")

        console.step("More writes across binlog files, then the mistake: DELETE with no WHERE")
        before_mistake = binlog_writes(conn, rng, next_id)
        with conn.cursor() as cur:
            result.mistake_deleted = cur.execute(MISTAKE)
            cur.execute("FLUSH BINARY LOGS")  # close the file that holds it, as an archiver would
        result.rows_after_mistake = state(conn).rows
        files = binlog_files(conn)
        mistake_file, stop, statement = find_mistake(conn, files)
    archive = scratch / "binlogs"
    archive.mkdir()
    for name in files[:-1]:  # the closed files, copied off the server
        shutil.copy2(source.workdir / "data" / name, archive)
    chain = [archive / name for name in files[files.index(inc.binlog_file) : files.index(mistake_file) + 1]]
    result.mistake_at = f"{mistake_file}:{stop}"
    console.say(f"{result.mistake_deleted:,} rows deleted; {result.rows_after_mistake} left on the source.")
    console.say(f"found in the binlog at {result.mistake_at}: {statement or 'a Delete_rows event'}")
    result.figures["binlog archive"] = console.size(folder_size(archive))

    restores(result, full, inc, chain, stop, (at_full, at_incremental, before_mistake))
    silent_gap(result, full, inc, chain, stop, before_mistake)
    return result


def binlog_writes(conn: pymysql.Connection, rng: random.Random, next_id: int) -> State:
    """Inserts into two new binlog files, updates of old rows in the second; the state at its end."""
    for count in FILE_ROWS:
        conn.cursor().execute("FLUSH BINARY LOGS")
        next_id = insert(conn, rng, next_id, count)
    update(conn, rng, FULL_ROWS, LATE_UPDATES)
    return state(conn)


def restores(result: DrillResult, full: Backup, inc: Backup, chain: list[Path], stop: int, expected) -> None:
    at_full, at_incremental, before_mistake = expected
    console.step("Restore the full backup: prepare, copy back, start, compare")
    result.figures["prepare full"] = console.seconds(prepare(full.path))
    with timer() as took, restored(full.path) as fresh, connect(fresh.port) as target:
        result.restores["full"] = Restore(at_full, state(target))
    result.figures["copy back and start"] = console.seconds(took.seconds)
    full_restore = result.restores["full"]
    console.say(f"{full_restore.restored.rows:,} rows, MD5 equal to the source at backup time: "
                f"{full_restore.equal} (prepare {result.figures['prepare full']}, copy back and start "
                f"{result.figures['copy back and start']})")  # fmt: skip

    console.step("Roll the full forward with the incremental, restore, then replay the binlog")
    result.figures["prepare incremental"] = console.seconds(prepare(full.path, inc.path))
    with restored(full.path) as fresh, connect(fresh.port) as target:
        result.restores["full + incremental"] = Restore(at_incremental, state(target))
        with timer() as took:
            result.replay_exit = replay(chain, inc.binlog_pos, stop, fresh.port)
        result.restores["point in time"] = Restore(before_mistake, state(target))
    result.figures["binlog replay"] = console.seconds(took.seconds)
    console.table(
        ["restore", "rows expected", "rows restored", "MD5 equal"],
        [(n, r.expected.rows, r.restored.rows, r.equal) for n, r in result.restores.items()],
    )
    console.say(
        f"prepare with --incremental-dir {result.figures['prepare incremental']}; replayed {len(chain)} "
        f"binlog files from {inc.binlog_file}:{inc.binlog_pos} to --stop-position={stop} in "
        f"{result.figures['binlog replay']}: the mistake's transaction is the first event left out."
    )
    console.say("--stop-datetime works too, to the second: good writes in the mistake's second go with it.")


def silent_gap(result: DrillResult, full: Backup, inc: Backup, chain: list[Path], stop: int, before) -> None:
    console.step("How it fails silently: a binlog file missing from the archive")
    gone = chain[1]
    result.rows_in_missing_file = rows_inserted_in(gone)
    gap_chain = [path for path in chain if path != gone]
    with restored(full.path) as fresh, connect(fresh.port) as target:
        result.gap_replay_exit = replay(gap_chain, inc.binlog_pos, stop, fresh.port)
        result.gap_rows_missing = before.rows - state(target).rows
    result.gap_found = missing_from_chain(inc.binlog_file, [p.name for p in gap_chain])
    console.table(
        ["replay", "client exit code", "rows short of the moment before the mistake"],
        [("whole chain", result.replay_exit, 0),
         (f"without {gone.name}", result.gap_replay_exit, result.gap_rows_missing)],
    )  # fmt: skip
    console.say(
        f"no error: the later file's inserts apply cleanly without the {result.rows_in_missing_file:,} "
        f"rows of {gone.name}. The chain check (numbers from the backup's file on, no gap) finds: "
        f"{', '.join(result.gap_found) or 'nothing'}."
    )


def main() -> int:
    require(*REQUIRES)
    missing = [name for name in TOOLS if shutil.which(name) is None]
    if missing:
        console.error(f"{', '.join(missing)} not installed: `apt-get install mariadb-backup mariadb-client`.")
        return 2
    try:
        result = run(shared_server_note())
    except NoThrowaway as absent:
        console.error(str(absent))
        return 2
    return 0 if result.holds else 1


if __name__ == "__main__":
    raise SystemExit(main())

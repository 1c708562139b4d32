"""Cassandra snapshots: nodetool snapshot, SSTables copied to a new node, and the restore that loads nothing

A Cassandra backup is a snapshot: `nodetool snapshot` flushes the memtables and hard-links every
SSTable of a keyspace into `<table folder>/snapshots/<tag>/`, beside a manifest and the table's
`schema.cql`. The files are immutable, so copying them off the node is the backup. On a node of the
lesson's own: rows written, a snapshot, more rows written (not in it), the snapshot copied out.
On a new node the table is created, the files are loaded, and the table is compared with the source
at snapshot time by row count and a SHA-256 over every row in key order.

The silent failure is in the folder name. A table's folder is `<table>-<table id>`, and a table
created again, even with the same CQL, gets a new id. Copy the snapshot into the folder it had on
the source, run `nodetool refresh`, and the command succeeds, the node logs no error, and the table
is empty: the node reads only its own table's folder. `nodetool import` loads SSTables from any
folder into the table as it is now (or create the table from the snapshot's `schema.cql`, whose
`WITH ID` keeps the old id, and the old folder name then matches). Import, too, exits 0 having
loaded nothing when it cannot read a keyspace name from the folders above the files (one with a
dash, say): count the rows after every restore.

Engine: Cassandra 5 (CASSANDRA_HOSTS, only read: whether auto_snapshot and incremental_backups are
on there); the drill runs on two throwaway nodes of its own (local `CassandraDaemon`, started with
JMX on loopback so `nodetool`, `org.apache.cassandra.tools.NodeTool` from the same jars, reaches
it: local only, no container node runs nodetool yet), keyspace `cassandra_snapshots`. Each node takes about 1 GB of memory and 2-5 s to start on an idle
machine here (20-40 s when other JVMs share the two cores).
Run: `make local-install` (local Cassandra), `make up SERVICES=cassandra` (or `make local-up`),
then `python recovery/cassandra_snapshots.py`.
Look for: the snapshot's files and size; refresh exiting 0 with 0 rows restored; the ids in the
two folder names; nodetool import restoring the rows of snapshot time, not the later ones.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from cassandra.cluster import Cluster
from cassandra.concurrent import execute_concurrent_with_args

from common import console
from common.settings import cassandra_contact_points, require
from common.timing import timer
from servers.local.base import free_port
from servers.throwaway import NoThrowaway, node

REQUIRES = ("cassandra",)
# Why its nodes are local, never containers (node() says it when the local Cassandra is absent):
LOCAL_ONLY = "nodetool runs here from the local Cassandra's own jars, over JMX on loopback"
KEYSPACE, TABLE = "cassandra_snapshots", "readings"
SEED = 37
SENSORS, PER_SENSOR = 100, 100  # rows in the snapshot
LATER = 1_000  # rows written after the snapshot: the restore must not have them
TAG = "before_upgrade"
CREATE_KEYSPACE = "CREATE KEYSPACE cassandra_snapshots WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}"
CREATE_TABLE = (  # the application's own DDL: no table id in it
    "CREATE TABLE cassandra_snapshots.readings (sensor int, at timestamp, value double, note text, "
    "PRIMARY KEY (sensor, at)) WITH CLUSTERING ORDER BY (at ASC)"
)
INSERT = "INSERT INTO cassandra_snapshots.readings (sensor, at, value, note) VALUES (?, ?, ?, ?)"
SELECT = "SELECT sensor, at, value, note FROM cassandra_snapshots.readings"
TABLE_ID = "SELECT id FROM system_schema.tables WHERE keyspace_name = %s AND table_name = %s"
EPOCH = datetime(2024, 1, 1)


@dataclass(frozen=True)
class State:
    rows: int
    sha256: str  # over every row, in (sensor, at) order


@dataclass
class SnapshotResult:
    at_snapshot: State | None = None
    source_now: State | None = None  # with the later rows
    snapshot_files: tuple[str, ...] = ()  # kinds of file in the snapshot folder (Data.db, schema.cql...)
    schema_keeps_id: bool = False  # schema.cql says WITH ID = the source table's id
    ids_differ: bool = False  # the new node's table has another id, so another folder name
    refresh_exit: int = -1
    wrong_folder: State | None = None  # after refresh with the files in the source's folder name
    import_exit: int = -1
    imported: State | None = None  # after nodetool import
    figures: dict[str, str] = field(default_factory=dict, compare=False)
    server: str = field(default="", compare=False)

    @property
    def holds(self) -> bool:
        return (
            self.at_snapshot is not None
            and self.imported == self.at_snapshot != self.source_now
            and self.refresh_exit == 0
            and self.wrong_folder is not None
            and self.wrong_folder.rows == 0
            and self.ids_differ
            and self.import_exit == 0
            and {"Data.db", "schema.cql", "manifest.json"} <= set(self.snapshot_files)
        )


def nodetool(server, *args: str) -> subprocess.CompletedProcess:
    """nodetool from the node's own jars, over JMX on loopback; its history file kept in the node's folder."""
    from servers.local.cassandra import CONFIG, HOME, module_flags

    argv = [
        str(HOME / "java"), "-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", *module_flags(),
        f"-Dlogback.configurationFile={CONFIG / 'logback.xml'}", f"-Duser.home={server.workdir}",
        "-cp", str(HOME / "lib" / "*"), "org.apache.cassandra.tools.NodeTool",
        "-h", "127.0.0.1", "-p", str(server.jmx_port), *args,
    ]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=300)


def checked(finished: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    if finished.returncode != 0:
        raise RuntimeError(f"nodetool failed: {(finished.stdout + finished.stderr).strip()[-300:]}")
    return finished


def session_for(server):
    cluster = Cluster(["127.0.0.1"], port=server.port, connect_timeout=10)
    return cluster, cluster.connect()


def create(session) -> None:
    session.execute(CREATE_KEYSPACE)
    session.execute(CREATE_TABLE)


def write(session, rows: list[tuple]) -> None:
    execute_concurrent_with_args(
        session, session.prepare(INSERT), rows, concurrency=64, raise_on_first_error=True
    )


def rows(first: int, count: int, rng: random.Random) -> list[tuple]:
    """`count` readings from reading number `first` on, spread over the sensors a minute apart."""
    return [
        (n % SENSORS, EPOCH + timedelta(minutes=n // SENSORS), round(rng.uniform(-20, 40), 3), f"r{n}")
        for n in range(first, first + count)
    ]


def state(session) -> State:
    found = sorted(tuple(row) for row in session.execute(SELECT))
    lines = "\n".join(json.dumps(row, default=str) for row in found)
    return State(len(found), hashlib.sha256(lines.encode()).hexdigest())


def table_folder(server, session) -> Path:
    table_id = session.execute(TABLE_ID, (KEYSPACE, TABLE)).one().id
    return server.workdir / "data" / KEYSPACE / f"{TABLE}-{table_id.hex}"


def size_of(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.iterdir() if path.is_file())


def schema_keeps_id(schema: Path, folder_name: str) -> bool:
    """schema.cql's CREATE TABLE ... WITH ID = <uuid> names the id in the folder's `<table>-<id hex>`."""
    return folder_name.rsplit("-", 1)[1] in schema.read_text().replace("-", "")


def take_snapshot(backup: Path, result: SnapshotResult) -> str:
    """Rows, a snapshot, later rows; the snapshot copied to `backup`. Returns the source's folder name."""
    console.step("Write rows, take a snapshot, write more, copy the snapshot off the node")
    with node("cassandra", start=False, jmx_port=free_port(), local_only=LOCAL_ONLY) as source:
        result.figures["start source"] = console.seconds(source.start_and_wait(tied_to_parent=True))
        cluster, session = session_for(source)
        try:
            create(session)
            write(session, rows(0, SENSORS * PER_SENSOR, random.Random(SEED)))
            result.at_snapshot = state(session)
            with timer() as took:
                checked(nodetool(source, "snapshot", "-t", TAG, KEYSPACE))
            folder = table_folder(source, session)
            write(session, rows(SENSORS * PER_SENSOR, LATER, random.Random(SEED + 1)))
            result.source_now = state(session)
        finally:
            cluster.shutdown()
        snapshot = folder / "snapshots" / TAG
        shutil.copytree(snapshot, backup)
    result.snapshot_files = tuple(sorted({path.name.rsplit("-", 1)[-1] for path in backup.iterdir()}))
    result.figures["snapshot"] = console.seconds(took.seconds)
    result.figures["snapshot size"] = console.size(size_of(backup))
    result.schema_keeps_id = schema_keeps_id(backup / "schema.cql", folder.name)
    console.say(f"node started in {result.figures['start source']}; nodetool snapshot (a flush, then hard "
                f"links) in {result.figures['snapshot']}: {result.figures['snapshot size']} in "
                f"{snapshot.relative_to(source.workdir)}")  # fmt: skip
    console.say(
        f"files: {', '.join(result.snapshot_files)}; schema.cql keeps the table id: {result.schema_keeps_id}"
    )
    console.say(
        f"{result.at_snapshot.rows:,} rows at snapshot time, {result.source_now.rows:,} on the source now"
    )
    return folder.name


def restore(backup: Path, source_folder: str, result: SnapshotResult) -> None:
    console.step("On a new node: create the table, copy the files where they were, nodetool refresh")
    with node("cassandra", start=False, jmx_port=free_port(), local_only=LOCAL_ONLY) as fresh:
        result.figures["start new node"] = console.seconds(fresh.start_and_wait(tied_to_parent=True))
        cluster, session = session_for(fresh)
        try:
            create(session)
            own = table_folder(fresh, session)
            result.ids_differ = own.name != source_folder
            shutil.copytree(backup, own.parent / source_folder, dirs_exist_ok=True)
            result.refresh_exit = nodetool(fresh, "refresh", KEYSPACE, TABLE).returncode
            result.wrong_folder = state(session)
            console.say(f"node started in {result.figures['start new node']}; source folder {source_folder}, "
                        f"this node's {own.name}")  # fmt: skip
            console.say(
                f"nodetool refresh exit {result.refresh_exit}; rows restored: {result.wrong_folder.rows:,}"
            )

            console.step("The fix: nodetool import loads the files from any folder into the table")
            with timer() as took:
                result.import_exit = checked(
                    nodetool(fresh, "import", "--copy-data", KEYSPACE, TABLE, str(backup))
                ).returncode
            result.imported = state(session)
        finally:
            cluster.shutdown()
    result.figures["import"] = console.seconds(took.seconds)
    console.table(
        ["table", "rows", "SHA-256"],
        [(name, s.rows, s.sha256[:16]) for name, s in [
            ("source at snapshot", result.at_snapshot), ("source now", result.source_now),
            ("refresh, files in the source's folder", result.wrong_folder), ("nodetool import", result.imported)]],
    )  # fmt: skip
    console.say(
        f"import {result.figures['import']}: equal to the source at snapshot time: "
        f"{result.imported == result.at_snapshot}; the {LATER:,} later rows are not in the snapshot."
    )
    console.say("Check a restore by its row count: a refresh that found no files says nothing.")


def server_note(hosts: list[str], port: int) -> str:
    cluster = Cluster(hosts, port=port, connect_timeout=10)
    try:
        session = cluster.connect()
        found = {
            row.name: row.value for row in session.execute("SELECT name, value FROM system_views.settings")
        }
    finally:
        cluster.shutdown()
    shown = ", ".join(f"{name}={found.get(name, '?')}" for name in ("auto_snapshot", "incremental_backups"))
    return f"the cluster at CASSANDRA_HOSTS: {shown}"


def run(shared_note: str = "") -> SnapshotResult:
    """Two throwaway nodes, one after the other; `shared_note` describes CASSANDRA_HOSTS (only read)."""
    console.title(
        "Cassandra snapshots: nodetool snapshot, copied to a new node, and a restore that loads nothing"
    )
    result = SnapshotResult(server=shared_note)
    if shared_note:
        console.say(shared_note)
    # nodetool import reads the keyspace and table names from the folders above the files, and finds
    # nothing (exit 0) under a folder whose name is no valid keyspace name, such as one with a dash.
    with tempfile.TemporaryDirectory(prefix="cassandra_snapshots_") as work:
        backup = Path(work) / KEYSPACE / TABLE
        source_folder = take_snapshot(backup, result)
        restore(backup, source_folder, result)
    return result


def main() -> int:
    require(*REQUIRES)
    try:
        result = run(server_note(*cassandra_contact_points()))
    except NoThrowaway as absent:
        console.error(str(absent))
        return 2
    return 0 if result.holds else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Measure the recovery lessons: each backup type's size and times, for recovery/README.md's tables.

    python -m common.recovery_figures [--write]

Runs every recovery lesson's `run(...)` once, console quiet, called as its `main()` calls it (the
shared servers their REQUIRES name must be running: `make up` or `make local-up`; the lessons start
nodes of their own for what they back up and restore), and reads each backup type's size and times
from the facts the lesson returns. Prints the backup-types table, the Redis `kill -9` table, the
high-availability table and the multi-node topologies' memory (each high-availability lesson
measures the topologies it builds; the compose limits are read from docker-compose.yml). `--write`
puts them into recovery/README.md between the recovery-figures and recovery-topologies markers and
saves the facts they were rendered from in recovery/figures.json; tests/test_recovery_figures.py
renders that file again, without servers, and checks the README still says the same.

What a backup protects against and what a restore needs are words, kept here by backup type; the
middle column is `render(facts)`'s alone.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
from dataclasses import dataclass
from typing import Any

from common import console
from common.catalog import replace_section
from common.settings import (
    ROOT,
    UNAVAILABLE,
    cassandra_contact_points,
    mongo_url,
    neo4j_auth,
    neo4j_url,
    require,
)
from servers.containers import compose_services

START, END = "<!-- recovery-figures:start -->", "<!-- recovery-figures:end -->"
TOPOLOGY_START, TOPOLOGY_END = "<!-- recovery-topologies:start -->", "<!-- recovery-topologies:end -->"
README = ROOT / "recovery" / "README.md"
FACTS = ROOT / "recovery" / "figures.json"
COMMAND = "python -m common.recovery_figures --write"
NOT_MEASURED = "not_measured"  # a backup type's facts when its tool is missing here: the reason


@dataclass(frozen=True)
class BackupType:
    label: str  # the Backup column
    protects: str
    measured: str  # a template over the type's facts; each {name} is shown by its suffix (see `shown`)
    needs: str  # what a restore needs


BACKUP_TYPES: dict[str, BackupType] = {
    "pg_dump": BackupType(
        "`pg_dump -Fc` / `-Fd` (`-j 2`)",
        "a dropped table or database; moving to another major version",
        "{custom_bytes} (`-Fc`), {directory_bytes} (`-Fd`) for {rows} rows; dump / restore: `-Fc` "
        "{custom_dump_s} / {custom_restore_s}, `-Fd` {directory_dump_s} / {directory_restore_s}, "
        "`-Fd -j 2` {parallel_dump_s} / {parallel_restore_s}; one table with `-t` {one_table_s}",
        "`pg_restore` into an empty database; `-t` for one table needs its schema first and brings no indexes",
    ),
    "pg_basebackup": BackupType(
        "`pg_basebackup -X stream` with a manifest",
        "losing the server or its disk",
        "{size_bytes} in {backup_s}; copy and start {restore_s}",
        "the same major version, the whole folder (WAL inside); `pg_verifybackup` first",
    ),
    "pgbackrest full": BackupType(
        "pgBackRest full",
        "losing the server; point-in-time recovery with the archive",
        "{stored_bytes} (lz4) of a {cluster_bytes} cluster in {backup_s}; restore {restore_s}",
        "the full and the archived WAL from its start to its end",
    ),
    "pgbackrest diff": BackupType(
        "pgBackRest differential",
        "the same, copying what changed since the last full",
        "{stored_bytes} in {backup_s}; restore {restore_s}",
        "the differential, the full and the WAL",
    ),
    "pgbackrest incr": BackupType(
        "pgBackRest incremental",
        "the same, copying what changed since the last backup of any kind",
        "{stored_bytes} in {backup_s}; restore {restore_s}",
        "the incremental, the differential, the full and the WAL",
    ),
    "pg_basebackup incremental": BackupType(
        "`pg_basebackup --incremental` (PostgreSQL 17+)",
        "the same, copying changed blocks",
        "{size_bytes} ({wal_bytes} of it WAL) in {backup_s} on PostgreSQL {version}; "
        "combine and start {restore_s}",
        "the full and every incremental after it, joined by `pg_combinebackup`; `summarize_wal = on`",
    ),
    "pitr": BackupType(
        "`pg_basebackup -X none` + WAL archive",
        "human error (UPDATE without WHERE, DROP TABLE), recovered to any moment after the backup; "
        "losing the primary's disk costs about `archive_timeout` of writes",
        "base {base_bytes} in {backup_s}; the archive grows {segment_bytes} per switched segment; "
        "{recoveries} recoveries: copy {copy_min_s} to {copy_max_s}, replay and promote {replay_min_s} to "
        "{replay_max_s}; with `archive_timeout={archive_timeout}s`, at worst {rows_at_risk} acknowledged "
        "rows not archived yet, the oldest {exposure_s} old",
        "the base backup; every archived segment from its start to the target with no gap; "
        "`recovery.signal`, `restore_command`, one `recovery_target_*`, `recovery_target_action=promote`",
    ),
    "mariadb-backup full": BackupType(
        "mariadb-backup full",
        "losing the server or its disk",
        "{size_bytes} for {rows} rows in {backup_s}; prepare {prepare}; copy back and start {copy_back}",
        "`--prepare`, then `--copy-back` into an empty data folder, the same MariaDB version",
    ),
    "mariadb-backup incremental": BackupType(
        "mariadb-backup incremental",
        "the same, copying only the pages changed since the full",
        "{size_bytes} in {backup_s}; prepare onto the full {prepare}",
        "the full it was based on, prepared, then `--prepare --incremental-dir`",
    ),
    "binlog": BackupType(
        "MariaDB binary log",
        "a bad statement after the last backup",
        "{archive} of closed binlog files; replay to the stop position {replay}",
        "the backup's binlog position, every file after it with no gap, the stop position just before "
        "the mistake",
    ),
    "mongodump": BackupType(
        "mongodump / mongorestore",
        "a dropped collection or database; moving between deployments",
        "{size_bytes} for {documents} documents; dump {backup_s}, restore {restore_s}",
        "the dump folder; `--oplog` and `--oplogReplay` (a replica set) for one consistent moment",
    ),
    "export": BackupType(
        "Extended-JSON export (pymongo, canonical)",
        "the same where the tools are missing",
        "{size_bytes} for {documents} documents; export {backup_s}, import {restore_s}",
        "every collection's file and its index list; a snapshot session or stopped writes, else "
        "collections come from different moments",
    ),
    "neo4j dump": BackupType(
        "`neo4j-admin database dump` (Community)",
        "losing the server; going back to the dump's moment",
        "`neo4j` ({nodes} nodes, {relationships} relationships) {neo4j_dump}; `system` {system_dump}; "
        "load {neo4j_load} and {system_load}",
        "the database stopped for the dump; `load` into a stopped server; the `system` dump too, for "
        "users and roles",
    ),
    "cassandra snapshot": BackupType(
        "Cassandra `nodetool snapshot`",
        "a bad write, DROP or TRUNCATE, losing the node",
        "{size} for {rows} rows in {snapshot} (a flush, then hard links); import {import}",
        "the table created first (the application's CQL or the snapshot's `schema.cql`), then "
        "`nodetool import` of the files; JMX for nodetool",
    ),
    "redis rdb": BackupType(
        "Redis RDB (`BGSAVE`)",
        "losing the node; loses every write since the snapshot",
        "{size_bytes} for {keys} keys; BGSAVE {save_s}",
        "`dump.rdb` in the new node's `dir`",
    ),
    "redis aof": BackupType(
        "Redis AOF (Redis 7, multi-part)",
        "losing the process; with `appendfsync always`, the operating system too",
        "{size_bytes} in {files} for {keys} keys; rewrite {rewrite_s}",
        "the whole `appendonlydir/` with its manifest, and `appendonly yes` at start",
    ),
}


@dataclass(frozen=True)
class Topology:
    label: str
    lesson: str  # recovery/<lesson>.py, which builds it from local nodes
    nodes: int
    services: tuple[str, ...]  # the same topology in docker-compose.yml (the `cluster` profile)
    resident: str = "{resident_bytes}"  # a template over its facts, as BackupType.measured


TOPOLOGIES: dict[str, Topology] = {
    "postgres by hand": Topology(
        "PostgreSQL primary + replica, by hand", "postgres_failover", 2, ("pg-primary", "pg-replica")
    ),
    "pg_auto_failover": Topology(
        "pg_auto_failover: monitor + 2 keepers", "postgres_failover", 3,
        ("pgaf-monitor", "pgaf-node-1", "pgaf-node-2"),
    ),
    "cassandra ring": Topology(
        "Cassandra ring, dc1: 2, dc2: 1", "cassandra_replication", 3, ("cassandra-1", "cassandra-2", "cassandra-3"),
        "{resident_bytes} (`-Xmx{heap}` heaps)",
    ),
    "redis sentinel": Topology(
        "Redis Sentinel: primary, 2 replicas, 3 Sentinels", "redis_high_availability", 6,
        ("redis-primary", "redis-replica-1", "redis-replica-2", "redis-sentinel-1", "redis-sentinel-2",
         "redis-sentinel-3"),
    ),
    "redis cluster": Topology(
        "Redis Cluster: 3 primaries, 3 replicas", "redis_high_availability", 6,
        tuple(f"redis-node-{n}" for n in range(1, 7)),  # not redis-cluster-init: it runs once and exits
    ),
    "regions": Topology(
        "Two PostgreSQL regions and Toxiproxy", "cross_region_replication", 3,
        ("postgres_region1", "postgres_region2", "toxiproxy"),
    ),
    "mongodb replica set": Topology(
        "MongoDB replica set", "mongodb_replica_set", 3,
        ("mongodb_rs", "mongodb_rs1", "mongodb_rs2", "mongodb_rs3"),  # mongodb_rs holds their network
    ),
}  # fmt: skip
NO_REAL_MONGODB = "no real MongoDB"  # mongodb_replica_set.py needs one: it is not among LESSONS

# Redis under kill -9, by redis_persistence.CRASH_SETTINGS: (setting, writes lost, throughput).
CRASHES: dict[str, tuple[str, str, str]] = {
    "always": (
        "`appendfsync always`",
        "{lost} of {acknowledged}",
        "{throughput_share} ({writes_per_second} writes/s)",
    ),
    "everysec": (
        "`appendfsync everysec`",
        "{lost} of {acknowledged} (not promised: a write held behind a slow background fsync can be lost)",
        "{throughput_share} ({writes_per_second} writes/s)",
    ),
    "RDB only": (
        "RDB only, no AOF",
        "{lost} of {acknowledged}: every write since the last snapshot",
        "{throughput_share} ({writes_per_second} writes/s)",
    ),
}


# --- rendering: facts (numbers and the lessons' own formatted figures) to markdown -----------------


def shown(name: str, value: Any) -> str:
    """A fact as the table shows it: `_bytes` a size, `_s` a duration, `_share` a percentage, other
    numbers with thousands separators; a string is a figure the lesson formatted itself."""
    if isinstance(value, str):
        return value
    if name.endswith("_bytes"):
        return console.size(value)
    if name.endswith("_s"):
        return console.seconds(value)
    if name.endswith("_share"):
        return f"{value:.0%}"
    return f"{value:,.0f}"


def filled(template: str, facts: dict[str, Any] | None) -> str:
    if not facts:
        return "not measured"
    if NOT_MEASURED in facts:
        return f"not measured here: {facts[NOT_MEASURED]}"
    return template.format_map({name: shown(name, value) for name, value in facts.items()})


def render(facts: dict[str, Any]) -> str:
    """The README block: both tables and the line that says where and how they were measured."""
    lines = [
        "| Backup | Protects against | Measured size and times | What a restore needs |",
        "|---|---|---|---|",
    ]
    for key, kind in BACKUP_TYPES.items():
        cell = filled(kind.measured, facts["backups"].get(key))
        lines.append(f"| {kind.label} | {kind.protects} | {cell} | {kind.needs} |")
    lines += [
        "",
        f"Measured by `{COMMAND}` (`make figures`) on a {facts['cores']}-core machine, one run of each "
        "lesson; each lesson prints its own figures when it runs.",
        "",
        "## Redis persistence under `kill -9`",
        "",
        "| Setting | Acknowledged writes lost to `kill -9` | Throughput (share of RDB only) |",
        "|---|---|---|",
    ]
    for key, (setting, lost, throughput) in CRASHES.items():
        crash = facts["crashes"].get(key)
        lines.append(f"| {setting} | {filled(lost, crash)} | {filled(throughput, crash)} |")
    lines += [
        "",
        "Measured in the same run by `redis_persistence.py`: one client writing as fast as it can, "
        "the node killed once per setting.",
        "",
        "## High availability: what each setup lost, and for how long no write succeeded",
        "",
        "| Lesson | Setup | Acknowledged writes lost | Longest without a successful write | What was configured |",
        "|---|---|---|---|---|",
    ]
    for row in facts.get("failovers", []):
        gap = console.seconds(row["gap_s"]) if row["gap_s"] is not None else row["gap_note"]
        lost = f"{row['lost']:,} of {row['acknowledged']:,}"
        lines.append(f"| `{row['lesson']}` | {row['setup']} | {lost} | {gap} | {row['configured']} |")
    lines += [
        "",
        "Measured in the same run: a client that records every operation writes through each setup "
        "while the fault is injected; lost means acknowledged to the client and missing afterwards.",
    ]
    return "\n".join(lines)


def limit(n_bytes: int) -> str:
    """A total of compose memory limits: whole gigabytes, else megabytes."""
    return f"{n_bytes / 2**30:g} GB" if n_bytes % 2**30 == 0 else f"{n_bytes / 2**20:,.0f} MB"


def resident(topology: Topology, facts: dict[str, Any]) -> str:
    """The Resident cell: the topology's memory as its lesson measured it, or why there is none."""
    if NOT_MEASURED in facts:
        return f"not measured here ({facts[NOT_MEASURED]})"
    if "resident_bytes" not in facts:
        return "not measured"
    if facts["resident_bytes"] is None:
        return "not measured (container)"
    cell = filled(topology.resident, facts)
    nodes = facts.get("nodes", topology.nodes)
    return cell if nodes == topology.nodes else f"{cell} ({nodes} of {topology.nodes} nodes)"


def render_topologies(facts: dict[str, Any]) -> str:
    """The README's second block: each multi-node topology's memory, measured and allowed."""
    lines = [
        "| Topology | Lesson | Nodes | Resident (local) | Compose `mem_limit` total |",
        "|---|---|---|---|---|",
    ]
    for key, topology in TOPOLOGIES.items():
        found = facts.get("topologies", {}).get(key, {})
        allowed = limit(found["compose_bytes"]) if "compose_bytes" in found else "not in docker-compose.yml"
        lines.append(
            f"| {topology.label} | `{topology.lesson}.py` | {topology.nodes} | {resident(topology, found)} "
            f"| {allowed} |"
        )
    lines += [
        "",
        f"Measured by `{COMMAND}` in the same run as the tables above. Resident: the proportional set "
        "size (PSS) of every process of the lesson's local nodes, so memory they share (PostgreSQL's "
        "shared buffers) counts once; read with every node up, under the lesson's writers before the "
        "fault (Cassandra: at the end, after its workload; the regions: after their losses). "
        "Compose: the sum of the `mem_limit` of the topology's `cluster` services in docker-compose.yml.",
    ]
    return "\n".join(lines)


# --- measuring: each lesson's run(...), as its main() calls it ---------------------------------


def _mysql(lesson):
    missing = [name for name in lesson.TOOLS if shutil.which(name) is None]
    if missing:
        from servers.throwaway import NoThrowaway

        raise NoThrowaway(
            f"{', '.join(missing)} not installed: `apt-get install mariadb-backup mariadb-client`"
        )
    return lesson.run(lesson.shared_server_note())


LESSONS = {  # recovery/<name>.py: how its main() calls run(...)
    "postgres_failover": lambda lesson: lesson.run(),
    "redis_high_availability": lambda lesson: lesson.run(lesson.shared_server_note()),
    "cassandra_replication": lambda lesson: lesson.run(),
    "cross_region_replication": lambda lesson: lesson.run(),
    "backup_strategies": lambda lesson: lesson.run(),
    "incremental_backups": lambda lesson: lesson.run(),
    "point_in_time_recovery": lambda lesson: lesson.run(),
    "mysql_backup_and_binlog": _mysql,
    "redis_persistence": lambda lesson: lesson.run(lesson.shared_server_note()),
    "mongodb_backups": lambda lesson: lesson.run(mongo_url()),
    "neo4j_dump_and_load": lambda lesson: lesson.run(lesson.server_note(neo4j_url(), neo4j_auth())),
    "cassandra_snapshots": lambda lesson: lesson.run(lesson.server_note(*cassandra_contact_points())),
}


def lesson_module(name: str):
    return importlib.import_module(f"recovery.{name}")


def run_lessons() -> dict[str, Any]:
    """Each lesson's result, console quiet; a lesson that cannot run raises (NoThrowaway, ...)."""
    console.quiet()
    results = {}
    for name, call in LESSONS.items():
        console.error(f"running recovery/{name}.py")
        results[name] = call(lesson_module(name))
    return results


def _restore_facts(restore, size: str = "size_bytes") -> dict[str, Any]:
    return {size: restore.size, "backup_s": restore.backup_s, "restore_s": restore.restore_s}


def postgres_facts(strategies, incremental, pitr) -> dict[str, dict]:
    logical = {"rows": sum(rows for rows, _ in strategies.source.values())}
    for name in ("custom", "directory", "parallel"):
        backup = strategies.backups[name]
        logical |= {f"{name}_bytes": backup.size, f"{name}_dump_s": backup.backup_s}
        logical[f"{name}_restore_s"] = backup.restore_s
    one_table = strategies.backups[f"pg_restore -t {lesson_module('backup_strategies').ONE_TABLE}"]
    logical["one_table_s"] = one_table.restore_s
    facts = {"pg_dump": logical, "pg_basebackup": _restore_facts(strategies.backups["base backup"])}
    for kind in ("full", "diff", "incr"):
        restore = incremental.restores.get(f"pgBackRest {kind}")
        facts[f"pgbackrest {kind}"] = (
            {"stored_bytes": restore.size, "backup_s": restore.took_s, "restore_s": restore.restore_s,
             "cluster_bytes": incremental.cluster_bytes}
            if restore
            else {NOT_MEASURED: "pgBackRest is not installed"}
        )  # fmt: skip
    own = incremental.restores.get(f"PostgreSQL {incremental.newer_postgres} incr")
    facts["pg_basebackup incremental"] = (
        {"size_bytes": own.size, "wal_bytes": incremental.incremental_wal_bytes, "backup_s": own.took_s,
         "restore_s": own.restore_s, "version": incremental.newer_postgres}
        if own
        else {NOT_MEASURED: "no PostgreSQL 17+ binaries"}
    )  # fmt: skip
    facts["pitr"] = pitr_facts(pitr)
    return facts


def pitr_facts(pitr) -> dict[str, Any]:
    opened = [recovery for recovery in pitr.recoveries.values() if recovery.promoted]
    copies, replays = [r.copy_s for r in opened], [r.recovery_s for r in opened]
    return {
        "base_bytes": pitr.backup_bytes,
        "backup_s": pitr.backup_s,
        "segment_bytes": pitr.rpo.archive_growth_bytes / max(1, pitr.rpo.segments_archived),
        "recoveries": len(opened),
        "copy_min_s": min(copies),
        "copy_max_s": max(copies),
        "replay_min_s": min(replays),
        "replay_max_s": max(replays),
        "archive_timeout": pitr.rpo.archive_timeout_s,
        "rows_at_risk": pitr.rpo.max_rows_at_risk,
        "exposure_s": pitr.rpo.max_exposure_s,
    }


def mysql_facts(drill) -> dict[str, dict]:
    full, incremental = drill.backups["full"], drill.backups["incremental"]
    return {
        "mariadb-backup full": {
            "size_bytes": full.size,
            "rows": drill.restores["full"].expected.rows,
            "backup_s": full.seconds,
            "prepare": drill.figures["prepare full"],
            "copy_back": drill.figures["copy back and start"],
        },
        "mariadb-backup incremental": {
            "size_bytes": incremental.size,
            "backup_s": incremental.seconds,
            "prepare": drill.figures["prepare incremental"],
        },
        "binlog": {"archive": drill.figures["binlog archive"], "replay": drill.figures["binlog replay"]},
    }


def other_facts(mongodb, neo4j, cassandra, redis) -> dict[str, dict]:
    def documents(restore) -> dict[str, Any]:
        return {**_restore_facts(restore), "documents": sum(n for _, n in restore.expected.documents)}

    dump = mongodb.restores.get("mongodump")
    rdb, aof = redis.restores["RDB snapshot"], redis.restores["AOF"]
    return {
        "mongodump": documents(dump) if dump else {NOT_MEASURED: mongodb.tool_missing},
        "export": documents(mongodb.restores["export"]),
        "neo4j dump": {
            "neo4j_dump": neo4j.figures["dump neo4j"],
            "system_dump": neo4j.figures["dump system"],
            "neo4j_load": neo4j.figures["load neo4j"],
            "system_load": neo4j.figures["load system"],
            "nodes": neo4j.at_backup.nodes,
            "relationships": neo4j.at_backup.relationships,
        },
        "cassandra snapshot": {
            "size": cassandra.figures["snapshot size"],
            "rows": cassandra.at_snapshot.rows,
            "snapshot": cassandra.figures["snapshot"],
            "import": cassandra.figures["import"],
        },
        "redis rdb": {"size_bytes": rdb.size, "keys": rdb.expected.keys, "save_s": rdb.seconds},
        "redis aof": {
            "size_bytes": aof.size,
            "files": aof.files,
            "keys": aof.expected.keys,
            "rewrite_s": aof.seconds,
        },
    }


def crash_facts(redis) -> dict[str, dict]:
    rdb_only = redis.crashes["RDB only"].writes_per_s
    return {
        name: {
            "acknowledged": crash.acknowledged,
            "lost": crash.lost,
            "writes_per_second": crash.writes_per_s,
            "throughput_share": crash.writes_per_s / rdb_only,
        }
        for name, crash in redis.crashes.items()
    }


def failover_row(lesson: str, setup: str, acknowledged: int, lost: int, gap_s, configured: str, gap_note=""):
    return {"lesson": lesson, "setup": setup, "acknowledged": acknowledged, "lost": lost,
            "gap_s": gap_s, "gap_note": gap_note, "configured": configured}  # fmt: skip


def failover_facts(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per setup of the high-availability lessons, in reading order."""
    rows = []
    for s in results["postgres_failover"].setups.values():
        rows.append(
            failover_row("postgres_failover.py", s.setup, s.acknowledged, s.lost, s.seconds_without_writes,
                         s.configured)
        )  # fmt: skip
    redis = results["redis_high_availability"]
    for failover in redis.failovers.values():
        for s in failover.setups:
            gap = s.seconds_without_writes if s.writes_after_switch else None
            note = "no write after the switch: the WAIT could not be met" if gap is None else ""
            rows.append(
                failover_row("redis_high_availability.py", f"{s.setup}, {s.writes}", s.acknowledged, s.lost,
                             gap, s.configured, note)
            )  # fmt: skip
    for s in results["cassandra_replication"].setups:
        rows.append(
            failover_row("cassandra_replication.py", s.name, s.acknowledged, s.lost, s.seconds_without_writes,
                         s.configured)
        )  # fmt: skip
    for loss in results["cross_region_replication"].losses.values():
        rows.append(
            failover_row("cross_region_replication.py", loss.setup, loss.acknowledged, loss.lost_acknowledged,
                         loss.seconds_without_writes, loss.configured)
        )  # fmt: skip
    return rows


def mem_limit_bytes(value: str | int) -> int:
    """A compose `mem_limit` ("256m", "1g", "512k", or a number of bytes) in bytes."""
    text = str(value).strip().lower().removesuffix("b")
    units = {"k": 2**10, "m": 2**20, "g": 2**30}
    return int(float(text[:-1]) * units[text[-1]]) if text[-1:] in units else int(text)


def compose_bytes(topology: Topology, services: dict[str, dict]) -> int:
    """The sum of the topology's services' `mem_limit` (each must be a `cluster` profile service)."""
    total = 0
    for name in topology.services:
        service = services[name]
        if "cluster" not in service.get("profiles", ()):
            raise ValueError(f"docker-compose.yml: {name} is not in the cluster profile")
        total += mem_limit_bytes(service["mem_limit"])
    return total


def topology_facts(results: dict[str, Any], services: dict[str, dict]) -> dict[str, dict]:
    """Each topology's memory as its lesson measured it (None: a container node), and its compose total."""
    failover, redis = results["postgres_failover"], results["redis_high_availability"]
    pg, rd = lesson_module("postgres_failover"), lesson_module("redis_high_availability")
    ha, cluster = failover.setups.get(pg.HA), redis.failovers.get(rd.CLUSTER)
    regions = results["cross_region_replication"].memory
    cassandra = {"resident_bytes": results["cassandra_replication"].resident_bytes,
                 "heap": lesson_module("cassandra_replication").HEAP}  # fmt: skip
    measured = {
        "postgres by hand": {"resident_bytes": failover.setups[pg.ASYNC].resident_bytes},
        "pg_auto_failover": {"resident_bytes": ha.resident_bytes} if ha else {NOT_MEASURED: failover.ha_missing},
        "cassandra ring": cassandra,
        "redis sentinel": {"resident_bytes": redis.failovers[rd.KILLED].resident_bytes},
        "redis cluster": {"resident_bytes": cluster.resident_bytes} if cluster else {NOT_MEASURED: redis.no_cluster},
        "regions": {"resident_bytes": None if None in regions.values() else sum(regions.values()),
                    "nodes": len(regions)},
        "mongodb replica set": {NOT_MEASURED: NO_REAL_MONGODB},
    }  # fmt: skip
    return {key: {**measured[key], "compose_bytes": compose_bytes(topology, services)}
            for key, topology in TOPOLOGIES.items()}  # fmt: skip


def facts_from(results: dict[str, Any]) -> dict[str, Any]:
    """The facts the tables are rendered from: plain numbers and strings (saved as JSON)."""
    backups = {
        **postgres_facts(
            results["backup_strategies"], results["incremental_backups"], results["point_in_time_recovery"]
        ),
        **mysql_facts(results["mysql_backup_and_binlog"]),
        **other_facts(
            results["mongodb_backups"],
            results["neo4j_dump_and_load"],
            results["cassandra_snapshots"],
            results["redis_persistence"],
        ),
    }
    return {
        "cores": os.cpu_count(),
        "backups": {key: backups[key] for key in BACKUP_TYPES},
        "crashes": crash_facts(results["redis_persistence"]),
        "failovers": failover_facts(results),
        "topologies": topology_facts(results, compose_services()),
    }


def write(facts: dict[str, Any]) -> None:
    FACTS.write_text(json.dumps(facts, indent=1, sort_keys=True) + "\n")
    text = replace_section(README.read_text(), START, END, render(facts))
    README.write_text(replace_section(text, TOPOLOGY_START, TOPOLOGY_END, render_topologies(facts)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite recovery/README.md's tables")
    args = parser.parse_args()
    require(*sorted({key for name in LESSONS for key in lesson_module(name).REQUIRES}))
    from servers.throwaway import NoThrowaway

    try:
        results = run_lessons()
    except NoThrowaway as missing:
        console.error(str(missing))
        return UNAVAILABLE
    facts = facts_from(results)
    print(render(facts), render_topologies(facts), sep="\n\n")
    failed = [name for name, result in results.items() if not result.holds]
    if failed:  # figures from a run whose headline fact failed are not written
        console.error(f"the headline fact failed in: {', '.join(failed)}; README.md left as it is")
        return 1
    if args.write:
        write(facts)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

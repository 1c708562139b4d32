"""recovery/README.md's measured tables are what `render` makes of the saved facts (no server needed).

`python -m common.recovery_figures --write` measures and saves both; these tests check the renderer
and that nobody typed into the block since.
"""

import dataclasses
import importlib
import json

import pytest

from common import recovery_figures as figures
from common.catalog import replace_section
from servers.containers import compose_services


@pytest.fixture(scope="module")
def readme() -> str:
    return figures.README.read_text()


@pytest.fixture(scope="module")
def saved() -> dict:
    return json.loads(figures.FACTS.read_text())


def block(readme: str) -> str:
    return readme.partition(figures.START)[2].partition(figures.END)[0]


def topology_block(readme: str) -> str:
    return readme.partition(figures.TOPOLOGY_START)[2].partition(figures.TOPOLOGY_END)[0]


def test_the_readme_has_the_generated_block(readme):
    assert readme.count(figures.START) == readme.count(figures.END) == 1
    assert readme.index(figures.START) < readme.index(figures.END)


def test_the_readme_has_the_generated_topology_block_after_the_first(readme):
    assert readme.count(figures.TOPOLOGY_START) == readme.count(figures.TOPOLOGY_END) == 1
    assert (
        readme.index(figures.END) < readme.index(figures.TOPOLOGY_START) < readme.index(figures.TOPOLOGY_END)
    )


def test_every_backup_type_has_a_row_in_the_block(readme):
    for kind in figures.BACKUP_TYPES.values():
        assert f"\n| {kind.label} | {kind.protects} |" in block(readme), kind.label


def test_every_redis_setting_has_a_row_in_the_block(readme):
    for setting, _lost, _throughput in figures.CRASHES.values():
        assert f"\n| {setting} |" in block(readme), setting


def test_the_saved_facts_cover_every_backup_type(saved):
    assert set(saved["backups"]) == set(figures.BACKUP_TYPES)
    assert set(saved["crashes"]) == set(figures.CRASHES)
    assert set(saved["topologies"]) == set(figures.TOPOLOGIES)


HIGH_AVAILABILITY = (
    "postgres_failover",
    "cassandra_replication",
    "redis_high_availability",
    "cross_region_replication",
)


def test_every_high_availability_lesson_has_rows_in_the_block(readme, saved):
    for name in HIGH_AVAILABILITY:
        assert name in figures.LESSONS
        rows = [row for row in saved["failovers"] if row["lesson"] == f"{name}.py"]
        assert rows, name
        for row in rows:
            assert (
                f"\n| `{name}.py` | {row['setup']} | {row['lost']:,} of {row['acknowledged']:,} |"
                in block(readme)
            )


def test_the_block_is_what_render_makes_of_the_saved_facts(readme, saved):
    rendered = replace_section(readme, figures.START, figures.END, figures.render(saved))
    assert rendered == readme, "run `make figures` (servers running); never edit the block by hand"


def test_every_topology_has_a_row_in_its_block(readme):
    for topology in figures.TOPOLOGIES.values():
        row = f"\n| {topology.label} | `{topology.lesson}.py` | {topology.nodes} |"
        assert row in topology_block(readme), topology.label


def test_the_topology_block_is_what_render_makes_of_the_saved_facts(readme, saved):
    rendered = replace_section(
        readme, figures.TOPOLOGY_START, figures.TOPOLOGY_END, figures.render_topologies(saved)
    )
    assert rendered == readme, "run `make figures` (servers running); never edit the block by hand"


def test_the_saved_compose_totals_are_what_docker_compose_yml_says(saved):
    services = compose_services()  # a `cluster` service missing, or in another profile, raises
    for key, topology in figures.TOPOLOGIES.items():
        assert saved["topologies"][key]["compose_bytes"] == figures.compose_bytes(topology, services), key


def test_each_measured_topology_has_a_figure_or_says_why_not(saved):
    for key, facts in saved["topologies"].items():
        assert "resident_bytes" in facts or figures.NOT_MEASURED in facts, key
    assert saved["topologies"]["mongodb replica set"][figures.NOT_MEASURED] == figures.NO_REAL_MONGODB


@pytest.mark.parametrize(
    ("lesson", "record", "name"),
    [
        ("postgres_failover", "Setup", "resident_bytes"),
        ("redis_high_availability", "Failover", "resident_bytes"),
        ("cassandra_replication", "ReplicationResult", "resident_bytes"),
        ("cross_region_replication", "CrossRegionResult", "memory"),
    ],
)
def test_each_lesson_records_its_topology_s_memory_outside_its_compared_facts(lesson, record, name):
    kind = getattr(importlib.import_module(f"recovery.{lesson}"), record)
    field = next(f for f in dataclasses.fields(kind) if f.name == name)
    assert field.compare is False  # a second run's memory differs: "the same facts" ignores it


def test_the_block_names_the_machine_and_the_command(readme, saved):
    assert f"on a {saved['cores']}-core machine" in block(readme)
    assert f"`{figures.COMMAND}`" in block(readme)


def test_render_shows_each_fact_by_its_kind():
    facts = {
        "cores": 4,
        "backups": {
            "pg_basebackup": {"size_bytes": 3 * 2**20, "backup_s": 0.25, "restore_s": 1.5},
            "mongodump": {figures.NOT_MEASURED: "mongodump not on PATH"},
        },
        "crashes": {
            "always": {"lost": 0, "acknowledged": 1234, "throughput_share": 0.25, "writes_per_second": 812.4}
        },
    }
    text = figures.render(facts)
    assert "| 3.0 MB in 250.0 ms; copy and start 1.50 s |" in text
    assert "| not measured here: mongodump not on PATH |" in text
    assert "| `appendfsync always` | 0 of 1,234 | 25% (812 writes/s) |" in text
    failover = {"lesson": "x.py", "setup": "sync", "acknowledged": 1500, "lost": 0, "gap_s": 0.25,
                "gap_note": "", "configured": "remote_apply"}  # fmt: skip
    assert "| `x.py` | sync | 0 of 1,500 | 250.0 ms | remote_apply |" in figures.render(
        {**facts, "failovers": [failover]}
    )
    assert (
        "| pgBackRest full | losing the server; point-in-time recovery with the archive | not measured |"
        in text
    )
    assert "on a 4-core machine" in text


def test_a_template_field_without_a_fact_fails_loudly():
    facts = {"cores": 1, "backups": {"pg_basebackup": {"size_bytes": 1}}, "crashes": {}}
    with pytest.raises(KeyError):
        figures.render(facts)


def test_render_topologies_shows_each_figure_or_why_there_is_none():
    def facts(resident, **more):
        return {"resident_bytes": resident, "compose_bytes": 576 * 2**20, **more}

    measured = {
        "postgres by hand": facts(70 * 2**20),
        "pg_auto_failover": {figures.NOT_MEASURED: "pg_autoctl not installed", "compose_bytes": 768 * 2**20},
        "cassandra ring": facts(1.5 * 2**30, heap="256m", compose_bytes=3 * 2**30),
        "redis sentinel": facts(None),  # a container node: its processes are not ours to read
        "regions": facts(80 * 2**20, nodes=2),  # no Toxiproxy here
        "mongodb replica set": {figures.NOT_MEASURED: figures.NO_REAL_MONGODB, "compose_bytes": 1568 * 2**20},
    }
    text = figures.render_topologies({"topologies": measured})
    assert "| PostgreSQL primary + replica, by hand | `postgres_failover.py` | 2 | 70.0 MB | 576 MB |" in text
    assert "| 3 | not measured here (pg_autoctl not installed) | 768 MB |" in text
    assert (
        "| Cassandra ring, dc1: 2, dc2: 1 | `cassandra_replication.py` | 3 | 1.5 GB (`-Xmx256m` heaps) | 3 GB |"
        in text
    )
    assert "| 6 | not measured (container) | 576 MB |" in text
    assert (
        "| Redis Cluster: 3 primaries, 3 replicas | `redis_high_availability.py` | 6 | not measured |" in text
    )
    assert "| 3 | 80.0 MB (2 of 3 nodes) | 576 MB |" in text
    assert (
        "| MongoDB replica set | `mongodb_replica_set.py` | 3 | not measured here (no real MongoDB) | 1,568 MB |"
        in text
    )
    assert f"`{figures.COMMAND}`" in text


@pytest.mark.parametrize(
    ("limit", "expected"),
    [("256m", 256 * 2**20), ("1g", 2**30), ("1.5G", 3 * 2**29), ("64mb", 64 * 2**20), (1024, 1024)],
)
def test_a_compose_mem_limit_is_read_in_bytes(limit, expected):
    assert figures.mem_limit_bytes(limit) == expected

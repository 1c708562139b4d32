"""recovery/README.md's measured tables are what `render` makes of the saved facts (no server needed).

`python -m common.recovery_figures --write` measures and saves both; these tests check the renderer
and that nobody typed into the block since.
"""

import json

import pytest

from common import recovery_figures as figures
from common.catalog import replace_section


@pytest.fixture(scope="module")
def readme() -> str:
    return figures.README.read_text()


@pytest.fixture(scope="module")
def saved() -> dict:
    return json.loads(figures.FACTS.read_text())


def block(readme: str) -> str:
    return readme.partition(figures.START)[2].partition(figures.END)[0]


def test_the_readme_has_the_generated_block(readme):
    assert readme.count(figures.START) == readme.count(figures.END) == 1
    assert readme.index(figures.START) < readme.index(figures.END)


def test_every_backup_type_has_a_row_in_the_block(readme):
    for kind in figures.BACKUP_TYPES.values():
        assert f"\n| {kind.label} | {kind.protects} |" in block(readme), kind.label


def test_every_redis_setting_has_a_row_in_the_block(readme):
    for setting, _lost, _throughput in figures.CRASHES.values():
        assert f"\n| {setting} |" in block(readme), setting


def test_the_saved_facts_cover_every_backup_type(saved):
    assert set(saved["backups"]) == set(figures.BACKUP_TYPES)
    assert set(saved["crashes"]) == set(figures.CRASHES)


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

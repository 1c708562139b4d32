import pytest

from common.settings import servers_mode
from recovery import cassandra_snapshots as lesson
from servers.throwaway import NoThrowaway


def run_or_skip(run, *args):
    """The drill needs its local server (the lesson's LOCAL_ONLY says why): a skip where only Docker serves."""
    try:
        return run(*args)
    except NoThrowaway as missing:
        if servers_mode() == "local":
            pytest.fail(str(missing))
        pytest.skip(str(missing))


@pytest.fixture(scope="module")
def result(cassandra):
    from common.settings import ENGINES

    host, port = ENGINES["cassandra"].address(cassandra.url)
    return run_or_skip(lesson.run, lesson.server_note([host], port))


def test_the_snapshot_holds_the_sstables_the_manifest_and_the_schema_with_the_table_id(result):
    assert {"Data.db", "Index.db", "manifest.json", "schema.cql"} <= set(result.snapshot_files)
    assert result.schema_keeps_id


def test_nodetool_import_restores_the_rows_of_snapshot_time(result):
    assert result.import_exit == 0
    assert result.imported == result.at_snapshot
    assert result.at_snapshot.rows == lesson.SENSORS * lesson.PER_SENSOR


def test_rows_written_after_the_snapshot_are_not_restored(result):
    assert result.source_now.rows == result.at_snapshot.rows + lesson.LATER
    assert result.imported != result.source_now


def test_files_in_the_source_tables_folder_are_silently_ignored_by_refresh(result):
    assert result.ids_differ  # the same CQL on a new node makes a new table id, so a new folder
    assert result.refresh_exit == 0  # no error...
    assert result.wrong_folder.rows == 0  # ...and nothing loaded


def test_the_lesson_reads_the_shared_clusters_backup_settings(result):
    assert "auto_snapshot=" in result.server and "?" not in result.server


def test_the_headline_holds(result):
    assert result.holds  # what main() exits on


def test_a_second_run_gives_the_same_facts(result):
    assert lesson.run(result.server) == result

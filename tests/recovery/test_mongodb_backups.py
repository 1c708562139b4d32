import shutil

import pytest

from recovery import mongodb_backups as lesson

TOOLS_INSTALLED = all(shutil.which(tool) for tool in lesson.TOOLS)


@pytest.fixture(scope="module")
def result(mongodb):
    return lesson.run(mongodb.url)


def test_the_export_restores_every_document_index_and_checksum(result):
    export = result.restores["export"]
    assert export.restored == export.expected
    assert dict(export.restored.documents) == {"customers": lesson.N_CUSTOMERS, "orders": lesson.N_ORDERS}
    assert len(export.restored.indexes) == 2  # the unique email index and the customer_id index


@pytest.mark.skipif(not TOOLS_INSTALLED, reason="mongodump and mongorestore are not on PATH")
def test_mongodump_and_mongorestore_restore_the_same_database(result):
    dumped = result.restores["mongodump"]
    assert dumped.restored == dumped.expected == result.restores["export"].expected


def test_without_the_tools_the_lesson_says_so(result):
    assert ("mongodump" in result.restores) == TOOLS_INSTALLED
    assert bool(result.tool_missing) != TOOLS_INSTALLED


def test_a_live_export_restores_equal_to_its_files_yet_breaks_the_datas_rule(result):
    live = result.live
    assert live.restored_equals_files  # every count and checksum of the restore matches the backup
    assert live.uncounted >= lesson.WRITES_BETWEEN  # orders placed between the two collections
    assert live.source_uncounted == 0  # the source itself keeps the rule


def test_the_stand_in_refuses_a_snapshot_session_and_says_so(mongodb, result):
    if mongodb.real:
        pytest.skip("a real MongoDB replica set has snapshot sessions")
    assert result.snapshot is None
    assert "not supported" in result.snapshot_refused


@pytest.mark.real_mongodb
def test_a_snapshot_session_export_keeps_every_order_counted(result):
    snapshot = result.snapshot
    assert snapshot is not None, result.snapshot_refused
    assert snapshot.restored_equals_files
    assert snapshot.uncounted == 0
    assert snapshot.writes_during >= lesson.WRITES_BETWEEN


def test_the_headline_holds(result):
    assert result.holds  # what main() exits on


def test_a_second_run_gives_the_same_facts(mongodb, result):
    assert lesson.run(mongodb.url) == result

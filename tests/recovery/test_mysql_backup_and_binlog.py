import shutil

import pytest

from common.settings import servers_mode
from recovery import mysql_backup_and_binlog as lesson
from servers.throwaway import NoThrowaway

pytestmark = pytest.mark.skipif(
    any(shutil.which(name) is None for name in lesson.TOOLS),
    reason="mariadb-backup, mariadb-binlog and mariadb are installed with the local MySQL stand-in",
)


def run_or_skip(run, *args):
    """The drill needs its local server (the lesson's LOCAL_ONLY says why): a skip where only Docker serves."""
    try:
        return run(*args)
    except NoThrowaway as missing:
        if servers_mode() == "local":
            pytest.fail(str(missing))
        pytest.skip(str(missing))


@pytest.fixture(scope="module")
def result(mysql):
    return run_or_skip(lesson.run, lesson.shared_server_note(mysql.url))


def test_the_full_backup_restores_the_rows_at_backup_time(result):
    full = result.restores["full"]
    assert full.restored == full.expected
    assert full.restored.rows == lesson.FULL_ROWS


def test_the_incremental_rolls_the_full_forward_to_its_own_moment(result):
    incremental = result.restores["full + incremental"]
    assert incremental.restored == incremental.expected
    assert incremental.restored.rows == lesson.FULL_ROWS + lesson.INC_ROWS
    assert incremental.restored.md5 != result.restores["full"].restored.md5


def test_binlog_replay_brings_back_the_moment_before_the_mistake(result):
    point = result.restores["point in time"]
    assert result.replay_exit == 0
    assert point.restored == point.expected
    assert point.restored.rows == lesson.FULL_ROWS + lesson.INC_ROWS + sum(lesson.FILE_ROWS)


def test_the_mistake_deleted_every_row_on_the_source_and_is_absent_after_replay(result):
    point = result.restores["point in time"]
    assert result.rows_after_mistake == 0
    assert result.mistake_deleted == point.expected.rows
    assert point.restored.rows == result.mistake_deleted  # none of the deleted rows is missing


def test_a_missing_binlog_file_replays_without_error_and_rows_are_missing(result):
    assert result.gap_replay_exit == 0  # silent
    assert result.rows_in_missing_file > 0
    assert result.gap_rows_missing == result.rows_in_missing_file


def test_the_chain_check_names_the_missing_file(result):
    assert len(result.gap_found) == 1
    assert result.gap_found[0].startswith("binlog.")


def test_the_chain_check_finds_gaps_only_where_a_number_is_skipped():
    assert lesson.missing_from_chain("binlog.000002", ["binlog.000002", "binlog.000004"]) == ["binlog.000003"]
    assert lesson.missing_from_chain("binlog.000002", ["binlog.000002", "binlog.000003"]) == []
    assert lesson.missing_from_chain("binlog.000009", ["binlog.000010"]) == ["binlog.000009"]


def test_the_headline_holds(result):
    assert result.holds  # what main() exits on


def test_a_second_run_gives_the_same_facts(mysql, result):
    assert lesson.run(lesson.shared_server_note(mysql.url)) == result

import pytest

from common.settings import servers_mode
from recovery import backup_strategies as lesson
from servers.throwaway import NoThrowaway


def run_lesson():
    try:
        return lesson.run()
    except NoThrowaway as missing:  # neither a local server nor Docker: it says which to install
        if servers_mode() in ("local", "docker"):
            pytest.fail(str(missing))
        pytest.skip(str(missing))


@pytest.fixture(scope="module")
def result():
    return run_lesson()


def test_the_source_holds_every_table(result):
    assert set(result.source) == set(lesson.TABLES)
    assert all(rows > 0 for rows, _ in result.source.values())


@pytest.mark.parametrize("name", ["custom", "directory", "parallel", "base backup"])
def test_each_full_restore_has_every_row_of_every_table(result, name):
    assert result.backups[name].tables == result.source


def test_the_selective_restore_brings_one_table_its_rows_and_not_its_indexes(result):
    picked = result.backups[f"pg_restore -t {lesson.ONE_TABLE}"]
    assert picked.tables == {lesson.ONE_TABLE: result.source[lesson.ONE_TABLE]}
    in_source, restored = result.one_table_indexes
    assert in_source >= 1 and restored == 0


def test_pg_verifybackup_passes_the_untouched_backup_and_names_the_flipped_file(result):
    assert result.verified == "backup successfully verified"
    assert "checksum mismatch" in result.flipped_verify
    assert result.flipped_file in result.flipped_verify


def test_list_reads_the_truncated_dump_but_the_restore_rejects_it(result):
    assert result.truncated_list_entries > 0
    assert result.truncated_exit != 0
    left = [rows or 0 for rows in result.truncated_left.values()]
    assert sum(left) < sum(rows for rows, _ in result.source.values())


def test_single_transaction_leaves_nothing_of_the_truncated_dump(result):
    assert result.atomic_exit != 0
    assert not any(result.atomic_left.values())


def test_the_unverified_restore_keeps_every_count_and_changes_one_checksum(result):
    assert {t: rows for t, (rows, _) in result.unverified.items()} == {
        t: rows for t, (rows, _) in result.source.items()
    }
    assert result.silent_damage == ["customers"]
    assert result.unverified_name != f"customer-{lesson.FLIPPED_ID:06d}"
    assert result.holds  # what main() exits on


def test_a_second_run_gives_the_same_facts(result):
    assert run_lesson() == result

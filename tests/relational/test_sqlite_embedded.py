import pytest

from relational import sqlite_embedded
from relational.sqlite_embedded import N_ACCOUNTS, NEW_ACCOUNTS, Snapshot


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    return tmp_path_factory.mktemp("sqlite_embedded") / "lesson.db"


@pytest.fixture(scope="module")
def result(database):
    return sqlite_embedded.run(database)


def test_the_database_is_one_file_once_closed(result):
    assert result.files_while_open == ["lesson.db", "lesson.db-shm", "lesson.db-wal"]
    assert result.files_after_close == ["lesson.db"]


def test_in_the_rollback_journal_a_reader_blocks_the_commit(result):
    assert result.rollback_journal_writer_blocked


def test_in_wal_the_reader_keeps_its_snapshot_while_the_writer_commits(result):
    assert result.journal_mode == "wal"
    assert not result.wal_writer_blocked
    assert result.reader_during == result.reader_before
    assert result.reader_before.rows == N_ACCOUNTS
    assert result.writer_sees.rows == N_ACCOUNTS + NEW_ACCOUNTS
    # The writer added 100 accounts of 100 each, then added 1 to every account.
    added = NEW_ACCOUNTS * 100 + (N_ACCOUNTS + NEW_ACCOUNTS)
    assert result.writer_sees == Snapshot(N_ACCOUNTS + NEW_ACCOUNTS, result.reader_before.balance + added)
    assert result.reader_after == result.writer_sees


def test_json_functions_agree_with_the_data(result):
    assert result.teams == result.teams_expected
    assert sum(result.teams.values()) == sqlite_embedded.N_ARTICLES + len(sqlite_embedded.PLANTED)
    assert result.top_tags == result.top_tags_expected
    assert "USING INDEX articles_author" in result.author_lookup_plan


def test_fts5_ranks_the_planted_articles_in_order_and_marks_the_hits(result):
    assert [hit.article_id for hit in result.hits] == result.planted_ids
    scores = [hit.bm25 for hit in result.hits]
    assert scores == sorted(scores) and scores[0] < 0
    assert result.hits[0].title.lower().startswith("*checkpoint*")
    assert all("*checkpoint*" in hit.snippet.lower() for hit in result.hits)


def test_fts5_finds_what_a_scan_finds(result):
    assert result.fts_matches == result.like_matches > 0


def test_a_failed_transaction_leaves_no_row(result):
    assert result.rows_inside_failed_transaction == 499
    assert result.rows_after_rollback == 0
    assert "CHECK constraint failed" in result.rollback_error


def test_main_checks_the_headline(result):
    assert sqlite_embedded.holds(result)


def test_a_second_run_gives_the_same_facts(database, result):
    again = sqlite_embedded.run(database)
    assert again == result

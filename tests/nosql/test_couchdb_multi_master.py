from urllib.parse import urlsplit

import pytest

from common.settings import ENGINES
from nosql import couchdb_multi_master as lesson


@pytest.fixture(scope="module")
def result(couchdb):
    return lesson.run(couchdb.url)


def generation(rev: str) -> int:
    return int(rev.partition("-")[0])


def test_a_stale_revision_is_refused_with_409(result):
    assert result.mvcc.stale_put == 409
    assert result.mvcc.missing_rev == 409
    assert result.mvcc.bulk_stale == "conflict"  # _bulk_docs: 201, the refusal per document


def test_edits_on_both_sides_are_conflicts_on_both_sides(result):
    edited_on_both = [name for name, edits in lesson.EDITS.items() if 0 not in edits]
    assert [w.doc_id for w in result.conflicts.winners] == edited_on_both
    assert result.conflicts.east == result.conflicts.west == len(edited_on_both) > 0
    assert result.conflicts.tags_lost > 0  # the winner alone hides the other side's edits


def test_both_sides_show_the_winner_the_rule_predicts(result):
    winners = result.conflicts.winners
    assert {w.decided_by for w in winners} == {"generation", "hash"}  # both halves of the rule
    for w in winners:
        leaves = (w.east_rev, w.west_rev)
        assert w.east_says == w.west_says == w.predicted == max(leaves, key=lambda r: (generation(r), r))
        east_edits, west_edits = lesson.EDITS[w.doc_id]
        if east_edits != west_edits:  # the side that edited more has the longer history, and wins
            assert w.predicted == (w.east_rev if east_edits > west_edits else w.west_rev)
            assert w.decided_by == "generation"


def test_the_merge_resolves_every_conflict_on_both_databases(result):
    resolution = result.resolution
    assert resolution.errors == 0
    assert resolution.east == resolution.west == 0
    assert resolution.tags_lost == 0  # every edit of either side kept
    assert resolution.same_on_both


def test_the_changes_feed_lists_each_changed_document_once(result):
    feed = result.feed
    assert feed.writes > feed.documents  # some documents were written twice
    assert feed.rows == feed.distinct == feed.documents
    assert feed.deleted == 3


def test_mango_on_its_index_and_the_view_give_the_same_answer(result):
    queries = result.queries
    assert queries.mango == queries.view
    assert sum(count for count, _ in queries.mango.values()) == lesson.N_ORDERS + 5 - 3
    assert queries.same_ids
    assert queries.index_used == "by-status-region"
    assert queries.unindexed_index == "_all_docs"


def test_a_second_run_with_credentials_in_the_url_gives_the_same_facts(couchdb, result):
    """Compose's CouchDB needs the admin in the URL; the local stand-in has no users and must
    accept (and ignore) the same credentials."""
    url = couchdb.url
    parts = urlsplit(url)
    if not parts.username:
        compose = urlsplit(ENGINES["couchdb"].default)
        url = f"{parts.scheme}://{compose.username}:{compose.password}@{parts.netloc}"
    assert lesson.run(url) == result

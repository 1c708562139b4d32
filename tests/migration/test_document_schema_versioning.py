import pytest

from migration import document_schema_versioning as lesson


@pytest.fixture(scope="module")
def result(mongo_client):
    return lesson.run(mongo_client)


def counts(result, phase_prefix):
    return next(row[1:] for row in result.per_version if row[0].startswith(phase_prefix))


def test_the_collection_starts_with_every_version(result):
    seeded = counts(result, "seeding")
    assert all(n > 0 for n in seeded) and sum(seeded) == result.documents


def test_the_lazy_path_upgrades_exactly_the_old_documents_it_reads(result):
    assert result.lazy_old_read > 0
    assert result.lazy_exactly_the_old_ones_read
    assert result.lazy_written == result.lazy_old_read


def test_documents_per_version_move_by_the_old_documents_read(result):
    v1, v2, v3 = counts(result, "seeding")
    after = counts(result, f"{result.lazy_read:,} reads")
    assert after[2] == v3 + result.lazy_old_read
    assert (v1 - after[0]) + (v2 - after[1]) == result.lazy_old_read
    assert after[0] > 0 and after[1] > 0  # unread documents stay old


def test_reading_again_writes_nothing(result):
    assert result.reread_written == 0


def test_a_query_on_the_new_shape_alone_misses_old_documents_until_the_end(result):
    assert result.city_v3_only_before < result.city_every_version_before
    assert result.city_v3_only_after == result.city_every_version_before


def test_the_bulk_job_leaves_no_document_on_an_old_version(result):
    assert counts(result, "bulk 1 -> 2")[0] == 0
    assert counts(result, "bulk 2 -> 3") == (0, 0, result.documents)
    assert result.left_on_old_versions == 0


def test_the_version_filter_keeps_the_application_edits(result):
    assert result.bulk_1_to_2[2] == lesson.EDITED  # skipped: upgraded and edited meanwhile
    assert result.edits_kept == lesson.EDITED


def test_bulk_and_lazy_upgrades_give_the_documents_the_code_expects(result, mongo_client):
    assert result.matches_expected
    customers = mongo_client[lesson.DATABASE].customers
    assert customers.count_documents({"schema_version": {"$ne": lesson.CURRENT}}) == 0
    assert customers.count_documents({"address.city": {"$exists": True}, "name": {"$exists": False}}) == (
        result.documents
    )
    assert result.holds  # what main() exits on


def test_a_second_run_gives_the_same_facts(mongo_client, result):
    assert lesson.run(mongo_client) == result

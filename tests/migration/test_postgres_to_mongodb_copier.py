import datetime as dt

import psycopg
import pytest
from bson import Decimal128
from psycopg import sql

from migration import postgres_to_mongodb_copier as lesson


def run_lesson(postgres, mongo_client):
    with psycopg.connect(postgres.url) as pg:
        return lesson.run(pg, postgres.url, mongo_client)


@pytest.fixture(scope="module")
def result(postgres, mongo_client):
    return run_lesson(postgres, mongo_client)


@pytest.fixture(scope="module")
def target(result, mongo_client):
    return mongo_client[lesson.DATABASE]


def test_the_copier_died_between_a_page_and_its_checkpoint(result):
    assert result.checkpoint_at_kill > 0
    assert 0 < result.replayed <= lesson.BATCH  # the page written but not checkpointed, written again


def test_kill_and_resume_leave_no_duplicate_and_lose_nothing(result):
    assert result.docs_after_resume == result.distinct_ids_after_resume
    assert result.lost_after_resume == 0


def test_the_naive_copier_duplicates_the_replayed_page(result):
    assert 0 < result.naive_duplicates <= lesson.BATCH


def test_writes_during_the_copy_make_key_ranges_differ_before_catch_up(result):
    assert result.changed_during_copy > 0
    assert result.ranges_differing_before > 0


def test_catch_up_brings_every_order_changed_during_the_copy(result):
    assert result.missed_by_catch_up == 0


def test_at_cut_over_counts_and_checksums_are_equal(result):
    pg_orders, pg_lines, docs, doc_lines = result.counts_after
    assert (pg_orders, pg_lines) == (docs, doc_lines)
    assert result.distinct_ids_after == pg_orders
    assert result.ranges > 0 and result.ranges_differing_after == 0
    assert result.holds  # what main() exits on


def test_a_sample_of_orders_is_equal_on_both_sides(result):
    assert result.sample_differing == 0


def test_the_counts_match_the_source_read_independently(result, postgres, target):
    with psycopg.connect(postgres.url) as pg:
        orders = pg.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(lesson.SCHEMA, "orders"))
        )
        assert orders.fetchone()[0] == target.orders.count_documents({})
    assert len(target.orders.distinct("_id")) == target.orders.count_documents({})


def test_types_are_mapped_and_nulls_left_out(result, postgres, target):
    assert result.decimal128_kept
    query = "SELECT id, ship_by IS NULL FROM {} WHERE note IS NULL ORDER BY id LIMIT 1"
    with psycopg.connect(postgres.url) as pg:
        oid, no_ship_by = pg.execute(
            sql.SQL(query).format(sql.Identifier(lesson.SCHEMA, "orders"))
        ).fetchone()
    doc = target.orders.find_one({"_id": oid})
    assert "note" not in doc  # NULL -> missing
    assert isinstance(doc["total"], Decimal128)
    assert all(isinstance(line["unit_price"], Decimal128) for line in doc["lines"])
    assert no_ship_by or isinstance(doc["ship_by"], dt.datetime)
    assert isinstance(doc["status"], str) and doc["status"] in lesson.STATUSES


def test_the_stand_in_has_no_transactions_and_the_lesson_says_so(result, mongodb):
    if not mongodb.real:
        assert result.transactions is False


def test_a_second_run_gives_the_same_invariants(postgres, mongo_client, result):
    assert run_lesson(postgres, mongo_client) == result

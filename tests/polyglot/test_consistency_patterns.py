import psycopg
import pytest
from pymongo import MongoClient
from redis import Redis

from polyglot import consistency_patterns as lesson

STORES = {"PostgreSQL", "MongoDB", "Redis"}


def run_lesson(postgres, redis, mongodb):
    with (
        psycopg.connect(postgres.url, autocommit=True) as pg,
        Redis.from_url(redis.url, decode_responses=True) as r,
        MongoClient(mongodb.url) as mongo,
    ):
        return lesson.run(pg, postgres.url, r, mongo)


@pytest.fixture(scope="module")
def result(postgres, redis, mongodb):
    return run_lesson(postgres, redis, mongodb)


def test_reading_through_the_cache_right_after_a_write_is_stale(result):
    assert result.stale_without_token == result.reads > 0


def test_a_session_token_prevents_every_stale_read(result):
    assert result.stale_with_token == 0
    assert result.cache_bypasses == result.reads  # what it cost: one PostgreSQL read per own write


@pytest.mark.parametrize("store", sorted(STORES))
def test_blind_writes_lose_one_sale_per_interleaved_pair(result, store):
    assert result.lost[store]["blind write"] == result.rounds > 0


@pytest.mark.parametrize("store", sorted(STORES))
def test_compare_and_set_loses_none_and_refuses_each_second_write(result, store):
    assert result.lost[store]["compare-and-set"] == 0
    assert result.conflicts[store] == result.rounds


def test_a_new_key_per_retry_charges_every_retry(result):
    assert result.charges["new key per retry"] == result.payments * (1 + lesson.RETRIES)


def test_one_key_charges_once_and_replays_return_the_first_charge(result):
    assert result.charges["one key"] == result.payments > 0
    assert result.charges["one key, replays at once"] == result.payments
    assert result.replays_return_first


def test_a_replayed_key_with_another_request_is_refused(postgres, result):
    with psycopg.connect(postgres.url, autocommit=True) as pg:
        key = "pay-test-mismatch"
        first = lesson.charge(pg, 1, 500, key)
        assert lesson.charge(pg, 1, 500, key) == first
        with pytest.raises(ValueError):
            lesson.charge(pg, 1, 999, key)


def test_every_write_becomes_visible_in_the_read_model(result):
    assert result.visible == result.writes > 0
    assert set(result.window_ms) == {"p50", "p95", "max"}


def test_the_headline_holds(result):
    assert result.holds


def test_a_second_run_gives_the_same_facts(result, postgres, redis, mongodb):
    assert run_lesson(postgres, redis, mongodb) == result  # the windows are not compared

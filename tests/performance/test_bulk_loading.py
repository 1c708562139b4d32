import math

import psycopg
import pytest
from cassandra.cluster import Cluster
from pymongo import MongoClient
from redis import Redis

from common.settings import ENGINES
from performance import bulk_loading as lesson

SCALE = 0.05


@pytest.fixture(scope="module")
def clients(postgres, mongodb, cassandra, redis):
    inserts = lesson.InsertCommands()
    host, port = ENGINES["cassandra"].address(cassandra.url)
    cluster = Cluster([host], port=port)
    try:
        with (
            psycopg.connect(postgres.url) as pg,
            MongoClient(mongodb.url, event_listeners=[inserts]) as mongo,
            Redis.from_url(redis.url) as redis_client,
        ):
            yield pg, mongo, inserts, cluster.connect(), redis_client
    finally:
        cluster.shutdown()


@pytest.fixture(scope="module")
def result(clients):
    return lesson.run(*clients, scale=SCALE)


def test_every_method_loads_every_row_of_its_store(result):
    # result.rows holds the sizes asked for; what each method loaded is counted in its store.
    assert [load.rows_loaded for load in result.postgres] == [result.rows["postgres"]] * 4
    assert [load.documents_loaded for load in result.mongodb] == [result.rows["mongodb"]] * 2
    assert [load.rows_loaded for load in result.cassandra] == [result.rows["cassandra"]] * 2
    assert [load.keys_loaded for load in result.redis] == [result.rows["redis"]] * 2
    assert result.complete


def test_postgres_executes_one_statement_per_row_per_batch_or_one_copy(result):
    n = result.rows["postgres"]
    expected = [n, n, math.ceil(n / lesson.ROWS_PER_STATEMENT), 1]
    assert [load.statements_sent for load in result.postgres] == expected
    # What the server itself counted, from pg_stat_statements (preloaded by the suite's servers).
    assert [load.statements_executed for load in result.postgres] == expected


def test_mongodb_insert_many_sends_one_command_per_write_batch(result):
    n, limit = result.rows["mongodb"], result.max_write_batch_size
    one_by_one, many = result.mongodb
    assert (one_by_one.insert_commands, one_by_one.largest_command) == (n, 1)
    assert many.insert_commands == math.ceil(n / limit)
    assert many.largest_command == min(n, limit)


def test_cassandra_sends_the_same_requests_but_keeps_many_in_flight(result):
    sequential, concurrent = result.cassandra
    assert sequential.requests_sent == concurrent.requests_sent == result.rows["cassandra"]
    assert 1 < concurrent.most_in_flight <= lesson.CONCURRENCY


def test_redis_pipeline_runs_every_command_in_fewer_round_trips(result):
    n = result.rows["redis"]
    one_each, pipeline = result.redis
    assert one_each.hset_replies == pipeline.hset_replies == n  # the server answered every command
    assert one_each.round_trips == n
    assert pipeline.round_trips == math.ceil(n / lesson.COMMANDS_PER_PIPELINE)


def test_each_store_reports_a_comparison(result):
    names = [comparison.name for comparison in result.comparisons]
    assert [name.split(" into ")[-1] for name in names] == ["PostgreSQL", "MongoDB", "Cassandra", "Redis"]
    # Which is faster is for `make bench`; the tests above assert the mechanism behind it.


def test_the_rows_are_deterministic():
    assert lesson.generate_rows(50) == lesson.generate_rows(50)
    assert lesson.generate_rows(100)[:50] == lesson.generate_rows(50)


def test_a_second_run_gives_the_same_facts(clients, result):
    again = lesson.run(*clients, scale=SCALE)
    assert again == result

import psycopg
import pymongo
import pymysql
import pytest
from cassandra.cluster import Cluster
from redis import Redis

from common.settings import ENGINES, mysql_params
from monitoring import engine_health as lesson


@pytest.fixture(scope="module")
def redis_client(redis):
    with Redis.from_url(redis.url, decode_responses=True) as client:
        yield client


@pytest.fixture(scope="module")
def connections(postgres, mysql, redis_client, mongo_client, neo4j_driver, cassandra):
    host, port = ENGINES["cassandra"].address(cassandra.env["CASSANDRA_HOSTS"])
    cluster = Cluster([host], port=port)
    try:
        with psycopg.connect(postgres.url) as pg, pymysql.connect(**mysql_params(mysql.url)) as my:
            yield pg, my, redis_client, mongo_client, neo4j_driver, cluster.connect()
    finally:
        cluster.shutdown()


@pytest.fixture(scope="module")
def result(connections):
    return lesson.run(*connections)


def config(client: Redis, name: str) -> int:
    return int(client.config_get(name)[name])


def test_redis_hits_and_misses_moved_by_at_least_what_the_lesson_did(result):
    assert result.redis.hits_delta >= lesson.HITS
    assert result.redis.misses_delta >= lesson.MISSES


def test_the_redis_hit_ratio_is_the_ratio_of_the_deltas(result):
    r = result.redis
    assert r.hit_ratio == pytest.approx(r.hits_delta / (r.hits_delta + r.misses_delta))
    assert 0 < r.hit_ratio < 1


def test_the_lessons_sort_is_in_the_slowlog_when_the_threshold_lets_it(result, redis_client):
    threshold = config(redis_client, "slowlog-log-slower-than")
    assert result.redis.slowlog_threshold_us == threshold
    if 0 <= threshold <= 10_000:  # the default is 10 ms; the SORT takes tens of ms
        assert result.redis.slow_entry_found
        assert result.redis.slow_entry_us >= threshold
    elif threshold < 0:  # a negative threshold turns the slow log off
        assert not result.redis.slow_entry_found


def test_the_latency_monitor_is_reported_as_configured_and_left_alone(result, redis_client):
    threshold = config(redis_client, "latency-monitor-threshold")
    assert result.redis.latency_threshold_ms == threshold
    if threshold == 0:
        assert result.redis.latency_events == []


def test_mongodb_reports_a_connection_and_the_cursors_the_lesson_held(result):
    assert result.mongo.connections_current >= 1
    # Its own idle cursors in $currentOp, by their comment: the server-wide metrics.cursor.open
    # also moves with other clients' cursors, so its delta is only printed.
    if "$currentOp" not in result.mongo.gaps:
        assert result.mongo.own_idle_cursors >= lesson.MONGO_CURSORS
    else:
        assert result.mongo.own_idle_cursors is None


def test_the_mongodb_gaps_are_what_the_server_does_not_answer(result, mongo_client):
    status = mongo_client.admin.command("serverStatus")
    for section in ("opcounters", "mem"):
        assert (section in result.mongo.gaps) == (section not in status)
    try:
        list(mongo_client.admin.aggregate([{"$currentOp": {}}]))
        answered = True
    except pymongo.errors.OperationFailure:
        answered = False
    assert ("$currentOp" in result.mongo.gaps) == (not answered)


@pytest.mark.real_mongodb
def test_real_mongodb_opcounters_moved_by_the_lessons_operations(result):
    assert result.mongo.opcounter_deltas["insert"] >= lesson.MONGO_OPS
    assert result.mongo.opcounter_deltas["query"] >= lesson.MONGO_OPS


@pytest.mark.real_mongodb
def test_real_mongodb_currentop_lists_the_lessons_operation_and_counts_connections(result):
    assert result.mongo.own_ops >= 1  # its own $currentOp aggregate, by its comment
    assert result.mongo.connections_current >= 2  # the lesson's client: a pooled and a monitoring one
    assert result.mongo.gaps == []


def test_cassandra_lists_the_lessons_own_connection_and_its_requests(result):
    c = result.cassandra
    if int(c.release_version.split(".")[0]) < 4:  # no virtual tables before Cassandra 4.0
        assert c.virtual_tables == [] and c.own_connections is None
        return
    assert c.virtual_tables == list(lesson.VIRTUAL_TABLES)
    assert c.own_connections >= 1
    assert c.own_requests_delta >= lesson.CASSANDRA_READS


def test_neo4j_lists_the_lessons_open_transaction_by_its_metadata(result):
    assert result.neo4j.own_tx_found
    assert result.neo4j.own_tx_locks >= 1  # the node it created is locked until the rollback
    assert result.neo4j.own_tx_gone_after_rollback


def test_neo4j_databases_are_online(result):
    assert "system" in result.neo4j.databases
    assert set(result.neo4j.databases.values()) == {"online"}


def test_postgres_hit_ratio_is_a_ratio_and_connections_fit_the_limit(result):
    pg = result.postgres
    assert 0 < pg.hit_ratio <= 1
    assert 1 <= pg.connections <= pg.max_connections


def test_mysql_threads_connected_counts_the_lesson_and_the_hit_ratio_is_a_ratio(result):
    my = result.mysql
    assert 1 <= my.connections <= my.max_connections
    assert 0 <= my.hit_ratio <= 1
    assert my.server.split()[0] in ("MySQL", "MariaDB")


def test_the_health_table_covers_every_engine_with_a_meaning(result):
    figures = list(result.table)
    assert set(figures) <= set(lesson.MEANING)
    assert {figure.split()[0] for figure in figures} == {
        "Redis", "MongoDB", "Cassandra", "Neo4j", "PostgreSQL", "MySQL",
    }  # fmt: skip
    assert result.holds  # what main() exits on


def test_a_second_run_gives_the_same_facts(connections, result):
    again = lesson.run(*connections)
    assert again == result

import psycopg
import pytest
from psycopg import sql
from redis import Redis

from polyglot import data_synchronization as lesson
from servers.local.postgres import PostgresServer
from servers.throwaway import throwaway

OUTBOX_RUNS = [("outbox", point) for point in lesson.OUTBOX_POINTS + lesson.CONSUMER_POINTS]
CDC_RUNS = [("cdc", point) for point in lesson.CDC_POINTS + lesson.CONSUMER_POINTS]
# A consumer that dies holding entries gets them back from the group's pending list; where the
# effects (some or all) were already written, or the relay published again, the guard refuses them.
REDELIVERED_AFTER = set(lesson.CONSUMER_POINTS)
CAUGHT_AFTER = {"relay:published", "relay:marked", "catalog:line", "catalog:applied", "graph:applied"}


@pytest.fixture(scope="module")
def clients(postgres, mongo_client, redis, neo4j_driver):
    with Redis.from_url(redis.url) as cache:
        yield postgres.url, mongo_client, cache, neo4j_driver


@pytest.fixture(scope="module")
def result(clients):
    return lesson.run(*clients)


def logical_decoding_available(url: str) -> bool:
    with psycopg.connect(url) as conn:
        return conn.execute("SHOW wal_level").fetchone()[0] == "logical" or PostgresServer.installed()


def runs_by_point(result) -> dict[tuple[str, str], lesson.Run]:
    return {(run.method, run.point): run for run in result.runs}


def test_dual_writes_leave_the_read_models_behind(result):
    assert result.dual_write_divergence > 0
    # The process died after the commit for some orders, before the graph only for others.
    assert result.dual_write_missing["graph"] > result.dual_write_missing["catalog"] > 0


def test_change_data_capture_ran_where_logical_decoding_is_available(result, postgres):
    ran = {run.method for run in result.runs}
    assert "outbox" in ran
    assert ("cdc" in ran) == logical_decoding_available(postgres.url), result.cdc_source


@pytest.mark.parametrize(("method", "point"), OUTBOX_RUNS + CDC_RUNS)
def test_every_crash_point_crashes_once_and_loses_nothing_and_applies_nothing_twice(result, method, point):
    runs = runs_by_point(result)
    if method == "cdc" and (method, point) not in runs:
        pytest.skip(f"no logical decoding here: {result.cdc_source}")
    run = runs[(method, point)]
    assert run.crashes == 1
    assert (run.lost, run.double_applied) == (0, 0)


@pytest.mark.parametrize(("method", "point"), OUTBOX_RUNS + CDC_RUNS)
def test_delivery_is_at_least_once_so_the_consumers_must_be_idempotent(result, method, point):
    run = runs_by_point(result).get((method, point))
    if run is None:
        pytest.skip(f"no logical decoding here: {result.cdc_source}")
    assert (run.redelivered > 0) == (point in REDELIVERED_AFTER)
    assert (run.duplicates_caught > 0) == (point in CAUGHT_AFTER)


def test_the_outbox_is_empty_and_no_replication_slot_is_left(result, postgres):
    assert result.outbox_unpublished == 0
    assert result.slots_left == 0
    with psycopg.connect(postgres.url) as conn:
        slots = conn.execute("SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s", (lesson.SLOT,))
        assert slots.fetchone()[0] == 0
    assert result.holds  # what main() exits on


def test_the_slot_is_reset_at_the_start_and_dropped_even_when_the_lesson_fails(clients, monkeypatch):
    if not PostgresServer.installed():
        pytest.skip("needs a local PostgreSQL for a node with wal_level=logical")
    url, mongo, cache, driver = clients
    stores = lesson.Stores(mongo[lesson.NS.mongo_database]["catalog"], cache, driver)

    def fail(*_):
        raise RuntimeError("a relay step failed")

    monkeypatch.setattr(lesson, "sweep", fail)
    with throwaway("postgres", settings={"wal_level": "logical"}) as env:
        server = env["POSTGRES_URL"]
        with psycopg.connect(server, autocommit=True) as admin:  # what a run that was killed leaves
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(lesson.CDC_DATABASE)))
        with psycopg.connect(
            lesson.make_conninfo(server, dbname=lesson.CDC_DATABASE), autocommit=True
        ) as conn:
            conn.execute("SELECT pg_create_logical_replication_slot(%s, 'test_decoding')", (lesson.SLOT,))
        result = lesson.SyncResult(0, {}, [], "")
        with pytest.raises(RuntimeError):
            lesson.cdc(server, stores, [], {}, lesson.shop.products(lesson.N_PRODUCTS), result)
        with psycopg.connect(server) as conn:
            left = conn.execute(
                "SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s", (lesson.SLOT,)
            )
            assert left.fetchone()[0] == 0
            databases = conn.execute(
                "SELECT count(*) FROM pg_database WHERE datname = %s", (lesson.CDC_DATABASE,)
            )
            assert databases.fetchone()[0] == 0
    assert result.slots_left == 0

import psycopg
import pytest

from performance import connection_pooling as lesson

SCALE = 0.1
SIZES = lesson.Sizes.at(SCALE)
CONNECTING_REQUESTS = lesson.WORKERS * SIZES.connecting_requests
REUSING_REQUESTS = lesson.WORKERS * SIZES.reusing_requests


def run(postgres, pgbouncer):
    with psycopg.connect(postgres.url, application_name=lesson.APP) as conn:
        return lesson.run(conn, postgres.url, pgbouncer.url, scale=SCALE)


@pytest.fixture(scope="module")
def result(postgres, pgbouncer):
    return run(postgres, pgbouncer)


def test_connecting_per_request_starts_a_server_process_per_request(result):
    assert result.direct.requests == CONNECTING_REQUESTS
    assert result.direct.client_connections == CONNECTING_REQUESTS
    assert result.direct.server_backends == CONNECTING_REQUESTS


def test_the_pool_answers_every_request_from_at_most_its_size(result):
    assert result.pooled.requests == REUSING_REQUESTS
    assert result.pool_stats["requests_num"] == REUSING_REQUESTS
    assert lesson.POOL_MIN <= result.pool_stats["connections_num"] <= lesson.POOL_MAX
    assert result.pooled.server_backends <= lesson.POOL_MAX


def test_pgbouncer_reuses_its_server_connections_even_for_clients_that_connect_per_request(result):
    assert result.bouncer_per_request.client_connections == CONNECTING_REQUESTS
    assert 1 <= result.bouncer_per_request.server_backends <= lesson.PGBOUNCER_POOL_SIZE
    assert result.bouncer_per_worker.client_connections == lesson.WORKERS
    assert 1 <= result.bouncer_per_worker.server_backends <= lesson.PGBOUNCER_POOL_SIZE


def test_each_variant_is_compared_with_connecting_per_request(result):
    assert [(c.baseline, c.optimized) for c in result.comparisons] == [
        (result.direct.variant, result.pooled.variant),
        (result.direct.variant, result.bouncer_per_worker.variant),
    ]
    # a connection (a process, a handshake) per request against none: a margin no busy machine erases
    assert result.comparisons[0].ratio > 1


def test_the_server_refuses_connections_beyond_max_connections(result):
    flood, limits = result.direct_flood, result.limits
    assert flood.refused > 0
    assert flood.refusal == (lesson.REFUSED if limits.superuser else lesson.RESERVED)
    assert flood.opened + flood.refused == flood.attempts
    # Full means every slot this user may take; another client could come or go meanwhile.
    usable = limits.max_connections - limits.held_back_from_this_user
    assert usable - 2 <= flood.in_use_at_refusal <= limits.max_connections


def test_the_flood_is_closed_again(result):
    assert result.direct_flood.flood_left_open == 0


def test_pgbouncer_serves_more_clients_than_max_connections(result):
    flood = result.bouncer_flood
    assert flood.clients == result.limits.max_connections + SIZES.beyond_limit
    assert flood.served == flood.clients
    assert flood.server_backends <= lesson.PGBOUNCER_POOL_SIZE
    assert flood.server_connections < result.limits.max_connections


def test_a_second_run_gives_the_same_facts(postgres, pgbouncer, result):
    assert run(postgres, pgbouncer) == result

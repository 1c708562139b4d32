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


@pytest.fixture(scope="module")
def console_open(result, pgbouncer):
    """Whether PgBouncer's admin console let the lesson in. The local PgBouncer makes the lesson's
    user an admin; a compose PgBouncer does only with ADMIN_USERS set to it."""
    facts = result.pgbouncer
    if facts.version is None:
        assert facts.default_pool_size is None and not facts.keeps_prepared_statements
        return False
    assert facts.version.startswith("PgBouncer")
    return True


def test_connecting_per_request_starts_a_server_process_per_request(result):
    assert result.direct.requests == CONNECTING_REQUESTS
    assert result.direct.client_connections == CONNECTING_REQUESTS
    assert result.direct.server_backends == CONNECTING_REQUESTS


def test_the_pool_answers_every_request_from_at_most_its_size(result):
    assert result.pooled.requests == REUSING_REQUESTS
    assert result.pool_stats["requests_num"] == REUSING_REQUESTS
    assert lesson.POOL_MIN <= result.pool_stats["connections_num"] <= lesson.POOL_MAX
    assert result.pooled.server_backends <= result.pool_stats["connections_num"]


def test_pgbouncer_reuses_its_server_connections_even_for_clients_that_connect_per_request(
    result, console_open
):
    per_request, per_worker = result.bouncer_per_request, result.bouncer_per_worker
    assert per_request.client_connections == CONNECTING_REQUESTS
    assert per_request.server_backends < per_request.client_connections  # processes outlived clients
    assert per_worker.client_connections == lesson.WORKERS
    if console_open:
        pool_size = result.pgbouncer.default_pool_size
        assert per_request.server_backends <= pool_size and per_worker.server_backends <= pool_size
        # Every answer came from one of PgBouncer's own server connections (SHOW SERVERS).
        assert per_request.outside_pgbouncer == per_worker.outside_pgbouncer == 0


def test_prepared_statements_are_used_only_where_pgbouncer_keeps_them(result, console_open):
    facts = result.pgbouncer
    if not console_open:
        return  # unknown version: the lesson did not prepare (checked in console_open)
    major, minor = (int(part) for part in facts.version.split()[1].split(".")[:2])
    if (major, minor) < (1, 21):
        assert facts.max_prepared_statements is None and not facts.keeps_prepared_statements
    else:
        assert facts.keeps_prepared_statements == (facts.max_prepared_statements > 0)


def test_each_variant_is_compared_with_connecting_per_request(result):
    assert [(c.baseline, c.optimized) for c in result.comparisons] == [
        (result.direct.variant, result.pooled.variant),
        (result.direct.variant, result.bouncer_per_worker.variant),
    ]


def test_the_role_is_refused_beyond_its_connection_limit(result):
    limit = result.role_limit
    assert limit.connection_limit == lesson.ROLE_LIMIT  # read back from pg_roles
    assert limit.opened == limit.in_use_at_refusal == lesson.ROLE_LIMIT
    assert limit.refused == limit.attempts - limit.opened == lesson.EXTRA_ATTEMPTS
    assert f'too many connections for role "{lesson.ROLE}"' in limit.message


def test_the_role_connections_are_closed_again(result):
    assert result.role_limit.left_open == 0


def test_pgbouncer_serves_more_clients_than_max_connections(result, console_open):
    flood = result.bouncer_flood
    assert flood.clients == result.max_connections + SIZES.beyond_limit
    assert flood.served == flood.clients
    assert flood.server_backends < flood.clients
    if console_open:
        assert flood.server_backends <= result.pgbouncer.default_pool_size
    assert flood.server_connections < result.max_connections


def test_main_checks_the_headline(result):
    assert lesson.holds(result)


def test_a_second_run_gives_the_same_facts(postgres, pgbouncer, result):
    assert run(postgres, pgbouncer) == result

import psycopg
import pytest

from common.settings import verify_full
from security import tls_in_transit as lesson
from servers.local import server_class


@pytest.fixture(scope="module")
def secure_url(postgres_secure):
    return verify_full(postgres_secure.url, postgres_secure.env["POSTGRES_SECURE_CA"])


@pytest.fixture(scope="module")
def result(secure_url, postgres):
    return lesson.run(secure_url, postgres.url)


def test_verify_full_connects_and_pg_stat_ssl_reports_the_session(result, secure_url):
    ssl, version, cipher, bits = result.session
    assert ssl is True and version in ("TLSv1.2", "TLSv1.3") and cipher and bits >= 128
    with psycopg.connect(secure_url) as conn:  # the client's view, read apart from the lesson
        assert conn.pgconn.ssl_in_use


def test_plaintext_is_refused_by_the_hba_rule(result):
    plaintext = result.attempts["plaintext"]
    assert not plaintext.connected and plaintext.outcome == "pg_hba.conf: no TLS"
    assert "pg_hba.conf rejects connection" in plaintext.message and "no encryption" in plaintext.message


def test_a_name_not_in_the_certificate_is_refused_by_verify_full_and_accepted_by_require(result):
    assert result.attempts["wrong name, verify-full"].outcome == "wrong name"
    assert "does not match host name" in result.attempts["wrong name, verify-full"].message
    assert result.attempts["wrong name, require"].connected


def test_another_ca_is_refused_by_verify_full(result):
    assert result.attempts["other CA, verify-full"].outcome == "unknown CA"
    in_the_middle = result.attempts["mitm, verify-full"]
    assert in_the_middle.outcome == "unknown CA"
    assert in_the_middle.marker_read == in_the_middle.user_read == 0  # refused before a byte of the session


def test_require_accepts_the_man_in_the_middle_and_only_channel_binding_stops_the_login(result):
    bound = result.attempts["mitm, require"]
    assert bound.outcome == "channel binding" and "SCRAM channel binding check failed" in bound.message
    assert bound.user_read > 0  # the TLS handshake with the impostor succeeded: it read the startup packet
    unbound = result.attempts["mitm, require, no channel binding"]
    assert unbound.connected and unbound.marker_read > 0


def test_a_tap_reads_postgres_in_plaintext_and_nothing_under_tls(result):
    plain, tls = result.wire["PostgreSQL plaintext"], result.wire["PostgreSQL TLS"]
    assert plain.marker > 0 and plain.statement > 0 and plain.user_name > 0
    assert plain.password == 0  # SCRAM sends a proof, never the password
    assert (tls.marker, tls.statement, tls.user_name, tls.password) == (0, 0, 0, 0)
    assert tls.size > 0


def test_a_tap_reads_redis_in_plaintext_and_nothing_under_tls(result):
    if result.redis_skipped:  # only a container node (Docker, no local redis-server) cannot read the files
        assert not server_class("redis").installed(), result.redis_skipped
        pytest.skip(f"Redis over TLS needs a local redis-server: {result.redis_skipped}")
    plain, tls = result.wire["Redis plaintext"], result.wire["Redis TLS"]
    assert plain.marker > 0 and plain.statement > 0
    assert (tls.marker, tls.statement) == (0, 0) and tls.size > 0


def test_the_headline_holds(result):
    assert result.holds  # what main() exits on


@pytest.mark.parametrize("which", ["postgres_secure", "postgres"])
def test_the_lesson_role_and_schema_are_gone_after_the_run(result, request, secure_url, which):
    url = secure_url if which == "postgres_secure" else request.getfixturevalue("postgres").url
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM pg_roles WHERE rolname = %s", (lesson.APP,)).fetchone() == (
            0,
        )
        schemas = conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = %s", (lesson.SCHEMA,))
        assert schemas.fetchone() == (0,)


def test_a_second_run_gives_the_same_facts(result, secure_url, postgres):
    assert lesson.run(secure_url, postgres.url) == result

import psycopg
import pytest
from redis import Redis

from common.settings import setting, verify_full
from security import server_audit_logs as lesson


@pytest.fixture(scope="module")
def secure_url(postgres_secure):
    ca = postgres_secure.env.get("POSTGRES_SECURE_CA") or setting("POSTGRES_SECURE_CA")
    return verify_full(postgres_secure.url, ca)


@pytest.fixture(scope="module")
def client(redis):
    with Redis.from_url(redis.url, decode_responses=True) as client:
        yield client


@pytest.fixture(scope="module")
def result(secure_url, client):
    return lesson.run(secure_url, client)


def lesson_roles(url: str) -> int:
    with psycopg.connect(url) as conn:
        found = conn.execute(
            "SELECT count(*) FROM pg_roles WHERE starts_with(rolname, %s)", (lesson.PREFIX + "_",)
        )
        return found.fetchone()[0]


def lesson_users(client: Redis) -> list[str]:
    return [name for name in client.acl_users() if name.startswith(lesson.PREFIX + "_")]


def test_pgaudit_logs_session_lines_for_writes_and_ddl_only(result):
    log = result.server_log
    assert log is not None
    assert len(log.session_statements) == 6  # 2 CREATE TABLE, 2 INSERT, 2 UPDATE; no SELECT, no GRANT
    expected = {"DDL CREATE TABLE": 2, "WRITE INSERT": 2, "WRITE UPDATE": 2}
    if log.extension:  # its event triggers log each primary key's index as a line of its CREATE TABLE
        expected["DDL CREATE INDEX"] = 2
    assert log.session_lines == expected


def test_pgaudit_logs_object_lines_only_for_the_table_the_audit_role_may_read(result):
    assert result.server_log.object_lines == {f"{lesson.SCHEMA}.patients": 2}


def test_connections_disconnections_and_the_duration_are_in_the_log(result):
    log = result.server_log
    assert log.connections == {"connection received": 2, "connection authorized": 2, "disconnection": 2}
    assert log.duration_lines == 1
    assert log.ssl_logged


def test_redis_acl_log_lists_the_denied_commands_of_the_lesson_user(result, client):
    assert result.redis_denials == {("command", "flushdb"): 3, ("key", lesson.REDIS_OTHER_KEY): 1}
    assert result.redis_users_left == 0
    assert lesson_users(client) == []


def test_the_lesson_role_is_gone(secure_url, result):
    assert result.roles_left == 0
    assert lesson_roles(secure_url) == 0
    assert result.holds  # what main() exits on


def test_the_role_and_the_user_are_dropped_even_when_the_lesson_fails(secure_url, client, monkeypatch):
    def fail(*_, **__):
        raise RuntimeError("a lesson step failed")

    monkeypatch.setattr(lesson, "lines_of", fail)
    with pytest.raises(RuntimeError):
        lesson.run(secure_url, client)
    assert lesson_roles(secure_url) == 0
    monkeypatch.undo()
    monkeypatch.setattr(client, "acl_log", fail)
    with pytest.raises(RuntimeError):
        lesson.redis_acl_log(client, "failing")
    assert lesson_users(client) == []


def test_a_second_run_gives_the_same_facts(secure_url, client, result):
    assert lesson.run(secure_url, client) == result

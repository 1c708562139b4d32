import pytest
from redis import Redis
from redis.exceptions import AuthenticationError, NoPermissionError

from security import redis_acl as lesson

DENIED = NoPermissionError
EXPECTED = {
    "cache": {
        "GET cache:page:1": None,
        "SET cache:page:1": None,
        "GET session:1": DENIED,  # outside ~redis_acl:cache:*
        "KEYS redis_acl:*": DENIED,  # @read, but also @dangerous, removed after
        "CONFIG GET maxmemory": DENIED,
        "PUBLISH events:orders": DENIED,
        "PUBLISH audit": DENIED,
    },
    "reporter": {
        "GET cache:page:1": None,
        "SET cache:page:1": DENIED,  # not @read
        "GET session:1": None,
        "KEYS redis_acl:*": DENIED,
        "CONFIG GET maxmemory": DENIED,
        "PUBLISH events:orders": DENIED,
        "PUBLISH audit": DENIED,
    },
    "events": {
        "GET cache:page:1": DENIED,
        "SET cache:page:1": DENIED,
        "GET session:1": DENIED,
        "KEYS redis_acl:*": DENIED,
        "CONFIG GET maxmemory": DENIED,
        "PUBLISH events:orders": None,
        "PUBLISH audit": DENIED,  # outside &redis_acl:events:*
    },
}


@pytest.fixture(scope="module")
def client(redis):
    with Redis.from_url(redis.url, decode_responses=True) as client:
        yield client


@pytest.fixture(scope="module")
def result(client):
    return lesson.run(client)


def test_each_service_can_do_only_what_its_rules_allow(result):
    assert result.matrix == EXPECTED


def test_every_denial_is_in_the_acl_log_with_its_reason(result):
    for service in lesson.SERVICES:
        assert sum(result.logged[service].values()) == result.denied(service), service
    assert ("key", lesson.SESSION_KEY) in result.logged["cache"]
    assert ("command", "keys") in result.logged["cache"]
    assert ("command", "set") in result.logged["reporter"]
    assert ("channel", lesson.AUDIT_CHANNEL) in result.logged["events"]


def test_a_wrong_password_is_refused_and_logged(result):
    assert result.bad_password is AuthenticationError
    assert result.bad_password_logged


def test_the_server_keeps_only_a_sha256_of_the_password(result):
    assert result.stored_as_sha256


def test_the_shared_default_user_is_untouched_and_our_users_are_gone(client, result):
    assert result.default_user_unchanged
    assert result.users_left == []
    assert not [name for name in client.acl_users() if name.startswith(lesson.USER_PREFIX)]


def test_users_are_removed_even_when_the_lesson_fails(client, result, monkeypatch):
    def fail(*_):
        assert [n for n in client.acl_users() if n.startswith(lesson.USER_PREFIX)], "users exist meanwhile"
        raise RuntimeError("the lesson fails half-way")

    monkeypatch.setattr(lesson, "try_everything", fail)
    with pytest.raises(RuntimeError):
        lesson.run(client)
    assert not [name for name in client.acl_users() if name.startswith(lesson.USER_PREFIX)]


def test_locking_down_the_default_user_on_a_throwaway_server(result):
    if result.lockdown is None:
        pytest.skip(f"no throwaway Redis: {result.no_throwaway}")
    lockdown = result.lockdown
    assert set(lockdown.before.values()) == {None}  # anonymous clients may do anything, FLUSHALL too
    assert lockdown.keys_flushed == (3, 0)
    assert lockdown.after == {
        "admin: CONFIG GET maxmemory": None,
        "anonymous: PING": AuthenticationError,
        "default with its password: PING": None,
        "default with its password: CONFIG GET maxmemory": NoPermissionError,
        "default with its password: FLUSHALL": NoPermissionError,
    }


def test_a_second_run_gives_the_same_facts(client, result):
    assert lesson.run(client) == result

import pytest
from redis import Redis

from nosql import redis_key_design as lesson


@pytest.fixture(scope="module")
def clients(redis):
    with (
        Redis.from_url(redis.url, decode_responses=True) as client,
        Redis.from_url(redis.url, decode_responses=True) as other,
    ):
        yield client, other


@pytest.fixture(scope="module")
def result(clients):
    return lesson.run(*clients)


def test_a_loose_glob_matches_more_than_one_kind_of_key(result):
    found = result.namespace
    assert found.match_user_star == 2 * lesson.N_USERS  # records and session sets
    assert found.match_user_star_type_hash == lesson.N_USERS
    assert found.match_sessions == lesson.N_USERS


def test_scan_finds_what_keys_finds_in_several_calls(result):
    assert result.namespace.keys_same_as_scan
    assert result.namespace.keys_found == result.namespace.match_user_star
    assert result.namespace.scan_calls > 1


def test_ttls_and_expiry(result):
    expiry = result.expiry
    assert (expiry.ttl_user, expiry.ttl_missing) == (-1, -2)
    assert expiry.ttl_session == 60
    assert expiry.ttl_after_getex == lesson.SESSION_TTL_S
    assert expiry.abandoned == lesson.N_USERS // lesson.ABANDONED_EVERY
    assert expiry.sessions_left == lesson.N_USERS - expiry.abandoned


def test_eviction_settings_are_read_not_changed(redis, result):
    with Redis.from_url(redis.url, decode_responses=True) as client:
        current = client.config_get("maxmemory*")
    assert (result.expiry.maxmemory, result.expiry.policy) == (
        current["maxmemory"],
        current["maxmemory-policy"],
    )
    # Only the sessions carry a TTL, so only they are at risk under a volatile-* policy.
    assert result.expiry.candidates["volatile-*"] == result.expiry.sessions_left
    assert result.expiry.candidates["allkeys-*"] == 2 * lesson.N_USERS + result.expiry.sessions_left


def test_the_key_read_all_along_looks_more_recently_used(result):
    expiry = result.expiry
    assert expiry.idle_signal in ("OBJECT IDLETIME", "OBJECT FREQ")
    if expiry.idle_signal == "OBJECT IDLETIME":
        assert expiry.cold_value > expiry.hot_value
        assert "LFU" in expiry.other_signal_error
    else:
        assert expiry.hot_value > expiry.cold_value


def test_one_hash_is_smaller_than_as_many_string_keys(result):
    strings = result.memory_of("string keys")
    one_hash = result.memory_of("one hash")
    small_hashes = result.memory_of(f"hashes of {lesson.BUCKET_SIZE}")
    assert one_hash.total_bytes < strings.total_bytes
    assert small_hashes.total_bytes < one_hash.total_bytes
    assert small_hashes.encoding == "listpack"
    assert strings.keys == lesson.N_ENTRIES


def test_multi_exec_runs_together_without_rollback(result):
    transaction = result.transaction
    assert transaction.transfer_results == [70, 80]
    assert transaction.balances_after_transfer == (70, 80)
    assert transaction.runtime_error_results == ["60", "ResponseError", "90"]
    assert transaction.balances_after_runtime_error == (60, 90)  # the error undid nothing
    assert "wrong number of arguments" in transaction.queue_error
    assert transaction.balances_after_queue_error == (60, 90)  # nothing of it ran


def test_watch_turns_a_lost_update_into_a_retry(result):
    watch = result.watch
    assert watch.stock_without_watch == 8  # the other client's write was lost
    assert watch.first_attempt_error == "WatchError"
    assert watch.attempts == 2
    assert watch.stock_with_watch == 7


def test_the_script_does_not_oversell_under_the_same_interleaving(result):
    script = result.script
    assert (script.read_then_write_sold, script.read_then_write_stock) == (2, -1)
    assert (script.lua_sold, script.lua_refused, script.lua_stock) == (1, 1, 0)


def test_a_second_run_gives_the_same_facts(clients, result):
    assert lesson.run(*clients) == result

import pytest

from recovery import redis_persistence as lesson

ALWAYS, EVERYSEC, RDB_ONLY = lesson.CRASH_SETTINGS


@pytest.fixture(scope="module")
def result(redis):
    return lesson.run(lesson.shared_server_note(redis.url))


def test_the_rdb_snapshot_restores_every_key_and_value(result):
    rdb = result.restores["RDB snapshot"]
    assert rdb.restored == rdb.expected
    assert rdb.restored.keys == lesson.N_USERS + lesson.N_CARTS


def test_the_aof_restores_the_later_writes_too(result):
    aof = result.restores["AOF"]
    assert aof.restored == aof.expected
    assert result.rdb_lacks_later_writes  # the snapshot restore is behind the source; the AOF is not


def test_appendfsync_always_loses_no_acknowledged_write_under_kill_9(result):
    always = result.crashes[ALWAYS]
    assert always.acknowledged >= lesson.STREAM
    assert always.lost == 0


def test_everysec_under_kill_9_keeps_the_stream_and_could_lose_only_its_newest_writes(result):
    # The OS holds what Redis wrote before replying, so a process crash usually loses nothing;
    # the one exception (a write postponed behind a running fsync) loses the newest writes only.
    everysec = result.crashes[EVERYSEC]
    assert everysec.acknowledged >= lesson.STREAM
    assert everysec.lost_are_the_last
    assert everysec.lost < everysec.acknowledged


def test_rdb_only_loses_every_write_since_the_snapshot(result):
    rdb = result.crashes[RDB_ONLY]
    assert rdb.acknowledged >= lesson.STREAM
    assert rdb.lost == rdb.acknowledged


@pytest.mark.parametrize("setting", list(lesson.CRASH_SETTINGS))
def test_the_keys_written_before_the_stream_survive_each_crash(result, setting):
    assert result.crashes[setting].base_kept == lesson.BASE_KEYS


def test_the_headline_holds(result):
    assert result.holds  # what main() exits on


def test_a_second_run_gives_the_same_facts(redis, result):
    assert lesson.run(lesson.shared_server_note(redis.url)) == result

import pytest
from redis import Redis

from nosql import redis_data_structures as lesson


@pytest.fixture(scope="module")
def client(redis):
    with Redis.from_url(redis.url, decode_responses=True) as connection:
        yield connection


@pytest.fixture(scope="module")
def result(client):
    return lesson.run(client)


def test_a_key_with_a_ttl_expires(result):
    assert result.strings.ttl_after_set_ex == 60
    assert result.strings.short_key_pttl_positive
    assert result.strings.short_key_expired


def test_counters_count_every_increment(result):
    assert result.strings.counter_after_incr == lesson.PAGE_VIEWS
    assert result.strings.counter_after_incrby == lesson.PAGE_VIEWS + 50


def test_hash_fields_change_in_place(result):
    assert result.hashes.stock_after_hincrby == 9
    assert result.hashes.record == {"name": "Espresso cup", "price": "7.50", "stock": "9"}


def test_the_queue_is_fifo_and_loses_no_job_when_a_worker_crashes(result):
    assert result.queue.left_by_crash == ["job-2"]
    assert result.queue.processed == lesson.JOBS
    assert result.queue.empty_pop is None


def test_set_algebra_runs_on_the_server(result):
    first, second = (set(tags) for tags in lesson.TAGS.values())
    assert result.sets.common_tags == sorted(first & second)
    assert result.sets.all_tags == sorted(first | second)
    assert result.sets.only_first == sorted(first - second)


def test_the_leaderboard_is_ordered_and_ranks_agree(result):
    board = result.leaderboard
    scores = [score for _, score in board.top3]
    assert scores == sorted(scores, reverse=True)
    assert board.rank_from_top + board.rank_from_bottom == lesson.N_PLAYERS - 1
    if board.rank_from_top < 3:
        assert board.top3[board.rank_from_top] == (board.player, board.score)


def test_an_unacknowledged_stream_message_is_pending_then_claimed(result):
    stream = result.stream
    assert stream.length == len(lesson.EVENTS)
    assert stream.read_by_a == lesson.EVENTS[:3]
    assert stream.read_by_b == lesson.EVENTS[3:]
    assert stream.acked == 5
    assert (stream.pending_before_claim, stream.pending_owner) == (1, lesson.CONSUMER_B)
    assert stream.claimed_too_early == 0
    assert stream.unacked_event == lesson.EVENTS[-1]
    assert (stream.claimed_by, stream.times_delivered_after_claim) == (lesson.CONSUMER_A, 2)
    assert stream.pending_after_ack == 0


def test_the_reset_removes_only_the_lessons_keys(client, result):
    other = "not_this_lesson:survives"
    client.set(other, "1")
    try:
        again = lesson.run(client)
        assert client.get(other) == "1"
        assert again.keys_at_start > 0
    finally:
        client.delete(other)


def test_a_second_run_gives_the_same_facts(client, result):
    assert lesson.run(client) == result

import pytest
from psycopg_pool import ConnectionPool
from redis import Redis

from performance import caching_strategies as lesson

SCALE = 0.1
SIZES = lesson.Sizes.at(SCALE)


@pytest.fixture(scope="module")
def clients(postgres, redis):
    pool_options = {"autocommit": True}
    with (
        ConnectionPool(
            postgres.url, min_size=lesson.THREADS, max_size=lesson.THREADS, kwargs=pool_options
        ) as pool,
        Redis.from_url(redis.url) as cache,
    ):
        pool.wait()
        yield pool, cache


@pytest.fixture(scope="module")
def result(clients):
    return lesson.run(*clients, scale=SCALE)


def test_the_database_holds_the_scaled_rows(result):
    assert result.rows == {"products": SIZES.products, "order_lines": SIZES.orders * lesson.LINES_PER_ORDER}


@pytest.mark.parametrize("strategy", ["cache_aside", "read_through"])
def test_three_reads_of_a_key_load_it_once(result, strategy):
    reads = getattr(result, strategy)
    assert (reads.loads, reads.misses, reads.hits) == (1, 1, 2)
    assert reads.same_value


def test_invalidation_on_write_prevents_the_stale_read(result):
    facts = result.invalidation
    assert facts.read_without_invalidation == facts.price_cached  # the old price, served from the cache
    assert facts.loads_without == 0
    assert facts.read_with_invalidation == facts.price_after_update != facts.price_cached
    assert facts.loads_with == 1


def test_write_through_fills_the_cache_with_what_the_database_stored(result):
    assert result.writes.write_through_db_and_cache == (4_242, 4_242)
    assert result.writes.write_through_loads_on_read == 0


def test_write_behind_lags_until_the_flush_then_catches_up(result):
    facts = result.writes
    assert facts.queued_before_flush == SIZES.writes
    assert facts.db_rows_lagging_before_flush > SIZES.writes // 2
    assert facts.queued_after_failed_flush == facts.queued_before_flush  # nothing lost to the failure
    assert facts.flush_batches == -(-SIZES.writes // lesson.FLUSH_BATCH)
    assert facts.db_rows_lagging_after_flush == 0
    assert facts.queued_after_flush == 0


def test_jitter_spreads_the_expiry_times_within_bounds(result):
    ttl = result.ttl
    assert ttl.keys == SIZES.warmed
    assert (
        lesson.BASE_TTL_S - lesson.JITTER_S
        <= ttl.jitter_min_s
        < ttl.jitter_max_s
        <= lesson.BASE_TTL_S + lesson.JITTER_S
    )
    # fixed: the keys expire within the moments it took to write them (no bound asserted: that is
    # the machine's speed); jitter: over the range of TTLs chosen, up to 2 x JITTER_S
    assert 10_000 < ttl.jitter_spread_ms <= 2 * lesson.JITTER_S * 1000
    assert ttl.jitter_spread_ms > ttl.fixed_spread_ms


def test_a_lock_turns_a_stampede_into_one_load(result):
    stampede = result.stampede
    assert stampede.requests == lesson.THREADS
    assert stampede.loads_without_lock > 1  # each request that missed ran the query itself
    assert stampede.loads_with_lock == 1
    assert stampede.same_answer


def test_zipf_reads_hit_the_cache_for_every_key_but_its_first_read(result):
    zipf = result.zipf
    assert zipf.reads == SIZES.reads
    assert zipf.loads_without_cache == SIZES.reads
    assert zipf.misses == zipf.loads_with_cache == zipf.distinct_keys
    assert zipf.hits == zipf.reads - zipf.distinct_keys
    assert zipf.hottest_key_reads > zipf.reads // 20  # the head of a Zipf distribution
    assert zipf.hit_ratio > 0.5
    assert zipf.same_answers


def test_each_strategy_is_measured(result):
    names = [(c.baseline, c.optimized) for c in result.comparisons]
    assert names == [
        ("write-through", "write-behind"),
        ("no protection", "SET NX PX lock"),
        ("database every time", "cache-aside (Redis)"),
    ]


def test_a_second_run_gives_the_same_facts(clients, result):
    assert lesson.run(*clients, scale=SCALE) == result

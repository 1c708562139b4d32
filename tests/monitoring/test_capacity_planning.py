import importlib.util
import math
from datetime import date, timedelta

import psycopg
import pytest
from redis import Redis

from monitoring import capacity_planning as lesson

TODAY = date(2025, 1, 31)  # the forecast counts from here: its arithmetic is checked, not the calendar
HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


def run_lesson(postgres, redis, chart):
    with psycopg.connect(postgres.url) as pg, Redis.from_url(redis.url) as client:
        return lesson.run(pg, postgres.url, client, chart=chart, today=TODAY)


@pytest.fixture(scope="module")
def result(postgres, redis, tmp_path_factory):
    return run_lesson(postgres, redis, tmp_path_factory.mktemp("charts") / "capacity_planning.png")


def test_every_size_is_measured_from_heap_indexes_and_toast(result):
    assert [s.rows for s in result.sizes] == lesson.scaled_sizes()
    for s in result.sizes:
        assert s.heap > 0 and s.indexes > 0 and s.toast > 0  # one row in ten is TOASTed
        assert s.total == s.heap + s.indexes + s.toast


def test_bytes_per_row_are_stable_across_sizes(result):
    per_row = [s.total / s.rows for s in result.sizes]
    assert max(per_row) < 1.2 * min(per_row)
    slope = result.forecast.bytes_per_row
    assert slope > 0
    assert 0.8 * per_row[-1] < slope < 1.2 * per_row[-1]


def test_wal_per_row_is_measured_and_the_lsn_bound_is_not_below_it(result):
    for s in result.sizes:
        assert s.wal_lsn > 0
        if s.wal_statement is not None:  # pg_stat_statements is preloaded by compose and the local server
            assert 0 < s.wal_statement <= s.wal_lsn


def test_the_forecast_follows_from_the_fit(result):
    f = result.forecast
    slope, intercept = lesson.least_squares([s.rows for s in result.sizes], [s.total for s in result.sizes])
    assert (f.bytes_per_row, f.fixed_bytes) == pytest.approx((slope, intercept))
    assert f.rows_now == result.sizes[-1].rows
    left = lesson.DISK_BYTES - (intercept + slope * f.rows_now)
    assert f.days == pytest.approx(left / (slope * lesson.ROWS_PER_DAY))
    assert f.start == TODAY
    assert f.full_on == TODAY + timedelta(days=math.floor(f.days))


def test_the_least_squares_line_of_points_on_a_line_is_that_line():
    assert lesson.least_squares([1, 2, 4], [13, 23, 43]) == pytest.approx((10, 3))


def test_the_knee_is_one_of_the_measured_client_counts(result):
    assert [t.clients for t in result.throughput] == list(lesson.CLIENTS)
    assert all(t.transactions > 0 and t.failed == 0 for t in result.throughput)
    assert result.knee in lesson.CLIENTS


@pytest.mark.parametrize(
    ("rates", "knee"),
    [((100, 190, 200, 201), 2), ((100, 105, 300, 400), 1), ((100, 200, 400, 800), 8)],
)
def test_the_knee_is_where_the_next_step_adds_less_than_ten_percent(rates, knee):
    points = [lesson.Throughput(c, rate, 1.0, 0) for c, rate in zip(lesson.CLIENTS, rates, strict=True)]
    assert lesson.knee(points) == knee


def test_headroom_is_max_connections_minus_used_minus_reserved(result, postgres):
    h = result.headroom
    assert h.headroom == h.max_connections - h.used - h.reserved
    assert h.used >= 1  # the lesson's own connection
    with psycopg.connect(postgres.url) as conn:
        assert h.max_connections == int(conn.execute("SHOW max_connections").fetchone()[0])
        reserved = int(conn.execute("SHOW superuser_reserved_connections").fetchone()[0])
        if conn.info.server_version >= 160000:
            reserved += int(conn.execute("SHOW reserved_connections").fetchone()[0])
        assert h.reserved == reserved


def test_listpack_hashes_use_less_memory_per_field_than_hashtable_ones(result):
    strings, small, large = (result.redis[name] for name in ("strings", "small hashes", "large hashes"))
    assert small.encoding in ("listpack", "ziplist")  # ziplist before Redis 7
    assert large.encoding == "hashtable"
    assert small.fields == large.fields == strings.fields == 4 * result.listpack_limit
    assert small.per_field < large.per_field
    assert small.per_field < strings.per_field


def test_the_lesson_writes_only_its_own_keys(result, redis):
    with Redis.from_url(redis.url) as client:
        keys = list(client.scan_iter(match=lesson.PREFIX + "*", count=1000))
    assert len(keys) == sum(layout.keys for layout in result.redis.values())


@pytest.mark.skipif(not HAS_MATPLOTLIB, reason="matplotlib (a dev dependency) is not installed")
def test_the_chart_is_a_png(result):
    assert result.chart is not None
    assert result.chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_headline_holds(result):
    assert result.holds  # what main() exits on


def test_a_second_run_gives_the_same_facts(postgres, redis, result, tmp_path):
    again = run_lesson(postgres, redis, tmp_path / "chart.png")
    assert again == result  # the sizes, byte for byte, and Redis' memory per layout

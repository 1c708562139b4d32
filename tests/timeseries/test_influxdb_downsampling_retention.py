import pytest
from influxdb_client import InfluxDBClient

from timeseries import influxdb_downsampling_retention as lesson


def connect(influxdb) -> InfluxDBClient:
    env = influxdb.env
    return InfluxDBClient(url=influxdb.url, token=env["INFLUX_TOKEN"], org=env["INFLUX_ORG"], timeout=60_000)


@pytest.fixture(scope="module")
def result(influxdb):
    with connect(influxdb) as client:
        return lesson.run(client)


def test_go_durations_read_as_seconds():
    assert lesson.go_duration_s("8736h0m0s") == lesson.ROLLUP_RETENTION_S
    assert lesson.go_duration_s("1h0m0s") == lesson.RAW_RETENTION_S
    assert lesson.go_duration_s("0s") == 0


def test_the_server_reports_the_retention_of_both_buckets(result):
    raw, rollup = result.retention
    assert raw.retention_s == lesson.RAW_RETENTION_S == 3600
    assert rollup.retention_s == lesson.ROLLUP_RETENTION_S
    assert raw.bucket.startswith(lesson.RAW) and rollup.bucket.startswith(lesson.ROLLUP)
    if result.server_major == 1:  # 2.x picks the shard group duration itself and may not report it
        assert raw.shard_group_s == 3600
        assert rollup.shard_group_s == 7 * 86400


def test_raw_points_are_stored_and_a_point_older_than_the_retention_is_refused(result):
    assert result.raw_stored == result.raw_points > 0
    assert result.old_point_refused
    assert "retention" in result.old_point_message


def test_the_way_taken_fits_the_server(result):
    if result.server_major == 1:
        assert "not implemented" in result.to_refused
        assert "write API" in result.way
    else:
        assert result.to_refused is None
        assert "to()" in result.way


def test_one_downsampled_point_per_window_with_data(result):
    windows = result.expected_windows
    assert result.downsampled == windows
    assert windows[lesson.QUIET_METER] == lesson.MINUTES - len(lesson.QUIET_MINUTES)
    assert all(windows[meter] == lesson.MINUTES for meter in lesson.METERS if meter != lesson.QUIET_METER)


def test_each_downsampled_value_is_the_mean_of_its_raw_points(result):
    assert result.max_mean_error < 1e-9


def test_a_second_run_gives_the_same_facts(influxdb, result):
    with connect(influxdb) as client:
        again = lesson.run(client)
    assert again == result

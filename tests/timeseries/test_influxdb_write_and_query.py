import pytest
from influxdb_client import InfluxDBClient

from timeseries import influxdb_write_and_query as lesson


def connect(influxdb) -> InfluxDBClient:
    env = influxdb.env
    return InfluxDBClient(url=influxdb.url, token=env["INFLUX_TOKEN"], org=env["INFLUX_ORG"], timeout=60_000)


@pytest.fixture(scope="module")
def result(influxdb):
    with connect(influxdb) as client:
        return lesson.run(client, influxdb.env["INFLUX_BUCKET"])


def test_flux_literals_escape_quotes_backslashes_and_interpolation():
    assert lesson.flux_string('a "b" \\ ${c}') == '"a \\"b\\" \\\\ \\${c}"'
    text = lesson.flux("from(bucket: @bucket) |> filter(fn: (r) => r.s == @s)", bucket='x"y', s="z")
    assert text == 'from(bucket: "x\\"y") |> filter(fn: (r) => r.s == "z")'


def test_line_protocol_names_measurement_tags_fields_and_time(result):
    first = result.line_protocol[0]
    assert first.startswith(lesson.CLIMATE + ",sensor=greenhouse,site=north ")
    assert "temperature=" in first and "humidity=" in first
    assert first.rsplit(" ", 1)[1].isdigit()  # seconds since the epoch


def test_every_way_of_writing_sends_every_point(result):
    # Points and requests as counted on the client's HTTP layer.
    assert result.one_per_request.points == lesson.SYNC_POINTS
    assert result.in_lists.points == result.batched.points == result.readings
    assert result.batched.errors == 0 and result.batched.retries == 0


def test_batching_sends_thousands_of_points_per_request(result):
    # The mechanism behind the speed (measured by `make bench`, not here): fewer round trips.
    assert result.one_per_request.requests == lesson.SYNC_POINTS
    assert result.in_lists.requests == -(-result.readings // lesson.BATCH_SIZE)
    assert 0 < result.batched.requests < result.readings / 1000


def test_a_type_conflict_raises_and_is_reported_by_the_batching_writer(result):
    assert result.conflict_raised == "ApiException"
    assert result.conflict_status in (400, 422)
    assert "field type conflict" in result.conflict_message
    assert result.conflict_reported == 1
    assert result.temperatures_stored == result.readings  # the string never landed


def test_a_tag_with_unique_values_makes_one_series_per_value(result):
    cardinality = result.cardinality
    assert cardinality.series_by_tag == lesson.N_REQUESTS
    assert cardinality.series_by_field == len(lesson.ROUTES)
    if result.server_major == 1:
        assert cardinality.influxql_by_tag == lesson.N_REQUESTS
        assert cardinality.influxql_by_field == len(lesson.ROUTES)
    assert cardinality.same_means
    assert sorted(cardinality.mean_by_route) == sorted(lesson.ROUTES)


def test_hourly_means_match_python_and_the_offline_hours_are_empty(result):
    assert result.hourly_windows == lesson.DAYS * 24 * len(lesson.SENSORS)
    assert result.max_hourly_error < 1e-9
    assert result.empty_windows == result.expected_empty_windows
    assert result.empty_windows[lesson.OFFLINE_SENSOR] == len(lesson.OFFLINE_HOURS)


def test_pivot_gives_one_row_per_hour_with_a_column_per_field(result):
    assert result.pivot_rows == lesson.DAYS * 24
    assert {"temperature", "humidity"} <= set(result.pivot_columns)


def test_a_second_run_gives_the_same_facts(influxdb, result):
    with connect(influxdb) as client:
        again = lesson.run(client, influxdb.env["INFLUX_BUCKET"])
    assert again == result

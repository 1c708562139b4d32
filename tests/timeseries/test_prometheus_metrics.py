import math

import pytest

from timeseries import prometheus_metrics as lesson


@pytest.fixture(scope="module")
def result(prometheus):
    return lesson.run(prometheus.url, int(prometheus.env["PROMETHEUS_SCRAPE_PORT"]))


def test_each_round_became_visible_in_a_scrape(result):
    # Totals as PromQL returned them, once the scrape caught up with what the workload counted.
    per_round = lesson.REQUESTS_PER_ROUND
    assert result.totals_after_each_round == [per_round * n for n in range(1, lesson.ROUNDS + 1)]
    assert result.requests == per_round * lesson.ROUNDS


def test_a_counter_series_only_goes_up(result):
    # The range reaches back to the server's start: a scrape showed each round, so each is a step.
    assert len(result.staircase) >= lesson.ROUNDS, result.staircase
    assert result.staircase == sorted(result.staircase)


def test_totals_by_route_equal_what_the_workload_did(result):
    assert result.scraped_by_route == result.expected_by_route
    assert sum(result.expected_by_route.values()) == result.requests


def test_the_error_ratio_and_the_gauge_match_the_workload(result):
    assert 0 < result.expected_error_ratio < 0.1
    assert math.isclose(result.scraped_error_ratio, result.expected_error_ratio, abs_tol=1e-9)
    assert result.scraped_open_carts == result.expected_open_carts > 0


def test_rate_is_positive_for_every_route(result):
    assert set(result.rate_by_route) == set(lesson.ROUTES)
    assert all(rate > 0 for rate in result.rate_by_route.values())


def test_the_quantile_estimate_lands_in_the_bucket_of_the_true_quantile(result):
    for quantile in [result.quantile_all, *result.quantile_by_route.values()]:
        lower, upper = quantile.bucket
        assert lower < quantile.true_value <= upper
        assert quantile.in_bucket, quantile


def test_true_quantile_uses_the_nearest_rank_and_the_inclusive_bucket():
    found = lesson.true_quantile([0.001 * i for i in range(1, 101)], 0.95)
    assert math.isclose(found.true_value, 0.095)
    assert found.bucket == (0.05, 0.1)
    assert lesson.true_quantile([0.01] * 10, 0.5).bucket == (0.005, 0.01)  # le is "less or equal"


def test_a_second_run_gives_the_same_facts(prometheus, result):
    again = lesson.run(prometheus.url, int(prometheus.env["PROMETHEUS_SCRAPE_PORT"]))
    assert again == result

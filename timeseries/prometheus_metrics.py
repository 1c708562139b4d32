"""Prometheus metrics: a counter, a gauge and a histogram scraped from Python and read back with PromQL

A small web-shop workload is instrumented with prometheus-client in a registry of its own: a
counter of requests by route and status, a gauge of open carts that goes up and down, and a
histogram of latencies by route. The registry is served over HTTP on the port Prometheus scrapes
every second, and the workload runs in three rounds of a fixed request mix with latencies drawn
from a seeded distribution (observed, not slept). After each round the lesson polls the HTTP API
until the scraped counter equals what the workload did, then asks PromQL for the totals by route,
the error ratio, rate() over every scrape since the metrics server started and histogram_quantile()
over the buckets, and checks each answer against the workload: exact counts, and a 95th percentile
that lands in the bucket holding the true one.

Engine: Prometheus (PROMETHEUS_URL); metrics served on PROMETHEUS_SCRAPE_PORT, names prefixed
`prometheus_metrics_`, selected by `job="lessons"`. Each run starts its counters from zero.
Run: `make up SERVICES=prometheus` (or `make local-up`), then `python timeseries/prometheus_metrics.py`.
Look for: the counter staircase one scrape at a time, totals equal to the workload's, and the p95
estimate inside the true p95's bucket.
"""

from __future__ import annotations

import bisect
import math
import random
import time
from dataclasses import dataclass, field

import requests
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from common import console
from common.settings import CONNECT_TIMEOUT_S, prometheus_url, require, setting

REQUIRES = ("prometheus",)
SEED = 29
ROUNDS = 3
REQUESTS_PER_ROUND = 800
# route: share of traffic, median latency in seconds
ROUTES = {"/search": (50, 0.045), "/cart": (25, 0.030), "/checkout": (10, 0.180), "/profile": (15, 0.020)}
STATUSES = {"200": 95, "404": 3, "500": 2}  # share in %
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
QUANTILE = 0.95
POLL_TIMEOUT_S = 30.0
POLL_EVERY_S = 0.25
WINDOW_MARGIN_S = 5  # a range reaching this far before the metrics server started

TOTAL = 'sum(prometheus_metrics_requests_total{job="lessons"})'
BY_ROUTE = 'sum by (route) (prometheus_metrics_requests_total{job="lessons"})'
ERROR_RATIO = (
    'sum(prometheus_metrics_requests_total{job="lessons", status=~"5.."})'
    ' / sum(prometheus_metrics_requests_total{job="lessons"})'
)
REQUESTS = 'prometheus_metrics_requests_total{job="lessons"}'
SEARCH_OK = 'prometheus_metrics_requests_total{job="lessons", route="/search", status="200"}'
# The counters hold exactly this run's observations (they start at zero), so the quantile is taken over
# them directly; on a long-lived service wrap the buckets in rate(...[5m]) to get the recent quantile.
P95_ALL = 'histogram_quantile(0.95, sum by (le) (prometheus_metrics_request_duration_seconds_bucket{job="lessons"}))'
P95_BY_ROUTE = (
    "histogram_quantile(0.95, sum by (route, le)"
    ' (prometheus_metrics_request_duration_seconds_bucket{job="lessons"}))'
)
OPEN_CARTS = 'prometheus_metrics_open_carts{job="lessons"}'


@dataclass
class Metrics:
    """The workload's instruments, in a registry of their own (not the process-wide default)."""

    registry: CollectorRegistry
    requests: Counter
    latency: Histogram
    open_carts: Gauge


@dataclass
class Workload:
    by_route: dict[str, int] = field(default_factory=dict)
    by_status: dict[str, int] = field(default_factory=dict)
    latencies: dict[str, list[float]] = field(default_factory=dict)
    open_carts: int = 0


@dataclass
class Quantile:
    true_value: float  # nearest-rank quantile of the latencies the workload observed
    estimate: float  # histogram_quantile's interpolation inside a bucket
    bucket: tuple[float, float]  # (lower, upper] bounds of the bucket holding the true value

    @property
    def in_bucket(self) -> bool:
        return self.bucket[0] < self.estimate <= self.bucket[1]


@dataclass
class PrometheusResult:
    requests: int
    totals_after_each_round: list[int]  # what PromQL returned once the scrape caught up with the workload
    expected_by_route: dict[str, int]
    scraped_by_route: dict[str, int]
    expected_error_ratio: float
    scraped_error_ratio: float
    expected_open_carts: int
    scraped_open_carts: int
    quantile_all: Quantile
    quantile_by_route: dict[str, Quantile]
    rate_by_route: dict[str, float] = field(compare=False)  # per second of wall-clock time
    staircase: list[int] = field(compare=False)  # scraped values of one counter, in order
    seconds_to_scrape: list[float] = field(compare=False)


def create_metrics() -> Metrics:
    registry = CollectorRegistry()
    return Metrics(
        registry=registry,
        requests=Counter(
            "prometheus_metrics_requests", "Requests handled", ["route", "status"], registry=registry
        ),
        latency=Histogram(
            "prometheus_metrics_request_duration_seconds",
            "Time to handle a request",
            ["route"],
            buckets=BUCKETS,
            registry=registry,
        ),
        open_carts=Gauge(
            "prometheus_metrics_open_carts", "Carts with items not yet bought", registry=registry
        ),
    )


def run_round(metrics: Metrics, workload: Workload, rng: random.Random) -> None:
    """REQUESTS_PER_ROUND requests: a fixed mix of routes and statuses, seeded latencies."""
    routes, route_weights = list(ROUTES), [share for share, _ in ROUTES.values()]
    statuses, status_weights = list(STATUSES), list(STATUSES.values())
    for _ in range(REQUESTS_PER_ROUND):
        route = rng.choices(routes, route_weights)[0]
        status = rng.choices(statuses, status_weights)[0]
        seconds = rng.lognormvariate(math.log(ROUTES[route][1]), 0.6)
        metrics.requests.labels(route=route, status=status).inc()
        metrics.latency.labels(route=route).observe(seconds)  # observed, not slept
        if status == "200" and route == "/cart":
            metrics.open_carts.inc()
            workload.open_carts += 1
        elif status == "200" and route == "/checkout" and workload.open_carts > 0:
            metrics.open_carts.dec()
            workload.open_carts -= 1
        workload.by_route[route] = workload.by_route.get(route, 0) + 1
        workload.by_status[status] = workload.by_status.get(status, 0) + 1
        workload.latencies.setdefault(route, []).append(seconds)


def instant(session: requests.Session, base: str, promql: str) -> list[dict]:
    """GET /api/v1/query: the PromQL goes in a query parameter, never pasted into the URL."""
    response = session.get(base + "/api/v1/query", params={"query": promql}, timeout=CONNECT_TIMEOUT_S * 3)
    response.raise_for_status()
    answer = response.json()
    if answer["status"] != "success":
        raise RuntimeError(f"{promql}: {answer.get('error')}")
    return answer["data"]["result"]


def scalar(result: list[dict]) -> float | None:
    return float(result[0]["value"][1]) if result else None


def by_label(result: list[dict], label: str) -> dict[str, float]:
    return {item["metric"][label]: float(item["value"][1]) for item in result}


def wait_for_total(session: requests.Session, base: str, expected: int) -> tuple[int, float]:
    """Poll until the latest scraped total equals what the workload did; return it and the seconds it took.

    The previous run's final total is larger than any round's but the last, and its series went
    stale when its server stopped, so a match here is a sample from this run's server.
    """
    started = time.monotonic()
    seen = None
    while time.monotonic() - started < POLL_TIMEOUT_S:
        seen = scalar(instant(session, base, TOTAL))
        if seen == expected:
            return int(seen), time.monotonic() - started
        time.sleep(POLL_EVERY_S)
    raise TimeoutError(
        f"Prometheus at {base} still shows {seen} requests, not {expected}, after {POLL_TIMEOUT_S} s"
    )


def window_since(served_at: float) -> str:
    """A PromQL range reaching back past served_at: every scrape of this run, however long polling took.

    A fixed window ending now could hold only the flat samples after the last round when scrapes
    stalled while the lesson polled. A duration cannot be a bound parameter, so it is built here,
    from an integer computed from the clock, never from outside input.
    """
    return f"{math.ceil(time.time() - served_at) + WINDOW_MARGIN_S}s"


def rate_by_route(window: str) -> str:
    return f"sum by (route) (rate({REQUESTS}[{window}]))"


def staircase(session: requests.Session, base: str, since: float) -> list[int]:
    """The raw samples of one counter series, as scraped: the range selector returns them unaggregated."""
    result = instant(session, base, f"{SEARCH_OK}[{window_since(since)}]")
    samples = result[0]["values"] if result else []
    values = [int(float(value)) for at, value in samples if float(at) >= since]
    return [value for i, value in enumerate(values) if i == 0 or value != values[i - 1]]


def true_quantile(values: list[float], q: float) -> Quantile:
    """Nearest rank: the k-th smallest value, k = ceil(q * n), and the histogram bucket that holds it."""
    ordered = sorted(values)
    value = ordered[max(0, math.ceil(q * len(ordered)) - 1)]
    index = bisect.bisect_left(BUCKETS, value)  # a value on a bound counts in that bucket (le is <=)
    lower = BUCKETS[index - 1] if index > 0 else 0.0
    upper = BUCKETS[index] if index < len(BUCKETS) else math.inf
    return Quantile(round(value, 6), math.nan, (lower, upper))


def run(base_url: str, scrape_port: int) -> PrometheusResult:
    console.title("Prometheus: instrument Python, let Prometheus scrape it, ask PromQL")
    base = base_url.rstrip("/")
    session = requests.Session()

    console.step(f"Serve a registry of our own on port {scrape_port}, where Prometheus scrapes every second")
    metrics = create_metrics()
    server, thread = start_http_server(scrape_port, addr="0.0.0.0", registry=metrics.registry)
    served_at = time.time()
    try:
        console.say(
            "Counter prometheus_metrics_requests_total{route, status}, gauge prometheus_metrics_open_carts,"
            f" histogram prometheus_metrics_request_duration_seconds{{route}} with buckets {list(BUCKETS)}"
        )

        console.step(
            f"Run the workload in {ROUNDS} rounds of {REQUESTS_PER_ROUND}; after each, poll until the scrape shows it"
        )
        rng = random.Random(SEED)
        workload = Workload()
        totals, waits = [], []
        for _ in range(ROUNDS):
            run_round(metrics, workload, rng)
            scraped, waited = wait_for_total(session, base, sum(workload.by_route.values()))
            totals.append(scraped)
            waits.append(waited)
        console.table(
            ["round", "requests so far", "seconds until scraped"],
            [
                (i + 1, total, f"{wait:.2f}")
                for i, (total, wait) in enumerate(zip(totals, waits, strict=True))
            ],
        )
        steps = staircase(session, base, served_at)
        console.say(
            f'route="/search", status="200", sample by sample: {steps} (a counter only goes up; a restart resets it)'
        )

        console.step("Totals by route: sum by (route) over the counter's series")
        scraped_routes = {
            route: int(value) for route, value in by_label(instant(session, base, BY_ROUTE), "route").items()
        }
        console.plan(BY_ROUTE)
        console.table(
            ["route", "requests made", "Prometheus says"],
            [(route, workload.by_route[route], scraped_routes.get(route, 0)) for route in ROUTES],
        )
        expected_ratio = workload.by_status.get("500", 0) / sum(workload.by_status.values())
        scraped_ratio = scalar(instant(session, base, ERROR_RATIO)) or 0.0
        console.say(f"error ratio (5xx / all): {scraped_ratio:.4f}, the workload's {expected_ratio:.4f}")
        scraped_carts = int(scalar(instant(session, base, OPEN_CARTS)) or 0)
        console.say(
            f"open carts (a gauge, set by inc and dec): {scraped_carts}, the workload's {workload.open_carts}"
        )

        console.step("rate() over every scrape since the server started: requests per second, by route")
        rate_query = rate_by_route(window_since(served_at))
        rates = by_label(instant(session, base, rate_query), "route")
        console.plan(rate_query)
        console.table(
            ["route", "requests per second"], [(route, f"{rates.get(route, 0.0):.1f}") for route in ROUTES]
        )
        console.say(
            "rate() divides the increase between the window's first and last samples by the time between"
            " them (extrapolated to the window) and ignores counter resets, so restarts do not read as drops."
        )

        console.step(f"histogram_quantile({QUANTILE}): an estimate interpolated inside one bucket")
        overall = true_quantile([s for values in workload.latencies.values() for s in values], QUANTILE)
        overall.estimate = round(scalar(instant(session, base, P95_ALL)) or math.nan, 6)
        per_route = {route: true_quantile(workload.latencies[route], QUANTILE) for route in ROUTES}
        for route, value in by_label(instant(session, base, P95_BY_ROUTE), "route").items():
            per_route[route].estimate = round(value, 6)
        console.plan(P95_BY_ROUTE)
        console.table(
            ["route", "true p95", "histogram_quantile", "bucket of the true p95", "inside"],
            [
                (name, f"{q.true_value * 1000:.1f} ms", f"{q.estimate * 1000:.1f} ms",
                 f"({q.bucket[0] * 1000:g}, {q.bucket[1] * 1000:g}] ms", q.in_bucket)
                for name, q in [("all", overall), *per_route.items()]
            ],
        )  # fmt: skip
        console.say("The buckets decide the precision: the estimate is only as good as the bucket is narrow.")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    console.say("metrics server stopped; Prometheus marks its series stale at the next failed scrape")

    return PrometheusResult(
        requests=sum(workload.by_route.values()),
        totals_after_each_round=totals,
        expected_by_route={route: workload.by_route[route] for route in ROUTES},
        scraped_by_route={route: scraped_routes.get(route, 0) for route in ROUTES},
        expected_error_ratio=round(expected_ratio, 9),
        scraped_error_ratio=round(scraped_ratio, 9),
        expected_open_carts=workload.open_carts,
        scraped_open_carts=scraped_carts,
        quantile_all=overall,
        quantile_by_route=per_route,
        rate_by_route=rates,
        staircase=steps,
        seconds_to_scrape=waits,
    )


def main() -> int:
    require(*REQUIRES)
    result = run(prometheus_url(), int(setting("PROMETHEUS_SCRAPE_PORT")))
    ok = result.scraped_by_route == result.expected_by_route and result.quantile_all.in_bucket
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

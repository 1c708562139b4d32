"""Prometheus alerting: exporters, alert rules, pending then firing, and Alertmanager

postgres_exporter and redis_exporter turn the servers' statistics (pg_stat_activity,
pg_stat_database, pg_stat_replication, Redis INFO) into metrics; Prometheus scrapes them every
second and evaluates the alert rules of monitoring/alerts/rules.yml: too many connections, a
database holding too many of them, replication lag, a low cache hit ratio, Redis near maxmemory
(rules_test.yml beside them is their promtool unit test). Then one condition really happens, on a
database of the lesson's own so that nothing shared is disturbed: more connections to it than
PostgresDatabaseTooManyConnections allows (a tenth of max_connections). Prometheus's HTTP API
shows the alert go from inactive to pending (the condition holds, its `for:` has not elapsed) to
firing; Alertmanager, which Prometheus sends firing alerts to, holds it with the same labels; and
once the connections close both drop it. The exporter counts every backend of the database, an
autovacuum worker visiting it too, so its figure can be one more than the connections the lesson
opened; and a scrape that fails on a busy machine leaves no series for a moment, so a pending
alert can fall back to inactive and start its `for:` again.

Engine: PostgreSQL (POSTGRES_URL, database `prometheus_alerting`, created and dropped by the
lesson), postgres_exporter (POSTGRES_EXPORTER_URL), redis_exporter (REDIS_EXPORTER_URL), Prometheus
(PROMETHEUS_URL), Alertmanager (ALERTMANAGER_URL).
Run: `make up TOPIC=monitoring` (or `make local-up`), then `python monitoring/prometheus_alerting.py`.
Look for: the exporter's pg_stat_activity_count line for the lesson's database, the alert pending
for about its `for:` of 3 s before it fires, the same labels in Alertmanager, and both emptied
once the connections close.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import psycopg
import requests
from psycopg import sql

from common import console
from common.settings import (
    CONNECT_TIMEOUT_S,
    alertmanager_url,
    postgres_exporter_url,
    postgres_url,
    prometheus_url,
    redis_exporter_url,
    require,
)

REQUIRES = ("postgres", "postgres_exporter", "redis_exporter", "prometheus", "alertmanager")
DATABASE = APPLICATION = "prometheus_alerting"
ALERT = "PostgresDatabaseTooManyConnections"
SHARE_OF_MAX_CONNECTIONS = 0.1  # the threshold of ALERT in monitoring/alerts/rules.yml
EXPORTER_JOBS = ("postgres_exporter", "redis_exporter")  # job names in both Prometheus configurations
TIMEOUT_S = 60.0
POLL_EVERY_S = 0.1
SCRAPED_CONNECTIONS = f'sum(pg_stat_activity_count{{datname="{DATABASE}"}})'
COUNT_CONNECTIONS = (
    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND backend_type = 'client backend'"
)


@dataclass
class Sighting:
    state: str  # inactive, pending or firing, as GET /api/v1/alerts shows the alert
    seconds: float  # since the connections were opened (or closed)
    value: float | None  # the expression's value Prometheus reports with the alert


@dataclass
class AlertingResult:
    rules: dict[str, float]  # alert name -> its `for:` in seconds, as Prometheus loaded them
    rule_health: dict[str, str]
    targets_up: dict[str, bool]  # exporter job -> scraped successfully
    alertmanagers: int  # Alertmanagers Prometheus sends to
    max_connections: int
    threshold: float
    opened: int
    counted_by_postgres: int  # client backends only
    # The sum of the exporter's pg_stat_activity_count lines for our database, and the same sum asked
    # of Prometheus: every backend, so an autovacuum worker visiting the database adds one.
    exported_connections: int = field(compare=False)
    scraped_connections: int = field(compare=False)
    redis_maxmemory: int  # redis_memory_max_bytes: 0 means no limit, so the Redis rule cannot fire
    # Each state change up to firing; a failed scrape can add an inactive, pending round on the way.
    states_seen: list[str] = field(compare=False)
    alert_labels: dict[str, str]
    alert_value: float = field(compare=False)  # the rule's sum: every backend, as above
    alertmanager_labels: dict[str, str]
    alertmanager_state: str
    alertmanager_receivers: list[str]
    states_after_close: list[str]
    in_alertmanager_after_close: int
    exporter_lines: list[str] = field(compare=False)  # straight from its /metrics page
    sightings: list[Sighting] = field(compare=False)  # every state change, with its time
    seconds: dict[str, float] = field(compare=False)


def api(session: requests.Session, base: str, path: str, **params) -> dict | list:
    """GET a Prometheus or Alertmanager API path; Prometheus wraps its answer in {status, data}."""
    response = session.get(base.rstrip("/") + path, params=params, timeout=CONNECT_TIMEOUT_S)
    response.raise_for_status()
    answer = response.json()
    return answer["data"] if isinstance(answer, dict) and "data" in answer else answer


def wait_for(what: str, check, timeout: float = TIMEOUT_S):
    """Poll `check()` until it returns something true; return that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(POLL_EVERY_S)
    raise TimeoutError(f"still waiting after {timeout:.0f} s for {what}")


def loaded_rules(session: requests.Session, prometheus: str) -> list[dict]:
    groups = api(session, prometheus, "/api/v1/rules", type="alert")["groups"]
    return [dict(rule, group=group["name"]) for group in groups for rule in group["rules"]]


def exporter_targets(session: requests.Session, prometheus: str) -> dict[str, dict]:
    """The exporters' scrape targets, once each of them has been scraped successfully."""

    def all_up():
        active = api(session, prometheus, "/api/v1/targets", state="active")["activeTargets"]
        found = {t["labels"]["job"]: t for t in active if t["labels"]["job"] in EXPORTER_JOBS}
        return found if all(found.get(job, {}).get("health") == "up" for job in EXPORTER_JOBS) else None

    return wait_for("both exporters to be scraped (`up`)", all_up)


def our_alert(session: requests.Session, prometheus: str) -> dict | None:
    """Our alert in GET /api/v1/alerts (pending and firing ones), picked out by its datname label."""
    for alert in api(session, prometheus, "/api/v1/alerts")["alerts"]:
        if alert["labels"].get("alertname") == ALERT and alert["labels"].get("datname") == DATABASE:
            return alert
    return None


def in_alertmanager(session: requests.Session, alertmanager: str) -> list[dict]:
    """Alertmanager's alerts with our labels; resolved ones are not listed."""
    matchers = [f'alertname="{ALERT}"', f'datname="{DATABASE}"']
    return api(session, alertmanager, "/api/v2/alerts", filter=matchers)


def watch(session: requests.Session, prometheus: str, since: float, until: str) -> list[Sighting]:
    """Poll our alert's state and note each change, until it reaches `until`."""
    sightings: list[Sighting] = []
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        alert = our_alert(session, prometheus)
        state = alert["state"] if alert else "inactive"
        if not sightings or sightings[-1].state != state:
            value = float(alert["value"]) if alert else None
            sightings.append(Sighting(state, round(time.monotonic() - since, 2), value))
        if state == until:
            return sightings
        time.sleep(POLL_EVERY_S)
    raise TimeoutError(f"{ALERT} for {DATABASE} seen as {[s.state for s in sightings]}, never {until}")


def metric_lines(session: requests.Session, exporter: str, prefix: str, must_contain: str = "") -> list[str]:
    """Lines of an exporter's /metrics page: the text Prometheus scrapes."""
    text = session.get(exporter.rstrip("/") + "/metrics", timeout=CONNECT_TIMEOUT_S).text
    return [line for line in text.splitlines() if line.startswith(prefix) and must_contain in line]


def reset_database(admin: psycopg.Connection) -> None:
    """Our namespace: a database of its own, dropped with any connection a crashed run left."""
    name = sql.Identifier(DATABASE)
    admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
    admin.execute(sql.SQL("CREATE DATABASE {}").format(name))


def query_value(session: requests.Session, prometheus: str, promql: str) -> float:
    """GET /api/v1/query: the PromQL goes in a query parameter; the first sample's value.

    Asked again until there is one: after a failed scrape the series are stale until the next.
    """
    result = wait_for(
        f"a sample of {promql}", lambda: api(session, prometheus, "/api/v1/query", query=promql)["result"]
    )
    return float(result[0]["value"][1])


def show_rules_and_targets(session: requests.Session, prometheus: str, redis_exporter: str):
    console.step("The alert rules Prometheus loaded from monitoring/alerts/rules.yml")
    rules = loaded_rules(session, prometheus)
    console.table(
        ["group", "alert", "for", "state now", "health"],
        [(r["group"], r["name"], f"{r['duration']:g} s", r["state"], r["health"]) for r in rules],
    )
    console.say(
        "An alert is pending while its expression returns a series, and firing once it has returned"
        " it for the whole `for:`; each firing alert goes to Alertmanager."
    )

    console.step("The exporters are scrape targets, and Prometheus knows where Alertmanager is")
    targets = exporter_targets(session, prometheus)
    console.table(
        ["job", "scrape URL", "health", "last scrape"],
        [(job, t["scrapeUrl"], t["health"], f"{t['lastScrapeDuration'] * 1000:.1f} ms") for job, t in targets.items()],
    )  # fmt: skip
    managers = wait_for(
        "an Alertmanager", lambda: api(session, prometheus, "/api/v1/alertmanagers")["activeAlertmanagers"]
    )
    console.say(f"firing alerts go to {', '.join(m['url'] for m in managers)}")
    memory = metric_lines(session, redis_exporter, "redis_memory_")
    memory = [
        line for line in memory if line.split()[0] in ("redis_memory_used_bytes", "redis_memory_max_bytes")
    ]
    console.plan("\n".join(memory))
    maxmemory = int(float(next(line for line in memory if line.startswith("redis_memory_max")).split()[-1]))
    console.say(
        "RedisMemoryNearMaxmemory needs a maxmemory; setting one is server-wide (CONFIG SET), so this"
        " lesson leaves it alone: rules_test.yml shows that rule firing on made-up series instead."
        if maxmemory == 0
        else f"this Redis has a maxmemory of {console.size(maxmemory)}: the rule compares used memory to it."
    )
    return rules, targets, managers, maxmemory


def watch_it_fire(session: requests.Session, prometheus: str, pg_exporter: str, opened_at: float):
    """The states Prometheus reports for our alert, and the exporter lines behind its value."""
    console.step("Watch GET /api/v1/alerts: inactive, then pending, then firing")
    sightings = watch(session, prometheus, opened_at, until="firing")
    console.table(
        ["state", "seen after (s)", "value"],
        [(s.state, f"{s.seconds:.1f}", "" if s.value is None else f"{s.value:g}") for s in sightings],
    )
    pending = sightings[-2].seconds if len(sightings) > 1 and sightings[-2].state == "pending" else None
    if pending is not None:
        console.say(
            f"pending for {sightings[-1].seconds - pending:.1f} s: the `for:`, then the next evaluation"
        )
    if "inactive" in [s.state for s in sightings[1:]]:
        console.say(
            "inactive again on the way: a scrape failed, the series went stale and the `for:` began anew"
        )
    lines = metric_lines(session, pg_exporter, "pg_stat_activity_count", f'datname="{DATABASE}"')
    lines = [line for line in lines if float(line.split()[-1]) != 0]
    console.say("what the exporter serves for our database, the lines Prometheus sums:")
    console.plan("\n".join(lines))
    console.say("every backend of the database: an autovacuum worker visiting it would count as well")
    return sightings, lines


def read_back(session: requests.Session, alertmanager: str) -> dict:
    console.step("Alertmanager received it: GET /api/v2/alerts")
    held = wait_for("the alert in Alertmanager", lambda: in_alertmanager(session, alertmanager))[0]
    console.say("labels: " + ", ".join(f"{k}={v}" for k, v in sorted(held["labels"].items())))
    console.table(
        ["state", "receivers", "starts at", "ends at"],
        [(held["status"]["state"], ", ".join(r["name"] for r in held["receivers"]),
          held["startsAt"][11:19], held["endsAt"][11:19])],
    )  # fmt: skip
    console.say(
        "endsAt is minutes ahead: Prometheus re-sends a firing alert before then, and should it"
        " go quiet, Alertmanager resolves the alert at endsAt by itself."
    )
    return held


def run(
    prometheus: str, alertmanager: str, postgres: str, pg_exporter: str, redis_exporter: str
) -> AlertingResult:
    console.title("Prometheus alerting: from an exporter's metric to an alert in Alertmanager")
    session = requests.Session()
    rules, targets, managers, maxmemory = show_rules_and_targets(session, prometheus, redis_exporter)

    with psycopg.connect(postgres, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S) as admin:
        reset_database(admin)
        # A run that died a moment ago may have left the alert firing: start from a quiet state.
        quiet = watch(session, prometheus, time.monotonic(), until="inactive")
        wait_for("a quiet Alertmanager", lambda: not in_alertmanager(session, alertmanager) or None)
        max_connections = int(admin.execute("SELECT current_setting('max_connections')").fetchone()[0])
        threshold = SHARE_OF_MAX_CONNECTIONS * max_connections

        console.step(f"Open more connections to database {DATABASE} than {ALERT} allows")
        console.say(
            f"the rule: more than {SHARE_OF_MAX_CONNECTIONS:.0%} of max_connections ({max_connections})"
        )
        connections = []
        try:
            for _ in range(int(threshold) + 1):
                connections.append(
                    psycopg.connect(postgres, dbname=DATABASE, application_name=APPLICATION, autocommit=True)
                )
            opened_at = time.monotonic()
            counted = admin.execute(COUNT_CONNECTIONS, [DATABASE]).fetchone()[0]
            console.say(f"{len(connections)} opened; pg_stat_activity counts {counted} in {DATABASE}")
            sightings, lines = watch_it_fire(session, prometheus, pg_exporter, opened_at)
            if sightings[0].state != "inactive":  # scraped and evaluated before the first poll
                sightings.insert(0, quiet[-1])
            # Asked again if a failed scrape has just made the series stale and the alert inactive.
            alert = wait_for(f"{ALERT} in GET /api/v1/alerts", lambda: our_alert(session, prometheus))
            scraped = query_value(session, prometheus, SCRAPED_CONNECTIONS)
            held = read_back(session, alertmanager)
        finally:
            for connection in connections:
                connection.close()

        console.step("Close the connections: Prometheus resolves the alert, Alertmanager drops it")
        closed_at = time.monotonic()
        after = watch(session, prometheus, closed_at, until="inactive")
        wait_for("Alertmanager to drop the alert", lambda: not in_alertmanager(session, alertmanager) or None)
        gone = time.monotonic() - closed_at
        console.say(
            f"inactive in Prometheus after {after[-1].seconds:.1f} s, gone from Alertmanager after {gone:.1f} s"
        )
        left = len(in_alertmanager(session, alertmanager))
        admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(DATABASE)))

    return AlertingResult(
        rules={r["name"]: float(r["duration"]) for r in rules},
        rule_health={r["name"]: r["health"] for r in rules},
        targets_up={job: t["health"] == "up" for job, t in targets.items()},
        alertmanagers=len(managers),
        max_connections=max_connections,
        threshold=threshold,
        opened=len(connections),
        counted_by_postgres=counted,
        exported_connections=int(sum(float(line.split()[-1]) for line in lines)),
        scraped_connections=int(scraped),
        redis_maxmemory=maxmemory,
        states_seen=[s.state for s in sightings],
        alert_labels=alert["labels"],
        alert_value=float(alert["value"]),
        alertmanager_labels=held["labels"],
        alertmanager_state=held["status"]["state"],
        alertmanager_receivers=[r["name"] for r in held["receivers"]],
        states_after_close=[s.state for s in after],
        in_alertmanager_after_close=left,
        exporter_lines=lines,
        sightings=sightings + after,
        seconds={"gone_from_alertmanager": round(gone, 2)},
    )


def main() -> int:
    require(*REQUIRES)
    result = run(
        prometheus_url(), alertmanager_url(), postgres_url(), postgres_exporter_url(), redis_exporter_url()
    )
    ok = (
        result.states_seen[-2:] == ["pending", "firing"]
        and result.alertmanager_labels == result.alert_labels
        and result.in_alertmanager_after_close == 0
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

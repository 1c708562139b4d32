import pytest

from monitoring import prometheus_alerting as lesson


def run_lesson(prometheus, alertmanager, postgres, postgres_exporter, redis_exporter):
    return lesson.run(
        prometheus.url, alertmanager.url, postgres.url, postgres_exporter.url, redis_exporter.url
    )


@pytest.fixture(scope="module")
def engines(prometheus, alertmanager, postgres, postgres_exporter, redis_exporter):
    return prometheus, alertmanager, postgres, postgres_exporter, redis_exporter


@pytest.fixture(scope="module")
def result(engines):
    return run_lesson(*engines)


def test_prometheus_loaded_every_rule_of_the_rules_file(result):
    assert set(result.rules) == {
        "PostgresTooManyConnections",
        lesson.ALERT,
        "PostgresReplicationLag",
        "PostgresCacheHitRatioLow",
        "RedisMemoryNearMaxmemory",
    }
    assert set(result.rule_health.values()) == {"ok"}
    assert result.rules[lesson.ALERT] == 3  # the short `for:` that keeps the lesson to seconds


def test_both_exporters_are_scraped_and_alerts_have_somewhere_to_go(result):
    assert result.targets_up == {"postgres_exporter": True, "redis_exporter": True}
    assert result.alertmanagers >= 1


def test_the_lesson_opened_just_more_connections_than_the_rule_allows(result):
    assert result.opened == int(result.threshold) + 1 > result.threshold
    assert result.threshold == lesson.SHARE_OF_MAX_CONNECTIONS * result.max_connections
    assert result.counted_by_postgres == result.opened


def test_the_exporter_and_prometheus_count_at_least_the_connections_postgres_counts(result):
    # They count every backend of the database: an autovacuum worker visiting it adds one.
    assert result.exported_connections >= result.opened
    assert result.scraped_connections >= result.opened
    assert all(f'datname="{lesson.DATABASE}"' in line for line in result.exporter_lines)


def went_inactive_then_pending_then_firing(states: list[str]) -> bool:
    # A failed scrape on a busy machine can send a pending alert back to inactive on the way.
    return states[0] == "inactive" and states[-2:] == ["pending", "firing"]


def test_the_alert_went_inactive_then_pending_then_firing(result):
    assert went_inactive_then_pending_then_firing(result.states_seen)


def test_the_firing_alert_carries_the_lessons_database_and_the_measured_value(result):
    assert result.alert_labels["alertname"] == lesson.ALERT
    assert result.alert_labels["datname"] == lesson.DATABASE
    assert result.alert_labels["severity"] == "warning"
    assert result.alert_value >= result.opened  # the rule's sum: every backend, as the exporter's


def test_alertmanager_holds_the_same_alert_as_active(result):
    assert result.alertmanager_labels == result.alert_labels
    assert result.alertmanager_state == "active"
    assert result.alertmanager_receivers == ["lessons"]  # servers/compose/alertmanager.yml


def test_closing_the_connections_resolves_it_in_both(result):
    assert result.states_after_close[-1] == "inactive"
    assert result.in_alertmanager_after_close == 0


def test_a_second_run_gives_the_same_facts(engines, result):
    again = run_lesson(*engines)
    assert again == result
    assert went_inactive_then_pending_then_firing(again.states_seen)
    assert again.exported_connections >= again.opened

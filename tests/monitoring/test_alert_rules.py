"""The alert rules and the configurations that load them: promtool and amtool, where installed.

Prometheus's package brings promtool and Alertmanager's brings amtool (both Debian packages of
the local servers); without them these tests skip, and CI, which installs them, runs them.
"""

import shutil
import subprocess

import pytest
import yaml

from common.settings import ROOT
from monitoring import prometheus_alerting as lesson
from servers.local.prometheus import RULES, PrometheusServer

ALERTS = ROOT / "monitoring" / "alerts"
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
needs_promtool = pytest.mark.skipif(not shutil.which("promtool"), reason="promtool not installed")
needs_amtool = pytest.mark.skipif(not shutil.which("amtool"), reason="amtool not installed")


def run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, cwd=ALERTS, timeout=120)


@needs_promtool
def test_the_rules_file_is_valid():
    checked = run("promtool", "check", "rules", "rules.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 5 rules found" in checked.stdout


@needs_promtool
def test_the_rule_unit_tests_pass():
    tested = run("promtool", "test", "rules", "rules_test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


@needs_promtool
def test_the_local_prometheus_configuration_is_valid(tmp_path):
    server = PrometheusServer(9090, tmp_path / "prometheus")
    server.workdir.mkdir()
    server.prepare()
    checked = run("promtool", "check", "config", str(server.workdir / "prometheus.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr


@needs_amtool
def test_the_alertmanager_configuration_is_valid():
    checked = run("amtool", "check-config", str(ROOT / "servers" / "compose" / "alertmanager.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_compose_and_the_local_prometheus_load_the_same_rules_file():
    config = yaml.safe_load((ROOT / "servers" / "compose" / "prometheus.yml").read_text())
    mount = next(v for v in COMPOSE["prometheus"]["volumes"] if v.startswith("./monitoring/alerts:"))
    inside = mount.split(":")[1]
    assert config["rule_files"] == [f"{inside}/rules.yml"]
    assert RULES == ALERTS / "rules.yml"


def test_compose_prometheus_scrapes_each_exporter_by_its_service_name():
    config = yaml.safe_load((ROOT / "servers" / "compose" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]}
    for service in lesson.EXPORTER_JOBS:
        port = COMPOSE[service]["ports"][0].split(":")[-1]
        assert jobs[service] == [f"{service}:{port}"]
    alertmanagers = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert alertmanagers == [f"alertmanager:{COMPOSE['alertmanager']['ports'][0].split(':')[-1]}"]


def test_the_lessons_threshold_is_the_rules():
    rules = yaml.safe_load((ALERTS / "rules.yml").read_text())
    rule = next(r for g in rules["groups"] for r in g["rules"] if r.get("alert") == lesson.ALERT)
    assert f"{lesson.SHARE_OF_MAX_CONNECTIONS} * pg_settings_max_connections" in rule["expr"]
    assert "sum by (instance, datname)" in rule["expr"]  # per database: the lesson's own can fire it

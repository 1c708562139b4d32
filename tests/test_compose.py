"""docker-compose.yml is valid, pinned, healthchecked, and its profiles match the lessons."""

import pytest
import yaml

from common.catalog import lessons
from common.settings import ENGINES, ROOT
from servers import compose_check

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


@pytest.mark.parametrize("profile", ["all", "cluster"])
def test_compose_file_is_valid_for_compose_v2(profile):
    checked = compose_check.config("--profile", profile, "config", "-q")
    assert checked.returncode == 0, checked.stderr


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_every_engine_is_a_pinned_healthchecked_service(engine):
    service = SERVICES[engine]
    image, _, tag = service["image"].partition(":")
    assert tag and tag != "latest" and any(ch.isdigit() for ch in tag), service["image"]
    assert "healthcheck" in service
    # `make up` (profile all) starts every engine but the heavy extra ones (the seed's other systems,
    # a JVM or an emulator each), which start with their topic (`make up TOPIC=graph`) or TOPIC=extra.
    assert "all" in service["profiles"] or "extra" in service["profiles"]


def test_compose_port_matches_the_default_address():
    for engine, spec in ENGINES.items():
        published = [str(port).split(":")[-2] for port in SERVICES[engine]["ports"]]
        assert str(spec.address(spec.default)[1]) in published, engine


def test_each_topic_profile_has_the_engines_its_lessons_need():
    for lesson in lessons():
        for engine in lesson.requires:
            assert lesson.topic in SERVICES[engine]["profiles"], f"{lesson.relative} needs {engine}"


@pytest.mark.parametrize("engine", ["postgres", "timescaledb"])
def test_postgres_healthchecks_use_tcp(engine):
    """The image's init scripts run on a socket-only server: a socket check passes too early."""
    check = " ".join(SERVICES[engine]["healthcheck"]["test"])
    assert "pg_isready -h 127.0.0.1" in check and "psql -h 127.0.0.1" in check


def test_mongodb_is_healthy_only_as_writable_primary():
    check = " ".join(SERVICES["mongodb"]["healthcheck"]["test"])
    assert "isWritablePrimary" in check and "quit(" in check


def test_the_replica_copies_the_primary_settings_a_standby_needs():
    """A standby refuses to start when max_connections (and the like) is below the primary's."""
    script = (ROOT / "servers" / "compose" / "replica-entrypoint.sh").read_text()
    for name in ("max_connections", "max_worker_processes", "max_wal_senders", "max_prepared_transactions"):
        assert name in script


def test_ports_are_published_on_loopback_only():
    for name, service in SERVICES.items():
        for port in service.get("ports", []):  # a node sharing another's network publishes none
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port}"

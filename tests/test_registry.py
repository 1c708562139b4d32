"""One registry of engines (common.settings.ENGINES), and every other place agrees with it.

An engine is described once: its variable and default address, its compose service, its
readiness probe, its local server or an explicit "image only", its lookalike image or an
explicit "none". These tests fail when any place drifts from the registry, and when the
compose-to-container translation would drop a key the compose file uses.
"""

from pathlib import Path
from urllib.parse import urlsplit

import pytest

from common.settings import ENGINES, ROOT
from servers import containers
from servers.local import server_class
from servers.lookalike.__main__ import tags_of
from servers.probes import PROBES

SERVICES = containers.compose_services()
LOOKALIKES = ROOT / "servers" / "lookalike"


@pytest.mark.parametrize("key", sorted(ENGINES))
def test_every_engine_has_a_service_a_probe_and_a_source(key):
    spec = ENGINES[key]
    assert spec.service in SERVICES, f"{key}: no service in docker-compose.yml"
    assert key in PROBES, f"{key}: no readiness probe in servers/probes.py"
    if spec.launcher is not None:
        assert server_class(key).engine == key, f"{key}: the launcher serves another engine"
    # Without a local server it must say so (launcher=None) and the catalog calls it Docker only.
    assert spec.local == (spec.launcher is not None)


# Multi-node deployments (replica sets, rings, Sentinel, regions) are compose services of the
# `cluster` profile only: nodes of a topology that a recovery/ lesson builds, not engines of their own.
TOPOLOGY_PROFILES = {"cluster"}


def topology_nodes() -> set[str]:
    return {name for name, service in SERVICES.items() if set(service["profiles"]) <= TOPOLOGY_PROFILES}


def test_every_service_is_an_engine_or_a_topology_node():
    engines = {spec.service for spec in ENGINES.values()}
    assert set(SERVICES) == engines | topology_nodes()
    assert not engines & topology_nodes()


@pytest.mark.parametrize("name", sorted(topology_nodes()))
def test_a_topology_node_is_pinned_and_memory_limited(name):
    service = SERVICES[name]
    assert service["image"].partition(":")[2] not in ("", "latest"), name
    assert "mem_limit" in service, f"{name}: a node of a multi-node profile says what it may use"


@pytest.mark.parametrize("key", sorted(k for k, e in ENGINES.items() if e.lookalike))
def test_a_lookalike_has_a_dockerfile_that_says_what_it_imitates(key):
    dockerfile = LOOKALIKES / ENGINES[key].lookalike / "Dockerfile"
    text = dockerfile.read_text()
    assert text.startswith("# Imitates "), f"{dockerfile}: first line says which image it imitates"
    assert "Not imitated:" in text, f"{dockerfile}: says what it does not imitate"
    assert 'LABEL examples.lookalike="' in text, f"{dockerfile}: labels what it is built from"
    service = SERVICES[ENGINES[key].service]
    # A built image (postgres_secure) has a lookalike through its base: the image it is built FROM.
    image = built_from(service) if service.get("pull_policy") == "build" else service["image"]
    assert image in tags_of(ENGINES[key].lookalike)


def built_from(service: dict) -> str:
    """The FROM image of a `build:` service's Dockerfile."""
    dockerfile = ROOT / service["build"]["context"] / service["build"].get("dockerfile", "Dockerfile")
    return next(line.split()[1] for line in dockerfile.read_text().splitlines() if line.startswith("FROM "))


def test_an_image_built_where_missing_has_a_lookalike_of_its_own():
    """HBase's image is built from Maven jars on a public Java base, not on a compose image: compose
    builds it where it is missing, and where no registry serves that base its lookalike is the image."""
    for key, spec in ENGINES.items():
        service = SERVICES[spec.service]
        if "build" in service and service.get("pull_policy") == "missing":
            assert spec.lookalike and service["image"] in tags_of(spec.lookalike), key


@pytest.mark.parametrize(
    "key",
    sorted(k for k, e in ENGINES.items() if SERVICES[e.service].get("pull_policy") == "build"),
)
def test_a_built_image_comes_from_a_compose_image_and_is_built_not_pulled(key, monkeypatch):
    """Its base is a compose image (so a lookalike stands in for it), it is built on the host network,
    tagged as the service's image, and compose builds it on every `up` rather than pulling it."""
    service = SERVICES[ENGINES[key].service]
    assert built_from(service) in {s["image"] for s in SERVICES.values() if "build" not in s}
    assert service["build"].get("network") == "host" and service.get("pull_policy") == "build"
    calls = []

    class Images:
        def build(self, **options):
            calls.append(options)

    class Client:
        images = Images()

    import docker

    monkeypatch.setattr(docker, "from_env", lambda *a, **k: Client())
    monkeypatch.setattr(containers, "_built", set())
    assert containers.image_of(key) == service["image"]
    containers.image_of(key)  # once per session
    assert len(calls) == 1
    assert calls[0]["tag"] == service["image"] and calls[0]["network_mode"] == "host"
    assert Path(calls[0]["path"]) == ROOT / service["build"]["context"]


def test_postgres_secure_is_configured_alike_in_compose_and_locally():
    """The compose command's `-c` options are the local server's; both read the one pg_hba.conf."""
    from servers.local.postgres_secure import HBA_FILE, SETTINGS

    command = SERVICES["postgres_secure"]["command"]
    options = dict(
        value.split("=", 1) for flag, value in zip(command, command[1:], strict=False) if flag == "-c"
    )
    assert options == SETTINGS
    dockerfile = (HBA_FILE.parent / "Dockerfile").read_text()
    assert f"COPY {HBA_FILE.name} " in dockerfile
    rules = [line.split() for line in HBA_FILE.read_text().splitlines() if line and not line.startswith("#")]
    assert rules == [
        ["local", "all", "all", "trust"],
        ["hostssl", "all", "all", "all", "scram-sha-256"],
        ["hostnossl", "all", "all", "all", "reject"],
    ]


def test_lookalike_scripts_are_executable():
    for script in LOOKALIKES.glob("*/*"):
        if script.name != "Dockerfile" and script.read_text().startswith("#!"):
            assert script.stat().st_mode & 0o111, f"{script} must be executable (git keeps the mode)"


def test_upstreams_are_what_compose_waits_for():
    for key, spec in ENGINES.items():
        depends = set(SERVICES[spec.service].get("depends_on") or {})
        expected = {ENGINES[spec.upstream].service} if spec.upstream else set()
        assert depends == expected, f"{key}: depends_on {depends} but the registry says {expected}"


def _compose_credentials(key: str) -> dict[str, str]:
    """What the compose service sets, in the terms of the registry's address and variables."""
    env = {
        name: str(value) for name, value in (SERVICES[ENGINES[key].service].get("environment") or {}).items()
    }
    pairs = {
        "POSTGRES_USER": "user",
        "POSTGRES_PASSWORD": "password",
        "POSTGRES_DB": "database",
        "MYSQL_USER": "user",
        "MYSQL_PASSWORD": "password",
        "MYSQL_DATABASE": "database",
        "COUCHDB_USER": "user",
        "COUCHDB_PASSWORD": "password",
        "DB_USER": "user",
        "DB_PASSWORD": "password",
        "DB_NAME": "database",
        "PGUSER": "user",
        "PGPASSWORD": "password",
        "DOCKER_INFLUXDB_INIT_ADMIN_TOKEN": "INFLUX_TOKEN",
        "DOCKER_INFLUXDB_INIT_ORG": "INFLUX_ORG",
        "DOCKER_INFLUXDB_INIT_BUCKET": "INFLUX_BUCKET",
        "MSSQL_SA_PASSWORD": "password",  # the user is sa, the image's only login at first
        "APP_USER": "user",  # Oracle: the user gvenzl/oracle-free creates in FREEPDB1
        "APP_USER_PASSWORD": "password",
        "ARANGO_ROOT_PASSWORD": "password",
        "ORACLE_PASSWORD": "ORACLE_PASSWORD",  # SYS and SYSTEM's
    }
    found = {pairs[name]: value for name, value in env.items() if name in pairs}
    if "NEO4J_AUTH" in env:
        found["NEO4J_USER"], _, found["NEO4J_PASSWORD"] = env["NEO4J_AUTH"].partition("/")
    return found


def _registry_credentials(key: str) -> dict[str, str]:
    spec = ENGINES[key]
    found = dict(spec.extra)
    if "://" in spec.default:
        parts = urlsplit(spec.default)
        if parts.username:
            found["user"] = parts.username
        if parts.password:
            found["password"] = parts.password
        if parts.path.strip("/"):
            found["database"] = parts.path.strip("/")
    return found


@pytest.mark.parametrize("key", sorted(ENGINES))
def test_credentials_are_the_same_in_compose_and_settings(key):
    compose = _compose_credentials(key)
    registry = _registry_credentials(key)
    for name, value in compose.items():
        assert registry.get(name) == value, (
            f"{key}: compose sets {name}={value}, settings {registry.get(name)}"
        )


@pytest.mark.parametrize("key", sorted(ENGINES))
def test_the_test_container_honours_every_compose_key(key):
    service = SERVICES[ENGINES[key].service]
    assert set(service) <= set(containers.HONOURED), set(service) - set(containers.HONOURED)
    built = containers.ComposeContainer(key)  # builds the container's description; starts nothing
    options = built.docker_options()
    for name in ("entrypoint", "user", "mem_limit"):
        assert options.get(name) == service.get(name), f"{key}: {name} dropped"
    assert ("healthcheck" in options) == ("healthcheck" in service)
    if "healthcheck" in service:
        assert options["healthcheck"]["test"] == service["healthcheck"]["test"]
        assert options["healthcheck"]["interval"] > 0 and options["healthcheck"]["retries"] > 0
    assert set(built.ports) == {int(str(port).split(":")[-1]) for port in service["ports"]}


def test_an_unknown_compose_key_is_refused(monkeypatch):
    services = {**SERVICES, "redis": {**SERVICES["redis"], "cap_add": ["NET_ADMIN"]}}
    monkeypatch.setattr(containers, "compose_services", lambda: services)
    with pytest.raises(ValueError, match="cap_add"):
        containers.ComposeContainer("redis")


def test_each_prometheus_container_scrapes_a_port_of_its_own():
    first, second = containers.ComposeContainer("prometheus"), containers.ComposeContainer("prometheus")
    ports = {first.env_extra["PROMETHEUS_SCRAPE_PORT"], second.env_extra["PROMETHEUS_SCRAPE_PORT"]}
    assert len(ports) == 2, "two parallel sessions would share one scrape port"
    for built in (first, second):
        config = next(path for path, target, _ in built.mounts if target.endswith("prometheus.yml"))
        text = Path(config).read_text()
        assert f"host.docker.internal:{built.env_extra['PROMETHEUS_SCRAPE_PORT']}" in text


def test_a_container_that_fails_shows_both_output_streams():
    class Failed:
        def get_logs(self):
            return b"starting\n", b"FATAL: recovery aborted\n"

    tail = containers.log_tail(Failed())
    assert "starting" in tail and "FATAL: recovery aborted" in tail


def test_pymysql_can_use_caching_sha2_password():
    """MySQL 8.4's default authentication needs `cryptography` on first connect (PyMySQL[rsa])."""
    import importlib.util

    assert importlib.util.find_spec("cryptography") is not None

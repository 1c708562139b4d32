"""The compose services as testcontainers, for a test run on a machine with Docker.

Each container is built from its own service in docker-compose.yml (image tag, environment,
command, mounted config files), so the suite tests exactly what `make up` starts. Readiness
is a real query (servers.probes), not a log line or a sleep.
"""

from __future__ import annotations

import time

import yaml

from common.settings import ENGINES, ROOT
from servers.probes import probe

COMPOSE_FILE = ROOT / "docker-compose.yml"


def compose_services() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())["services"]


def image_of(engine: str) -> str:
    return compose_services()[engine]["image"]


def docker_available() -> bool:
    """About a millisecond when there is no Docker engine."""
    try:
        import docker

        docker.from_env(timeout=2).ping()
        return True
    except Exception:
        return False


def environment_for(engine: str, host: str, port: int) -> dict[str, str]:
    """What a lesson needs to reach the container: the compose defaults with its mapped port."""
    spec = ENGINES[engine]
    default = spec.default
    scheme, _, rest = default.rpartition("://")
    credentials, _, location = rest.rpartition("@")
    path = location.partition("/")[2] if "/" in location else ""
    address = f"{host}:{port}"
    if scheme:
        url = (
            f"{scheme}://"
            + (f"{credentials}@" if credentials else "")
            + address
            + (f"/{path}" if path else "")
        )
    else:
        url = address
    return {spec.variable: url, **dict(spec.extra)}


class ComposeContainer:
    """One compose service run by testcontainers on a random host port."""

    # A pooler or replica container reaches its upstream through the host's published port.
    UPSTREAM_VARIABLES = {
        "pgbouncer": ("DB_HOST", "DB_PORT"),
        "postgres_replica": ("PRIMARY_HOST", "PRIMARY_PORT"),
    }

    def __init__(self, engine: str, upstream_env: dict | None = None, timeout: float = 240.0):
        from testcontainers.core.container import DockerContainer

        service = compose_services()[engine]
        self.engine = engine
        self.timeout = timeout
        self.main_port = int(str(service["ports"][0]).split(":")[-1])
        self.container = DockerContainer(service["image"])
        for name, value in (service.get("environment") or {}).items():
            self.container.with_env(name, str(value))
        if service.get("command"):
            self.container.with_command(service["command"])
        for mount in service.get("volumes", []):
            if isinstance(mount, str) and mount.startswith("./"):
                source, target, *mode = mount.split(":")
                self.container.with_volume_mapping(str(ROOT / source), target, mode[0] if mode else "rw")
        if upstream_env and engine in self.UPSTREAM_VARIABLES:
            host_variable, port_variable = self.UPSTREAM_VARIABLES[engine]
            upstream = ENGINES[ENGINES[engine].upstream]
            self.container.with_env(host_variable, "host.docker.internal")
            self.container.with_env(port_variable, str(upstream.address(upstream_env[upstream.variable])[1]))
            self.container.with_kwargs(extra_hosts={"host.docker.internal": "host-gateway"})
        if service.get("extra_hosts"):
            self.container.with_kwargs(extra_hosts={"host.docker.internal": "host-gateway"})
        self.container.with_exposed_ports(self.main_port)

    def start(self) -> dict[str, str]:
        self.container.start()
        host = self.container.get_container_host_ip()
        port = int(self.container.get_exposed_port(self.main_port))
        env = environment_for(self.engine, host, port)
        deadline = time.monotonic() + self.timeout
        error: Exception | None = None
        while time.monotonic() < deadline:
            try:
                if probe(self.engine, env):
                    return env
            except Exception as problem:
                error = problem
            time.sleep(1)
        logs = self.container.get_logs()
        self.stop()
        raise RuntimeError(f"{self.engine} container not ready: {error!r}\n{logs[0][-3000:]!r}")

    def stop(self) -> None:
        self.container.stop()

"""The compose services as testcontainers, for a test run on a machine with Docker.

Each container is built from its own service in docker-compose.yml with every key the file
uses honoured (image, build, environment, command, entrypoint, user, ports, mounted files and
folders, healthcheck, memory limit, extra hosts, depends_on), so the suite tests what `make up`
starts; a service with `build:` has its image built from its context first, once per session.
A key this module does not know fails loudly instead of being dropped. Containers of one
session share a network on which each answers to its service name, as under compose, so a
replica finds `postgres` and a pooler its database the way compose wires them.

Ready means healthy: the service's own healthcheck passes (when it has one) and a real query
answers (servers.probes). A container that never gets there fails with the last lines of
both its output streams.

Differences from `make up`, on purpose: host ports are random (parallel runs never collide),
named volumes are left out (every session starts empty), and Prometheus scrapes a port chosen
for the session instead of the fixed 9464.
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
import time
from pathlib import Path

import yaml

from common.settings import ENGINES, ROOT
from servers.probes import probe

COMPOSE_FILE = ROOT / "docker-compose.yml"

# Every service key docker-compose.yml may use, and what a test container does with it.
HONOURED = {
    "image": "the container's image (the tag of the built image, for a service with `build`)",
    "build": "the image built from its context (docker SDK, classic builder, its network), once per session",
    "pull_policy": "`build`: the image is built, never pulled; `missing` (with `build`): built only "
    "where it is not there yet, as compose does then",
    "profiles": "not needed: the suite starts exactly the services its tests need",
    "environment": "container environment",
    "command": "container command",
    "entrypoint": "container entrypoint",
    "user": "container user",
    "ports": "each container port exposed on a random host port",
    "volumes": "bind-mounted files and folders mounted (a missing folder made first, as compose does); "
    "named volumes left out (a fresh, empty session)",
    "healthcheck": "the same healthcheck, waited on before the first probe",
    "mem_limit": "container memory limit",
    "extra_hosts": "the same host entries",
    "depends_on": "the registry's upstream engine, started first, on the session network",
}


def compose_services() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())["services"]


def image_of(engine: str) -> str:
    """The service's image; for a service with `build:`, built first (once per session), so it is there."""
    service = compose_services()[ENGINES[engine].service]
    if "build" in service:
        build_image(service)
    return service["image"]


_built: set[str] = set()
_build_lock = threading.Lock()


class ImageBuildFailed(RuntimeError):
    """`docker build` of a service's context failed; the message carries the end of its log."""


def build_image(service: dict) -> None:
    """Build a `build:` service's image and tag it as its `image:`, as `docker compose build` would.

    The classic builder through the Docker API (no buildx needed), on the network the service
    names (`network: host`: apt reaches its mirror where the engine has no route out). Layers are
    cached by the engine, so a rebuild of an unchanged context takes a second or two.
    """
    import docker

    tag, spec = service["image"], service["build"]
    spec = {"context": spec} if isinstance(spec, str) else spec
    unknown = set(spec) - {"context", "dockerfile", "network"}
    if unknown:
        raise ValueError(f"docker-compose.yml build keys the suite ignores: {sorted(unknown)}")
    with _build_lock:
        if tag in _built:
            return
        client = docker.from_env()
        if service.get("pull_policy") == "missing" and client.images.list(name=tag):
            _built.add(tag)  # as compose does: an image that is there is used, not rebuilt
            return
        try:
            client.images.build(
                path=str(ROOT / spec["context"]),
                dockerfile=spec.get("dockerfile", "Dockerfile"),
                tag=tag,
                network_mode=spec.get("network"),
                rm=True,
                forcerm=True,
            )
        except docker.errors.BuildError as error:
            lines = [str(item.get("stream") or item.get("error") or "").rstrip() for item in error.build_log]
            tail = "\n".join(line for line in lines if line)[-3000:]
            raise ImageBuildFailed(
                f"building {tag} from {spec['context']} failed: {error.msg}\n{tail}"
            ) from None
        _built.add(tag)


def docker_available() -> bool:
    """About a millisecond when there is no Docker engine."""
    try:
        import docker

        docker.from_env(timeout=2).ping()
        return True
    except Exception:
        return False


_network = None
_network_lock = threading.Lock()


def session_network():
    """One network for the session's containers, on which each answers to its service name."""
    global _network
    with _network_lock:
        if _network is None:
            from testcontainers.core.network import Network

            _network = Network().create()
        return _network


def remove_session_network() -> None:
    global _network
    with _network_lock:
        if _network is not None:
            with contextlib.suppress(Exception):
                _network.remove()
            _network = None


def environment_for(engine: str, host: str, port: int) -> dict[str, str]:
    """What a lesson needs to reach the container: the compose defaults with its mapped port."""
    spec = ENGINES[engine]
    scheme, _, rest = spec.default.rpartition("://")
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


def _nanoseconds(duration: str) -> int:
    """A compose duration ("2s", "500ms", "1m") in the nanoseconds the Docker API takes."""
    units = {"ms": 10**6, "s": 10**9, "m": 60 * 10**9}
    for unit in ("ms", "s", "m"):
        if duration.endswith(unit):
            return int(float(duration[: -len(unit)]) * units[unit])
    return int(float(duration) * 10**9)


def healthcheck_of(service: dict) -> dict | None:
    check = service.get("healthcheck")
    if not check:
        return None
    return {
        "test": check["test"],
        "interval": _nanoseconds(check.get("interval", "30s")),
        "timeout": _nanoseconds(check.get("timeout", "30s")),
        "retries": int(check.get("retries", 3)),
    }


def log_tail(container, lines: int = 30) -> str:
    """The last lines of a container's stdout and stderr, for a failure message."""
    try:
        stdout, stderr = container.get_logs()
    except Exception as error:
        return f"(no logs: {error!r})"
    parts = []
    for name, data in (("stdout", stdout), ("stderr", stderr)):
        text = "\n".join((data or b"").decode(errors="replace").splitlines()[-lines:])
        parts.append(f"--- {name} ---\n{text or '(empty)'}")
    return "\n".join(parts)


class ContainerNotReady(RuntimeError):
    """The container exited or never became healthy; the message carries its log tails."""


class ComposeContainer:
    """One compose service run by testcontainers on random host ports."""

    def __init__(self, engine: str, network=None, timeout: float = 300.0):
        """Reads the service; needs no Docker engine until start()."""
        self.engine = engine
        self.network = network
        self.timeout = timeout
        self.service = compose_services()[ENGINES[engine].service]
        unknown = set(self.service) - set(HONOURED)
        if unknown:
            raise ValueError(
                f"docker-compose.yml service {engine!r} uses keys the suite ignores: {sorted(unknown)}"
            )
        if self.service.get("pull_policy", "build") not in ("build", "missing"):
            raise ValueError(
                f"docker-compose.yml service {engine!r}: only `pull_policy: build` or `missing` is honoured"
            )
        self.env_extra: dict[str, str] = {}
        self.ports = [int(str(port).split(":")[-1]) for port in self.service["ports"]]
        self.mounts = self._mounts()
        self.container = None

    def _build(self):
        from testcontainers.core.container import DockerContainer

        container = DockerContainer(self.service["image"])
        for name, value in (self.service.get("environment") or {}).items():
            container.with_env(name, str(value))
        if self.service.get("command"):
            container.with_command(self.service["command"])
        container.with_exposed_ports(*self.ports)
        for source, target, mode in self.mounts:
            if not Path(source).exists():
                # A folder the container fills (the certificates it makes): made by this user, as
                # compose makes a missing bind source (the files services mount are in the repository).
                Path(source).mkdir(parents=True, exist_ok=True)
            container.with_volume_mapping(source, target, mode)
        if self.network is not None:
            container.with_network(self.network).with_network_aliases(ENGINES[self.engine].service)
        return container.with_kwargs(**self.docker_options())

    def docker_options(self) -> dict:
        """The service's keys that the Docker API takes as they are."""
        options: dict = {}
        for key in ("entrypoint", "user", "mem_limit"):
            if key in self.service:
                options[key] = self.service[key]
        healthcheck = healthcheck_of(self.service)
        if healthcheck:
            options["healthcheck"] = healthcheck
        if self.service.get("extra_hosts"):
            options["extra_hosts"] = dict(item.split(":", 1) for item in self.service["extra_hosts"])
        return options

    def _mounts(self) -> list[tuple[str, str, str]]:
        mounts = []
        for mount in self.service.get("volumes", []):
            source, target, *mode = str(mount).split(":")
            if not source.startswith("./"):
                continue  # a named volume: left out, each session starts empty
            path = str(ROOT / source)
            if self.engine == "prometheus" and target == "/etc/prometheus/prometheus.yml":
                path = self._scrape_config(ROOT / source)
            mounts.append((path, target, mode[0] if mode else "rw"))
        return mounts

    def _scrape_config(self, config: Path) -> str:
        """prometheus.yml with a scrape port of this session's own, so parallel runs never collide."""
        from servers.local.base import free_port

        port = free_port()  # below the ephemeral range: no connection takes it before a lesson binds it
        self.env_extra["PROMETHEUS_SCRAPE_PORT"] = str(port)
        text = config.read_text().replace("host.docker.internal:9464", f"host.docker.internal:{port}")
        copy = Path(tempfile.mkdtemp(prefix="prometheus-")) / "prometheus.yml"
        copy.write_text(text)
        copy.parent.chmod(0o755)
        copy.chmod(0o644)
        return str(copy)

    def start(self) -> dict[str, str]:
        if "build" in self.service:
            build_image(self.service)
        self.container = self._build()
        self.container.start()
        host = self.container.get_container_host_ip()
        port = int(self.container.get_exposed_port(self.ports[0]))
        env = {**environment_for(self.engine, host, port), **self.env_extra}
        deadline = time.monotonic() + self.timeout
        error: Exception | None = None
        while time.monotonic() < deadline:
            state = self._state()
            if state.get("Status") == "exited":
                self._fail(f"exited with code {state.get('ExitCode')}")
            if state.get("Health", {}).get("Status", "healthy") == "healthy":
                try:
                    if probe(self.engine, env):
                        return env
                except Exception as problem:
                    error = problem
            time.sleep(1)
        health = self._state().get("Health", {}).get("Status", "no healthcheck")
        self._fail(f"not ready after {self.timeout:.0f} s (health: {health}; last probe: {error!r})")

    def _state(self) -> dict:
        wrapped = self.container.get_wrapped_container()
        wrapped.reload()
        return wrapped.attrs.get("State", {})

    def _fail(self, what: str):
        message = f"{self.engine} container ({self.service['image']}) {what}\n{log_tail(self.container)}"
        self.stop()
        raise ContainerNotReady(message)

    def stop(self) -> None:
        if self.container is not None:
            self.container.stop()

"""Where an engine comes from, tried in order: its environment variable, Docker, a local binary.

`EXAMPLES_SERVERS=env|docker|local` forces one source; then a missing engine is an error,
not a skip, so a CI run can never pass by skipping. `provide()` starts what it has to and
returns the environment a lesson needs, the source, and how to stop it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from common.settings import ENGINES, servers_mode
from servers import containers
from servers.local import server_class


def mode() -> str:
    """EXAMPLES_SERVERS, checked where settings are checked (one clear line when it is wrong)."""
    return servers_mode()


@dataclass
class Provided:
    engine: str
    source: str  # "env", "docker" or "local"
    detail: str  # the image, the address, or the local server and its version
    env: dict[str, str]
    seconds_to_ready: float = 0.0
    real: bool = True  # False for a stand-in (MongoDB's local stand-in, MariaDB for MySQL)
    stop: Callable[[], None] = field(default=lambda: None, repr=False)

    @property
    def url(self) -> str:
        return self.env[ENGINES[self.engine].variable]


class Unavailable(Exception):
    """No source could provide the engine; the message says how to get it."""


def how_to_get(engine: str) -> str:
    variable = ENGINES[engine].variable
    if not ENGINES[engine].local:
        return f"set {variable} or start Docker (testcontainers); no local server can be had for it"
    return (
        f"set {variable}, start Docker (testcontainers), or install the local server "
        f"(`make local-install`, i.e. `sudo bash servers/install-local.sh {engine}`)"
    )


def provide(engine: str, workdir_root: Path | None = None, upstream_env: dict | None = None) -> Provided:
    """`upstream_env`: for an engine that serves another (a pooler, a replica), where that one is."""
    chosen = mode()
    spec = ENGINES[engine]
    if chosen in ("auto", "env") and spec.variable in os.environ:
        env = {spec.variable: os.environ[spec.variable]}
        env.update({name: os.environ.get(name, default) for name, default in spec.extra})
        return Provided(engine, "env", env[spec.variable], env)
    if chosen == "env":
        raise Unavailable(f"{spec.variable} is not set")
    if chosen in ("auto", "docker") and containers.docker_available():
        return _from_docker(engine, upstream_env)
    if chosen == "docker":
        raise Unavailable("no Docker engine answers")
    launcher = server_class(engine)
    if launcher is not None and launcher.installed():
        return _from_local(engine, launcher, workdir_root, upstream_env)
    missing = "no local server installed" if spec.local else "image only"
    raise Unavailable(f"{spec.display}: {missing}; {how_to_get(engine)}")


class NoImage(Unavailable):
    """The engine's image is not on this Docker engine and cannot be pulled."""


def _from_docker(engine: str, upstream_env: dict | None) -> Provided:
    """`upstream_env` is not needed here: the upstream answers to its service name on the network."""
    import time

    import docker

    image = containers.image_of(engine)
    images = docker.from_env().images
    try:
        found = images.get(image)
    except docker.errors.ImageNotFound:
        try:
            found = images.pull(image)
        except docker.errors.APIError as error:
            lookalike = (
                "no lookalike can be built for it"
                if not ENGINES[engine].lookalike
                else ("build its lookalike: python -m servers.lookalike build")
            )
            raise NoImage(
                f"image {image} is not here and cannot be pulled ({error.explanation}); {lookalike}"
            ) from None
    built_from = found.labels.get("examples.lookalike")  # set by servers/lookalike; None on real images
    container = containers.ComposeContainer(engine, containers.session_network())
    started = time.monotonic()
    env = container.start()
    detail = f"{image} (lookalike built from {built_from})" if built_from else image
    seconds = time.monotonic() - started
    return Provided(engine, "docker", detail, env, seconds, built_from is None, container.stop)


def _from_local(engine: str, launcher, workdir_root: Path | None, upstream_env: dict | None) -> Provided:
    from servers.local.base import free_port

    workdir = Path(tempfile.mkdtemp(prefix=f"{engine}-", dir=workdir_root))
    server = launcher(free_port(), workdir)
    if upstream_env:
        server.upstream_env = upstream_env
    seconds = server.start_and_wait(tied_to_parent=True)
    real = not getattr(server, "stand_in", None) and "stand-in" not in server.display
    return Provided(engine, "local", server.display, server.environment(), seconds, real, server.stop)

"""A node in a container: what `servers.throwaway.node()` yields where Docker serves and no local binary does.

The same surface the recovery lessons use on a local server (servers/local/base.py): `.port`,
`.workdir`, `.url()`, `.environment()`, `.stop()`, `.kill()`, `.start_and_wait()`, `.log_path`,
`.extra_settings`, `.tool([...])`, and for PostgreSQL `.data`. How it keeps that surface:

- Files: every node's folder is under one temporary root of this process, bind-mounted into every
  node's container at the same path. So the data folder is a host folder that outlives `stop()` and
  `kill()`, a lesson reads, copies and corrupts its files in place, and a path written into a setting
  (archive_command, restore_command, a pgBackRest config) means the same file inside and outside.
- Port: the server listens on the host port it is published on (127.0.0.1 only), so a URL is the
  same inside the node's network and on the host.
- `kill()`: SIGKILL to the container (the server is its PID 1: everything in it dies at once);
  `start_and_wait()` again: a new container on the same folder. `stop()` sends the local server's
  stop signal (PostgreSQL: SIGINT, a fast shutdown) and waits.
- `tool([...])`: the command in a container of the node's image (a tool of the server's own
  version), as the account that owns the data, in the node's network while it runs.

The image is the compose service's (servers/containers.py reads it, builds a `build:` one); for an
engine whose lessons need tools the official image lacks, an image built FROM it (pgBackRest:
servers/compose/postgres-tools/). Only engines listed in NODES have container nodes.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from common.settings import ENGINES, ROOT
from servers import containers
from servers.local.base import ServerStartError, port_open
from servers.probes import probe

LABEL = (
    "examples.node"  # on every container started here: `docker rm -f $(docker ps -aq -f label=examples.node)`
)
_root: Path | None = None


def shared_root() -> Path:
    """The folder every node folder of this process lives in, mounted into every container."""
    global _root
    if _root is None:
        _root = Path(tempfile.mkdtemp(prefix="examples-nodes-"))
        _root.chmod(0o755)  # the containers' accounts (postgres, redis) traverse it
        atexit.register(shutil.rmtree, _root, True)
    return _root


def tools_image(engine: str, context: str) -> str:
    """The image built from `context` (a Dockerfile FROM the compose image), built once per session."""
    base = containers.image_of(engine)
    dockerfile = ROOT / context / "Dockerfile"
    parent = next(line.split()[1] for line in dockerfile.read_text().splitlines() if line.startswith("FROM "))
    if parent != base:
        raise RuntimeError(f"{dockerfile} is built FROM {parent}, docker-compose.yml runs {base}: align them")
    tag = f"database-examples/{Path(context).name}:{base.rpartition(':')[2]}"
    containers.build_image({"image": tag, "build": {"context": f"./{context}", "network": "host"}})
    return tag


class ContainerNode:
    """One engine's server in a container of its compose image, on a host folder and a host port."""

    engine = ""
    tools: str | None = None  # a build context under the repository for an image with the lessons' tools
    owner = "root"  # the image's account that owns the data (tools run as it)
    start_timeout = 120.0
    options = frozenset({"settings"})  # the launcher options a container node honours

    def __init__(self, port: int, workdir: Path, settings: dict[str, str] | None = None):
        from servers.local import server_class

        self.port = port
        self.workdir = Path(workdir)
        self.extra_settings = dict(settings or {})
        self.compose = containers.ComposeContainer(self.engine)  # the service, its keys checked
        self.stop_signal = server_class(self.engine).stop_signal
        self.container = None
        self._image: str | None = None
        self._logs = b""  # what containers of this node that are gone wrote

    @property
    def image(self) -> str:
        if self._image is None:
            self._image = (
                tools_image(self.engine, self.tools) if self.tools else containers.image_of(self.engine)
            )
        return self._image

    @property
    def display(self) -> str:
        return f"{ENGINES[self.engine].display} (container of {self.image})"

    # --- what an engine's subclass provides ---------------------------------------------------
    def command(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return {}

    # --- the LocalServer surface ------------------------------------------------------------------
    def environment(self) -> dict[str, str]:
        return containers.environment_for(self.engine, "127.0.0.1", self.port)

    def url(self) -> str:
        return self.environment()[ENGINES[self.engine].variable]

    def start(self, tied_to_parent: bool = False) -> None:
        """A new container on the node's folder (`tied_to_parent` has no meaning here: node() removes it)."""
        import docker

        self._forget()
        root = str(shared_root())
        service = self.compose.service
        options = {k: v for k, v in self.compose.docker_options().items() if k != "healthcheck"}
        try:
            self.container = docker.from_env().containers.run(
                self.image,
                self.command(),
                detach=True,
                environment={
                    **{k: str(v) for k, v in (service.get("environment") or {}).items()},
                    **self.env(),
                },
                ports={f"{self.port}/tcp": ("127.0.0.1", self.port)},
                volumes={
                    root: {"bind": root, "mode": "rw"},
                    **{
                        source: {"bind": target, "mode": mode} for source, target, mode in self.compose.mounts
                    },
                },
                working_dir=str(self.workdir),
                labels={LABEL: str(os.getpid())},
                **({**options, "user": self._user()} if os.geteuid() else options),
            )
        except docker.errors.ImageNotFound as missing:
            from servers.throwaway import NoThrowaway

            raise NoThrowaway(
                f"{missing.explanation}: build the lookalikes (`python -m servers.lookalike build`)"
            ) from None

    def wait_ready(self) -> float:
        started = time.monotonic()
        last_error: Exception | None = None
        while time.monotonic() < started + self.start_timeout:
            self.container.reload()
            if self.container.status in ("exited", "dead"):
                code = self.container.attrs["State"]["ExitCode"]
                raise ServerStartError(self._failure(f"exited with code {code}"))
            try:
                if probe(self.engine, self.environment()):
                    return time.monotonic() - started
            except Exception as error:  # not yet: refused, the init phase's restart, recovery
                last_error = error
            time.sleep(0.2)
        raise ServerStartError(self._failure(f"not ready after {self.start_timeout:.0f} s ({last_error!r})"))

    def start_and_wait(self, tied_to_parent: bool = False) -> float:
        self.start(tied_to_parent)
        try:
            return self.wait_ready()
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = 30.0) -> None:
        """The local server's stop signal (PostgreSQL: a fast shutdown), SIGKILL after `timeout`."""
        if self.container is None:
            return
        with contextlib.suppress(Exception):  # already exited
            self.container.kill(signal=signal.Signals(self.stop_signal).name)
        with contextlib.suppress(Exception):
            self.container.wait(timeout=timeout)
        self.kill()

    def kill(self) -> None:
        """SIGKILL to the container: no shutdown, no flush, as a crash. Its folder stays."""
        if self.container is None:
            return
        with contextlib.suppress(Exception):  # already exited
            self.container.kill(signal="SIGKILL")
        with contextlib.suppress(Exception):
            self.container.wait(timeout=30)
        self._forget()
        deadline = time.monotonic() + 10
        while port_open(self.port) and time.monotonic() < deadline:
            time.sleep(0.05)

    @property
    def log_path(self) -> Path:
        """The server's output, every container of this node so far (written out when read)."""
        path = self.workdir / "server.log"
        current = b""
        if self.container is not None:
            with contextlib.suppress(Exception):
                current = self.container.logs(stdout=True, stderr=True)
        path.write_bytes(self._logs + current)
        return path

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def tool(
        self, argv: list, check: bool = False, timeout: float = 600.0, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess:
        """`argv` in a container of the node's image, as the data's owner, in the node's network
        while it runs (a tool reaches the server at its URL or its socket in the folder)."""
        import docker

        argv = [str(arg) for arg in argv]
        network = f"container:{self.container.id}" if self._running() else "none"
        root = str(shared_root())
        tool = docker.from_env().containers.create(
            self.image,
            argv[1:],
            entrypoint=[argv[0]],
            user=self._user(),
            environment=env or {},
            volumes={root: {"bind": root, "mode": "rw"}},
            working_dir=str(self.workdir),
            network_mode=network,
            labels={LABEL: str(os.getpid())},
        )
        try:
            tool.start()
            try:
                code = tool.wait(timeout=timeout)["StatusCode"]
            except Exception:
                raise subprocess.TimeoutExpired(argv, timeout) from None
            out = tool.logs(stdout=True, stderr=False).decode(errors="replace")
            err = tool.logs(stdout=False, stderr=True).decode(errors="replace")
        finally:
            with contextlib.suppress(Exception):
                tool.remove(force=True)
        done = subprocess.CompletedProcess(argv, code, out, err)
        if check:
            done.check_returncode()
        return done

    # --- inside ---------------------------------------------------------------------------------------
    def _user(self) -> str:
        """As root here, the image's own account; as anyone else, that person (files stay theirs)."""
        return self.owner if os.geteuid() == 0 else f"{os.getuid()}:{os.getgid()}"

    def _running(self) -> bool:
        if self.container is None:
            return False
        with contextlib.suppress(Exception):
            self.container.reload()
            return self.container.status == "running"
        return False

    def _forget(self) -> None:
        """Keep a container's output, then remove it."""
        if self.container is None:
            return
        with contextlib.suppress(Exception):
            self._logs += self.container.logs(stdout=True, stderr=True)
        with contextlib.suppress(Exception):
            self.container.remove(force=True)
        self.container = None

    def _failure(self, what: str) -> str:
        return f"{self.display} on port {self.port} {what}; log {self.log_path}:\n{self.log_tail()}"


class PostgresNode(ContainerNode):
    """The compose PostgreSQL (17) with pgBackRest; PGDATA is the node's `data` folder."""

    engine = "postgres"
    tools = "servers/compose/postgres-tools"
    owner = "postgres"

    @property
    def data(self) -> Path:
        return self.workdir / "data"

    def env(self) -> dict[str, str]:
        # PGPORT: the server (and the entrypoint's own psql) on the published port.
        return {"PGDATA": str(self.data), "PGPORT": str(self.port)}

    def command(self) -> list[str]:
        # The entrypoint's init scripts use the image's socket folder; tools may use the node's.
        settings = {"unix_socket_directories": f"/var/run/postgresql,{self.workdir}", **self.extra_settings}
        return [
            *self.compose.service["command"],
            *(w for k, v in settings.items() for w in ("-c", f"{k}={v}")),
        ]


class RedisNode(ContainerNode):
    """The compose Redis; `dir` is the node's folder (dump.rdb, appendonlydir/)."""

    engine = "redis"
    owner = "redis"
    start_timeout = 30.0

    def command(self) -> list[str]:
        settings = {"port": str(self.port), "dir": str(self.workdir), **self.extra_settings}
        return [*self.compose.service["command"], *(w for k, v in settings.items() for w in (f"--{k}", v))]


NODES: dict[str, type[ContainerNode]] = {"postgres": PostgresNode, "redis": RedisNode}


def make_node(engine: str, port: int, workdir: Path, **options) -> ContainerNode:
    """A container node of `engine`, not started; NoThrowaway when it has none or takes other options."""
    from servers.throwaway import NoThrowaway

    kind = NODES.get(engine)
    if kind is None:
        raise NoThrowaway(f"no container node for {ENGINES[engine].display}: install its local server")
    unknown = set(options) - kind.options
    if unknown:
        raise NoThrowaway(f"a {ENGINES[engine].display} container node takes no {', '.join(sorted(unknown))}")
    workdir.chmod(0o777)  # the image's accounts write here: the server's socket, a tool's backups
    return kind(port, workdir, **options)

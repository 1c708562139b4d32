"""A locally installed server binary, started in a folder of its own on a port of our choosing.

Every engine module in this package subclasses `LocalServer` and says four things: whether
its binaries are installed, which files to write before start, the command line of the
server process (foreground), and what "ready" means (a real query, never a sleep).
The base class runs the process, waits for it, stops it, and shows its log when start fails.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

CACHE = Path(os.environ.get("EXAMPLES_CACHE", Path.home() / ".cache" / "database-examples"))


class ServerStartError(RuntimeError):
    """The server process exited or never answered; the message carries its log tail."""


EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
# Ports for servers are drawn from here: below the kernel's ephemeral range, where every outbound
# connection takes its local port (one picked there can be taken by a connection in the seconds a
# JVM needs before it binds), and below the compose ports of the 20000s (Sentinel 26380-26382, the
# MongoDB replica set 27017-27020).
SERVER_PORTS = range(20000, 26000)
_choose = random.SystemRandom()  # not the `random` a lesson may seed: two processes must not agree
_handed_out: set[int] = set()


def free_port() -> int:
    """A port nothing listens on now, for a server to bind soon; never the same one twice in a process."""
    try:
        ephemeral_from = int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral_from = 32768  # Linux's default
    candidates = [port for port in SERVER_PORTS if port < ephemeral_from and port not in _handed_out]
    for port in _choose.sample(candidates, min(200, len(candidates))):
        with socket.socket() as sock:
            try:
                sock.bind(("0.0.0.0", port))  # fails if anything holds the port, on any address
            except OSError:
                continue
        _handed_out.add(port)
        return port
    with socket.socket() as sock:  # no room below the ephemeral range: one from it
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def chown_for(user: str, path: Path) -> None:
    """Give `user` the folder and make every parent traversable (for servers that refuse root)."""
    shutil.chown(path, user=user, group=user)
    for parent in [path, *path.parents]:
        if parent == Path("/"):
            break
        parent.chmod(parent.stat().st_mode | 0o011)


def _tied_to_parent(argv: list[str], user: str | None, tied: bool) -> list[str]:
    """The command, run as `user` (None: as we are) and, when `tied`, ended by SIGTERM when the
    starting thread exits.

    setpriv changes the user and sets the parent-death signal in one call (a second setpriv that
    changes the user would clear the signal), then becomes the server: same process, so signals
    reach it directly. runuser would fork, and it waits 2 s after passing a signal on. Doing any
    of it in Python between fork and exec (preexec_fn) can deadlock when other threads run, as
    the suite's do while it starts engines in parallel.
    """
    if not (user or tied) or not shutil.which("setpriv"):
        return ["runuser", "-u", user, "--", *argv] if user else argv
    options = ["--pdeathsig", "TERM"] if tied else []
    if user:
        options += [f"--reuid={user}", f"--regid={user}", "--init-groups"]
    return ["setpriv", *options, "--", *argv]


def _descendants(pid: int) -> list[int]:
    """Every process below `pid`, read from /proc (children before their own children)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found, queue = [], [pid]
    while queue:
        children = parents.get(queue.pop(0), [])
        found += children
        queue += children
    return found


def _memory_bytes(pid: int) -> int:
    """One process's proportional set size (PSS: a page it shares with n - 1 others counts 1/n), from
    /proc/PID/smaps_rollup; its resident set (VmRSS) where that cannot be read; 0 once it is gone."""
    for name, field in (("smaps_rollup", "Pss:"), ("status", "VmRSS:")):
        try:
            lines = Path(f"/proc/{pid}/{name}").read_text().splitlines()
        except OSError:
            continue
        return next((int(line.split()[1]) * 1024 for line in lines if line.startswith(field)), 0)
    return 0


def process_tree_bytes(pid: int) -> int:
    """The PSS of a process and every process below it."""
    return sum(map(_memory_bytes, [pid, *_descendants(pid)]))


def resident_bytes(servers) -> int | None:
    """The memory the servers hold together (LocalServer.resident_bytes); None when one cannot say: a
    node not running, or a container node (servers/container_node.py), whose processes are Docker's."""
    sizes = [server.resident_bytes() if isinstance(server, LocalServer) else None for server in servers]
    return None if not sizes or None in sizes else sum(sizes)


class LocalServer:
    engine: str = ""  # the key used everywhere: "postgres", "redis", ...
    display: str = ""  # how a person names it: "PostgreSQL"
    compose_port: int = 0  # the port compose publishes, used by `make local-up`
    start_timeout: float = 30.0
    run_as: str | None = None  # an OS account for servers that refuse to run as root
    stop_signal: int = signal.SIGTERM  # what `stop()` sends first

    def __init__(self, port: int, workdir: Path):
        self.port = port
        self.workdir = Path(workdir)
        self.process: subprocess.Popen | None = None

    # --- what an engine module provides -------------------------------------------------
    @classmethod
    def installed(cls) -> bool:
        raise NotImplementedError

    def prepare(self) -> None:
        """Write configuration into self.workdir before the first start (optional)."""

    def command(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return {}

    def url(self) -> str:
        raise NotImplementedError

    def ready(self) -> bool:
        """One real query with a short timeout: True once the server answers it.

        By default the same probe the suite uses for containers (servers/probes.py).
        """
        from servers.probes import probe

        return probe(self.engine, self.environment())

    def settings(self) -> dict[str, str]:
        """Variables besides the address that clients need (credentials, bucket names)."""
        return {}

    def environment(self) -> dict[str, str]:
        """What a lesson needs in its environment to reach this server."""
        from common.settings import ENGINES

        return {ENGINES[self.engine].variable: self.url(), **self.settings()}

    def after_ready(self) -> None:
        """Create users, databases or buckets once the server answers (optional)."""

    def extra_ports(self) -> list[int]:
        """Other ports the process listens on, waited on to close at stop (optional)."""
        return []

    # --- what the base class does ---------------------------------------------------------
    @property
    def log_path(self) -> Path:
        return self.workdir / "server.log"

    def start(self, tied_to_parent: bool = False) -> None:
        """Start the server process; `tied_to_parent` ends it when the starting thread dies.

        Tests tie their servers to the pytest process, so a run that is killed leaves none
        behind; `make local-up` does not, so its servers outlive the command.
        """
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.run_as and os.geteuid() == 0:
            chown_for(self.run_as, self.workdir)
        self.prepare()
        argv = _tied_to_parent(self.command(), self._owner(), tied_to_parent)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
                env={**os.environ, **self.env()},
                start_new_session=True,  # its own process group, so stop() reaches its children
            )
        (self.workdir / "server.pid").write_text(str(self.process.pid))

    def wait_ready(self) -> float:
        """Poll `ready()` until it answers; return the seconds it took."""
        started = time.monotonic()
        deadline = started + self.start_timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise ServerStartError(self._failure(f"exited with code {self.process.returncode}"))
            try:
                if self.ready():
                    self.after_ready()
                    return time.monotonic() - started
            except ServerStartError:  # the launcher knows it will never be ready
                raise
            except Exception as error:  # not ready yet: connection refused, auth not set up...
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
        pid = self.process.pid if self.process else self._pid_from_file()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, self.stop_signal)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._alive(pid):
            time.sleep(0.1)
        if self._alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        # A killed daemon can linger a moment: wait for its ports to close, not for its pid.
        for port in [self.port, *self.extra_ports()]:
            while port_open(port) and time.monotonic() < deadline + 10:
                time.sleep(0.1)
        (self.workdir / "server.pid").unlink(missing_ok=True)

    def _owner(self) -> str | None:
        return self.run_as if self.run_as and os.geteuid() == 0 else None

    def kill(self) -> None:
        """SIGKILL to the server and every process under it, as a crash: no shutdown, no flush.

        Deepest first, each reaped by its parent before the parent goes: a wrapper process (runuser,
        where setpriv is missing) does not pass a SIGKILL on, and an orphan that dies is left a
        zombie here (PID 1 does not reap), which a restarted PostgreSQL takes for a postmaster
        still running.
        """
        pid = self.process.pid if self.process else self._pid_from_file()
        if pid is None:
            return
        for victim in [*reversed(_descendants(pid)), pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
            if self.process is not None and victim == self.process.pid:
                self.process.wait()
            deadline = time.monotonic() + 5
            while Path(f"/proc/{victim}").exists() and time.monotonic() < deadline:
                time.sleep(0.01)
        for port in [self.port, *self.extra_ports()]:
            deadline = time.monotonic() + 10
            while port_open(port) and time.monotonic() < deadline:
                time.sleep(0.05)

    def resident_bytes(self) -> int | None:
        """The memory the node holds: the PSS of its process and every process below it, so a page
        shared among them (PostgreSQL's shared_buffers) counts once, and one shared with processes
        elsewhere (a binary's code) in part. Every process below it, not its process group: each
        PostgreSQL backend leads a group of its own. None when it is not running."""
        if self.process is None or self.process.poll() is not None:
            return None
        return process_tree_bytes(self.process.pid)

    def tool(
        self, argv: list, check: bool = False, timeout: float = 600.0, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess:
        """A tool of this node (pg_dump, pgbackrest, redis-cli, cp...) run as the owner of its files, text
        output; a container node (servers/container_node.py) runs the same call in a container of its image."""
        argv = [self.tool_path(str(argv[0])), *map(str, argv[1:])]
        owner = self._owner()
        argv = ["runuser", "-u", owner, "--", *argv] if owner else argv
        environment = {**os.environ, **(env or {})}
        return subprocess.run(
            argv, capture_output=True, text=True, check=check, timeout=timeout, env=environment
        )

    def tool_path(self, name: str) -> str:
        """Where a tool is: PATH, unless the engine's installation has its own (PostgreSQL's bin folder)."""
        return name

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _failure(self, what: str) -> str:
        return f"{self.display} on port {self.port} {what}; log {self.log_path}:\n{self.log_tail()}"

    def _alive(self, pid: int) -> bool:
        if self.process is not None and self.process.pid == pid:
            return self.process.poll() is None
        try:
            os.killpg(pid, 0)
            return True
        except (ProcessLookupError, PermissionError):
            return False

    def _pid_from_file(self) -> int | None:
        try:
            return int((self.workdir / "server.pid").read_text())
        except (OSError, ValueError):
            return None

"""A locally installed server binary, started in a folder of its own on a port of our choosing.

Every engine module in this package subclasses `LocalServer` and says four things: whether
its binaries are installed, which files to write before start, the command line of the
server process (foreground), and what "ready" means (a real query, never a sleep).
The base class runs the process, waits for it, stops it, and shows its log when start fails.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

CACHE = Path(os.environ.get("EXAMPLES_CACHE", Path.home() / ".cache" / "database-examples"))


class ServerStartError(RuntimeError):
    """The server process exited or never answered; the message carries its log tail."""


def free_port() -> int:
    with socket.socket() as sock:
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


def _tied_to_parent(argv: list[str]) -> list[str]:
    """The command, run so that Linux sends it SIGTERM when the starting thread exits.

    setpriv sets the parent-death signal and then becomes the server (same process). Doing
    it in Python between fork and exec (preexec_fn) can deadlock when other threads run, as
    the suite's do while it starts engines in parallel.
    """
    if shutil.which("setpriv"):
        return ["setpriv", "--pdeathsig", "TERM", "--", *argv]
    return argv


class LocalServer:
    engine: str = ""  # the key used everywhere: "postgres", "redis", ...
    display: str = ""  # how a person names it: "PostgreSQL"
    compose_port: int = 0  # the port compose publishes, used by `make local-up`
    start_timeout: float = 30.0
    run_as: str | None = None  # an OS account for servers that refuse to run as root

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
        argv = self.command()
        if self.run_as and os.geteuid() == 0:
            argv = ["runuser", "-u", self.run_as, "--", *argv]
        if tied_to_parent:
            argv = _tied_to_parent(argv)
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
            os.killpg(pid, signal.SIGTERM)
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

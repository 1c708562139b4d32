"""pg_auto_failover from the OS packages: a monitor and keepers, each a `pg_autoctl run` over its PostgreSQL

pg_autoctl supervises the PostgreSQL it manages: it starts it, restarts it when it dies, promotes,
demotes and rewinds it as the monitor decides. So the server process here is `pg_autoctl run` and
PostgreSQL runs below it, in its process group: `kill()` takes the whole node (keeper and PostgreSQL,
as a lost machine), `stop()` lets pg_autoctl shut its PostgreSQL down. The monitor is itself a
PostgreSQL (with the `pgautofailover` extension) run by `pg_autoctl run`; every keeper reports to it
and it assigns each node its next state.

The first keeper of a formation starts from an `initdb` like every local PostgreSQL here (the
`examples` superuser, scram-sha-256 over TCP); the next ones are copied from the primary by
pg_autoctl itself (pg_basebackup). pg_autoctl's own service roles connect without a password, on
127.0.0.1 only (`HBA`): the keepers to the monitor (`autoctl_node`), the monitor's health checks to
the nodes (`pgautofailover_monitor`), replication and pg_rewind (`pgautofailover_replicator`).
pg_autoctl sizes shared_buffers from the machine's memory (a quarter of it): `settings` go into
postgresql.auto.conf, read last, with a modest shared_buffers by default. Its configuration and
state files live under the node's folder (XDG_CONFIG_HOME, XDG_DATA_HOME, XDG_RUNTIME_DIR).

Debian packages: pg-auto-failover-cli (pg_autoctl) and postgresql-15-auto-failover (the extension).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg

from servers.local.base import ServerStartError, chown_for, free_port
from servers.local.postgres import DATABASE, USER, PostgresServer, bin_dir

MONITOR_DATABASE, MONITOR_USER = "pg_auto_failover", "autoctl_node"
HBA = [
    "local all all trust",
    f"host {MONITOR_DATABASE} {MONITOR_USER} 127.0.0.1/32 trust",
    "host all pgautofailover_monitor 127.0.0.1/32 trust",
    "host replication pgautofailover_replicator 127.0.0.1/32 trust",
    "host all pgautofailover_replicator 127.0.0.1/32 trust",
    "host all all 127.0.0.1/32 scram-sha-256",
    "host replication all 127.0.0.1/32 scram-sha-256",
]
MODEST = {"shared_buffers": "128MB", "effective_cache_size": "1GB", "maintenance_work_mem": "64MB"}
SETTLED = ("single", "primary", "secondary", "wait_primary")  # states a node rests in


class PgAutoctlServer(PostgresServer):
    engine = "postgres"  # a keeper's environment() is a POSTGRES_URL
    display = "pg_auto_failover"
    start_timeout = 60.0

    def __init__(
        self,
        port,
        workdir,
        role: str = "keeper",
        monitor: str | None = None,
        name: str | None = None,
        settings: dict[str, str] | None = None,
        hba: list[str] | None = None,
    ):
        super().__init__(port, workdir, settings={**MODEST, **(settings or {})}, hba=hba or HBA)
        if role not in ("monitor", "keeper") or (role == "keeper") != bool(monitor):
            raise ValueError("role is 'monitor', or 'keeper' with the monitor's URL")
        self.role, self.monitor, self.name = role, monitor, name or f"node_{port}"

    @classmethod
    def installed(cls) -> bool:
        found = bin_dir()
        control = (
            f"/usr/share/postgresql/{found.parent.name}/extension/pgautofailover.control" if found else ""
        )
        return bool(shutil.which("pg_autoctl")) and bool(glob.glob(control))

    def env(self) -> dict[str, str]:
        folders = {f"XDG_{kind}": str(self.workdir / kind.lower()) for kind in ("CONFIG_HOME", "DATA_HOME")}
        return {
            **folders,
            "XDG_RUNTIME_DIR": str(self.workdir / "run"),
            "PATH": f"{self.binaries}:/usr/sbin:/usr/bin:/sbin:/bin",  # pg_autoctl looks for pg_ctl there
            "PGUSER": USER,  # the superuser pg_autoctl connects to its PostgreSQL as
        }

    @property
    def config_file(self) -> Path:
        return self.workdir / "config_home" / "pg_autoctl" / str(self.data).lstrip("/") / "pg_autoctl.cfg"

    def prepare(self) -> None:
        run = self.workdir / "run"  # pg_autoctl falls back to /tmp/pg_autoctl when it is missing
        run.mkdir(mode=0o700, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(run, self.run_as, self.run_as)
        if self.config_file.exists():
            return  # created before: `pg_autoctl run` carries on from its state file
        if self.role == "monitor":
            super().prepare()
            self.autoctl(["create", "monitor", *self._common()])
        else:
            if not self.formation():
                super().prepare()  # the first node: a fresh cluster, registered as the primary
            options = ["--name", self.name, "--monitor", self.monitor, "--listen", "127.0.0.1"]
            self.autoctl(
                ["create", "postgres", *self._common(), *options, "--username", USER, "--dbname", DATABASE]
            )
        self.autoctl(
            ["config", "set", "--pgdata", str(self.data), "postgresql.listen_addresses", "127.0.0.1"]
        )
        with open(self.data / "postgresql.auto.conf", "a") as conf:  # read last: over pg_autoctl's own file
            conf.writelines(f"{name} = '{value}'\n" for name, value in self.extra_settings.items())

    def _common(self) -> list[str]:
        common = ["--pgdata", self.data, "--pgctl", self.binaries / "pg_ctl", "--pgport", self.port]
        return [*map(str, common), "--hostname", "127.0.0.1", "--skip-pg-hba", "--no-ssl"]

    def autoctl(self, args: list[str], timeout: float = 120.0) -> str:
        """`pg_autoctl ARGS` as the owner of the files, with this node's folders; its output."""
        argv = self._as_owner([shutil.which("pg_autoctl") or "pg_autoctl", *args])
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, env={**os.environ, **self.env()}
        )
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
            raise ServerStartError(f"pg_autoctl {' '.join(args[:2])} failed ({done.returncode}):\n{tail}")
        return done.stdout

    def command(self) -> list[str]:
        return [shutil.which("pg_autoctl") or "pg_autoctl", "run", "--pgdata", str(self.data)]

    def monitor_url(self) -> str:
        port = self.port if self.role == "monitor" else None
        return (
            self.monitor or f"postgresql://{MONITOR_USER}@127.0.0.1:{port}/{MONITOR_DATABASE}?sslmode=disable"
        )

    def url(self) -> str:
        return self.monitor_url() if self.role == "monitor" else super().url()

    def formation(self) -> dict[str, tuple[str, str]]:
        """Each node of the formation: name -> (reported state, assigned state), as the monitor has them."""
        query = (
            "SELECT nodename, reportedstate::text, goalstate::text FROM pgautofailover.node ORDER BY nodeid"
        )
        with psycopg.connect(self.monitor_url(), connect_timeout=2, autocommit=True) as conn:
            return {name: (reported, goal) for name, reported, goal in conn.execute(query)}

    def formation_uri(self) -> str:
        """The multi-host URL the monitor hands out: every node, target_session_attrs=read-write."""
        with psycopg.connect(self.monitor_url(), connect_timeout=2, autocommit=True) as conn:
            return conn.execute(
                "SELECT pgautofailover.formation_uri('default', 'default', 'disable')"
            ).fetchone()[0]

    def wait_for(self, states: dict[str, str], timeout_s: float = 60.0) -> float:
        """Until each named node has reported the state given (and been assigned it); the seconds it took."""
        started = time.monotonic()
        while True:
            with contextlib.suppress(psycopg.OperationalError):
                now = self.formation()
                if all(now.get(name) == (state, state) for name, state in states.items()):
                    return time.monotonic() - started
            if time.monotonic() - started > timeout_s:
                raise TimeoutError(f"pg_auto_failover: wanted {states}, the monitor has {self.formation()}")
            time.sleep(0.1)

    def ready(self) -> bool:
        if self.role == "monitor":
            return self.formation() is not None
        reported, goal = self.formation().get(self.name, ("", "-"))
        if reported != goal or reported not in SETTLED:
            return False
        with psycopg.connect(super().url(), connect_timeout=2) as conn:  # and its PostgreSQL answers
            return conn.execute("SELECT 1").fetchone() == (1,)

    def after_ready(self) -> None:
        """Nothing: pg_autoctl has set its PostgreSQL up (the lessons need no extension here)."""

    def kill(self) -> None:
        """SIGKILL to every process of the node at once, then as LocalServer.kill (reap, wait for the port).

        One by one, deepest first, does not work here: pg_autoctl restarts a service that dies, and the
        restarted keeper restarts PostgreSQL, so the killed node came back as a second primary.
        """
        group, semaphore = self.process.pid if self.process else self._pid_from_file(), self._semaphore()
        if group is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
        super().kill()
        self._gone(group, semaphore)

    def stop(self, timeout: float = 30.0) -> None:
        """As LocalServer.stop, then whatever of the node outlived `pg_autoctl run` (a service that
        was stopping PostgreSQL when its supervisor exited lingers otherwise, an orphan)."""
        group, semaphore = self.process.pid if self.process else self._pid_from_file(), self._semaphore()
        super().stop(timeout)
        if group is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
                self._gone(group, semaphore)  # only when something was left to kill

    def _semaphore(self) -> str | None:
        """The SysV semaphore pg_autoctl serialises its log with: line 5 of its pid file. It removes it
        when it exits, not when it is killed."""
        pid_file = self.workdir / "run" / "pg_autoctl" / str(self.data).lstrip("/") / "pg_autoctl.pid"
        with contextlib.suppress(OSError, IndexError):
            return pid_file.read_text().splitlines()[4].strip() or None
        return None

    @staticmethod
    def _gone(group: int | None, semaphore: str | None, timeout_s: float = 10.0) -> None:
        """Until no process of the group is left, zombies included (a restarted PostgreSQL takes a
        zombie postmaster's pid in postmaster.pid for a server still running); then its semaphore."""
        deadline = time.monotonic() + timeout_s
        while group is not None and time.monotonic() < deadline:
            members = []
            for stat in Path("/proc").glob("[0-9]*/stat"):
                with contextlib.suppress(OSError, IndexError, ValueError):
                    members += [stat] if int(stat.read_text().rsplit(")", 1)[1].split()[2]) == group else []
            if not members:
                break
            time.sleep(0.05)
        if semaphore and semaphore.isdigit():
            subprocess.run(["ipcrm", "-s", semaphore], capture_output=True)  # gone already: an error, ignored


@contextlib.contextmanager
def node(role: str = "keeper", start: bool = True, **options) -> Iterator[PgAutoctlServer]:
    """A pg_autoctl node on a free port in a temporary folder, stopped and removed at the end even on
    failure: `servers.throwaway.node()` for a launcher that is not an engine of the registry."""
    from servers.throwaway import NoThrowaway

    if not PgAutoctlServer.installed():
        raise NoThrowaway(
            "no local pg_auto_failover: apt-get install pg-auto-failover-cli postgresql-15-auto-failover"
        )
    workdir = Path(tempfile.mkdtemp(prefix=f"node-pg_autoctl-{role}-"))
    if os.geteuid() == 0:
        chown_for(PgAutoctlServer.run_as, workdir)
    server = PgAutoctlServer(free_port(), workdir, role=role, **options)
    try:
        if start:
            server.start_and_wait(tied_to_parent=True)
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)

"""PostgreSQL from the OS packages (Debian's postgresql and postgresql-contrib).

PostgreSQL refuses to run as root, so as root the server runs as the `postgres` account
the package creates. The cluster gets the compose credentials (user, password and database
`examples`) and pg_stat_statements; fsync is off because these servers hold only lesson data.
"""

from __future__ import annotations

import glob
import signal
import subprocess
from pathlib import Path

import psycopg
from psycopg import sql

from servers.local.base import LocalServer, ServerStartError

USER = PASSWORD = DATABASE = "examples"


def bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


class PostgresServer(LocalServer):
    engine = "postgres"
    display = "PostgreSQL"
    compose_port = 5432
    start_timeout = 30.0
    run_as = "postgres"
    stop_signal = signal.SIGINT  # fast shutdown: roll back open sessions rather than wait for them

    def __init__(
        self,
        port,
        workdir,
        settings: dict[str, str] | None = None,
        hba: list[str] | None = None,
        binaries: Path | None = None,
        replica_of: str | None = None,
    ):
        super().__init__(port, workdir)
        self.extra_settings = dict(settings or {})  # `-c name=value` on top of the defaults below
        self.hba = hba  # pg_hba.conf lines that replace initdb's, or None to keep them
        # Another installation's bin folder (initdb, postgres), e.g. a newer major version.
        self.binaries = Path(binaries) if binaries is not None else bin_dir()
        # A running primary's URL: the data folder starts as its copy, a streaming standby of it.
        self.replica_of = replica_of

    @classmethod
    def installed(cls) -> bool:
        return bin_dir() is not None

    @property
    def data(self) -> Path:
        return self.workdir / "data"

    def prepare(self) -> None:
        if self.replica_of and not (self.data / "PG_VERSION").exists():
            self.base_backup_of(self.replica_of)
        self.initdb()
        if self.hba is not None:
            (self.data / "pg_hba.conf").write_text("\n".join(self.hba) + "\n")

    def base_backup_of(self, primary_url: str) -> None:
        """Copy a running primary into the empty data folder as its standby: `pg_basebackup -R` writes
        standby.signal and primary_conninfo (the URL's host, port, user and password) into the copy,
        `-X stream` brings the WAL written meanwhile. The primary needs a `replication` line in its
        pg_hba.conf for the URL's user (initdb's defaults have one for 127.0.0.1)."""
        backup = [str(self.binaries / "pg_basebackup"), "-d", primary_url, "-D", str(self.data)]
        backup += ["-R", "-X", "stream", "-c", "fast"]
        done = subprocess.run(self._as_owner(backup), capture_output=True, text=True)
        if done.returncode != 0:
            raise ServerStartError(f"pg_basebackup into {self.data} failed: {done.stderr.strip()}")

    def initdb(self) -> None:
        if (self.data / "PG_VERSION").exists():
            return
        password_file = self.workdir / "password"
        password_file.write_text(PASSWORD)
        password_file.chmod(0o644)
        initdb = [str(self.binaries / "initdb"), "-D", str(self.data), "-U", USER, "-E", "UTF8"]
        initdb += [f"--pwfile={password_file}", "--auth-host=scram-sha-256", "--auth-local=trust"]
        initdb += ["--locale=C.UTF-8"]
        subprocess.run(self._as_owner(initdb), check=True, capture_output=True)
        password_file.unlink()

    def command(self) -> list[str]:
        settings = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.workdir),
            "shared_preload_libraries": "pg_stat_statements,auto_explain",
            # No fsync: these servers hold only lesson data. synchronous_commit stays on: with it
            # off, VACUUM cannot mark pages all-visible at once and Index Only Scans change.
            "fsync": "off",
            "full_page_writes": "off",
            "max_connections": "200",
            "wal_level": "logical",  # change data capture reads the WAL (polyglot/data_synchronization.py)
            "max_prepared_transactions": "20",  # two-phase commit and XA (polyglot/distributed_transactions.py)
            **self.extra_settings,
        }
        argv = [str(self.binaries / "postgres"), "-D", str(self.data), "-p", str(self.port)]
        for name, value in settings.items():
            argv += ["-c", f"{name}={value}"]
        return argv

    def url(self) -> str:
        return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{DATABASE}"

    def ready(self) -> bool:
        admin_url = f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/postgres"
        with psycopg.connect(admin_url, connect_timeout=2, autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]).fetchone() is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
        return True

    def after_ready(self) -> None:
        # In `public`, once, as the compose init script does: a lesson that created one in its own
        # schema would drop it for everyone with that schema. Lessons look them up.
        with psycopg.connect(self.url(), connect_timeout=2, autocommit=True) as conn:
            if conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                return  # a standby, or a restored node still replaying: read-only
            for name in ("pg_stat_statements", "pgcrypto"):  # where the build has them
                if conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = %s", [name]).fetchone():
                    statement = sql.SQL("CREATE EXTENSION IF NOT EXISTS {} WITH SCHEMA public")
                    conn.execute(statement.format(sql.Identifier(name)))

    def tool_path(self, name: str) -> str:  # recovery lessons: a tool of this installation's version
        return str(self.binaries / name) if (self.binaries / name).exists() else name

    def _as_owner(self, argv: list[str]) -> list[str]:
        import os

        return ["runuser", "-u", self.run_as, "--", *argv] if os.geteuid() == 0 else argv

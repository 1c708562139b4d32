"""PostgreSQL from the OS packages (Debian's postgresql and postgresql-contrib).

PostgreSQL refuses to run as root, so as root the server runs as the `postgres` account
the package creates. The cluster gets the compose credentials (user, password and database
`examples`) and pg_stat_statements; fsync is off because these servers hold only lesson data.
"""

from __future__ import annotations

import glob
import subprocess
from pathlib import Path

import psycopg
from psycopg import sql

from servers.local.base import LocalServer

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

    @classmethod
    def installed(cls) -> bool:
        return bin_dir() is not None

    @property
    def data(self) -> Path:
        return self.workdir / "data"

    def prepare(self) -> None:
        if (self.data / "PG_VERSION").exists():
            return
        password_file = self.workdir / "password"
        password_file.write_text(PASSWORD)
        password_file.chmod(0o644)
        initdb = [str(bin_dir() / "initdb"), "-D", str(self.data), "-U", USER, f"--pwfile={password_file}"]
        initdb += ["--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--locale=C.UTF-8"]
        subprocess.run(self._as_owner(initdb), check=True, capture_output=True)
        password_file.unlink()

    def command(self) -> list[str]:
        settings = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.workdir),
            "shared_preload_libraries": "pg_stat_statements",
            # No fsync: these servers hold only lesson data. synchronous_commit stays on: with it
            # off, VACUUM cannot mark pages all-visible at once and Index Only Scans change.
            "fsync": "off",
            "full_page_writes": "off",
            "max_connections": "200",
        }
        argv = [str(bin_dir() / "postgres"), "-D", str(self.data), "-p", str(self.port)]
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

    def _as_owner(self, argv: list[str]) -> list[str]:
        import os

        return ["runuser", "-u", self.run_as, "--", *argv] if os.geteuid() == 0 else argv

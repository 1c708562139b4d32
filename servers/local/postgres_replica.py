"""A streaming replica of the local PostgreSQL, made with pg_basebackup.

`pg_basebackup -R` copies the primary's data folder and writes the standby settings, so
the copy starts as a hot standby that replays the primary's WAL as it streams in.
The primary is the one in `upstream_env` (the suite's, or the compose port's for local-up).
"""

from __future__ import annotations

import os
import subprocess
from urllib.parse import urlsplit

import psycopg

from common.settings import ENGINES
from servers.local.postgres import PostgresServer, bin_dir


class PostgresReplicaServer(PostgresServer):
    engine = "postgres_replica"
    display = "PostgreSQL replica (pg_basebackup)"
    compose_port = 5433

    def __init__(self, port, workdir):
        super().__init__(port, workdir)
        self.upstream_env = {"POSTGRES_URL": ENGINES["postgres"].default}

    def prepare(self) -> None:
        if (self.data / "PG_VERSION").exists():
            return
        primary = urlsplit(self.upstream_env["POSTGRES_URL"])
        backup = [str(bin_dir() / "pg_basebackup"), "-h", primary.hostname, "-p", str(primary.port or 5432)]
        backup += ["-U", primary.username, "-D", str(self.data), "-R", "-X", "stream", "-c", "fast"]
        environment = {**os.environ, "PGPASSWORD": primary.password or ""}
        subprocess.run(self._as_owner(backup), check=True, capture_output=True, env=environment)

    def ready(self) -> bool:
        with psycopg.connect(self.url(), connect_timeout=2) as conn:
            return conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]

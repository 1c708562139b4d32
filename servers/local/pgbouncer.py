"""PgBouncer from the OS packages, pooling in transaction mode in front of the local PostgreSQL.

Like PostgreSQL it refuses to run as root, so it runs as `postgres`. Debian's PgBouncer is
1.18: it does not keep prepared statements across transactions, so psycopg clients connect
with `prepare_threshold=None`.
"""

from __future__ import annotations

import os
import shutil
from urllib.parse import urlsplit

import psycopg

from common.settings import ENGINES
from servers.local.base import LocalServer

CONFIG = """\
[databases]
{database} = host={host} port={port} dbname={database}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listen_port}
unix_socket_dir = {workdir}
auth_type = scram-sha-256
auth_file = {workdir}/userlist.txt
admin_users = {user}
stats_users = {user}
pool_mode = transaction
max_client_conn = 1000
default_pool_size = 20
ignore_startup_parameters = extra_float_digits,options
"""


class PgBouncerServer(LocalServer):
    engine = "pgbouncer"
    display = "PgBouncer (transaction pooling)"
    compose_port = 6432
    start_timeout = 15.0
    run_as = "postgres"

    def __init__(self, port, workdir):
        super().__init__(port, workdir)
        self.upstream_env = {"POSTGRES_URL": ENGINES["postgres"].default}

    @classmethod
    def installed(cls) -> bool:
        return shutil.which("pgbouncer") is not None

    @property
    def primary(self):
        return urlsplit(self.upstream_env["POSTGRES_URL"])

    def prepare(self) -> None:
        primary = self.primary
        database = primary.path.lstrip("/")
        config = CONFIG.format(
            database=database,
            host=primary.hostname,
            port=primary.port or 5432,
            listen_port=self.port,
            workdir=self.workdir,
            user=primary.username,
        )
        (self.workdir / "pgbouncer.ini").write_text(config)
        # A plain password lets PgBouncer do SCRAM both with its clients and with PostgreSQL.
        (self.workdir / "userlist.txt").write_text(f'"{primary.username}" "{primary.password}"\n')
        if os.geteuid() == 0:
            for name in ("pgbouncer.ini", "userlist.txt"):
                shutil.chown(self.workdir / name, user=self.run_as)

    def command(self) -> list[str]:
        return ["pgbouncer", str(self.workdir / "pgbouncer.ini")]

    def url(self) -> str:
        primary = self.primary
        return f"postgresql://{primary.username}:{primary.password}@127.0.0.1:{self.port}{primary.path}"

    def ready(self) -> bool:
        with psycopg.connect(self.url(), connect_timeout=2, prepare_threshold=None) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)

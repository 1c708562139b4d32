"""MySQL's local stand-in: MariaDB from the OS packages (Debian's mariadb-server).

MariaDB speaks the MySQL protocol and accepts the SQL our lessons use; where the two differ
(EXPLAIN formats, UUID functions) a lesson checks `SELECT VERSION()` and says which it ran on.
The server gets the compose credentials: user `examples` with password `examples`.
"""

from __future__ import annotations

import shutil
import subprocess

import pymysql

from servers.local.base import LocalServer, ServerStartError

USER = PASSWORD = DATABASE = "examples"


class MySQLServer(LocalServer):
    engine = "mysql"
    display = "MySQL (local stand-in: MariaDB)"
    compose_port = 3306
    start_timeout = 30.0

    def __init__(self, port, workdir, settings: dict[str, str] | None = None):
        super().__init__(port, workdir)
        # `--name=value` options after the defaults below, e.g. {"log-bin": "binlog"} (start-time only).
        self.extra_settings = dict(settings or {})

    @classmethod
    def installed(cls) -> bool:
        return shutil.which("mariadbd") is not None and shutil.which("mariadb-install-db") is not None

    @property
    def tmpdir(self):
        # Its own, never /tmp: a starting mariadbd deletes every `#sql*` file in its tmpdir, which
        # includes the temporary tables of another server bootstrapping beside it.
        return self.workdir / "tmp"

    def prepare(self) -> None:
        data = self.workdir / "data"
        self.tmpdir.mkdir(parents=True, exist_ok=True)
        if (data / "mysql").exists():
            return
        created = subprocess.run(
            [
                "mariadb-install-db",
                "--no-defaults",
                f"--datadir={data}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--user=root",
                f"--tmpdir={self.tmpdir}",  # passed on to the bootstrapping mariadbd
            ],
            capture_output=True,
            text=True,
        )
        if created.returncode != 0:  # its own words, not only an exit status
            tail = "\n".join((created.stdout + created.stderr).strip().splitlines()[-15:])
            raise ServerStartError(f"mariadb-install-db exited {created.returncode} for {data}:\n{tail}")

    def command(self) -> list[str]:
        return [
            "mariadbd",
            "--no-defaults",  # never read /etc/mysql
            f"--datadir={self.workdir / 'data'}",
            f"--socket={self.workdir / 'mysqld.sock'}",
            f"--pid-file={self.workdir / 'mysqld.pid'}",
            f"--tmpdir={self.tmpdir}",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            "--user=root",
            "--innodb-buffer-pool-size=256M",
            "--innodb-flush-log-at-trx-commit=2",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_unicode_ci",
            # On by default in MySQL 8.4, off in MariaDB: statement digests are what monitoring/ reads.
            "--performance-schema=ON",
            *(f"--{name}={value}" for name, value in self.extra_settings.items()),
        ]

    def url(self) -> str:
        return f"mysql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{DATABASE}"

    def ready(self) -> bool:
        conn = pymysql.connect(host="127.0.0.1", port=self.port, user="root", connect_timeout=2)
        with conn, conn.cursor() as cur:
            cur.execute("CREATE DATABASE IF NOT EXISTS examples")
            cur.execute("CREATE USER IF NOT EXISTS %s@'%%' IDENTIFIED BY %s", (USER, PASSWORD))
            # Lessons own a database each (their namespace), so the user may create them.
            cur.execute("GRANT ALL PRIVILEGES ON *.* TO examples@'%' WITH GRANT OPTION")
        return True

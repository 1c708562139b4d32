"""postgres_exporter from the OS packages (Debian's 0.11), exporting the local PostgreSQL's statistics.

It connects to the PostgreSQL in `upstream_env` (the suite's, or the compose port's under
`make local-up`) and serves pg_stat_activity, pg_stat_database, pg_stat_replication and the
server settings as Prometheus metrics on /metrics; the local Prometheus finds it by itself.
"""

from __future__ import annotations

import shutil

from common.settings import ENGINES
from servers.local.prometheus import AnnouncedToPrometheus


class PostgresExporterServer(AnnouncedToPrometheus):
    engine = "postgres_exporter"
    display = "postgres_exporter (Debian's 0.11)"
    compose_port = 9187
    start_timeout = 15.0

    def __init__(self, port, workdir):
        super().__init__(port, workdir)
        self.upstream_env = {"POSTGRES_URL": ENGINES["postgres"].default}

    @classmethod
    def installed(cls) -> bool:
        return shutil.which("prometheus-postgres-exporter") is not None

    def env(self) -> dict[str, str]:
        url = self.upstream_env["POSTGRES_URL"]
        separator = "&" if "?" in url else "?"
        return {"DATA_SOURCE_NAME": f"{url}{separator}sslmode=disable"}

    def command(self) -> list[str]:
        return [
            "prometheus-postgres-exporter",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=warn",
        ]

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

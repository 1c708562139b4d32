"""redis_exporter from the OS packages (Debian's 1.45), exporting the local Redis's INFO.

It connects to the Redis in `upstream_env` (the suite's, or the compose port's under
`make local-up`) and serves INFO and CONFIG values (used memory, maxmemory, clients, hits)
as Prometheus metrics on /metrics; the local Prometheus finds it by itself.
"""

from __future__ import annotations

import shutil

from common.settings import ENGINES
from servers.local.prometheus import AnnouncedToPrometheus


class RedisExporterServer(AnnouncedToPrometheus):
    engine = "redis_exporter"
    display = "redis_exporter (Debian's 1.45)"
    compose_port = 9121
    start_timeout = 15.0

    def __init__(self, port, workdir):
        super().__init__(port, workdir)
        self.upstream_env = {"REDIS_URL": ENGINES["redis"].default}

    @classmethod
    def installed(cls) -> bool:
        return shutil.which("prometheus-redis-exporter") is not None

    def env(self) -> dict[str, str]:
        return {"REDIS_ADDR": self.upstream_env["REDIS_URL"]}

    def command(self) -> list[str]:
        return [
            "prometheus-redis-exporter",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log-format=txt",
        ]

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

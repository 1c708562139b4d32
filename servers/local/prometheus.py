"""Prometheus from the OS packages, scraping itself and the lessons' workload port every second.

A lesson that instruments Python code serves its metrics on PROMETHEUS_SCRAPE_PORT; this
server scrapes 127.0.0.1 on that port. Samples appear a few seconds after start: poll.
"""

from __future__ import annotations

import shutil

from servers.local.base import LocalServer, free_port

SCRAPE_CONFIG = """\
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ["127.0.0.1:{own_port}"]
  - job_name: lessons
    static_configs:
      - targets: ["127.0.0.1:{scrape_port}"]
"""


class PrometheusServer(LocalServer):
    engine = "prometheus"
    display = "Prometheus"
    compose_port = 9090
    start_timeout = 20.0
    compose_scrape_port = 9464

    def __init__(self, port, workdir):
        super().__init__(port, workdir)
        self.scrape_port = self.compose_scrape_port if port == self.compose_port else free_port()

    @classmethod
    def installed(cls) -> bool:
        return shutil.which("prometheus") is not None

    def prepare(self) -> None:
        config = SCRAPE_CONFIG.format(own_port=self.port, scrape_port=self.scrape_port)
        (self.workdir / "prometheus.yml").write_text(config)

    def command(self) -> list[str]:
        return [
            "prometheus",
            f"--config.file={self.workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--web.enable-lifecycle",
            "--web.enable-admin-api",
        ]

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def settings(self) -> dict[str, str]:
        return {"PROMETHEUS_SCRAPE_PORT": str(self.scrape_port)}

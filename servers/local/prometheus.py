"""Prometheus from the OS packages: scrapes itself, the lessons' port and the exporters every second.

A lesson that instruments Python code serves its metrics on PROMETHEUS_SCRAPE_PORT; this
server scrapes 127.0.0.1 on that port. Samples appear a few seconds after start: poll. The port
comes from free_port(), below the kernel's ephemeral range, so no outbound connection takes it in
the minutes before the lesson binds it.

It evaluates the alert rules of monitoring/alerts/rules.yml (the file compose mounts) every
second and sends firing alerts to Alertmanager. The exporters and Alertmanager run on ports
chosen when they start (free ports in the test suite, the compose ports under `make local-up`),
so they are not written into this configuration: each of them, once ready, writes its address
into a folder beside its own (`prometheus-targets/`), and Prometheus watches that folder
(file-based service discovery), picking up a new file at once (every 5 s at worst). Compose
reaches the same servers by their service names instead (servers/compose/prometheus.yml).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from common.settings import ROOT
from servers.local.base import LocalServer, free_port

RULES = ROOT / "monitoring" / "alerts" / "rules.yml"
# Engines this Prometheus scrapes when they run beside it: the job name is the engine's key.
SCRAPED = ("postgres_exporter", "redis_exporter")

SCRAPE_CONFIG = """\
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - "{rules}"
alerting:
  alertmanagers:
    - file_sd_configs:
        - files: ["{targets}/alertmanager-*.json"]
          refresh_interval: 5s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ["127.0.0.1:{own_port}"]
  - job_name: lessons
    static_configs:
      - targets: ["127.0.0.1:{scrape_port}"]
"""

DISCOVERED_JOB = """\
  - job_name: {engine}
    file_sd_configs:
      - files: ["{targets}/{engine}-*.json"]
        refresh_interval: 5s
"""


def targets_folder(workdir: Path) -> Path:
    """Where servers started side by side (one session, or `make local-up`) announce themselves."""
    return Path(workdir).parent / "prometheus-targets"


class AnnouncedToPrometheus(LocalServer):
    """A server that the local Prometheus finds by itself (an exporter, Alertmanager).

    Once ready it writes `[{"targets": ["127.0.0.1:PORT"]}]` into the targets folder, named
    after its engine and port; at stop it removes the file, and Prometheus drops the target.
    """

    @property
    def target_file(self) -> Path:
        return targets_folder(self.workdir) / f"{self.engine}-{self.port}.json"

    def after_ready(self) -> None:
        self.target_file.parent.mkdir(parents=True, exist_ok=True)
        partial = self.target_file.with_name(f".{self.target_file.name}.partial")
        partial.write_text(json.dumps([{"targets": [f"127.0.0.1:{self.port}"]}]))
        os.replace(partial, self.target_file)  # Prometheus never reads half a file

    def stop(self, timeout: float = 30.0) -> None:
        self.target_file.unlink(missing_ok=True)
        super().stop(timeout)


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
        targets = targets_folder(self.workdir)
        targets.mkdir(parents=True, exist_ok=True)  # watched from the start, or new files go unseen
        config = SCRAPE_CONFIG.format(
            rules=RULES, targets=targets, own_port=self.port, scrape_port=self.scrape_port
        )
        config += "".join(DISCOVERED_JOB.format(engine=engine, targets=targets) for engine in SCRAPED)
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

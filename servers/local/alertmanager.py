"""Alertmanager from the OS packages (Debian's 0.25): receives the alerts the local Prometheus fires.

One node, no cluster (its gossip port is turned off), with the compose configuration
(servers/compose/alertmanager.yml); the local Prometheus finds it by itself.
"""

from __future__ import annotations

import shutil

from common.settings import ROOT
from servers.local.prometheus import AnnouncedToPrometheus

CONFIG = ROOT / "servers" / "compose" / "alertmanager.yml"


class AlertmanagerServer(AnnouncedToPrometheus):
    engine = "alertmanager"
    display = "Alertmanager (Debian's 0.25)"
    compose_port = 9093
    start_timeout = 15.0

    @classmethod
    def installed(cls) -> bool:
        return shutil.which("prometheus-alertmanager") is not None

    def command(self) -> list[str]:
        return [
            "prometheus-alertmanager",
            f"--config.file={CONFIG}",
            f"--storage.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--cluster.listen-address=",  # a single node: no gossip port to collide with
            "--log.level=warn",
        ]

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

"""Toxiproxy 2.12, Shopify's TCP proxy for fault injection, built from the Go module proxy.

`servers/install/toxiproxy.sh` builds `toxiproxy-server` into the cache. The server itself holds
no data: a lesson creates proxies over its HTTP API (`POST /proxies` with a listen and an upstream
address), points a client at the listen address, then adds toxics (latency, timeout, reset_peer,
bandwidth...) or takes the proxy down (`enabled: false`) to shape what passes. Ready means that API
answers `/version`. The compose image is ghcr.io/shopify/toxiproxy of the same version.
"""

from __future__ import annotations

import os

import requests

from servers.local.base import CACHE, LocalServer

VERSION = "2.12.0"
BINARY = CACHE / "toxiproxy" / "bin" / "toxiproxy-server"


class ToxiproxyServer(LocalServer):
    engine = "toxiproxy"
    display = "Toxiproxy"
    compose_port = 8474
    start_timeout = 15.0

    def __init__(self, port, workdir, seed: int = 1):
        super().__init__(port, workdir)
        # Seeds the randomness of toxics (jitter, toxicity), so a run draws the same values each time.
        self.seed = seed

    @classmethod
    def installed(cls) -> bool:
        return BINARY.is_file() and os.access(BINARY, os.X_OK)

    def command(self) -> list[str]:
        return [str(BINARY), "-host", "127.0.0.1", "-port", str(self.port), "-seed", str(self.seed)]

    def env(self) -> dict[str, str]:
        return {"LOG_LEVEL": "warn"}  # info logs every client connection it proxies

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ready(self) -> bool:
        answer = requests.get(f"{self.url()}/version", timeout=2)
        answer.raise_for_status()
        return True

"""InfluxDB 1.8.10 built from Go sources, with Flux and the /api/v2 compatibility endpoints on.

The compose file runs InfluxDB 2.7, whose build compiles Flux's Rust code (far too slow for CI).
InfluxDB 1.8 is pure Go and, with `flux-enabled`, answers the same `/api/v2/write` and
`/api/v2/query` calls that influxdb-client makes, so most lessons run unchanged against it once
they address the bucket as "database/retention-policy" and pass the org and token below.
"""

from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request
from pathlib import Path

from .base import CACHE, LocalServer, free_port

BINARY = CACHE / "influxdb" / "bin" / "influxd"
DATABASE = "examples"

CONFIG = """\
reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = "{workdir}/meta"

[data]
  dir = "{workdir}/data"
  wal-dir = "{workdir}/wal"
  query-log-enabled = false

[monitor]
  store-enabled = false

[http]
  bind-address = "127.0.0.1:{port}"
  flux-enabled = true
  log-enabled = false

[logging]
  suppress-logo = true
"""


class InfluxServer(LocalServer):
    engine = "influxdb"
    display = "InfluxDB (local: 1.8.10 with Flux)"
    compose_port = 8086
    start_timeout = 60.0  # Flux type-checks its standard library at start: about 5 s of CPU

    # How influxdb-client must address this server (2.x clients accept these values as they are).
    bucket = f"{DATABASE}/autogen"  # "database/retention-policy": a database plays the bucket
    org = "-"  # ignored by 1.x, but the client wants one
    token = "examples:examples"  # "user:password"; any value is accepted while auth is off
    missing_features = [
        "buckets API (/api/v2/buckets): create databases and retention policies with InfluxQL",
        "organizations, users and authorizations APIs",
        "delete API (/api/v2/delete): use InfluxQL DELETE or DROP SERIES",
        "tasks, checks, notifications, dashboards, setup and onboarding",
        "Flux to(): not implemented in 1.8; downsample with InfluxQL SELECT ... INTO or write back",
        "Flux packages newer than 0.65: influxdata/influxdb/schema (v1 has the same functions), array",
    ]

    def __init__(self, port: int, workdir: Path):
        super().__init__(port, workdir)
        self.rpc_port = 0

    @classmethod
    def installed(cls) -> bool:
        return BINARY.is_file()

    def prepare(self) -> None:
        """Keep every file in the workdir and move the RPC port (8088) so instances can coexist."""
        self.rpc_port = free_port()
        text = CONFIG.format(workdir=self.workdir, port=self.port, rpc_port=self.rpc_port)
        (self.workdir / "influxdb.conf").write_text(text)

    def command(self) -> list[str]:
        return [str(BINARY), "run", "-config", str(self.workdir / "influxdb.conf")]

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ready(self) -> bool:
        with urllib.request.urlopen(f"{self.url()}/ping", timeout=2) as response:
            return response.status == 204

    def settings(self) -> dict[str, str]:
        return {"INFLUX_TOKEN": self.token, "INFLUX_ORG": self.org, "INFLUX_BUCKET": self.bucket}

    def after_ready(self) -> None:
        """Create the database: until it exists, every write to bucket examples/autogen gets a 404."""
        self.influxql(f"CREATE DATABASE {DATABASE}")

    def influxql(self, statement: str) -> dict:
        """Run InfluxQL over the 1.x /query endpoint; raise on an error it reports with HTTP 200."""
        body = urllib.parse.urlencode({"q": statement}).encode()
        with urllib.request.urlopen(f"{self.url()}/query", data=body, timeout=10) as response:
            answer = json.loads(response.read())
        errors = [result["error"] for result in answer.get("results", []) if "error" in result]
        if errors:
            raise RuntimeError(f"InfluxQL {statement!r} failed: {'; '.join(errors)}")
        return answer

    def extra_ports(self) -> list[int]:
        """The RPC port, read back from the config when another object started the server."""
        if not self.rpc_port:
            conf = self.workdir / "influxdb.conf"
            text = conf.read_text() if conf.exists() else ""
            found = re.search(r'^bind-address = "127\.0\.0\.1:(\d+)"', text, re.MULTILINE)
            self.rpc_port = int(found.group(1)) if found else 0
        return [self.rpc_port] if self.rpc_port else []

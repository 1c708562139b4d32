"""Redis from the OS packages (Debian's redis-server), without persistence.

The same binary runs the three roles a high-availability lesson needs:
- a plain node or a replica, configured by `settings`: `{"appendonly": "yes"}`,
  `{"replicaof": "127.0.0.1 6380"}`;
- a cluster node: `settings={"cluster-enabled": "yes", ...}`. Its `nodes.conf` lands in the node's
  folder (`dir`), and its cluster bus gets a free port of its own (`cluster-port`, unless the settings
  name one): the default, port + 10000, does not exist for a free port above 55535;
- a Sentinel: `sentinel=["monitor lesson 127.0.0.1 6380 2", "down-after-milliseconds lesson 1000"]`,
  the directives of `sentinel.conf` without their leading word. The node runs
  `redis-server sentinel.conf --sentinel` (Debian's redis-sentinel is the same binary under another
  name), and Sentinel rewrites that file as it learns replicas, peers and failovers.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from servers.local.base import LocalServer, free_port


class RedisServer(LocalServer):
    engine = "redis"
    display = "Redis"
    compose_port = 6379
    start_timeout = 15.0

    def __init__(
        self, port, workdir, settings: dict[str, str] | None = None, sentinel: Sequence[str] | None = None
    ):
        super().__init__(port, workdir)
        # `--name value` after the defaults below, which they override: {"appendonly": "yes"}.
        self.extra_settings = dict(settings or {})
        if self.extra_settings.get("cluster-enabled") == "yes":
            self.extra_settings.setdefault("cluster-port", str(free_port()))
        # Sentinel directives (see the module doc); None: a data node.
        self.sentinel = None if sentinel is None else list(sentinel)

    @classmethod
    def installed(cls) -> bool:
        return shutil.which("redis-server") is not None

    @property
    def sentinel_conf(self) -> Path:
        return self.workdir / "sentinel.conf"

    def prepare(self) -> None:
        # Written once: a restarted Sentinel reads back what it rewrote (its id, epochs, peers).
        if self.sentinel is not None and not self.sentinel_conf.exists():
            self.sentinel_conf.write_text("".join(f"sentinel {line}\n" for line in self.sentinel))

    def command(self) -> list[str]:
        role = [] if self.sentinel is None else [str(self.sentinel_conf), "--sentinel"]
        return [
            "redis-server",
            *role,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.workdir),
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            *(word for name, value in self.extra_settings.items() for word in (f"--{name}", value)),
        ]  # fmt: skip

    def extra_ports(self) -> list[int]:
        bus = self.extra_settings.get("cluster-port")
        return [int(bus)] if bus else []

    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

"""Redis from the OS packages (Debian's redis-server), without persistence."""

from __future__ import annotations

import shutil

from servers.local.base import LocalServer


class RedisServer(LocalServer):
    engine = "redis"
    display = "Redis"
    compose_port = 6379
    start_timeout = 15.0

    @classmethod
    def installed(cls) -> bool:
        return shutil.which("redis-server") is not None

    def command(self) -> list[str]:
        return [
            "redis-server",
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.workdir),
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
        ]  # fmt: skip

    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

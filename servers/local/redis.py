"""Redis from the OS packages (Debian's redis-server), without persistence."""

from __future__ import annotations

import shutil

from servers.local.base import LocalServer


class RedisServer(LocalServer):
    engine = "redis"
    display = "Redis"
    compose_port = 6379
    start_timeout = 15.0

    def __init__(self, port, workdir, settings: dict[str, str] | None = None):
        super().__init__(port, workdir)
        # `--name value` after the defaults below, which they override: {"appendonly": "yes"}.
        self.extra_settings = dict(settings or {})

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
            *(word for name, value in self.extra_settings.items() for word in (f"--{name}", value)),
        ]  # fmt: skip

    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

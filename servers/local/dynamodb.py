"""A local DynamoDB endpoint: moto's server mode (PyPI `moto[server]`), in memory."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from servers.local.base import LocalServer


def moto_server() -> str | None:
    beside_python = Path(sys.executable).parent / "moto_server"
    return str(beside_python) if beside_python.exists() else shutil.which("moto_server")


class DynamoDBServer(LocalServer):
    engine = "dynamodb"
    display = "DynamoDB (local stand-in: moto)"
    compose_port = 8000
    start_timeout = 20.0

    @classmethod
    def installed(cls) -> bool:
        return moto_server() is not None

    def command(self) -> list[str]:
        return [moto_server(), "-H", "127.0.0.1", "-p", str(self.port)]

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

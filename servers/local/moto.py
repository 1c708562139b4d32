"""AWS APIs for lessons on services with no local server (Timestream, SimpleDB): moto's server mode.

The same moto (PyPI `moto[server]`) as the local DynamoDB, as a separate process on a port of its
own: the compose stack runs DynamoDB Local for DynamoDB, which serves no other AWS API, and the
`moto` service (image motoserver/moto) for the rest. moto keeps everything in memory, accepts any
credentials, and implements part of each API: what a lesson relies on it says, and checks.
"""

from __future__ import annotations

from servers.local.base import LocalServer
from servers.local.dynamodb import moto_server


class MotoServer(LocalServer):
    engine = "moto"
    display = "moto (AWS APIs: Timestream, SimpleDB)"
    compose_port = 5050  # 5000, moto's default, is taken by AirPlay on macOS
    start_timeout = 20.0

    @classmethod
    def installed(cls) -> bool:
        return moto_server() is not None

    def command(self) -> list[str]:
        return [moto_server(), "-H", "127.0.0.1", "-p", str(self.port)]

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

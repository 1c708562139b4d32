"""Cosmium 0.1.20, a Cosmos DB NoSQL API emulator written in Go, built from the Go module proxy.

The compose file runs Microsoft's Linux emulator (vnext), which has no package in any registry
reachable here. Cosmium answers the same REST API that azure-cosmos speaks, over HTTPS with a
self-signed certificate and the emulators' well-known key, so the NoSQL lessons run against it
once the client skips certificate checks and endpoint discovery (common.settings.cosmos_client_options
does both for a loopback address). `servers/install/cosmosdb.sh` builds the binary into the cache.
"""

from __future__ import annotations

import os

from common.settings import COSMOS_EMULATOR_KEY
from servers.local.base import CACHE, LocalServer

VERSION = "0.1.20"
BINARY = CACHE / "cosmosdb" / "bin" / "cosmium"


class CosmosDBServer(LocalServer):
    engine = "cosmosdb"
    display = f"Azure Cosmos DB (local stand-in: Cosmium {VERSION})"
    compose_port = 8081
    start_timeout = 20.0
    stand_in = True
    missing_features = [
        "request charges: no x-ms-request-charge header (no request units at all)",
        "session tokens: no x-ms-session-token header; one consistency level, nothing to relax",
        "partition scoping: a query's partition key header is ignored (the WHERE clause does the work)",
        "partition key ranges: the SDK's signed read of them is refused (read_feed_ranges fails)",
        "stored procedures, triggers, UDFs, change feed, TTL, throughput (offers), the MongoDB API",
        "binds every interface (no listen-address option): the port is free and the key public",
    ]

    @classmethod
    def installed(cls) -> bool:
        return BINARY.is_file() and os.access(BINARY, os.X_OK)

    def command(self) -> list[str]:
        # -Host is the address it advertises (clients keep to their own URL: no endpoint discovery).
        return [str(BINARY), "-Host", "127.0.0.1", "-Port", str(self.port), "-LogLevel", "error"]

    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/"

    def settings(self) -> dict[str, str]:
        return {"COSMOS_KEY": COSMOS_EMULATOR_KEY}

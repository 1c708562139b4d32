"""MongoDB for local runs: mongo-java-server, a MongoDB wire-protocol server written in Java.

Why a stand-in: no MongoDB server build can be installed on the machines the local suite runs
on. Of the two wire-compatible servers that can be, mongo-java-server passed far more of what
the lessons need than FerretDB 1.24 (see servers/probe_mongodb.py, which documents both).
It stores data with H2's MVStore in the server's folder. What it cannot do is listed in
`missing_features`; lessons that need those run only against a real MongoDB.
Installed by servers/install/mongodb.sh; the launcher is servers/java/mongodb/MongoLauncher.java.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from servers.local.base import CACHE, LocalServer, port_open

HOME = CACHE / "mongodb"


class MongoServer(LocalServer):
    engine = "mongodb"
    display = "MongoDB (local stand-in: mongo-java-server)"
    compose_port = 27017
    start_timeout = 60.0
    stand_in = "mongo-java-server 1.47.0"
    # From servers/probe_mongodb.py; "accepted" means the server takes the request and ignores it.
    missing_features = [
        "multi-document transactions (no sessions)",
        "$jsonSchema validators (accepted, not enforced)",
        "$jsonSchema query operator",
        "non-unique secondary indexes (listed, never built: queries scan, no index size)",
        "partial indexes (option stored, index covers every document)",
        "TTL expiry (index accepted, documents never expire)",
        "time-series collections (accepted, created as plain collections)",
        "text indexes and $text",
        "$dateTrunc",
        "$bsonSize",
        "$collStats stage",
        "explain",
        "collStats storageSize (always 0)",
        "$lookup with localField through an array of subdocuments (matches nothing)",
        "$lookup with both localField and pipeline",
        "positional projection field.$ (returns the first element)",
        "$set/$unset pipeline stages",
        "collMod and hello commands",
        "list_collections filter (ignored)",
    ]
    backend = "h2"  # on disk in the server's folder; "memory" forgets everything at stop

    @classmethod
    def installed(cls) -> bool:
        launcher = HOME / "classes" / "MongoLauncher.class"
        return launcher.is_file() and any((HOME / "lib").glob("mongo-java-server-core-*.jar"))

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    def command(self) -> list[str]:
        return [
            shutil.which("java") or "java",
            "-XX:+UseSerialGC",
            "-Xmx512m",
            "-XX:+ExitOnOutOfMemoryError",
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
            # Every refused command is answered to the client and was also logged with a stack trace.
            "-Dorg.slf4j.simpleLogger.log.de.bwaldvogel.mongo.wire.MongoWireProtocolHandler=off",
            "-cp",
            f"{HOME / 'classes'}:{HOME / 'lib'}/*",
            "MongoLauncher",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--backend",
            self.backend,
            "--data",
            str(self.data_dir),
        ]

    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def ready(self) -> bool:
        from pymongo import MongoClient

        if not port_open(self.port):  # pymongo would wait its whole timeout on a closed port
            return False
        client = MongoClient(self.url(), serverSelectionTimeoutMS=1000, connectTimeoutMS=1000)
        try:
            return client.admin.command("ping").get("ok") == 1
        finally:
            client.close()

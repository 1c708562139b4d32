"""Neo4j Community 5.26 (LTS) from Maven Central, embedded in a small launcher that opens Bolt.

No tarball can be downloaded here, but the Community jars are on Maven Central. The embedded
database started by `servers/java/neo4j/src/main/java/Neo4jLauncher.java` needs no log4j files,
no HTTP server and no neo4j-admin: one JVM that speaks Bolt with authentication on, the same
protocol and Cypher as the compose image. `servers/install/neo4j.sh` installs it.
"""

from __future__ import annotations

import os
from pathlib import Path

from servers.local.base import CACHE, LocalServer, port_open

HOME = CACHE / "neo4j"
DEFAULT_PASSWORD = "examples-pass"

# A small heap, the serial collector and the client compiler only (about 40% less CPU to
# start; long queries run slower, which lessons on small graphs do not notice), plus the
# module openings Netty and the page cache need on Java 17 (the Neo4j tarball passes them too).
# The install script records its class data sharing archive with the same GC, heap and compiler.
JVM_FLAGS = [
    "-Xms128m",
    "-Xmx768m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-XX:-UsePerfData",
    "-XX:-OmitStackTraceInFastThrow",
    "-XX:+DisableExplicitGC",
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "-Dio.netty.tryReflectionSetAccessible=true",
    "-Dlog4j2.disable.jmx=true",
    "-Djdk.nio.maxCachedBufferSize=1024",
]

# Bolt only, on loopback; no HTTP, no usage reports; small page cache; no preallocated logs.
SETTINGS = {
    "server.bolt.enabled": "true",
    "server.bolt.telemetry.enabled": "false",
    "server.http.enabled": "false",
    "server.https.enabled": "false",
    "dbms.security.auth_enabled": "true",
    "dbms.usage_report.enabled": "false",
    "server.memory.pagecache.size": "128m",
    "db.tx_log.preallocate": "false",
    "db.tx_log.rotation.size": "16m",
    # Bolt waits 5 s twice at shutdown for connections that are already gone.
    "internal.server.bolt.connection_shutdown_wait_time": "1s",
    "internal.server.bolt.thread_pool_shutdown_wait_time": "1s",
    "internal.dbms.bolt.netty_server_shutdown_quiet_period": "0",
    "internal.dbms.bolt.netty_server_shutdown_timeout": "2s",
}


class Neo4jServer(LocalServer):
    engine = "neo4j"
    display = "Neo4j"
    compose_port = 7687
    start_timeout = 120.0  # about 10 s on an idle machine, far more when the cores are shared
    user = "neo4j"

    def __init__(self, port: int, workdir: Path, password: str | None = None):
        super().__init__(port, workdir)
        self.password = password or os.environ.get("NEO4J_PASSWORD", DEFAULT_PASSWORD)

    @classmethod
    def installed(cls) -> bool:
        """The install script writes the classpath file last, so its presence means complete."""
        return (HOME / "classpath").is_file() and (HOME / "java").exists()

    @property
    def config_dir(self) -> Path:
        return self.workdir / "conf"

    def prepare(self) -> None:
        """Write neo4j.conf; the database itself (data/, logs/) lives in the workdir."""
        self.config_dir.mkdir(parents=True, exist_ok=True)
        address = f"127.0.0.1:{self.port}"
        settings = {
            **SETTINGS,
            "server.bolt.listen_address": address,
            "server.bolt.advertised_address": address,
        }
        lines = [f"{key}={value}" for key, value in settings.items()]
        (self.config_dir / "neo4j.conf").write_text("\n".join(lines) + "\n")

    def command(self) -> list[str]:
        classpath = (HOME / "classpath").read_text().strip()
        archive = HOME / "launcher.jsa"
        cds = [f"-XX:SharedArchiveFile={archive}", "-Xshare:auto"] if archive.is_file() else []
        # The process runs inside the workdir: pass absolute paths, whatever the caller gave.
        launch = ["Neo4jLauncher", str(self.workdir.resolve()), str(self.config_dir.resolve())]
        return [str(HOME / "java"), *JVM_FLAGS, *cds, "-cp", classpath, *launch]

    def env(self) -> dict[str, str]:
        return {"NEO4J_PASSWORD": self.password}

    def settings(self) -> dict[str, str]:
        return {"NEO4J_USER": self.user, "NEO4J_PASSWORD": self.password}

    def url(self) -> str:
        return f"bolt://127.0.0.1:{self.port}"

    def ready(self) -> bool:
        """A Cypher query over Bolt with the password: proves auth, Bolt and the database."""
        if not port_open(self.port):
            return False
        from neo4j import GraphDatabase  # imported late: only needed once a server runs

        auth = (self.user, self.password)
        timeouts = {"connection_timeout": 2, "connection_acquisition_timeout": 3}
        with (
            GraphDatabase.driver(self.url(), auth=auth, **timeouts) as driver,
            driver.session(database="neo4j") as session,  # one try, where execute_query retries
        ):
            return session.run("RETURN 1 AS one").single()["one"] == 1

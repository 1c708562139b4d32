"""JanusGraph 1.1 Server with the in-memory storage backend, from its jars on Maven Central.

`servers/install/janusgraph.sh` copies janusgraph-server, janusgraph-inmemory and their dependencies
(the versions JanusGraph's own pom pins) into the cache; this module starts
`org.janusgraph.graphdb.server.JanusGraphServer` on servers/java/janusgraph/janusgraph-server.yaml
with its address and file paths filled in. The graph lives in the server's heap (`inmemory`): it
is gone when the server stops, which suits lessons that reset their data first. Like the compose
service, it declares no schema automatically (`schema.default=none`).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from servers.local.base import CACHE, LocalServer

HOME = CACHE / "janusgraph"
CONFIG = Path(__file__).resolve().parents[1] / "java" / "janusgraph"

# A small heap, the serial collector and the quick compiler: the lesson's graph is small.
JVM_FLAGS = [
    "-Xms64m",
    "-Xmx384m",
    "-Xss512k",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-XX:-UsePerfData",
]
MAIN = "org.janusgraph.graphdb.server.JanusGraphServer"


def server_config(host: str, port: int, config_dir: Path) -> dict:
    """The YAML as a dict, with this server's address and the absolute paths of its two files."""
    config = yaml.safe_load((CONFIG / "janusgraph-server.yaml").read_text())
    config.update(host=host, port=port)
    config["graphs"] = {"graph": str(config_dir / "janusgraph.properties")}
    plugins = config["scriptEngines"]["gremlin-groovy"]["plugins"]
    plugins["org.apache.tinkerpop.gremlin.jsr223.ScriptFileGremlinPlugin"]["files"] = [
        str(config_dir / "init.groovy")
    ]
    return config


class JanusGraphServer(LocalServer):
    engine = "janusgraph"
    display = "JanusGraph (in-memory storage)"
    compose_port = 8183
    start_timeout = 120.0  # about 5 s alone; far more when other JVMs share the two cores

    @classmethod
    def installed(cls) -> bool:
        """The install script writes `installed` last, so its presence means complete."""
        return (HOME / "installed").is_file() and (HOME / "lib").is_dir() and (HOME / "java").exists()

    def prepare(self) -> None:
        config = server_config("127.0.0.1", self.port, CONFIG)
        (self.workdir / "janusgraph-server.yaml").write_text(yaml.safe_dump(config, sort_keys=False))

    def command(self) -> list[str]:
        return [
            str(HOME / "java"),
            *JVM_FLAGS,
            f"-Dlog4j2.configurationFile={CONFIG / 'log4j2.xml'}",
            "-cp",
            str(HOME / "lib" / "*"),
            MAIN,
            str((self.workdir / "janusgraph-server.yaml").resolve()),
        ]

    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gremlin"

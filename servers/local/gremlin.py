"""Apache TinkerPop Gremlin Server 3.7 with an in-memory TinkerGraph: the local stand-in for Neptune.

Amazon Neptune cannot run anywhere but AWS; its Gremlin API is TinkerPop's Gremlin Server protocol,
so TinkerPop's own server is the nearest thing that runs here. `servers/install/gremlin.sh` unpacks
the server's distribution from Maven Central into the cache; this module starts it with the same
configuration the compose service mounts (servers/compose/gremlin/: one TinkerGraph whose vertices
keep string ids, as Neptune's do, and an init script that binds `g`), changing only the address and
the paths. A small heap, the serial collector and the quick compiler: lessons are small.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from servers.local.base import CACHE, LocalServer

HOME = CACHE / "gremlin"
CONFIG = Path(__file__).resolve().parents[1] / "compose" / "gremlin"
MOUNTED = "/opt/examples"  # where the compose service mounts CONFIG; the YAML names its files there

JVM_FLAGS = [
    "-Xms64m",
    "-Xmx256m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-XX:-UsePerfData",
    "-Xss512k",
]


class GremlinServer(LocalServer):
    engine = "gremlin"
    display = "Gremlin Server (local stand-in for Neptune: TinkerGraph)"
    compose_port = 8182
    start_timeout = 90.0  # about 5 s alone; more when other JVMs share the two cores

    @classmethod
    def installed(cls) -> bool:
        """The install script writes `installed` last, so its presence means complete."""
        return (
            (HOME / "installed").is_file() and (HOME / "home" / "lib").is_dir() and (HOME / "java").exists()
        )

    def prepare(self) -> None:
        """The compose YAML with this server's address and the config files' real paths."""
        config = yaml.safe_load((CONFIG / "gremlin-server.yaml").read_text())
        config.update(host="127.0.0.1", port=self.port)
        config["graphs"] = {"graph": str(CONFIG / "tinkergraph.properties")}
        plugins = config["scriptEngines"]["gremlin-groovy"]["plugins"]
        files = plugins["org.apache.tinkerpop.gremlin.jsr223.ScriptFileGremlinPlugin"]["files"]
        assert files == [f"{MOUNTED}/init.groovy"], files  # the one path this module rewrites
        plugins["org.apache.tinkerpop.gremlin.jsr223.ScriptFileGremlinPlugin"]["files"] = [
            str(CONFIG / "init.groovy")
        ]
        (self.workdir / "gremlin-server.yaml").write_text(yaml.safe_dump(config, sort_keys=False))

    def command(self) -> list[str]:
        """As bin/gremlin-server.sh runs it in the foreground: conf/ and lib/ and each plugin folder."""
        home = (HOME / "home").resolve()
        plugins = sorted(
            str(folder / "plugin" / "*") for folder in (home / "ext").iterdir() if folder.is_dir()
        )
        classpath = ":".join([str(home / "conf"), str(home / "lib" / "*"), *plugins])
        return [
            str(HOME / "java"),
            *JVM_FLAGS,
            f"-Dlogback.configurationFile=file:{home / 'conf' / 'logback.xml'}",
            "-cp",
            classpath,
            "org.apache.tinkerpop.gremlin.server.GremlinServer",
            str((self.workdir / "gremlin-server.yaml").resolve()),
        ]

    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gremlin"

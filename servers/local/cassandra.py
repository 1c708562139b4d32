"""Apache Cassandra 5.0 as one local node: the cassandra-all jars from Maven Central on Java 17.

There is no Cassandra package for Debian and no Docker here, so servers/install/cassandra.sh
copies the server's jars into the cache, and this module starts `CassandraDaemon` directly with
the JVM flags the release's own start scripts would add. The node is tuned to start fast on two
busy cores: one token, no wait for gossip to settle, a short ring delay, a small heap and the
quick JIT compiler only. It is a throwaway node: the system tables are not fsynced.
"""

from __future__ import annotations

import os
import shutil
import string
from pathlib import Path

from servers.local.base import CACHE, LocalServer, free_port

HOME = CACHE / "cassandra"
CONFIG = Path(__file__).resolve().parents[1] / "java" / "cassandra"
FOLDERS = ("data", "commitlog", "saved_caches", "hints", "cdc_raw", "logs", "triggers")

# Java 17 closes the JDK internals that Cassandra 5.0 reaches into (memory measurement, Netty,
# off-heap buffers, the compiler used for user functions); without these it fails at start.
EXPORTS = (
    "java.base/jdk.internal.misc",
    "java.base/java.lang.ref",
    "java.management.rmi/com.sun.jmx.remote.internal.rmi",
    "java.rmi/sun.rmi.registry",
    "java.rmi/sun.rmi.server",
    "java.sql/java.sql",
    "jdk.unsupported/sun.misc",
    "jdk.compiler/com.sun.tools.javac.file",
    "jdk.attach/sun.tools.attach",
)
OPENS = (
    "java.base/java.io",
    "java.base/java.lang",
    "java.base/java.lang.module",
    "java.base/java.lang.reflect",
    "java.base/java.util",
    "java.base/jdk.internal.loader",
    "java.base/jdk.internal.math",
    "java.base/jdk.internal.module",
    "java.base/jdk.internal.ref",
    "java.base/jdk.internal.reflect",
    "java.base/jdk.internal.util.jar",
    "java.base/sun.nio.ch",
    "jdk.compiler/com.sun.tools.javac",
    "jdk.management/com.sun.management.internal",
)

# Waits and safety steps that only matter in a multi-node ring or for a node that must survive
# power loss, dropped for a throwaway single node, and phoning home that must stay off.
PROPERTIES = {
    "cassandra-foreground": "yes",
    "cassandra.skip_wait_for_gossip_to_settle": "0",
    "cassandra.ring_delay_ms": "1000",
    "cassandra.superuser_setup_delay_ms": "0",
    "cassandra.migration_delay_ms": "0",
    "cassandra.shutdown_announce_in_ms": "0",
    "cassandra.test.messagingService.nonGracefulShutdown": "true",
    "cassandra.memtable_row_overhead_computation_step": "100",  # a 4 s measurement otherwise
    "cassandra.unsafesystem": "true",  # no fsync of the system tables
    "cassandra.test.flush_local_schema_changes": "false",  # DDL stays in the commit log
    "cassandra.test.ignore_sigar": "true",
    "chronicle.analytics.disable": "true",
    "chronicle.announcer.disable": "true",
    "java.net.preferIPv4Stack": "true",
    "jdk.attach.allowAttachSelf": "true",
    "io.netty.tryReflectionSetAccessible": "true",
}
# A small heap, and the quick (C1) compiler only: half the start time on two busy cores, and
# lesson-sized workloads never reach the point where the optimising compiler would pay off.
JVM = (
    "-Xms256m",
    "-Xmx1g",
    "-Xss256k",
    "-XX:+UseG1GC",
    "-XX:+ExitOnOutOfMemoryError",
    "-XX:TieredStopAtLevel=1",
    "-XX:+PerfDisableSharedMem",
)


def module_flags() -> list[str]:
    """The --add-exports / --add-opens pairs, each to the class path's unnamed module."""
    flags = [f"--add-exports={name}=ALL-UNNAMED" for name in EXPORTS]
    return flags + [f"--add-opens={name}=ALL-UNNAMED" for name in OPENS]


def without_memory_lock() -> list[str]:
    """A prefix that stops Cassandra pinning its whole heap in RAM (it calls mlockall at start).

    Root may lock any amount of memory, so as root the node would keep every page resident for
    good; dropping that one capability makes the call fail with a warning instead.
    """
    if os.geteuid() == 0 and shutil.which("setpriv"):
        return ["setpriv", "--bounding-set=-ipc_lock", "--"]
    return []


class CassandraServer(LocalServer):
    engine = "cassandra"
    display = "Cassandra"
    compose_port = 9042
    start_timeout = 120.0  # about 15 s alone; far more when other JVMs share the two cores

    def __init__(self, port: int, workdir: Path, jmx_port: int | None = None):
        super().__init__(port, workdir)
        self.storage_port = free_port()
        while self.storage_port == port:
            self.storage_port = free_port()
        self.jmx_port = jmx_port  # JMX on loopback, no auth, for nodetool; off unless asked for

    @classmethod
    def installed(cls) -> bool:
        return (HOME / "installed").is_file() and (HOME / "java").exists() and (HOME / "jamm.jar").exists()

    def prepare(self) -> None:
        """Write cassandra.yaml with this node's folders and ports (a storage port of its own)."""
        for name in FOLDERS:
            (self.workdir / name).mkdir(parents=True, exist_ok=True)
        template = string.Template((CONFIG / "cassandra.yaml").read_text())
        config = template.substitute(
            workdir=self.workdir.resolve(), native_port=self.port, storage_port=self.storage_port
        )
        (self.workdir / "cassandra.yaml").write_text(config)

    def command(self) -> list[str]:
        workdir = self.workdir.resolve()
        properties = {
            **PROPERTIES,
            "cassandra.config": (workdir / "cassandra.yaml").as_uri(),
            "cassandra.storagedir": str(workdir),
            "cassandra.logdir": str(workdir / "logs"),
            "cassandra.triggers_dir": str(workdir / "triggers"),
            "logback.configurationFile": str(CONFIG / "logback.xml"),
        }
        if self.jmx_port:
            properties["cassandra.jmx.local.port"] = str(self.jmx_port)
        return [
            *without_memory_lock(),
            str(HOME / "java"),
            *JVM,
            f"-javaagent:{(HOME / 'jamm.jar').resolve()}",
            *module_flags(),
            *(f"-D{key}={value}" for key, value in properties.items()),
            "-cp",
            str(HOME / "lib" / "*"),
            "org.apache.cassandra.service.CassandraDaemon",
        ]

    def url(self) -> str:
        return f"127.0.0.1:{self.port}"

    def extra_ports(self) -> list[int]:
        return [self.storage_port, *([self.jmx_port] if self.jmx_port else [])]

    def ready(self) -> bool:
        """The native protocol answers a real query (the port opens a little before it does)."""
        from cassandra.cluster import Cluster

        cluster = Cluster(["127.0.0.1"], port=self.port, connect_timeout=2, control_connection_timeout=2)
        try:
            session = cluster.connect()
            row = session.execute("SELECT release_version FROM system.local", timeout=5).one()
            return row is not None
        finally:
            cluster.shutdown()

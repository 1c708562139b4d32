"""Apache Cassandra 5.0 as one local node: the cassandra-all jars from Maven Central on Java 17.

There is no Cassandra package for Debian and no Docker here, so servers/install/cassandra.sh
copies the server's jars into the cache, and this module starts `CassandraDaemon` directly with
the JVM flags the release's own start scripts would add. The node is tuned to start fast on two
busy cores: one token, no wait for gossip to settle, a short ring delay, a small heap and the
quick JIT compiler only. It is a throwaway node: the system tables are not fsynced.

A node of a ring takes options (all keywords; without them the node is the single node above):
its own loopback address (`address="127.0.0.2"`: the whole 127/8 range is loopback on Linux),
the CQL and storage ports every node of the ring shares (`native_port`, `storage_port`, from
`ring_port()`: a client reaches every node on one port), `seeds`, `cluster_name`, a data centre
and rack (`datacenter="dc1"`, `rack="rack1"`: GossipingPropertyFileSnitch and a
cassandra-rackdc.properties of its own), `initial_token`, `heap="256m"`, more cassandra.yaml
keys (`settings={"auto_bootstrap": False}`) and JVM system properties (`properties={...}`).

A node that will be killed (kill -9) and started again needs `properties=
{"cassandra.unsafesystem": "false", "cassandra.test.flush_local_schema_changes": "true"}`: with the
defaults below, schema changes live only in the commit log (unsafesystem also skips the schema
flush), so the restarted node loads a schema without the tables made since its start, replays
their writes into nothing and refuses every write to them (INCOMPATIBLE_SCHEMA), for good: its
schema digest still matches its peers', so it never pulls the schema again.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import string
import time
from collections.abc import Iterable
from pathlib import Path

from servers.local.base import CACHE, LocalServer, free_port, port_open

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


LOOPBACK = "127.0.0.1"


def ring_port(addresses: Iterable[str], avoid: Iterable[int] = ()) -> int:
    """A port free on every one of `addresses`: the nodes of a ring listen on one port each."""
    addresses, avoid = list(addresses), set(avoid)
    for _ in range(100):
        port = free_port()
        if port not in avoid and all(_bindable(address, port) for address in addresses):
            return port
    raise RuntimeError(f"no port free on all of {addresses}")


def _bindable(address: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((address, port))
            return True
        except OSError:
            return False


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

    def __init__(
        self,
        port: int,
        workdir: Path,
        jmx_port: int | None = None,
        *,
        address: str = LOOPBACK,
        native_port: int | None = None,
        storage_port: int | None = None,
        seeds: Iterable[str] = (),
        cluster_name: str | None = None,
        datacenter: str | None = None,
        rack: str = "rack1",
        initial_token: int | None = None,
        heap: str | None = None,
        settings: dict[str, object] | None = None,
        properties: dict[str, str] | None = None,
    ):
        super().__init__(native_port or port, workdir)
        self.storage_port = storage_port or free_port()
        while self.storage_port == self.port:
            self.storage_port = free_port()
        self.jmx_port = jmx_port  # JMX on loopback, no auth, for nodetool; off unless asked for
        self.address = address
        self.seeds = tuple(seeds)
        self.cluster_name, self.datacenter, self.rack = cluster_name, datacenter, rack
        self.initial_token, self.heap = initial_token, heap
        self.extra_settings, self.extra_properties = dict(settings or {}), dict(properties or {})
        self._ports_hidden = False

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
        (self.workdir / "cassandra.yaml").write_text(self._as_ring_node(config))
        if self.datacenter:
            rackdc = f"dc={self.datacenter}\nrack={self.rack}\n"
            (self.workdir / "cassandra-rackdc.properties").write_text(rackdc)

    def _ring_settings(self) -> dict[str, object]:
        """The cassandra.yaml keys this node's options change; none for the single default node."""
        changed: dict[str, object] = {}
        if self.address != LOOPBACK:
            changed.update(listen_address=self.address, rpc_address=self.address)
        if self.cluster_name:
            changed["cluster_name"] = self.cluster_name
        if self.datacenter:
            changed["endpoint_snitch"] = "GossipingPropertyFileSnitch"
        if self.initial_token is not None:
            changed["initial_token"] = str(self.initial_token)
        return {**changed, **self.extra_settings}

    def _as_ring_node(self, config: str) -> str:
        """The template with this node's keys replaced (top-level `key: value` lines) or added."""
        if self.seeds:
            seeds = ",".join(f"{seed}:{self.storage_port}" for seed in self.seeds)
            config, found = re.subn(r"^(\s*- seeds: ).*$", rf"\g<1>{json.dumps(seeds)}", config, flags=re.M)
            if found != 1:
                raise ValueError(f"{CONFIG / 'cassandra.yaml'} has no single `- seeds:` line")
        for key, value in self._ring_settings().items():
            line = f"{key}: {json.dumps(value)}"  # JSON is YAML: strings quoted, lists, true/false
            config, found = re.subn(rf"^{re.escape(key)}:.*$", lambda _, line=line: line, config, flags=re.M)
            if not found:
                config += f"\n{line}\n"
        return config

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
        if self.datacenter:
            properties["cassandra-rackdc.properties"] = (workdir / "cassandra-rackdc.properties").as_uri()
        properties.update(self.extra_properties)
        jvm = (
            JVM if not self.heap else (f"-Xms{self.heap}", f"-Xmx{self.heap}", *JVM[2:])
        )  # JVM[:2]: the heap
        return [
            *without_memory_lock(),
            str(HOME / "java"),
            *jvm,
            f"-javaagent:{(HOME / 'jamm.jar').resolve()}",
            *module_flags(),
            *(f"-D{key}={value}" for key, value in properties.items()),
            "-cp",
            str(HOME / "lib" / "*"),
            "org.apache.cassandra.service.CassandraDaemon",
        ]

    def url(self) -> str:
        return f"{self.address}:{self.port}"

    def extra_ports(self) -> list[int]:
        if self._ports_hidden:
            return [self.jmx_port] if self.jmx_port else []  # JMX listens on 127.0.0.1 whatever the address
        return [self.storage_port, *([self.jmx_port] if self.jmx_port else [])]

    # The base class waits for a stopped node's ports to close on 127.0.0.1, where another node of
    # the ring listens on the same ports: a node on another address waits on its own instead.
    def stop(self, timeout: float = 30.0) -> None:
        with self._ports_on_own_address():
            super().stop(timeout)

    def kill(self) -> None:
        with self._ports_on_own_address():
            super().kill()

    @contextlib.contextmanager
    def _ports_on_own_address(self):
        if self.address == LOOPBACK:
            yield
            return
        port, self.port, self._ports_hidden = self.port, 0, True  # nothing ever listens on port 0
        try:
            yield
        finally:
            self.port, self._ports_hidden = port, False
        deadline = time.monotonic() + 10
        for own in (self.port, self.storage_port):
            while port_open(own, self.address) and time.monotonic() < deadline:
                time.sleep(0.05)

    def ready(self) -> bool:
        """The native protocol answers a real query (the port opens a little before it does)."""
        from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
        from cassandra.policies import WhiteListRoundRobinPolicy

        options: dict[str, object] = {}
        if self.seeds:  # a node of a ring: ask this node alone, not the others it would discover
            only_this = ExecutionProfile(load_balancing_policy=WhiteListRoundRobinPolicy([self.address]))
            options["execution_profiles"] = {EXEC_PROFILE_DEFAULT: only_this}
        cluster = Cluster(
            [self.address], port=self.port, connect_timeout=2, control_connection_timeout=2, **options
        )
        try:
            session = cluster.connect()
            row = session.execute("SELECT release_version FROM system.local", timeout=5).one()
            return row is not None
        finally:
            cluster.shutdown()

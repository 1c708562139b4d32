"""HBase 2.6 standalone (the master with its region server and ZooKeeper in one JVM) and its Thrift server.

There is no HBase package for Debian and no Docker here, so servers/install/hbase.sh copies the
hbase-server, hbase-thrift and hbase-zookeeper jars and their dependencies from Maven Central into
the cache. This module runs two JVMs from them: `HMaster start` in standalone mode
(`hbase.cluster.distributed=false`: the master, one region server and an embedded ZooKeeper, the
data on the local filesystem under the server's folder), then `ThriftServer start`, the process
happybase talks to. The Thrift server is the main process (its port is the one lessons use); the
master is a helper this server starts first and stops last. Every port is a free port, ZooKeeper's
included, so parallel test workers each run their own; the web UIs are off (port -1).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path
from xml.sax.saxutils import escape

from servers.local.base import (
    CACHE,
    LocalServer,
    ServerStartError,
    _descendants,
    _tied_to_parent,
    free_port,
    port_open,
    process_tree_bytes,
)

HOME = CACHE / "hbase"
CONFIG = Path(__file__).resolve().parents[1] / "java" / "hbase"

# The JVM flags, one line shared with the compose image (servers/compose/hbase): a small heap start,
# the serial collector and the quick compiler (the lessons' tables are small), and the --add-opens
# and --add-exports Java 17 needs for the JDK internals HBase 2.6 and Hadoop 2.10 reach into
# (off-heap buffers, reflection on java.lang, the JVM's memory beans).
JVM_FLAGS = (CONFIG / "jvm.args").read_text().split()
MASTER_HEAP, THRIFT_HEAP = "384m", "128m"


def site_xml(properties: dict[str, str]) -> str:
    rows = "".join(
        f"  <property><name>{escape(key)}</name><value>{escape(value)}</value></property>\n"
        for key, value in properties.items()
    )
    return f'<?xml version="1.0"?>\n<configuration>\n{rows}</configuration>\n'


class HBaseServer(LocalServer):
    engine = "hbase"
    display = "HBase (standalone, Thrift)"
    compose_port = 9095
    start_timeout = 180.0  # about 15 s alone; far more when other JVMs share the two cores
    # The Thrift server holds no data, and on SIGTERM it waits 60 s for its idle client threads
    # (a constant in TBoundedThreadPoolServer): it is killed; the master gets the SIGTERM.
    stop_signal = signal.SIGKILL

    def __init__(self, port: int, workdir: Path):
        super().__init__(port, workdir)
        ports = {port}
        while len(ports) < 4:  # ZooKeeper's client port, the master's and the region server's RPC ports
            ports.add(free_port())
        self.zookeeper_port, self.master_port, self.regionserver_port = sorted(ports - {port})
        self.master: subprocess.Popen | None = None

    @classmethod
    def installed(cls) -> bool:
        """The install script writes `installed` last, so its presence means complete."""
        return (HOME / "installed").is_file() and (HOME / "lib").is_dir() and (HOME / "java").exists()

    def site(self) -> dict[str, str]:
        workdir = self.workdir.resolve()
        return {
            "hbase.cluster.distributed": "false",
            "hbase.rootdir": (workdir / "hbase").as_uri(),
            "hbase.tmp.dir": str(workdir / "tmp"),
            "hbase.zookeeper.quorum": "127.0.0.1",
            "hbase.zookeeper.property.clientPort": str(self.zookeeper_port),
            "hbase.zookeeper.property.dataDir": str(workdir / "zookeeper"),
            "hbase.master.port": str(self.master_port),
            "hbase.regionserver.port": str(self.regionserver_port),
            # The master waits 4.5 s for more region servers to report in; a standalone has one.
            "hbase.master.wait.on.regionservers.mintostart": "1",
            "hbase.master.wait.on.regionservers.timeout": "500",
            "hbase.master.wait.on.regionservers.interval": "200",
            # The local filesystem cannot hflush/hsync: HBase refuses to write its WAL there unless told.
            "hbase.unsafe.stream.capability.enforce": "false",
            # At stop the embedded ZooKeeper goes before the region server has deleted its node, which
            # then retries for 15 s by default: one quick retry (the ZooKeeper is in the same JVM).
            "zookeeper.recovery.retry": "1",
            "zookeeper.recovery.retry.intervalmill": "200",
            # The web UIs: off (their Jetty and Hadoop 2's servlet-api 2.5 clash), and no port to pick.
            "hbase.master.info.port": "-1",
            "hbase.regionserver.info.port": "-1",
            "hbase.thrift.info.port": "-1",
        }

    def prepare(self) -> None:
        conf = self.workdir / "conf"
        conf.mkdir(parents=True, exist_ok=True)
        (conf / "hbase-site.xml").write_text(site_xml(self.site()))

    def _java(self, heap: str, main: str, *arguments: str) -> list[str]:
        conf = (self.workdir / "conf").resolve()
        return [
            str(HOME / "java"),
            *JVM_FLAGS,
            f"-Xmx{heap}",
            f"-Dlog4j.configuration={(CONFIG / 'log4j.properties').as_uri()}",
            "-Djava.net.preferIPv4Stack=true",
            "-cp",
            f"{conf}:{HOME / 'lib' / '*'}",
            main,
            *arguments,
        ]

    def command(self) -> list[str]:
        """The Thrift server (the main process), on 127.0.0.1 and this server's port."""
        return self._java(
            THRIFT_HEAP,
            "org.apache.hadoop.hbase.thrift.ThriftServer",
            "-b",
            "127.0.0.1",
            "-p",
            str(self.port),
            "start",
        )

    def start(self, tied_to_parent: bool = False) -> None:
        """The master first (a helper with a log of its own), then the Thrift server."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.prepare()
        argv = _tied_to_parent(
            self._java(MASTER_HEAP, "org.apache.hadoop.hbase.master.HMaster", "start"), None, tied_to_parent
        )
        with open(self.workdir / "master.log", "ab") as log:
            self.master = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
                start_new_session=True,
            )
        (self.workdir / "master.pid").write_text(str(self.master.pid))
        super().start(tied_to_parent)

    def url(self) -> str:
        return f"thrift://127.0.0.1:{self.port}"

    def master_ports(self) -> list[int]:
        """The master's ports (not `extra_ports`: the base class waits on those while the master still runs)."""
        return [self.zookeeper_port, self.master_port, self.regionserver_port]

    def ready(self) -> bool:
        if self.master is not None and self.master.poll() is not None:
            raise ServerStartError(
                f"{self.display}: the master exited with code {self.master.returncode}; its log"
                f" {self.workdir / 'master.log'} says:\n{self.master_log_errors()}"
            )
        return super().ready()

    def master_log_errors(self, lines: int = 12) -> str:
        """The master log's last ERROR and FATAL lines and exceptions: why it stopped."""
        try:
            text = (self.workdir / "master.log").read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        wanted = [line for line in text if " ERROR " in line or " FATAL " in line or "Exception:" in line]
        return "\n".join((wanted or text)[-lines:])

    def _master_pid(self) -> int | None:
        if self.master is not None:
            return self.master.pid
        with contextlib.suppress(OSError, ValueError):
            return int((self.workdir / "master.pid").read_text())
        return None

    def resident_bytes(self) -> int | None:
        """The Thrift server's and the master's: the master is not below the Thrift server."""
        thrift = super().resident_bytes()
        if thrift is None or self.master is None or self.master.poll() is not None:
            return None
        return thrift + process_tree_bytes(self.master.pid)

    def stop(self, timeout: float = 30.0) -> None:
        """The Thrift server, then the master: it flushes and closes its regions, over 8 s; wait for it."""
        super().stop(timeout)
        pid = self._master_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            started = time.monotonic()
            while time.monotonic() < deadline and self._master_alive(pid):
                time.sleep(0.1)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            self._master_alive(pid)
            self.master_stop_seconds = time.monotonic() - started
        self._wait_closed()
        (self.workdir / "master.pid").unlink(missing_ok=True)

    def kill(self) -> None:
        """SIGKILL to both processes, as a crash."""
        super().kill()
        pid = self._master_pid()
        if pid is not None:
            for victim in [*reversed(_descendants(pid)), pid]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(victim, signal.SIGKILL)
            self._master_alive(pid)
        self._wait_closed()

    def _master_alive(self, pid: int) -> bool:
        if self.master is not None and self.master.pid == pid:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.master.wait(timeout=0)
            return self.master.poll() is None
        try:
            os.killpg(pid, 0)
            return True
        except (ProcessLookupError, PermissionError):
            return False

    def _wait_closed(self) -> None:
        deadline = time.monotonic() + 10
        for port in self.master_ports():
            while port_open(port) and time.monotonic() < deadline:
                time.sleep(0.1)

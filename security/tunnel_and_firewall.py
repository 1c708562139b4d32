"""An SSH tunnel to a loopback-only database, and a firewall rule that drops or rejects

The bastion pattern: the database listens on loopback only, so nothing from another machine reaches
it, and clients come through an SSH port-forward instead: ssh carries the connection to the sshd on
the database host, and sshd opens it to 127.0.0.1 on their behalf, so pg_hba.conf sees the host
itself. The lesson starts an sshd of its own (keys only, forwarding only, on 127.0.0.2, the host's
"public" address), and the client's key in authorized_keys carries
`restrict,port-forwarding,permitopen="127.0.0.1:<port>"`: it may open the database's port and
nothing else, so a forward to the Redis on the same host is denied. ssh checks sshd's host key
against a known_hosts file the lesson writes. Then a firewall: a network namespace the lesson
creates stands for the database host, joined to ours by a veth pair, with a Redis inside; an
iptables rule on its INPUT chain either DROPs the connection (the client waits for its timeout) or
REJECTs it (refused at once), and the rule's packet counter shows what it matched. Which addresses
the server itself listens on, pg_hba.conf and Redis's protected mode are `network_rules.py`.

Engine: PostgreSQL and Redis on throwaway nodes of the lesson's own (servers/throwaway.py, local
servers only, since PostgreSQL starts with this lesson's pg_hba.conf), never the shared servers; the
Redis node is the other service on the database host, the one the tunnel's key may not reach.
Optional: OpenSSH (`sshd`, `ssh`, `ssh-keygen`) and setpriv for the tunnel; root, `ip`, `iptables`
and redis-server for the firewall (a network namespace `tunnel_and_firewall<pid>`); each part says
so in one line when it cannot run.
Run: `make local-install && make local-up`, then `python security/tunnel_and_firewall.py` (the
firewall part as root). Like every lesson it checks the shared servers first, but it only uses its
own nodes.
Look for: the query through the tunnel allowed as 127.0.0.1 while the direct connection is refused,
sshd's count of denied forwards, TimeoutError under DROP against ConnectionRefusedError under REJECT.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import redis
from psycopg import sql
from redis.backoff import NoBackoff
from redis.retry import Retry

from common import console
from common.settings import CONNECT_TIMEOUT_S, UNAVAILABLE, require
from servers.local.base import free_port, port_open
from servers.throwaway import NoThrowaway, throwaway

REQUIRES = ("postgres", "redis")
PREFIX = "tunnel_and_firewall"  # temporary folders, the network namespace
APP = "app"  # the role that connects through the tunnel
LOOPBACK, PUBLIC = "127.0.0.1", "127.0.0.2"  # PUBLIC: the host's "public" address, where sshd listens
HBA = ["host  all  all  127.0.0.1/32  scram-sha-256"]  # the database host itself, so sshd too
TRIES = 3  # connections counted per route, and per firewall rule
# sshd: keys only, port-forwarding only; ssh: the host key must be the one in the lesson's known_hosts.
SSHD_OPTIONS = (
    "PidFile=none StrictModes=no UsePAM=no PasswordAuthentication=no KbdInteractiveAuthentication=no"
    " AllowTcpForwarding=local X11Forwarding=no PermitTTY=no"
)
SSH_OPTIONS = "StrictHostKeyChecking=yes GlobalKnownHostsFile=/dev/null IdentitiesOnly=yes BatchMode=yes"


class Unavailable(RuntimeError):
    """An optional part cannot run here; the message says why in one line."""


@dataclass
class Facts:
    listening: str = ""  # the database's listen_addresses
    tunnel: dict[str, list[str]] | None = None  # route -> outcome of each try
    forwards_denied: int = 0  # "request was denied" lines in sshd's log
    firewall: dict[str, list[str]] | None = None  # rule -> outcome of each try
    packets: dict[str, int] = field(default_factory=dict, compare=False)  # rule -> packets it matched
    skipped: dict[str, str] = field(default_factory=dict)  # optional part -> why it did not run

    @property
    def holds(self) -> bool:
        tunnelled = {
            "through the tunnel": [f"allowed as {LOOPBACK}"] * TRIES,
            f"direct to {PUBLIC}": ["ConnectionRefusedError"] * TRIES,
            "forward to Redis": ["ConnectionError"] * TRIES,  # permitopen: the database's port only
        }
        return self.tunnel in (None, tunnelled) and (
            self.firewall is None or self.firewall["DROP"] == ["TimeoutError"] * TRIES
        )


def tcp(host: str, port: int, timeout: float) -> str:
    """'accepted', or the class of the error a plain TCP connect got."""
    try:
        with socket.create_connection((host, port), timeout):
            return "accepted"
    except OSError as error:
        return type(error).__name__


def pg_login(port: int, password: str, host: str = LOOPBACK) -> str:
    """'allowed as' the client address the server saw, or what refused the connection."""
    try:
        info = {"host": host, "port": port, "user": APP, "password": password, "dbname": "examples"}
        with psycopg.connect(**info, connect_timeout=CONNECT_TIMEOUT_S) as conn:
            return "allowed as " + conn.execute("SELECT host(inet_client_addr())").fetchone()[0]
    except psycopg.OperationalError as error:
        return "ConnectionRefusedError" if "Connection refused" in str(error) else type(error).__name__


def ping(port: int, host: str = LOOPBACK, **options) -> str:
    """'ok', or the class of the error PING got (redis-py's retries off: one try is one connection)."""
    no_retry = Retry(NoBackoff(), 0)
    with redis.Redis(
        host=host, port=port, socket_connect_timeout=CONNECT_TIMEOUT_S, retry=no_retry, **options
    ) as client:
        try:
            client.ping()
        except redis.RedisError as error:
            return type(error).__name__
    return "ok"


def _stop(process: subprocess.Popen | None) -> None:
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _start(
    argv: list[str], log: Path, ready: Callable[[], bool], what: str, *setpriv: str
) -> subprocess.Popen:
    """Start a helper that ends when this process does (setpriv's parent-death signal, applied after
    any change of account `setpriv` asks for) and wait up to 10 s for `ready`."""
    with open(log, "wb") as out:
        process = subprocess.Popen(
            ["setpriv", "--pdeathsig", "TERM", *setpriv, "--", *argv],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + 10
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            _stop(process)
            raise Unavailable(f"{what} did not start: " + " / ".join(log.read_text().splitlines()[-2:]))
        time.sleep(0.05)
    return process


def _options(options: str) -> list[str]:
    return [arg for option in options.split() for arg in ("-o", option)]


@contextlib.contextmanager
def ssh_tunnel(db_port: int, other_port: int) -> Iterator[tuple[int, int, Path]]:
    """sshd on PUBLIC whose key may forward to LOOPBACK:db_port only; yields the two local ports."""
    path = "/usr/sbin:" + os.environ.get("PATH", "")
    sshd, ssh, keygen = (shutil.which(tool, path=path) for tool in ("sshd", "ssh", "ssh-keygen"))
    if not (sshd and ssh and keygen and shutil.which("setpriv")):
        raise Unavailable(
            "needs OpenSSH (sshd, ssh, ssh-keygen: `apt-get install openssh-server`) and setpriv"
        )
    # As root, sshd wants /run/sshd (privilege separation): run it as an unprivileged account instead
    # (not nobody: nss-systemd reports nobody as locked, and sshd refuses locked accounts).
    user = "daemon" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    as_user = (
        ["--reuid", user, "--regid", user, "--clear-groups", "--inh-caps=-all"] if os.geteuid() == 0 else []
    )
    folder, processes = Path(tempfile.mkdtemp(prefix=f"{PREFIX}-ssh-")), []
    try:
        for name in ("host_key", "client_key"):
            subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-f", folder / name], check=True)
        key = (folder / "client_key.pub").read_text().strip()
        # The key may do one thing: forward to the database's port. No shell, no other target.
        (folder / "authorized_keys").write_text(
            f'restrict,port-forwarding,permitopen="{LOOPBACK}:{db_port}" {key}\n'
        )
        sshd_port, db_local, other_local = free_port(), free_port(), free_port()
        (folder / "known_hosts").write_text(f"[{PUBLIC}]:{sshd_port} {(folder / 'host_key.pub').read_text()}")
        if as_user:
            folder.chmod(0o711)
            shutil.chown(folder / "host_key", user=user)
        config = (f"ListenAddress={PUBLIC} Port={sshd_port} HostKey={folder}/host_key AllowUsers={user}"
                  f" AuthorizedKeysFile={folder}/authorized_keys {SSHD_OPTIONS}")  # fmt: skip
        log = folder / "sshd.log"
        argv = [sshd, "-D", "-e", "-f", "/dev/null", *_options(config)]
        processes.append(_start(argv, log, lambda: "Server listening" in log.read_text(), "sshd", *as_user))
        forwards = [
            f"{LOOPBACK}:{db_local}:{LOOPBACK}:{db_port}",
            f"{LOOPBACK}:{other_local}:{LOOPBACK}:{other_port}",
        ]
        argv = [ssh, "-N", "-F", "/dev/null", "-i", str(folder / "client_key"), "-p", str(sshd_port),
                *_options(f"UserKnownHostsFile={folder}/known_hosts {SSH_OPTIONS}"),
                *(arg for forward in forwards for arg in ("-L", forward)), f"{user}@{PUBLIC}"]  # fmt: skip
        processes.append(_start(argv, folder / "ssh.log", lambda: port_open(db_local), "ssh"))
        yield db_local, other_local, log
    finally:  # the client first: sshd's per-connection process ends with it
        for process in reversed(processes):
            _stop(process)
        shutil.rmtree(folder, ignore_errors=True)


def tunnel_step(facts: Facts, url: str, other_port: int) -> None:
    console.step("The bastion pattern: the database on loopback, clients through an SSH tunnel")
    password, db_port = secrets.token_urlsafe(16), urlsplit(url).port
    with psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S) as admin:
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(APP), sql.Literal(password))
        )
        facts.listening = admin.execute("SHOW listen_addresses").fetchone()[0]
    console.say(f"listen_addresses = '{facts.listening}'; pg_hba.conf: {HBA[0]}")
    try:
        with ssh_tunnel(db_port, other_port) as (db_local, other_local, sshd_log):
            routes: dict[str, list[str]] = {
                "through the tunnel": [],
                f"direct to {PUBLIC}": [],
                "forward to Redis": [],
            }
            for _ in range(TRIES):
                routes["through the tunnel"].append(pg_login(db_local, password))
                routes[f"direct to {PUBLIC}"].append(pg_login(db_port, password, PUBLIC))
                routes["forward to Redis"].append(ping(other_local))
            facts.forwards_denied = sshd_log.read_text().count("but the request was denied")
    except Unavailable as why:
        facts.skipped["tunnel"] = str(why)
        console.say(f"skipped: {why}")
        return
    facts.tunnel = routes
    console.table(["route", f"{TRIES} tries"], [(k, tally(v)) for k, v in routes.items()])
    console.say(f"Through the tunnel the server sees {LOOPBACK} (sshd, on the database host), and the")
    console.say(f"pg_hba.conf line for the host itself matches; nothing listens on {PUBLIC}. ssh checked")
    console.say("sshd's host key against the known_hosts the lesson wrote; the client's key may open one")
    console.say(f"target (permitopen): sshd logged {facts.forwards_denied} forwards denied. Stricter still:")
    console.say("listen_addresses = '' and `ssh -L port:/path/to/.s.PGSQL.5432`, a forward to the socket.")


def tally(outcomes: list[str]) -> str:
    return ", ".join(f"{n}x {outcome}" for outcome, n in Counter(outcomes).items())


def _run(*argv: str, netns: str | None = None) -> str:
    done = subprocess.run(
        [*(["ip", "netns", "exec", netns] if netns else []), *argv], capture_output=True, text=True
    )
    if done.returncode:
        raise Unavailable(f"`{' '.join(argv)}` failed: {done.stderr.strip()}")
    return done.stdout


@contextlib.contextmanager
def namespace() -> Iterator[tuple[str, str, str]]:
    """A network namespace joined to ours by a veth pair, a Redis inside; yields (name, address, password)."""
    missing = [tool for tool in ("ip", "iptables", "redis-server", "setpriv") if not shutil.which(tool)]
    if missing or os.geteuid() != 0:
        raise Unavailable(
            f"needs root, ip, iptables, redis-server and setpriv ({', '.join(missing) or 'not root'})"
        )
    pid = os.getpid()
    name, host_if, ns_if = f"{PREFIX}{pid}", f"tf{pid}h", f"tf{pid}n"
    host_ip, ns_ip = map(str, ipaddress.ip_network(f"10.213.{(pid >> 6) & 255}.{(pid & 63) * 4}/30").hosts())
    password, folder, server = secrets.token_urlsafe(16), Path(tempfile.mkdtemp(prefix=f"{PREFIX}-ns-")), None
    for stale in _run("ip", "netns", "list").split():  # an interrupted run's (its veth pair goes with it)
        if stale.startswith(PREFIX) and (stale == name or not Path("/proc", stale[len(PREFIX) :]).exists()):
            _run("ip", "netns", "del", stale)
    _run("ip", "netns", "add", name)
    try:
        _run("ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if, "netns", name)
        _run("ip", "addr", "add", f"{host_ip}/30", "dev", host_if)
        _run("ip", "link", "set", host_if, "up")
        _run("ip", "addr", "add", f"{ns_ip}/30", "dev", ns_if, netns=name)
        _run("ip", "link", "set", ns_if, "up", netns=name)
        argv = ["ip", "netns", "exec", name, "redis-server", "--port", "6379", "--bind", ns_ip, "--dir",
                str(folder), "--requirepass", password, "--save", "", "--appendonly", "no"]  # fmt: skip
        server = _start(argv, folder / "redis.log", lambda: port_open(6379, ns_ip), "Redis in the namespace")
        yield name, ns_ip, password
    finally:
        _stop(server)
        with contextlib.suppress(Unavailable):
            _run("ip", "link", "del", host_if)
        with contextlib.suppress(Unavailable):
            _run("ip", "netns", "del", name)
        shutil.rmtree(folder, ignore_errors=True)


def firewall_step(facts: Facts) -> None:
    console.step("A firewall in a network namespace: DROP times out, REJECT is refused at once")
    try:
        with namespace() as (name, address, password):
            outcomes = {"no rule": [ping(6379, address, password=password) for _ in range(TRIES)]}
            for rule in (["DROP"], ["REJECT", "--reject-with", "tcp-reset"]):
                _run("iptables", "-I", "INPUT", "1", "-p", "tcp", "--dport", "6379", "-j", *rule, netns=name)
                outcomes[rule[0]] = [tcp(address, 6379, timeout=0.3) for _ in range(TRIES)]
                listing = _run("iptables", "-L", "INPUT", "-n", "-v", "-x", netns=name).splitlines()
                facts.packets[rule[0]] = int(listing[2].split()[0])  # the first rule's packet counter
                _run("iptables", "-D", "INPUT", "1", netns=name)
    except Unavailable as why:
        facts.skipped["firewall"] = str(why)
        console.say(f"skipped: {why}")
        return
    facts.firewall = outcomes
    rows = [(rule, tally(got), facts.packets.get(rule, "-")) for rule, got in outcomes.items()]
    console.table(["rule on the server's INPUT chain", f"{TRIES} connects", "packets it matched"], rows)
    console.say("DROP leaves the client waiting for its timeout; REJECT answers with a reset. The namespace")
    console.say("stands for the database host; in a cloud the same rule is a security group.")


def run() -> Facts:
    """Starts throwaway PostgreSQL and Redis nodes (NoThrowaway without the local servers)."""
    console.title("An SSH tunnel to a loopback-only database, and a firewall rule that drops or rejects")
    facts, pg_options = Facts(), {"settings": {"listen_addresses": LOOPBACK}, "hba": HBA}
    with throwaway("postgres", **pg_options) as pg, throwaway("redis") as rd:
        tunnel_step(facts, pg["POSTGRES_URL"], urlsplit(rd["REDIS_URL"]).port)
    firewall_step(facts)
    return facts


def main() -> int:
    require(*REQUIRES)
    try:
        facts = run()
    except NoThrowaway as missing:
        print(f"This lesson starts throwaway nodes of the local servers: {missing}.", file=sys.stderr)
        return UNAVAILABLE
    return 0 if facts.holds else 1


if __name__ == "__main__":
    raise SystemExit(main())

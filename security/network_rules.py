"""Network access rules: pg_hba.conf, listen addresses, Redis bind, protected mode and -@dangerous

Who may reach a database is settled before any query runs, in layers: `listen_addresses`
(PostgreSQL) and `bind` (Redis) decide on which addresses the server answers at all; pg_hba.conf
decides, by source address, database and user, how a connection must authenticate or that it is
refused, and the first matching line wins; Redis's protected mode refuses every client but 127.0.0.1
while the default user has no password; and once connected, an ACL user without @dangerous cannot
run FLUSHALL or CONFIG, while DEBUG and the protected settings stay as the server was started. The
lesson counts connections from several source addresses against each layer. Every address is on
loopback (Linux routes all of 127.0.0.0/8 to `lo`), and a small relay gives each client its source
address: libpq and redis-py cannot choose one, and a connection to 127.0.0.N still leaves from
127.0.0.1 (the loopback route's preferred source). What stands in front of the server, an SSH
tunnel and a firewall, is the next lesson, `tunnel_and_firewall.py`.

Engine: PostgreSQL and Redis on throwaway nodes of the lesson's own (servers/throwaway.py, local
servers only, since they start with this lesson's pg_hba.conf), never the shared servers; Redis keys
under `network_rules:`.
Run: `make local-install && make local-up`, then `python security/network_rules.py`. Like every
lesson it checks the shared servers first, but it only uses its own nodes.
Look for: allowed and refused counts per source address, one refusal flipping when two pg_hba.conf
lines swap places, ConnectionRefusedError on the address a server does not listen on, Redis's DENIED
for 127.0.0.5, NoPermissionError for FLUSHALL from the ACL user, "can't set immutable config".
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import secrets
import socket
import sys
import threading
import time
from collections.abc import Callable
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
from servers.throwaway import NoThrowaway, throwaway

REQUIRES = ("postgres", "redis")
PREFIX = "network_rules"  # Redis keys

APP, ANALYST = "app", "analyst"  # roles of the throwaway PostgreSQL node; APP is a Redis ACL user too
LOOPBACK, PUBLIC, OUTSIDER = "127.0.0.1", "127.0.0.2", "127.0.0.5"  # PUBLIC: the host's "public" address
HBA = [
    "# TYPE  DATABASE  USER     ADDRESS        METHOD",
    "host    all       all      127.0.0.1/32   scram-sha-256",  # the database host itself
    "host    examples  app      127.0.0.10/32  scram-sha-256",  # the app server: one database
]
BAN = "host    examples  analyst  127.0.0.20/32  reject"  # one machine of the analysts' subnet...
SUBNET = "host    examples  analyst  127.0.0.16/28  scram-sha-256"  # ...and the subnet
BANNED = ("127.0.0.20", ANALYST, "examples")
ATTEMPTS = [  # (source address, user, database)
    ("127.0.0.10", APP, "examples"),
    ("127.0.0.10", APP, "postgres"),
    ("127.0.0.10", ANALYST, "examples"),
    ("127.0.0.21", ANALYST, "examples"),
    BANNED,
    ("127.0.0.30", APP, "examples"),
]


@dataclass
class Facts:
    hba: dict[tuple[str, str, str], str]  # (source, user, database) -> allowed / no entry / rejected
    swapped: dict[tuple[str, str, str], str]  # the same with the BAN and SUBNET lines swapped
    seen_as: dict[str, str]  # source -> inet_client_addr() of its allowed connection
    words: dict[str, str]  # refusal -> the server's FATAL line
    rules: list[tuple] = field(compare=False)  # pg_hba_file_rules
    listen: dict[str, str] = field(default_factory=dict)  # address -> TCP outcome
    redis_bind: dict[str, str] = field(default_factory=dict)  # bind setting -> TCP outcome for OUTSIDER
    protected: dict[str, str] = field(default_factory=dict)  # client, server state -> PING outcome
    commands: dict[str, str] = field(default_factory=dict)  # who: command -> outcome

    @property
    def holds(self) -> bool:
        return (
            (self.hba[BANNED], self.swapped[BANNED]) == ("rejected", "allowed")
            and self.listen == {LOOPBACK: "accepted", PUBLIC: "ConnectionRefusedError"}
            and self.protected[f"{OUTSIDER}, no password"] == "DENIED"
            and self.commands[f"{APP}: FLUSHALL"] == "NoPermissionError"
        )


def per_source(outcomes: dict[tuple[str, str, str], str]) -> dict[str, tuple[int, int]]:
    """source -> (connections allowed, connections refused)."""
    counts: dict[str, tuple[int, int]] = {}
    for (source, _, _), outcome in outcomes.items():
        allowed, refused = counts.get(source, (0, 0))
        counts[source] = (allowed + (outcome == "allowed"), refused + (outcome != "allowed"))
    return counts


class Relay:
    """A client machine at `source`: accepts on 127.0.0.1 and connects on to `target` from `source`."""

    def __init__(self, source: str, target: tuple[str, int]):
        self.source, self.target = source, target
        self.listener = socket.create_server((LOOPBACK, 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def __enter__(self) -> Relay:
        return self

    def __exit__(self, *_) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() below
        self.listener.close()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
                upstream = socket.create_connection(self.target, CONNECT_TIMEOUT_S, (self.source, 0))
            except OSError:
                return  # closed (or the server is down: the client then sees its connection closed)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    for sock in (source, sink):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    source.close()


def tcp(host: str, port: int) -> str:
    """'accepted', or the class of the error a plain TCP connect got."""
    try:
        with socket.create_connection((host, port), CONNECT_TIMEOUT_S):
            return "accepted"
    except OSError as error:
        return type(error).__name__


def pg_login(port: int, user: str, password: str, dbname: str) -> tuple[str, str]:
    """(allowed / no entry / rejected / the error, the client address the server saw or its words)."""
    try:
        info = {"host": LOOPBACK, "port": port, "user": user, "password": password, "dbname": dbname}
        with psycopg.connect(**info, connect_timeout=CONNECT_TIMEOUT_S) as conn:
            return "allowed", conn.execute("SELECT host(inet_client_addr())").fetchone()[0]
    except psycopg.OperationalError as error:
        text = str(error)
        words = text[text.find("FATAL:") :].strip() if "FATAL:" in text else text.strip()
        if "no pg_hba.conf entry" in text:
            return "no entry", words
        if "rejects connection" in text:
            return "rejected", words
        return ("ConnectionRefusedError" if "Connection refused" in text else type(error).__name__), words


def load_hba(admin: psycopg.Connection, url: str, lines: list[str]) -> None:
    """Write pg_hba.conf, reload, and wait for a new backend forked after the reload."""
    before = admin.execute("SELECT pg_conf_load_time()").fetchone()[0]
    Path(admin.execute("SHOW hba_file").fetchone()[0]).write_text("\n".join(lines) + "\n")
    admin.execute("SELECT pg_reload_conf()")
    for _ in range(200):
        with psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S) as probe:
            if probe.execute("SELECT pg_conf_load_time() > %s", (before,)).fetchone()[0]:
                return
        time.sleep(0.05)
    raise RuntimeError("pg_hba.conf was not reloaded within 10 s")


def try_everyone(port: int, passwords: dict[str, str], words: dict[str, str]) -> tuple[dict, dict]:
    """Each attempt from its source address: the outcomes, and who the server saw for allowed ones."""
    outcomes, seen_as = {}, {}
    for source, user, dbname in ATTEMPTS:
        with Relay(source, (LOOPBACK, port)) as relay:
            outcome, said = pg_login(relay.port, user, passwords[user], dbname)
        outcomes[(source, user, dbname)] = outcome
        if outcome == "allowed":
            seen_as[source] = said
        else:
            words.setdefault(outcome, said)
    return outcomes, seen_as


def postgres_rules(url: str, port: int) -> Facts:
    console.step("pg_hba.conf: rules by source address, database and user; the first match decides")
    with psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S) as admin:
        passwords = {user: secrets.token_urlsafe(16) for user in (APP, ANALYST)}
        create = sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}")  # a fresh node: the roles are new
        for user, password in passwords.items():
            admin.execute(create.format(sql.Identifier(user), sql.Literal(password)))
        rules = [
            (*row[:4], ipaddress.ip_network(f"{row[4]}/{row[5]}"), *row[6:])
            for row in admin.execute(
                "SELECT line_number, type, array_to_string(database, ','), array_to_string(user_name, ','),"
                " address, netmask, auth_method, error FROM pg_hba_file_rules ORDER BY line_number"
            )
        ]
        console.table(["line", "type", "database", "user", "address", "method", "error"], rules)
        console.say("pg_hba_file_rules parses the file on disk: a typo shows in `error` before a reload.")
        console.say("`host` matches TCP with or without TLS, `hostssl` TLS only, `local` the Unix socket.")
        console.say(
            "Each client connects through a relay bound to its source address, as from another machine:"
        )
        words: dict[str, str] = {}
        outcomes, seen_as = try_everyone(port, passwords, words)
        rows = [
            (*attempt, f"{o} as {seen_as[attempt[0]]}" if o == "allowed" else o)
            for attempt, o in outcomes.items()
        ]
        console.table(["source", "user", "database", "outcome"], rows)
        counts = per_source(outcomes).items()
        console.say("allowed/refused per source: " + ", ".join(f"{s} {a}/{r}" for s, (a, r) in counts))
        for said in words.values():
            console.say(said)

        console.step("Swap the reject line and the subnet line: the same connection is now allowed")
        load_hba(admin, url, [*HBA, SUBNET, BAN])
        swapped, _ = try_everyone(port, passwords, {})
        console.say(
            f"{BANNED[0]} as {ANALYST}: {outcomes[BANNED]} with the ban first, {swapped[BANNED]} with"
        )
        console.say("the subnet first: once a line matches, no later line is read.")

        console.step("listen_addresses: the server answers only on the addresses it binds")
        listening = admin.execute("SHOW listen_addresses").fetchone()[0]
    listen = {address: tcp(address, port) for address in (LOOPBACK, PUBLIC)}
    console.table([f"listen_addresses = '{listening}'", "TCP connect"], listen.items())
    console.say(
        f"No pg_hba.conf line is read for {PUBLIC}: nothing listens there, the kernel refuses the SYN."
    )
    return Facts(outcomes, swapped, seen_as, words, rules, listen)


def outcome_of(action: Callable[[], object]) -> str:
    """'ok', DENIED (protected mode), the error class, or the server's words for a plain ResponseError."""
    try:
        action()
    except redis.RedisError as error:
        text = str(error)
        if "DENIED" in text or type(error) is not redis.ResponseError:
            return "DENIED" if "DENIED" in text else type(error).__name__
        return text.split(" - ")[-1] if " - can't" in text else text.split(" - ")[0].split(". ")[0]
    return "ok"


def redis_client(port: int, **options) -> redis.Redis:
    no_retry = Retry(NoBackoff(), 0)  # redis-py retries a refused login (a ConnectionError) by default
    return redis.Redis(
        host=LOOPBACK, port=port, socket_connect_timeout=CONNECT_TIMEOUT_S, retry=no_retry, **options
    )


def ping(port: int, **options) -> str:
    with redis_client(port, **options) as client:
        return outcome_of(client.ping)


def redis_rules(facts: Facts, port: int) -> None:
    admin = redis_client(port, decode_responses=True)
    console.step("Redis bind: the addresses the server listens on, changed at run time")
    facts.redis_bind[f"bind {admin.config_get('bind')['bind']}"] = tcp(OUTSIDER, port)
    try:
        admin.config_set("bind", f"{LOOPBACK} {OUTSIDER}")
        facts.redis_bind[f"bind {LOOPBACK} {OUTSIDER}"] = tcp(OUTSIDER, port)
    except redis.ResponseError as error:  # before Redis 7.0 bind is read at start only
        facts.redis_bind["CONFIG SET bind"] = str(error)
    console.table(["setting", f"TCP connect to {OUTSIDER}"], facts.redis_bind.items())

    console.step("Protected mode: no password on the default user, so only 127.0.0.1 may talk")
    password, p = secrets.token_urlsafe(16), facts.protected
    with Relay(OUTSIDER, (LOOPBACK, port)) as outside:
        p[f"{LOOPBACK}, no password"] = ping(port)
        p[f"{OUTSIDER}, no password"] = ping(outside.port)
        admin.config_set("protected-mode", "no")
        p[f"{OUTSIDER}, protected-mode no"] = ping(outside.port)
        admin.config_set("protected-mode", "yes")
        admin.execute_command("ACL", "SETUSER", "default", "on", ">" + password)
        p[f"{OUTSIDER}, default has a password, no AUTH"] = ping(outside.port)
        p[f"{OUTSIDER}, AUTH as default"] = ping(outside.port, password=password)
    console.table(["client, server state", "PING"], p.items())
    console.say("Redis counts as local only 127.0.0.1, ::1 and its Unix socket, not all of 127/8; since 7.0")
    console.say("protected mode applies whatever `bind` says (6.x applied it only when nothing was bound).")

    console.step("Dangerous commands: ACL -@dangerous at run time; renaming and DEBUG only at start")
    app_password = secrets.token_urlsafe(16)
    admin.execute_command(
        "ACL", "SETUSER", APP, "reset", "on", ">" + app_password, f"~{PREFIX}:*", "+@all", "-@dangerous"
    )
    app = redis_client(port, username=APP, password=app_password, decode_responses=True)
    tries = [
        (app, "SET", f"{PREFIX}:greeting", "hello"), (app, "KEYS", "*"), (app, "FLUSHALL"),
        (app, "CONFIG", "SET", "maxmemory", "1mb"), (app, "DEBUG", "SLEEP", "0"),
        (admin, "DEBUG", "SLEEP", "0"), (admin, "CONFIG", "SET", "enable-debug-command", "local"),
        (admin, "CONFIG", "SET", "dir", "/tmp"), (admin, "CONFIG", "SET", "rename-command", "FLUSHALL x"),
    ]  # fmt: skip
    for client, *command in tries:
        label = f"{APP if client is app else 'admin'}: {' '.join(command)}"
        facts.commands[label] = outcome_of(functools.partial(client.execute_command, *command))
    app.close()
    console.table(["who: command", "outcome"], facts.commands.items())
    console.say(f"ACL user {APP}: +@all -@dangerous, keys {PREFIX}:* only. DEBUG is refused before any ACL:")
    console.say("enable-debug-command, enable-protected-configs (dir) and rename-command are read")
    console.say("at start only, and rename-command is deprecated in favour of ACLs like this one.")


def run() -> Facts:
    """Starts throwaway PostgreSQL and Redis nodes (NoThrowaway without the local servers)."""
    console.title("Network access rules: pg_hba.conf, listen addresses, Redis bind, protected mode, ACLs")
    pg_options = {"settings": {"listen_addresses": LOOPBACK}, "hba": [*HBA, BAN, SUBNET]}
    with throwaway("postgres", **pg_options) as pg, throwaway("redis") as rd:
        url = pg["POSTGRES_URL"]
        facts = postgres_rules(url, urlsplit(url).port)
        redis_rules(facts, urlsplit(rd["REDIS_URL"]).port)
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

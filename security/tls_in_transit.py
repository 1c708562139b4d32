"""TLS in transit: verify-full, what sslmode=require lets through, and what a listener on the wire reads

A client that asks for TLS but checks nothing is encrypted to whoever answers. The `postgres_secure`
server takes TLS only (pg_hba.conf: `hostssl ... scram-sha-256`, `hostnossl ... reject`), with a
certificate signed by a CA made when it was set up. The lesson connects with `sslmode=verify-full`
against that CA and reads its own session in pg_stat_ssl; shows plaintext refused; then what
`sslmode=require` accepts and verify-full refuses: a host name the certificate does not hold (sent
to the server anyway by hostaddr, as a forged DNS answer would), and a man in the middle holding a
certificate from another CA, made at run time in a temporary folder. (With a root certificate at
hand, require checks the CA as verify-ca does, but never the name; the lesson's require clients
have none.) A relay on loopback records every byte both ways: in plaintext it reads the user name,
the statement and the marker row; under TLS none of them. SCRAM never sends the password, even in
plaintext, and its channel binding (SCRAM-SHA-256-PLUS, libpq's default over TLS) makes the server
refuse a login relayed by the man in the middle, unless the client turns it off. Then what the
handshake costs per connection, and how a pool pays it once. Last, the same capture on Redis,
switched to TLS at run time (CONFIG SET tls-port ...) on a throwaway node of the lesson's own.

Engine: PostgreSQL (TLS, pgAudit) (POSTGRES_SECURE_URL, POSTGRES_SECURE_CA) and PostgreSQL
(POSTGRES_URL: it accepts plaintext), schema `tls_in_transit` and role `tls_in_transit_app` on both,
dropped at the end; a throwaway Redis (the shared one, REDIS_URL, is not touched).
Run: `make up SERVICES="postgres_secure postgres redis"` (or `make local-up`), then
`python security/tls_in_transit.py`.
Look for: `pg_hba.conf rejects ... no encryption`; require connecting where verify-full refuses;
`SCRAM channel binding check failed`; the marker in each capture (2 in plaintext, 0 under TLS).
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import secrets
import select
import socket
import ssl
import statistics
import struct
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import ConnectionPool

from common import console
from common.settings import CONNECT_TIMEOUT_S, postgres_secure_url, postgres_url, require

REQUIRES = ("postgres_secure", "postgres", "redis")
SCHEMA = "tls_in_transit"
APP = f"{SCHEMA}_app"
MARKER = "marker-7f3a-card-4111111111111111"  # what a listener hopes to read
CONNECTS = 15  # connections timed per variant: the median is printed
SSL_REQUEST = struct.pack("!II", 8, 80877103)  # a PostgreSQL client's first 8 bytes: "may we talk TLS?"
SESSION = "SELECT ssl, version, cipher, bits FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
OPTIONS = {"connect_timeout": CONNECT_TIMEOUT_S, "gssencmode": "disable"}


# --- certificates made at run time: another CA, and what it signs -------------------------------


def _sign(subject: str, issuer: str, public_key, signer, extension, critical: bool) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = x509.CertificateBuilder(
        issuer_name=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]),
        subject_name=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]),
        public_key=public_key,
        serial_number=x509.random_serial_number(),
        not_valid_before=now - datetime.timedelta(minutes=5),
        not_valid_after=now + datetime.timedelta(days=1),
    )
    return builder.add_extension(extension, critical=critical).sign(signer, hashes.SHA256())


class Authority:
    """A CA of the lesson's own; its key lives in memory only, for the length of the run."""

    def __init__(self, name: str):
        self.name, self.key = name, ec.generate_private_key(ec.SECP256R1())
        self.cert = _sign(name, name, self.key.public_key(), self.key, x509.BasicConstraints(True, 0), True)

    def save(self, path: Path) -> str:
        path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        return str(path)

    def issue(self, folder: Path, stem: str) -> tuple[Path, Path]:
        """A certificate for localhost and 127.0.0.1, and its key, as PEM files in `folder`."""
        key = ec.generate_private_key(ec.SECP256R1())
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        cert = _sign(
            "localhost", self.name, key.public_key(), self.key, x509.SubjectAlternativeName(names), False
        )
        (folder / f"{stem}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        pkcs8, plain = serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        (folder / f"{stem}.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, pkcs8, plain))
        return folder / f"{stem}.crt", folder / f"{stem}.key"


# --- a man in the middle on loopback ---------------------------------------------------------------


class Tap:
    """Accepts on a free port, connects on to `target`, and keeps every byte that passes, both ways:
    what a mirrored switch port, a compromised router or a shared network sees of a connection."""

    def __init__(self, target: tuple[str, int]):
        self.target, self.streams, self.threads = target, [], []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self._spawn(self._accept)

    def _spawn(self, target, *args) -> None:
        self.threads.append(threading.Thread(target=target, args=args, daemon=True))
        self.threads[-1].start()

    def _accept(self) -> None:
        while self.listener.fileno() != -1:
            try:
                client, _ = self.listener.accept()
            except OSError:  # a timeout, or the listener closed
                continue
            try:
                client.settimeout(None)
                self._spawn(self._relay, *self.open(client))
            except OSError:  # a client that refused the certificate, for one
                client.close()

    def open(self, client: socket.socket) -> tuple[socket.socket, socket.socket]:
        """Both ends of the relay: here the bytes as they come."""
        return client, _connect(self.target)

    def _relay(self, near: socket.socket, far: socket.socket) -> None:
        """Both ways until an end closes, in one thread (two threads must not share a TLS socket)."""
        seen, other = {near: bytearray(), far: bytearray()}, {near: far, far: near}
        self.streams += seen.values()
        with contextlib.suppress(Exception):  # an end closed, or reset
            while True:
                pending = [end for end in seen if isinstance(end, ssl.SSLSocket) and end.pending()]
                for source in pending or select.select(list(seen), [], [])[0]:
                    data = source.recv(65536)
                    if not data:
                        raise EOFError
                    seen[source] += data
                    other[source].sendall(data)
        for end in seen:
            end.close()

    def close(self) -> Tap:
        """Stop, and wait for every connection through it to end: then the capture is whole."""
        self.listener.close()
        for thread in self.threads:
            thread.join(timeout=5)
        return self

    def count(self, needle: str) -> int:
        return sum(stream.count(needle.encode()) for stream in self.streams)

    def __enter__(self) -> Tap:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _connect(target: tuple[str, int]) -> socket.socket:
    far = socket.create_connection(target, timeout=CONNECT_TIMEOUT_S)
    far.settimeout(None)
    return far


class Interceptor(Tap):
    """A man in the middle that speaks TLS: its own certificate to the client, a TLS session of its
    own to the server, and the session in the clear in between."""

    def __init__(self, target: tuple[str, int], certificate: tuple[Path, Path]):
        self.as_server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.as_server.load_cert_chain(*certificate)
        self.as_client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.as_client.check_hostname, self.as_client.verify_mode = False, ssl.CERT_NONE
        super().__init__(target)

    def open(self, client: socket.socket) -> tuple[socket.socket, socket.socket]:
        if client.recv(8, socket.MSG_WAITALL) != SSL_REQUEST:
            raise OSError("not a TLS request")
        client.sendall(b"S")  # "yes, TLS", as the server would answer
        near, far = self.as_server.wrap_socket(client, server_side=True), _connect(self.target)
        far.sendall(SSL_REQUEST)
        if far.recv(1) != b"S":
            raise OSError("the server refused TLS")
        return near, self.as_client.wrap_socket(far)


# --- PostgreSQL: what each client setting accepts -----------------------------------------------------


@dataclass
class Attempt:
    client: str  # sslmode, and what else the client set
    through: str  # what answered it
    outcome: str  # "connected", or what refused it (REASONS)
    marker_read: int | None = None  # times a relay on the way read the marker in the clear
    user_read: int | None = None  # times it read the user name
    message: str = field(default="", compare=False)  # the error's first line (ports vary)

    @property
    def connected(self) -> bool:
        return self.outcome == "connected"


REASONS = {  # what refused a connection, by words of its error
    "no encryption": "pg_hba.conf: no TLS",
    "does not match host name": "wrong name",
    "certificate verify failed": "unknown CA",
    "channel binding": "channel binding",
}


def attempt(url: str, client: str, through: str, relay: Tap | None = None, **params) -> Attempt:
    """Connect with `params` on top of `url`, send the marker and read it back; what happened."""
    try:
        with psycopg.connect(url, **OPTIONS, **params) as conn:
            conn.execute("SELECT %s::text", (MARKER,)).fetchone()
        found = Attempt(client, through, "connected")
    except psycopg.OperationalError as error:
        message = str(error).strip().splitlines()[0]
        outcome = next((why for words, why in REASONS.items() if words in message), "refused")
        found = Attempt(client, through, outcome, message=message)
    if relay is not None:
        found.marker_read, found.user_read = relay.close().count(MARKER), relay.count(APP)
    return found


def address(url: str) -> tuple[str, int]:
    params = conninfo_to_dict(url)
    return params.get("host", "localhost"), int(params.get("port", 5432))


def attempts(url: str, password: str, folder: Path, other: Authority) -> dict[str, Attempt]:
    """What verify-full refuses and require accepts: the wrong name, another CA, a man in the middle."""
    (host, port), url = address(url), make_conninfo(url, user=APP, password=password)
    no_root = {"sslmode": "require", "sslrootcert": str(folder / "none.crt")}  # a client with no CA to check
    # A name the certificate does not hold; hostaddr plays the DNS answer that sends the client here anyway.
    elsewhere = {"host": "db.example.invalid", "hostaddr": socket.gethostbyname(host)}
    found = {"plaintext": attempt(url, "disable", "the server", sslmode="disable")}
    found["wrong name, verify-full"] = attempt(url, "verify-full", "db.example.invalid", **elsewhere)
    found["wrong name, require"] = attempt(url, "require", "db.example.invalid", **elsewhere, **no_root)
    root = other.save(folder / "other-ca.crt")
    found["other CA, verify-full"] = attempt(url, "verify-full, other CA", "the server", sslrootcert=root)
    impostor = other.issue(folder, "impostor")  # the right names, from another CA
    unbound = {**no_root, "channel_binding": "disable"}
    for key, mode, extra in (
        ("mitm, verify-full", "verify-full", {}),
        ("mitm, require", "require", no_root),
        ("mitm, require, no channel binding", "require, no binding", unbound),
    ):
        middle = Interceptor((host, port), impostor)
        found[key] = attempt(
            url, mode, "man in the middle", middle, host="127.0.0.1", port=middle.port, **extra
        )
    return found


# --- on the wire: the same marker, in plaintext and over TLS -------------------------------------------


@dataclass
class Capture:
    size: int = field(compare=False)  # bytes both ways (a handshake varies by a few)
    marker: int  # times the marker's text passed
    statement: int  # times the statement (PostgreSQL) or the key name (Redis) passed
    password: int | None = None
    user_name: int | None = None


def reset(admin: psycopg.Connection, password: str | None) -> None:
    """The lesson's schema and role dropped; with a password, made again, the role able to write notes."""
    names = {"s": sql.Identifier(SCHEMA), "app": sql.Identifier(APP)}
    admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {s} CASCADE").format(**names))
    admin.execute(sql.SQL("DROP ROLE IF EXISTS {app}").format(**names))
    if password is None:
        return
    # Hashed here (PQencryptPasswordConn, as psql's \password does): the password never reaches the server.
    verifier = admin.pgconn.encrypt_password(password.encode(), APP.encode(), b"scram-sha-256").decode()
    admin.execute(sql.SQL("CREATE ROLE {app} LOGIN PASSWORD {v}").format(**names, v=sql.Literal(verifier)))
    admin.execute(sql.SQL("CREATE SCHEMA {s}").format(**names))
    admin.execute(sql.SQL("CREATE TABLE {s}.notes (id int PRIMARY KEY, body text NOT NULL)").format(**names))
    admin.execute(sql.SQL("GRANT USAGE ON SCHEMA {s} TO {app}").format(**names))
    admin.execute(sql.SQL("GRANT SELECT, INSERT ON {s}.notes TO {app}").format(**names))


def postgres_capture(url: str, password: str, plaintext: bool) -> Capture:
    """As the lesson's role, through a tap: write the marker row and read it back; what the tap saw."""
    notes = sql.Identifier(SCHEMA, "notes")
    with Tap(address(url)) as tap:
        login = {"host": "127.0.0.1", "port": tap.port, "user": APP, "password": password}
        login |= {"sslmode": "disable"} if plaintext else {}
        with psycopg.connect(url, **OPTIONS, **login) as conn:
            conn.execute(sql.SQL("INSERT INTO {} (id, body) VALUES (%s, %s)").format(notes), (1, MARKER))
            read = conn.execute(sql.SQL("SELECT body FROM {} WHERE id = 1").format(notes)).fetchone()
            assert read == (MARKER,)
    size = sum(map(len, tap.streams))
    return Capture(size, tap.count(MARKER), tap.count("INSERT INTO"), tap.count(password), tap.count(APP))


def redis_captures(folder: Path, authority: Authority) -> tuple[dict[str, Capture], str]:
    """The marker key through a tap in plaintext and over TLS; none, and why, when TLS cannot be had."""
    from servers.local.base import free_port
    from servers.throwaway import NoThrowaway, throwaway

    ca, (cert, key) = authority.save(folder / "redis-ca.crt"), authority.issue(folder, "redis")
    tls_port = free_port()
    settings = {"tls-cert-file": cert, "tls-key-file": key, "tls-ca-cert-file": ca, "tls-port": tls_port}
    settings["tls-auth-clients"] = "no"  # clients need no certificate of their own
    found, key_name = {}, f"{SCHEMA}:card"
    try:
        with throwaway("redis") as env:
            node = redis.Redis.from_url(env["REDIS_URL"], socket_timeout=CONNECT_TIMEOUT_S)
            try:  # Redis 7 applies several settings at once, all or none
                node.execute_command("CONFIG", "SET", *(str(x) for pair in settings.items() for x in pair))
            except redis.ResponseError as error:  # a container node cannot read this machine's files
                return {}, f"the throwaway Redis refused the TLS settings ({error})"
            host, port = (node.connection_pool.connection_kwargs[k] for k in ("host", "port"))
            verified = {"ssl": True, "ssl_ca_certs": ca, "ssl_check_hostname": True}  # the CA, and the name
            for label, target, tls in (("Redis plaintext", port, {}), ("Redis TLS", tls_port, verified)):
                with Tap((host, target)) as tap, redis.Redis("127.0.0.1", tap.port, **tls) as client:
                    client.set(key_name, MARKER)
                    assert client.get(key_name) == MARKER.encode()
                found[label] = Capture(sum(map(len, tap.streams)), tap.count(MARKER), tap.count(key_name))
    except NoThrowaway as missing:
        return {}, str(missing)
    return found, ""


# --- what a handshake costs ---------------------------------------------------------------------------


def median_ms(action) -> float:
    times = []
    for _ in range(CONNECTS):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def connect_costs(plain: str, secure: str) -> dict[str, float]:
    """A new connection each time, without TLS and with it, against a checkout from a pool."""
    costs = {f"new connection, {label}": median_ms(lambda url=url: psycopg.connect(url, **OPTIONS).close())
             for label, url in (("plaintext (postgres)", plain), ("TLS (postgres_secure)", secure))}  # fmt: skip
    with ConnectionPool(secure, min_size=1, max_size=1, kwargs=OPTIONS) as pool:
        pool.wait()

        def checkout() -> None:
            with pool.connection() as conn:
                conn.execute("SELECT 1")

        costs["pooled checkout, TLS (postgres_secure)"] = median_ms(checkout)
    return costs


# --- the lesson -------------------------------------------------------------------------------------------


@dataclass
class TlsResult:
    session: tuple  # pg_stat_ssl of the verify-full connection: ssl, version, cipher, bits
    attempts: dict[str, Attempt]
    wire: dict[str, Capture]  # what a tap read, by engine and transport
    redis_skipped: str = ""  # why the Redis part did not run, when it did not
    connect_ms: dict[str, float] = field(default_factory=dict, compare=False)

    @property
    def holds(self) -> bool:
        """verify-full connects over TLS and refuses what require lets through; plaintext is refused;
        the man in the middle reads the marker once channel binding is off; a tap, in plaintext only."""
        refused = [a for k, a in self.attempts.items() if k == "plaintext" or k.endswith("verify-full")]
        return (
            self.session[0] is True
            and not any(attempt.connected for attempt in refused)
            and self.attempts["wrong name, require"].connected
            and self.attempts["mitm, require, no channel binding"].marker_read > 0
            and all((c.marker > 0) == label.endswith("plaintext") for label, c in self.wire.items())
        )


def run(secure: str, plain: str) -> TlsResult:
    """`secure`: postgres_secure's URL with sslmode=verify-full and its CA; `plain`: the shared PostgreSQL."""
    console.title("TLS in transit: verify-full, what sslmode=require lets through, and what the wire shows")
    password = secrets.token_urlsafe(18)
    with (
        tempfile.TemporaryDirectory(prefix="tls-in-transit-") as tmp,
        psycopg.connect(secure, autocommit=True) as admin_s,
        psycopg.connect(plain, autocommit=True) as admin_p,
    ):
        try:
            for admin in (admin_s, admin_p):
                reset(admin, password)
            return lesson(secure, plain, password, Path(tmp))
        finally:
            for admin in (admin_s, admin_p):
                reset(admin, None)


def lesson(secure: str, plain: str, password: str, folder: Path) -> TlsResult:
    console.step("Connect with sslmode=verify-full and the server's CA; ask the server about the session")
    with psycopg.connect(secure, **OPTIONS) as conn:
        session = conn.execute(SESSION).fetchone()
    console.table(["ssl", "protocol", "cipher", "bits"], [session])

    console.step("Try what verify-full refuses and require lets through")
    other = Authority("tls_in_transit: another CA")
    tried = attempts(secure, password, folder, other)
    rows = [(a.client, a.through, a.outcome, a.marker_read) for a in tried.values()]
    console.table(["client", "answered by", "outcome", "marker read"], dashes(rows))
    console.say(tried["plaintext"].message)
    read = tried["mitm, require"].user_read
    console.say(f"require encrypts to whoever answers: the man in the middle read the user name ({read}x)")
    console.say(
        "before SCRAM channel binding failed the login: the client binds its proof to the certificate"
    )
    console.say("it was shown, not the server's. With channel_binding=disable (no binding) it read the whole")
    console.say("session. verify-full stopped it at the handshake, before any of it.")

    console.step("Record the wire: the same marker written and read in plaintext and over TLS")
    wire = {"PostgreSQL plaintext": postgres_capture(plain, password, plaintext=True)}
    wire["PostgreSQL TLS"] = postgres_capture(secure, password, plaintext=False)
    redis_wire, redis_skipped = redis_captures(folder, other)
    wire |= redis_wire
    rows = [(k, c.size, c.marker, c.statement, c.password, c.user_name) for k, c in wire.items()]
    console.table(["capture", "bytes", "marker", "statement/key", "password", "user"], dashes(rows))
    if redis_skipped:
        console.say(f"Redis part skipped: {redis_skipped}.")
    console.say("Plaintext gives a listener the user name, the statements and the rows. SCRAM never sends")
    console.say("the password, even then, but a recorded exchange lets guesses be tried offline. TLS leaves")
    console.say("a handshake and ciphertext.")

    console.step("Time a new connection without TLS, with it, and a checkout from a pool")
    costs = connect_costs(plain, secure)
    console.table(["connection", f"median of {CONNECTS}"], [(k, f"{v:.2f} ms") for k, v in costs.items()])
    console.say("The handshake is paid by every new connection (the two servers differ in logging too); a")
    console.say("pool keeps its connections open, so a checkout pays neither the handshake nor SCRAM.")
    return TlsResult(session, tried, wire, redis_skipped, costs)


def dashes(rows: list[tuple]) -> list[list]:
    return [["—" if value is None else value for value in row] for row in rows]


def main() -> int:
    require(*REQUIRES)
    result = run(postgres_secure_url(), postgres_url())
    return 0 if result.holds else 1


if __name__ == "__main__":
    raise SystemExit(main())

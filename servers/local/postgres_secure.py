"""PostgreSQL for the security lessons: TLS required, pgAudit, connections and statements logged.

The same server as `postgres` (Debian's PostgreSQL 15) with the settings of the compose service
`postgres_secure`: TLS on (a certificate signed by a CA made here on first start, with the SAN
entries localhost, 127.0.0.1, ::1 and the compose service name), TLS 1.2 at least, the pg_hba.conf
of the compose image (servers/compose/postgres-secure/pg_hba.conf: the socket trusted, TLS with a
SCRAM password over the network, plaintext rejected), pgAudit preloaded (Debian's
postgresql-15-pgaudit) and the log written as CSV into the data folder's log/, where lessons read
it with pg_read_file(pg_current_logfile('csvlog')).

The certificates are made with `cryptography`. On the compose port (`make local-up`) they are
those of .local/certs/postgres_secure/, the folder the compose container uses too, so
POSTGRES_SECURE_CA's default names the right CA whichever of the two runs; on any other port (the
test suite) they live in the server's own folder. The CA's private key is never written: once it
has signed the server's certificate nothing else is ever signed with it.
"""

from __future__ import annotations

import datetime
import fcntl
import ipaddress
import os
import shutil
from pathlib import Path

import psycopg
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from common.settings import ROOT, verify_full
from servers.local.base import ServerStartError
from servers.local.postgres import PostgresServer, bin_dir

HBA_FILE = ROOT / "servers" / "compose" / "postgres-secure" / "pg_hba.conf"
SHARED_CERTS = ROOT / ".local" / "certs" / "postgres_secure"
DNS_NAMES = ("localhost", "postgres_secure")  # the compose service name: how other containers reach it
IP_ADDRESSES = ("127.0.0.1", "::1")
# What the compose service passes as `-c` options too (tests/test_registry.py compares the two).
SETTINGS = {
    "ssl": "on",
    "ssl_min_protocol_version": "TLSv1.2",
    "shared_preload_libraries": "pgaudit,pg_stat_statements",
    "logging_collector": "on",
    "log_destination": "csvlog",
    "log_directory": "log",
    "log_connections": "on",
    "log_disconnections": "on",
    "log_line_prefix": "%m [%p] user=%u db=%d app=%a ",
    "max_connections": "200",
}


def _certificate(subject: str, issuer: str, public_key, signer, extensions: list) -> x509.Certificate:
    """A certificate for `public_key`, signed by `signer`, valid from now for ten years."""
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(signer, hashes.SHA256())


def make_certificates(folder: Path) -> None:
    """ca.crt, server.crt and server.key (mode 0600) in `folder`, unless all three are there already."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as lock:  # the compose entrypoint takes the same lock (flock)
        fcntl.flock(lock, fcntl.LOCK_EX)
        if all((folder / name).is_file() for name in ("ca.crt", "server.crt", "server.key")):
            return
        ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
        ca_name = "database-examples postgres_secure CA"
        ca = _certificate(ca_name, ca_name, ca_key.public_key(), ca_key, [
            (x509.BasicConstraints(ca=True, path_length=0), True),
            (x509.KeyUsage(False, False, False, False, False, True, True, False, False), True),  # cert and CRL signing
            (x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False),
        ])  # fmt: skip
        names = [x509.DNSName(name) for name in DNS_NAMES]
        names += [x509.IPAddress(ipaddress.ip_address(address)) for address in IP_ADDRESSES]
        server = _certificate("localhost", ca_name, server_key.public_key(), ca_key, [
            (x509.BasicConstraints(ca=False, path_length=None), True),
            (x509.KeyUsage(True, False, False, False, False, False, False, False, False), True),  # signatures
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
            (x509.SubjectAlternativeName(names), False),
            (x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False),
        ])  # fmt: skip
        key_pem = server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        descriptor = os.open(folder / "server.key", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as key_file:
            key_file.write(key_pem)
        (folder / "server.crt").write_bytes(server.public_bytes(serialization.Encoding.PEM))
        (folder / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))  # last: the set is whole


class PostgresSecureServer(PostgresServer):
    engine = "postgres_secure"
    display = "PostgreSQL (TLS, pgAudit)"
    compose_port = 5435

    def __init__(self, port, workdir):
        tls = Path(workdir) / "tls"  # the server's own copies: its OS account must own the key
        settings = {
            **SETTINGS,
            "ssl_cert_file": str(tls / "server.crt"),
            "ssl_key_file": str(tls / "server.key"),
            # Only the server's OS account (and root) may use the trusted socket.
            "unix_socket_permissions": "0700",
        }
        super().__init__(port, workdir, settings=settings, hba=HBA_FILE.read_text().splitlines())
        self.certs = SHARED_CERTS if port == self.compose_port else self.workdir / "certs"

    @classmethod
    def installed(cls) -> bool:
        return super().installed() and (bin_dir().parent / "lib" / "pgaudit.so").exists()

    @property
    def ca(self) -> Path:
        return self.certs / "ca.crt"

    def prepare(self) -> None:
        super().prepare()  # initdb, and the pg_hba.conf above
        make_certificates(self.certs)
        tls = self.workdir / "tls"
        tls.mkdir(exist_ok=True)
        try:
            for name, mode in (("server.crt", 0o644), ("server.key", 0o600)):
                data = (self.certs / name).read_bytes()
                with os.fdopen(
                    os.open(tls / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "wb"
                ) as copy:
                    copy.write(data)
                if self.run_as and os.geteuid() == 0:
                    shutil.chown(tls / name, user=self.run_as, group=self.run_as)
        except PermissionError as error:
            raise ServerStartError(
                f"{self.display}: cannot read the key in {self.certs} ({error.strerror}); it was made by "
                f"another user (the compose container runs as root): remove the folder, and it is made again"
            ) from None

    def settings(self) -> dict[str, str]:
        return {"POSTGRES_SECURE_CA": str(self.ca)}

    def ready(self) -> bool:
        """The database exists (the base class makes it), then a query answers over verify-full TLS."""
        from servers.probes import probe

        return super().ready() and probe(self.engine, self.environment())

    def after_ready(self) -> None:
        """pgAudit's event triggers (object names in DDL audit lines) live in its extension."""
        with psycopg.connect(verify_full(self.url(), self.ca), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pgaudit")

"""Password hashing: unsalted SHA-256 against scrypt and bcrypt, in guesses per second

Passwords are hashed, not encrypted: an application never needs one back, only to check a guess. Two
users of one table choose the same password, and each is stored three ways: unsalted SHA-256; scrypt
(Python's hashlib, 16 MiB of memory per guess); bcrypt, computed in the server by pgcrypto's
`crypt(password, gen_salt('bf', 10))`. Read back from the server, the two SHA-256 hashes are equal (one
guess cracks both, and a table computed in advance cracks everyone's) while the salted hashes differ;
each KDF lets the right password in and keeps a wrong one out; the bcrypt hash carries its algorithm and
cost (`$2a$10$`), so the cost can be raised for new hashes without breaking old ones. Then what a stolen
row costs an attacker: guesses per second for each scheme, measured here, and how many SHA-256 guesses
one slow guess is worth. bcrypt reads only the first 72 bytes of a password; scrypt reads them all.
Argon2id is the first choice (OWASP); it needs argon2-cffi, not a dependency here, so scrypt stands in.

Engine: PostgreSQL (POSTGRES_URL), schema `password_hashing` (pgcrypto goes where the database has it,
else in public, and is never dropped: other lessons use it).
Run: `make up SERVICES=postgres` (or `make local-up`), then `python security/password_hashing.py`.
Look for: distinct stored hashes of one password (sha256 1, scrypt 2, bcrypt 2), the logins table, and
the guesses-per-second table with each slow guess priced in SHA-256 guesses.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import time
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from common import console
from common.settings import CONNECT_TIMEOUT_S, postgres_url, require
from common.timing import timer

REQUIRES = ("postgres",)
SCHEMA = "password_hashing"
USERS = ("alice", "bob")  # both choose PASSWORD
PASSWORD, WRONG = "tr0ub4dor&3", "tr0ub4dor&4"
SCRYPT = {"n": 2**14, "r": 8, "p": 5}  # 16 MiB (128 * r * n bytes): one of OWASP's equivalent minimums
SALT = 16
BCRYPT_COST = 10  # OWASP's minimum work factor for bcrypt; each step doubles the cost
BCRYPT_LIMIT = 72  # bytes of a password bcrypt reads
N_GUESSES = 4  # slow guesses timed per scheme
FAST_FOR_S = 0.1  # how long the fast hash is guessed

SETUP = """
CREATE SCHEMA {s};
CREATE TABLE {s}.users (login text PRIMARY KEY, sha256 bytea NOT NULL, scrypt bytea NOT NULL,
                        bcrypt text NOT NULL);
"""
EXTENSION = "SELECT nspname FROM pg_extension JOIN pg_namespace n ON n.oid = extnamespace WHERE extname = %s"
# bcrypt in the server: a new salt for each password, generated with the cost, kept in the hash.
SIGN_UP = "INSERT INTO {s}.users VALUES (%s, %s, %s, {crypt}(%s, {gen_salt}('bf', %s::integer)))"
DISTINCT = "SELECT count(DISTINCT sha256), count(DISTINCT scrypt), count(DISTINCT bcrypt) FROM {s}.users"
# The check: crypt() reads the salt and the cost from the stored hash and hashes the guess with them.
LOG_IN = "SELECT login FROM {s}.users WHERE bcrypt = {crypt}(%s, bcrypt) ORDER BY login"
PREFIXES = "SELECT DISTINCT left(bcrypt, 7) FROM {s}.users"
STOLEN = "SELECT sha256, scrypt, bcrypt FROM {s}.users WHERE login = %s"
BCRYPT_GUESSES = "SELECT count(*) FROM generate_series(1, %s) AS g WHERE {crypt}(%s || g, %s) = %s"
BCRYPT_LONG = "SELECT {crypt}(%s, h) = h FROM (SELECT {crypt}(%s, {gen_salt}('bf', %s::integer)) AS h) AS t"


@dataclass
class HashingResult:
    pgcrypto_schema: str
    distinct_hashes: dict[str, int]  # scheme -> distinct stored hashes of one password, one per user
    scrypt_verifies: bool  # the right password matches and a wrong one does not
    logins: dict[str, list[str]]  # bcrypt in SQL: password tried -> the logins it opens
    bcrypt_prefix: str  # $2a$10$: the algorithm and the cost travel with the hash
    past_the_limit: dict[str, bool]  # scheme -> a password that differs only after byte 72 is let in
    guesses_per_s: dict[str, float] = field(compare=False)

    @property
    def guess_cost(self) -> dict[str, float]:
        """One guess of each scheme, in guesses of the fast hash."""
        fast = self.guesses_per_s["sha256"]
        return {name: fast / rate for name, rate in self.guesses_per_s.items()}

    @property
    def holds(self) -> bool:
        return (
            self.distinct_hashes == {"sha256": 1, "scrypt": len(USERS), "bcrypt": len(USERS)}
            and self.scrypt_verifies
            and self.logins == {"right": sorted(USERS), "wrong": []}
            and self.bcrypt_prefix == f"$2a${BCRYPT_COST:02d}$"
        )


def q(text: str, crypto: str = "public") -> sql.Composed:
    """SQL with the lesson's schema as {s}, pgcrypto's crypt and gen_salt schema-qualified."""
    return sql.SQL(text).format(
        s=sql.Identifier(SCHEMA), crypt=sql.Identifier(crypto, "crypt"),
        gen_salt=sql.Identifier(crypto, "gen_salt"),
    )  # fmt: skip


def pgcrypto_schema(pg: psycopg.Connection) -> str:
    """Where this database has pgcrypto; made in public when nowhere, never dropped (others may use it)."""
    if pg.execute(EXTENSION, ("pgcrypto",)).fetchone() is None:
        with contextlib.suppress(psycopg.errors.UniqueViolation):  # another session made it just now
            pg.execute("CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA public")
    return pg.execute(EXTENSION, ("pgcrypto",)).fetchone()[0]


def sha256(password: str) -> bytes:
    """Fast and unsalted: one password, one hash, on every row and every site that uses it."""
    return hashlib.sha256(password.encode()).digest()


def scrypt(password: str, salt: bytes | None = None) -> bytes:
    """Salt and key together (a real store also keeps n, r and p beside them, as bcrypt's $2a$10$ does)."""
    salt = os.urandom(SALT) if salt is None else salt
    return salt + hashlib.scrypt(password.encode(), salt=salt, dklen=32, **SCRYPT)


def scrypt_matches(password: str, stored: bytes) -> bool:
    return hmac.compare_digest(scrypt(password, stored[:SALT]), stored)  # constant time


def sign_up(pg: psycopg.Connection, crypto: str) -> None:
    pg.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SCHEMA)))
    pg.execute(q(SETUP))
    for login in USERS:  # the password is bound: it reaches the server, but not the statement's text
        pg.execute(q(SIGN_UP, crypto), (login, sha256(PASSWORD), scrypt(PASSWORD), PASSWORD, BCRYPT_COST))


def guesses_per_second(pg: psycopg.Connection, crypto: str, stolen: tuple[bytes, bytes, str]) -> dict:
    """An offline guesser against one stolen row, on one core of this machine, for each scheme."""
    fast, slow, bcrypt = stolen
    n, started = 0, time.perf_counter()
    while time.perf_counter() - started < FAST_FOR_S:
        any([sha256(f"guess-{g}") == fast for g in range(n, n + 1000)])
        n += 1000
    rates = {"sha256": n / (time.perf_counter() - started)}
    with timer() as elapsed:
        any([scrypt_matches(f"guess-{g}", slow) for g in range(N_GUESSES)])
    rates["scrypt"] = N_GUESSES / elapsed.seconds
    with timer() as elapsed:  # the server's core: crypt() once per guess
        pg.execute(q(BCRYPT_GUESSES, crypto), (N_GUESSES, "guess-", bcrypt, bcrypt)).fetchone()
    rates["bcrypt"] = N_GUESSES / elapsed.seconds
    return rates


def past_the_limit(pg: psycopg.Connection, crypto: str) -> dict[str, bool]:
    """Two passwords equal in their first 72 bytes: does the hash of one let the other in?"""
    stored, tried = "x" * BCRYPT_LIMIT + "-the-real-one", "x" * BCRYPT_LIMIT + "-another-one"
    bcrypt = pg.execute(q(BCRYPT_LONG, crypto), (tried, stored, BCRYPT_COST)).fetchone()[0]
    return {"bcrypt": bcrypt, "scrypt": scrypt_matches(tried, scrypt(stored))}


def run(pg: psycopg.Connection) -> HashingResult:
    """`pg`: an autocommit connection that may create a schema (and pgcrypto, when the database lacks it)."""
    console.title("Password hashing: unsalted SHA-256 against scrypt and bcrypt, in guesses per second")
    console.step("Two users sign up with the same password, stored three ways")
    crypto = pgcrypto_schema(pg)
    sign_up(pg, crypto)
    distinct = dict(zip(("sha256", "scrypt", "bcrypt"), pg.execute(q(DISTINCT)).fetchone(), strict=True))
    prefix = pg.execute(q(PREFIXES)).fetchone()[0]
    console.table(["scheme", f"distinct hashes stored for {len(USERS)} users"], distinct.items())
    console.say(
        f"pgcrypto is in {crypto}; every bcrypt hash begins {prefix}: algorithm 2a, cost {BCRYPT_COST}."
    )
    console.say("Equal unsalted hashes: one guess cracks both, and a table computed once cracks every site.")

    console.step("Logging in: each KDF lets the right password in and keeps a wrong one out")
    logins = {label: [row[0] for row in pg.execute(q(LOG_IN, crypto), (password,))]
              for label, password in (("right", PASSWORD), ("wrong", WRONG))}  # fmt: skip
    stolen = pg.execute(q(STOLEN), (USERS[0],)).fetchone()
    verifies = scrypt_matches(PASSWORD, stolen[1]) and not scrypt_matches(WRONG, stolen[1])
    console.table(["check", "outcome"], [
        ("bcrypt in SQL: bcrypt = crypt(right password, bcrypt)", ", ".join(logins["right"]) or "nobody"),
        ("bcrypt in SQL: bcrypt = crypt(wrong password, bcrypt)", ", ".join(logins["wrong"]) or "nobody"),
        (f"scrypt in the application, for {USERS[0]}", "right in, wrong out" if verifies else "FAILED"),
    ])  # fmt: skip

    console.step("A stolen row: what each guess costs an offline attacker")
    rates = guesses_per_second(pg, crypto, stolen)
    result = HashingResult(crypto, distinct, verifies, logins, prefix, past_the_limit(pg, crypto), rates)
    labels = {"sha256": "sha256, unsalted", "scrypt": "scrypt n=2^14 r=8 p=5",
              "bcrypt": f"bcrypt cost {BCRYPT_COST}, in SQL"}  # fmt: skip
    cost = result.guess_cost
    console.table(["hash", "guesses per second", "one guess costs"],
                  [(labels[k], rate, f"{cost[k]:,.0f} sha256 guesses") for k, rate in rates.items()])  # fmt: skip
    console.say("One core each, sha256 in a Python loop: a GPU guesser runs the fast hash much faster still;")
    console.say("scrypt's 16 MiB per guess makes running many guesses side by side (GPUs, ASICs) costly.")

    console.step("What bcrypt ignores, and what to use first")
    console.table(["scheme", f"a password equal in its first {BCRYPT_LIMIT} bytes logs in"],
                  result.past_the_limit.items())  # fmt: skip
    for line in (
        f"bcrypt reads {BCRYPT_LIMIT} bytes: refuse longer passwords rather than cut them silently.",
        "Argon2id (19 MiB, 2 iterations, 1 lane at least) is OWASP's first choice, scrypt the second,",
        "bcrypt for legacy systems. argon2-cffi is not a dependency here; scrypt is in hashlib.",
        "crypt() in the server means the password travels to it: bound, as here, it stays out of",
        "pg_stat_statements, but a server logging statements with their parameters writes it down.",
    ):
        console.say(line)
    return result


def main() -> int:
    require(*REQUIRES)
    with psycopg.connect(postgres_url(), connect_timeout=CONNECT_TIMEOUT_S, autocommit=True) as pg:
        result = run(pg)
    return 0 if result.holds else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Encryption at rest: pgcrypto, envelope encryption and blind indexes, proved on disk

Three copies of one customers table: plain; encrypted in the server by pgcrypto's `pgp_sym_encrypt`;
encrypted in the application by envelope encryption (each row sealed with AES-GCM under a data key,
the data keys stored wrapped by a key-encryption key, the KEK, that never reaches the database).
The proof is read from the server's own files: after CHECKPOINT one row's e-mail, the marker, is in
the plain table's data file and backup, in neither for the encrypted copies. Rotating the KEK
re-wraps the data keys and leaves every row's ciphertext as it was. A blind index (HMAC-SHA256 of
the normalised value under a key of its own) keeps indexed equality search on a column the server
cannot read. MongoDB gets the same envelope per field, the shape of its client-side field-level
encryption. Last, what none of this protects against: keys in the application process, a passphrase
in SQL text (pg_stat_statements) and in the server log. (Passwords are hashed, not encrypted: see
password_hashing.py.)

Engine: PostgreSQL (POSTGRES_URL, a superuser such as the compose `examples`: it runs CHECKPOINT and
reads data files), schema `encryption_at_rest` (pgcrypto goes where the database has it, else in
public, and is never dropped; pg_stat_statements is looked up where the server setup created it);
MongoDB (MONGO_URL), database `encryption_at_rest`.
Run: `make up SERVICES="postgres mongodb"` (or `make local-up`), then `python security/encryption_at_rest.py`.
Look for: the marker table (1 for the plain table on disk and in the backup, 0 for the encrypted
ones), "0 of 2,000" ciphertexts changed by KEK rotation, the blind index in the plan, and the
passphrase verbatim in pg_stat_statements for a DO block only.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import random
import re
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field

import psycopg
import pymongo
from bson import Binary
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from common import console
from common.settings import CONNECT_TIMEOUT_S, mongo_url, postgres_url, require
from common.timing import best_of, timer

REQUIRES = ("postgres", "mongodb")
SCHEMA = DATABASE = "encryption_at_rest"
SEED, N_ROWS, N_DATA_KEYS, N_DOCUMENTS = 11, 2_000, 8, 200
MARKER, MARKER_ID = "quokka-7f3a-marker@example.org", 42
SEARCHED_AS = "  Quokka-7F3A-Marker@Example.ORG "  # as a user types it: the blind index normalises it
PLAIN, PGP, ENVELOPE = "customers_plain", "customers_pgcrypto", "customers_envelope"
HOW = {PLAIN: "no", PGP: "in the server", ENVELOPE: "in the app"}
BLIND_INDEX = "customers_envelope_email_bidx"
NONCE = 12
PROBE, PROBE_PASSPHRASE = "encryption_at_rest_probe", "probe-passphrase-in-sql-text"
SETTINGS = ("log_min_duration_statement", "log_statement", "log_parameter_max_length")
Texts = dict[str, tuple[int, int, str]]  # variant -> texts found, texts holding the secret, the shortest

SETUP = """
CREATE SCHEMA {s};
CREATE TABLE {s}.data_keys (id integer PRIMARY KEY, kek_id text NOT NULL, wrapped bytea NOT NULL);
CREATE TABLE {s}.customers_plain (id integer PRIMARY KEY, email text NOT NULL);
CREATE TABLE {s}.customers_pgcrypto (id integer PRIMARY KEY, email bytea NOT NULL);
CREATE TABLE {s}.customers_envelope (id integer PRIMARY KEY, key_id integer NOT NULL REFERENCES {s}.data_keys,
                                     email bytea NOT NULL, email_bidx bytea NOT NULL);
CREATE UNIQUE INDEX customers_envelope_email_bidx ON {s}.customers_envelope (email_bidx);
"""
ENCRYPT_IN_SERVER = "INSERT INTO {s}.customers_pgcrypto SELECT id, {enc}(email, %s) FROM {s}.customers_plain"
EXTENSION = "SELECT nspname FROM pg_extension JOIN pg_namespace n ON n.oid = extnamespace WHERE extname = %s"
FILES = """SELECT pg_relation_filepath(c.oid), pg_relation_filepath(NULLIF(c.reltoastrelid, 0))
           FROM pg_class c WHERE c.oid = %s::regclass"""
BY_BLIND_INDEX = "SELECT id FROM {s}.customers_envelope WHERE email_bidx = %s"
EXPLAIN_BLIND = "EXPLAIN (COSTS OFF) SELECT id, email FROM {s}.customers_envelope WHERE email_bidx = %s"
BY_DECRYPTING = "SELECT id FROM {s}.customers_pgcrypto WHERE {dec}(email, %s) = %s"
ENVELOPE_ROW = "SELECT key_id, email FROM {s}.customers_envelope WHERE id = %s"
REWRAP = "UPDATE {s}.data_keys SET wrapped = %s, kek_id = %s WHERE id = %s"
# pg_stat_statements (`{v}`, in schema `{x}`): this database's texts; then the lesson's own entries removed.
TEXTS = """SELECT DISTINCT query FROM {v}
    WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"""
FORGET = """SELECT {x}.pg_stat_statements_reset(userid, dbid, queryid) FROM {v}
    WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND strpos(query, %s) > 0"""


@dataclass
class Keys:
    """In production the KEK stays in a KMS or an HSM; here the application process holds every key."""

    kek_id: str = "kek-1"
    kek: bytes = field(default_factory=lambda: AESGCM.generate_key(bit_length=256), repr=False)
    index_key: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)
    passphrase: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)


@dataclass
class Rotation:
    ciphertexts_changed: int  # rows whose sha256(email) differs before and after
    rows: int
    wrapped_keys_changed: int
    data_keys: int
    decrypt_with_new_kek: int  # rows that decrypt to the value written
    decrypt_with_old_kek: int


@dataclass
class MongoFacts:
    documents: int
    marker_in_raw_find: int  # in the BSON bytes the server returned for the encrypted collection
    marker_in_plain_copy: int  # the control: the same documents in plaintext
    marker_after_decryption: int
    found_by_blind_index: bool


@dataclass
class EncryptionResult:
    pgcrypto_schema: str = ""
    pgp_decrypts: bool = False
    pgp_wrong_passphrase: str = ""  # its SQLSTATE
    envelope_decrypts: bool = False
    moved_ciphertext_fails: bool = False  # the row id is AES-GCM's associated data
    same_value_differs: bool = False  # random IV and nonce: equal values, unequal ciphertexts
    on_disk: dict[str, int] = field(default_factory=dict)  # table -> marker count in its data files
    backup_tool: str = ""
    in_backup: dict[str, int] = field(default_factory=dict)
    rotation: Rotation | None = None
    blind_index_finds: list[int] = field(default_factory=list)
    blind_index_in_plan: bool = False
    mongo: MongoFacts | None = None
    statements: Texts | None = None  # None: pg_stat_statements not loaded or not created here
    settings: dict[str, str] = field(default_factory=dict)
    plan: str = field(default="", compare=False)

    @property
    def holds(self) -> bool:
        r, m = self.rotation, self.mongo
        return (
            self.on_disk[PLAIN] > 0 and self.in_backup[PLAIN] > 0
            and all(self.on_disk[t] == self.in_backup[t] == 0 for t in (PGP, ENVELOPE))
            and self.pgp_decrypts and self.envelope_decrypts and self.moved_ciphertext_fails
            and r.ciphertexts_changed == 0 and r.wrapped_keys_changed == r.data_keys
            and r.decrypt_with_new_kek == r.rows and r.decrypt_with_old_kek == 0
            and self.blind_index_finds == [MARKER_ID] and self.blind_index_in_plan
            and m.marker_in_raw_find == 0 and m.marker_in_plain_copy > 0
            and m.marker_after_decryption == 1 and m.found_by_blind_index
        )  # fmt: skip


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """AES-GCM with a fresh 96-bit nonce stored in front; `aad` is authenticated, not stored."""
    nonce = os.urandom(NONCE)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def unseal(key: bytes, blob: bytes, aad: bytes) -> bytes:
    return AESGCM(key).decrypt(blob[:NONCE], blob[NONCE:], aad)


def aad(kind: str, number: int) -> bytes:
    """What a ciphertext is bound to: a data key to its id, an e-mail to its row."""
    return b"%s:%d" % (kind.encode(), number)


def unwrap_all(kek: bytes, wrapped: dict[int, bytes]) -> dict[int, bytes]:
    """The data keys this KEK opens: a wrong KEK opens none, AES-GCM's tag check fails."""
    keys = {}
    for key_id, blob in wrapped.items():
        with contextlib.suppress(InvalidTag):
            keys[key_id] = unseal(kek, blob, aad("data-key", key_id))
    return keys


def blind_index(index_key: bytes, value: str) -> bytes:
    """HMAC-SHA256 of the normalised value: equal values give equal tags; without the key, no guessing."""
    return hmac.new(index_key, " ".join(value.split()).casefold().encode(), hashlib.sha256).digest()


def occurrences(blob: bytes) -> int:
    """The marker as text, or as the hex a text dump writes for bytea."""
    return blob.count(MARKER.encode()) + blob.count(MARKER.encode().hex().encode())


def emails() -> dict[int, str]:
    rng = random.Random(SEED)
    names = ("ana", "ben", "chen", "dara", "eli", "fatima", "goran", "hana")
    rows = {i: f"{rng.choice(names)}.{i}@example.{rng.choice(('com', 'net'))}" for i in range(1, N_ROWS + 1)}
    return rows | {MARKER_ID: MARKER}


def q(text: str, crypto: str = "public", **parts: sql.Composable) -> sql.Composed:
    """SQL with the lesson's schema as {s}, and pgcrypto's functions schema-qualified as {enc}, {dec}..."""
    functions = {"enc": "pgp_sym_encrypt", "dec": "pgp_sym_decrypt"}
    names = {alias: sql.Identifier(crypto, name) for alias, name in functions.items()}
    return sql.SQL(text).format(s=sql.Identifier(SCHEMA), **names, **parts)


def pgcrypto_schema(pg: psycopg.Connection) -> str:
    """Where this database has pgcrypto; made in public when nowhere, never dropped (others may use it)."""
    if pg.execute(EXTENSION, ("pgcrypto",)).fetchone() is None:
        with contextlib.suppress(psycopg.errors.UniqueViolation):  # another session made it just now
            pg.execute("CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA public")
    return pg.execute(EXTENSION, ("pgcrypto",)).fetchone()[0]


def build(pg: psycopg.Connection, crypto: str, keys: Keys, rows: dict[int, str]) -> None:
    pg.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SCHEMA)))
    pg.execute(q(SETUP))
    with pg.cursor().copy(q("COPY {s}.customers_plain (id, email) FROM STDIN")) as copy:
        for row in rows.items():
            copy.write_row(row)
    pg.execute(q(ENCRYPT_IN_SERVER, crypto), (keys.passphrase,))  # the passphrase travels to the server
    data_keys = {k: AESGCM.generate_key(bit_length=256) for k in range(1, N_DATA_KEYS + 1)}
    with pg.cursor().copy(q("COPY {s}.data_keys FROM STDIN")) as copy:
        for key_id, dek in data_keys.items():
            copy.write_row((key_id, keys.kek_id, seal(keys.kek, dek, aad("data-key", key_id))))
    with pg.cursor().copy(q("COPY {s}.customers_envelope FROM STDIN")) as copy:
        for row_id, email in rows.items():  # only ciphertext and the HMAC leave the application
            key_id = row_id % N_DATA_KEYS + 1
            sealed = seal(data_keys[key_id], email.encode(), aad(ENVELOPE, row_id))
            copy.write_row((row_id, key_id, sealed, blind_index(keys.index_key, email)))
    pg.execute(q("ANALYZE {s}.customers_envelope"))


def wrapped_keys(pg: psycopg.Connection) -> dict[int, bytes]:
    return dict(pg.execute(q("SELECT id, wrapped FROM {s}.data_keys")).fetchall())


def decrypted_rows(pg: psycopg.Connection, kek: bytes, rows: dict[int, str]) -> int:
    """Rows whose e-mail decrypts, through this KEK, to the value written."""
    data_keys, ok = unwrap_all(kek, wrapped_keys(pg)), 0
    for row_id, key_id, blob in pg.execute(q("SELECT id, key_id, email FROM {s}.customers_envelope")):
        if key_id in data_keys:
            ok += unseal(data_keys[key_id], blob, aad(ENVELOPE, row_id)).decode() == rows[row_id]
    return ok


def round_trips(pg: psycopg.Connection, crypto: str, keys: Keys, result: EncryptionResult) -> None:
    pgp = q("SELECT {dec}(email, %s) FROM {s}.customers_pgcrypto WHERE id = %s", crypto)
    result.pgp_decrypts = pg.execute(pgp, (keys.passphrase, MARKER_ID)).fetchone()[0] == MARKER
    try:
        pg.execute(pgp, ("a wrong passphrase", MARKER_ID))
    except psycopg.Error as error:  # "Wrong key or corrupt data"
        result.pgp_wrong_passphrase = error.sqlstate or ""
    pgp_twice = pg.execute(q("SELECT {enc}(%s, %s) = {enc}(%s, %s)", crypto), (MARKER, "p") * 2).fetchone()[0]
    key_id, blob = pg.execute(q(ENVELOPE_ROW), (MARKER_ID,)).fetchone()
    dek = unwrap_all(keys.kek, wrapped_keys(pg))[key_id]
    result.envelope_decrypts = unseal(dek, blob, aad(ENVELOPE, MARKER_ID)).decode() == MARKER
    try:  # the marker's ciphertext copied into another row
        unseal(dek, blob, aad(ENVELOPE, MARKER_ID + 1))
    except InvalidTag:
        result.moved_ciphertext_fails = True
    result.same_value_differs = not pgp_twice and seal(dek, b"x", b"") != seal(dek, b"x", b"")


def on_disk(pg: psycopg.Connection) -> dict[str, int]:
    """CHECKPOINT writes the dirty pages; then each table's files (main fork, TOAST), read by the server."""
    pg.execute("CHECKPOINT")
    found = {}
    for table in HOW:
        paths = pg.execute(FILES, (f"{SCHEMA}.{table}",)).fetchone()
        found[table] = sum(occurrences(pg.execute("SELECT pg_read_binary_file(%s)", (p,)).fetchone()[0])
                           for p in paths if p)  # fmt: skip
    return found


def pg_dump_version() -> tuple[str | None, int]:
    """The local pg_dump and its major version ("pg_dump (PostgreSQL) 15.18 ..." -> 15), 0 when missing."""
    tool = shutil.which("pg_dump")
    version = subprocess.run([tool, "--version"], capture_output=True, text=True).stdout if tool else ""
    found = re.search(r"\)\s*(\d+)", version)
    return tool, int(found.group(1)) if found else 0


def backup(pg: psycopg.Connection, url: str) -> tuple[str, dict[str, int]]:
    """pg_dump of the schema when the local pg_dump is as new as the server (it refuses newer), else COPY."""
    server, (tool, local) = pg.info.server_version // 10000, pg_dump_version()
    if tool and local >= server:
        params = conninfo_to_dict(url)
        env = {**os.environ, "PGPASSWORD": str(params.pop("password", ""))}  # not on the command line
        argv = [tool, "--schema", SCHEMA, "--dbname", make_conninfo(**params)]
        dump = subprocess.run(argv, env=env, capture_output=True, check=True, timeout=120).stdout
        sections = re.findall(rb"^COPY (\S+) .*? FROM stdin;\n(.*?)^\\\.$", dump, re.M | re.S)
        found = {name.decode().rsplit(".", 1)[-1].strip('"'): occurrences(data) for name, data in sections}
        return f"pg_dump {local} --schema {SCHEMA} (server {server})", {t: found[t] for t in HOW}
    found = {}
    for table in HOW:
        with pg.cursor().copy(sql.SQL("COPY {} TO STDOUT").format(sql.Identifier(SCHEMA, table))) as copy:
            found[table] = occurrences(b"".join(bytes(block) for block in copy))
    return f"COPY ... TO STDOUT: pg_dump {local or 'missing'}, server {server}", found


def rotate_kek(pg: psycopg.Connection, keys: Keys, rows: dict[int, str]) -> tuple[Rotation, Keys]:
    """Unwrap each data key with the old KEK, wrap it with the new one, in one transaction; no row touched."""
    digests = q("SELECT id, sha256(email) FROM {s}.customers_envelope")
    rows_before, keys_before = dict(pg.execute(digests).fetchall()), wrapped_keys(pg)
    new = Keys("kek-2", index_key=keys.index_key, passphrase=keys.passphrase)
    with pg.transaction():
        for key_id, dek in unwrap_all(keys.kek, keys_before).items():
            pg.execute(q(REWRAP), (seal(new.kek, dek, aad("data-key", key_id)), new.kek_id, key_id))
    rows_after, keys_after = dict(pg.execute(digests).fetchall()), wrapped_keys(pg)
    changed_rows = sum(rows_before[i] != rows_after[i] for i in rows_before)
    changed_keys = sum(keys_before[i] != keys_after[i] for i in keys_before)
    return Rotation(
        changed_rows, len(rows_before), changed_keys, len(keys_before),
        decrypted_rows(pg, new.kek, rows), decrypted_rows(pg, keys.kek, rows),
    ), new  # fmt: skip


def statement_texts(pg: psycopg.Connection, crypto: str, keys: Keys) -> Texts | None:
    """What pg_stat_statements keeps of a passphrase: bound, a literal in a SELECT, one in a DO block."""
    preloaded = "SELECT strpos(current_setting('shared_preload_libraries'), 'pg_stat_statements') > 0"
    found = pg.execute(EXTENSION, ("pg_stat_statements",)).fetchone()  # made by the server's setup
    if not pg.execute(preloaded).fetchone()[0] or found is None:
        return None
    schema = found[0]
    where = {"v": sql.Identifier(schema, "pg_stat_statements"), "x": sql.Identifier(schema)}
    literal = {"p": sql.Literal(PROBE_PASSPHRASE), "v": sql.Literal("secret"), "tag": sql.SQL(PROBE)}
    # FROM a table of this run, to be an entry of its own: aliases do not count, `SELECT f($1, $2)` is shared.
    pg.execute(q("SELECT {enc}({v}, {p}) AS {tag} FROM {s}.data_keys", crypto, **literal)).fetchall()
    pg.execute(q("DO $$BEGIN PERFORM {enc}({v}, {p}); END$$ /* {tag} */", crypto, **literal))
    texts = [text for (text,) in pg.execute(sql.SQL(TEXTS).format(**where))]
    probes = [t for t in texts if PROBE in t]
    variants = {
        "bound parameters": ([t for t in texts if "pgp_sym" in t and PGP in t], keys.passphrase),
        "literals in a SELECT": ([t for t in probes if t.startswith("SELECT")], PROBE_PASSPHRASE),
        "literals in a DO block": ([t for t in probes if t.startswith("DO")], PROBE_PASSPHRASE),
    }
    # An entry holding a secret stays (saved across restarts) until reset: remove this lesson's, by queryid.
    pg.execute(sql.SQL(FORGET).format(**where), (SCHEMA,)).fetchall()
    facts = {}
    for label, (found, secret) in variants.items():
        facts[label] = (len(found), sum(secret in t for t in found), min(found, default="-", key=len))
    return facts


def mongo_part(client: pymongo.MongoClient, keys: Keys, rows: dict[int, str]) -> MongoFacts:
    """A key vault of wrapped data keys, documents whose e-mail is ciphertext: the shape of MongoDB's CSFLE,
    which also keeps data keys in a key vault. A document's fields are encrypted one by one beside plain ones."""
    client.drop_database(DATABASE)
    db = client[DATABASE]
    deks = {k: AESGCM.generate_key(bit_length=256) for k in (1, 2)}
    wrapped = {k: Binary(seal(keys.kek, dek, aad("data-key", k))) for k, dek in deks.items()}
    db.keyvault.insert_many([{"_id": k, "kek_id": keys.kek_id, "wrapped": b} for k, b in wrapped.items()])
    chosen = sorted(set(list(rows)[:N_DOCUMENTS]) | {MARKER_ID})
    db.customers.create_index("email_bidx", unique=True)  # the blind index also enforces unique e-mails
    db.customers.insert_many([
        {"_id": i, "key_id": i % 2 + 1, "plan": ("free", "pro")[i % 2],
         "email": Binary(seal(deks[i % 2 + 1], rows[i].encode(), aad("customers", i))),
         "email_bidx": Binary(blind_index(keys.index_key, rows[i]))}
        for i in chosen
    ])  # fmt: skip
    db.customers_plain.insert_many([{"_id": i, "email": rows[i]} for i in chosen])
    raw = CodecOptions(document_class=RawBSONDocument)  # the bytes as the server sent them
    in_raw, in_plain = (sum(occurrences(d.raw) for d in db.get_collection(name, codec_options=raw).find())
                        for name in ("customers", "customers_plain"))  # fmt: skip
    opened = unwrap_all(keys.kek, {d["_id"]: d["wrapped"] for d in db.keyvault.find()})

    def decrypt(doc: dict) -> str:
        return unseal(opened[doc["key_id"]], doc["email"], aad("customers", doc["_id"])).decode()

    decrypted = sum(occurrences(decrypt(d).encode()) for d in db.customers.find())
    hit = db.customers.find_one({"email_bidx": Binary(blind_index(keys.index_key, SEARCHED_AS))})
    return MongoFacts(len(chosen), in_raw, in_plain, decrypted, hit is not None and decrypt(hit) == MARKER)


def run(pg: psycopg.Connection, url: str, mongo: pymongo.MongoClient) -> EncryptionResult:
    """`pg`: an autocommit superuser connection; `url`: its address, for pg_dump; `mongo`: a client."""
    console.title("Encryption at rest: pgcrypto, envelope encryption and blind indexes, proved on disk")
    console.step("Three copies of one customers table: plain, pgcrypto, envelope encryption")
    result, keys, rows = EncryptionResult(pgcrypto_schema(pg)), Keys(), emails()
    crypto = result.pgcrypto_schema
    build(pg, crypto, keys, rows)
    console.say(f"{N_ROWS:,} rows in each; row {MARKER_ID} holds the marker {MARKER}; pgcrypto: {crypto}.")
    console.say(f"Envelope: {N_DATA_KEYS} AES-256-GCM data keys, stored in data_keys wrapped by the KEK.")

    console.step("Each encrypted copy decrypts back, and only with its key")
    round_trips(pg, crypto, keys, result)
    console.table(["check", "outcome"], [
        ("pgp_sym_decrypt with the passphrase", "the marker" if result.pgp_decrypts else "FAILED"),
        ("pgp_sym_decrypt with a wrong passphrase", f"SQLSTATE {result.pgp_wrong_passphrase}"),
        ("unwrap its data key with the KEK, then AES-GCM", "the marker" if result.envelope_decrypts else "FAILED"),
        ("the marker's ciphertext moved to another row", "InvalidTag" if result.moved_ciphertext_fails else "ok"),
        ("one value encrypted twice, both ways", "differs" if result.same_value_differs else "the same"),
    ])  # fmt: skip

    console.step("On disk and in a backup: the marker in each table's files after CHECKPOINT")
    result.on_disk = on_disk(pg)
    result.backup_tool, result.in_backup = backup(pg, url)
    console.table(["table", "encrypted", "marker: data files", "marker: backup"],
                  [(t, how, result.on_disk[t], result.in_backup[t]) for t, how in HOW.items()])  # fmt: skip
    console.say(f"Backup: {result.backup_tool}. The marker is counted as text and as hex (bytea in a dump).")
    console.say("The backup holds data_keys, wrapped: useless without the KEK, so back that up elsewhere.")

    console.step("Rotate the KEK: re-wrap the data keys, leave the data alone")
    result.rotation, keys = rotate_kek(pg, keys, rows)
    r = result.rotation
    console.table(["after rotation", "count"], [
        ("row ciphertexts changed (sha256 before and after)", f"{r.ciphertexts_changed} of {r.rows:,}"),
        ("wrapped data keys changed", f"{r.wrapped_keys_changed} of {r.data_keys}"),
        ("rows that decrypt through the new KEK", r.decrypt_with_new_kek),
        ("rows that decrypt through the old KEK", r.decrypt_with_old_kek),
    ])  # fmt: skip

    console.step("A blind index: equality search on a column the server cannot read")
    probe = blind_index(keys.index_key, SEARCHED_AS)
    result.blind_index_finds = [row[0] for row in pg.execute(q(BY_BLIND_INDEX), (probe,))]
    result.plan = "\n".join(row[0] for row in pg.execute(q(EXPLAIN_BLIND), (probe,)))
    result.blind_index_in_plan = BLIND_INDEX in result.plan
    console.say(f"HMAC-SHA256 of {SEARCHED_AS!r}, normalised, finds rows {result.blind_index_finds}:")
    console.plan(result.plan)
    blind_s = best_of(lambda: pg.execute(q(BY_BLIND_INDEX), (probe,)).fetchall())
    with timer() as scan:  # equality without it: decrypt every row in the server
        pg.execute(q(BY_DECRYPTING, crypto), (keys.passphrase, MARKER)).fetchall()
    console.compare("pgp_sym_decrypt on every row", scan.seconds, "blind index", blind_s)
    console.say("It leaks equality (equal values, equal tags); its key is not the KEK, nor stored with it.")

    console.step("MongoDB: the same envelope per field, as client-side field-level encryption does it")
    result.mongo = m = mongo_part(mongo, keys, rows)
    console.table([f"database {DATABASE}", "marker count"], [
        (f"raw find on customers ({m.documents} documents, e-mail encrypted)", m.marker_in_raw_find),
        ("raw find on customers_plain (the control)", m.marker_in_plain_copy),
        ("customers decrypted with the data keys", m.marker_after_decryption),
        (f"found by the blind index as {SEARCHED_AS.strip()!r}", m.found_by_blind_index),
    ])  # fmt: skip

    console.step("What this does not protect against")
    result.statements = statement_texts(pg, crypto, keys)
    if result.statements is None:
        console.say("pg_stat_statements is not loaded, or not created in this database: texts not checked.")
    else:
        statements = result.statements.items()
        console.table(["pgp_sym_encrypt with", "texts in pg_stat_statements", "holding the passphrase"],
                      [(label, texts, holding) for label, (texts, holding, _) in statements])  # fmt: skip
        for label, (*_, text) in statements:
            console.say(f"{label}: {' '.join(text.split())}")
    found = dict(pg.execute("SELECT name, setting FROM pg_settings WHERE name = ANY(%s)", (list(SETTINGS),)))
    result.settings = {name: found.get(name, "") for name in SETTINGS}
    console.say("Here: " + ", ".join(f"{name} = {value}" for name, value in result.settings.items()) + ".")
    for line in (
        "A logged statement carries its literals, and its bound values in full while",
        "log_parameter_max_length is -1: the passphrase too. pg_stat_activity shows a running one's literals.",
        "Envelope keys never reach the server, but the application holds the KEK and every data key: whoever",
        "runs code in it, or reads its memory, environment or core dumps, reads every row.",
        "Encrypting a plain column by UPDATE leaves the plaintext in dead tuples, the WAL and older backups.",
    ):
        console.say(line)
    return result


def main() -> int:
    require(*REQUIRES)
    url = postgres_url()
    with (
        psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S, autocommit=True) as pg,
        pymongo.MongoClient(mongo_url(), serverSelectionTimeoutMS=CONNECT_TIMEOUT_S * 1000) as mongo,
    ):
        result = run(pg, url, mongo)
    return 0 if result.holds else 1


if __name__ == "__main__":
    raise SystemExit(main())

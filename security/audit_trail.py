"""Audit trail: a trigger-written, hash-chained record the application cannot rewrite, and its retention

Who changed what, and when, and can the record be trusted? A trigger records every row the
application role inserts, updates or deletes (login role, `app.user`, time, table, operation, old and
new rows as jsonb) through a SECURITY DEFINER function of an audit owner: the application writes its
business rows through grants but can neither edit nor delete its own audit rows, nor forge one. Each
audit row stores sha256(previous hash || the row in canonical form), so a verifier finds exactly the
edited row, and an edited row whose hash was recomputed too (the break moves to the next row).
Retention is a purge by the audit owner only that keeps an anchor (the last purged hash) the rest
verifies from. The server's own log (pgAudit, connections, durations) and Redis ACL LOG are in
security/server_audit_logs.py.

Engine: PostgreSQL (POSTGRES_URL, a superuser such as the compose `examples`), schema `audit_trail`,
roles `audit_trail_owner` and `audit_trail_app` (dropped at the end).
Run: `make up SERVICES=postgres` (or `make local-up`), then `python security/audit_trail.py`.
Look for: every INSERT, UPDATE and DELETE with its old and new rows, SQLSTATE 42501 for the
application role's UPDATE and DELETE of its audit rows, one broken link after the edit (the next one
after a re-hash), and none when the purged chain is verified from its anchor.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg.types.json import Jsonb

from common import console
from common.settings import CONNECT_TIMEOUT_S, postgres_url, require

REQUIRES = ("postgres",)
SCHEMA = PREFIX = "audit_trail"
APP_USER, N_ACCOUNTS, N_UPDATED, N_DELETED, N_OLD, RETENTION_DAYS = "alice@example.com", 20, 5, 2, 10, 365

TRAIL = """
CREATE SCHEMA {s} AUTHORIZATION {owner};
SET ROLE {owner};
CREATE TABLE {s}.accounts (id integer PRIMARY KEY, holder text NOT NULL, balance numeric(12, 2) NOT NULL);
CREATE TABLE {s}.audit_log (
    id bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp(),
    db_user name NOT NULL, app_user text, table_name text NOT NULL, op text NOT NULL,
    old_row jsonb, new_row jsonb, hash bytea NOT NULL);
CREATE TABLE {s}.chain_head (one boolean PRIMARY KEY CHECK (one), last_id bigint NOT NULL, last_hash bytea NOT NULL);
INSERT INTO {s}.chain_head VALUES (true, 0, '\\x');
CREATE TABLE {s}.anchors (through_id bigint PRIMARY KEY, last_hash bytea NOT NULL, rows_purged bigint NOT NULL,
    purged_at timestamptz NOT NULL DEFAULT now());
-- The canonical form hashed: jsonb's text is deterministic, the time is written in UTC.
CREATE FUNCTION {s}.canonical(r {s}.audit_log) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('id', r.id, 'at', to_char(r.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'),
        'db_user', r.db_user, 'app_user', r.app_user, 'table', r.table_name, 'op', r.op,
        'old', r.old_row, 'new', r.new_row)::text $$;
-- Every audit row, however it is written, gets the next id and hash; the head row's lock serialises writers.
CREATE FUNCTION {s}.chain() RETURNS trigger LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE previous bytea;
BEGIN
    UPDATE {s}.chain_head SET last_id = last_id + 1 RETURNING last_id, last_hash INTO NEW.id, previous;
    NEW.hash := sha256(previous || convert_to({s}.canonical(NEW), 'UTF8'));
    UPDATE {s}.chain_head SET last_hash = NEW.hash;
    RETURN NEW;
END $$;
CREATE TRIGGER chain BEFORE INSERT ON {s}.audit_log FOR EACH ROW EXECUTE FUNCTION {s}.chain();
-- Runs as its owner: inside it current_user is audit_trail_owner, so the login role is session_user.
CREATE FUNCTION {s}.record() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO {s}.audit_log (db_user, app_user, table_name, op, old_row, new_row)
    VALUES (session_user, current_setting('app.user', true), TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME, TG_OP,
            CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) END, CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) END);
    RETURN NULL;
END $$;
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON {s}.accounts FOR EACH ROW EXECUTE FUNCTION {s}.record();
-- Retention: delete the oldest rows as one prefix of the chain, and keep the hash they ended on.
CREATE FUNCTION {s}.purge(older_than interval) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE cut bigint; cut_hash bytea; purged bigint;
BEGIN
    SELECT id, hash INTO cut, cut_hash FROM {s}.audit_log WHERE at < now() - older_than ORDER BY id DESC LIMIT 1;
    IF NOT FOUND THEN RETURN 0; END IF;
    DELETE FROM {s}.audit_log WHERE id <= cut;
    GET DIAGNOSTICS purged = ROW_COUNT;
    INSERT INTO {s}.anchors (through_id, last_hash, rows_purged) VALUES (cut, cut_hash, purged);
    RETURN purged;
END $$;
REVOKE EXECUTE ON FUNCTION {s}.purge(interval) FROM PUBLIC;
RESET ROLE;
GRANT USAGE ON SCHEMA {s} TO {app};
GRANT SELECT, INSERT, UPDATE, DELETE ON {s}.accounts TO {app};
GRANT SELECT ON {s}.audit_log TO {app};
"""
OLD_ROWS = """
INSERT INTO {s}.audit_log (at, db_user, app_user, table_name, op, new_row)
SELECT now() - make_interval(days => 400) + make_interval(mins => n), 'batch_import', NULL, 'audit_trail.accounts',
       'INSERT', jsonb_build_object('id', -n, 'holder', 'closed account ' || n, 'balance', 0)
FROM generate_series(1, %s) AS n
"""
SHOW_ROWS = """
SELECT DISTINCT ON (op) id, to_char(at AT TIME ZONE 'UTC', 'HH24:MI:SS.MS'), db_user, app_user, op,
       concat(old_row->>'balance', ' -> ', new_row->>'balance'), left(encode(hash, 'hex'), 12) || '...'
FROM {s}.audit_log WHERE db_user = %s ORDER BY op, id
"""
BY_OP = """SELECT op, count(*), count(old_row), count(new_row) FROM {s}.audit_log
    WHERE db_user = %s GROUP BY op ORDER BY op"""
REHASH = """UPDATE {s}.audit_log a SET hash = sha256((SELECT p.hash FROM {s}.audit_log p WHERE p.id < a.id
    ORDER BY p.id DESC LIMIT 1) || convert_to({s}.canonical(a), 'UTF8')) WHERE id = %s"""
FORGED = ("nobody", "audit_trail.accounts", "DELETE")
REFUSALS = {  # what the application role tries against its own trail: (statement, parameters)
    "UPDATE its audit rows": ("UPDATE {s}.audit_log SET new_row = NULL WHERE db_user = session_user", ()),
    "DELETE its audit rows": ("DELETE FROM {s}.audit_log WHERE db_user = session_user", ()),
    "INSERT a forged row": (
        "INSERT INTO {s}.audit_log (db_user, table_name, op) VALUES (%s, %s, %s)",
        FORGED,
    ),
    "run the purge": ("SELECT {s}.purge(make_interval(days => %s))", (0,)),
}


@dataclass
class TrailResult:
    by_op: dict[str, tuple[int, int, int]]  # op -> (audit rows, with old row, with new row), the app's
    who: list[tuple[str, str | None]]  # (login role, app.user) pairs in the trail
    refused: dict[str, str]  # attempt -> SQLSTATE ('' when it went through)
    chain_rows: int = 0
    broken_before: list[int] = field(default_factory=list)
    tampered_id: int = 0
    broken_after_edit: list[int] = field(default_factory=list)
    broken_after_rehash: list[int] = field(default_factory=list)
    purged: int = 0
    broken_from_genesis: list[int] = field(default_factory=list)
    broken_from_anchor: list[int] = field(default_factory=list)
    roles_left: int = -1

    @property
    def holds(self) -> bool:
        return (
            set(self.refused.values()) == {psycopg.errors.InsufficientPrivilege.sqlstate}
            and self.broken_before == self.broken_from_anchor == []
            and self.broken_after_edit == [self.tampered_id]
            and self.roles_left == 0
        )


def role(name: str) -> str:
    return f"{PREFIX}_{name}"


def one(conn: psycopg.Connection, query: str | sql.Composed, params: tuple = ()):
    """The first column of the first row."""
    return conn.execute(query, params).fetchone()[0]


def q(text: str) -> sql.Composed:
    names = {"s": SCHEMA, "owner": role("owner"), "app": role("app")}
    return sql.SQL(text).format(**{key: sql.Identifier(value) for key, value in names.items()})


def drop_lesson_roles(admin: psycopg.Connection) -> int:
    """Hand what the roles own to the current user, drop their grants, drop them; the roles left."""
    find = "SELECT rolname FROM pg_roles WHERE starts_with(rolname, %s)"
    for (name,) in admin.execute(find, (PREFIX + "_",)).fetchall():
        for statement in ("REASSIGN OWNED BY {} TO CURRENT_USER", "DROP OWNED BY {}", "DROP ROLE {}"):
            admin.execute(sql.SQL(statement).format(sql.Identifier(name)))
    admin.commit()
    left = len(admin.execute(find, (PREFIX + "_",)).fetchall())
    admin.rollback()
    return left


def build(admin: psycopg.Connection) -> str:
    """The audit owner's schema, trail and triggers; last year's rows; the app role's password."""
    admin.execute(q("DROP SCHEMA IF EXISTS {s} CASCADE"))
    drop_lesson_roles(admin)  # what a failed earlier run may have left
    password = secrets.token_urlsafe(24)
    admin.execute(q("CREATE ROLE {owner} NOLOGIN"))
    admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role("app")), password))
    admin.execute(q(TRAIL))
    admin.execute(q("SET ROLE {owner}"))
    admin.execute(q(OLD_ROWS), (N_OLD,))
    admin.execute("RESET ROLE")
    admin.commit()
    return password


def refused(conn: psycopg.Connection, statement: str, params: tuple) -> str:
    """The SQLSTATE of InsufficientPrivilege, or '' when the statement went through (rolled back)."""
    try:
        with conn.transaction(force_rollback=True):
            conn.execute(q(statement), params)
    except psycopg.errors.InsufficientPrivilege as error:
        return error.sqlstate or ""
    return ""


def app_writes(url: str, password: str) -> dict[str, str]:
    """As the application role: business writes through grants, then attempts on its own trail."""
    info = make_conninfo(url, user=role("app"), password=password)
    with psycopg.connect(info, connect_timeout=CONNECT_TIMEOUT_S, autocommit=True) as app:
        app.execute("SELECT set_config('app.user', %s, false)", (APP_USER,))  # set per request by the app
        app.cursor().executemany(
            q("INSERT INTO {s}.accounts VALUES (%s, %s, %s)"),
            [(i, f"holder {i}", 100 + 7 * i) for i in range(1, N_ACCOUNTS + 1)],
        )
        app.execute(q("UPDATE {s}.accounts SET balance = balance + %s WHERE id <= %s"), (25, N_UPDATED))
        app.execute(q("DELETE FROM {s}.accounts WHERE id > %s"), (N_ACCOUNTS - N_DELETED,))
        return {label: refused(app, *attempt) for label, attempt in REFUSALS.items()}


def broken_links(conn: psycopg.Connection, start: bytes = b"") -> list[int]:
    """Recompute each row's hash from the stored hash before it (`start` before the first): the misfits."""
    rows = conn.execute(q("SELECT id, hash, {s}.canonical(a) FROM {s}.audit_log a ORDER BY id")).fetchall()
    broken, previous = [], start
    for row_id, stored, canonical in rows:
        if hashlib.sha256(previous + canonical.encode()).digest() != stored:
            broken.append(row_id)
        previous = stored
    return broken


def tamper(admin: psycopg.Connection, result: TrailResult) -> None:
    """As the audit owner, in a transaction rolled back after: edit one row, then recompute its hash too."""
    with admin.transaction(force_rollback=True):
        admin.execute(q("SET LOCAL ROLE {owner}"))
        result.tampered_id = one(admin, q("SELECT min(id) FROM {s}.audit_log WHERE op = %s"), ("UPDATE",))
        admin.execute(
            q("UPDATE {s}.audit_log SET new_row = jsonb_set(new_row, %s, %s) WHERE id = %s"),
            (["balance"], Jsonb(1_000_000), result.tampered_id),
        )
        result.broken_after_edit = broken_links(admin)
        admin.execute(q(REHASH), (result.tampered_id,))
        result.broken_after_rehash = broken_links(admin)


def purge(admin: psycopg.Connection, result: TrailResult) -> None:
    """As the audit owner: the purge, then verification from the genesis hash and from the anchor."""
    admin.execute(q("SET ROLE {owner}"))
    result.purged = one(admin, q("SELECT {s}.purge(make_interval(days => %s))"), (RETENTION_DAYS,))
    admin.execute("RESET ROLE")
    admin.commit()
    anchor = one(admin, q("SELECT last_hash FROM {s}.anchors ORDER BY through_id DESC LIMIT 1"))
    result.broken_from_genesis, result.broken_from_anchor = broken_links(admin), broken_links(admin, anchor)
    admin.rollback()


def trail(admin: psycopg.Connection, url: str) -> TrailResult:
    console.step("An audit trail by trigger: the application role's changes, recorded by the audit owner")
    password = build(admin)
    refusals = app_writes(url, password)
    by_op = {op: (n, old, new) for op, n, old, new in admin.execute(q(BY_OP), (role("app"),))}
    who = admin.execute(q("SELECT DISTINCT db_user::text, app_user FROM {s}.audit_log ORDER BY 1")).fetchall()
    result = TrailResult(by_op, who, refusals)
    console.table(["id", "at (UTC)", "login role", "app.user", "op", "balance", "hash"],
                  admin.execute(q(SHOW_ROWS), (role("app"),)).fetchall())  # fmt: skip
    console.table(["op", "audit rows", "with old row", "with new row"], [(op, *n) for op, n in by_op.items()])
    console.say("app.user is what the application claims; session_user is what the server authenticated.")

    console.step("The application role cannot rewrite its own trail")
    console.table(["as audit_trail_app", "outcome"],
                  [(a, f"InsufficientPrivilege, SQLSTATE {s}" if s else "went through") for a, s in refusals.items()])  # fmt: skip

    console.step("A hash chain: each row's hash covers the hash before it")
    result.chain_rows = one(admin, q("SELECT count(*) FROM {s}.audit_log"))
    result.broken_before = broken_links(admin)
    tamper(admin, result)
    admin.rollback()
    console.table(["chain of rows", "broken links found"], [
        (f"{result.chain_rows} rows as written", result.broken_before),
        (f"row {result.tampered_id} edited by the audit owner", result.broken_after_edit),
        (f"row {result.tampered_id} edited and its hash recomputed", result.broken_after_rehash),
    ])  # fmt: skip
    console.say("Recomputing moves the break to the next row; rewriting every row after it changes the last")
    console.say("hash: copy that head hash outside the database (a ticket, another system) to catch it.")

    console.step("Retention: the audit owner purges the oldest rows and keeps the hash they ended on")
    purge(admin, result)
    console.table(["verified from", "broken links found"], [
        ("the genesis (empty) hash", result.broken_from_genesis),
        ("the purge's anchor (the last purged hash)", result.broken_from_anchor),
    ])  # fmt: skip
    console.say(
        f"{result.purged} rows older than {RETENTION_DAYS} days purged; the first row left looks broken"
    )
    console.say("until the verifier starts from the anchor. Publish the anchor as you publish the head hash.")
    return result


def run(admin: psycopg.Connection, url: str) -> TrailResult:
    """`admin`: a superuser of the PostgreSQL at `url`, where the application role logs in."""
    console.title("Audit trail: a trigger-written, hash-chained record the application cannot rewrite")
    try:
        result = trail(admin, url)
    finally:  # roles are cluster-wide: they go even when the lesson fails
        admin.rollback()
        roles_left = drop_lesson_roles(admin)
    result.roles_left = roles_left
    console.say(f"lesson roles dropped at the end; left in the cluster: {result.roles_left}")
    return result


def main() -> int:
    require(*REQUIRES)
    url = postgres_url()
    with psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S) as admin:
        result = run(admin, url)
    return 0 if result.holds else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Server audit logs: pgAudit session and object lines, connections and durations, and Redis ACL LOG

What the server itself records, outside any table the audited roles could write. On a PostgreSQL
with pgAudit: session audit lines for the statement classes chosen (`pgaudit.log = 'write, ddl'`:
CREATE TABLE, INSERT and UPDATE are logged, a SELECT and a GRANT are not), and object audit lines
for what the grants of an audit role match (`pgaudit.role`, a role granted SELECT on one table: the
SELECTs that read that table are logged, a join included, and nothing else). Then the lines PostgreSQL writes on its own: connection
received, connection authorized (with TLS), disconnection with the session's length, and the duration
of one statement run with `log_min_duration_statement = 0`. All are read back from the server's
csvlog file (`pg_current_logfile`, `pg_read_binary_file`), picked out by this run's
application_name, as a log shipper would. Last, the denials of a Redis user in ACL LOG (what, who,
when, how often); security/redis_acl.py is the full ACL lesson. MongoDB auditing is in Enterprise and
Atlas only: Community has none, nor has the local stand-in. The trigger-written, hash-chained audit
trail is security/audit_trail.py.

Engine: PostgreSQL with TLS and pgAudit (POSTGRES_SECURE_URL, POSTGRES_SECURE_CA, a superuser),
schema `server_audit_logs`, role `server_audit_logs_auditor`; Redis (REDIS_URL), keys
`server_audit_logs:*`, ACL user `server_audit_logs_<run>`. The role and the user go at the end.
Run: `make up SERVICES="postgres_secure redis"` (or `make local-up`), then
`python security/server_audit_logs.py`.
Look for: SESSION lines for writes and DDL but OBJECT lines for `server_audit_logs.patients` only,
two connections and disconnections and one duration line of this run's sessions, and FLUSHDB denied
3 times in one ACL LOG entry.
"""

from __future__ import annotations

import contextlib
import csv
import io
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field

import psycopg
import redis
from psycopg import sql
from redis.exceptions import NoPermissionError

from common import console
from common.settings import CONNECT_TIMEOUT_S, postgres_secure_url, redis_url, require

REQUIRES = ("postgres_secure", "redis")
SCHEMA = PREFIX = "server_audit_logs"
LOG_WAIT_S = 15.0

# pgAudit, on its own server, in one session of the lesson's: (statement, parameters).
SESSION_PHASE = [  # after SET pgaudit.log = 'write, ddl'
    ("CREATE TABLE {s}.patients (id integer PRIMARY KEY, name text NOT NULL)", ()),
    ("CREATE TABLE {s}.visits (id integer PRIMARY KEY, patient_id integer NOT NULL, note text)", ()),
    ("INSERT INTO {s}.patients VALUES (%s, %s)", (1, "Ada")),
    ("INSERT INTO {s}.visits VALUES (%s, %s, %s)", (1, 1, "check-up")),
    ("UPDATE {s}.visits SET note = %s WHERE id = %s", ("follow-up", 1)),
    ("SELECT name FROM {s}.patients WHERE id = %s", (1,)),  # READ is not among the session classes
    ("GRANT SELECT ON {s}.patients TO {auditor}", ()),  # nor is ROLE
]
OBJECT_PHASE = [  # after SET pgaudit.role = the auditor role, which may SELECT from patients only
    ("SELECT name FROM {s}.patients WHERE id = %s", (1,)),
    ("SELECT note FROM {s}.visits WHERE id = %s", (1,)),
    ("SELECT p.name, v.note FROM {s}.visits v JOIN {s}.patients p ON p.id = v.patient_id", ()),
    ("UPDATE {s}.visits SET note = %s WHERE id = %s", ("discharged", 1)),
]
PROBE, PROBE_TAG = (
    "SELECT count(*) /* server audit duration probe */ FROM {s}.visits",
    "server audit duration probe",
)
READ_FROM = """SELECT coalesce(pg_read_binary_file(%s, %s,
    greatest(coalesce((pg_stat_file(%s, true)).size, 0) - %s, 0), true), '')"""
CONNECTION_LINES = ("connection received", "connection authorized", "disconnection")
REDIS_KEY, REDIS_OTHER_KEY = PREFIX + ":report:1", "billing:card:1"
REDIS_RULES = f"~{PREFIX}:* resetchannels -@all +@read +@write +@connection -@dangerous".split()


@dataclass
class ServerLog:
    """The lines of this run's own sessions in the pgAudit server's log, counted."""

    session_lines: Counter  # "WRITE INSERT" -> SESSION lines
    session_statements: set[str]  # their statement ids: one statement may log several lines
    object_lines: Counter  # relation -> OBJECT lines
    connections: Counter  # each of CONNECTION_LINES -> lines
    duration_lines: int = 0  # lines of the one statement run with log_min_duration_statement = 0
    ssl_logged: bool = False  # "SSL enabled" in the connection authorized lines
    extension: bool = field(default=False, compare=False)  # CREATE EXTENSION pgaudit: DDL lines name objects
    audit_lines: list[list[str]] = field(default_factory=list, compare=False)
    first: dict[str, str] = field(default_factory=dict, compare=False)  # kind of line -> its first message


@dataclass
class ServerAuditResult:
    server_log: ServerLog | None  # None when the server has no log file to read back
    roles_left: int = -1
    redis_denials: dict[tuple[str, str], int] = field(default_factory=dict)  # (reason, object) -> count
    redis_users_left: int = -1

    @property
    def holds(self) -> bool:
        log = self.server_log
        return (
            log is not None
            and log.session_lines.total() > 0
            and set(log.object_lines) == {f"{SCHEMA}.patients"}
            and self.redis_denials.get(("command", "flushdb")) == 3
            and self.roles_left == self.redis_users_left == 0
        )


def role(name: str) -> str:
    return f"{PREFIX}_{name}"


def one(conn: psycopg.Connection, query: str | sql.Composed, params: tuple = ()):
    """The first column of the first row."""
    return conn.execute(query, params).fetchone()[0]


def q(text: str) -> sql.Composed:
    names = {"s": SCHEMA, "auditor": role("auditor")}
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


def log_start(conn: psycopg.Connection) -> tuple[str, int] | None:
    """The CSV log file and its size now: only what is written after this is read."""
    path = one(conn, "SELECT pg_current_logfile('csvlog')")  # None without logging_collector and csvlog
    return None if path is None else (path, one(conn, "SELECT (pg_stat_file(%s)).size", (path,)))


def read_log(conn: psycopg.Connection, start: tuple[str, int]) -> list[tuple[str, str, str]]:
    """(session id, application_name, message) of every line written since `start`."""
    path, offset = start
    current = one(conn, "SELECT pg_current_logfile('csvlog')")
    data = one(conn, READ_FROM, (path, offset, path, offset))
    if current != path:  # the log rotated meanwhile
        data += one(conn, READ_FROM, (current, 0, current, 0))
    rows = csv.reader(io.StringIO(bytes(data).decode("utf-8", "replace")))
    return [(row[5], row[22], row[13]) for row in rows if len(row) > 22]  # the csvlog columns


def lines_of(conn: psycopg.Connection, start: tuple[str, int], app: str, sessions: int) -> list[str]:
    """The messages of the sessions named `app`: all their lines (the first ones carry no name yet)."""
    deadline, messages = time.monotonic() + LOG_WAIT_S, []
    while time.monotonic() < deadline:
        records = read_log(conn, start)
        ours = {session for session, name, _ in records if name == app}
        messages = [message for session, _, message in records if session in ours]
        if sum(m.startswith("disconnection:") for m in messages) >= sessions:
            break  # the collector writes a session's lines in order: its disconnection comes last
        time.sleep(0.2)
    return messages


def audited_session(url: str, app: str) -> None:
    """Session audit, object audit, one statement with log_min_duration_statement = 0; a short session."""
    options = {"application_name": app, "connect_timeout": CONNECT_TIMEOUT_S}
    with psycopg.connect(url, autocommit=True, **options) as conn:
        conn.execute("SET pgaudit.log = 'write, ddl'")
        conn.execute("SET pgaudit.log_relation = on")  # one line per relation, naming it
        for statement, params in SESSION_PHASE:
            conn.execute(q(statement), params)
        conn.execute("SELECT set_config('pgaudit.role', %s, false)", (role("auditor"),))
        for statement, params in OBJECT_PHASE:
            conn.execute(q(statement), params)
        conn.execute("SET log_min_duration_statement = 0")
        conn.execute(q(PROBE))
        conn.execute("RESET log_min_duration_statement")
    with psycopg.connect(url, **options) as conn:  # a second, short session
        conn.execute("SELECT 1")


def count_lines(messages: list[str], extension: bool) -> ServerLog:
    log = ServerLog(Counter(), set(), Counter(), Counter(), extension=extension)
    for message in messages:
        if message.startswith("AUDIT: "):
            fields = next(csv.reader([message.removeprefix("AUDIT: ")]))  # pgAudit writes its fields as CSV
            log.audit_lines.append(fields[:7])
            if fields[0] == "SESSION":
                log.session_lines[f"{fields[3]} {fields[4]}"] += 1  # class, command
                log.session_statements.add(fields[1])
            else:
                log.object_lines[fields[6]] += 1  # the relation
        elif message.startswith(CONNECTION_LINES):
            log.connections[message.partition(":")[0]] += 1
            log.ssl_logged |= "SSL enabled" in message
            log.first.setdefault(message.partition(":")[0], message)
        elif message.startswith("duration:") and PROBE_TAG in message:
            log.duration_lines += 1
            log.first.setdefault("duration: (the probe)", message)
    return log


def server_log(url: str, run_id: str) -> tuple[ServerLog | None, int]:
    """pgAudit's session and object lines, connections and a duration, from the log; the roles left."""
    app = f"{PREFIX}_{run_id}"  # unique to this run: other lessons, and other runs, log there too
    with psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S) as reader:
        start = log_start(reader)
        if start is None:
            console.say("This server has no logging collector: there is no log file to read back.")
            return None, drop_lesson_roles(reader)
        reader.execute(q("DROP SCHEMA IF EXISTS {s} CASCADE"))
        drop_lesson_roles(reader)
        try:
            reader.execute(q("CREATE SCHEMA {s}"))
            reader.execute(q("CREATE ROLE {auditor} NOLOGIN"))
            audited_session(url, app)
            messages = lines_of(reader, start, app, sessions=2)
        finally:  # roles are cluster-wide: it goes even when the lesson fails
            roles_left = drop_lesson_roles(reader)
        extension = one(reader, "SELECT count(*) FROM pg_extension WHERE extname = %s", ("pgaudit",))
    return count_lines(messages, extension > 0), roles_left


def redis_acl_log(client: redis.Redis, run_id: str) -> tuple[dict[tuple[str, str], int], int]:
    """A lesson user confined to `server_audit_logs:*`; its denials read back from ACL LOG; the user deleted."""
    stale = [name for name in client.acl_users() if name.startswith(PREFIX + "_")]
    if stale:
        client.acl_deluser(*stale)
    username, password = f"{PREFIX}_{run_id}", secrets.token_urlsafe(24)
    client.execute_command("ACL", "SETUSER", username, "reset", "on", ">" + password, *REDIS_RULES)
    address = client.connection_pool.connection_kwargs
    try:
        with redis.Redis(host=address.get("host", "localhost"), port=address.get("port", 6379),
                         username=username, password=password, client_name="nightly-report",
                         decode_responses=True, socket_connect_timeout=CONNECT_TIMEOUT_S) as user:  # fmt: skip
            user.set(REDIS_KEY, "allowed, so not logged")
            for denied in (user.flushdb, user.flushdb, user.flushdb, lambda: user.get(REDIS_OTHER_KEY)):
                with contextlib.suppress(NoPermissionError):
                    denied()
        entries = [entry for entry in client.acl_log(count=128) if entry["username"] == username]
    finally:
        client.acl_deluser(username)
        client.unlink(REDIS_KEY)
    console.table(["what (reason, object)", "who (user, client name)", "when (s ago)", "count"], [
        (f"{e['reason']} {e['object']}", f"{e['username']}, {e['client-info'].get('name', '')}",
         f"{float(e['age-seconds']):.1f}", e["count"]) for e in entries
    ])  # fmt: skip
    left = sum(name.startswith(PREFIX + "_") for name in client.acl_users())
    return {(e["reason"], e["object"]): int(e["count"]) for e in entries}, left


def run(secure_url: str, client: redis.Redis) -> ServerAuditResult:
    """`secure_url`: a superuser of the PostgreSQL with pgAudit; `client`: a Redis admin connection."""
    console.title("Server audit logs: pgAudit, connections and durations from the log file, Redis ACL LOG")
    run_id = secrets.token_hex(3)
    console.step("pgAudit: session lines for writes and DDL, object lines for one table, from the log")
    log, roles_left = server_log(secure_url, run_id)
    result = ServerAuditResult(log, roles_left)
    if log is not None:
        # every object is in the lesson's schema: its name only, to fit
        lines = [(*line[:6], line[6].removeprefix(SCHEMA + ".")) for line in log.audit_lines]
        console.table(["audit", "statement", "sub", "class", "command", "object type", "object"], lines)
        console.say(f"{len(log.session_statements)} statements of the write and ddl classes, "
                    f"{log.session_lines.total()} SESSION lines; OBJECT lines: {dict(log.object_lines)}.")  # fmt: skip
        console.say(f"Read from the csvlog file. CREATE EXTENSION pgaudit done in this database: "
                    f"{log.extension} (without it DDL lines name no object).")  # fmt: skip
        console.step("Connections, disconnections and one statement's duration, by application_name")
        rows = [*sorted(log.connections.items()), ("duration: (the probe)", log.duration_lines)]
        console.table(
            ["log line", "lines", "the first one"], [(*row, log.first.get(row[0], "")) for row in rows]
        )
        console.say(f"the connection authorized lines record TLS (SSL enabled): {log.ssl_logged}")
    console.say(f"lesson role dropped at the end; left in the cluster: {result.roles_left}")

    console.step("Redis: a user's denied commands, read back from ACL LOG")
    result.redis_denials, result.redis_users_left = redis_acl_log(client, run_id)
    console.say("security/redis_acl.py is the whole ACL lesson. MongoDB Community has no audit log (auditLog")
    console.say("is in Enterprise and Atlas only), and the local MongoDB stand-in has none either.")
    return result


def main() -> int:
    require(*REQUIRES)
    client = redis.Redis.from_url(
        redis_url(), decode_responses=True, socket_connect_timeout=CONNECT_TIMEOUT_S
    )
    with client:
        result = run(postgres_secure_url(), client)
    return 0 if result.holds else 1


if __name__ == "__main__":
    raise SystemExit(main())

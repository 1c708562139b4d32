"""Roles and least privilege: group roles, column grants, default privileges, and a search_path hijack

An application's database access built from group roles: an owner that owns the objects, a
migrator that changes them, a writer, a reader, and a reporting role that may read some columns
only. Login roles join a group and get nothing else. The lesson tries every action as every login
role and prints the matrix, first with PostgreSQL's grants to PUBLIC still in place (any role may
create in the schema, as in `public` before PostgreSQL 15, and call every function) and then after
REVOKE ... FROM PUBLIC: every denied cell is an InsufficientPrivilege the lesson caught. Default
privileges make a table created later readable without a new GRANT. A SECURITY DEFINER function
whose search_path is not pinned runs an attacker's function from the attacker's own schema with
the owner's rights; the pinned one does not. Logins use SCRAM-SHA-256: the stored verifier is
salted, unlike an md5 hash, which anyone can compute from the user name and password alone.

Engine: PostgreSQL (POSTGRES_URL, a superuser such as the compose `examples`), schemas
`roles_least_privilege` and `roles_least_privilege_sandbox`, roles `roles_least_privilege_*` (dropped at the end).
Run: `make up SERVICES=postgres` (or `make local-up`), then `python security/roles_least_privilege.py`.
Look for: the two matrices (the newcomer's "allowed" cells gone after hardening), 1,000 emails copied
into the attacker's table through the unpinned function and 0 through the pinned one, and the two
SCRAM verifiers (different salts) next to the two identical md5 hashes.
"""

from __future__ import annotations

import hashlib
import random
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from common import console
from common.settings import CONNECT_TIMEOUT_S, postgres_url, require

REQUIRES = ("postgres",)
SCHEMA = PREFIX = "roles_least_privilege"
SANDBOX = "roles_least_privilege_sandbox"  # the attacker's own schema
SEED, N_CUSTOMERS = 11, 1000
GROUPS = ("owner", "migrator", "writer", "reader", "reporting")
LOGINS = {"newcomer": None, "app": "writer", "analyst": "reporting", "deploy": "migrator"}
MEMBERSHIPS = [("owner", "migrator"), ("reader", "writer")]  # (group, member)
ALLOWED, DENIED = "allowed", "denied"

SETUP = """
CREATE SCHEMA {s} AUTHORIZATION {owner};
SET ROLE {owner};
CREATE TABLE {s}.customers (id integer PRIMARY KEY, name text NOT NULL, email text NOT NULL,
                            country text NOT NULL, created_at date NOT NULL);
CREATE TABLE {s}.orders (id serial PRIMARY KEY, customer_id integer NOT NULL REFERENCES {s}.customers,
                         amount numeric(8,2) NOT NULL);
CREATE FUNCTION {s}.normalize_email(address text) RETURNS text LANGUAGE sql IMMUTABLE
    AS 'SELECT lower(trim(address))';
-- UNSAFE, DO NOT COPY: SECURITY DEFINER without SET search_path resolves normalize_email() in
-- the caller's search_path, with the owner's rights.
CREATE FUNCTION {s}.email_domain_unpinned(customer integer) RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER AS $$
    BEGIN RETURN split_part(normalize_email((SELECT email FROM {s}.customers WHERE id = customer)), '@', 2); END $$;
CREATE FUNCTION {s}.email_domain(customer integer) RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = {s}, pg_temp AS $$
    BEGIN RETURN split_part(normalize_email((SELECT email FROM {s}.customers WHERE id = customer)), '@', 2); END $$;
RESET ROLE;
-- Before hardening: the schema is open to PUBLIC, as `public` was before PostgreSQL 15.
GRANT USAGE, CREATE ON SCHEMA {s} TO PUBLIC;
"""
GRANTS = """
GRANT USAGE ON SCHEMA {s} TO {reader}, {reporting};
GRANT SELECT ON ALL TABLES IN SCHEMA {s} TO {reader};
GRANT INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {s} TO {writer};
GRANT USAGE ON ALL SEQUENCES IN SCHEMA {s} TO {writer};
ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {s} GRANT SELECT ON TABLES TO {reader};
ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {s} GRANT INSERT, UPDATE, DELETE ON TABLES TO {writer};
ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {s} GRANT USAGE ON SEQUENCES TO {writer};
GRANT SELECT (id, country, created_at) ON {s}.customers TO {reporting};
GRANT SELECT ON {s}.orders TO {reporting};
GRANT EXECUTE ON FUNCTION {s}.email_domain(integer), {s}.email_domain_unpinned(integer) TO {reporting};
"""
HARDEN = """
REVOKE ALL ON SCHEMA {s} FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA {s} FROM PUBLIC;
ALTER DEFAULT PRIVILEGES FOR ROLE {owner} REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
"""
ACTIONS = {
    "read email": "SELECT email FROM {s}.customers LIMIT 1",
    "read report cols": "SELECT id, country FROM {s}.customers LIMIT 1",
    "insert order": "INSERT INTO {s}.orders (customer_id, amount) VALUES (1, 9.99)",
    "create table": "CREATE TABLE {s}.probe (id integer)",
    "call email_domain": "SELECT {s}.email_domain(1)",
}
# The attacker (the analyst) in their own schema: a function named like the one the definer calls.
ATTACKER_SETUP = """
CREATE TABLE {sandbox}.loot (email text);
GRANT USAGE ON SCHEMA {sandbox} TO PUBLIC;
GRANT INSERT ON {sandbox}.loot TO PUBLIC;
CREATE FUNCTION {sandbox}.normalize_email(address text) RETURNS text LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO {sandbox}.loot SELECT email FROM {s}.customers;  -- runs as whoever calls it
        RETURN lower(address);
    END $$;
"""


@dataclass
class RolesResult:
    actions: list[str]
    before: dict[str, dict[str, str]]  # login role -> action -> ALLOWED / DENIED, PUBLIC's grants in place
    after: dict[str, dict[str, str]]  # the same after REVOKE ... FROM PUBLIC
    denied_sqlstates: set[str] = field(default_factory=set)  # of every denied cell
    new_table_readable_by_app: bool = False  # through ALTER DEFAULT PRIVILEGES, no GRANT of its own
    leaked_unpinned: int = 0  # emails the attacker's function copied through the unpinned definer
    leaked_pinned: int = 0
    scram_algorithm: str = ""  # the verifier's first field, e.g. SCRAM-SHA-256$4096
    scram_new_salt_each_time: bool = False  # the same password stored twice gives two verifiers
    md5_is_offline_hash: bool = False  # the stored md5 is md5(password || user name)
    md5_same_each_time: bool = False
    roles_left: int = -1  # lesson roles still in the cluster after the run

    @property
    def holds(self) -> bool:
        """The newcomer could do something before, nothing after; the hijack works only unpinned."""
        return (
            ALLOWED in self.before["newcomer"].values()
            and set(self.after["newcomer"].values()) == {DENIED}
            and self.leaked_unpinned == N_CUSTOMERS
            and self.leaked_pinned == 0
            and self.roles_left == 0
        )


def role(name: str) -> str:
    return f"{PREFIX}_{name}"


def names() -> dict[str, sql.Identifier]:
    """The placeholders of the SQL above: schemas and group roles as quoted identifiers."""
    found = {"s": sql.Identifier(SCHEMA), "sandbox": sql.Identifier(SANDBOX)}
    return found | {group: sql.Identifier(role(group)) for group in GROUPS}


def execute(conn: psycopg.Connection, script: str) -> None:
    conn.execute(sql.SQL(script).format(**names()))


def drop_lesson_roles(admin: psycopg.Connection) -> int:
    """Hand what the roles own to the current user, drop their grants, drop them; the roles left."""
    found = admin.execute(
        "SELECT rolname FROM pg_roles WHERE starts_with(rolname, %s) ORDER BY rolname DESC", (PREFIX + "_",)
    )
    for (name,) in found.fetchall():
        admin.execute(sql.SQL("REASSIGN OWNED BY {} TO CURRENT_USER").format(sql.Identifier(name)))
        admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
        admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))
    admin.commit()
    left = admin.execute("SELECT count(*) FROM pg_roles WHERE starts_with(rolname, %s)", (PREFIX + "_",))
    count = left.fetchone()[0]
    admin.rollback()
    return count


def create_roles(admin: psycopg.Connection) -> dict[str, str]:
    """Group roles without LOGIN; login roles with a password made now. Returns the passwords."""
    for group in GROUPS:
        admin.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role(group))))
    for group, member in MEMBERSHIPS:
        admin.execute(
            sql.SQL("GRANT {} TO {}").format(sql.Identifier(role(group)), sql.Identifier(role(member)))
        )
    passwords = {}
    for login, group in LOGINS.items():
        passwords[login] = secrets.token_urlsafe(24)
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(role(login)), sql.Literal(passwords[login])
            )
        )
        if group:
            admin.execute(
                sql.SQL("GRANT {} TO {}").format(sql.Identifier(role(group)), sql.Identifier(role(login)))
            )
    admin.commit()
    return passwords


def build_schema(admin: psycopg.Connection) -> None:
    for schema in (SCHEMA, SANDBOX):
        admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
    admin.commit()
    execute(admin, SETUP)
    admin.execute(
        sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(
            sql.Identifier(SANDBOX), sql.Identifier(role("analyst"))
        )
    )
    rng = random.Random(SEED)
    with admin.cursor() as cur:
        cur.executemany(
            sql.SQL("INSERT INTO {}.customers VALUES (%s, %s, %s, %s, %s)").format(sql.Identifier(SCHEMA)),
            [
                (i, f"Customer {i}", f"Customer.{i}@Mail{rng.randint(1, 9)}.example", rng.choice(["PT", "FR", "DE"]),
                 f"2024-{rng.randint(1, 12):02d}-01")
                for i in range(1, N_CUSTOMERS + 1)
            ],
        )  # fmt: skip
    execute(admin, GRANTS)
    admin.commit()


@contextmanager
def login(url: str, name: str, password: str) -> Iterator[psycopg.Connection]:
    """A new connection as a lesson role: password authentication (SCRAM-SHA-256) over TCP."""
    info = make_conninfo(url, user=role(name), password=password)
    with psycopg.connect(info, connect_timeout=CONNECT_TIMEOUT_S) as conn:
        yield conn


def attempt(conn: psycopg.Connection, action: str, denials: set[str]) -> str:
    """Try one action in a transaction that is rolled back; a refusal must be InsufficientPrivilege."""
    try:
        conn.execute(sql.SQL(ACTIONS[action]).format(**names()))
        verdict = ALLOWED
    except psycopg.errors.InsufficientPrivilege as error:
        denials.add(error.sqlstate or "")
        verdict = DENIED
    conn.rollback()
    return verdict


def matrix(url: str, passwords: dict[str, str], denials: set[str]) -> dict[str, dict[str, str]]:
    found = {}
    for name, password in passwords.items():
        with login(url, name, password) as conn:
            found[name] = {action: attempt(conn, action, denials) for action in ACTIONS}
    return found


def show(found: dict[str, dict[str, str]]) -> None:
    console.table(
        ["login role (group)", *ACTIONS], [(f"{r} ({LOGINS[r] or '-'})", *found[r].values()) for r in found]
    )


def new_table_readable(url: str, passwords: dict[str, str]) -> bool:
    """deploy creates a table as the owner; app reads it through the default privileges alone."""
    with login(url, "deploy", passwords["deploy"]) as deploy:
        deploy.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role("owner"))))
        deploy.execute(sql.SQL("CREATE TABLE {}.invoices (id integer)").format(sql.Identifier(SCHEMA)))
        deploy.commit()
    with login(url, "app", passwords["app"]) as app:
        try:
            app.execute(sql.SQL("SELECT count(*) FROM {}.invoices").format(sql.Identifier(SCHEMA)))
            readable = True
        except psycopg.errors.InsufficientPrivilege:
            readable = False
        app.rollback()
    return readable


def hijack(url: str, passwords: dict[str, str], function: str) -> int:
    """The analyst puts their schema first in search_path and calls a definer function: emails copied."""
    with login(url, "analyst", passwords["analyst"]) as analyst:
        analyst.execute(
            sql.SQL("SET search_path TO {}, {}").format(sql.Identifier(SANDBOX), sql.Identifier(SCHEMA))
        )
        analyst.execute(sql.SQL("TRUNCATE {}.loot").format(sql.Identifier(SANDBOX)))
        analyst.execute(sql.SQL("SELECT {}.{}(1)").format(sql.Identifier(SCHEMA), sql.Identifier(function)))
        leaked = analyst.execute(sql.SQL("SELECT count(*) FROM {}.loot").format(sql.Identifier(SANDBOX)))
        count = leaked.fetchone()[0]
        analyst.commit()
    return count


def stored_password(admin: psycopg.Connection, name: str, password: str, method: str) -> str:
    """Set a role's password under password_encryption = method; what pg_authid then holds."""
    admin.execute("SELECT set_config('password_encryption', %s, true)", (method,))
    admin.execute(
        sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role(name)), sql.Literal(password))
    )
    found = admin.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role(name),))
    (stored,) = found.fetchone()
    admin.commit()
    return stored


def verifiers(admin: psycopg.Connection, result: RolesResult) -> list[tuple[str, str, str]]:
    """The same password stored twice as SCRAM-SHA-256 and twice as md5, for the newcomer role."""
    password = secrets.token_urlsafe(24)
    first, second = (stored_password(admin, "newcomer", password, "scram-sha-256") for _ in range(2))
    result.scram_algorithm = first.split(":")[0]
    result.scram_new_salt_each_time = first != second
    md5_first, md5_second = (stored_password(admin, "newcomer", password, "md5") for _ in range(2))
    # What anyone who knows the user name can compute, for any server, without asking one.
    offline = "md5" + hashlib.md5((password + role("newcomer")).encode()).hexdigest()
    result.md5_is_offline_hash = md5_first == offline
    result.md5_same_each_time = md5_first == md5_second
    return [
        ("SCRAM-SHA-256, set twice", f"{first[:30]}...", f"{second[:30]}..."),
        ("md5, set twice", md5_first, md5_second),
    ]


def run(admin: psycopg.Connection, url: str) -> RolesResult:
    """`admin` is a superuser connection; `url` is the server's address for the lesson's logins."""
    console.title("Roles and least privilege")
    try:
        result = lesson(admin, url)
    finally:  # roles are cluster-wide: they go even when the lesson fails
        admin.rollback()
        roles_left = drop_lesson_roles(admin)
    result.roles_left = roles_left
    console.say(f"lesson roles dropped at the end; left in the cluster: {roles_left}")
    return result


def lesson(admin: psycopg.Connection, url: str) -> RolesResult:
    console.step("Group roles, login roles with generated passwords, and the application's grants")
    drop_lesson_roles(admin)  # what a failed earlier run may have left
    passwords = create_roles(admin)
    build_schema(admin)
    console.table(
        ["group role", "member of"],
        [(role(g), ", ".join(role(o) for o, m in MEMBERSHIPS if m == g) or "-") for g in GROUPS],
    )
    console.say("reporting may read customers (id, country, created_at) only: a column-level GRANT.")

    console.step("Try every action as every login role, PUBLIC's grants still in place")
    denials: set[str] = set()
    before = matrix(url, passwords, denials)
    show(before)

    console.step("Harden: REVOKE ... FROM PUBLIC on the schema and the functions, now and by default")
    execute(admin, HARDEN)
    admin.commit()
    after = matrix(url, passwords, denials)
    show(after)
    result = RolesResult(list(ACTIONS), before, after, denials)
    console.say(
        f"every denied cell was psycopg.errors.InsufficientPrivilege: SQLSTATE {', '.join(sorted(denials))}"
    )

    console.step("A table created later is readable through ALTER DEFAULT PRIVILEGES")
    result.new_table_readable_by_app = new_table_readable(url, passwords)
    console.say(
        f"app reads invoices, created by deploy as the owner, with no GRANT of its own: {result.new_table_readable_by_app}"
    )

    console.step("A SECURITY DEFINER function without a pinned search_path runs the attacker's function")
    with login(url, "analyst", passwords["analyst"]) as analyst:
        analyst.execute(sql.SQL(ATTACKER_SETUP).format(**names()))
        analyst.commit()
    result.leaked_unpinned = hijack(url, passwords, "email_domain_unpinned")
    result.leaked_pinned = hijack(url, passwords, "email_domain")
    console.table(
        ["definer function", "emails copied into the attacker's table"],
        [("UNSAFE email_domain_unpinned (no SET search_path)", result.leaked_unpinned),
         (f"email_domain (SET search_path = {SCHEMA}, pg_temp)", result.leaked_pinned)],
    )  # fmt: skip

    console.step("Passwords: the SCRAM-SHA-256 verifier in pg_authid, and the md5 hash it replaced")
    rows = verifiers(admin, result)
    console.table(["stored as", "first", "second"], rows)
    console.say("SCRAM: SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>, a new salt each time.")
    console.say(f"md5 is md5(password || user name), computable offline: {result.md5_is_offline_hash}; "
                f"the same on every server with that user name: {result.md5_same_each_time}")  # fmt: skip
    return result


def main() -> int:
    require(*REQUIRES)
    url = postgres_url()
    with psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S) as admin:
        result = run(admin, url)
    return 0 if result.holds else 1


if __name__ == "__main__":
    raise SystemExit(main())

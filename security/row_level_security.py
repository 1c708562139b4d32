"""Row-level security: tenant policies, USING against WITH CHECK, and the three ways rows leak past them

One table holds the documents of twenty tenants. Policies keyed on a session setting
(`app.tenant_id`, set by the application for each request) show each tenant its own rows, and a
restrictive policy keyed on `current_user` keeps private documents to their author. USING filters
what a statement may see, silently; WITH CHECK refuses a row written for another tenant, with an
error. Then the three classic leaks, each counted before and after its fix: the table owner
bypasses the policies until FORCE ROW LEVEL SECURITY; a superuser or BYPASSRLS role sees every row;
a view owned by a privileged role runs as that role until `security_invoker` is set (PostgreSQL 15
and later; before that, the view's owner must be a role the policies apply to). Last, what a
policy costs: the plan shows its predicate, used by the index like a hand-written WHERE.

Engine: PostgreSQL (POSTGRES_URL, a superuser such as the compose `examples`), schema
`row_level_security`, roles `row_level_security_*` (dropped at the end).
Run: `make up SERVICES=postgres` (or `make local-up`), then `python security/row_level_security.py`.
Look for: the leak table (200,000 rows before each fix, one tenant's after), SQLSTATE 42501 for the
row written for another tenant, and `current_setting('app.tenant_id'...)` in the plan's Index Cond.
"""

from __future__ import annotations

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
from common.timing import best_of

REQUIRES = ("postgres",)
SCHEMA = PREFIX = "row_level_security"
SEED, N_ROWS, N_TENANTS = 5, 200_000, 20
LOGINS = {"owner": "", "alice": "", "bob": "", "support": "BYPASSRLS"}  # name -> extra attribute
TENANT_OF = {"alice": 1, "bob": 2, "owner": 1, "support": 1}  # the app.tenant_id each one's requests carry
AUTHORS = ("alice", "bob", "carol", "dan")

SETUP = """
CREATE SCHEMA {s} AUTHORIZATION {owner};
CREATE TABLE {s}.documents (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, tenant_id integer NOT NULL,
    author name NOT NULL DEFAULT current_user, private boolean NOT NULL DEFAULT false, title text NOT NULL);
ALTER TABLE {s}.documents OWNER TO {owner};
GRANT USAGE ON SCHEMA {s} TO {app};
GRANT SELECT, INSERT, UPDATE ON {s}.documents TO {app};
"""
POLICIES = """
CREATE INDEX ON {s}.documents (tenant_id);
ALTER TABLE {s}.documents ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_reads ON {s}.documents FOR SELECT
    USING (tenant_id = current_setting('app.tenant_id', true)::integer);
CREATE POLICY tenant_inserts ON {s}.documents FOR INSERT
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true)::integer);
CREATE POLICY tenant_updates ON {s}.documents FOR UPDATE
    USING (tenant_id = current_setting('app.tenant_id', true)::integer)
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true)::integer);
CREATE POLICY private_to_author ON {s}.documents AS RESTRICTIVE
    USING (NOT private OR author = current_user);
CREATE VIEW {s}.document_titles AS SELECT id, tenant_id, title FROM {s}.documents;
GRANT SELECT ON {s}.document_titles TO {app};
"""
EXPLAIN_COUNT = "EXPLAIN (COSTS OFF) SELECT count(*) FROM {s}.documents"
# What a role's policies should let it see, written by hand: the measure the counts are checked against.
BY_HAND = "SELECT count(*) FROM {s}.documents WHERE tenant_id = %s AND (NOT private OR author = %s)"


@dataclass
class Leak:
    who: str
    fix: str
    before: int  # rows seen with the tenant setting of TENANT_OF, before the fix
    after: int | None  # after it (None: the server has no such fix)
    expected: int  # what the policies allow that role


@dataclass
class RlsResult:
    total_rows: int
    seen: dict[str, int]  # login role -> rows it sees through the policies
    expected: dict[str, int]  # login role -> the same counted by hand
    unset_setting_sees: int  # no app.tenant_id: the policy fails closed
    insert_other_tenant: str  # SQLSTATE of an INSERT for another tenant (WITH CHECK)
    update_other_tenant_rows: int  # rows an UPDATE of another tenant's documents touched (USING)
    move_to_other_tenant: str  # SQLSTATE of an UPDATE moving a row to another tenant (WITH CHECK)
    leaks: dict[str, Leak] = field(default_factory=dict)
    superuser_sees: int = 0
    plan_shows_policy: bool = False
    plan: str = field(default="", compare=False)
    policy_s: float = field(default=0.0, compare=False)
    by_hand_s: float = field(default=0.0, compare=False)
    roles_left: int = -1

    @property
    def holds(self) -> bool:
        """Each leak shows every row before its fix and only the allowed ones after; writes are refused."""
        leaks_fixed = all(
            leak.before == self.total_rows and leak.after in (leak.expected, None)
            for leak in self.leaks.values()
        )
        return (
            self.seen == self.expected
            and self.insert_other_tenant
            == self.move_to_other_tenant
            == psycopg.errors.InsufficientPrivilege.sqlstate
            and self.update_other_tenant_rows == 0
            and leaks_fixed
            and self.plan_shows_policy
            and self.roles_left == 0
        )


def role(name: str) -> str:
    return f"{PREFIX}_{name}"


def names() -> dict[str, sql.Identifier]:
    return {
        "s": sql.Identifier(SCHEMA),
        "owner": sql.Identifier(role("owner")),
        "app": sql.Identifier(role("app")),
    }


def q(text: str) -> sql.Composed:
    return sql.SQL(text).format(**names())


def drop_lesson_roles(admin: psycopg.Connection) -> int:
    """Hand what the roles own to the current user, drop their grants, drop them; the roles left."""
    prefix = PREFIX + "_"
    for (name,) in admin.execute(
        "SELECT rolname FROM pg_roles WHERE starts_with(rolname, %s)", (prefix,)
    ).fetchall():
        admin.execute(sql.SQL("REASSIGN OWNED BY {} TO CURRENT_USER").format(sql.Identifier(name)))
        admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
        admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))
    admin.commit()
    count = admin.execute(
        "SELECT count(*) FROM pg_roles WHERE starts_with(rolname, %s)", (prefix,)
    ).fetchone()[0]
    admin.rollback()
    return count


def create_roles(admin: psycopg.Connection) -> dict[str, str]:
    """A group role for the application, and login roles with passwords made now."""
    admin.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role("app"))))
    passwords = {}
    for name, attribute in LOGINS.items():
        passwords[name] = secrets.token_urlsafe(24)
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN {} PASSWORD {}").format(
                sql.Identifier(role(name)), sql.SQL(attribute), sql.Literal(passwords[name])
            )
        )
        admin.execute(
            sql.SQL("GRANT {} TO {}").format(sql.Identifier(role("app")), sql.Identifier(role(name)))
        )
    admin.commit()
    return passwords


def build(admin: psycopg.Connection) -> int:
    admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SCHEMA)))
    admin.execute(q(SETUP))
    rng = random.Random(SEED)
    with admin.cursor().copy(q("COPY {s}.documents (tenant_id, author, private, title) FROM STDIN")) as copy:
        for i in range(N_ROWS):
            copy.write_row(
                (i % N_TENANTS + 1, role(rng.choice(AUTHORS)), rng.random() < 0.2, f"document {i}")
            )
    admin.execute(q(POLICIES))
    admin.execute(q("ANALYZE {s}.documents"))
    admin.commit()
    return N_ROWS


@contextmanager
def login(url: str, name: str, password: str, tenant: int | None) -> Iterator[psycopg.Connection]:
    """A connection as a lesson role, with app.tenant_id set as the application would set it."""
    info = make_conninfo(url, user=role(name), password=password)
    with psycopg.connect(info, connect_timeout=CONNECT_TIMEOUT_S, autocommit=True) as conn:
        if tenant is not None:
            conn.execute("SELECT set_config('app.tenant_id', %s, false)", (str(tenant),))
        yield conn


def count(conn: psycopg.Connection, relation: str = "documents") -> int:
    return conn.execute(
        sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(SCHEMA, relation))
    ).fetchone()[0]


def by_hand(admin: psycopg.Connection, name: str) -> int:
    found = admin.execute(q(BY_HAND), (TENANT_OF[name], role(name))).fetchone()[0]
    admin.rollback()
    return found


def sqlstate_of(conn: psycopg.Connection, statement: str, params: tuple) -> str:
    """Run a write that should be refused; the SQLSTATE of InsufficientPrivilege, or '' if it went through."""
    try:
        with conn.transaction(force_rollback=True):
            conn.execute(q(statement), params)
    except psycopg.errors.InsufficientPrivilege as error:
        return error.sqlstate or ""
    return ""


def using_and_with_check(conn: psycopg.Connection) -> tuple[str, int, str]:
    """As alice (tenant 1): USING filters silently, WITH CHECK refuses with an error."""
    insert = sqlstate_of(conn, "INSERT INTO {s}.documents (tenant_id, title) VALUES (%s, %s)", (2, "planted"))
    with conn.transaction(force_rollback=True):
        touched = conn.execute(
            q("UPDATE {s}.documents SET title = %s WHERE tenant_id = %s"), ("x", 2)
        ).rowcount
    # No WHERE: nothing reads the rows' columns, so only the UPDATE policy's WITH CHECK guards the new rows.
    move = sqlstate_of(conn, "UPDATE {s}.documents SET tenant_id = %s", (2,))
    return insert, touched, move


def owner_leak(admin: psycopg.Connection, url: str, passwords: dict[str, str]) -> Leak:
    with login(url, "owner", passwords["owner"], TENANT_OF["owner"]) as owner:
        before = count(owner)
        admin.execute(q("ALTER TABLE {s}.documents FORCE ROW LEVEL SECURITY"))
        admin.commit()
        after = count(owner)
    return Leak("table owner", "FORCE ROW LEVEL SECURITY", before, after, by_hand(admin, "owner"))


def bypassrls_leak(admin: psycopg.Connection, url: str, passwords: dict[str, str]) -> Leak:
    with login(url, "support", passwords["support"], TENANT_OF["support"]) as support:
        before = count(support)
    admin.execute(sql.SQL("ALTER ROLE {} NOBYPASSRLS").format(sql.Identifier(role("support"))))
    admin.commit()
    with login(url, "support", passwords["support"], TENANT_OF["support"]) as support:  # read at login
        after = count(support)
    return Leak("BYPASSRLS role", "ALTER ROLE ... NOBYPASSRLS", before, after, by_hand(admin, "support"))


def view_leak(admin: psycopg.Connection, url: str, passwords: dict[str, str]) -> Leak:
    """The view was made by the superuser: it reads the table as its owner, past the policies."""
    supported = admin.execute("SELECT current_setting('server_version_num')::integer >= 150000").fetchone()[0]
    with login(url, "alice", passwords["alice"], TENANT_OF["alice"]) as alice:
        before = count(alice, "document_titles")
        after = None
        if supported:
            admin.execute(q("ALTER VIEW {s}.document_titles SET (security_invoker = true)"))
            admin.commit()
            after = count(alice, "document_titles")
    admin.rollback()
    return Leak(
        "view owned by a superuser", "security_invoker = true", before, after, by_hand(admin, "alice")
    )


def policy_cost(admin: psycopg.Connection, url: str, passwords: dict[str, str]) -> tuple[str, float, float]:
    """alice's count through the policies against the superuser's hand-written WHERE; alice's plan."""
    with login(url, "alice", passwords["alice"], TENANT_OF["alice"]) as alice:
        plan = "\n".join(row[0] for row in alice.execute(q(EXPLAIN_COUNT)))
        policy_s = best_of(lambda: count(alice), repeat=5)
    hand = q(BY_HAND)
    by_hand_s = best_of(lambda: admin.execute(hand, (TENANT_OF["alice"], role("alice"))).fetchone(), repeat=5)
    admin.rollback()
    return plan, policy_s, by_hand_s


def run(admin: psycopg.Connection, url: str) -> RlsResult:
    """`admin` is a superuser connection; `url` is the server's address for the lesson's logins."""
    console.title("Row-level security: tenant policies and how rows leak past them")
    try:
        result = lesson(admin, url)
    finally:  # roles are cluster-wide: they go even when the lesson fails
        admin.rollback()
        roles_left = drop_lesson_roles(admin)
    result.roles_left = roles_left
    console.say(f"lesson roles dropped at the end; left in the cluster: {roles_left}")
    return result


def lesson(admin: psycopg.Connection, url: str) -> RlsResult:
    console.step("One documents table for all tenants, policies on app.tenant_id and current_user")
    drop_lesson_roles(admin)  # what a failed earlier run may have left
    passwords = create_roles(admin)
    total = build(admin)
    console.say(f"{total:,} documents of {N_TENANTS} tenants; 1 in 5 private to its author.")

    console.step("Each login sees its tenant's rows, and its own private ones")
    seen, expected = {}, {}
    for name in ("alice", "bob"):
        with login(url, name, passwords[name], TENANT_OF[name]) as conn:
            seen[name] = count(conn)
        expected[name] = by_hand(admin, name)
    with login(url, "alice", passwords["alice"], None) as conn:
        unset = count(conn)
    console.table(
        ["login", "app.tenant_id", "rows seen", "counted by hand"],
        [*((n, TENANT_OF[n], seen[n], expected[n]) for n in seen), ("alice", "not set", unset, 0)],
    )
    console.say("The setting is trusted: set it in the application's connection code, never from user input.")

    console.step("USING filters silently; WITH CHECK refuses a row written for another tenant")
    with login(url, "alice", passwords["alice"], TENANT_OF["alice"]) as conn:
        insert, touched, move = using_and_with_check(conn)
    console.table(
        ["as alice (tenant 1)", "outcome"],
        [
            ("INSERT a document for tenant 2", f"InsufficientPrivilege, SQLSTATE {insert}"),
            ("UPDATE tenant 2's documents", f"{touched} rows: USING hid them"),
            ("UPDATE its documents to tenant 2", f"InsufficientPrivilege, SQLSTATE {move}"),
        ],
    )
    console.say(
        "An UPDATE whose WHERE reads the rows is also checked against the SELECT policy, on the new row."
    )
    result = RlsResult(total, seen, expected, unset, insert, touched, move)

    console.step("Three leaks, each counted before and after its fix")
    for leak in (owner_leak(admin, url, passwords), bypassrls_leak(admin, url, passwords)):
        result.leaks[leak.who] = leak
    result.superuser_sees = count(admin)
    admin.rollback()
    view = view_leak(admin, url, passwords)
    result.leaks[view.who] = view
    rows = [
        (x.who, x.before, x.fix, "no such fix" if x.after is None else x.after, x.expected)
        for x in result.leaks.values()
    ]
    rows.append(
        ("superuser (this connection)", result.superuser_sees, "none: never run the app as one", "-", "-")
    )
    console.table(["who", "rows before", "fix", "rows after", "allowed"], rows)
    if view.after is None:
        console.say("This server is older than 15: it has no security_invoker, and the view still leaks.")
    console.say(
        "Before PostgreSQL 15 a view always runs as its owner: own it by a role the policies apply to."
    )

    console.step("What a policy costs: its predicate in the plan, against the same WHERE by hand")
    result.plan, result.policy_s, result.by_hand_s = policy_cost(admin, url, passwords)
    result.plan_shows_policy = all(part in result.plan for part in ("app.tenant_id", "CURRENT_USER"))
    console.plan(result.plan)
    console.compare("through the policies", result.policy_s, "hand-written WHERE", result.by_hand_s)
    return result


def main() -> int:
    require(*REQUIRES)
    url = postgres_url()
    with psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S) as admin:
        result = run(admin, url)
    return 0 if result.holds else 1


if __name__ == "__main__":
    raise SystemExit(main())

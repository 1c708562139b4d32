"""SQL injection: four attacks that work on a query built by string formatting, and fail on bound parameters

A login query built with an f-string lets the user's input become SQL. This lesson attacks that
one function (labelled UNSAFE, the only one in the project) four ways and measures what each
gets: a tautology that logs in without a password, a UNION that reads a table of API keys, a
stacked query that drops a table, and a second-order injection, where a name stored safely with
bound parameters is later pasted into the query by a nightly job. The same inputs then go to the
same query with bound parameters: no rows leaked, the table still there. Which drivers run
stacked statements at all is measured too (psycopg without parameters does, with parameters it
refuses; Python's sqlite3 `execute` refuses, `executescript` does not). Identifiers and ORDER BY
cannot be parameters: they go through an allow-list and `psycopg.sql.Identifier`.

Engine: PostgreSQL (POSTGRES_URL), schema `sql_injection`; Python's sqlite3 in memory for one contrast.
Run: `make up SERVICES=postgres` (or `make local-up`), then `python security/sql_injection.py`.
Look for: the attack table, "UNSAFE" rows leaking every user and key and dropping `audit_log`, the
"bound" rows at 0 with the table intact, and the rejected ORDER BY inputs.
"""

from __future__ import annotations

import hashlib
import random
import sqlite3
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from common import console
from common.settings import CONNECT_TIMEOUT_S, postgres_url, require

REQUIRES = ("postgres",)
SCHEMA = "sql_injection"
SEED = 19
USERS = [("admin", "admin"), ("ana", "member"), ("ben", "member"), ("cy", "member"), ("dee", "auditor")]
N_KEYS = 3
TABLES = """
CREATE TABLE users (id integer PRIMARY KEY, name text UNIQUE NOT NULL, role text NOT NULL,
                    password_hash text NOT NULL, created_at date NOT NULL);
CREATE TABLE api_keys (id integer PRIMARY KEY, label text NOT NULL, secret text NOT NULL);
CREATE TABLE audit_log (id serial PRIMARY KEY, event text NOT NULL);
"""
# The attacker's inputs: each goes into the `name` field of the login form.
ATTACKS = {
    "tautology": "' OR '1'='1' --",
    "union": "' UNION SELECT id, label, secret FROM api_keys --",
    "stacked": "'; DROP TABLE audit_log; --",
}
SECOND_ORDER_NAME = "mallory' UNION SELECT id, label, secret FROM api_keys --"
SAFE_LOGIN = "SELECT id, name, role FROM users WHERE name = %s AND password_hash = %s"
SORTABLE = {"name", "created_at", "role"}  # the allow-list of ORDER BY columns
DIRECTIONS = {"asc": sql.SQL("ASC"), "desc": sql.SQL("DESC")}
ORDER_BY_ATTACKS = [
    ("(SELECT CASE WHEN (SELECT secret FROM api_keys LIMIT 1) LIKE 'k%' THEN name ELSE role END)", "asc"),
    ("name", "desc; DROP TABLE users"),
]


@dataclass
class Attack:
    name: str
    unsafe_rows: int  # rows the vulnerable login returned
    safe_rows: int  # rows the bound login returned for the same input
    unsafe_table_left: bool = True  # audit_log still exists after the unsafe call
    safe_table_left: bool = True


@dataclass
class InjectionResult:
    users: int
    keys: int
    attacks: dict[str, Attack] = field(default_factory=dict)
    stacked_with_params_sqlstate: str = ""  # what psycopg/PostgreSQL say to two statements with parameters
    sqlite_execute_refused: bool = False  # sqlite3's execute() refuses a second statement
    sqlite_executescript_dropped: bool = False  # executescript() runs it
    order_by_rejected: int = 0  # hostile ORDER BY inputs the allow-list refused
    quoted_identifier_sqlstate: str = ""  # an odd column name, quoted by sql.Identifier, is just unknown
    sorted_names: list[str] = field(default_factory=list)  # an allowed ORDER BY still works

    @property
    def holds(self) -> bool:
        """Every attack works on the formatted query and gets nothing from the bound one."""
        a = self.attacks
        worked = (
            a["tautology"].unsafe_rows == self.users
            and a["union"].unsafe_rows == self.keys
            and not a["stacked"].unsafe_table_left
            and a["second-order"].unsafe_rows == self.keys
        )
        stopped = all(x.safe_rows == 0 and x.safe_table_left for x in a.values())
        return worked and stopped and self.order_by_rejected == len(ORDER_BY_ATTACKS)


def password_hash(password: str) -> str:
    """Simplified for the lesson; store real passwords with a slow, salted hash (scrypt, argon2)."""
    return hashlib.sha256(password.encode()).hexdigest()


def reset_schema(conn: psycopg.Connection, rng: random.Random) -> None:
    with conn.cursor() as cur:
        cur.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SCHEMA)))
        cur.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(SCHEMA)))
        cur.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(SCHEMA)))
        cur.execute(TABLES)
        cur.executemany(
            "INSERT INTO users VALUES (%s, %s, %s, %s, %s)",
            [
                (i, name, role, password_hash(f"{name}-{rng.random()}"), f"2024-0{i}-01")
                for i, (name, role) in enumerate(USERS, start=1)
            ],
        )
        keys = [
            (i, f"service-{i}", "k" + "".join(rng.choices("0123456789abcdef", k=24))) for i in range(1, 4)
        ]
        cur.executemany("INSERT INTO api_keys VALUES (%s, %s, %s)", keys)
    conn.commit()


def restore_audit_log(conn: psycopg.Connection) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS audit_log (id serial PRIMARY KEY, event text NOT NULL)")
    conn.commit()


def vulnerable_login(conn: psycopg.Connection, name: str, password_hash: str) -> list[tuple]:
    """UNSAFE, DO NOT COPY: the input is pasted into the SQL text with an f-string.

    This is the one function in the project that builds a query by string formatting, kept to be
    attacked. With no parameters psycopg sends the text as a simple query, so a `;` starts a
    second statement.
    """
    query = f"SELECT id, name, role FROM users WHERE name = '{name}' AND password_hash = '{password_hash}'"  # noqa: S608
    with conn.cursor() as cur:
        cur.execute(query)
        rows = cur.fetchall() if cur.description else []
        while cur.nextset():  # the results of any stacked statements
            rows += cur.fetchall() if cur.description else []
    conn.commit()
    return rows


def login(conn: psycopg.Connection, name: str, password_hash: str) -> list[tuple]:
    """The same query with bound parameters: the input is only ever a value."""
    rows = conn.execute(SAFE_LOGIN, (name, password_hash)).fetchall()
    conn.commit()
    return rows


def table_exists(conn: psycopg.Connection, table: str) -> bool:
    found = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{SCHEMA}.{table}",)).fetchone()[0]
    conn.rollback()
    return found


def attack(conn: psycopg.Connection, name: str, text: str) -> Attack:
    """The same input to the formatted query, then to the bound one; audit_log is checked after each."""
    wrong_password = password_hash("not-the-password")
    unsafe = vulnerable_login(conn, text, wrong_password)
    unsafe_left = table_exists(conn, "audit_log")
    restore_audit_log(conn)
    safe = login(conn, text, wrong_password)
    return Attack(name, len(unsafe), len(safe), unsafe_left, table_exists(conn, "audit_log"))


def second_order(conn: psycopg.Connection) -> Attack:
    """Sign-up stores the hostile name safely; a nightly job re-checks each account with the login query."""
    hashed = password_hash("mallory-password")
    conn.execute(
        "INSERT INTO users (id, name, role, password_hash, created_at) VALUES (%s, %s, %s, %s, %s)",
        (len(USERS) + 1, SECOND_ORDER_NAME, "member", hashed, "2024-09-01"),
    )
    conn.commit()
    stored_name, stored_hash = conn.execute(
        "SELECT name, password_hash FROM users WHERE id = %s", (len(USERS) + 1,)
    ).fetchone()
    conn.rollback()
    own = (len(USERS) + 1, stored_name, "member")
    # Any row other than Mallory's own is a leak.
    unsafe = [row for row in vulnerable_login(conn, stored_name, stored_hash) if row != own]
    safe = [row for row in login(conn, stored_name, stored_hash) if row != own]
    conn.execute("DELETE FROM users WHERE id = %s", (own[0],))
    conn.commit()
    return Attack("second-order", len(unsafe), len(safe))


def stacked_with_parameters(conn: psycopg.Connection) -> str:
    """Two statements in one execute() with a parameter: the extended protocol refuses them."""
    try:
        conn.execute("SELECT %s; DROP TABLE audit_log", ("x",))
    except psycopg.errors.SyntaxError as error:
        conn.rollback()
        return error.sqlstate or ""
    conn.rollback()
    return ""


def sqlite_contrast() -> tuple[bool, bool]:
    """sqlite3's execute() runs one statement and refuses a second; executescript() runs them all."""
    db = sqlite3.connect(":memory:")
    try:
        db.execute("CREATE TABLE audit_log (id integer)")
        try:
            db.execute("SELECT 1; DROP TABLE audit_log")
            refused = False
        except sqlite3.ProgrammingError:
            refused = True
        db.executescript("SELECT 1; DROP TABLE audit_log")
        dropped = db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'audit_log'").fetchone()[0] == 0
    finally:
        db.close()
    return refused, dropped


def list_users(conn: psycopg.Connection, sort: str, direction: str) -> list[str]:
    """ORDER BY cannot be a parameter: the column comes from an allow-list, then sql.Identifier quotes it."""
    if sort not in SORTABLE or direction not in DIRECTIONS:
        raise ValueError(f"cannot sort by {sort!r} {direction!r}")
    query = sql.SQL("SELECT name FROM users ORDER BY {} {}").format(
        sql.Identifier(sort), DIRECTIONS[direction]
    )
    names = [name for (name,) in conn.execute(query)]
    conn.rollback()
    return names


def quoted_identifier(conn: psycopg.Connection, text: str) -> str:
    """Without the allow-list, sql.Identifier still makes the input one (unknown) column name."""
    try:
        conn.execute(sql.SQL("SELECT name FROM users ORDER BY {}").format(sql.Identifier(text)))
    except psycopg.errors.UndefinedColumn as error:
        conn.rollback()
        return error.sqlstate or ""
    conn.rollback()
    return ""


def dynamic_identifiers(conn: psycopg.Connection, result: InjectionResult) -> list[tuple]:
    rows = []
    for sort, direction in ORDER_BY_ATTACKS:
        try:
            list_users(conn, sort, direction)
            rows.append((sort[:40], direction, "ran"))
        except ValueError:
            result.order_by_rejected += 1
            rows.append((sort[:40], direction, "rejected by the allow-list"))
    result.quoted_identifier_sqlstate = quoted_identifier(conn, ORDER_BY_ATTACKS[0][0])
    result.sorted_names = list_users(conn, "name", "desc")
    return rows


def run(conn: psycopg.Connection) -> InjectionResult:
    console.title("SQL injection: the attacks, on a formatted query and on bound parameters")

    console.step("A login table, a table of API keys, an audit log")
    reset_schema(conn, random.Random(SEED))
    result = InjectionResult(users=len(USERS), keys=N_KEYS)
    console.say(f"{len(USERS)} users, {N_KEYS} API keys. The login form sends a name and a password.")
    console.say("UNSAFE, DO NOT COPY: vulnerable_login() pastes the name into its SQL with an f-string.")

    console.step("Attack the UNSAFE formatted query, then the bound one, with the same inputs")
    for name, text in ATTACKS.items():
        result.attacks[name] = attack(conn, name, text)
    result.attacks["second-order"] = second_order(conn)
    for name, text in [*ATTACKS.items(), ("second-order", SECOND_ORDER_NAME)]:
        console.say(f"{name} input: {text}")
    console.table(
        ["attack", "UNSAFE: rows", "UNSAFE: audit_log left", "bound: rows", "bound: audit_log left"],
        [
            (a.name, a.unsafe_rows, a.unsafe_table_left, a.safe_rows, a.safe_table_left)
            for a in result.attacks.values()
        ],
    )
    console.say(
        "tautology: every user returned with a wrong password; an app that takes row 1 logs in as admin."
    )
    console.say(
        "second-order: sign-up stored the name with bound parameters; the nightly job pasted it back in."
    )
    console.say("Bound: each input was compared as a name, and no user has that name.")

    console.step("Which drivers run stacked statements")
    result.stacked_with_params_sqlstate = stacked_with_parameters(conn)
    result.sqlite_execute_refused, result.sqlite_executescript_dropped = sqlite_contrast()
    console.table(
        ["driver call", "two statements"],
        [
            ("psycopg execute(text) without parameters (simple protocol)", "run: audit_log dropped above"),
            ("psycopg execute(text, params) (extended protocol)", f"refused, SQLSTATE {result.stacked_with_params_sqlstate}"),
            ("sqlite3 execute()", "refused" if result.sqlite_execute_refused else "run"),
            ("sqlite3 executescript()", "run" if result.sqlite_executescript_dropped else "refused"),
        ],
    )  # fmt: skip
    console.say("MySQL drivers refuse them unless the connection sets CLIENT.MULTI_STATEMENTS.")

    console.step("Identifiers and ORDER BY: an allow-list, then psycopg.sql.Identifier")
    rows = dynamic_identifiers(conn, result)
    console.table(["sort", "direction", "outcome"], rows)
    console.say(
        f"sql.Identifier alone turns the first input into one unknown column: SQLSTATE {result.quoted_identifier_sqlstate}"
    )
    console.say(f"an allowed sort (name desc): {', '.join(result.sorted_names)}")
    return result


def main() -> int:
    require(*REQUIRES)
    with psycopg.connect(postgres_url(), connect_timeout=CONNECT_TIMEOUT_S) as conn:
        result = run(conn)
    return 0 if result.holds else 1


if __name__ == "__main__":
    raise SystemExit(main())

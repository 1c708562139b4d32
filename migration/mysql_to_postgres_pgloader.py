"""MySQL to PostgreSQL with pgloader: what each column type becomes, and the rows the default casts drop

pgloader reads a MySQL database's catalog, creates the tables in PostgreSQL with its casting
rules, and streams the rows with COPY. This lesson loads a small shop (customers, orders, order
lines) whose columns cover the awkward types: unsigned integers, TINYINT(1), DECIMAL, DOUBLE, ENUM,
SET, YEAR, JSON, utf8mb4 text with emoji, NULLs, and MySQL's zero dates ('0000-00-00'), which
PostgreSQL has no value for. The first load uses pgloader's default casts: a `DATE NOT NULL` column
holding zero dates keeps its NOT NULL while the zero dates become NULL, and a nullable DATE passes
'0000-00-00' through untouched, so PostgreSQL refuses a row of each table; pgloader stops that
table (`on error stop` is its default for MySQL), loads the others and exits 0. One CAST rule fixes
it; the second load is then checked table by table: row counts, and a checksum of every row in one
canonical form computed on both sides. information_schema on both sides shows what each type became.

The load command is a file in a private temporary folder (the URLs carry the passwords: a file, not
the command line that `ps` shows). pgloader names the target schema after the MySQL database
(`ALTER SCHEMA ... RENAME TO` changes that) and, unless the schema is already on the session's
search_path, runs `ALTER DATABASE ... SET search_path` on the whole database: the command sets
search_path itself to avoid that. It also pins both sessions to UTC, since a DATETIME has no zone.
pgloader 3.6 speaks only mysql_native_password to MySQL: MySQL 8.4's default caching_sha2_password
is refused (QMYND:MYSQL-UNSUPPORTED-AUTHENTICATION); the lesson then says so and shows the source
side only. MariaDB, the local stand-in, uses mysql_native_password and works.

Engine: MySQL (MYSQL_URL), database `mysql_to_postgres_pgloader`; PostgreSQL (POSTGRES_URL), schema
`mysql_to_postgres_pgloader`; pgloader (Debian package `pgloader`) on the PATH.
Run: `make up SERVICES="mysql postgres"` (or `make local-up`), then `python migration/mysql_to_postgres_pgloader.py`.
Look for: customers loaded 0 of N with exit code 0, then every count and checksum equal; ENUM
becoming a PostgreSQL enum type, SET an enum array, TINYINT(1) boolean, DATETIME timestamptz.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pymysql
from psycopg import sql

from common import console
from common.settings import CONNECT_TIMEOUT_S, mysql_params, mysql_url, postgres_url, require, scale
from common.timing import timer

REQUIRES = ("mysql", "postgres")
PGLOADER = "pgloader"  # the binary: Debian's package puts it on the PATH
DATABASE = SCHEMA = "mysql_to_postgres_pgloader"  # MySQL database and PostgreSQL schema
SEED = 17
TABLES = ("customers", "orders", "order_lines")
TIERS, ZERO_DATE, ZERO_DATETIME = ("free", "pro", "enterprise"), "0000-00-00", "0000-00-00 00:00:00"
NAMES = [
    "Zoë Ångström",
    "Łukasz Żółć",
    "Søren Kierkegård",
    "李小龍",
    "Ἀθηνᾶ",
    "José 😀 Núñez",
    "Ada Lovelace",
]

MYSQL_DDL = [
    "DROP DATABASE IF EXISTS mysql_to_postgres_pgloader",
    "CREATE DATABASE mysql_to_postgres_pgloader CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
    """CREATE TABLE mysql_to_postgres_pgloader.customers (
        id INT UNSIGNED AUTO_INCREMENT PRIMARY KEY, name VARCHAR(100) NOT NULL, email VARCHAR(120) NULL,
        tier ENUM('free','pro','enterprise') NOT NULL DEFAULT 'free', tags SET('newsletter','beta','vip') NULL,
        is_active TINYINT(1) NOT NULL DEFAULT 1, balance DECIMAL(12,2) NOT NULL, score DOUBLE NULL,
        born DATE NOT NULL DEFAULT '0000-00-00', signed_up DATETIME NOT NULL DEFAULT '0000-00-00 00:00:00',
        last_login TIMESTAMP NULL DEFAULT NULL, signup_year YEAR NULL, profile JSON NULL)""",
    """CREATE TABLE mysql_to_postgres_pgloader.orders (
        id BIGINT AUTO_INCREMENT PRIMARY KEY, customer_id INT UNSIGNED NOT NULL,
        status ENUM('new','paid','shipped','cancelled') NOT NULL, placed_at DATETIME(3) NOT NULL,
        shipped_on DATE NULL, total DECIMAL(12,2) NOT NULL, items SMALLINT UNSIGNED NOT NULL,
        FOREIGN KEY (customer_id) REFERENCES customers (id))""",
    """CREATE TABLE mysql_to_postgres_pgloader.order_lines (
        order_id BIGINT NOT NULL, line_no TINYINT UNSIGNED NOT NULL, sku CHAR(8) NOT NULL,
        qty SMALLINT NOT NULL, unit_price DECIMAL(10,2) NOT NULL, PRIMARY KEY (order_id, line_no),
        FOREIGN KEY (order_id) REFERENCES orders (id))""",
]
INSERTS = {
    "customers": "INSERT INTO mysql_to_postgres_pgloader.customers VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
    " %s, %s, %s)",
    "orders": "INSERT INTO mysql_to_postgres_pgloader.orders VALUES (%s, %s, %s, %s, %s, %s, %s)",
    "order_lines": "INSERT INTO mysql_to_postgres_pgloader.order_lines VALUES (%s, %s, %s, %s, %s)",
}
# What each table's checksum reads on the MySQL side; PostgreSQL reads the same columns by name.
MYSQL_ROWS = {
    "customers": "SELECT * FROM mysql_to_postgres_pgloader.customers ORDER BY id",
    "orders": "SELECT * FROM mysql_to_postgres_pgloader.orders ORDER BY id",
    "order_lines": "SELECT * FROM mysql_to_postgres_pgloader.order_lines ORDER BY order_id, line_no",
}
COUNTS = """SELECT (SELECT count(*) FROM mysql_to_postgres_pgloader.customers),
    (SELECT count(*) FROM mysql_to_postgres_pgloader.orders), (SELECT count(*) FROM mysql_to_postgres_pgloader.order_lines)"""
KEYS = {"customers": ("id",), "orders": ("id",), "order_lines": ("order_id", "line_no")}
ZERO_DATES = {  # column -> (its zero dates, its NULLs) in MySQL
    "customers.born": "SELECT SUM(born = '0000-00-00'), SUM(born IS NULL) FROM mysql_to_postgres_pgloader.customers",
    "customers.signed_up": "SELECT SUM(signed_up = '0000-00-00 00:00:00'), SUM(signed_up IS NULL)"
    " FROM mysql_to_postgres_pgloader.customers",
    "orders.shipped_on": "SELECT SUM(shipped_on = '0000-00-00'), SUM(shipped_on IS NULL)"
    " FROM mysql_to_postgres_pgloader.orders",
}
# The rule the default casts lack: a zero date becomes NULL, so the column must accept NULL.
ZERO_DATE_CAST = "type date drop not null drop default using zero-dates-to-null"
# pgloader writes `SET name = value` to MySQL without quoting the value: the quotes go inside.
LOAD_COMMAND = """LOAD DATABASE
     FROM {source}
     INTO {target}
 WITH include drop, create tables, create indexes, reset sequences, foreign keys
  SET PostgreSQL PARAMETERS search_path to '{schema}, public', timezone to 'UTC'
  SET MySQL PARAMETERS time_zone = '"+00:00"'
{cast} ALTER SCHEMA '{database}' RENAME TO '{schema}';
"""
MYSQL_COLUMNS = """SELECT table_name, column_name, column_type, is_nullable FROM information_schema.columns
WHERE table_schema = %s AND table_name IN ('customers', 'orders') ORDER BY table_name, ordinal_position"""
PG_COLUMNS = """SELECT table_name, column_name, data_type, udt_name, character_maximum_length,
    numeric_precision, numeric_scale, is_nullable FROM information_schema.columns
WHERE table_schema = %s AND table_name IN ('customers', 'orders') ORDER BY table_name, ordinal_position"""

SET_COLUMNS, JSON_COLUMNS = {"tags"}, {"profile"}


@dataclass
class Load:
    exit_code: int
    target_rows: dict[str, int]
    errors: list[str] = field(compare=False)  # pgloader's ERROR lines, trimmed
    seconds: float = field(compare=False)


@dataclass
class PgloaderResult:
    server: str  # which MySQL flavour ran
    source_rows: dict[str, int]
    zero_dates: dict[str, tuple[int, int]]  # column -> (zero dates, NULLs) in MySQL
    pgloader: str  # its version line, or why it could not run
    ran: bool = False
    default_load: Load | None = None
    fixed_load: Load | None = None
    checksums: dict[str, tuple[str, str]] = field(default_factory=dict)  # table -> (MySQL, PostgreSQL)
    null_dates: dict[str, int] = field(default_factory=dict)  # column -> NULLs in PostgreSQL
    types: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # column -> MySQL, PG, NULL allowed
    enum_labels: list[str] = field(default_factory=list)  # PostgreSQL's labels of orders.status, in order
    database_settings_changed: bool = False
    rows_per_s: float = field(default=0.0, compare=False)

    @property
    def holds(self) -> bool:
        """The fixed load copies every row, every checksum matches, and no database setting changed."""
        if not self.ran:
            return True  # pgloader missing or refused: said in one line, and the source side still shown
        return (
            self.fixed_load is not None
            and self.fixed_load.target_rows == self.source_rows
            and all(mysql == postgres for mysql, postgres in self.checksums.values())
            and not self.database_settings_changed
        )


def generate(n_customers: int) -> dict[str, list[tuple]]:
    """Customers, their orders and order lines: NULLs, zero dates, unicode, exact decimals."""
    rng = random.Random(SEED)

    def maybe(share_missing: float, value: object) -> object:
        return None if rng.random() < share_missing else value

    customers, orders, lines = [], [], []
    for cid in range(1, n_customers + 1):
        signed = dt.datetime(2020, 1, 1) + dt.timedelta(seconds=rng.randrange(10**8))
        born = dt.date(1950, 1, 1) + dt.timedelta(days=rng.randrange(20000))
        tags = ",".join(tag for tag in ("newsletter", "beta", "vip") if rng.random() < 0.3) or None
        profile = json.dumps({"lang": rng.choice(["fr", "ja"]), "vip": rng.random() < 0.1})
        who = (cid, f"{rng.choice(NAMES)} {cid}", maybe(0.1, f"c{cid}@example.org"), rng.choice(TIERS), tags)
        money = (
            int(rng.random() < 0.8),
            Decimal(rng.randrange(10**7)) / 100,
            maybe(0.2, rng.random() * 1000),
        )
        dates = (maybe(0.05, born) or ZERO_DATE, maybe(0.03, signed) or ZERO_DATETIME)
        rest = (
            maybe(0.3, signed + dt.timedelta(days=rng.randrange(300))),
            maybe(0.1, 2000 + rng.randrange(25)),
        )
        customers.append(who + money + dates + rest + (maybe(0.5, profile),))
    for oid in range(1, 3 * n_customers + 1):
        placed = dt.datetime(2024, 1, 1) + dt.timedelta(milliseconds=rng.randrange(3 * 10**10))
        status = rng.choice(["new", "paid", "shipped", "cancelled"])
        shipped = None if status != "shipped" else maybe(0.1, placed.date()) or ZERO_DATE
        mine = [
            (
                oid,
                n,
                f"SKU{rng.randrange(10**5):05d}",
                rng.randint(1, 9),
                Decimal(rng.randrange(100, 50000)) / 100,
            )
            for n in range(1, rng.randint(1, 5) + 1)
        ]
        total = sum(qty * price for _, _, _, qty, price in mine)
        orders.append((oid, rng.randint(1, n_customers), status, placed, shipped, total, len(mine)))
        lines.extend(mine)
    return {"customers": customers, "orders": orders, "order_lines": lines}


def build_source(conn: pymysql.Connection, n_customers: int) -> str:
    """The MySQL database. Zero dates are allowed in this session only: no server setting changes."""
    with conn.cursor() as cur:
        cur.execute("SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION'")  # no NO_ZERO_DATE, no STRICT_*
        cur.execute("SET SESSION time_zone = '+00:00'")
        for statement in MYSQL_DDL:
            cur.execute(statement)
        for table, rows in generate(n_customers).items():
            for start in range(0, len(rows), 5000):
                cur.executemany(INSERTS[table], rows[start : start + 5000])
        conn.commit()
        cur.execute("SELECT VERSION()")
        version = cur.fetchone()[0]
    return ("MariaDB " if "mariadb" in version.lower() else "MySQL ") + version.split("-")[0]


def scalar(conn: pymysql.Connection, query: str) -> tuple:
    with conn.cursor() as cur:
        cur.execute(query)
        return cur.fetchone()


def canonical(column: str, value: object) -> str:
    """One text form for a value read from either side; a zero date reads as NULL, the mapping chosen."""
    if value is None or (isinstance(value, str) and value.startswith("0000-00-00")):
        return r"\N"
    if column in SET_COLUMNS:  # MySQL 'a,b'; PostgreSQL '{a,b}' (an array of an enum psycopg does not know)
        return ",".join(sorted(str(value).strip("{}").split(",")))
    if column in JSON_COLUMNS:
        return json.dumps(json.loads(value) if isinstance(value, str) else value, sort_keys=True)
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return repr(value) if isinstance(value, float) else str(int(value) if isinstance(value, bool) else value)


def digest(columns: list[str], rows) -> str:
    hashed = hashlib.sha256()
    for row in rows:
        hashed.update(
            "\x1f".join(canonical(c, v) for c, v in zip(columns, row, strict=True)).encode() + b"\n"
        )
    return hashed.hexdigest()[:16]


def checksums(my: pymysql.Connection, pg: psycopg.Connection) -> dict[str, tuple[str, str]]:
    """Every row of each table, in key order, hashed in the same canonical form on both sides."""
    found = {}
    for table, query in MYSQL_ROWS.items():
        with my.cursor() as cur:
            cur.execute("SET SESSION time_zone = '+00:00'")
            cur.execute(query)
            columns = [d[0] for d in cur.description]
            mysql_sum = digest(columns, cur.fetchall())
        read = sql.SQL("SELECT {} FROM {} ORDER BY {}").format(
            sql.SQL(", ").join(map(sql.Identifier, columns)),
            sql.Identifier(SCHEMA, table),
            sql.SQL(", ").join(map(sql.Identifier, KEYS[table])),
        )
        found[table] = (mysql_sum, digest(columns, pg.execute(read).fetchall()))
    pg.rollback()
    return found


def pg_counts(pg: psycopg.Connection) -> dict[str, int]:
    counts = {}
    for table in TABLES:
        exists = pg.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{SCHEMA}.{table}",)).fetchone()[0]
        query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(SCHEMA, table))
        counts[table] = pg.execute(query).fetchone()[0] if exists else 0
    pg.rollback()
    return counts


def database_settings(pg: psycopg.Connection) -> list:
    query = """SELECT setrole, setconfig FROM pg_db_role_setting
               WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())"""
    found = sorted(pg.execute(query).fetchall(), key=str)
    pg.rollback()
    return found


def load_command(mysql: str, postgres: str, cast: str) -> str:
    """The command file: both URLs carry their credentials, so it lives in a private folder."""
    source, target = urlsplit(mysql), urlsplit(postgres)
    return LOAD_COMMAND.format(
        source=f"mysql://{source.netloc}/{DATABASE}",
        target=f"postgresql://{target.netloc}{target.path}",  # no query string: pgloader's own options
        schema=SCHEMA,
        database=DATABASE,
        cast=f"  CAST {cast}\n" if cast else "",
    )


def pgloader_version() -> tuple[bool, str]:
    if shutil.which(PGLOADER) is None:
        return False, "pgloader is not installed (Debian: apt-get install pgloader)"
    finished = subprocess.run([PGLOADER, "--version"], capture_output=True, text=True, timeout=60)
    return True, finished.stdout.splitlines()[0] if finished.stdout else "pgloader (version unknown)"


def pgloader(pg: psycopg.Connection, mysql: str, postgres: str, cast: str = "") -> Load:
    pg.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SCHEMA)))
    pg.commit()
    with tempfile.TemporaryDirectory(prefix="pgloader-") as folder:
        command = Path(folder) / "load.sql"
        command.write_text(load_command(mysql, postgres, cast))
        argv = [PGLOADER, "--root-dir", f"{folder}/out", "--logfile", f"{folder}/pgloader.log", str(command)]
        with timer() as took:
            finished = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    output = finished.stdout + finished.stderr
    errors = re.findall(r" (?:ERROR|FATAL) (.*)", output)
    return Load(finished.returncode, pg_counts(pg), errors, took.seconds)


def type_map(my: pymysql.Connection, pg: psycopg.Connection) -> dict[str, tuple[str, str, str]]:
    """information_schema on both sides: column -> (MySQL type, PostgreSQL type, NULL allowed)."""
    with my.cursor() as cur:
        cur.execute(MYSQL_COLUMNS, (DATABASE,))
        mysql = {f"{t}.{c}": (kind.replace("'", ""), nulls) for t, c, kind, nulls in cur.fetchall()}
    postgres = {}
    for table, column, kind, udt, length, precision, scale_, nulls in pg.execute(PG_COLUMNS, (SCHEMA,)):
        if kind == "USER-DEFINED":
            kind = f"enum {udt}"
        elif kind == "ARRAY":
            kind = f"{udt[1:]}[]"
        elif length or (kind == "numeric" and precision):
            kind += f"({length})" if length else f"({precision},{scale_})"
        short = kind.replace("character varying", "varchar").replace(
            "timestamp with time zone", "timestamptz"
        )
        postgres[f"{table}.{column}"] = (short, nulls)
    pg.rollback()
    found = {}
    for column, (kind, nulls) in mysql.items():
        pg_kind, pg_nulls = postgres.get(column, ("-", nulls))
        found[column] = (kind, pg_kind, (nulls if pg_nulls == nulls else f"{nulls} -> {pg_nulls}").lower())
    return found


def enum_labels(pg: psycopg.Connection) -> list[str]:
    query = """SELECT e.enumlabel FROM pg_attribute a JOIN pg_enum e ON e.enumtypid = a.atttypid
               WHERE a.attrelid = to_regclass(%s) AND a.attname = 'status' ORDER BY e.enumsortorder"""
    labels = [label for (label,) in pg.execute(query, (f"{SCHEMA}.orders",))]
    pg.rollback()
    return labels


def pg_nulls(pg: psycopg.Connection) -> dict[str, int]:
    found = {}
    for column in ZERO_DATES:
        table, name = column.split(".")
        query = sql.SQL("SELECT count(*) FROM {} WHERE {} IS NULL").format(
            sql.Identifier(SCHEMA, table), sql.Identifier(name)
        )
        found[column] = pg.execute(query).fetchone()[0]
    pg.rollback()
    return found


def refused(load: Load) -> bool:
    """Nothing loaded because pgloader's MySQL driver (qmynd) failed in the handshake itself: an
    authentication plugin it does not speak. An error the server sent back reads `MySQL Error [...]`."""
    handshake = [
        line for line in load.errors if "Failed to connect to mysql" in line and "MySQL Error [" not in line
    ]
    return bool(handshake) and not any(load.target_rows.values())


def show_load(label: str, load: Load, source_rows: dict[str, int]) -> None:
    console.table(
        ["table", "rows in MySQL", "rows in PostgreSQL"],
        [(table, source_rows[table], load.target_rows[table]) for table in TABLES],
        caption=f"{label}: pgloader exit code {load.exit_code}, {console.seconds(load.seconds)}",
    )
    for line in load.errors[:3]:
        console.say(f"pgloader: {line[:160]}")


def run(my: pymysql.Connection, pg: psycopg.Connection, mysql: str, postgres: str) -> PgloaderResult:
    """`my` and `pg` are connections; `mysql` and `postgres` their URLs, for pgloader's command file."""
    console.title("MySQL to PostgreSQL with pgloader: types, zero dates, counts and checksums")
    console.step("A MySQL shop with the awkward types: ENUM, SET, TINYINT(1), DECIMAL, JSON, zero dates")
    server = build_source(my, max(100, int(4000 * scale())))
    source_rows = dict(zip(TABLES, scalar(my, COUNTS), strict=True))
    zeros = {column: tuple(int(n or 0) for n in scalar(my, query)) for column, query in ZERO_DATES.items()}
    console.table(["table", "rows"], source_rows.items(), caption=f"on {server}")
    console.table(["column", "zero dates", "NULLs"], [(c, *n) for c, n in zeros.items()])
    installed, version = pgloader_version()
    result = PgloaderResult(server, source_rows, zeros, version)

    console.step("Load it with pgloader's default casting rules")
    console.say(f"{version}; the command file sits in a private temporary folder, with both URLs.")
    settings_before = database_settings(pg)
    if installed:
        result.default_load = pgloader(pg, mysql, postgres)
        result.ran = not refused(result.default_load)
    if not result.ran:
        reason = result.default_load.errors[0] if result.default_load else version
        console.say(f"pgloader could not load from this server: {reason[:200]}")
        console.say(
            "pgloader 3.6 speaks mysql_native_password only; MySQL 8.4 defaults to caching_sha2_password."
        )
        return result
    show_load("default casts", result.default_load, source_rows)
    console.say(
        "For MySQL sources pgloader defaults to `on error stop` per table (its manual says resume next):"
    )
    console.say(
        "the first refused row leaves that table empty; the other tables go on, and the exit code is 0."
    )
    console.say("A migration is checked by counting rows on both sides, never by the exit code.")

    console.step("Add one CAST rule: a zero date becomes NULL, and the column accepts NULL")
    console.say(f"CAST {ZERO_DATE_CAST}")
    result.fixed_load = pgloader(pg, mysql, postgres, ZERO_DATE_CAST)
    show_load("with the CAST rule", result.fixed_load, source_rows)
    result.rows_per_s = sum(result.fixed_load.target_rows.values()) / result.fixed_load.seconds
    console.say(f"{result.rows_per_s:,.0f} rows/s through pgloader, start-up and index builds included.")
    result.database_settings_changed = database_settings(pg) != settings_before
    console.say(
        "Database-wide settings changed by pgloader: "
        + ("yes (ALTER DATABASE ... SET search_path)" if result.database_settings_changed else "none")
    )

    console.step("What pgloader made of each column type (information_schema on both sides)")
    result.types = type_map(my, pg)
    console.table(
        ["column", "MySQL", "PostgreSQL", "NULL allowed"], [(c, *k) for c, k in result.types.items()]
    )
    result.enum_labels = enum_labels(pg)
    console.say(f"orders.status became an enum type with labels {result.enum_labels}, in MySQL's order.")

    console.step("Check every row: zero dates, counts and a checksum per table on both sides")
    result.null_dates = pg_nulls(pg)
    console.table(
        ["column", "MySQL zero dates", "MySQL NULLs", "PostgreSQL NULLs"],
        [(column, *zeros[column], result.null_dates[column]) for column in ZERO_DATES],
    )
    result.checksums = checksums(my, pg)
    console.table(
        ["table", "MySQL checksum", "PostgreSQL checksum", "equal"],
        [(t, a, b, "yes" if a == b else "NO") for t, (a, b) in result.checksums.items()],
    )
    console.say("The canonical form: UTC timestamps, decimals as text, sets sorted, JSON with sorted keys.")
    return result


def main() -> int:
    require(*REQUIRES)
    my_url, pg_url = mysql_url(), postgres_url()
    with (
        pymysql.connect(**mysql_params(my_url), charset="utf8mb4") as my,
        psycopg.connect(pg_url, connect_timeout=CONNECT_TIMEOUT_S) as pg,
    ):
        result = run(my, pg, my_url, pg_url)
    return 0 if result.holds else 1


if __name__ == "__main__":
    raise SystemExit(main())

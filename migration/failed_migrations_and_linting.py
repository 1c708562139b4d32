"""Failed migrations and linting: a revision that fails halfway, and squawk on a naive one

The sequel to migration/alembic_schema_migrations.py, on the same Alembic environment
(migration/alembic/), driven here the way the `alembic` command line drives it: a Config names
script_location, sqlalchemy.url and version_locations, and env.py opens its own connection. The
chain goes to head and customers are loaded, many of them sharing a last name. env.py runs each
revision in a transaction of its own (`transaction_per_migration`). A drill revision, d001, creates
a table and an index, then fails on a UNIQUE constraint on last_name that the data breaks: the kind
of migration that passed on a small staging copy. PostgreSQL rolls all of it back; MySQL and
MariaDB commit each DDL statement as it runs (an implicit commit) and keep a half-applied schema the
version table knows nothing of, so a plain retry fails on the leftovers, not on the data. Counted in
the catalog before and after the repair, which is by hand. (Run migrations on an autocommit
connection and PostgreSQL leaves the same leftovers: the rollback is the transaction's, not DDL's.)
The drill stays out of the head chain by design: it lives in migration/alembic/drills/, which is
not in the normal `version_locations`; only the drill step adds that folder and upgrades to `d001`
by name, so `upgrade head` everywhere else never sees it. Last, squawk (PyPI squawk-cli), a
PostgreSQL migration linter, reads the offline SQL (`sql=True`) of a naive revision kept, never
applied, in migration/alembic/lint_only/ (loaded the same way): each of its operations works, and
each takes a lock a busy table cannot afford.

Engine: PostgreSQL (POSTGRES_URL, schema `failed_migrations`, which also holds the version table)
and MySQL (MYSQL_URL, database `failed_migrations`; MariaDB 10.11 locally, the lesson says which ran).
Run: `make up SERVICES="postgres mysql"` (or `make local-up`), then `python migration/failed_migrations_and_linting.py`.
Look for: the drill's objects left behind (0 on PostgreSQL, the table and its index on MySQL/MariaDB),
the retry's error (the data's again on PostgreSQL, "table exists" on MySQL) and squawk's rule names.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import URL, Engine, distinct, func, select, text
from sqlalchemy.exc import DBAPIError

from common import console
from common.settings import CONNECT_TIMEOUT_S, require, sqlalchemy_mysql_url, sqlalchemy_postgres_url

REQUIRES = ("postgres", "mysql")
SCHEMA = "failed_migrations"  # the PostgreSQL schema and the MySQL database
ALEMBIC_DIR = Path(__file__).resolve().parent / "alembic"
HEAD, DRILL, NAIVE = "0004", "d001", "n001"
N_CUSTOMERS = 500
FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Tim"]
LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "van Rossum"]
DRILL_OBJECTS = ("customer_notes", "ix_customer_notes_customer_id", "uq_customers_last_name")
EXPECTED_RULES = {  # what the naive revision does wrong, by squawk's rule names (see lint_only/)
    *("adding-field-with-default", "require-concurrent-index-creation", "adding-not-nullable-field"),
    *("constraint-missing-not-valid", "adding-foreign-key-constraint"),
}
RESET = {
    "postgresql": ["DROP SCHEMA IF EXISTS failed_migrations CASCADE", "CREATE SCHEMA failed_migrations"],
    "mysql": ["DROP DATABASE IF EXISTS failed_migrations", "CREATE DATABASE failed_migrations"],
}
# The drill's objects, found by name: PostgreSQL lists indexes in pg_indexes, not in information_schema.
LEFT_TABLE = "SELECT count(*) FROM information_schema.tables WHERE table_schema = :s AND table_name = :name"
LEFT_INDEX = {
    "postgresql": "SELECT count(*) FROM pg_indexes WHERE schemaname = :s AND indexname = :name",
    "mysql": """SELECT count(DISTINCT index_name) FROM information_schema.statistics
        WHERE table_schema = :s AND index_name = :name""",
}
LEFT_CONSTRAINT = """SELECT count(*) FROM information_schema.table_constraints
    WHERE table_schema = :s AND constraint_name = :name"""
DROP_DRILL_LEFTOVERS = "DROP TABLE IF EXISTS customer_notes"
VERSION_TABLE = sa.table("alembic_version", sa.column("version_num"), schema=SCHEMA)
CUSTOMERS = sa.table("customers", sa.column("email"), sa.column("first_name"), sa.column("last_name"))


@dataclass
class EngineFacts:
    flavour: str = field(default="", compare=False)  # e.g. "PostgreSQL 15.13", "MariaDB 10.11.14"
    customers: int = 0  # read back at head
    last_names: int = 0  # distinct last names among them: fewer than customers, so UNIQUE cannot hold
    version_before: str | None = None
    drill_error: str = ""  # the driver's error code of the failed revision
    drill_survivors: dict[str, int] = field(default_factory=dict)  # object -> 1 if left behind
    version_after_drill: str | None = None
    retry_error: str = ""  # the error of running the same revision again, unrepaired
    left_after_repair: int = -1  # drill objects still there after the DROP by hand


@dataclass
class FailuresResult:
    heads: dict[str, list[str]]  # version_locations -> the heads Alembic finds there
    engines: dict[str, EngineFacts]
    naive_sql: str = field(default="", repr=False)  # the naive revision, rendered offline
    squawk_rules: list[str] | None = None  # None: squawk is not installed
    squawk_findings: int = 0

    @property
    def holds(self) -> bool:
        pg, my = self.engines["postgresql"], self.engines["mysql"]
        drill = sum(pg.drill_survivors.values()) == 0 < sum(my.drill_survivors.values())
        repaired = pg.left_after_repair == my.left_after_repair == 0
        apart = self.heads.get("versions") == [HEAD]
        linted = self.squawk_rules is None or set(self.squawk_rules) >= EXPECTED_RULES
        return drill and repaired and apart and linted


def alembic_config(url: URL, *extra_locations: str, **streams: io.StringIO) -> Config:
    """What an alembic.ini would hold. No connection in `attributes`: env.py opens its own from the URL."""
    config = Config(**streams)
    config.set_main_option("script_location", str(ALEMBIC_DIR))
    # Config values go through configparser interpolation: a % in a password must be doubled.
    config.set_main_option("sqlalchemy.url", url.render_as_string(hide_password=False).replace("%", "%%"))
    config.set_main_option("lesson_schema", SCHEMA)  # env.py: version_table_schema and search_path
    config.set_main_option("path_separator", "os")  # Alembic 1.16+; version_path_separator before
    config.set_main_option("version_path_separator", "os")
    locations = [ALEMBIC_DIR / "versions", *(ALEMBIC_DIR / name for name in extra_locations)]
    config.set_main_option("version_locations", os.pathsep.join(str(path) for path in locations))
    return config


def upgrade(engine: Engine, target: str, *extra_locations: str) -> None:
    """`alembic upgrade target`, as the command line runs it: env.py connects, commits, closes."""
    command.upgrade(alembic_config(engine.url, *extra_locations), target)


def heads(url: URL) -> dict[str, list[str]]:
    """The heads Alembic sees with versions/ alone, and with each folder kept out of the chain added."""
    found = {}
    for extra in ((), ("drills",), ("lint_only",)):
        scripts = ScriptDirectory.from_config(alembic_config(url, *extra))
        found[" + ".join(("versions", *extra))] = sorted(scripts.get_heads())
    return found


def version(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return connection.execute(select(VERSION_TABLE.c.version_num)).scalar()


def lesson_engines(postgres_url: str, mysql_url: str) -> dict[str, Engine]:
    """Reset the namespaces, then one engine each whose connections work inside them."""
    timeout = {"connect_timeout": CONNECT_TIMEOUT_S}
    urls = {
        "postgresql": sa.make_url(postgres_url).set(drivername="postgresql+psycopg"),
        "mysql": sa.make_url(mysql_url).set(drivername="mysql+pymysql"),
    }
    for name, url in urls.items():
        admin = sa.create_engine(url, connect_args=timeout)
        with admin.begin() as connection:
            for statement in RESET[name]:
                connection.execute(text(statement))
        admin.dispose()
    # PostgreSQL: the schema is the search_path of every connection (env.py sets the same for its own).
    pg_options = {**timeout, "options": "-c search_path=" + SCHEMA}
    return {
        "postgresql": sa.create_engine(urls["postgresql"], connect_args=pg_options),
        "mysql": sa.create_engine(urls["mysql"].set(database=SCHEMA), connect_args=timeout),
    }


def flavour(engine: Engine) -> str:
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            return "PostgreSQL " + connection.execute(text("SHOW server_version")).scalar().split()[0]
        found = connection.execute(text("SELECT VERSION()")).scalar()
    return ("MariaDB " if "MariaDB" in found else "MySQL ") + found.split("-")[0]


def customers_data() -> list[dict]:
    """Deterministic customers; nine last names among them, as in any real customer table."""
    return [
        {
            "email": f"customer{i}@example.com",
            "first_name": FIRST[i % len(FIRST)],
            "last_name": LAST[i % len(LAST)],
        }
        for i in range(N_CUSTOMERS)
    ]


def set_up(engine: Engine, facts: EngineFacts) -> None:
    """The chain at head, customers loaded, counted back."""
    upgrade(engine, "head")
    with engine.begin() as connection:
        connection.execute(sa.insert(CUSTOMERS), customers_data())
        query = select(func.count(), func.count(distinct(CUSTOMERS.c.last_name))).select_from(CUSTOMERS)
        facts.customers, facts.last_names = connection.execute(query).one()
    facts.version_before = version(engine)


def survivors(engine: Engine) -> dict[str, int]:
    queries = (LEFT_TABLE, LEFT_INDEX[engine.dialect.name], LEFT_CONSTRAINT)
    with engine.connect() as connection:
        return {
            name: connection.execute(text(query), {"s": SCHEMA, "name": name}).scalar()
            for name, query in zip(DRILL_OBJECTS, queries, strict=True)
        }


def run_drill(engine: Engine) -> str:
    """Upgrade to the drill revision by name, with drills/ added to the version locations.

    Returns the error: PostgreSQL's SQLSTATE, MySQL's error number ('' if the revision went through).
    """
    try:
        upgrade(engine, DRILL, "drills")
    except DBAPIError as error:
        return str(error.orig.sqlstate if engine.dialect.name == "postgresql" else error.orig.args[0])
    return ""


def drill(engine: Engine, facts: EngineFacts) -> None:
    facts.drill_error = run_drill(engine)
    facts.drill_survivors = survivors(engine)
    facts.version_after_drill = version(engine)
    facts.retry_error = run_drill(engine)  # run again as is: what an operator's retry meets
    with engine.begin() as connection:  # the repair, by hand: what the failed revision left
        connection.execute(text(DROP_DRILL_LEFTOVERS))
    facts.left_after_repair = sum(survivors(engine).values())


def naive_sql(url: URL) -> str:
    """`alembic upgrade 0004:n001 --sql` with lint_only/ added: the naive revision alone, not run."""
    buffer = io.StringIO()
    command.upgrade(alembic_config(url, "lint_only", output_buffer=buffer), f"{HEAD}:{NAIVE}", sql=True)
    return buffer.getvalue()


def squawk_binary() -> str | None:
    beside = Path(sys.executable).with_name("squawk")  # installed in the same environment
    return str(beside) if beside.exists() else shutil.which("squawk")


def squawk(binary: str, script: str, pg_version: str) -> list[dict]:
    """squawk's findings as JSON (`--reporter json`); its exit code 1 means "findings", not failure."""
    argv = [binary, "--reporter", "json", "--pg-version", pg_version, "--stdin-filepath", "n001.sql"]
    finished = subprocess.run(argv, input=script, capture_output=True, text=True, timeout=60)
    return json.loads(finished.stdout or "[]")


def run(postgres_url: str, mysql_url: str) -> FailuresResult:
    """Both URLs in any SQLAlchemy or plain form (postgresql://..., mysql://...): drivers are set here."""
    console.title("Failed migrations and linting: transactional DDL, a half-applied schema, squawk")
    engines = lesson_engines(postgres_url, mysql_url)
    try:
        return lesson(engines)
    finally:
        for engine in engines.values():
            engine.dispose()


def lesson(engines: dict[str, Engine]) -> FailuresResult:
    console.step("Revisions kept out of the head chain, by folder")
    result = FailuresResult(heads(engines["postgresql"].url), {})
    console.table(["version_locations", "heads"], [(k, ", ".join(v)) for k, v in result.heads.items()])
    console.say("`upgrade head` sees versions/ only; a step that means to run d001 or n001 adds its folder.")
    setup_step(engines, result.engines)
    drill_step(engines, result.engines)
    console.step("Lint a naive revision's offline SQL with squawk")
    result.naive_sql = naive_sql(engines["postgresql"].url)  # offline: rendered, never run
    lint(engines["postgresql"], result)
    return result


def setup_step(engines: dict[str, Engine], facts: dict[str, EngineFacts]) -> None:
    console.step("The chain at head, customers loaded: many share a last name")
    for name, engine in engines.items():
        facts[name] = EngineFacts(flavour=flavour(engine))
        set_up(engine, facts[name])
    console.say("Ran on " + " and ".join(f.flavour for f in facts.values()) + ".")
    console.table(
        ["engine", "version", "customers", "distinct last names"],
        [(n, f.version_before, f.customers, f.last_names) for n, f in facts.items()],
    )


def drill_step(engines: dict[str, Engine], facts: dict[str, EngineFacts]) -> None:
    console.step("A revision that fails halfway: transactional DDL or not")
    for name, engine in engines.items():
        drill(engine, facts[name])
    kinds = ("table", "index", "unique constraint")
    console.table(
        ["what d001 created, left behind?", *facts],
        [
            (f"{k} {o}", *(f.drill_survivors[o] for f in facts.values()))
            for o, k in zip(DRILL_OBJECTS, kinds, strict=True)
        ],
    )
    console.table(
        [
            "engine",
            "error (SQLSTATE / MySQL errno)",
            "version after",
            "error of a retry",
            "left after repair",
        ],
        [
            (n, f.drill_error, f.version_after_drill, f.retry_error, f.left_after_repair)
            for n, f in facts.items()
        ],
    )
    console.say("Counted in the catalog. PostgreSQL rolled the whole revision back; MySQL committed the")
    console.say("table and the index as it went, and the version table says the revision never ran, so a")
    console.say("retry fails on the leftovers. Repaired by hand (DROP TABLE). On MySQL: one DDL statement")
    console.say("per revision.")


def lint(engine: Engine, result: FailuresResult) -> None:
    binary = squawk_binary()
    if binary is None:
        console.say("squawk is not installed (pip install squawk-cli): lint step skipped.")
        return
    script = result.naive_sql
    pg_version = ".".join(str(part) for part in engine.dialect.server_version_info[:2])
    findings = squawk(binary, script, pg_version)
    lines = script.splitlines()
    result.squawk_findings = len(findings)
    result.squawk_rules = sorted({finding["rule_name"] for finding in findings})
    rules_by_line: dict[int, list[str]] = {}
    for finding in findings:  # squawk numbers lines from 0
        rules_by_line.setdefault(finding["line"], []).append(finding["rule_name"])
    flagged = [f"{lines[n].strip()}\n  ^ {', '.join(rules)}" for n, rules in sorted(rules_by_line.items())]
    console.plan("\n".join(flagged), max_lines=40)
    console.say(f"{len(findings)} findings, {len(result.squawk_rules)} rules, on PostgreSQL {pg_version}.")


def main() -> int:
    require(*REQUIRES)
    result = run(sqlalchemy_postgres_url(), sqlalchemy_mysql_url())
    return 0 if result.holds else 1


if __name__ == "__main__":
    raise SystemExit(main())

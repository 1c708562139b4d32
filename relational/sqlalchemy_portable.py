"""One SQLAlchemy model on PostgreSQL, MySQL and SQLite: what is portable and where the dialects differ

A single SQLAlchemy 2.0 model (DeclarativeBase, Mapped, relationships with back_populates) runs
unchanged against three databases. The unit of work is the same everywhere: objects added to a
Session are flushed parents first, and the identity map hands back the very same object for the
same row. Then the lesson probes the places where dialects part ways and lays them side by side:
upsert (three different INSERT extensions, and what rowcount means), RETURNING (what the dialect
claims, and what the server does when asked), JSON (how it is stored and how a key is queried),
auto-increment (how the new id comes back, what lastrowid means for a multi-row insert, gaps and
reuse), and collation ('Lovelace' = 'lovelace'?, and the order of mixed-case names).

Last, the same model and statements compiled, not run, for Oracle and SQL Server: the DDL (an id with
no generator on Oracle unless the model says Identity(), CLOB and VARCHAR(max), BOOLEAN and BIT, DATE),
a page of rows (FETCH FIRST, TOP, OFFSET .. ROWS), what stands in for the upsert, concatenation, a
case-insensitive match, a boolean in WHERE, RETURNING .. INTO and OUTPUT. A dialect not yet connected
does not know the server's version: SQL Server's then writes its pre-2012 SQL (ROW_NUMBER(), TEXT), so
the lesson sets the version a connection to SQL Server 2022 would report; Oracle's assumes the newest
(23ai). References: https://docs.sqlalchemy.org/en/21/dialects/oracle.html and
https://docs.sqlalchemy.org/en/21/dialects/mssql.html (LIMIT/OFFSET, IDENTITY, large types, booleans).

Engine: PostgreSQL (POSTGRES_URL, schema `sqlalchemy_portable`), MySQL (MYSQL_URL, database
`sqlalchemy_portable`; MariaDB 10.5+ behaves differently for RETURNING and JSON, and the lesson
says which it ran on), and SQLite (a file of its own under the scratch folder). Oracle and SQL Server:
compiled only, with SQLAlchemy's own dialects; no driver, no server.
Run: `make up SERVICES="postgres mysql"` (or `make local-up`), then `python relational/sqlalchemy_portable.py`.
Look for: the INSERTs one flush needed on each database, the upsert rowcount of 2 on MySQL, the batch's
first id as MySQL's lastrowid but the last as SQLite's, 'Lovelace' = 'lovelace' only on MySQL, and,
compiled for Oracle and SQL Server: FETCH FIRST against TOP, || against +, RETURNING .. INTO against OUTPUT.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import datetime
from difflib import SequenceMatcher
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.dialects import mssql, mysql, oracle, postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship
from sqlalchemy.schema import CreateTable, ForeignKey, Identity
from sqlalchemy.sql import delete, exists, func, insert, literal, select, text
from sqlalchemy.types import JSON, String, Text

from common import console, settings

REQUIRES = ("postgres", "mysql")
SCHEMA = "sqlalchemy_portable"
BACKENDS = ("postgres", "mysql", "sqlite")
SEED = 11
# Mixed case on purpose: a binary collation sorts every capital before every small letter.
NAMES = ["Lovelace", "turing", "Hopper", "liskov", "Dijkstra", "knuth", "Allen", "shannon", "Lamarr", "codd"]
PLANS = ["free", "pro", "team"]
MARIADB_NOTE = "The mysql engine is MariaDB: it has INSERT..RETURNING (10.5+) and keeps JSON as LONGTEXT."
MYSQL_NOTE = "The mysql engine is MySQL: no INSERT..RETURNING, and JSON is a type of its own."
DIALECTS = {"postgres": postgresql, "mysql": mysql, "sqlite": sqlite, "oracle": oracle, "mssql": mssql}
SQL_SERVER_2022 = (16, 0)  # the major version a connection to SQL Server 2022 reports
# What each database says about itself, asked in its own catalog; `:schema` is bound to SCHEMA.
ASK = {
    "postgres": {
        "version": "SHOW server_version",
        "json_stored_as": "SELECT pg_typeof(profile)::text FROM sqlalchemy_portable.customer LIMIT 1",
        "collation": "SELECT datcollate FROM pg_database WHERE datname = current_database()",
    },
    "mysql": {
        "version": "SELECT VERSION()",
        "json_stored_as": "SELECT data_type FROM information_schema.columns"
        " WHERE table_schema = :schema AND table_name = 'customer' AND column_name = 'profile'",
        "collation": "SELECT default_collation_name FROM information_schema.schemata"
        " WHERE schema_name = :schema",
    },
    "sqlite": {
        "version": "SELECT sqlite_version()",
        "json_stored_as": "SELECT typeof(profile) FROM customer LIMIT 1",
        # No database-wide setting: the collation the email column's unique index was built with.
        "collation": "SELECT x.coll FROM pragma_index_list('customer') AS l, pragma_index_xinfo(l.name) AS x"
        " WHERE x.name = 'email'",
    },
}


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON}


class Customer(Base):
    __tablename__ = "customer"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(120), unique=True)
    name: Mapped[str] = mapped_column(String(60))
    profile: Mapped[dict[str, Any]]
    orders: Mapped[list[Purchase]] = relationship(
        back_populates="customer", cascade="all, delete-orphan", order_by="Purchase.id"
    )


class Purchase(Base):
    __tablename__ = "purchase"  # `order` is a reserved word in all three

    # Identity() says how ids are made; customer.id leaves it to each dialect (on Oracle: none at all).
    id: Mapped[int] = mapped_column(Identity(), primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"))
    total_cents: Mapped[int]
    paid: Mapped[bool] = mapped_column(default=False)
    placed_at: Mapped[datetime] = mapped_column(server_default=func.current_timestamp())
    note: Mapped[str | None] = mapped_column(Text)
    customer: Mapped[Customer] = relationship(back_populates="orders")


def _label(label: str) -> Any:
    """A Findings field that run() shows as a row of a side-by-side table, under this label."""
    return field(metadata={"label": label})


@dataclass
class Findings:
    """What one database did with the same model and the same statements."""

    server: str
    is_mariadb: bool
    namespace: str
    # the unit of work
    flushed_objects: int = _label("objects added, then flushed")  # counted in the tables after the commit
    flush_order: list[str]  # tables, in the order the flush inserted into them
    flush_inserts: int = _label("INSERT statements sent")  # by the flush, for those objects
    flush_used_returning: bool = _label("with RETURNING")
    get_sent_sql: int = _label("SQL sent by session.get()")  # for an object already in the session
    same_object: bool = _label("get(), select(): same object")  # the identical Python object
    # upsert
    upsert_clause: str
    upsert_rowcount_insert: int = _label("rowcount when it inserts")
    upsert_rowcount_update: int = _label("rowcount when it updates")
    ids_lost_to_upsert: int = _label("ids lost to an upsert that updated")
    # auto-increment
    id_column_ddl: str
    single_insert_id_via: str = _label("one-row INSERT id came via")  # RETURNING or cursor.lastrowid
    lastrowid_single: int | None = _label("lastrowid (one row)")  # None: the driver has no lastrowid
    multi_insert_ids: tuple[int, int] = _label("ids of one three-row INSERT")  # its first and last
    lastrowid_multi: int | None = _label("lastrowid (three rows)")
    lastrowid_is: str = _label("that is the three rows'")  # "first id", "last id", "n/a"
    reuses_deleted_max_id: bool = _label("deleted highest id reused")
    # RETURNING
    dialect_insert_returning: bool = _label("dialect.insert_returning")
    explicit_returning: str = _label(
        "insert(...).returning(id)"
    )  # what the server did: "id 19", "error 1064"
    # JSON
    json_stored_as: str = _label("stored as")
    json_key_sql: str
    json_key_matches: int = _label("customers on the 'pro' plan")
    # collation and case
    collation: str = _label("collation")
    case_insensitive_equal: bool = _label("name = 'lovelace' matches")
    lower_matches: int = _label("lower(name) = 'lovelace' rows")
    order_by_name: list[str]


@dataclass
class PortableResult:
    customers: int
    purchases: int
    pro_customers: int  # in the generated data, for the JSON query to match
    findings: dict[str, Findings]
    # dialect ("oracle", "mssql") -> statement name -> the SQL SQLAlchemy would send there
    compiled_not_run: dict[str, dict[str, str]]

    @property
    def holds(self) -> bool:
        """One model behaved alike where it is portable, and 'Lovelace' = 'lovelace' only on MySQL."""
        alike = all(
            (f.flushed_objects, f.same_object, f.json_key_matches, f.lower_matches)
            == (self.customers + self.purchases, True, self.pro_customers, 1)
            for f in self.findings.values()
        )
        folded = {backend for backend, f in self.findings.items() if f.case_insensitive_equal}
        return alike and folded == ({"mysql"} & set(self.findings))


def generate_customers(seed: int = SEED) -> list[Customer]:
    rng = random.Random(seed)
    customers = []
    for name in NAMES:
        email = name.lower() + "@example.org"
        profile = {"plan": rng.choice(PLANS), "score": rng.randint(1, 100)}
        orders = [Purchase(total_cents=rng.randint(500, 20_000)) for _ in range(rng.randint(1, 3))]
        customers.append(Customer(email=email, name=name, profile=profile, orders=orders))
    return customers


@contextmanager
def statements_sent(engine: Engine) -> Iterator[list[str]]:
    """Every statement the engine sends to the driver while the block runs."""
    sent: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        sent.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


def reset_namespace(engine: Engine) -> Engine:
    """Drop and recreate the lesson's namespace; return an engine whose tables land in it."""
    backend = _backend(engine)
    with engine.begin() as conn:
        if backend == "postgres":
            conn.execute(text("DROP SCHEMA IF EXISTS sqlalchemy_portable CASCADE"))
            conn.execute(text("CREATE SCHEMA sqlalchemy_portable"))
        elif backend == "mysql":
            conn.execute(text("DROP DATABASE IF EXISTS sqlalchemy_portable"))
            conn.execute(text("CREATE DATABASE sqlalchemy_portable"))
        else:
            Base.metadata.drop_all(conn)
    # The model names no schema; this map puts every table of it in the lesson's own.
    scoped = engine if backend == "sqlite" else engine.execution_options(schema_translate_map={None: SCHEMA})
    Base.metadata.create_all(scoped)
    return scoped


def identify(scoped: Engine) -> dict:
    with scoped.connect() as conn:
        server = str(_ask(conn, "version"))
    kind = {"postgres": "schema", "mysql": "database"}.get(_backend(scoped))
    namespace = f"{kind} {SCHEMA}" if kind else scoped.url.database
    return dict(server=server, is_mariadb="mariadb" in server.lower(), namespace=namespace)


def unit_of_work(scoped: Engine) -> dict:
    with Session(scoped) as session:
        customers = generate_customers()
        session.add_all(customers)
        with statements_sent(scoped) as sent:
            session.flush()  # parents first, so each purchase has its customer_id
        inserts = [s for s in sent if s.lstrip().upper().startswith("INSERT")]
        tables = [s.split()[2].split(".")[-1].strip('"`') for s in inserts]
        ada = customers[0]
        with statements_sent(scoped) as sent_by_get:
            found = session.get(Customer, ada.id)
        again = session.scalars(select(Customer).where(Customer.email == ada.email)).one()
        session.commit()
        stored = sum(session.scalar(select(func.count()).select_from(m)) for m in (Customer, Purchase))
        return {
            "flushed_objects": stored,
            "flush_order": list(dict.fromkeys(tables)),
            "flush_inserts": len(inserts),
            "flush_used_returning": any("RETURNING" in s.upper() for s in inserts),
            "get_sent_sql": len(sent_by_get),
            "same_object": found is ada and again is ada,
        }


def upsert_statement(backend: str, name: str):
    """The same "insert or rename" in each dialect's own INSERT extension."""
    # A list of one row (the multi-row form): PostgreSQL then adds no RETURNING of its own.
    stmt = DIALECTS[backend].insert(Customer).values([_customer_row("new", name)])
    if backend == "mysql":
        upsert = stmt.on_duplicate_key_update(name=stmt.inserted.name)
    else:  # PostgreSQL and SQLite spell it alike
        upsert = stmt.on_conflict_do_update(index_elements=["email"], set_={"name": stmt.excluded.name})
    # SQLAlchemy reads cursor.rowcount after an INSERT only when asked to.
    return upsert.execution_options(preserve_rowcount=True)


def upsert_and_its_ids(scoped: Engine) -> dict:
    backend = _backend(scoped)
    compiled = str(upsert_statement(backend, "x").compile(dialect=scoped.dialect))
    after_values = compiled[compiled.index(") ", compiled.index("VALUES")) + 2 :]
    with scoped.begin() as conn:
        inserted = conn.execute(upsert_statement(backend, "New Customer"))
        updated = conn.execute(upsert_statement(backend, "Renamed Customer"))
        upserted_id = conn.scalar(select(Customer.id).where(Customer.email == "new@example.org"))
        next_id = conn.execute(insert(Customer).values(_customer_row("after-upsert"))).inserted_primary_key[0]
    return {
        "upsert_clause": " ".join(after_values.split()),
        "upsert_rowcount_insert": inserted.rowcount,
        "upsert_rowcount_update": updated.rowcount,
        "ids_lost_to_upsert": next_id - upserted_id - 1,
    }


def auto_increment(scoped: Engine) -> dict:
    ddl = str(CreateTable(Customer.__table__).compile(dialect=scoped.dialect))
    id_line = next(line.strip().rstrip(",") for line in ddl.splitlines() if line.strip().startswith("id "))
    with scoped.begin() as conn:
        with statements_sent(scoped) as sent:
            single = conn.execute(insert(Customer).values(_customer_row("single")))
        multi = conn.execute(insert(Customer).values([_customer_row(f"multi-{i}") for i in range(3)]))
        first, last = conn.execute(
            select(func.min(Customer.id), func.max(Customer.id)).where(Customer.email.like("multi-%"))
        ).one()
        # Delete the newest row, insert another: does the highest id come back?
        newest = conn.scalar(select(func.max(Customer.id)))
        conn.execute(delete(Customer).where(Customer.id == newest))
        replacement = conn.execute(insert(Customer).values(_customer_row("again"))).inserted_primary_key[0]
    # psycopg's cursor has no lastrowid (PostgreSQL returns ids with RETURNING): None.
    single_lastrowid, multi_lastrowid = (getattr(result, "lastrowid", None) for result in (single, multi))
    return {
        "id_column_ddl": id_line,
        "single_insert_id_via": "RETURNING" if "RETURNING" in sent[0].upper() else "cursor.lastrowid",
        "lastrowid_single": single_lastrowid,
        "multi_insert_ids": (first, last),
        "lastrowid_multi": multi_lastrowid,
        "lastrowid_is": {None: "n/a", first: "first id", last: "last id"}.get(multi_lastrowid, "another id"),
        "reuses_deleted_max_id": replacement == newest,
    }


def explicit_returning(scoped: Engine) -> dict:
    """Ask for RETURNING whatever the dialect says, and report what the server did."""
    with scoped.connect() as conn:
        try:
            new_id = conn.execute(insert(Customer).values(_customer_row("returning")).returning(Customer.id))
            outcome = f"id {new_id.scalar_one()}"
        except DBAPIError as refused:  # MySQL: a syntax error, the server has no INSERT..RETURNING
            outcome = f"error {refused.orig.args[0]}"
        conn.rollback()
    return {"dialect_insert_returning": scoped.dialect.insert_returning, "explicit_returning": outcome}


def json_column(scoped: Engine) -> dict:
    is_pro = _is_pro()
    with scoped.connect() as conn:
        stored_as = _ask(conn, "json_stored_as")
        matches = conn.scalar(select(func.count()).select_from(Customer).where(is_pro))
    key_sql = str(is_pro.compile(dialect=scoped.dialect, compile_kwargs={"literal_binds": True}))
    return {"json_stored_as": str(stored_as).lower(), "json_key_sql": key_sql, "json_key_matches": matches}


def collation_and_case(scoped: Engine) -> dict:
    with scoped.connect() as conn:
        collation = _ask(conn, "collation")
        equal = conn.scalar(select(func.count()).where(Customer.name == "lovelace"))
        lower = conn.scalar(select(func.count()).where(func.lower(Customer.name) == "lovelace"))
        # The id breaks ties, which a case-insensitive collation has ('Ada' and 'ada' compare equal).
        in_order = select(Customer.name).where(Customer.name.in_(NAMES)).order_by(Customer.name, Customer.id)
        order = list(conn.scalars(in_order))
    return dict(
        collation=collation, case_insensitive_equal=equal > 0, lower_matches=lower, order_by_name=order
    )


def compiled_elsewhere() -> dict[str, dict[str, str]]:
    """The model and the statements where dialects part ways most, compiled: dialect -> name -> SQL."""
    by_name = select(Customer.id, Customer.name).order_by(Customer.name, Customer.id)
    absent = ~exists().where(Customer.email == "new@example.org")
    new_row = select(literal("new@example.org"), literal("New Customer"), literal({"plan": "free"}, JSON))
    statements = {
        "create_customer": CreateTable(Customer.__table__),
        "create_purchase": CreateTable(Purchase.__table__),
        "first_rows": by_name.limit(5),
        "page": by_name.limit(5).offset(5),
        # No ON CONFLICT and no MERGE in SQLAlchemy for these two: UPDATE, then insert what is absent.
        "insert_if_absent": insert(Customer).from_select(["email", "name", "profile"], new_row.where(absent)),
        "insert_returning": insert(Customer).values(_customer_row("returning")).returning(Customer.id),
        "concatenate": select(Customer.name + " <" + Customer.email + ">"),
        "case_insensitive": select(Customer.id).where(Customer.name.ilike("lovelace")),
        "boolean_where": select(Purchase.id).where(Purchase.paid),
        "json_key": select(Customer.id).where(_is_pro()),
    }
    sql_server = mssql.dialect()
    sql_server.server_version_info = SQL_SERVER_2022  # what a connection would report,
    sql_server._setup_version_attributes()  # and what initialize() does with it: OFFSET..FETCH, VARCHAR(max)
    older_oracle = oracle.dialect(enable_offset_fetch=False, supports_native_boolean=False)
    dialects = {"oracle": (oracle.dialect(), older_oracle), "mssql": (sql_server, mssql.dialect())}
    compiled: dict[str, dict[str, str]] = {}
    for name, (current, older) in dialects.items():
        compiled[name] = {label: _compile(stmt, current) for label, stmt in statements.items()}
        # Two also as SQLAlchemy writes them for Oracle before 12c and SQL Server before 2012:
        for label in ("page", "boolean_where"):
            compiled[name][f"{label}_older_server"] = _compile(statements[label], older)
    return compiled


def explain_compiled_elsewhere() -> dict[str, dict[str, str]]:
    """The last step: Oracle's and SQL Server's column types, then where each statement differs."""
    console.step("Oracle and SQL Server: the same model and statements, compiled, not run")
    console.say(
        "No driver, no server. Not connected, Oracle's dialect assumes the newest server (23ai), SQL Server's"
        " one before 2012: the lesson gives it the version 2022 reports. (older): what SQLAlchemy writes for"
        " Oracle before 12c (ROWNUM; no BOOLEAN before 23ai) and SQL Server before 2012."
    )
    compiled = compiled_elsewhere()
    types = _column_types(compiled)
    console.table(["column", *compiled], [(column, *specs) for column, specs in types.items()])
    ora, ms = compiled["oracle"], compiled["mssql"]
    rows = []
    for label in (label for label in ora if not label.startswith("create_")):
        oracle_part, mssql_part = _difference(ora[label], ms[label])
        shown = label.replace("_older_server", " (older)").replace("_", " ")
        rows += [(shown, "oracle", oracle_part), ("", "mssql", mssql_part)]
    console.table(["statement", "dialect", "where they differ (compiled, not run)"], rows)
    console.say(
        f"Oracle: customer.id is `{types['customer.id'][0]}`, nothing numbers new rows there;"
        f" purchase.id says Identity(): `{types['purchase.id'][0]}`."
    )
    upserts = [module.__name__.split(".")[-1] for module in DIALECTS.values() if hasattr(module, "insert")]
    console.say(
        f"An insert() with ON CONFLICT / ON DUPLICATE KEY only in: {', '.join(upserts)}; SQLAlchemy builds"
        " no MERGE. The stand-in: UPDATE, then INSERT .. SELECT .. WHERE NOT EXISTS (the unique key decides"
        " races). Case: SQL Server's en-US default collation folds case, Oracle's default compares binary."
    )
    return compiled


def run(engines: dict[str, Engine]) -> PortableResult:
    console.title("One SQLAlchemy model on PostgreSQL, MySQL and SQLite")

    console.step("Give each database a namespace of its own and create the same tables in it")
    scoped = {backend: reset_namespace(engines[backend]) for backend in BACKENDS if backend in engines}
    facts: dict[str, dict] = {backend: {} for backend in scoped}
    _compare(facts, scoped, identify, "{server}, {namespace}")
    if "mysql" in facts:
        console.say(MARIADB_NOTE if facts["mysql"]["is_mariadb"] else MYSQL_NOTE)

    console.step("The unit of work: one flush, parents first, and an identity map")
    console.say("Batching INSERT..RETURNING needs the new ids back in a known order; without it, row by row.")
    _compare(facts, scoped, unit_of_work)
    orders = {" then ".join(found["flush_order"]) for found in facts.values()}
    console.say(f"Order of the INSERTs on every database: {' / '.join(sorted(orders))}.")

    console.step("Upsert: one idea, three INSERT extensions")
    _compare(facts, scoped, upsert_and_its_ids, "INSERT ... {upsert_clause}")
    console.say("An id drawn for an INSERT that became an UPDATE is lost; SQLite draws one on insert only.")

    console.step("Auto-increment: where a new id comes from and how it comes back")
    _compare(facts, scoped, auto_increment, "{id_column_ddl}")
    console.say("SQLite's INTEGER PRIMARY KEY is the rowid: without AUTOINCREMENT, the next is max(id) + 1.")

    console.step("RETURNING: what the dialect claims, and what the server does when asked anyway")
    _compare(facts, scoped, explicit_returning)

    console.step("JSON: stored differently, queried through one expression")
    _compare(facts, scoped, json_column, "WHERE {json_key_sql}")

    console.step("Collation and case: does 'Lovelace' = 'lovelace'?")
    _compare(facts, scoped, collation_and_case)
    in_order = enumerate(zip(*(found["order_by_name"] for found in facts.values()), strict=True), 1)
    console.table(["ORDER BY name", *facts], [(position, *names) for position, names in in_order])
    console.say("lower() on both sides is the portable case-insensitive comparison.")

    compiled = explain_compiled_elsewhere()
    customers = generate_customers()
    return PortableResult(
        customers=len(customers),
        purchases=sum(len(c.orders) for c in customers),
        pro_customers=sum(c.profile["plan"] == "pro" for c in customers),
        findings={backend: Findings(**found) for backend, found in facts.items()},
        compiled_not_run=compiled,
    )


def _compare(facts: dict[str, dict], scoped: dict[str, Engine], probe: Callable, say: str = "") -> None:
    """Run one probe on every database and keep what it found; say `say` of each, then lay the labelled
    facts it found side by side: one row per fact, one column per database."""
    for backend, engine in scoped.items():
        found = probe(engine)
        facts[backend] |= found
        if say:
            console.say(f"{backend}: " + say.format(**found))
    rows = [
        (f.metadata["label"], *(_show(of[f.name]) for of in facts.values()))
        for f in fields(Findings)
        if f.name in found and f.metadata
    ]
    if rows:
        console.table(["", *facts], rows)


def _show(value: object) -> object:
    if isinstance(value, tuple):
        return " .. ".join(str(v) for v in value)
    return "n/a" if value is None else value


def _ask(conn: Connection, what: str) -> Any:
    """One answer from the database's own catalog (ASK)."""
    return conn.execute(text(ASK[_backend(conn)][what]), {"schema": SCHEMA}).scalar_one()


def _compile(statement, dialect) -> str:
    sql = str(statement.compile(dialect=dialect, compile_kwargs={"render_postcompile": True}))
    return "\n".join(line.rstrip() for line in sql.strip().splitlines())


def _column_types(compiled: dict[str, dict[str, str]]) -> dict[str, list[str]]:
    """table.column -> its type, default and generator in each dialect, read from the CREATE TABLEs."""
    types: dict[str, list[str]] = {}
    for ddl in (sql[table] for sql in compiled.values() for table in ("create_customer", "create_purchase")):
        table = ddl.split()[2]
        for line in ddl.splitlines()[1:-1]:
            column, spec = line.strip().rstrip(",").split(" ", 1)
            if column.islower():  # not PRIMARY KEY, UNIQUE, FOREIGN KEY
                spec = spec.replace(" NOT NULL", "").replace(" NULL", "")
                types.setdefault(f"{table}.{column}", []).append(spec)
    return types


def _difference(one: str, other: str) -> tuple[str, str]:
    """The words where two statements differ, a word of context either side; the tail if they are alike."""
    a, b = one.split(), other.split()
    if a == b:
        return " ".join(a[-4:]), "the same"
    kept_a, kept_b = set(), set()
    for tag, i1, i2, j1, j2 in SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if tag != "equal":
            kept_a.update(range(i1 - 1, i2 + 1))
            kept_b.update(range(j1 - 1, j2 + 1))
    return _excerpt(a, kept_a), _excerpt(b, kept_b)


def _excerpt(words: list[str], kept: set[int]) -> str:
    """The kept words in order, "..." for each run of words left out between them."""
    shown = [words[i] if i in kept else "..." for i in range(len(words)) if i in kept or i - 1 in kept]
    return " ".join(shown[:-1] if shown[-1] == "..." else shown)


def _is_pro():
    return Customer.profile["plan"].as_string() == "pro"


def _backend(engine: Engine | Connection) -> str:
    return {"postgresql": "postgres"}.get(engine.dialect.name, engine.dialect.name)


def _customer_row(tag: str, name: str = "") -> dict:
    return {"email": f"{tag}@example.org", "name": name or tag, "profile": {"plan": "free", "score": 0}}


def main() -> int:
    settings.require(*REQUIRES)
    sqlite_file = settings.scratch_dir("sqlalchemy_portable") / "portable.db"
    sqlite_file.unlink(missing_ok=True)
    timeout = {"connect_timeout": settings.CONNECT_TIMEOUT_S}
    engines = {
        "postgres": create_engine(settings.sqlalchemy_postgres_url(), connect_args=timeout),
        "mysql": create_engine(settings.sqlalchemy_mysql_url(), connect_args=timeout),
        "sqlite": create_engine(f"sqlite:///{sqlite_file}"),
    }
    try:
        result = run(engines)
    finally:
        for engine in engines.values():
            engine.dispose()
    return 0 if result.holds else 1


if __name__ == "__main__":
    raise SystemExit(main())

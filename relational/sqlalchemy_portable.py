"""One SQLAlchemy model on PostgreSQL, MySQL and SQLite: what is portable and where the dialects differ

A single SQLAlchemy 2.0 model (DeclarativeBase, Mapped, relationships with back_populates) runs
unchanged against three databases. The unit of work is the same everywhere: objects added to a
Session are flushed parents first, and the identity map hands back the very same object for the
same row. Then the lesson probes the places where dialects part ways and lays them side by side:
upsert (three different INSERT extensions, and what rowcount means), RETURNING (what the dialect
claims, and what the server does when asked), JSON (how it is stored and how a key is queried),
auto-increment (how the new id comes back, what lastrowid means for a multi-row insert, gaps and
reuse), and collation ('Lovelace' = 'lovelace'?, and the order of mixed-case names).

Last, the same model and statements compiled, not run, for Oracle and SQL Server with their own
dialects (no driver, no server): the DDL (an id with no generator on Oracle unless the model says
Identity(), CLOB and VARCHAR(max), BOOLEAN and BIT, DATE), a page of rows (FETCH FIRST, TOP,
OFFSET .. ROWS), what stands in for the upsert, concatenation, a case-insensitive match, a boolean
in WHERE, RETURNING .. INTO and OUTPUT. A dialect not yet connected does not know the server's
version: SQL Server's then writes its pre-2012 SQL (ROW_NUMBER(), TEXT), so the lesson sets the
version a connection to SQL Server 2022 would report; Oracle's assumes the newest (23ai).
References: https://docs.sqlalchemy.org/en/21/dialects/oracle.html and
https://docs.sqlalchemy.org/en/21/dialects/mssql.html (LIMIT/OFFSET, IDENTITY, large types, booleans).

Engine: PostgreSQL (POSTGRES_URL, schema `sqlalchemy_portable`), MySQL (MYSQL_URL, database
`sqlalchemy_portable`; MariaDB 10.5+ behaves differently for RETURNING and JSON, and the lesson
says which it ran on), and SQLite (a file of its own under the scratch folder). Oracle and SQL Server:
compiled only, with SQLAlchemy's own dialects; no driver, no server.
Run: `make up SERVICES="postgres mysql"` (or `make local-up`), then `python relational/sqlalchemy_portable.py`.
Look for: the INSERTs one flush needed on each database, the upsert rowcount of 2 on MySQL, the
batch's first id as MySQL's lastrowid but the last as SQLite's, 'Lovelace' = 'lovelace' only on MySQL,
and, compiled for Oracle and SQL Server: FETCH FIRST against TOP, || against +, RETURNING .. INTO against OUTPUT.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from difflib import SequenceMatcher
from typing import Any

from sqlalchemy import (
    JSON,
    Engine,
    ForeignKey,
    Identity,
    String,
    Text,
    create_engine,
    delete,
    event,
    exists,
    func,
    insert,
    literal,
    select,
    text,
)
from sqlalchemy.dialects import mssql, mysql, oracle, postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship
from sqlalchemy.schema import CreateTable

from common import console
from common.settings import (
    CONNECT_TIMEOUT_S,
    require,
    scratch_dir,
    sqlalchemy_mysql_url,
    sqlalchemy_postgres_url,
)

REQUIRES = ("postgres", "mysql")
SCHEMA = "sqlalchemy_portable"
BACKENDS = ("postgres", "mysql", "sqlite")
SEED = 11
# Mixed case on purpose: a binary collation sorts every capital before every small letter.
NAMES = ["Lovelace", "turing", "Hopper", "liskov", "Dijkstra", "knuth", "Allen", "shannon", "Lamarr", "codd"]
PLANS = ["free", "pro", "team"]
MARIADB_NOTE = "The mysql engine is MariaDB: it has INSERT..RETURNING (10.5+) and keeps JSON as LONGTEXT."
MYSQL_NOTE = "The mysql engine is MySQL: no INSERT..RETURNING, and JSON is a type of its own."
SQL_SERVER_2022 = (16, 0)  # the major version a connection to SQL Server 2022 reports
# Statements also compiled as SQLAlchemy writes them for Oracle before 12c and SQL Server before 2012.
ON_OLDER_SERVERS = ("page", "boolean_where")


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


@dataclass
class Findings:
    """What one database did with the same model and the same statements."""

    server: str
    is_mariadb: bool
    namespace: str
    # the unit of work
    flushed_objects: int  # rows the flush stored, counted in the tables after the commit
    flush_order: list[str]  # tables, in the order the flush inserted into them
    flush_inserts: int  # INSERT statements the flush sent for those objects
    flush_used_returning: bool
    get_sent_sql: int  # statements sent by session.get() for an object already in the session
    same_object: bool  # select() of that row gave back the identical Python object
    # upsert
    upsert_clause: str
    upsert_rowcount_insert: int
    upsert_rowcount_update: int
    # RETURNING
    dialect_insert_returning: bool
    explicit_returning: str  # what happened to insert(...).returning(Customer.id): "id 19", "error 1064"
    # JSON
    json_stored_as: str
    json_key_sql: str
    json_key_matches: int
    # auto-increment
    id_column_ddl: str
    single_insert_id_via: str  # RETURNING or cursor.lastrowid
    lastrowid_single: int | None  # None: the driver has no lastrowid
    multi_insert_ids: tuple[int, int]  # first and last id of a three-row INSERT
    lastrowid_multi: int | None
    lastrowid_is: str  # which id of the three-row INSERT lastrowid gave: "first id", "last id", "n/a"
    ids_lost_to_upsert: int
    reuses_deleted_max_id: bool
    # collation and case
    collation: str
    case_insensitive_equal: bool
    lower_matches: int
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
        found = self.findings.values()
        alike = all(
            f.flushed_objects == self.customers + self.purchases
            and f.same_object
            and f.json_key_matches == self.pro_customers
            and f.lower_matches == 1
            for f in found
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


def server_version(engine: Engine) -> str:
    query = {
        "postgres": "SHOW server_version",
        "mysql": "SELECT VERSION()",
        "sqlite": "SELECT sqlite_version()",
    }
    with engine.connect() as conn:
        return str(conn.execute(text(query[_backend(engine)])).scalar_one())


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


def unit_of_work(engine: Engine, scoped: Engine) -> dict:
    with Session(scoped) as session:
        customers = generate_customers()
        session.add_all(customers)
        with statements_sent(engine) as sent:
            session.flush()  # parents first, so each purchase has its customer_id
        inserts = [s for s in sent if s.lstrip().upper().startswith("INSERT")]
        tables = [s.split()[2].split(".")[-1].strip('"`') for s in inserts]
        ada = customers[0]
        with statements_sent(engine) as sent_by_get:
            found = session.get(Customer, ada.id)
        again = session.scalars(select(Customer).where(Customer.email == ada.email)).one()
        session.commit()
        stored = sum(
            session.scalar(select(func.count()).select_from(model)) for model in (Customer, Purchase)
        )
        return {
            "flushed_objects": stored,
            "flush_order": list(dict.fromkeys(tables)),
            "flush_inserts": len(inserts),
            "flush_used_returning": any("RETURNING" in s.upper() for s in inserts),
            "get_sent_sql": len(sent_by_get),
            "same_object": found is ada and again is ada,
        }


def upsert_statement(backend: str, email: str, name: str):
    """The same "insert or rename" in each dialect's own INSERT extension."""
    # A list of one row (the multi-row form): PostgreSQL then adds no RETURNING of its own.
    row = [{"email": email, "name": name, "profile": {"plan": "free", "score": 0}}]
    if backend == "postgres":
        stmt = postgresql.insert(Customer).values(row)
        upsert = stmt.on_conflict_do_update(
            index_elements=[Customer.email], set_={"name": stmt.excluded.name}
        )
    elif backend == "mysql":
        stmt = mysql.insert(Customer).values(row)
        upsert = stmt.on_duplicate_key_update(name=stmt.inserted.name)
    else:
        stmt = sqlite.insert(Customer).values(row)
        upsert = stmt.on_conflict_do_update(
            index_elements=[Customer.email], set_={"name": stmt.excluded.name}
        )
    # SQLAlchemy reads cursor.rowcount after an INSERT only when asked to.
    return upsert.execution_options(preserve_rowcount=True)


def upsert_and_its_ids(scoped: Engine) -> dict:
    backend = _backend(scoped)
    compiled = str(upsert_statement(backend, "x", "x").compile(dialect=scoped.dialect))
    after_values = compiled[compiled.index(") ", compiled.index("VALUES")) + 2 :]
    with scoped.begin() as conn:
        inserted = conn.execute(upsert_statement(backend, "new@example.org", "New Customer"))
        updated = conn.execute(upsert_statement(backend, "new@example.org", "Renamed Customer"))
        upserted_id = conn.execute(
            select(Customer.id).where(Customer.email == "new@example.org")
        ).scalar_one()
        next_id = conn.execute(_new_customer("after-upsert")).inserted_primary_key[0]
    return {
        "upsert_clause": " ".join(after_values.split()),
        "upsert_rowcount_insert": inserted.rowcount,
        "upsert_rowcount_update": updated.rowcount,
        "ids_lost_to_upsert": next_id - upserted_id - 1,
    }


def auto_increment(engine: Engine, scoped: Engine) -> dict:
    ddl = str(CreateTable(Customer.__table__).compile(dialect=scoped.dialect))
    id_line = next(line.strip().rstrip(",") for line in ddl.splitlines() if line.strip().startswith("id "))
    with scoped.begin() as conn:
        with statements_sent(engine) as sent:
            single = conn.execute(_new_customer("single"))
        multi = conn.execute(insert(Customer).values([_customer_row(f"multi-{i}") for i in range(3)]))
        multi_ids = conn.execute(
            select(func.min(Customer.id), func.max(Customer.id)).where(Customer.email.like("multi-%"))
        ).one()
        # Delete the newest row, insert another: does the highest id come back?
        newest = conn.execute(select(func.max(Customer.id))).scalar_one()
        conn.execute(delete(Customer).where(Customer.id == newest))
        replacement = conn.execute(_new_customer("replacement")).inserted_primary_key[0]
    return {
        "id_column_ddl": id_line,
        "single_insert_id_via": "RETURNING" if "RETURNING" in sent[0].upper() else "cursor.lastrowid",
        "lastrowid_single": _lastrowid(single),
        "multi_insert_ids": tuple(multi_ids),
        "lastrowid_multi": _lastrowid(multi),
        "lastrowid_is": _which_id(_lastrowid(multi), tuple(multi_ids)),
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
    backend = _backend(scoped)
    storage = {
        "postgres": ("SELECT pg_typeof(profile)::text FROM sqlalchemy_portable.customer LIMIT 1", {}),
        "mysql": (
            "SELECT data_type FROM information_schema.columns"
            " WHERE table_schema = :schema AND table_name = 'customer' AND column_name = 'profile'",
            {"schema": SCHEMA},
        ),
        "sqlite": ("SELECT typeof(profile) FROM customer LIMIT 1", {}),
    }
    is_pro = _is_pro()
    with scoped.connect() as conn:
        query, params = storage[backend]
        stored_as = conn.execute(text(query), params).scalar_one()
        matches = conn.execute(select(func.count()).select_from(Customer).where(is_pro)).scalar_one()
    key_sql = str(is_pro.compile(dialect=scoped.dialect, compile_kwargs={"literal_binds": True}))
    return {"json_stored_as": str(stored_as).lower(), "json_key_sql": key_sql, "json_key_matches": matches}


def collation_and_case(scoped: Engine) -> dict:
    backend = _backend(scoped)
    collation_query = {
        "postgres": ("SELECT datcollate FROM pg_database WHERE datname = current_database()", {}),
        "mysql": (
            "SELECT default_collation_name FROM information_schema.schemata WHERE schema_name = :schema",
            {"schema": SCHEMA},
        ),
        # No database-wide setting: the collation the email column's unique index was built with.
        "sqlite": (
            "SELECT x.coll FROM pragma_index_list('customer') AS l, pragma_index_xinfo(l.name) AS x"
            " WHERE x.name = 'email'",
            {},
        ),
    }
    with scoped.connect() as conn:
        query, params = collation_query[backend]
        collation = conn.execute(text(query), params).scalar_one()
        equal = conn.execute(select(func.count()).where(Customer.name == "lovelace")).scalar_one()
        lowered = conn.execute(
            select(func.count()).where(func.lower(Customer.name) == "lovelace")
        ).scalar_one()
        # The id breaks ties, which a case-insensitive collation has ('Ada' and 'ada' compare equal).
        in_order = select(Customer.name).where(Customer.name.in_(NAMES)).order_by(Customer.name, Customer.id)
        order = list(conn.scalars(in_order))
    return {
        "collation": collation,
        "case_insensitive_equal": equal > 0,
        "lower_matches": lowered,
        "order_by_name": order,
    }


def dialects_elsewhere() -> dict[str, tuple[Dialect, Dialect]]:
    """Oracle's and SQL Server's dialects, no driver, no server: (for a current server, for an older one)."""
    sql_server = mssql.dialect()
    sql_server.server_version_info = SQL_SERVER_2022  # what a connection would report,
    sql_server._setup_version_attributes()  # and what initialize() does with it: OFFSET..FETCH, VARCHAR(max)
    older_oracle = oracle.dialect(enable_offset_fetch=False, supports_native_boolean=False)
    # Not connected, Oracle's dialect assumes the newest server, and SQL Server's one from before 2012.
    return {"oracle": (oracle.dialect(), older_oracle), "mssql": (sql_server, mssql.dialect())}


def statements_elsewhere() -> dict[str, Any]:
    """The lesson's model and statements, where the dialects part ways most."""
    by_name = select(Customer.id, Customer.name).order_by(Customer.name, Customer.id)
    absent = ~exists().where(Customer.email == "new@example.org")
    new_row = select(literal("new@example.org"), literal("New Customer"), literal({"plan": "free"}, JSON))
    return {
        "create_customer": CreateTable(Customer.__table__),
        "create_purchase": CreateTable(Purchase.__table__),
        "first_rows": by_name.limit(5),
        "page": by_name.limit(5).offset(5),
        # No ON CONFLICT and no MERGE in SQLAlchemy for these two: UPDATE, then insert what is absent.
        "insert_if_absent": insert(Customer).from_select(["email", "name", "profile"], new_row.where(absent)),
        "insert_returning": _new_customer("returning").returning(Customer.id),
        "concatenate": select(Customer.name + " <" + Customer.email + ">"),
        "case_insensitive": select(Customer.id).where(Customer.name.ilike("lovelace")),
        "boolean_where": select(Purchase.id).where(Purchase.paid),
        "json_key": select(Customer.id).where(_is_pro()),
    }


def compiled_elsewhere() -> dict[str, dict[str, str]]:
    """Compiled, not run: dialect -> statement name -> the SQL SQLAlchemy would send."""
    statements = statements_elsewhere()
    compiled: dict[str, dict[str, str]] = {}
    for name, (current, older) in dialects_elsewhere().items():
        compiled[name] = {label: _compile(stmt, current) for label, stmt in statements.items()}
        for label in ON_OLDER_SERVERS:
            compiled[name][f"{label}_older_server"] = _compile(statements[label], older)
    return compiled


def show_compiled(compiled: dict[str, dict[str, str]]) -> None:
    """The column types side by side, then each statement's clause that differs."""
    ora, ms = compiled["oracle"], compiled["mssql"]
    oracle_types, mssql_types = _column_types(ora), _column_types(ms)
    console.table(
        ["column", "oracle", "mssql"],
        [(column, oracle_types[column], mssql_types[column]) for column in oracle_types],
    )
    rows = []
    for label in (label for label in ora if not label.startswith("create_")):
        oracle_part, mssql_part = _difference(ora[label], ms[label])
        shown = label.replace("_older_server", " (older)").replace("_", " ")
        rows += [(shown, "oracle", oracle_part), ("", "mssql", mssql_part)]
    console.table(["statement", "dialect", "where they differ (compiled, not run)"], rows)


def identify(engine: Engine) -> dict:
    server = server_version(engine)
    namespace = {"postgres": f"schema {SCHEMA}", "mysql": f"database {SCHEMA}"}
    return {
        "server": server,
        "is_mariadb": "mariadb" in server.lower(),
        "namespace": namespace.get(_backend(engine), str(engine.url.database)),
    }


def run(engines: dict[str, Engine]) -> PortableResult:
    console.title("One SQLAlchemy model on PostgreSQL, MySQL and SQLite")
    backends = [b for b in BACKENDS if b in engines]

    console.step("Give each database a namespace of its own and create the same tables in it")
    scoped = {b: reset_namespace(engines[b]) for b in backends}
    facts = {b: identify(engines[b]) for b in backends}
    for backend in backends:
        console.say(f"{backend}: {facts[backend]['server']}, {facts[backend]['namespace']}")
    if "mysql" in facts:
        console.say(MARIADB_NOTE if facts["mysql"]["is_mariadb"] else MYSQL_NOTE)

    console.step("The unit of work: one flush, parents first, and an identity map")
    for backend in backends:
        facts[backend] |= unit_of_work(engines[backend], scoped[backend])
    console.say("Batching INSERT..RETURNING needs the new ids back in a known order; without it, row by row.")
    _side_by_side(
        facts,
        [
            ("objects added, then flushed", "flushed_objects"),
            ("INSERT statements sent", "flush_inserts"),
            ("with RETURNING", "flush_used_returning"),
            ("SQL sent by session.get()", "get_sent_sql"),
            ("get(), select(): same object", "same_object"),
        ],
    )
    orders = {" then ".join(found["flush_order"]) for found in facts.values()}
    console.say(f"Order of the INSERTs on every database: {' / '.join(sorted(orders))}.")

    console.step("Upsert: one idea, three INSERT extensions")
    for backend in backends:
        facts[backend] |= upsert_and_its_ids(scoped[backend])
        console.say(f"{backend}: INSERT ... {facts[backend]['upsert_clause']}")
    _side_by_side(
        facts,
        [
            ("rowcount when it inserts", "upsert_rowcount_insert"),
            ("rowcount when it updates", "upsert_rowcount_update"),
            ("ids lost to an upsert that updated", "ids_lost_to_upsert"),
        ],
    )
    console.say(
        "An id drawn for the INSERT that became an UPDATE is gone; SQLite's rowid is taken on insert only."
    )

    console.step("Auto-increment: where a new id comes from and how it comes back")
    for backend in backends:
        facts[backend] |= auto_increment(engines[backend], scoped[backend])
        console.say(f"{backend}: {facts[backend]['id_column_ddl']}")
    console.say(
        "SQLite's INTEGER PRIMARY KEY is the rowid itself: without AUTOINCREMENT, the next is max(id) + 1."
    )
    _side_by_side(
        facts,
        [
            ("one-row INSERT id came via", "single_insert_id_via"),
            ("lastrowid (one row)", "lastrowid_single"),
            ("ids of one three-row INSERT", "multi_insert_ids"),
            ("lastrowid (three rows)", "lastrowid_multi"),
            ("that is the three rows'", "lastrowid_is"),
            ("deleted highest id reused", "reuses_deleted_max_id"),
        ],
    )

    console.step("RETURNING: what the dialect claims, and what the server does when asked anyway")
    for backend in backends:
        facts[backend] |= explicit_returning(scoped[backend])
    _side_by_side(
        facts,
        [
            ("dialect.insert_returning", "dialect_insert_returning"),
            ("insert(...).returning(id)", "explicit_returning"),
        ],
    )

    console.step("JSON: stored differently, queried through one expression")
    for backend in backends:
        facts[backend] |= json_column(scoped[backend])
        console.say(f"{backend}: WHERE {facts[backend]['json_key_sql']}")
    _side_by_side(
        facts, [("stored as", "json_stored_as"), ("customers on the 'pro' plan", "json_key_matches")]
    )

    console.step("Collation and case: does 'Lovelace' = 'lovelace'?")
    for backend in backends:
        facts[backend] |= collation_and_case(scoped[backend])
    _side_by_side(
        facts,
        [
            ("collation", "collation"),
            ("name = 'lovelace' matches", "case_insensitive_equal"),
            ("lower(name) = 'lovelace' rows", "lower_matches"),
        ],
    )
    console.table(
        ["ORDER BY name", *backends],
        [(position, *(facts[b]["order_by_name"][position - 1] for b in backends))
         for position in range(1, len(NAMES) + 1)],
    )  # fmt: skip
    console.say("lower() on both sides is the portable case-insensitive comparison.")

    compiled = explain_compiled_elsewhere()
    customers = generate_customers()
    return PortableResult(
        customers=len(customers),
        purchases=sum(len(c.orders) for c in customers),
        pro_customers=sum(c.profile["plan"] == "pro" for c in customers),
        findings={backend: Findings(**facts[backend]) for backend in backends},
        compiled_not_run=compiled,
    )


def explain_compiled_elsewhere() -> dict[str, dict[str, str]]:
    """The last step: Oracle's and SQL Server's SQL for the same model, side by side."""
    console.step("Oracle and SQL Server: the same model and statements, compiled, not run")
    console.say(
        "Compiled, not run: no driver, no server. Not connected, Oracle's dialect assumes the newest server"
        " (23ai); SQL Server's assumes one before 2012, so the lesson gives it the version 2022 reports."
    )
    compiled = compiled_elsewhere()
    show_compiled(compiled)
    ids = {name: _column_types(compiled["oracle"])[f"{name}.id"] for name in ("customer", "purchase")}
    console.say(
        f"Oracle: customer.id is `{ids['customer']}`, nothing numbers new rows there;"
        f" purchase.id says Identity(): `{ids['purchase']}`."
    )
    modules = {"postgresql": postgresql, "mysql": mysql, "sqlite": sqlite, "oracle": oracle, "mssql": mssql}
    upserts = [name for name, module in modules.items() if hasattr(module, "insert")]
    console.say(
        f"An insert() with ON CONFLICT / ON DUPLICATE KEY only in: {', '.join(upserts)}; SQLAlchemy builds no"
        " MERGE. The stand-in: UPDATE, then INSERT .. SELECT .. WHERE NOT EXISTS (the unique key decides races)."
    )
    console.say(
        "(older): what SQLAlchemy writes for Oracle before 12c (ROWNUM; no BOOLEAN before 23ai) and SQL Server"
        " before 2012. Case: SQL Server's en-US default collation folds case, Oracle's default compares binary."
    )
    return compiled


def _side_by_side(facts: dict[str, dict], rows: list[tuple[str, str]]) -> None:
    """One row per fact, one column per database."""
    console.table(
        ["", *facts],
        [(label, *(_show(found[key]) for found in facts.values())) for label, key in rows],
    )


def _show(value: object) -> object:
    if value is None:
        return "n/a"
    if isinstance(value, list):
        return ", ".join(value)
    if isinstance(value, tuple):
        return " .. ".join(str(v) for v in value)
    return value


def _compile(statement, dialect: Dialect) -> str:
    sql = str(statement.compile(dialect=dialect, compile_kwargs={"render_postcompile": True}))
    return "\n".join(line.rstrip() for line in sql.strip().splitlines())


def _column_types(compiled: dict[str, str]) -> dict[str, str]:
    """table.column -> its type, default and generator, read from the compiled CREATE TABLEs."""
    types = {}
    for ddl in (compiled["create_customer"], compiled["create_purchase"]):
        table = ddl.split()[2]
        for line in ddl.splitlines()[1:-1]:
            column, spec = line.strip().rstrip(",").split(" ", 1)
            if column.islower():  # not PRIMARY KEY, UNIQUE, FOREIGN KEY
                types[f"{table}.{column}"] = spec.replace(" NOT NULL", "").replace(" NULL", "")
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


def _backend(engine: Engine) -> str:
    return {"postgresql": "postgres"}.get(engine.dialect.name, engine.dialect.name)


def _customer_row(tag: str) -> dict:
    return {"email": f"{tag}@example.org", "name": tag, "profile": {"plan": "free", "score": 0}}


def _new_customer(tag: str):
    return insert(Customer).values(_customer_row(tag))


def _which_id(lastrowid: int | None, first_and_last: tuple[int, int]) -> str:
    if lastrowid is None:
        return "n/a"
    first, last = first_and_last
    return {first: "first id", last: "last id"}.get(lastrowid, "another id")


def _lastrowid(result) -> int | None:
    try:
        return result.lastrowid
    except AttributeError:  # psycopg's cursor has no lastrowid: PostgreSQL returns ids with RETURNING
        return None


def main() -> int:
    require(*REQUIRES)
    sqlite_file = scratch_dir("sqlalchemy_portable") / "portable.db"
    sqlite_file.unlink(missing_ok=True)
    timeout = {"connect_timeout": CONNECT_TIMEOUT_S}
    engines = {
        "postgres": create_engine(sqlalchemy_postgres_url(), connect_args=timeout),
        "mysql": create_engine(sqlalchemy_mysql_url(), connect_args=timeout),
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

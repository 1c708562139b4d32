"""Alembic's environment for migration/alembic_schema_migrations.py and failed_migrations_and_linting.py.

Alembic runs this file for every command. The lessons build its `alembic.config.Config` in code
(no alembic.ini) and pass, in `config.attributes`:
- "connection": an open SQLAlchemy Connection (the documented recipe for sharing a connection), so
  the caller chooses the engine, the schema (search_path) and when to commit;
- "target_metadata": the models' MetaData, for autogenerate.
Without a connection (the `alembic` command line, or failed_migrations_and_linting.py, which
drives Alembic the way it does), it connects to `sqlalchemy.url` itself.

Main options it reads: `sqlalchemy.url`, and `lesson_schema`: the schema that holds the version
table (`version_table_schema`) and, on PostgreSQL, is the search_path the migrations run in.
Each revision runs in a transaction of its own (`transaction_per_migration`): where DDL is
transactional (PostgreSQL), a revision that fails leaves nothing behind and the version table
stays at the last revision that succeeded.
"""

from alembic import context
from sqlalchemy import create_engine, make_url, pool

config = context.config
SCHEMA = config.get_main_option("lesson_schema")


def include_name(name, type_, parent_names) -> bool:
    """Autogenerate: the version table lives in SCHEMA, not in the default schema it compares."""
    return not (type_ == "table" and name == "alembic_version")


def options() -> dict:
    return {
        "target_metadata": config.attributes.get("target_metadata"),
        "version_table_schema": SCHEMA,
        "transaction_per_migration": True,
        "include_name": include_name,
    }


def run_migrations_offline() -> None:
    """`--sql`: the statements are written out, not run; no database is needed."""
    url = make_url(config.get_main_option("sqlalchemy.url"))
    context.configure(url=url, literal_binds=True, dialect_opts={"paramstyle": "named"}, **options())
    if SCHEMA and url.get_backend_name() == "postgresql":  # the script runs where the lesson's did
        quoted = context.get_context().dialect.identifier_preparer.quote_schema(SCHEMA)
        context.execute("SET search_path TO " + quoted)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_on(connection) -> None:
    context.configure(connection=connection, **options())
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run_migrations_on(connection)
        return
    url = make_url(config.get_main_option("sqlalchemy.url"))
    connect_args = {}
    if SCHEMA and url.get_backend_name() == "postgresql":
        connect_args["options"] = "-c search_path=" + SCHEMA
    engine = create_engine(url, poolclass=pool.NullPool, connect_args=connect_args)
    with engine.connect() as connection:
        run_migrations_on(connection)
        connection.commit()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()

import re

import pytest
from sqlalchemy import create_engine

from relational import sqlalchemy_portable as lesson


@pytest.fixture(scope="module")
def engines(postgres, mysql, tmp_path_factory):
    sqlite_file = tmp_path_factory.mktemp("sqlalchemy_portable") / "portable.db"
    made = {
        "postgres": create_engine(postgres.url.replace("postgresql://", "postgresql+psycopg://", 1)),
        "mysql": create_engine(mysql.url.replace("mysql://", "mysql+pymysql://", 1)),
        "sqlite": create_engine(f"sqlite:///{sqlite_file}"),
    }
    yield made
    for engine in made.values():
        engine.dispose()


@pytest.fixture(scope="module")
def result(engines):
    return lesson.run(engines)


@pytest.fixture(scope="module")
def pg(result):
    return result.findings["postgres"]


@pytest.fixture(scope="module")
def my(result):
    return result.findings["mysql"]


@pytest.fixture(scope="module")
def lite(result):
    return result.findings["sqlite"]


def test_each_database_ran_in_its_own_namespace(pg, my, lite):
    assert pg.namespace == "schema sqlalchemy_portable"
    assert my.namespace == "database sqlalchemy_portable"
    assert lite.namespace.endswith("portable.db")
    assert my.is_mariadb == ("mariadb" in my.server.lower())


def test_the_unit_of_work_is_the_same_everywhere(result):
    for found in result.findings.values():
        assert found.flushed_objects == result.customers + result.purchases
        assert found.flush_order == ["customer", "purchase"]  # parents before children
        assert found.get_sent_sql == 0  # the identity map answered
        assert found.same_object


def test_batched_flush_needs_ordered_returning(pg, my, lite):
    # One INSERT per table where the new ids come back in a known order, else one per row.
    assert pg.flush_inserts == 2 and pg.flush_used_returning
    assert lite.flush_inserts == lite.flushed_objects and lite.flush_used_returning
    if my.is_mariadb:
        assert my.flush_inserts == 2 and my.flush_used_returning
    else:
        assert my.flush_inserts == my.flushed_objects and not my.flush_used_returning


def test_upsert_clause_and_rowcount_differ(pg, my, lite):
    assert pg.upsert_clause.startswith("ON CONFLICT (email) DO UPDATE")
    assert lite.upsert_clause.startswith("ON CONFLICT (email) DO UPDATE")
    assert "ON DUPLICATE KEY UPDATE" in my.upsert_clause
    assert (pg.upsert_rowcount_insert, pg.upsert_rowcount_update) == (1, 1)
    assert (lite.upsert_rowcount_insert, lite.upsert_rowcount_update) == (1, 1)
    assert (my.upsert_rowcount_insert, my.upsert_rowcount_update) == (1, 2)


def test_an_upsert_that_updates_uses_up_an_id_except_on_sqlite(pg, my, lite):
    assert pg.ids_lost_to_upsert >= 1
    assert my.ids_lost_to_upsert >= 1
    assert lite.ids_lost_to_upsert == 0


def test_returning_follows_the_server(pg, my, lite):
    assert pg.dialect_insert_returning and pg.explicit_returning.startswith("id ")
    assert lite.dialect_insert_returning and lite.explicit_returning.startswith("id ")
    # MariaDB 10.5+ has INSERT..RETURNING; MySQL's server rejects it as a syntax error.
    assert my.dialect_insert_returning == my.is_mariadb
    assert my.explicit_returning.startswith("id " if my.is_mariadb else "error 1064")


def test_auto_increment_and_lastrowid(pg, my, lite):
    assert "SERIAL" in pg.id_column_ddl
    assert "AUTO_INCREMENT" in my.id_column_ddl
    assert pg.single_insert_id_via == "RETURNING"
    assert pg.lastrowid_single is None and pg.lastrowid_multi is None  # psycopg has no lastrowid
    assert my.lastrowid_single is not None and lite.lastrowid_single is not None
    # A multi-row INSERT: MySQL reports the batch's first id, SQLite its last.
    assert my.lastrowid_is == "first id"
    assert lite.lastrowid_is == "last id"
    assert lite.reuses_deleted_max_id
    assert not pg.reuses_deleted_max_id and not my.reuses_deleted_max_id


def test_json_is_stored_differently_but_queried_alike(result, pg, my, lite):
    assert pg.json_stored_as == "json"
    assert lite.json_stored_as == "text"
    assert my.json_stored_as == ("longtext" if my.is_mariadb else "json")
    assert "->>" in pg.json_key_sql
    assert "JSON_EXTRACT" in my.json_key_sql and "JSON_EXTRACT" in lite.json_key_sql
    assert result.pro_customers > 0
    assert pg.json_key_matches == my.json_key_matches == lite.json_key_matches == result.pro_customers


def test_case_and_collation(pg, my, lite):
    assert my.case_insensitive_equal
    assert not pg.case_insensitive_equal and not lite.case_insensitive_equal
    assert pg.lower_matches == my.lower_matches == lite.lower_matches == 1
    binary = sorted(lesson.NAMES)
    folded = sorted(lesson.NAMES, key=str.casefold)
    assert binary != folded
    assert lite.order_by_name == binary
    assert my.order_by_name == folded
    pg_is_binary = pg.collation.split(".")[0] in ("C", "POSIX")
    assert pg.order_by_name == (binary if pg_is_binary else folded)
    assert lite.collation == "BINARY"  # read from the file: the email index's collation


def test_main_checks_the_headline(result):
    assert result.holds


def test_a_second_run_gives_the_same_facts(engines, result):
    again = lesson.run(engines)
    assert again == result


def test_the_compiled_sql_is_in_the_result(result):
    assert result.compiled_not_run == lesson.compiled_elsewhere()


# Compiled, not run: Oracle's and SQL Server's SQL needs no driver and no server, so these always run.


@pytest.fixture(scope="module")
def compiled():
    return lesson.compiled_elsewhere()


@pytest.fixture(scope="module")
def ora(compiled):
    return compiled["oracle"]


@pytest.fixture(scope="module")
def ms(compiled):
    return compiled["mssql"]


def _one_line(sql):
    return " ".join(sql.split())


def test_oracle_pages_with_fetch_first_and_rownum_before_12c(ora):
    assert _one_line(ora["first_rows"]).endswith("FETCH FIRST 5 ROWS ONLY")
    assert "OFFSET 5 ROWS FETCH FIRST 5 ROWS ONLY" in _one_line(ora["page"])
    older = _one_line(ora["page_older_server"])
    assert "ROWNUM <= 5 + 5" in older and "FETCH" not in older


def test_sql_server_pages_with_top_and_offset_fetch_from_2012(ms):
    assert _one_line(ms["first_rows"]).startswith("SELECT TOP 5 ")
    assert re.search(r"OFFSET \S+ ROWS FETCH (FIRST|NEXT) \S+ ROWS ONLY", _one_line(ms["page"]))
    # Not told the version, the dialect writes what SQL Server 2008 understands.
    older = _one_line(ms["page_older_server"])
    assert "ROW_NUMBER() OVER (ORDER BY customer.name, customer.id)" in older and "FETCH" not in older


def test_ids_need_identity_on_oracle(ora, ms):
    # customer.id leaves the generator to the dialect: SQL Server makes it IDENTITY, Oracle nothing.
    assert "id INTEGER NOT NULL," in ora["create_customer"] and "IDENTITY" not in ora["create_customer"]
    assert "id INTEGER GENERATED BY DEFAULT AS IDENTITY," in ora["create_purchase"]
    assert "id INTEGER NOT NULL IDENTITY," in ms["create_customer"]
    assert "id INTEGER NOT NULL IDENTITY," in ms["create_purchase"]


def test_large_text_json_dates_and_booleans_in_ddl(ora, ms):
    assert "note CLOB" in ora["create_purchase"]
    assert "note VARCHAR(max)" in ms["create_purchase"]  # not TEXT: the dialect knows it is 2012 or later
    assert "profile JSON" in ora["create_customer"]
    assert "profile NVARCHAR(max)" in ms["create_customer"]
    assert "placed_at DATE " in ora["create_purchase"]  # Oracle's DATE holds the time of day too
    assert "placed_at DATETIME " in ms["create_purchase"]
    assert "paid BOOLEAN" in ora["create_purchase"]  # Oracle 23ai, the version an unconnected dialect assumes
    assert "paid BIT" in ms["create_purchase"]
    assert "VARCHAR2(120 CHAR)" in ora["create_customer"]


def test_booleans_in_where(ora, ms):
    assert _one_line(ora["boolean_where"]).endswith("WHERE purchase.paid")
    assert _one_line(ora["boolean_where_older_server"]).endswith("WHERE purchase.paid = 1")
    assert _one_line(ms["boolean_where"]).endswith("WHERE purchase.paid = 1")


def test_concatenation_returning_and_insert_if_absent(ora, ms):
    assert "customer.name || :name_1 || customer.email" in ora["concatenate"]
    assert "customer.name + :name_1 + customer.email" in ms["concatenate"]
    assert "RETURNING customer.id INTO :ret_0" in ora["insert_returning"]
    assert "OUTPUT inserted.id VALUES" in ms["insert_returning"]
    # No upsert construct for either: insert what is absent; Oracle's SELECT needs FROM DUAL.
    assert "FROM DUAL" in ora["insert_if_absent"] and "FROM DUAL" not in ms["insert_if_absent"]
    assert all("WHERE NOT (EXISTS" in sql["insert_if_absent"] for sql in (ora, ms))


def test_case_insensitive_match_and_json_key(ora, ms):
    assert all("lower(customer.name) LIKE lower(:name_1)" in sql["case_insensitive"] for sql in (ora, ms))
    assert "JSON_VALUE(customer.profile, '$.\"plan\"' RETURNING VARCHAR2(4000)" in ora["json_key"]
    assert "CASE JSON_VALUE(customer.profile, :profile_1)" in ms["json_key"]


@pytest.mark.parametrize(("dialect", "read"), [("oracle", "oracle"), ("mssql", "tsql")])
def test_every_statement_parses_as_that_dialect(compiled, dialect, read):
    sqlglot = pytest.importorskip("sqlglot")
    kinds = {"create": sqlglot.exp.Create, "insert": sqlglot.exp.Insert}
    parsed = {}
    for name, sql in compiled[dialect].items():
        statements = sqlglot.parse(sql, read=read)  # raises ParseError on SQL it cannot read
        assert len(statements) == 1, name
        assert isinstance(statements[0], kinds.get(name.split("_")[0], sqlglot.exp.Select)), name
        parsed[name] = statements[0].sql(dialect=read)
    # Written back in the same dialect, the dialect's own constructs are still there.
    if dialect == "oracle":
        assert "FETCH FIRST 5 ROWS ONLY" in parsed["first_rows"] and "FROM DUAL" in parsed["insert_if_absent"]
    else:
        assert (
            parsed["first_rows"].startswith("SELECT TOP 5")
            and "OUTPUT inserted.id" in parsed["insert_returning"]
        )


def test_compiling_is_the_same_every_time(compiled):
    assert lesson.compiled_elsewhere() == compiled

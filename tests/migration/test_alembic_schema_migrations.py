import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text

from migration import alembic_schema_migrations as lesson

ENGINES = ("postgresql", "mysql")


@pytest.fixture(scope="module")
def result(postgres, mysql):
    return lesson.run(postgres.url, mysql.url)


@pytest.mark.parametrize("engine", ENGINES)
def test_the_version_table_follows_each_upgrade_and_downgrade(result, engine):
    assert (result.head, result.one_below) == ("0004", "0003")
    assert result.engines[engine].versions == {
        "upgrade head": "0004",
        "downgrade -1": "0003",
        "downgrade base": None,
    }
    assert result.engines[engine].tables_at_base == 0


@pytest.mark.parametrize("engine", ENGINES)
def test_the_data_migration_splits_every_name_and_its_downgrade_joins_them_back(result, engine):
    facts = result.engines[engine]
    assert facts.split_rows == result.customers == lesson.N_CUSTOMERS
    assert facts.mononyms == lesson.N_CUSTOMERS // 25  # one name in 25 has one word: last_name ''
    assert facts.joined_back == result.customers


def test_the_split_follows_the_first_space(result):
    one_word, two_word_last_name, plain = result.engines["postgresql"].split_sample
    assert one_word[1:] == (one_word[0], "")
    assert two_word_last_name[0] == f"{two_word_last_name[1]} van Rossum"
    assert two_word_last_name[2] == "van Rossum"
    assert plain[0] == f"{plain[1]} {plain[2]}" and " " not in plain[2]


@pytest.mark.parametrize("engine", ENGINES)
def test_autogenerate_finds_the_last_revision_missing_and_nothing_at_head(result, engine):
    facts = result.engines[engine]
    assert facts.diff_before_head == [
        "add_column customers.status",
        "add_index ix_customers_status",
    ]
    assert facts.diff_at_head == []
    assert facts.check_at_head  # `alembic check` through env.py: its include_name skips alembic_version


def test_the_chain_holds_the_four_revisions_of_versions_only(result):
    """drills/ and lint_only/ (failed_migrations_and_linting.py's) are not in this lesson's locations."""
    url = lesson.sa.make_url("postgresql+psycopg://nobody@127.0.0.1:1/nothing")
    scripts = ScriptDirectory.from_config(lesson.alembic_config(url))
    assert sorted(script.revision for script in scripts.walk_revisions()) == ["0001", "0002", "0003", "0004"]
    assert scripts.get_heads() == [result.head]


def test_offline_mode_writes_each_revision_in_a_transaction_of_its_own(result):
    sql = result.offline_sql
    for statement in (
        "CREATE TABLE alembic_lesson.alembic_version",
        "CREATE TABLE customers",
        "CREATE INDEX ix_orders_customer_id ON orders (customer_id)",
        "UPDATE customers SET",
        "ALTER TABLE customers DROP COLUMN full_name",
        "CREATE INDEX ix_customers_status ON customers (status)",
        "UPDATE alembic_lesson.alembic_version SET version_num='0004'",
    ):
        assert statement in sql, statement
    assert result.offline_kinds["BEGIN"] == result.offline_kinds["COMMIT"] == 4
    assert result.offline_kinds["CREATE TABLE"] == 3  # the version table and two of the chain's
    assert result.offline_statements == sql.count(";")


def test_offline_mode_needs_no_database(result):
    """Offline SQL is rendered from the URL's dialect alone: nothing listens at this address."""
    url = lesson.sa.make_url("postgresql+psycopg://nobody:x@127.0.0.1:1/nothing")
    assert lesson.offline_sql(url, "head") == result.offline_sql


def test_the_headline_facts_hold(result):
    assert result.holds  # what main() exits on


def test_at_base_only_the_empty_version_table_is_left_in_the_schema(result, postgres):
    engine = create_engine(postgres.url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as conn:
        tables = conn.execute(
            text("SELECT table_name FROM information_schema.tables WHERE table_schema = :s"),
            {"s": lesson.SCHEMA},
        ).scalars()
        assert set(tables) == {"alembic_version"}  # at base: only the (empty) version table
    engine.dispose()


def test_a_second_run_gives_the_same_facts(result, postgres, mysql):
    assert lesson.run(postgres.url, mysql.url) == result

import pytest

from migration import failed_migrations_and_linting as lesson

ENGINES = ("postgresql", "mysql")


@pytest.fixture(scope="module")
def result(postgres, mysql):
    return lesson.run(postgres.url, mysql.url)


@pytest.mark.parametrize("engine", ENGINES)
def test_the_drill_starts_at_head_with_customers_sharing_last_names(result, engine):
    facts = result.engines[engine]
    assert facts.version_before == lesson.HEAD == "0004"
    assert facts.customers == lesson.N_CUSTOMERS
    assert facts.last_names == len(lesson.LAST) < facts.customers  # the UNIQUE constraint cannot hold


def test_the_failed_revision_leaves_nothing_on_postgresql(result):
    facts = result.engines["postgresql"]
    assert facts.drill_error == "23505"  # unique_violation: the data broke the migration
    assert facts.drill_survivors == dict.fromkeys(lesson.DRILL_OBJECTS, 0)
    assert facts.version_after_drill == "0004"
    assert facts.retry_error == "23505"  # a retry meets the same error, not leftovers


def test_the_failed_revision_leaves_a_half_applied_schema_on_mysql(result):
    facts = result.engines["mysql"]
    assert facts.drill_error == "1062"  # ER_DUP_ENTRY
    assert facts.drill_survivors == {
        "customer_notes": 1,
        "ix_customer_notes_customer_id": 1,
        "uq_customers_last_name": 0,
    }
    assert facts.version_after_drill == "0004"  # the version table does not know
    assert facts.retry_error == "1050"  # ER_TABLE_EXISTS_ERROR: the leftovers are in the way


@pytest.mark.parametrize("engine", ENGINES)
def test_the_repair_by_hand_leaves_nothing_behind(result, engine):
    assert result.engines[engine].left_after_repair == 0


def test_the_drill_and_lint_revisions_stay_out_of_the_head_chain(result):
    url = lesson.sa.make_url("postgresql+psycopg://nobody@127.0.0.1:1/nothing")  # read from files alone
    expected = {"versions": ["0004"], "versions + drills": ["d001"], "versions + lint_only": ["n001"]}
    assert lesson.heads(url) == expected
    assert result.heads == expected


def test_the_naive_revision_is_rendered_offline_alone(result):
    sql = result.naive_sql
    for statement in (
        "ALTER TABLE orders ADD COLUMN public_id UUID DEFAULT gen_random_uuid() NOT NULL",
        "CREATE INDEX ix_orders_total ON orders (total)",
        "UPDATE failed_migrations.alembic_version SET version_num='n001' WHERE",
    ):
        assert statement in sql, statement
    assert "CREATE TABLE customers" not in sql  # from 0004 on: the naive revision only


def test_squawk_flags_the_naive_revision(result):
    if lesson.squawk_binary() is None:
        pytest.skip("squawk is not installed (pip install squawk-cli; `make install` does)")
    assert set(result.squawk_rules) >= lesson.EXPECTED_RULES
    assert result.squawk_findings >= len(lesson.EXPECTED_RULES)


def test_the_headline_facts_hold(result):
    assert result.holds  # what main() exits on


def test_without_squawk_the_lint_step_is_skipped(monkeypatch):
    monkeypatch.setattr(lesson, "squawk_binary", lambda: None)
    partial = lesson.FailuresResult({}, {})
    lesson.lint(None, partial)  # returns before it needs the engine
    assert partial.squawk_rules is None


def test_a_second_run_gives_the_same_facts(result, postgres, mysql):
    assert lesson.run(postgres.url, mysql.url) == result

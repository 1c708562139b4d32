import shutil

import psycopg
import pymysql
import pytest

from common.settings import mysql_params
from migration import mysql_to_postgres_pgloader as lesson


def run_lesson(mysql, postgres):
    with (
        pymysql.connect(**mysql_params(mysql.url), charset="utf8mb4") as my,
        psycopg.connect(postgres.url) as pg,
    ):
        return lesson.run(my, pg, mysql.url, postgres.url)


@pytest.fixture(scope="module")
def result(mysql, postgres):
    return run_lesson(mysql, postgres)


@pytest.fixture
def loaded(result):
    """The facts of the loads themselves: only where pgloader could run against this MySQL."""
    if not result.ran:
        pytest.skip(f"pgloader did not run here: {result.pgloader}")
    return result


def test_the_source_holds_every_awkward_value(result):
    assert result.source_rows["orders"] == 3 * result.source_rows["customers"]
    assert all(zeros > 0 for zeros, _ in result.zero_dates.values())
    assert result.zero_dates["orders.shipped_on"][1] > 0  # NULLs beside the zero dates


def test_pgloader_ran_or_the_lesson_says_why(result):
    if shutil.which(lesson.PGLOADER) is None:
        assert not result.ran and "not installed" in result.pgloader
    elif not result.ran:  # MySQL 8.4: caching_sha2_password, which pgloader 3.6's driver cannot speak
        assert result.server.startswith("MySQL") and lesson.refused(result.default_load)
    else:
        assert result.fixed_load is not None
    assert result.holds


def test_the_default_casts_lose_rows_and_still_exit_0(loaded):
    load = loaded.default_load
    assert load.exit_code == 0
    assert load.target_rows["customers"] < loaded.source_rows["customers"]  # born: NOT NULL kept
    assert load.target_rows["orders"] < loaded.source_rows["orders"]  # shipped_on: zero date refused
    assert any("23502" in line for line in load.errors)  # not_null_violation


def test_the_cast_rule_copies_every_row(loaded):
    assert loaded.fixed_load.exit_code == 0
    assert loaded.fixed_load.target_rows == loaded.source_rows


def test_every_table_checksum_matches(loaded):
    assert set(loaded.checksums) == set(lesson.TABLES)
    for table, (mysql, postgres) in loaded.checksums.items():
        assert mysql == postgres, table


def test_zero_dates_became_nulls(loaded):
    for column, (zeros, nulls) in loaded.zero_dates.items():
        assert loaded.null_dates[column] == zeros + nulls, column


@pytest.mark.parametrize(
    ("column", "postgres_type", "nulls"),
    [
        ("customers.id", "bigint", "no"),
        ("customers.tier", "enum customers_tier", "no"),
        ("customers.tags", "customers_tags[]", "yes"),
        ("customers.is_active", "boolean", "no"),
        ("customers.balance", "numeric(12,2)", "no"),
        ("customers.born", "date", "no -> yes"),
        ("customers.signed_up", "timestamptz", "no -> yes"),
        ("orders.placed_at", "timestamptz", "no"),
        ("orders.items", "integer", "no"),
    ],
)
def test_what_pgloader_made_of_each_type(loaded, column, postgres_type, nulls):
    assert loaded.types[column][1:] == (postgres_type, nulls)


def test_an_enum_keeps_its_labels_in_order(loaded):
    assert loaded.enum_labels == ["new", "paid", "shipped", "cancelled"]


def test_pgloader_changed_no_database_setting(loaded):
    assert not loaded.database_settings_changed


def test_without_pgloader_the_lesson_says_so_and_still_holds(mysql, postgres, monkeypatch):
    monkeypatch.setattr(lesson, "PGLOADER", "pgloader-that-is-not-installed")
    missing = run_lesson(mysql, postgres)
    assert not missing.ran and "not installed" in missing.pgloader and missing.holds
    assert missing.source_rows["customers"] > 0


def test_a_second_run_gives_the_same_facts(mysql, postgres, result):
    assert run_lesson(mysql, postgres) == result


NOTHING = dict.fromkeys(lesson.TABLES, 0)
# Lines pgloader 3.6.9 printed here: an account on an authentication plugin qmynd does not speak
# (MariaDB's ed25519), and a statement the server refused while connecting.
HANDSHAKE = (
    'mysql: Failed to connect to mysql at "127.0.0.1" (port 3306) as user "ed": Illegal :UTF-8 character'
)
SERVER_ERROR = (
    'mysql: Failed to connect to mysql at "127.0.0.1" (port 3306) as user "examples": MySQL Error [1064]: '
    '"You have an error in your SQL syntax"'
)


@pytest.mark.parametrize(
    ("errors", "rows", "refused"),
    [
        ([HANDSHAKE], NOTHING, True),
        (
            ["mysql: Failed to connect to mysql ...: Condition QMYND:MYSQL-UNSUPPORTED-AUTHENTICATION"],
            NOTHING,
            True,
        ),
        ([SERVER_ERROR], NOTHING, False),  # a fault of the command, not of the server's accounts
        ([HANDSHAKE], {**NOTHING, "customers": 1}, False),
    ],
)
def test_a_handshake_refusal_is_told_apart_from_a_failed_load(errors, rows, refused):
    assert lesson.refused(lesson.Load(0, rows, errors, 0.0)) is refused

import psycopg
import pytest
from psycopg import sql

from security import password_hashing as lesson

USERS = sql.Identifier(lesson.SCHEMA, "users")


@pytest.fixture(scope="module")
def pg(postgres):
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="module")
def result(pg):
    return lesson.run(pg)


def test_one_password_gives_one_unsalted_hash_and_one_salted_hash_per_user(result):
    assert result.distinct_hashes == {"sha256": 1, "scrypt": len(lesson.USERS), "bcrypt": len(lesson.USERS)}


def test_the_stored_rows_hold_one_sha256_and_a_salt_per_user(result, pg):
    """Read apart from the lesson: bcrypt's 22-character salt follows `$2a$10$`; scrypt's is the first 16 bytes."""
    query = "SELECT count(*), count(DISTINCT sha256), count(DISTINCT substr(bcrypt, 8, 22)), "
    query += "count(DISTINCT substr(scrypt, 1, 16)) FROM {}"
    assert pg.execute(sql.SQL(query).format(USERS)).fetchone() == (2, 1, 2, 2)


def test_no_column_holds_the_password(result, pg):
    query = sql.SQL("SELECT count(*) FROM {} WHERE position(%s IN sha256) > 0 OR position(%s IN scrypt) > 0 "
                    "OR position(%s IN bcrypt) > 0").format(USERS)  # fmt: skip
    password = lesson.PASSWORD.encode()
    assert pg.execute(query, (password, password, lesson.PASSWORD)).fetchone()[0] == 0


def test_bcrypt_in_sql_lets_the_right_password_in_and_keeps_a_wrong_one_out(result):
    assert result.logins == {"right": sorted(lesson.USERS), "wrong": []}


def test_scrypt_lets_the_right_password_in_and_keeps_a_wrong_one_out(result):
    assert result.scrypt_verifies


def test_the_bcrypt_hash_carries_its_algorithm_and_cost(result, pg):
    assert result.bcrypt_prefix == f"$2a${lesson.BCRYPT_COST:02d}$"
    prefixes = pg.execute(sql.SQL("SELECT DISTINCT left(bcrypt, 7) FROM {}").format(USERS)).fetchall()
    assert prefixes == [("$2a$10$",)]


def test_bcrypt_ignores_what_follows_byte_72_and_scrypt_does_not(result):
    assert result.past_the_limit == {"bcrypt": True, "scrypt": False}


def test_each_scheme_has_a_measured_guess_rate(result):
    """Rates are printed, never compared here: timings on a shared machine are noise."""
    assert set(result.guesses_per_s) == {"sha256", "scrypt", "bcrypt"}
    assert all(rate > 0 for rate in result.guesses_per_s.values())
    assert result.guess_cost["sha256"] == 1


def test_main_exits_on_these_facts(result):
    assert result.holds


def test_the_lesson_keeps_pgcrypto_where_it_found_it(result, pg):
    schema = pg.execute(lesson.EXTENSION, ("pgcrypto",)).fetchone()
    assert schema == (result.pgcrypto_schema,) and schema[0] != lesson.SCHEMA


def test_a_second_run_gives_the_same_facts(result, pg):
    assert lesson.run(pg) == result

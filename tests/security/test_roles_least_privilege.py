import psycopg
import pytest

from security import roles_least_privilege as lesson
from security.roles_least_privilege import ALLOWED, DENIED

ALL_DENIED = dict.fromkeys(lesson.ACTIONS, DENIED)


@pytest.fixture(scope="module")
def result(postgres):
    with psycopg.connect(postgres.url) as admin:
        return lesson.run(admin, postgres.url)


def test_a_new_role_can_create_and_call_functions_through_public_before_hardening(result):
    newcomer = result.before["newcomer"]
    assert newcomer["create table"] == ALLOWED
    assert newcomer["call email_domain"] == ALLOWED
    assert newcomer["read email"] == DENIED


def test_after_revoking_from_public_a_new_role_can_do_nothing(result):
    assert result.after["newcomer"] == ALL_DENIED
    assert result.holds  # what main() exits on


def test_each_group_keeps_exactly_its_own_grants(result):
    assert result.after["app"] == {
        "read email": ALLOWED,
        "read report cols": ALLOWED,
        "insert order": ALLOWED,
        "create table": DENIED,
        "call email_domain": DENIED,
    }
    assert result.after["analyst"] == {
        "read email": DENIED,  # the column grant leaves email out
        "read report cols": ALLOWED,
        "insert order": DENIED,
        "create table": DENIED,
        "call email_domain": ALLOWED,
    }
    assert set(result.after["deploy"].values()) == {ALLOWED}


def test_every_denied_cell_was_insufficient_privilege(result):
    assert result.denied_sqlstates == {psycopg.errors.InsufficientPrivilege.sqlstate}


def test_default_privileges_cover_a_table_created_later(result):
    assert result.new_table_readable_by_app is True


def test_only_the_unpinned_definer_function_runs_the_attackers_function(result):
    assert result.leaked_unpinned == lesson.N_CUSTOMERS
    assert result.leaked_pinned == 0


def test_scram_is_salted_and_md5_is_computable_from_the_user_name(result):
    assert result.scram_algorithm == "SCRAM-SHA-256$4096"
    assert result.scram_new_salt_each_time is True
    assert result.md5_is_offline_hash is True
    assert result.md5_same_each_time is True


def test_the_lesson_roles_are_gone_after_the_run(postgres, result):
    assert result.roles_left == 0
    with psycopg.connect(postgres.url) as conn:
        left = conn.execute(
            "SELECT count(*) FROM pg_roles WHERE starts_with(rolname, %s)", (lesson.PREFIX + "_",)
        )
        assert left.fetchone()[0] == 0


def test_the_roles_are_dropped_even_when_the_lesson_fails(postgres, monkeypatch):
    def fail(*_):
        raise RuntimeError("a lesson step failed")

    monkeypatch.setattr(lesson, "new_table_readable", fail)
    with psycopg.connect(postgres.url) as admin, pytest.raises(RuntimeError):
        lesson.run(admin, postgres.url)
    with psycopg.connect(postgres.url) as conn:
        left = conn.execute(
            "SELECT count(*) FROM pg_roles WHERE starts_with(rolname, %s)", (lesson.PREFIX + "_",)
        )
        assert left.fetchone()[0] == 0


def test_a_second_run_gives_the_same_facts(postgres, result):
    with psycopg.connect(postgres.url) as admin:
        again = lesson.run(admin, postgres.url)
    assert again == result

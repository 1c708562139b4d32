import psycopg
import pytest

from security import row_level_security as lesson

REFUSED = psycopg.errors.InsufficientPrivilege.sqlstate


@pytest.fixture(scope="module")
def result(postgres):
    with psycopg.connect(postgres.url) as admin:
        return lesson.run(admin, postgres.url)


def test_each_login_sees_what_its_policies_allow_and_no_more(result):
    assert result.seen == result.expected
    assert 0 < result.seen["alice"] < result.total_rows // lesson.N_TENANTS
    assert result.unset_setting_sees == 0


def test_with_check_refuses_rows_written_for_another_tenant(result):
    assert result.insert_other_tenant == REFUSED
    assert result.move_to_other_tenant == REFUSED


def test_using_hides_another_tenants_rows_from_an_update(result):
    assert result.update_other_tenant_rows == 0


@pytest.mark.parametrize("who", ["table owner", "BYPASSRLS role", "view owned by a superuser"])
def test_each_leak_shows_every_row_before_its_fix_and_only_the_allowed_ones_after(result, postgres, who):
    leak = result.leaks[who]
    assert leak.before == result.total_rows
    if leak.after is None:  # a server older than 15 has no security_invoker
        with psycopg.connect(postgres.url) as conn:
            assert conn.info.server_version < 150000
    else:
        assert leak.after == leak.expected
        assert 0 < leak.after < result.total_rows


def test_a_superuser_sees_every_row_even_with_force(result):
    assert result.superuser_sees == result.total_rows


def test_the_plan_shows_the_policy_predicate(result):
    assert result.plan_shows_policy
    assert result.holds  # what main() exits on


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

    monkeypatch.setattr(lesson, "view_leak", fail)
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

import psycopg
import pytest
from psycopg import sql

from security import audit_trail as lesson

REFUSED = psycopg.errors.InsufficientPrivilege.sqlstate
APP = lesson.role("app")
APP_ROWS = lesson.N_ACCOUNTS + lesson.N_UPDATED + lesson.N_DELETED


@pytest.fixture(scope="module")
def result(postgres):
    with psycopg.connect(postgres.url) as admin:
        return lesson.run(admin, postgres.url)


def lesson_roles(url: str) -> int:
    with psycopg.connect(url) as conn:
        found = conn.execute(
            "SELECT count(*) FROM pg_roles WHERE starts_with(rolname, %s)", (lesson.PREFIX + "_",)
        )
        return found.fetchone()[0]


def test_every_operation_of_the_app_is_recorded_with_its_old_and_new_rows(result):
    assert result.by_op == {
        "INSERT": (lesson.N_ACCOUNTS, 0, lesson.N_ACCOUNTS),
        "UPDATE": (lesson.N_UPDATED, lesson.N_UPDATED, lesson.N_UPDATED),
        "DELETE": (lesson.N_DELETED, lesson.N_DELETED, 0),
    }
    assert (APP, lesson.APP_USER) in result.who  # the login role and the app.user of the session


def test_the_trail_on_the_server_holds_the_app_rows_and_old_and_new_values(postgres, result):
    with psycopg.connect(postgres.url) as conn:
        rows = conn.execute(
            sql.SQL(
                "SELECT op, (old_row->>'balance')::numeric, (new_row->>'balance')::numeric FROM {}"
                " WHERE db_user = %s AND app_user = %s AND (old_row->>'id')::int = 1 ORDER BY id"
            ).format(sql.Identifier(lesson.SCHEMA, "audit_log")),
            (APP, lesson.APP_USER),
        ).fetchall()
    assert rows == [("UPDATE", 107, 132)]  # account 1: 100 + 7, then + 25
    assert result.chain_rows == lesson.N_OLD + APP_ROWS


def test_the_app_role_cannot_update_delete_or_forge_its_audit_rows(result):
    assert result.refused == dict.fromkeys(lesson.REFUSALS, REFUSED)


def test_the_chain_verifies_as_written(result):
    assert result.broken_before == []


def test_an_edited_row_is_the_only_one_reported(result):
    assert result.broken_after_edit == [result.tampered_id]
    assert result.tampered_id < result.chain_rows  # rows after it still chain to the stored hashes


def test_recomputing_the_edited_rows_hash_moves_the_break_to_the_next_row(result):
    assert result.broken_after_rehash == [result.tampered_id + 1]


def test_the_purge_removes_the_old_rows_and_its_anchor_restores_verification(postgres, result):
    assert result.purged == lesson.N_OLD
    assert result.broken_from_genesis == [lesson.N_OLD + 1]  # the first row left
    assert result.broken_from_anchor == []
    with psycopg.connect(postgres.url) as conn:  # the trail left on the server, verified again
        anchor = conn.execute(
            sql.SQL("SELECT last_hash FROM {}").format(sql.Identifier(lesson.SCHEMA, "anchors"))
        ).fetchone()[0]
        assert lesson.broken_links(conn, anchor) == []


def test_the_lesson_roles_are_gone(postgres, result):
    assert result.roles_left == 0
    assert lesson_roles(postgres.url) == 0
    assert result.holds  # what main() exits on


def test_the_roles_are_dropped_even_when_the_lesson_fails(postgres, monkeypatch):
    def fail(*_, **__):
        raise RuntimeError("a lesson step failed")

    monkeypatch.setattr(lesson, "tamper", fail)
    with psycopg.connect(postgres.url) as admin, pytest.raises(RuntimeError):
        lesson.run(admin, postgres.url)
    assert lesson_roles(postgres.url) == 0


def test_a_second_run_gives_the_same_facts(postgres, result):
    with psycopg.connect(postgres.url) as admin:
        again = lesson.run(admin, postgres.url)
    assert again == result

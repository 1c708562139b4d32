import psycopg
import pytest

from relational import transactions_isolation as lesson
from relational.transactions_isolation import BY_ERROR, BY_SNAPSHOT, HAPPENED


@pytest.fixture(scope="module")
def result(postgres):
    with psycopg.connect(postgres.url) as a, psycopg.connect(postgres.url) as b:
        return lesson.run(a, b)


def test_postgresql_isolation_matrix(result):
    assert result.verdicts() == {
        "lost update": {"READ COMMITTED": HAPPENED, "REPEATABLE READ": BY_ERROR, "SERIALIZABLE": BY_ERROR},
        "non-repeatable read": {
            "READ COMMITTED": HAPPENED,
            "REPEATABLE READ": BY_SNAPSHOT,
            "SERIALIZABLE": BY_SNAPSHOT,
        },
        "phantom": {"READ COMMITTED": HAPPENED, "REPEATABLE READ": BY_SNAPSHOT, "SERIALIZABLE": BY_SNAPSHOT},
        "write skew": {"READ COMMITTED": HAPPENED, "REPEATABLE READ": HAPPENED, "SERIALIZABLE": BY_ERROR},
    }


def test_every_refusal_is_a_serialization_failure_at_the_step_that_conflicts(result):
    refusals = {
        (anomaly, level): (outcome.error, outcome.sqlstate, outcome.failed_at.split(" ")[1])
        for anomaly, row in result.matrix.items()
        for level, outcome in row.items()
        if outcome.verdict == BY_ERROR
    }
    assert refusals == {
        ("lost update", "REPEATABLE READ"): ("SerializationFailure", "40001", "UPDATE"),
        ("lost update", "SERIALIZABLE"): ("SerializationFailure", "40001", "UPDATE"),
        ("write skew", "SERIALIZABLE"): ("SerializationFailure", "40001", "COMMIT"),
    }


def test_what_the_sessions_saw_at_read_committed(result):
    read_committed = {anomaly: row["READ COMMITTED"].seen for anomaly, row in result.matrix.items()}
    assert read_committed == {
        "lost update": "balance 120, not 130",
        "non-repeatable read": "read 100, then 150",
        "phantom": "counted 2, then 3",
        "write skew": "doctors on call: 0",
    }
    assert result.matrix["write skew"]["SERIALIZABLE"].seen == "doctors on call: 1"


def test_read_uncommitted_never_shows_uncommitted_rows(result):
    assert result.dirty_read_at_read_uncommitted is False


def test_the_retry_loop_succeeds_on_its_second_attempt(result):
    assert result.retries == 1
    assert result.attempts_seen == ["attempt 1: read 100", "attempt 2: read 120"]
    assert result.balance_after_retry == 130


def test_select_for_update_makes_the_second_writer_wait_and_nothing_is_lost(result):
    fix = result.for_update
    assert fix.b_waited_for_a
    assert fix.b_read == 110
    assert fix.final_balance == 130


def test_main_checks_the_headline(result):
    assert lesson.holds(result)


def test_a_second_run_gives_the_same_facts(postgres, result):
    with psycopg.connect(postgres.url) as a, psycopg.connect(postgres.url) as b:
        again = lesson.run(a, b)
    assert again == result

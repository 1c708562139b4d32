import dataclasses
import time

import psycopg
import pytest

from migration import feature_flag_cutover as lesson


@pytest.fixture(scope="module")
def result(postgres):
    with psycopg.connect(postgres.url) as conn:
        return lesson.run(conn, postgres.url)


def verdicts(cut_over):
    return {check.name: check.verdict for check in cut_over.checks}


@pytest.mark.parametrize("step", ["good", "bad"])
def test_flipping_the_flag_back_loses_no_acknowledged_write(result, step):
    cut_over = getattr(result, step)
    assert cut_over.acknowledged > 0
    assert cut_over.lost == 0
    assert cut_over.via_dual_write > 0  # written while the flag pointed at the new store
    assert cut_over.failed_after_flip_back == 0


def test_the_checklist_says_roll_back_when_the_new_code_path_fails_on_a_constraint(result):
    bad = result.bad
    assert bad.error_rate > lesson.MAX_ERROR_RATE
    assert bad.drift > lesson.MAX_DRIFT  # shadow writes the new store refused
    assert verdicts(bad)["write error rate"] == verdicts(bad)["row drift, old/new"] == "exceeded"
    assert bad.decision == "roll back"


def test_the_checklist_says_go_for_the_fixed_step(result):
    good = result.good
    assert good.error_rate == 0
    assert good.drift == 0
    assert verdicts(good)["write error rate"] == verdicts(good)["row drift, old/new"] == "ok"
    assert good.decision == "go"
    assert result.holds  # what main() exits on


def test_replication_lag_is_not_applicable_without_a_replica_and_measured_with_one(result):
    # The session's replica may be attached, still copying the primary, or not started yet.
    for cut_over in (result.good, result.bad):
        lag = next(check for check in cut_over.checks if check.name == "replication lag")
        if cut_over.replicas == 0:
            assert (lag.measured, lag.verdict) == ("no replica attached", "not applicable")
        elif lag.verdict == "not applicable":
            assert lag.measured == "replica attached, replay position not reported"
        else:
            assert lag.verdict == "ok" and lag.measured.endswith("bytes")


def test_replication_lag_is_read_from_pg_stat_replication(postgres, postgres_replica):
    deadline = time.monotonic() + 30
    with psycopg.connect(postgres.url) as conn:
        replicas, behind = lesson.lag(conn)
        while behind is None and time.monotonic() < deadline:  # until the standby reports a position
            time.sleep(0.2)
            replicas, behind = lesson.lag(conn)
    assert replicas >= 1
    assert behind is not None and behind >= 0


def test_a_second_run_gives_the_same_facts(postgres, result):
    with psycopg.connect(postgres.url) as conn:
        again = lesson.run(conn, postgres.url)

    def facts(cut_over):  # all but the lag verdict: whether a replica reports yet is the session's
        return dataclasses.replace(
            cut_over, checks=[c for c in cut_over.checks if c.name != "replication lag"]
        )

    assert (facts(again.good), facts(again.bad)) == (facts(result.good), facts(result.bad))
    assert "exceeded" not in (verdicts(again.good)["replication lag"], verdicts(again.bad)["replication lag"])

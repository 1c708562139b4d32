"""recovery/mongodb_replica_set.py: what can be checked without a replica set runs everywhere; the
elections, lost writes and rollbacks need a real one (marked real_mongodb, like every test that needs
what the local stand-in lacks) of three members: `make up TOPIC=cluster` or MONGO_RS_URL."""

from datetime import datetime, timedelta

import pytest

from common.settings import UNAVAILABLE, BadSetting
from common.workload import Attempt
from recovery import mongodb_replica_set as lesson
from servers.local.base import free_port
from tests.engine_pool import run_script

LESSON = "recovery/mongodb_replica_set.py"
_ran: dict = {}


@pytest.fixture
def result():
    """The lesson, run once for the module. Function-scoped on purpose: conftest's real_mongodb check
    (an autouse fixture) comes first, so the stand-in skips with the suite's usual reason."""
    if "result" not in _ran:
        url = lesson.rs_url()
        problem = lesson.replica_set_problem(url)
        try:
            _ran["result"] = lesson.needs(problem) if problem else lesson.run(url)
        except Exception as failed:  # kept: each test reports it, none runs the lesson again
            _ran["result"] = failed
    if isinstance(_ran["result"], Exception):
        raise _ran["result"]
    if isinstance(_ran["result"], str):
        pytest.skip(_ran["result"])  # "... needs a real MongoDB replica set ...": no three members here
    return _ran["result"]


# --- without a server ----------------------------------------------------------------------------


def test_the_default_address_is_the_cluster_profile_three_members_by_name():
    parsed = lesson.uri_parser.parse_uri(lesson.RS_DEFAULT)
    assert parsed["nodelist"] == [("127.0.0.1", 27018), ("127.0.0.1", 27019), ("127.0.0.1", 27020)]
    assert parsed["options"]["replicaSet"] == "cluster"


def test_the_set_address_discovers_members_even_when_given_a_direct_one():
    url = lesson.replica_set_url(
        "mongodb://app:s%40cret@127.0.0.1:27018/shop?directConnection=true&w=1", "rs9"
    )
    parsed = lesson.uri_parser.parse_uri(url)
    assert parsed["options"]["replicaSet"] == "rs9"
    assert "directConnection" not in parsed["options"]
    assert (parsed["username"], parsed["password"], parsed["database"]) == ("app", "s@cret", "shop")
    assert parsed["options"]["w"] == 1


def test_a_member_address_is_direct_and_keeps_credentials_and_options():
    url = lesson.member_url("mongodb://app:pw@a:1,b:2/?replicaSet=rs9&authSource=admin", "b:2")
    parsed = lesson.uri_parser.parse_uri(url)
    assert parsed["nodelist"] == [("b", 2)]
    assert parsed["options"]["directConnection"] is True
    assert "replicaSet" not in parsed["options"]
    assert (parsed["username"], parsed["options"]["authSource"]) == ("app", "admin")


def test_a_bad_setting_names_the_variable_and_hides_the_password(monkeypatch):
    monkeypatch.setenv(lesson.RS_VARIABLE, "mongodb://app:secret@host:99999/")
    with pytest.raises(BadSetting) as bad:
        lesson.rs_url()
    assert str(bad.value).startswith(f"{lesson.RS_VARIABLE}=") and "secret" not in str(bad.value)


def test_members_come_from_replsetgetstatus_with_their_lag():
    now = datetime(2025, 1, 1, 12, 0, 0)
    status = {"members": [
        {"name": "a:1", "health": 1, "stateStr": "PRIMARY", "optimeDate": now},
        {"name": "b:2", "health": 1, "stateStr": "SECONDARY", "optimeDate": now - timedelta(seconds=3)},
        {"name": "c:3", "health": 0, "stateStr": "(not reachable/healthy)", "optimeDate": datetime(1970, 1, 1)},
    ]}  # fmt: skip
    assert lesson.members_of(status) == [
        lesson.Member("a:1", "PRIMARY", 0.0),
        lesson.Member("b:2", "SECONDARY", 3.0),
        lesson.Member("c:3", "(not reachable/healthy)", None),
    ]


def test_lost_writes_are_acknowledged_ids_the_new_primary_lacks_beside_the_rollback_files():
    acknowledged = ["w-0", "w-1", "w-2", "w-3", "w-4"]
    on_new_primary = {"w-0", "w-1", "w-2"}
    rolled_back = {"w-3", "w-5"}  # w-4 was never journaled; w-5 was written but never acknowledged
    lost = [key for key in acknowledged if key not in on_new_primary]  # what Workload.lost returns
    assert lesson.tally(lost, rolled_back) == lesson.Tally(lost=2, lost_in_rollback_files=1, rolled_back=2)
    assert lesson.tally([], {"w-5"}) == lesson.Tally(0, 0, 1)  # w:majority: a rollback, nothing lost


def test_seconds_without_writes_is_the_longest_wait_after_the_change():
    def ok(start, latency):
        return Attempt("write", start, latency, None)

    attempts = [
        ok(0.0, 0.1),
        ok(0.2, 0.1),
        Attempt("write", 1.0, 4.0, "AutoReconnect: x"),
        ok(1.1, 5.0),
        ok(6.2, 0.1),
    ]
    # The change at 1.0 s; the next success ends at 6.1 s, then 6.3 s: 5.1 s without a write.
    assert lesson.seconds_without_writes(attempts, 1.0) == pytest.approx(5.1)
    assert lesson.seconds_without_writes(attempts[:2], 1.0) == 0.0  # nothing succeeded after it


def test_a_member_container_is_found_by_the_port_its_mongod_announces():
    assert (
        lesson.port_argument(["mongod", "--replSet", "cluster", "--port", "27019", "--bind_ip_all"]) == 27019
    )
    assert lesson.port_argument(["mongod", "--port=27020"]) == 27020
    assert lesson.port_argument(["mongod", "--replSet", "rs0"]) is None


def test_the_headline_needs_the_unfrozen_secondary_to_win_and_nothing_lost():
    def setup(name, new, lost, acknowledged=100):
        return lesson.Setup(name, "", "a:1", new, "", acknowledged, 0, 0, lost, 0.0, 0.0)

    result = lesson.ReplicaSetResult(
        "rs", "8.0", [], 2, 2000, step_down_target="b:2", crash_skipped="no Docker"
    )
    result.setups[lesson.STEP_DOWN] = setup(lesson.STEP_DOWN, "b:2", 0)
    assert result.holds
    result.setups[lesson.STEP_DOWN] = setup(lesson.STEP_DOWN, "c:3", 0)
    assert not result.holds  # the frozen secondary must not win
    result.setups[lesson.STEP_DOWN] = setup(lesson.STEP_DOWN, "b:2", 0)
    result.crash_skipped, result.local_read, result.majority_read = "", 80, 30
    result.setups[lesson.W1] = setup(lesson.W1, "c:3", 50)
    result.setups[lesson.MAJORITY] = setup(lesson.MAJORITY, "a:1", 0)
    assert result.holds
    result.setups[lesson.MAJORITY] = setup(lesson.MAJORITY, "a:1", 1)
    assert not result.holds  # w:majority must lose nothing


# --- main(): the one line where there is no replica set --------------------------------------------


@pytest.mark.parametrize("where", ["the session's MongoDB", "a port where nothing listens"])
def test_main_says_it_needs_a_replica_set_in_one_line_and_exits_2(mongodb, where):
    # The session's MongoDB is the stand-in (no replication) or a one-member set: neither will do.
    nothing = f"mongodb://127.0.0.1:{free_port()}/?replicaSet=x"
    rs = mongodb.url if where == "the session's MongoDB" else nothing
    if lesson.replica_set_problem(rs) is None:
        pytest.skip("MONGO_URL is itself a replica set of three members: the lesson would run")
    finished = run_script(LESSON, {**mongodb.env, lesson.RS_VARIABLE: rs}, timeout=120)
    assert finished.returncode == UNAVAILABLE, finished.stdout[-2000:] + finished.stderr[-2000:]
    lines = finished.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in finished.stderr, finished.stderr
    assert "needs a real MongoDB replica set" in lines[0] and "make up TOPIC=cluster" in lines[0]


def test_main_with_a_bad_replica_set_setting_says_so_in_one_line(mongodb):
    finished = run_script(LESSON, {**mongodb.env, lesson.RS_VARIABLE: "http://127.0.0.1:27018/"}, timeout=120)
    assert finished.returncode == UNAVAILABLE
    assert (
        finished.stderr.strip().startswith(f"{lesson.RS_VARIABLE}=")
        and len(finished.stderr.splitlines()) == 1
    )


# --- with a real replica set of three members -------------------------------------------------------


@pytest.mark.real_mongodb
def test_the_set_has_three_members_and_one_primary(result):
    assert len(result.members) >= 3
    assert [m.state for m in result.members].count("PRIMARY") == 1
    assert result.votes_for_majority == len(result.members) // 2 + 1


@pytest.mark.real_mongodb
def test_a_step_down_hands_over_to_the_secondary_left_unfrozen(result):
    down = result.setups[lesson.STEP_DOWN]
    assert down.new_primary == result.step_down_target != down.old_primary
    # Handed off (stepUpRequestSkipDryRun) as a rule; electionTimeout when the primary offered it to a
    # frozen secondary that was caught up first (a freeze is not visible to the primary).
    assert down.election_reason in ("stepUpRequestSkipDryRun", "electionTimeout")


@pytest.mark.real_mongodb
def test_retryable_writes_carry_the_writer_across_the_step_down(result):
    down = result.setups[lesson.STEP_DOWN]
    assert down.acknowledged >= lesson.WARM + lesson.AFTER
    assert down.failed == 0 and down.lost == 0


def crashed(result) -> None:
    if result.crash_skipped:
        pytest.skip(f"the crashes need the compose `cluster` containers: {result.crash_skipped}")


@pytest.mark.real_mongodb
def test_w1_writes_acknowledged_by_a_cut_off_primary_are_lost_to_the_rollback(result):
    crashed(result)
    w1 = result.setups[lesson.W1]
    assert w1.new_primary != w1.old_primary
    assert w1.lost > 0
    assert 0 < w1.rollback.lost_in_rollback_files <= w1.lost  # saved under rollback/, not in the set


@pytest.mark.real_mongodb
def test_a_local_read_on_the_cut_off_primary_sees_what_a_majority_read_does_not(result):
    crashed(result)
    assert result.local_read > result.majority_read


@pytest.mark.real_mongodb
def test_w_majority_loses_no_acknowledged_write_to_the_same_crash(result):
    crashed(result)
    majority = result.setups[lesson.MAJORITY]
    assert majority.new_primary != majority.old_primary
    assert majority.acknowledged >= lesson.WARM + lesson.AFTER
    assert majority.lost == 0


@pytest.mark.real_mongodb
def test_the_headline_holds(result):
    assert result.holds  # what main() exits on

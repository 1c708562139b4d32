"""The ring's counts: successes per consistency level and nodes down, hints, read repair, lost updates.

No second-run test: a run starts a three-node ring and restarts two of its nodes (about a minute),
and the script smoke test runs the lesson twice anyway.
"""

import pytest

from common.settings import servers_mode
from recovery import cassandra_replication as lesson
from servers.throwaway import NoThrowaway

EVERY = lesson.ATTEMPTS


@pytest.fixture(scope="module")
def result():
    try:
        return lesson.run()
    except NoThrowaway as missing:  # a ring of its own needs the local Cassandra, even where Docker serves
        if servers_mode() == "local":
            pytest.fail(str(missing))
        pytest.skip(str(missing))


def test_the_ring_has_two_nodes_in_dc1_and_one_in_dc2(result):
    assert result.datacenters == {"127.0.0.1": "dc1", "127.0.0.2": "dc1", "127.0.0.3": "dc2"}


def test_with_all_three_up_every_level_succeeds(result):
    assert result.succeeded[0] == {label: EVERY for label, *_ in lesson.CELLS}


def test_quorum_succeeds_with_one_node_down_and_fails_with_two(result):
    for operation in ("write", "read"):
        assert result.succeeded[1][f"QUORUM {operation}"] == EVERY
        assert result.succeeded[2][f"QUORUM {operation}"] == 0


def test_all_fails_with_one_node_down(result):
    for down in (1, 2):
        assert result.succeeded[down]["ALL write"] == result.succeeded[down]["ALL read"] == 0


def test_one_succeeds_with_two_nodes_down(result):
    assert result.succeeded[2]["ONE write"] == result.succeeded[2]["ONE read"] == EVERY


def test_local_quorum_succeeds_with_dc2_down_and_each_quorum_does_not(result):
    one_down = result.succeeded[1]  # node 3, the whole of dc2
    assert one_down["LOCAL_QUORUM write (NTS)"] == one_down["LOCAL_QUORUM read (NTS)"] == EVERY
    assert one_down["EACH_QUORUM write (NTS)"] == 0
    assert result.succeeded[2]["LOCAL_QUORUM write (NTS)"] == 0  # dc1 left with one of its two copies


def test_the_hinted_write_is_read_back_at_one_from_the_returned_node(result):
    assert result.hinted == lesson.WRITTEN


def test_the_node_without_hints_misses_the_write_until_a_quorum_read_repairs_it(result):
    assert result.repair_before is None
    assert result.repair_quorum == result.repair_after == lesson.WRITTEN


def test_concurrent_increments_lose_updates_without_lwt_and_none_with_it(result):
    assert result.lost_updates["plain"] == lesson.ROUNDS  # both clients read the same value each round
    assert result.lost_updates["LWT"] == 0


def test_last_write_wins_by_timestamp_not_by_arrival(result):
    assert result.skewed_write_lost


def test_no_acknowledged_write_is_lost_at_any_level(result):
    assert result.lost == {"ONE": 0, "QUORUM": 0, "ALL": 0}
    assert all(setup.lost == 0 for setup in result.setups)


def test_the_writers_saw_what_their_levels_promise(result):
    setups = {setup.name: setup for setup in result.setups}
    assert setups["ALL, 1 of 3 down"].acknowledged == 0
    assert setups["QUORUM, 1 of 3 down"].acknowledged > 0
    assert setups["ONE, 2 of 3 down"].acknowledged > 0


def test_the_ring_s_memory_is_measured_at_the_end(result):
    assert result.resident_bytes > 0  # local nodes, all three up: a figure of recovery/README.md


def test_the_headline_holds(result):
    assert result.holds  # what main() exits on

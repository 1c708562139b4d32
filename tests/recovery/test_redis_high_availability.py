"""The lesson's failovers, counted: promotions, reconnections, lost writes where Redis promises none.

No second-run test: each run starts 30 Redis processes and five failovers (about 15 s), and the
counts it could compare (lost writes under asynchronous replication) are not meant to repeat.
"""

import shutil

import pytest

from recovery import redis_high_availability as lesson

SENTINEL = [drill.name for drill in lesson.SENTINEL_DRILLS]
CLUSTER_CLI = shutil.which("redis-cli") is not None
needs_cli = pytest.mark.skipif(not CLUSTER_CLI, reason="redis-cli (Debian: redis-tools) creates the cluster")


@pytest.fixture(scope="module")
def result(redis):
    return lesson.run(lesson.shared_server_note(redis.url))


@pytest.mark.parametrize("name", SENTINEL)
def test_sentinel_moves_the_primary_to_a_replica(result, name):
    failover = result.failovers[name]
    assert failover.new_primary not in (0, failover.old_primary)


def test_sentinel_promotes_the_preferred_replica_though_its_link_was_down(result):
    failover = result.failovers[lesson.LAGGING]
    assert failover.new_primary == failover.must_promote


@pytest.mark.parametrize("name", SENTINEL)
def test_every_writer_that_can_be_satisfied_finds_the_new_primary_and_writes_again(result, name):
    waiting_for_two = {lesson.KILLED, lesson.LAGGING}  # one replica left after a kill: WAIT 2 cannot be met
    for setup in result.failovers[name].setups:
        if setup.writes == "SET + WAIT 2" and name in waiting_for_two:
            assert setup.writes_after_switch == 0
        else:
            assert setup.writes_after_switch > 0, setup.writes


@pytest.mark.parametrize("name", [lesson.KILLED, lesson.LAGGING, lesson.FROZEN])
def test_waiting_for_every_replica_loses_no_acknowledged_write(result, name):
    setup = result.setup(name, "SET + WAIT 2")
    assert setup.acknowledged >= lesson.WARM
    assert setup.lost == 0


def test_wait_1_confirmed_writes_are_lost_when_the_lagging_preferred_replica_is_promoted(result):
    for writes in ("SET", "SET + WAIT 1"):
        setup = result.setup(lesson.LAGGING, writes)
        assert 0 < setup.lost < setup.acknowledged, writes


def test_a_resumed_old_primary_acknowledges_writes_the_failover_discards(result):
    split_brain = result.setup(lesson.FROZEN, "SET")
    assert split_brain.lost > 0
    assert "NOREPLICAS" not in split_brain.errors


def test_min_replicas_to_write_makes_the_resumed_primary_refuse_writes(result):
    refused = result.setup(lesson.FROZEN_MIN, "SET")
    assert refused.errors.get("NOREPLICAS", 0) > 0
    assert refused.lost < result.setup(lesson.FROZEN, "SET").lost


@needs_cli
def test_the_cluster_spreads_slots_and_keys_over_three_primaries(result):
    assert sum(slots for slots, _ in result.shards) == 16_384
    assert sum(keys for _, keys in result.shards) == lesson.SPREAD
    assert len(result.shards) == 3
    assert min(keys for _, keys in result.shards) > 0


@needs_cli
def test_a_hash_tag_decides_the_slot_and_two_slots_in_one_command_are_refused(result):
    slots = result.key_slots
    assert slots["{user:42}:cart"] == slots["user:42"] != slots["user:43"]
    assert result.crossslot_refused


@needs_cli
def test_a_plain_client_gets_moved_and_ask_and_the_cluster_client_follows_both(result):
    assert result.moved.startswith("MOVED ")
    assert result.ask.startswith("ASK ")
    assert result.followed == 11


@needs_cli
def test_the_cluster_promotes_the_killed_primarys_replica_and_the_client_writes_again(result):
    failover = result.failovers[lesson.CLUSTER]
    assert failover.new_primary == failover.must_promote != failover.old_primary
    assert all(setup.writes_after_switch > 0 for setup in failover.setups)


@needs_cli
def test_wait_1_loses_nothing_in_a_cluster_shard_whose_only_replica_is_promoted(result):
    setup = result.setup(lesson.CLUSTER, "SET + WAIT 1")
    assert setup.acknowledged >= lesson.WARM
    assert setup.lost == 0


def test_the_cluster_part_runs_where_redis_cli_is_installed(result):
    assert (lesson.CLUSTER in result.failovers) == CLUSTER_CLI
    assert bool(result.no_cluster) != CLUSTER_CLI


def test_every_topology_s_memory_is_measured_before_its_fault(result):
    assert all(failover.resident_bytes > 0 for failover in result.failovers.values())  # local nodes


def test_the_headline_holds(result):
    assert result.holds  # what main() exits on

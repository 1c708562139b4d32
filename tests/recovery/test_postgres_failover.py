import pytest

from common.settings import servers_mode
from recovery import postgres_failover as lesson
from servers.local.pg_auto_failover import PgAutoctlServer
from servers.throwaway import NoThrowaway

EVERY = [lesson.ASYNC, lesson.SYNCHRONOUS, lesson.HA]
SYNCHRONOUS = [lesson.SYNCHRONOUS, lesson.HA]


@pytest.fixture(scope="module")
def result():
    try:
        return lesson.run()
    except NoThrowaway as missing:  # nodes of its own need the local binaries, even where Docker serves
        if servers_mode() == "local":
            pytest.fail(str(missing))
        pytest.skip(str(missing))


@pytest.fixture(params=EVERY)
def setup(request, result):
    if request.param == lesson.HA and not PgAutoctlServer.installed():
        pytest.skip("pg_auto_failover is not installed (pg-auto-failover-cli, postgresql-15-auto-failover)")
    return result.setups[request.param]


@pytest.mark.parametrize("name", SYNCHRONOUS)
def test_synchronous_replication_loses_no_acknowledged_write(result, name):
    if name == lesson.HA and not PgAutoctlServer.installed():
        pytest.skip("pg_auto_failover is not installed")
    synchronous = result.setups[name]
    assert synchronous.sync_state in ("sync", "quorum")  # the replica had to confirm every commit
    assert synchronous.acknowledged >= lesson.WARM_WRITES
    assert synchronous.lost == 0


def test_asynchronous_losses_are_counted_whatever_they_are(result):
    asynchronous = result.setups[lesson.ASYNC]
    assert asynchronous.sync_state == "async"
    assert asynchronous.acknowledged >= lesson.WARM_WRITES
    assert 0 <= asynchronous.lost <= asynchronous.acknowledged  # more than 0 depends on the instant


def test_every_lost_write_is_among_the_commits_the_rewind_discarded(setup):
    # A lost acknowledged write was committed (fsync on) on the old primary past the fork point.
    assert setup.lost <= setup.discarded


def test_the_replica_was_promoted(setup):
    assert setup.new_primary_in_recovery is False


def test_the_client_reconnected_through_the_multi_host_url_and_wrote_again(setup):
    assert setup.writes_after_failover > 0
    assert setup.landed_on_new_primary == setup.writes_after_failover


def test_the_old_primary_rejoined_as_a_replica_with_the_new_primarys_rows(setup):
    assert setup.rejoined_in_recovery is True
    new, rejoined = setup.rows
    assert new == rejoined
    assert new >= setup.acknowledged - setup.lost


def test_pg_auto_failover_runs_where_it_is_installed(result):
    assert (lesson.HA in result.setups) == PgAutoctlServer.installed()
    assert bool(result.ha_missing) != PgAutoctlServer.installed()


def test_the_topology_s_memory_is_measured_under_the_writers(setup):
    assert setup.resident_bytes > 0  # local nodes, every one up: a figure of recovery/README.md


def test_the_headline_fact_holds(result):
    assert result.holds  # what main() exits on

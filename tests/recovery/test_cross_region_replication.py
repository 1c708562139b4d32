import re

import pytest

from common.settings import servers_mode
from recovery import cross_region_replication as lesson
from servers.local.toxiproxy import ToxiproxyServer
from servers.throwaway import NoThrowaway

ASYNC = [setup.name for setup in lesson.SETUPS if setup.kind == "async"]
SAFE = {"sync": "sync, 50 ms", "planned": "planned, 200 ms"}  # over Toxiproxy; at 0 ms on a direct link


@pytest.fixture(scope="module")
def result():
    try:
        return lesson.run()
    except NoThrowaway as missing:  # nodes of its own need the local binaries, even where Docker serves
        if servers_mode() == "local":
            pytest.fail(str(missing))
        pytest.skip(str(missing))


def loss(result, name):
    if not result.shaped:  # a direct link: every setup ran at 0 ms
        name = name.rsplit(",", 1)[0] + ", 0 ms"
    return result.losses[name]


def test_the_delays_ran_through_toxiproxy_where_it_is_built(result):
    if not ToxiproxyServer.installed():
        pytest.skip("Toxiproxy is not built here: bash servers/install/toxiproxy.sh")
    assert result.shaped
    assert list(result.losses) == [setup.name for setup in lesson.SETUPS]


@pytest.mark.parametrize("name", ASYNC + list(SAFE.values()))
def test_rows_lost_are_those_committed_in_region_1_and_missing_in_region_2(result, name):
    x = loss(result, name)
    assert x.target_within_source  # region 2 never holds a row region 1 lost in its crash
    assert x.lost_rows == x.source_committed - x.target_present >= 0
    assert x.target_is_prefix  # what is missing is the newest writes, never a hole
    assert x.lost_acknowledged <= x.lost_rows


@pytest.mark.parametrize("name", ASYNC + list(SAFE.values()))
def test_the_client_noticed_and_then_wrote_to_region_2(result, name):
    x = loss(result, name)
    assert x.failed_during_cutover >= 1
    assert x.written_after_cutover >= lesson.CUTOVER_WRITES


def test_synchronous_replication_loses_no_acknowledged_write(result):
    x = loss(result, SAFE["sync"])
    assert x.lost_acknowledged == 0
    assert x.lost_rows <= 1  # one client: at most the commit that was waiting for region 2


def test_a_planned_switchover_loses_nothing(result):
    x = loss(result, SAFE["planned"])
    assert x.lost_rows == x.lost_acknowledged == 0
    assert x.target_present == x.source_committed


def test_the_same_key_in_both_regions_stops_replication_and_counts_one_error(result):
    c = result.conflict
    assert c.stopped
    assert c.apply_errors == 1  # disable_on_error: one failure, no retry loop
    assert c.behind_while_stopped == 5  # the transaction's innocent row and the 4 written after it


def test_the_log_names_the_error_and_the_failed_transaction(result):
    c = result.conflict
    assert "duplicate key value violates unique constraint" in c.error or "insert_exists" in c.error
    assert re.fullmatch(r"[0-9A-F]+/[0-9A-F]+", c.finish_lsn)


def test_skip_resumes_replication_and_drops_the_whole_transaction(result):
    c = result.conflict
    assert c.resumed
    assert c.skipped_rows == 1  # the innocent row went with the conflicting one
    assert c.differs_after_skip  # and region 2 kept its own version of the key


def test_after_the_repair_both_regions_hold_the_same_rows(result):
    c = result.conflict
    assert c.counts_after_repair == (6, 6)
    assert c.equal_after_repair


def test_every_node_s_memory_is_measured(result):
    assert result.memory and all(held > 0 for held in result.memory.values())  # local nodes


def test_the_headline_holds(result):
    assert result.holds  # what main() exits on

import pytest

from common.settings import servers_mode
from recovery import point_in_time_recovery as lesson
from servers.throwaway import NoThrowaway


@pytest.fixture(scope="module")
def result():
    try:
        return lesson.run()
    except NoThrowaway as missing:  # neither a local server nor Docker: it says which to install
        if servers_mode() in ("local", "docker"):
            pytest.fail(str(missing))
        pytest.skip(str(missing))


def rows(snapshot):
    return sum(entry[0] for entry in snapshot.values() if entry)


def test_the_workload_and_the_mistake_changed_what_the_tables_hold(result):
    assert rows(result.before_mistake) == rows(result.at_phase_one) + 2 * 2 * lesson.PHASE_TRANSACTIONS
    assert result.after_mistake["orders"] is None  # DROP TABLE
    assert result.after_mistake["accounts"][0] == result.before_mistake["accounts"][0]
    assert result.after_mistake["accounts"][1] != result.before_mistake["accounts"][1]  # UPDATE without WHERE
    assert result.after_mistake["payments"] == result.before_mistake["payments"]


@pytest.mark.parametrize("target", lesson.TARGETS)
def test_each_target_recovers_the_moment_before_the_mistake(result, target):
    recovered = result.recoveries[target]
    assert recovered.promoted, recovered.refusal
    assert recovered.tables == result.before_mistake
    assert recovered.segments_restored > 0  # the base backup holds no WAL: it came from the archive


def test_recovering_to_the_end_of_the_archive_replays_the_mistake(result):
    recovered = result.recoveries[lesson.TOO_FAR]
    assert recovered.promoted
    assert recovered.tables == result.after_mistake
    assert recovered.tables["orders"] is None


def test_a_target_beyond_a_missing_segment_is_refused_not_reached_silently(result):
    refused = result.recoveries[lesson.GAP_TARGET]
    assert not refused.promoted
    assert refused.tables == {}
    assert lesson.REFUSAL in refused.refusal
    assert "FATAL:" in refused.refusal


def test_without_a_target_recovery_promotes_at_the_gap_and_loses_what_follows(result):
    recovered = result.recoveries[lesson.GAP_NONE]
    assert recovered.promoted
    assert recovered.tables == result.at_phase_one
    # phases 2 and 3: one order and one payment per transaction, every one of them lost
    assert result.rows_lost_at_gap == 2 * 2 * lesson.PHASE_TRANSACTIONS
    assert recovered.segments_restored < result.recoveries[lesson.TOO_FAR].segments_restored


def test_rpo_figures_are_measured(result):
    rpo = result.rpo
    assert rpo.archive_timeout_s == lesson.ARCHIVE_TIMEOUT_S
    assert rpo.writes > 0
    assert 0 < rpo.typical_bytes_at_risk <= rpo.max_bytes_at_risk
    assert 0 < rpo.max_rows_at_risk <= rpo.writes
    assert rpo.segments_archived > 0  # archive_timeout switched segments under the load
    assert rpo.archive_growth_bytes >= rpo.segments_archived * 1024 * 1024


def test_the_wal_replayed_and_the_backup_are_measured(result):
    full = result.recoveries[lesson.TOO_FAR]
    assert full.wal_bytes > 0
    assert result.backup_bytes > 0


def test_the_headline_fact_holds(result):
    assert result.holds  # what main() exits on

import psycopg
import pytest

from monitoring import query_analysis as lesson


@pytest.fixture(scope="module")
def result(postgres):
    with psycopg.connect(postgres.url) as pg:
        return lesson.run(pg, postgres.url)


def test_the_server_preloads_pg_stat_statements(result):
    assert result.preloaded  # the suite's server does, as the compose file does: the ranking ran


def test_pg_stat_statements_counts_every_call_of_the_workload(result):
    expected = {label: per_round * lesson.ROUNDS for label, (_, per_round) in lesson.WORKLOAD.items()}
    assert result.calls == expected
    assert {s.label: s.calls for s in result.after} == expected


def test_the_bad_query_is_first_by_shared_blocks_before_the_fix_and_last_after(result):
    # Ranked by a count: total time would move with the machine's load.
    assert result.top("before") == lesson.BAD == result.before[0].label
    assert result.after[-1].label == lesson.BAD
    assert result.top("before", "mean_ms") == lesson.BAD
    assert result.share("after") < result.share("before")


def test_the_bad_query_touches_the_most_blocks_per_call_before_the_fix(result):
    bad = next(s for s in result.before if s.label == lesson.BAD)
    assert max(result.before, key=lambda s: s.blocks / s.calls) is bad


def test_only_the_lessons_own_statements_were_reset(result, postgres):
    assert result.entries_left_after_reset == 0
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        others = lesson.statements(
            conn,
            "SELECT count(*) FROM {schema}.pg_stat_statements WHERE strpos(query, %s) = 0",
            (lesson.SCHEMA + ".",),
        )[0][0]
    assert others > 0  # this test's own session, the suite's other lessons: still there


def test_auto_explain_shows_a_seq_scan_before_the_index_and_an_index_scan_after(result):
    assert result.plan_before.startswith("Query Text: SELECT id, name FROM query_analysis.customers")
    assert "Seq Scan on customers" in result.plan_before
    assert "Rows Removed by Filter" in result.plan_before
    assert "Index Scan using customers_lower_email" in result.plan_after
    assert "Seq Scan" not in result.plan_after


def test_a_second_run_gives_the_same_facts(result, postgres):
    with psycopg.connect(postgres.url) as pg:
        again = lesson.run(pg, postgres.url)
    assert again == result
    assert again.holds and result.holds  # what main() exits on

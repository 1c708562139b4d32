import psycopg
import pymysql
import pytest

from common.settings import mysql_params
from monitoring import statistics as lesson


@pytest.fixture(scope="module")
def result(postgres, mysql):
    with psycopg.connect(postgres.url) as pg, pymysql.connect(**mysql_params(mysql.url)) as my:
        return lesson.run(pg, my)


def test_stale_statistics_are_far_off_and_analyze_brings_them_close(result):
    assert result.stale.actual == lesson.N_ORDERS // 4
    assert result.stale.off_by > 1000  # the planner had never seen the status: about 1 row expected
    assert result.fresh.actual == result.stale.actual
    assert result.fresh.off_by < 1.5


def test_the_stale_estimate_picks_a_nested_loop_and_analyze_a_hash_join(result):
    assert result.join_stale == "Nested Loop"
    assert result.join_fresh in ("Hash Join", "Merge Join")  # one pass over each side


def test_autoanalyze_would_have_fired_and_analyze_resets_its_counter(result):
    threshold, changed = result.thresholds["autoanalyze: n_mod_since_analyze"]
    assert changed == lesson.N_ORDERS // 4  # the bulk change, counted by the server
    assert threshold == pytest.approx(50 + 0.1 * lesson.N_ORDERS, rel=0.05)  # the default settings
    assert changed > threshold
    assert result.mod_since_analyze_after == 0


def test_the_lessons_tables_have_autovacuum_off(postgres, result):
    with psycopg.connect(postgres.url) as conn:
        options = conn.execute(
            "SELECT c.relname, c.reloptions FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relkind = 'r'",
            (lesson.SCHEMA,),
        ).fetchall()
    assert {name for name, _ in options} == {"customers", "orders", "addresses"}
    assert all("autovacuum_enabled=false" in reloptions for _, reloptions in options)


def test_create_statistics_dependencies_fixes_the_correlated_where_at_least_10x(result):
    assert result.kinds["none"][lesson.RARE].off_by > 50  # independence: off by two orders of magnitude
    assert result.improvement("dependencies") >= 10
    assert result.kinds["dependencies"][lesson.RARE].off_by < 3


def test_create_statistics_ndistinct_fixes_the_group_count(result):
    assert result.kinds["none"][lesson.GROUPS].actual == 1000
    assert result.improvement("ndistinct", lesson.GROUPS) >= 10


def test_mcv_gets_the_common_pair_right(result):
    common = "City 000, Z0000"
    assert result.kinds["none"][common].off_by > 2
    assert result.kinds["mcv"][common].off_by < 1.2


def test_the_statistics_target_sizes_the_mcv_list_and_histogram(result):
    (mcv_10, bounds_10, _), (mcv_100, bounds_100, _) = result.targets[10], result.targets[100]
    assert 0 < mcv_10 <= 10 and bounds_10 == 11  # at most target entries, target + 1 bounds
    assert mcv_10 < mcv_100 <= 100 and bounds_100 == 101  # 100: the default target
    mcv, bounds, zip_estimate = result.targets[1000]
    assert (mcv, bounds) == (1000, 0)  # the whole table sampled: every one of the 1,000 zips is common
    assert zip_estimate.off_by == 1.0


def test_mysql_histogram_exists_and_moves_filtered_towards_the_truth(result):
    my = result.mysql
    assert my.is_mariadb == ("mariadb" in my.server.lower())
    assert my.histogram_exists
    assert my.truth == pytest.approx(0.1)
    assert abs(my.filtered_after - my.truth) < abs(my.filtered_before - my.truth)
    assert my.filtered_after == pytest.approx(my.truth, abs=1.0)


def test_a_second_run_gives_the_same_facts(result, postgres, mysql):
    with psycopg.connect(postgres.url) as pg, pymysql.connect(**mysql_params(mysql.url)) as my:
        again = lesson.run(pg, my)

    def facts(r):  # estimates come from random samples: what must repeat is the shape, not the digits
        return (
            r.join_stale,
            r.join_fresh,
            r.stale.actual,
            r.thresholds["autoanalyze: n_mod_since_analyze"][1],
            r.targets[1000][:2],
            (r.mysql.histogram_exists, r.mysql.truth),
            r.holds,
        )

    assert facts(again) == facts(result)
    assert again.holds  # what main() exits on

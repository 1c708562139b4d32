import psycopg
import pymysql
import pytest

from common.settings import mysql_params
from monitoring import index_maintenance as lesson


def run_lesson(postgres, mysql):
    with psycopg.connect(postgres.url) as pg, pymysql.connect(**mysql_params(mysql.url)) as my:
        return lesson.run(pg, postgres.url, my)


@pytest.fixture(scope="module")
def result(postgres, mysql):
    return run_lesson(postgres, mysql)


def test_the_indexes_no_query_used_are_found(result):
    assert result.unused == ["orders_customer_idx", "orders_sku_idx", "orders_sku_idx1", "orders_status_idx"]
    # The flush made every scan of this session visible: one index scan per query.
    assert result.indexes["orders_pkey"].scans == lesson.N_QUERIES
    assert result.indexes["orders_customer_created_idx"].scans == lesson.N_QUERIES
    assert not result.indexes["orders_pkey"].unused  # used, and it enforces the primary key anyway


def test_the_duplicate_and_the_prefix_are_found_in_pg_index(result):
    assert result.overlaps == [
        ("orders_customer_idx", "orders_customer_created_idx", "leading prefix"),
        ("orders_sku_idx1", "orders_sku_idx", "same columns"),
    ]


def test_vacuum_removes_the_dead_tuples_but_keeps_the_file(result):
    bloated, vacuumed = result.stages["bloated"], result.stages["VACUUM"]
    assert bloated.dead_tuples > 0
    assert vacuumed.dead_tuples == 0
    assert vacuumed.table_bytes == bloated.table_bytes
    assert vacuumed.free_percent > bloated.free_percent


def test_reindex_concurrently_shrinks_the_bloated_index(result):
    vacuumed, reindexed = result.stages["VACUUM"], result.stages["REINDEX CONCURRENTLY"]
    assert reindexed.index_bytes < vacuumed.index_bytes
    assert reindexed.leaf_density > vacuumed.leaf_density


def test_vacuum_full_gives_the_space_back(result):
    assert result.stages["VACUUM FULL"].table_bytes < result.stages["VACUUM"].table_bytes
    assert result.stages["VACUUM FULL"].table_bytes < result.stages["fresh"].table_bytes  # half the rows


def test_vacuum_full_blocked_the_reader_and_plain_vacuum_did_not(result):
    vacuumed, rewritten = result.stages["VACUUM"], result.stages["VACUUM FULL"]
    assert vacuumed.reads > 0 and rewritten.reads > 0  # the reader ran through both steps
    # Queued behind VACUUM FULL's lock request, itself behind the report: seen waiting, and for longer
    # than the workload's 100 ms. Plain VACUUM takes no lock a read waits for; a read slowed by a busy
    # machine may pass 100 ms there, so that count is not the fact, the lock wait is.
    assert rewritten.reader_waiting_seen > 0 and rewritten.reads_blocked > 0
    assert vacuumed.reader_waiting_seen == 0


def test_free_room_on_the_page_makes_updates_hot(result):
    full, roomy = result.hot[100], result.hot[70]
    updated = int(lesson.N_HOT * lesson.HOT_SHARE)
    assert full.updates == roomy.updates == updated
    assert roomy.ratio > 0.9
    assert full.ratio < roomy.ratio
    assert full.bytes_after > full.bytes_before  # the new versions went to new pages
    assert roomy.bytes_after == roomy.bytes_before


def test_optimize_table_rebuilds_innodb_and_shrinks_it(result):
    rebuilt = result.mysql
    assert rebuilt.is_mariadb == ("mariadb" in rebuilt.server.lower())
    assert rebuilt.rows_deleted == lesson.N_MYSQL // 2
    assert "recreate + analyze" in rebuilt.note
    data, index, _free = rebuilt.sizes["optimized"]
    assert data < rebuilt.sizes["deleted"][0]
    assert index < rebuilt.sizes["deleted"][1]


def test_the_headline_holds(result):
    assert result.holds  # what main() exits on


def test_a_second_run_gives_the_same_facts(postgres, mysql, result):
    again = run_lesson(postgres, mysql)
    assert again == result
    assert again.stages["VACUUM"].dead_tuples == 0

import dataclasses

import pymysql
import pytest

from common.settings import mysql_params
from relational import mysql_innodb as lesson


@pytest.fixture(scope="module")
def result(mysql):
    with pymysql.connect(**mysql_params(mysql.url)) as conn:
        return lesson.run(conn)


def test_it_says_which_server_it_ran_on(result):
    assert result.is_mariadb == ("mariadb" in result.server.lower())
    assert result.page_size == 16384


def test_every_table_holds_the_same_rows(result):
    assert list(result.tables) == ["orders_auto", "orders_seq_uuid", "orders_rand_uuid"]
    # count(*) on each table after its load, against the rows generated
    assert [t.rows for t in result.tables.values()] == [len(lesson.generate_rows())] * 3


def test_random_keys_make_a_larger_emptier_table(result):
    sequential, scattered = result.tables["orders_seq_uuid"], result.tables["orders_rand_uuid"]
    # Same 16-byte key, only the order differs: page splits leave the random one's pages part-empty.
    assert scattered.data_length > 1.2 * sequential.data_length
    assert scattered.pk_leaf_pages > sequential.pk_leaf_pages
    assert scattered.rows_per_leaf < 0.8 * sequential.rows_per_leaf


def test_a_wider_primary_key_widens_the_secondary_index(result):
    narrow, wide = result.tables["orders_auto"], result.tables["orders_seq_uuid"]
    assert wide.index_length > narrow.index_length
    assert wide.secondary_leaf_pages > narrow.secondary_leaf_pages
    assert narrow.pk_leaf_pages < wide.pk_leaf_pages  # the key itself is 8 bytes narrower per row


def test_the_secondary_index_covers_the_primary_key(result):
    for explained in (result.covered, result.not_covered):
        assert explained.access_type == "ref"
        assert explained.key == explained.json_key == "ix_customer"
    assert result.covered.covering and result.covered.json_using_index
    assert not result.not_covered.covering and not result.not_covered.json_using_index


def test_explain_json_shape_depends_on_the_server(result):
    expected = "query_block.nested_loop[0].table" if result.is_mariadb else "query_block.table"
    assert result.covered.json_path == expected


def test_find_table_node_reads_both_shapes():
    node = {"table_name": "t", "access_type": "ref", "key": "ix", "using_index": True}
    mysql_shape = {"query_block": {"select_id": 1, "table": node}}
    mariadb_shape = {"query_block": {"select_id": 1, "nested_loop": [{"table": node}]}}
    assert lesson.find_table_node(mysql_shape) == ("query_block.table", node)
    assert lesson.find_table_node(mariadb_shape) == ("query_block.nested_loop[0].table", node)


def test_on_duplicate_key_update_rows_affected(result):
    assert result.upsert_rows_affected == (1, 2, 0)


def test_main_checks_the_headline(result):
    assert result.holds


def test_a_second_run_gives_the_same_facts(mysql, result):
    with pymysql.connect(**mysql_params(mysql.url)) as conn:
        again = lesson.run(conn)

    def without_timings(found):
        facts = dataclasses.asdict(found)
        for table in facts["tables"].values():
            table.pop("insert_s")
        return facts

    assert without_timings(again) == without_timings(result)

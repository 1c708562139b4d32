import importlib.util

import psycopg
import pytest
from influxdb_client import InfluxDBClient
from pymongo import MongoClient
from redis import Redis

from common import shop
from polyglot import choosing_the_right_database as lesson

HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
ENGINES = {
    "cart": {"Redis", "PostgreSQL"},
    "catalog": {"MongoDB", "PostgreSQL"},
    "recommendation": {"Neo4j", "PostgreSQL"},
    "rollup": {"InfluxDB", "PostgreSQL"},
}


def run_lesson(postgres, mongodb, redis, neo4j_driver, influxdb, chart):
    env = influxdb.env
    with (
        psycopg.connect(postgres.url, autocommit=True) as pg,
        MongoClient(mongodb.url) as mongo,
        Redis.from_url(redis.url, decode_responses=True) as r,
        InfluxDBClient(
            url=influxdb.url, token=env["INFLUX_TOKEN"], org=env["INFLUX_ORG"], timeout=60_000
        ) as influx,
    ):
        return lesson.run(pg, mongo, r, neo4j_driver, influx, env["INFLUX_BUCKET"], chart=chart)


@pytest.fixture(scope="module")
def result(postgres, mongodb, redis, neo4j_driver, influxdb, tmp_path_factory):
    chart = tmp_path_factory.mktemp("charts") / "choosing_the_right_database.png"
    return run_lesson(postgres, mongodb, redis, neo4j_driver, influxdb, chart)


def test_the_names_in_the_queries_are_the_shop_namespaces():
    ns = shop.namespaces(lesson.LESSON)
    assert ns.neo4j_label == lesson.LABEL
    assert ns.measurement("orders") == lesson.MEASUREMENT
    for text in (lesson.DELETE_SOME, lesson.LOAD_NODES, lesson.RECOMMEND_CYPHER, *lesson.GRAPH_SCHEMA):
        assert lesson.LABEL in text
    assert lesson.MEASUREMENT in lesson.DROP_MEASUREMENT and lesson.MEASUREMENT in lesson.DELETE_PREDICATE


def test_each_pattern_ran_on_its_two_engines(result):
    assert {name: set(p.ops_per_s) for name, p in result.patterns.items()} == ENGINES
    assert all(ops > 0 for p in result.patterns.values() for ops in p.ops_per_s.values())


@pytest.mark.parametrize("pattern", ["cart", "catalog", "recommendation", "rollup"])
def test_both_engines_give_the_same_answer(result, pattern):
    p = result.patterns[pattern]
    assert ENGINES[pattern] <= set(p.answers)
    first, *others = p.answers.values()
    assert first  # not an empty answer that would agree with anything
    assert all(answer == first for answer in others)
    assert p.agree


def test_the_cart_answers_hold_every_cart(result):
    carts = result.patterns["cart"].answers["Redis"]
    assert 0 < len(carts) <= lesson.N_CARTS
    assert result.patterns["cart"].answers["Python"] == carts


def test_the_catalog_answers_are_non_trivial_and_checked_against_python(result):
    answers = result.patterns["catalog"].answers
    assert set(answers) == {"Python", "PostgreSQL", "MongoDB"}
    found = answers["PostgreSQL"]
    assert [category for category, _ in lesson.CATALOG_QUERIES] == list(found)
    assert sum(map(len, found.values())) > 0
    assert all(len(skus) < result.sizes["products"] / 5 for skus in found.values())  # filters, not a category


def test_recommendations_have_top_n_each(result):
    answers = result.patterns["recommendation"].answers["Neo4j"]
    assert answers and all(0 < len(recs) <= lesson.TOP_N for recs in answers.values())
    assert all(buyers[1] >= 1 for recs in answers.values() for buyers in recs)


def test_the_rollup_counts_every_order_and_its_revenue(result):
    rollup = result.patterns["rollup"].answers["InfluxDB"]
    assert sum(n for _, n in rollup.values()) == result.sizes["orders"]
    assert rollup == result.patterns["rollup"].answers["Python"]


def test_the_decision_table_has_one_row_per_pattern(result):
    assert [row[0] for row in result.rows] == list(ENGINES)
    for row, pattern in zip(result.rows, result.patterns.values(), strict=True):
        winner, runner_up = row[1].split()[0], row[2].split()[0]
        assert {winner, runner_up} == ENGINES[pattern.name]
        assert "x slower" in row[2]
    assert "PostgreSQL" in result.rows[0][3] and "Redis" in result.rows[0][3]  # cart storage measured


@pytest.mark.skipif(not HAS_MATPLOTLIB, reason="matplotlib (a dev dependency) is not installed")
def test_the_chart_is_written(result):
    assert result.chart is not None and result.chart.exists()
    assert result.chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_second_run_gives_the_same_facts(result, postgres, mongodb, redis, neo4j_driver, influxdb):
    again = run_lesson(postgres, mongodb, redis, neo4j_driver, influxdb, chart=None)
    assert again.sizes == result.sizes
    assert again.patterns == result.patterns  # the answers (speeds and sizes are not compared)
    assert again.holds

"""relational/oracle_specifics.py: checked here without a server, and against Oracle where Docker is.

No CI machine here can run Oracle, so what needs none is checked with tests/offline_sql.py: each
statement parses as Oracle SQL, its bind names are the ones the lesson passes, the expected answers
follow from the generated data, `holds` goes both ways, the docstring, the one-line exit. The tests
that take the `oracle` fixture run against the compose image (Docker or ORACLE_URL), skipped elsewhere.
"""

import dataclasses
import re

import oracledb
import pytest
import sqlglot
from sqlglot import exp

from common import settings
from common.settings import UNAVAILABLE
from relational import oracle_specifics as lesson
from servers import containers
from tests import offline_sql

VERBS = {"SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "CREATE", "DROP"}
STATEMENTS = offline_sql.statements_sent(lesson, VERBS, collections=("DROPS", "CREATES", "TOP_QUERIES"))
# sqlglot 30 stops at the identity options of CREATE TABLE ... AS IDENTITY (START WITH 1 CACHE 50):
# that one is checked by test_the_identity_options_follow_the_documented_grammar instead.
NOT_PARSED = {"CREATES[0]"}
KEYWORD_CALLS = {"execute": (0, 1)}  # cur.execute(CONST, name=...): the statement and keyword binds
IDENTITY_OPTIONS = re.compile(
    r"\((\s*(START WITH \d+|INCREMENT BY \d+|(NO)?CACHE( \d+)?|(NO)?ORDER|(NO)?CYCLE|(MIN|MAX)VALUE \d+))+\s*\)"
)


def parse(sql: str) -> exp.Expression:
    return offline_sql.parse_one(sql, "oracle")


# --- local: no server ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(set(STATEMENTS) - NOT_PARSED))
def test_every_statement_parses_as_oracle_sql(name):
    assert parse(STATEMENTS[name]) is not None


def test_the_identity_options_follow_the_documented_grammar():
    create = lesson.CREATES[0]
    with pytest.raises(sqlglot.errors.ParseError):  # when sqlglot learns them, parse it like the others
        parse(create)
    options = re.search(r"AS IDENTITY (\([^)]*\))", create).group(1)
    assert IDENTITY_OPTIONS.fullmatch(options), options
    assert "CACHE 50" in options
    assert isinstance(parse(create.replace(" " + options, "")), exp.Create)  # the rest of it is valid


def data_binds_passed() -> dict[str, set[str]]:
    """Statements the lesson runs with rows it builds (executemany, or a dict): those rows' keys."""
    return {
        "INSERT_STOCK": set(lesson.stock_rows()[0]),
        "MERGE_STOCK": set(lesson.merge_batch()[0]),
        "INSERT_ITEM": set(lesson.generate_items()[0]),
        "INSERT_NOTE": set(lesson.NOTES[0]) | set(lesson.EMPTY_TITLE),
        **{f"TOP_QUERIES[{key}]": {"n"} for key in lesson.TOP_QUERIES},  # cur.execute(sql, n=TOP_N)
    }


def test_the_bind_names_in_each_statement_are_the_ones_the_lesson_passes():
    by_keyword = offline_sql.binds_passed_by_keyword(lesson, STATEMENTS, KEYWORD_CALLS)
    passed = {**data_binds_passed(), **by_keyword}
    assert not offline_sql.binds_that_differ(STATEMENTS, passed, "oracle", unparsed=NOT_PARSED)
    assert passed["PAGE_TWO"] == {"skip", "n"} and passed["EMPTY_CHECKS"] == {"empty"}


def test_the_rows_of_a_batch_all_bind_the_same_names():
    for rows in (lesson.stock_rows(), lesson.merge_batch(), lesson.generate_items(), lesson.NOTES):
        assert len({frozenset(row) for row in rows}) == 1


def test_rownum_and_order_by_sit_where_each_top_query_says():
    mistake, subquery, fetch_first = (parse(sql) for sql in lesson.TOP_QUERIES.values())
    assert mistake.args.get("order") and "ROWNUM" in mistake.args["where"].sql("oracle").upper()
    inner = subquery.find(exp.Subquery).this
    assert inner.args.get("order") and not subquery.args.get("order")
    assert "ROWNUM" in subquery.args["where"].sql("oracle").upper()
    assert (
        fetch_first.args.get("order") and fetch_first.args.get("limit") and not fetch_first.args.get("where")
    )


def test_the_generated_items_make_the_rownum_mistake_visible():
    items = lesson.generate_items()
    top, mistake = lesson.ranked(items)[: lesson.TOP_N], lesson.ranked(items[: lesson.TOP_N])
    assert len({item["score"] for item in items}) == lesson.N_ITEMS  # no ties: one right answer
    assert len(top) == len(mistake) == lesson.TOP_N and top != mistake
    assert set(mistake) == set(range(1, lesson.TOP_N + 1))  # the first rows inserted, sorted
    scores = {item["id"]: item["score"] for item in items}
    assert [scores[i] for i in top] == sorted(scores.values(), reverse=True)[: lesson.TOP_N]


def test_the_merge_batch_updates_and_inserts_the_planned_counts():
    batch = lesson.merge_batch()
    assert len({row["sku"] for row in batch}) == len(batch)  # each sku once: MERGE touches a row once
    assert lesson.expected_merge(lesson.stock_rows(), batch) == (lesson.BATCH_INSERTS, lesson.BATCH_UPDATES)
    assert lesson.expected_merge([], batch) == (len(batch), 0)


@pytest.mark.parametrize(
    ("plan", "gaps"),
    [
        (lesson.ticket_plan(), 3),
        ([True, False, True], 1),
        ([True, True, False], 0),  # the last id rolled back is past MAX(id): no hole to see
        ([False, True, False, False, True], 2),
    ],
)
def test_expected_gaps_count_the_rolled_back_ids_between_kept_ones(plan, gaps):
    assert lesson.expected_gaps(plan) == gaps


def good_result() -> lesson.OracleResult:
    """Facts as a working Oracle gives them, made by hand."""
    items = lesson.generate_items()
    ranking, n = lesson.ranked(items), lesson.TOP_N
    top = ranking[:n]
    return lesson.OracleResult(
        version="23.26.0.0.0",
        identity=lesson.Identity("ISEQ$$_73001", True, 50, 7, 3, "ORA-32795", 51),
        merge=lesson.Merge(300, 200, 80, 120, (80, 120), 0.01),
        top=lesson.TopN(
            dict(zip(lesson.TOP_QUERIES, [lesson.ranked(items[:n]), top, top], strict=True)),
            top,
            lesson.ranked(items[:n]),
            ranking[n : 2 * n],
            ranking[n : 2 * n],
            0,
        ),
        empty=lesson.EmptyString(True, 0, 0, 1, 1, None, True, "ab", "ORA-01400"),
    )


def broken(result, part: str, **changes):
    return dataclasses.replace(result, **{part: dataclasses.replace(getattr(result, part), **changes)})


def test_holds_on_facts_that_show_each_specific():
    assert good_result().holds


@pytest.mark.parametrize(
    ("part", "changes"),
    [
        ("identity", {"gaps": 0}),
        ("identity", {"system_sequence": False}),
        ("identity", {"explicit_id_error": "accepted"}),
        ("merge", {"updated": 119}),
        ("merge", {"server_rowcount": 120}),
        ("top", {"page_two": [1, 2, 3]}),
        ("empty", {"equals_empty": 1}),
        ("empty", {"is_null": 0}),
    ],
)
def test_holds_fails_when_a_fact_is_missing(part, changes):
    assert not broken(good_result(), part, **changes).holds


def test_holds_fails_when_rownum_gives_the_right_top_n():
    result = good_result()
    right = result.top.expected_top
    fixed = dict(zip(lesson.TOP_QUERIES, [right, right, right], strict=True))
    assert not broken(result, "top", ids=fixed).holds


def test_the_docstring_names_the_compose_image_and_cites_its_sources():
    assert not offline_sql.docstring_lacks(lesson, "oracle")
    image = containers.compose_services()["oracle"]["image"]
    assert image.partition(":")[2].startswith("23.26.0") and "docs.oracle.com" in lesson.__doc__
    assert "oracle_concurrency.py" in lesson.__doc__  # where the rest of Oracle's surprises went


def test_main_without_a_server_prints_one_line_and_exits_2():
    url = "oracle://examples:examples@127.0.0.1:{port}/FREEPDB1"
    exited = offline_sql.main_on_a_closed_port(lesson, "oracle", url)
    assert exited.code == UNAVAILABLE, exited.lines
    assert offline_sql.says_start_the_image(exited.one_line, "oracle"), exited.lines


# --- against Oracle (the compose image, with Docker or ORACLE_URL) ----------------------------------


@pytest.fixture(scope="module")
def result(oracle):
    return lesson.run(settings.oracle_params(oracle.url))


def test_an_identity_column_is_a_cached_system_sequence(result):
    assert result.identity.system_sequence and result.identity.sequence_name.startswith("ISEQ$$_")
    assert result.identity.cache_size == 50  # the CACHE of the identity options
    assert result.identity.explicit_id_error == "ORA-32795"  # GENERATED ALWAYS


def test_rolled_back_inserts_leave_gaps_in_the_ids(result):
    plan = lesson.ticket_plan()
    assert result.identity.rows == plan.count(True)
    assert result.identity.gaps == lesson.expected_gaps(plan) == 3


def test_merge_inserts_and_updates_what_the_batch_says(result):
    merged = result.merge
    assert merged.rows_before == lesson.N_STOCK
    assert (
        (merged.inserted, merged.updated) == merged.expected == (lesson.BATCH_INSERTS, lesson.BATCH_UPDATES)
    )
    assert merged.server_rowcount == len(lesson.merge_batch())


def test_rownum_before_order_by_returns_the_wrong_top_n(result):
    mistake, subquery, fetch_first = result.top.ids.values()
    assert mistake != result.top.expected_top and len(mistake) == lesson.TOP_N
    scores = {item["id"]: item["score"] for item in lesson.generate_items()}
    assert [scores[i] for i in mistake] == sorted(
        (scores[i] for i in mistake), reverse=True
    )  # n rows, sorted
    assert subquery == fetch_first == result.top.expected_top


def test_offset_fetch_gives_page_two_and_rownum_above_one_finds_nothing(result):
    assert result.top.page_two == result.top.expected_page_two
    assert result.top.rownum_above_one == 0


def test_the_empty_string_is_stored_and_compared_as_null(result):
    empty = result.empty
    assert empty.reads_back_as_none and empty.is_null == 1 and empty.empty_is_null
    assert empty.equals_empty == empty.equals_bound_empty == 0
    assert empty.equals_space == 1 and empty.length_of_empty is None and empty.concatenated == "ab"
    assert empty.not_null_refuses_empty == "ORA-01400"
    assert result.holds  # what main() exits on


def test_the_lesson_connects_with_the_thin_driver(oracle):
    with oracledb.connect(**settings.oracle_params(oracle.url)) as conn:
        assert conn.thin


def test_a_second_run_gives_the_same_facts(oracle, result):
    assert lesson.run(settings.oracle_params(oracle.url)) == result

"""relational/sqlserver_specifics.py: checked locally without a server, and against one where it runs.

SQL Server runs only from its image, so the first half needs no server and runs in every phase, with
tests/offline_sql.py: each statement, as pymssql sends it, parses as T-SQL; what sqlglot cannot parse
is held to the documented grammar; each call passes exactly the placeholders its statement takes; the
pure logic and `holds` are tested on hand-made facts. The second half takes the `sqlserver` fixture and
is skipped where no SQL Server can be had ("has no local server; runs with Docker or SQLSERVER_URL").
"""

import ast
import dataclasses
import math
import re
from pathlib import Path

import pytest
from sqlglot import exp

from common.settings import UNAVAILABLE
from relational import sqlserver_specifics as lesson
from tests import offline_sql

VERBS = {"SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "CREATE", "DROP", "ALTER", "SET", "BEGIN", "COMMIT"}
STATEMENTS = offline_sql.statements_sent(lesson, VERBS)
HELPERS = {"run_sql", "one", "showplan", "insert_many"}  # (cur, statement, ...) -> pass-throughs
# The T-SQL sqlglot 30 does not parse: ALTER DATABASE ... SET falls back to a bare Command. It is
# held to the grammar of its reference page instead (ALTER DATABASE SET options).
ALTER_DATABASE_SET = re.compile(
    r"ALTER DATABASE (?P<db>\w+) SET SINGLE_USER( WITH (ROLLBACK IMMEDIATE|ROLLBACK AFTER \d+( SECONDS)?|NO_WAIT))?"
)
NOT_PARSED = {"KICK_OUT": ALTER_DATABASE_SET}


# --- local: the SQL, the parameters and the pure logic (no server) -----------------------------


def test_the_lesson_sends_the_statements_found_here():
    assert len(STATEMENTS) >= 30 and set(NOT_PARSED) <= set(STATEMENTS)  # the filter above finds them


def test_the_lesson_owns_a_database_named_after_it():
    assert Path(lesson.__file__).stem == lesson.DATABASE  # so no other lesson's database is touched
    named = offline_sql.databases_named(STATEMENTS)
    assert len(named) >= 3 and all(found == [lesson.DATABASE] for found in named.values()), named


@pytest.mark.parametrize("name", sorted(set(STATEMENTS) - set(NOT_PARSED)))
def test_each_statement_parses_as_tsql(name):
    assert offline_sql.parse(offline_sql.as_pymssql_sends(STATEMENTS[name]), "tsql")  # a Command fails


@pytest.mark.parametrize("name", sorted(NOT_PARSED))
def test_what_sqlglot_cannot_parse_follows_the_documented_grammar(name):
    matched = NOT_PARSED[name].fullmatch(STATEMENTS[name])
    assert matched, STATEMENTS[name]
    assert matched["db"] == lesson.DATABASE


def test_showplan_is_a_batch_of_its_own_and_merge_is_terminated():
    # SET SHOWPLAN_XML "must be the only statement in the batch"; MERGE "requires a semicolon".
    assert (
        len(offline_sql.parse(lesson.SHOWPLAN_ON, "tsql"))
        == len(offline_sql.parse(lesson.SHOWPLAN_OFF, "tsql"))
        == 1
    )
    assert lesson.MERGE_FEED.rstrip().endswith(";")
    merge = offline_sql.parse_one(lesson.MERGE_FEED, "tsql")
    assert isinstance(merge, exp.Merge) and "$action" in merge.sql("tsql").lower()


def test_placeholders_are_named_only():
    stray = [name for name, statement in STATEMENTS.items() if offline_sql.has_stray_percent(statement)]
    assert not stray, f"{stray}: a positional or stray %"


def statements_of(arg: ast.expr, owner: str, functions: dict) -> list[str]:
    """The SQL constant(s) an argument holds: the constant itself, or, for a parameter of the calling
    function, what each call of that function passes in its place."""
    assert isinstance(arg, ast.Name), ast.unparse(arg)
    if arg.id in STATEMENTS:
        return [arg.id]
    position = [a.arg for a in functions[owner].args.args].index(arg.id)
    calls = offline_sql.calls_to(functions, {owner})
    return [n for _, call in calls for n in statements_of(call.args[position], "", {})]


def row_keys(arg: ast.expr, function: ast.FunctionDef) -> set[str]:
    """The keys of the rows an insert_many call passes: a generator of the lesson, or dicts written inline."""
    if isinstance(arg, ast.Name):  # rows = generator() earlier in the function
        assigned = [
            n.value
            for n in ast.walk(function)
            if isinstance(n, ast.Assign) and ast.unparse(n.targets[0]) == arg.id
        ]
        arg = assigned[0]
    if isinstance(arg, ast.Call):
        return set(getattr(lesson, arg.func.id)()[0])
    assert isinstance(arg, ast.ListComp) and isinstance(arg.elt, ast.Dict), ast.unparse(arg)
    return {key.value for key in arg.elt.keys}


def test_every_call_passes_exactly_the_statements_placeholders():
    functions = offline_sql.lesson_functions(lesson)
    checked = 0
    for owner, call in offline_sql.calls_to(functions, HELPERS):
        if owner in HELPERS:
            continue  # the helpers hand on what they were given
        for name in statements_of(call.args[1], owner, functions):
            if offline_sql.called_name(call) == "insert_many":
                given = row_keys(call.args[2], functions[owner])
            else:
                given = offline_sql.keywords_passed(call)
            wanted = lesson.placeholders(STATEMENTS[name])
            assert given == wanted, f"{owner} passes {sorted(given)} to {name}, which takes {sorted(wanted)}"
            checked += 1
    assert checked >= 35  # every call of the helpers above in the lesson (37 when written)


def test_every_statement_is_sent_somewhere():
    unsent = set(STATEMENTS) - offline_sql.names_used(offline_sql.lesson_functions(lesson))
    assert not unsent, sorted(unsent)


def test_run_sql_binds_what_the_statement_names_and_refuses_anything_else():
    cur = offline_sql.RecordingCursor()
    lesson.run_sql(cur, lesson.CUSTOMER_ORDERS, customer_id=1)
    lesson.run_sql(cur, lesson.BEGIN)
    assert cur.calls == [
        (lesson.CUSTOMER_ORDERS, {"customer_id": 1}),
        (lesson.BEGIN,),
    ]  # no params: untouched
    with pytest.raises(ValueError, match="placeholders"):
        lesson.run_sql(cur, lesson.CUSTOMER_ORDERS, customer=1)
    with pytest.raises(ValueError, match="placeholders"):
        lesson.insert_many(cur, lesson.INSERT_ORDER, lesson.filler_rows(3))
    lesson.insert_many(cur, lesson.INSERT_ORDER, lesson.order_rows())
    assert cur.calls[-1] == (lesson.INSERT_ORDER, lesson.N_ORDERS, lesson.BATCH)


@pytest.mark.parametrize(("total", "size"), [(1000, 75), (1000, 100), (1, 75), (0, 75), (76, 75)])
def test_the_pages_reach_every_row_exactly_once(total, size):
    offsets = lesson.page_offsets(total, size)
    assert len(offsets) == math.ceil(total / size)
    rows = [row for skip in offsets for row in range(skip, min(skip + size, total))]
    assert rows == list(range(total))


def test_with_ties_counts_every_row_tied_for_the_last_place():
    assert lesson.with_ties_count([5, 5, 4, 4, 4, 3], 3) == 5
    assert lesson.with_ties_count([5, 5, 4, 4, 4, 3], 1) == 2
    assert lesson.with_ties_count([3, 2, 1], 2) == 2


def test_merge_actions_by_hand():
    assert lesson.merge_actions({1: 10, 2: 20, 3: 30}, {2: 20, 3: 31, 4: 40}) == {
        "INSERT": 1, "UPDATE": 1, "DELETE": 1,
    }  # fmt: skip
    assert lesson.merge_actions({}, {}) == {"INSERT": 0, "UPDATE": 0, "DELETE": 0}


def test_raised_divides_as_tsql_divides_two_ints():
    assert [lesson.raised(p) for p in (105, 9, 10, 19_999)] == [115, 9, 11, 21_998]


def test_the_generated_data_makes_each_effect_visible():
    products = lesson.product_rows()
    assert [p["id"] for p in products] == list(range(1, lesson.N_PRODUCTS + 1))
    assert lesson.with_ties_count([p["score"] for p in products], lesson.TIES_N) > lesson.TIES_N
    by_name = [p["id"] for p in sorted(products, key=lambda p: p["name"])][: lesson.TOP_N]
    assert by_name != list(range(1, lesson.TOP_N + 1))  # the index on name orders rows apart from id
    assert 0 < sum(p["category"] == lesson.CATEGORY for p in products) < lesson.N_PRODUCTS
    merge = lesson.merge_actions(*lesson.price_list_and_feed())
    assert all(count > 0 for count in merge.values()), merge
    customer = sum(o["customer_id"] == lesson.LOOKUP_CUSTOMER for o in lesson.order_rows())
    assert 0 < customer < 25  # few rows: a seek and a lookup per row beats scanning the table
    assert lesson.order_rows() == lesson.order_rows() and lesson.product_rows() == lesson.product_rows()
    assert lesson.price_list_and_feed() == lesson.price_list_and_feed()


NS = 'xmlns="http://schemas.microsoft.com/sqlserver/2004/07/showplan"'
PLAN_WITH_LOOKUP = f"""<ShowPlanXML {NS} Version="1.6"><BatchSequence><Batch><Statements><StmtSimple>
<QueryPlan><RelOp NodeId="0" PhysicalOp="Nested Loops" LogicalOp="Inner Join"><NestedLoops Optimized="0">
<RelOp NodeId="1" PhysicalOp="Index Seek" LogicalOp="Index Seek"><IndexScan Ordered="1" ScanDirection="FORWARD">
<Object Database="[sqlserver_specifics]" Schema="[dbo]" Table="[orders]" Index="[ix_orders_customer]"
IndexKind="NonClustered"/></IndexScan></RelOp>
<RelOp NodeId="3" PhysicalOp="Clustered Index Seek" LogicalOp="Clustered Index Seek"><IndexScan Lookup="1"
Ordered="1" ScanDirection="FORWARD"><Object Database="[sqlserver_specifics]" Schema="[dbo]" Table="[orders]"
Index="[pk_orders]" IndexKind="Clustered"/></IndexScan></RelOp>
</NestedLoops></RelOp></QueryPlan></StmtSimple></Statements></Batch></BatchSequence></ShowPlanXML>"""
PLAN_COVERED = f"""<ShowPlanXML {NS}><BatchSequence><Batch><Statements><StmtSimple><QueryPlan>
<RelOp NodeId="0" PhysicalOp="Index Seek" LogicalOp="Index Seek"><IndexScan Ordered="1">
<Object Table="[orders]" Index="[ix_orders_customer]"/></IndexScan></RelOp>
</QueryPlan></StmtSimple></Statements></Batch></BatchSequence></ShowPlanXML>"""


def test_the_plan_reader_names_a_key_lookup_and_its_absence():
    looked_up = lesson.plan_operators(PLAN_WITH_LOOKUP)
    assert looked_up == ["Nested Loops", "Index Seek [ix_orders_customer]", "Key Lookup [pk_orders]"]
    assert lesson.key_lookups(looked_up) == 1
    covered = lesson.plan_operators(PLAN_COVERED)
    assert covered == ["Index Seek [ix_orders_customer]"] and lesson.key_lookups(covered) == 0


def made_by_hand() -> lesson.SqlServerResult:
    """A run as the docs say it goes."""
    shape = lesson.KeyShape
    return lesson.SqlServerResult(
        keys={"IDENTITY": shape("IDENTITY", 4000, 110, 1.0, 98.0), "NEWID()": shape("NEWID()", 4000, 160, 98.0, 69.0)},
        lookups=lesson.Lookups(["Nested Loops", "Index Seek [ix]", "Key Lookup [pk]"], ["Index Seek [ix]"], 9, 9),
        output=lesson.Output(rows=143, category_rows=143, deleted_match=True, inserted_match=True),
        merge=lesson.Merge({"INSERT": 50, "UPDATE": 17, "DELETE": 50}, {"INSERT": 50, "UPDATE": 17, "DELETE": 50}, 0),
        paging=lesson.Paging([1, 2, 3, 4, 5], [1, 2, 3, 4, 5], 10, 10, 14, 14, 1000, 1000, 1000, [], []),
    )  # fmt: skip


@pytest.mark.parametrize(
    "broken",
    [
        lambda r: dataclasses.replace(r.keys["NEWID()"], fullness_pct=99.0),
        lambda r: dataclasses.replace(r.lookups, covering_plan=r.lookups.index_plan),
        lambda r: dataclasses.replace(r.output, inserted_match=False),
        lambda r: dataclasses.replace(r.merge, actions={"INSERT": 50, "UPDATE": 100, "DELETE": 50}),
        lambda r: dataclasses.replace(r.paging, distinct_rows=990),
    ],
)
def test_holds_on_hand_made_facts_and_fails_when_one_breaks(broken):
    result = made_by_hand()
    assert result.holds
    part = broken(result)
    if isinstance(part, lesson.KeyShape):
        result.keys["NEWID()"] = part
    else:
        setattr(result, {lesson.Lookups: "lookups", lesson.Output: "output", lesson.Merge: "merge",
                         lesson.Paging: "paging"}[type(part)], part)  # fmt: skip
    assert not result.holds


def test_main_without_a_server_prints_one_line_and_exits_2():
    exited = offline_sql.main_on_a_closed_port(lesson, "sqlserver", "mssql://sa:x@127.0.0.1:{port}/master")
    assert exited.code == UNAVAILABLE, exited.lines
    assert offline_sql.says_start_the_image(exited.one_line, "sqlserver"), exited.lines


# --- against a SQL Server (skipped where none can be had) --------------------------------------


@pytest.fixture(scope="module")
def result(sqlserver):
    return lesson.run(sqlserver.url)


def test_a_random_clustering_key_splits_pages(result):
    sequential, random_key = result.keys["IDENTITY"], result.keys["NEWID()"]
    assert sequential.rows == random_key.rows == lesson.N_KEYED  # record_count at the leaf level
    # Appending fills each page; splitting leaves two half-full ones (about 70% on average). The key
    # widths differ (16 bytes against 4), so rows per page, not pages, is the measure: unsplit, the
    # GUID table would hold about 95% as many rows a page as the IDENTITY one.
    assert random_key.rows / random_key.pages < 0.85 * sequential.rows / sequential.pages
    assert random_key.fullness_pct < 85 < 90 < sequential.fullness_pct
    assert random_key.fragmentation_pct > 50 > 10 > sequential.fragmentation_pct


def test_include_removes_the_key_lookup(result):
    assert lesson.key_lookups(result.lookups.index_plan) >= 1
    assert any("[ix_orders_customer]" in op for op in result.lookups.index_plan)
    assert lesson.key_lookups(result.lookups.covering_plan) == 0
    assert any("[ix_orders_customer]" in op for op in result.lookups.covering_plan)
    assert result.lookups.rows == result.lookups.expected > 0


def test_output_returns_the_rows_before_and_after_the_update(result):
    assert result.output.rows == result.output.category_rows > 0
    assert result.output.deleted_match and result.output.inserted_match


def test_merge_output_action_counts_each_action(result):
    assert result.merge.actions == result.merge.expected
    assert result.merge.differences_left == 0


def test_top_with_ties_and_paging(result):
    p = result.paging
    assert len(p.top_unordered) == lesson.TOP_N == len(set(p.top_unordered))
    assert p.top_ordered == p.top_expected
    assert p.with_ties_rows == p.with_ties_expected > lesson.TIES_N
    assert p.pages_read == p.pages_expected
    assert p.rows == p.distinct_rows == p.products == lesson.N_PRODUCTS


def test_the_headline_holds(result):
    assert result.holds  # what main() exits on


def test_a_second_run_gives_the_same_facts(sqlserver, result):
    assert lesson.run(sqlserver.url) == result

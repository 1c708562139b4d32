"""graph/arangodb_multi_model.py: what can be checked without a server always runs; the rest needs
the `arangodb` fixture (Docker or ARANGO_URL) and is skipped, and counted, where neither is.

The expected answers are computed here in plain Python from the lesson's generated data, the way
tests/graph/test_recommendations.py computes the Neo4j lesson's, so both lessons answer to one count.
"""

import dataclasses
import re
from collections import Counter, deque
from itertools import pairwise

import pytest
from arango import ArangoClient

from common.settings import arangodb_params
from graph import arangodb_multi_model as lesson
from graph import recommendations
from tests import offline_sql

# AQL's keywords and keyword-like words (docs: aql/fundamentals/syntax/#keywords) and the functions
# the lesson calls: any other upper-case word in a query is a typo.
AQL_WORDS = {
    "AGGREGATE", "ALL", "ALL_SHORTEST_PATHS", "AND", "ANY", "ASC", "COLLECT", "DESC", "DISTINCT", "FALSE",
    "FILTER", "FOR", "GRAPH", "IN", "INBOUND", "INSERT", "INTO", "K_PATHS", "K_SHORTEST_PATHS", "LET", "LIKE",
    "LIMIT", "NONE", "NOT", "NULL", "OR", "OUTBOUND", "REMOVE", "REPLACE", "RETURN", "SHORTEST_PATH", "SORT",
    "TRUE", "UPDATE", "UPSERT", "WINDOW", "WITH", "KEEP", "COUNT", "OPTIONS", "PRUNE", "SEARCH", "TO",
}  # fmt: skip
AQL_FUNCTIONS = {"LENGTH", "PARSE_IDENTIFIER"}
BIND_PARAMETER = re.compile(r"(?<![\w@])(@@?)([A-Za-z0-9][A-Za-z0-9_]*)")
# Document keys: letters, digits and _-:.@()+,=;$!*'% (docs: concepts/data-structure/documents/#document-keys).
DOCUMENT_KEY = re.compile(r"^[A-Za-z0-9_\-:.@()+,=;$!*'%]{1,254}$")


@pytest.fixture(scope="module")
def data():
    return lesson.generate()


@pytest.fixture(scope="module")
def queries(data):
    return lesson.statements(data)


# --- the expected answers, in plain Python --------------------------------------------------------


def top(counts, n=recommendations.TOP_N):
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:n]


def also_bought_from_people(shop, sku):
    """tests/graph/test_recommendations.py's computation for the Neo4j lesson, on the shop itself."""
    names = {p["sku"]: p["name"] for p in shop.products}
    counts = Counter()
    for person in shop.people:
        if sku in person["bought"]:
            counts.update(names[other] for other in set(person["bought"]) - {sku})
    return top(counts)


def also_bought_from_edges(data, product_id):
    """The same question over the lesson's edge documents, as the AQL walks them: in, then out."""
    names = {f"{lesson.PRODUCTS}/{p['_key']}": p["name"] for p in data.collections[lesson.PRODUCTS]}
    edges = data.collections[lesson.BOUGHT]
    buyers = {e["_from"] for e in edges if e["_to"] == product_id}
    return top(Counter(names[e["_to"]] for e in edges if e["_from"] in buyers and e["_to"] != product_id))


def same_city_picks(data, key):
    """ONE_QUERY: what customers of my city bought that I did not, counted per customer."""
    customers = {c["_key"]: c for c in data.collections[lesson.CUSTOMERS]}
    names = {f"{lesson.PRODUCTS}/{p['_key']}": p["name"] for p in data.collections[lesson.PRODUCTS]}
    owned = {}
    for edge in data.collections[lesson.BOUGHT]:
        owned.setdefault(edge["_from"].split("/")[1], set()).add(edge["_to"])
    city = customers[key]["address"]["city"]
    counts = Counter()
    for other, customer in customers.items():
        if other != key and customer["address"]["city"] == city:
            counts.update(names[product] for product in owned.get(other, set()) - owned[key])
    return top(counts)


def neighbours(data, both_ways):
    """Vertex id -> [(edge number, vertex)]: out along each edge, and back too for ANY."""
    near = {}
    edges = data.collections[lesson.BOUGHT] + data.collections[lesson.IN_CATEGORY]
    for number, edge in enumerate(edges):
        near.setdefault(edge["_from"], []).append((number, edge["_to"]))
        if both_ways:
            near.setdefault(edge["_to"], []).append((number, edge["_from"]))
    return near


def paths_by_depth(near, start, max_depth=3):
    """A traversal's default: every path of 1..3 edges, no edge twice on a path (uniqueEdges "path")."""
    counts = Counter()

    def walk(vertex, depth, used):
        for edge, other in near.get(vertex, []):
            if edge not in used and depth < max_depth:
                counts[(depth + 1, other.split("/")[0])] += 1
                walk(other, depth + 1, used | {edge})

    walk(start, 0, frozenset())
    return sorted((depth, kind, n) for (depth, kind), n in counts.items())


def distance(near, start, target):
    seen, queue = {start: 0}, deque([start])
    while queue:
        vertex = queue.popleft()
        for _, other in near.get(vertex, []):
            if other not in seen:
                seen[other] = seen[vertex] + 1
                queue.append(other)
    return seen[target]


# --- local: no server ------------------------------------------------------------------------------


def test_every_bind_parameter_in_each_query_is_passed_and_nothing_else(queries):
    assert len(queries) == 7
    for label, (query, bind_vars) in queries.items():
        named = {("@" if at == "@@" else "") + name for at, name in BIND_PARAMETER.findall(query)}
        assert named == set(bind_vars), label
        assert not re.search(r"[\"']@", query), f"{label}: a bind parameter in quotes is a string"
        collections = {key for key in bind_vars if key.startswith("@")}
        assert all(bind_vars[key] == lesson.CUSTOMERS for key in collections), label


def test_each_query_uses_only_aql_words_and_balanced_brackets(queries):
    for label, (query, _) in queries.items():
        words = set(re.findall(r"\b[A-Z][A-Z_]+\b", query))
        assert words <= AQL_WORDS | AQL_FUNCTIONS, f"{label}: {words - AQL_WORDS - AQL_FUNCTIONS}"
        for opening, closing in ("()", "[]", "{}"):
            assert query.count(opening) == query.count(closing), label


def test_the_two_traversals_differ_only_in_direction():
    assert lesson.OUTBOUND_PATHS.replace(" OUTBOUND ", " ANY ") == lesson.ANY_PATHS


def test_the_data_is_the_recommendation_lessons_shop(data):
    shop = recommendations.generate()
    customers = data.collections[lesson.CUSTOMERS]
    assert [c["name"] for c in customers] == [p["name"] for p in shop.people]
    assert [p["_key"] for p in data.collections[lesson.PRODUCTS]] == [p["sku"] for p in shop.products]
    assert len(data.collections[lesson.BOUGHT]) == sum(len(p["bought"]) for p in shop.people)
    assert len(data.collections[lesson.CATEGORIES]) == len(shop.categories)
    assert lesson.generate() == data  # deterministic


def test_documents_are_nested_keys_are_valid_and_edges_join_existing_documents(data):
    ids = set()
    for name in (lesson.CUSTOMERS, lesson.PRODUCTS, lesson.CATEGORIES):
        keys = [document["_key"] for document in data.collections[name]]
        assert len(set(keys)) == len(keys) and all(DOCUMENT_KEY.match(key) for key in keys), name
        ids |= {f"{name}/{key}" for key in keys}
    for customer in data.collections[lesson.CUSTOMERS]:
        assert lesson.CITIES[customer["address"]["city"]] == customer["address"]["country"]
    for name in (lesson.BOUGHT, lesson.IN_CATEGORY):
        assert all(e["_from"] in ids and e["_to"] in ids for e in data.collections[name]), name
        assert len({(e["_from"], e["_to"]) for e in data.collections[name]}) == len(data.collections[name])
    definitions = {d["edge_collection"]: d for d in lesson.EDGE_DEFINITIONS}
    for name in (lesson.BOUGHT, lesson.IN_CATEGORY):
        kinds = {(e["_from"].split("/")[0], e["_to"].split("/")[0]) for e in data.collections[name]}
        assert kinds == {
            (definitions[name]["from_vertex_collections"][0], definitions[name]["to_vertex_collections"][0])
        }


def test_also_bought_over_the_edges_is_the_neo4j_lessons_answer(data, queries):
    product = queries["also bought"][1]["product"]
    assert product.split("/")[1] == recommendations.most_bought(data.shop)["sku"]
    expected = also_bought_from_people(data.shop, product.split("/")[1])
    assert also_bought_from_edges(data, product) == expected
    assert len(expected) == recommendations.TOP_N and expected[0][1] >= expected[-1][1] > 0


def test_the_expected_ranking_on_a_hand_made_shop():
    shop = recommendations.Shop(
        categories=[],
        products=[
            {"sku": s, "name": n, "categories": []} for s, n in [("x", "X"), ("y", "Yak"), ("z", "Zebu")]
        ],
        people=[
            {"bought": ["x", "y"]},
            {"bought": ["x", "y", "z"]},
            {"bought": ["x", "z"]},
            {"bought": ["y"]},
        ],
    )
    assert also_bought_from_people(shop, "x") == [("Yak", 2), ("Zebu", 2)]  # a tie goes by name
    assert also_bought_from_people(shop, "z") == [("X", 2), ("Yak", 1)]


def test_outbound_paths_end_at_categories_and_any_paths_come_back(data, queries):
    start = queries["outbound paths"][1]["start"]
    outbound = paths_by_depth(neighbours(data, both_ways=False), start)
    assert [(depth, kind) for depth, kind, _ in outbound] == [(1, "products"), (2, "categories")]
    any_direction = paths_by_depth(neighbours(data, both_ways=True), start)
    assert (2, "customers") in [(depth, kind) for depth, kind, _ in any_direction]
    assert sum(n for *_, n in any_direction) > sum(n for *_, n in outbound)


def a_result(**changes):
    facts = dict(
        counts={},
        city="Ghent",
        city_customers=3,
        countries=["Belgium"],
        filter_nodes=["SingletonNode", "IndexNode", "ReturnNode"],
        filter_indexes=[lesson.CITY_INDEX],
        unindexed_count=2,
        unindexed_nodes=["SingletonNode", "EnumerateCollectionNode", "ReturnNode"],
        key_value=lesson.KeyValue("Aiko Abe", 2, {1200: 1, 1210: 1}, [409, 412], {}, 3),
        outbound=[(1, "products", 4), (2, "categories", 5)],
        any_direction=[(1, "products", 4)],
        shortest=["customers/c000", "products/REC-001", "customers/c001"],
        also_bought=[("Yak", 2)],
        one_query=[("Zebu", 1)],
        one_query_nodes=["IndexNode", "TraversalNode", "IndexNode", "TraversalNode"],
        one_query_indexes=["primary", lesson.CITY_INDEX],
    )
    return lesson.MultiModelResult(**{**facts, **changes})


@pytest.mark.parametrize(
    "broken",
    [
        {"filter_indexes": []},
        {"unindexed_nodes": ["IndexNode"]},
        {"key_value": lesson.KeyValue("Aiko Abe", 3, {1210: 1}, [409], {}, 3)},
        {"outbound": [(1, "products", 4), (2, "categories", 5), (3, "products", 9)]},
        {"shortest": []},
        {"also_bought": []},
        {"one_query": []},
        {"one_query_indexes": ["primary"]},
        {"one_query_nodes": ["IndexNode"]},
    ],
    ids=lambda broken: next(iter(broken)),
)
def test_holds_on_hand_made_facts_and_fails_when_one_breaks(broken):
    assert a_result().holds
    assert not a_result(**broken).holds


def test_the_url_is_split_for_arango_client():
    params = arangodb_params("http://root:p%40ss@db.example.com:8530/ignored")
    assert params == {"hosts": "http://db.example.com:8530", "username": "root", "password": "p@ss"}
    assert arangodb_params("https://[::1]:8529")["hosts"] == "https://[::1]:8529"


def test_without_a_server_main_says_one_line_and_exits_2():
    exited = offline_sql.main_on_a_closed_port(lesson, "arangodb", "http://root:x@127.0.0.1:{port}")
    assert exited.code == 2 and offline_sql.says_start_the_image(exited.one_line, "arangodb"), exited.lines
    assert exited.stdout.strip() == ""


# --- against the server: the `arangodb` fixture (Docker or ARANGO_URL) ---------------------------


def run_lesson(url):
    params = arangodb_params(url)
    client = ArangoClient(hosts=params["hosts"])
    try:
        return lesson.run(client, params["username"], params["password"])
    finally:
        client.close()


@pytest.fixture(scope="module")
def result(arangodb):
    return run_lesson(arangodb.url)


def test_every_document_and_edge_is_on_the_server(result, data):
    assert result.counts == {name: len(rows) for name, rows in data.collections.items()}


def test_the_nested_filter_is_served_by_the_persistent_index(result, data, queries):
    city = queries["city filter"][1]["city"]
    customers = data.collections[lesson.CUSTOMERS]
    assert result.city_customers == sum(c["address"]["city"] == city for c in customers) > 0
    assert result.countries == [lesson.CITIES[city]]
    assert result.filter_indexes == [lesson.CITY_INDEX] and "IndexNode" in result.filter_nodes


def test_a_filter_on_an_unindexed_attribute_scans_the_collection(result, data):
    customers = data.collections[lesson.CUSTOMERS]
    assert result.unindexed_count == sum(c["profile"]["since"] < lesson.SINCE_BEFORE for c in customers)
    assert "EnumerateCollectionNode" in result.unindexed_nodes and "IndexNode" not in result.unindexed_nodes


def test_key_value_by_key_with_rev_as_the_lock(result, data):
    kv = result.key_value
    assert kv.found == data.collections[lesson.CUSTOMERS][recommendations.SHOWN_PERSON]["name"]
    assert kv.refused == {1210: 1, 1200: 1}  # the key inserted twice, then the stale revision
    assert kv.refused_http == [409, 412]
    assert (
        kv.final == {"name": "Guest", "visits": 2} and kv.revisions == 2
    )  # the refused writes left no trace
    assert kv.customers_after == len(data.collections[lesson.CUSTOMERS])


def test_traversals_count_the_paths_python_counts(result, data, queries):
    start = queries["outbound paths"][1]["start"]
    assert result.outbound == paths_by_depth(neighbours(data, both_ways=False), start)
    assert result.any_direction == paths_by_depth(neighbours(data, both_ways=True), start)


def test_the_shortest_path_is_as_short_as_breadth_first_search_says(result, data, queries):
    bind_vars = queries["shortest path"][1]
    near = neighbours(data, both_ways=True)
    path = result.shortest
    assert (path[0], path[-1]) == (bind_vars["start"], bind_vars["target"])
    assert len(path) - 1 == distance(near, bind_vars["start"], bind_vars["target"])
    assert all(b in {other for _, other in near[a]} for a, b in pairwise(path))


def test_also_bought_is_the_neo4j_lessons_list(result, data, queries):
    sku = queries["also bought"][1]["product"].split("/")[1]
    assert result.also_bought == also_bought_from_people(data.shop, sku)


def test_one_query_reads_both_indexes_and_traverses(result, data, queries):
    assert result.one_query == same_city_picks(data, queries["one query"][1]["key"])
    assert {"primary", lesson.CITY_INDEX} <= set(result.one_query_indexes)
    assert "TraversalNode" in result.one_query_nodes
    assert result.holds


def test_a_second_run_gives_the_same_facts(arangodb, result):
    again = run_lesson(arangodb.url)
    # Which of several shortest paths comes back is not defined: only its length must repeat.
    assert len(again.shortest) == len(result.shortest)
    assert dataclasses.replace(again, shortest=result.shortest) == result

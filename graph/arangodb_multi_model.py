"""ArangoDB multi-model: documents, key-value and a graph in one engine, and one AQL query over all three

ArangoDB keeps JSON documents in collections, reads and writes each one by its `_key` like a
key-value store, and makes a graph of them with edge collections (documents with `_from` and `_to`);
one language, AQL, queries all three. This lesson loads the shop of graph/recommendations.py (the
same people, products, categories and purchases, from the same seed) as customers with a nested
address, products and categories, joined by `bought` and `in_category` edges declared as the named
graph `shop`. Then: a filter on a nested attribute served by a persistent index, which the plan from
db.aql.explain() names; the same collection used as a key-value store, with `_rev` as an optimistic
lock (a stale revision refused with error 1200, HTTP 412; a key inserted twice with 1210, HTTP 409);
traversals from a customer, OUTBOUND and ANY, and a shortest path; the Cypher lesson's "people who
bought this also bought" in AQL, the same list on the same data; and one query that looks a customer
up by key, filters the customers of the same city through the index and traverses to what they bought.

Engine: ArangoDB 3.12 (ARANGO_URL, root's password in it; the compose image arangodb:3.12.10), its own
database `arangodb_multi_model`, dropped and created at the start. No local server exists: without
Docker the suite skips the tests that need one and runs the rest (bind parameters, the Python side).
Run: `make up SERVICES=arangodb`, then `python graph/arangodb_multi_model.py`.
Look for: the index name in the filter's plan, the refused writes' error numbers, paths per depth
(OUTBOUND stops at the categories, ANY comes back through other buyers), the also-bought list of
graph/recommendations.py, and both indexes and a TraversalNode in the plan of the one query.

Checked against (ArangoDB 3.12 documentation):
https://docs.arango.ai/arangodb/3.12/aql/graph-queries/traversals/
https://docs.arango.ai/arangodb/3.12/aql/graph-queries/shortest-path/
https://docs.arango.ai/arangodb/3.12/aql/fundamentals/bind-parameters/
https://docs.arango.ai/arangodb/3.12/aql/fundamentals/type-and-value-order/ (string order)
https://docs.arango.ai/arangodb/3.12/aql/execution-and-performance/explaining-queries/
https://docs.arango.ai/arangodb/3.12/indexes-and-search/indexing/working-with-indexes/persistent-indexes/
https://docs.arango.ai/arangodb/3.12/develop/http-api/documents/ (the _rev precondition: 412; 409)
https://docs.arango.ai/arangodb/3.12/develop/error-codes/ (1200 conflict, 1210 unique constraint)
https://docs.arango.ai/arangodb/3.12/operations/installation/docker/
"""

from __future__ import annotations

import importlib
import random
from collections import Counter
from dataclasses import dataclass

from arango import ArangoClient
from arango.database import StandardDatabase
from arango.exceptions import DocumentInsertError, DocumentRevisionError

from common import console
from common.settings import arangodb_params, require

REQUIRES = ("arangodb",)
DATABASE = "arangodb_multi_model"
SEED = 43  # the addresses and profiles; the shop itself comes from graph/recommendations.py's seed
CUSTOMERS, PRODUCTS, CATEGORIES = "customers", "products", "categories"
BOUGHT, IN_CATEGORY = "bought", "in_category"
GRAPH = "shop"
CITY_INDEX = "customers_city"
GUEST = "guest-1"  # the key-value step's own document, removed at its end
SINCE_BEFORE = 2018  # the unindexed filter: customers since before this year
CITIES = {"Ghent": "Belgium", "Graz": "Austria", "Leeds": "United Kingdom", "Lisbon": "Portugal",
          "Lyon": "France", "Nantes": "France", "Porto": "Portugal", "Turin": "Italy"}  # fmt: skip
# A named graph: which edge collection joins which document collections.
EDGE_DEFINITIONS = [
    {"edge_collection": BOUGHT, "from_vertex_collections": [CUSTOMERS], "to_vertex_collections": [PRODUCTS]},
    {"edge_collection": IN_CATEGORY, "from_vertex_collections": [PRODUCTS], "to_vertex_collections": [CATEGORIES]},
]  # fmt: skip
# A persistent index on a nested attribute: the path, dotted.
CITY_INDEX_DEFINITION = {"type": "persistent", "fields": ["address.city"], "name": CITY_INDEX}

# @name binds a value, @@name a collection (its bind_vars key is "@name").
CITY_FILTER = """
FOR c IN @@customers
  FILTER c.address.city == @city
  RETURN [c._key, c.address.country]
"""
UNINDEXED_FILTER = """
FOR c IN @@customers
  FILTER c.profile.since < @year
  COLLECT WITH COUNT INTO n
  RETURN n
"""
# Every path of one to three edges from the start, counted by length and by where it ends. The
# direction is a keyword, not a value (no bind parameter can stand for it): ANY is a second query.
OUTBOUND_PATHS = """
FOR v, e, p IN 1..3 OUTBOUND @start GRAPH @graph
  COLLECT depth = LENGTH(p.edges), kind = PARSE_IDENTIFIER(v).collection WITH COUNT INTO paths
  SORT depth, kind
  RETURN [depth, kind, paths]
"""
ANY_PATHS = """
FOR v, e, p IN 1..3 ANY @start GRAPH @graph
  COLLECT depth = LENGTH(p.edges), kind = PARSE_IDENTIFIER(v).collection WITH COUNT INTO paths
  SORT depth, kind
  RETURN [depth, kind, paths]
"""
SHORTEST = """
FOR v IN ANY SHORTEST_PATH @start TO @target GRAPH @graph
  RETURN v._id
"""
# graph/recommendations.py's ALSO_BOUGHT: from the product in to its buyers, out to what else they
# bought; ties by name, as there. INBOUND from a product follows `bought` only (`in_category` edges
# leave it), OUTBOUND from a customer too.
ALSO_BOUGHT = """
FOR buyer IN 1..1 INBOUND @product GRAPH @graph
  FOR other IN 1..1 OUTBOUND buyer GRAPH @graph
    FILTER other._id != @product
    COLLECT name = other.name WITH COUNT INTO buyers
    SORT buyers DESC, name
    LIMIT @n
    RETURN [name, buyers]
"""
# The three models in one query: a key lookup (primary index), a document filter on the nested city
# (the persistent index) and traversals (what I bought, what my neighbours bought).
ONE_QUERY = """
FOR me IN @@customers
  FILTER me._key == @key
  LET mine = (FOR owned IN 1..1 OUTBOUND me GRAPH @graph RETURN owned._id)
  FOR neighbour IN @@customers
    FILTER neighbour.address.city == me.address.city
    FILTER neighbour._key != me._key
    FOR product IN 1..1 OUTBOUND neighbour GRAPH @graph
      FILTER product._id NOT IN mine
      COLLECT name = product.name WITH COUNT INTO neighbours
      SORT neighbours DESC, name
      LIMIT @n
      RETURN [name, neighbours]
"""


def sibling(name: str):
    """Another lesson of this folder, for its data: `graph.<name>` when this file is imported as
    `graph.arangodb_multi_model`, `<name>` when it runs as a script (its folder is first on the path)."""
    return importlib.import_module(f"{__package__}.{name}" if __package__ else name)


@dataclass
class ShopData:
    shop: object  # graph/recommendations.py's Shop: categories, products, people (skus bought)
    collections: dict[str, list[dict]]  # collection name -> its documents (edges: _from and _to)


@dataclass
class KeyValue:
    found: str  # the name read by _key
    revisions: int  # distinct _rev values the guest had
    refused: dict[int, int]  # ArangoDB error number -> writes refused with it
    refused_http: list[int]  # their HTTP statuses, in order
    final: dict  # the guest as read back after the refused writes
    customers_after: int  # counted once the guest was removed


@dataclass
class MultiModelResult:
    counts: dict[str, int]  # documents per collection, read back
    city: str
    city_customers: int
    countries: list[str]  # the nested attribute read back, distinct
    filter_nodes: list[str]
    filter_indexes: list[str]  # index names in the IndexNodes of the filter's plan
    unindexed_count: int
    unindexed_nodes: list[str]
    key_value: KeyValue
    outbound: list[tuple[int, str, int]]
    any_direction: list[tuple[int, str, int]]
    shortest: list[str]  # vertex ids; which of several shortest paths is not defined
    also_bought: list[tuple[str, int]]
    one_query: list[tuple[str, int]]
    one_query_nodes: list[str]
    one_query_indexes: list[str]

    @property
    def holds(self) -> bool:
        """Each model did its part: the index served the filter, the stale and duplicate writes were
        refused, the traversals found paths, and the one query read both indexes and traversed."""
        return (
            self.filter_indexes == [CITY_INDEX]
            and "IndexNode" not in self.unindexed_nodes
            and self.key_value.refused == {1200: 1, 1210: 1}
            and [depth for depth, _, _ in self.outbound] == [1, 2]  # customer -> product -> category
            and len(self.shortest) > 2
            and bool(self.also_bought)
            and bool(self.one_query)
            and {"primary", CITY_INDEX} <= set(self.one_query_indexes)
            and "TraversalNode" in self.one_query_nodes
        )


# --- the data, and every query with its bind parameters (no server needed) ------------------------


def slug(name: str) -> str:
    return name.lower().replace(" ", "-")


def customer_key(number: int) -> str:
    return f"c{number:03d}"


def generate(seed: int = SEED) -> ShopData:
    """graph/recommendations.py's shop as documents and edges, customers given a nested address."""
    shop = sibling("recommendations").generate()
    rng = random.Random(seed)
    customers = []
    for number, person in enumerate(shop.people):
        city = rng.choice(sorted(CITIES))
        address = {"city": city, "country": CITIES[city]}
        profile = {"since": rng.randint(2012, 2024), "newsletter": rng.random() < 0.4}
        customers.append(
            {"_key": customer_key(number), "name": person["name"], "address": address, "profile": profile}
        )
    bought = [
        {"_from": f"{CUSTOMERS}/{customer_key(number)}", "_to": f"{PRODUCTS}/{sku}"}
        for number, person in enumerate(shop.people)
        for sku in person["bought"]
    ]
    in_category = [
        {"_from": f"{PRODUCTS}/{p['sku']}", "_to": f"{CATEGORIES}/{slug(c)}"}
        for p in shop.products
        for c in p["categories"]
    ]
    return ShopData(shop, {
        CUSTOMERS: customers,
        PRODUCTS: [{"_key": p["sku"], "name": p["name"], "categories": p["categories"]} for p in shop.products],
        CATEGORIES: [{"_key": slug(name), "name": name} for name in shop.categories],
        BOUGHT: bought,
        IN_CATEGORY: in_category,
    })  # fmt: skip


def statements(data: ShopData) -> dict[str, tuple[str, dict]]:
    """Every AQL query of the lesson with the bind parameters run() passes to it."""
    recommendations = sibling("recommendations")
    me, last = data.collections[CUSTOMERS][recommendations.SHOWN_PERSON], data.collections[CUSTOMERS][-1]
    start = f"{CUSTOMERS}/{me['_key']}"
    product = f"{PRODUCTS}/{recommendations.most_bought(data.shop)['sku']}"
    n = recommendations.TOP_N
    return {
        "city filter": (CITY_FILTER, {"@customers": CUSTOMERS, "city": me["address"]["city"]}),
        "unindexed filter": (UNINDEXED_FILTER, {"@customers": CUSTOMERS, "year": SINCE_BEFORE}),
        "outbound paths": (OUTBOUND_PATHS, {"start": start, "graph": GRAPH}),
        "any paths": (ANY_PATHS, {"start": start, "graph": GRAPH}),
        "shortest path": (SHORTEST, {"start": start, "target": f"{CUSTOMERS}/{last['_key']}", "graph": GRAPH}),
        "also bought": (ALSO_BOUGHT, {"product": product, "graph": GRAPH, "n": n}),
        "one query": (ONE_QUERY, {"@customers": CUSTOMERS, "key": me["_key"], "graph": GRAPH, "n": n}),
    }  # fmt: skip


# --- the server side -------------------------------------------------------------------------------


def aql(db: StandardDatabase, statement: tuple[str, dict]) -> list:
    query, bind_vars = statement
    return [
        tuple(row) if isinstance(row, list) else row for row in db.aql.execute(query, bind_vars=bind_vars)
    ]


def plan_of(db: StandardDatabase, statement: tuple[str, dict]) -> tuple[list[str], list[str]]:
    """The plan's node types, and the names of the indexes its IndexNodes read."""
    query, bind_vars = statement
    nodes = db.aql.explain(query, bind_vars=bind_vars)["nodes"]
    indexes = [index["name"] for node in nodes if node["type"] == "IndexNode" for index in node["indexes"]]
    return [node["type"] for node in nodes], indexes


def reset_and_load(client: ArangoClient, username: str, password: str, data: ShopData) -> StandardDatabase:
    system = client.db("_system", username=username, password=password)
    system.delete_database(DATABASE, ignore_missing=True)
    system.create_database(DATABASE)
    db = client.db(DATABASE, username=username, password=password)
    db.create_graph(GRAPH, edge_definitions=EDGE_DEFINITIONS)  # creates its five collections
    db.collection(CUSTOMERS).add_index(CITY_INDEX_DEFINITION)
    for name, rows in data.collections.items():
        db.collection(name).import_bulk(rows, halt_on_error=True)
    return db


def key_value(db: StandardDatabase, existing: str) -> KeyValue:
    """The collection as a key-value store: read, insert and replace by _key, _rev as the lock."""
    customers = db.collection(CUSTOMERS)
    found = customers.get(existing)["name"]  # one primary-index lookup, no query
    refused: Counter = Counter()
    http: list[int] = []
    first = customers.insert({"_key": GUEST, "name": "Guest", "visits": 1})
    try:
        customers.insert({"_key": GUEST, "name": "Another guest", "visits": 1})  # insert never overwrites
    except DocumentInsertError as error:
        refused[error.error_code] += 1
        http.append(error.http_code)
    second = customers.replace({"_key": GUEST, "_rev": first["_rev"], "name": "Guest", "visits": 2})
    try:  # a writer still holding the first revision: its replace is refused, nothing is lost
        customers.replace({"_key": GUEST, "_rev": first["_rev"], "name": "Guest", "visits": 99})
    except DocumentRevisionError as error:
        refused[error.error_code] += 1
        http.append(error.http_code)
    final = customers.get(GUEST)
    customers.delete({"_key": GUEST, "_rev": final["_rev"]})
    return KeyValue(
        found=found,
        revisions=len({first["_rev"], second["_rev"], final["_rev"]}),
        refused=dict(refused),
        refused_http=http,
        final={key: value for key, value in final.items() if not key.startswith("_")},
        customers_after=customers.count(),
    )


def run(client: ArangoClient, username: str, password: str) -> MultiModelResult:
    console.title("ArangoDB multi-model: documents, key-value and a graph in one engine")
    data = generate()
    queries = statements(data)
    db = reset_and_load(client, username, password, data)
    facts: dict = {"counts": {name: db.collection(name).count() for name in data.collections}}
    console.say("loaded, counted on the server: " + ", ".join(f"{n} {c}" for c, n in facts["counts"].items()))

    console.step("Documents: a filter on a nested attribute, served by a persistent index")
    facts["city"] = queries["city filter"][1]["city"]
    rows = aql(db, queries["city filter"])
    facts["city_customers"], facts["countries"] = len(rows), sorted({country for _, country in rows})
    facts["filter_nodes"], facts["filter_indexes"] = plan_of(db, queries["city filter"])
    console.say(f"customers in {facts['city']}: {len(rows)}; their address.country: {facts['countries']}")
    console.say(f"plan: {' -> '.join(facts['filter_nodes'])}; indexes: {facts['filter_indexes']}")
    [facts["unindexed_count"]] = aql(db, queries["unindexed filter"])
    facts["unindexed_nodes"], _ = plan_of(db, queries["unindexed filter"])
    console.say(f"customers since before {SINCE_BEFORE}, profile.since unindexed: {facts['unindexed_count']}")
    console.say(f"plan: {' -> '.join(facts['unindexed_nodes'])}")

    console.step("Key-value: the same collection read and written by _key, _rev as an optimistic lock")
    me = queries["one query"][1]["key"]
    kv = facts["key_value"] = key_value(db, me)
    console.say(
        f"get {CUSTOMERS}/{me}: {kv.found}; revisions of {GUEST}: {kv.revisions}; read back: {kv.final}"
    )
    console.say(f"refused (error number: writes): {kv.refused}, with HTTP {kv.refused_http}")

    console.step("A graph: every path of one to three edges from a customer, OUTBOUND then ANY")
    facts["outbound"] = aql(db, queries["outbound paths"])
    facts["any_direction"] = aql(db, queries["any paths"])
    console.table(
        ["OUTBOUND: edges", "ends in", "paths"], facts["outbound"], caption=f"from {CUSTOMERS}/{me}"
    )
    console.table(["ANY: edges", "ends in", "paths"], facts["any_direction"])
    console.say(
        "OUTBOUND goes from _from to _to and stops at categories; ANY comes back through other buyers."
    )
    shortest = facts["shortest"] = aql(db, queries["shortest path"])
    console.say(f"a shortest path between two customers: {' - '.join(shortest)} ({len(shortest) - 1} edges)")

    console.step("People who bought the most bought product also bought: graph/recommendations.py's question")
    facts["also_bought"] = aql(db, queries["also bought"])
    console.table(["product", "bought by buyers of both"], facts["also_bought"])
    console.say("The same data and the same ranking (ties by name) as the Cypher lesson: the same list.")

    console.step("One query: a key lookup, a document filter through the index, and traversals")
    facts["one_query"] = aql(db, queries["one query"])
    facts["one_query_nodes"], facts["one_query_indexes"] = plan_of(db, queries["one query"])
    console.table(["bought by customers of the same city, not by this one", "customers"], facts["one_query"])
    console.say(f"plan: {' -> '.join(facts['one_query_nodes'])}; indexes: {facts['one_query_indexes']}")
    return MultiModelResult(**facts)


def main() -> int:
    require(*REQUIRES)
    params = arangodb_params()
    client = ArangoClient(hosts=params["hosts"])
    try:
        result = run(client, params["username"], params["password"])
    finally:
        client.close()
    return 0 if result.holds else 1


if __name__ == "__main__":
    raise SystemExit(main())

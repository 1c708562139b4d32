"""JanusGraph schema: property keys, edge multiplicity, composite indexes, and the storage underneath

JanusGraph is a graph layer over a storage backend. Its schema is declared through the management
API: property keys with a data type and a cardinality, vertex and edge labels, an edge label's
multiplicity (MANY2ONE: at most one outgoing edge of that label per vertex, any number incoming),
and graph indexes. With `schema.default=none` (what production setups use) nothing is created on
first use: an undeclared label or property key is refused, as a wrong data type is. This lesson
declares a small schema (people living in cities), loads two thousand people, then shows each
refusal: a second city for one person, an undeclared vertex label, an undeclared property key, a
word for an Integer key (a string of digits would be converted), a second person with the same
email (the index is unique).

Management calls are Groovy scripts sent to the server (`client.submit`), as JanusGraph documents
them: each script here is a constant and every name reaches it as a binding; data goes through
bytecode traversals, read with janusgraphpython's serializer (a plain gremlinpython client cannot
read JanusGraph's edge ids, and the lesson shows that too).

A composite index answers equality lookups on its keys from one backend row. profile() shows the
lookup by email answered by the index `jgs_by_email`, and the lookup by handle (no index) answered
by a scan of every vertex, which the server also logs as a warning ("Query requires iterating over
all vertices"); with `query.force-index=true` the scan is refused outright instead.

What a storage backend means: JanusGraph keeps no data of its own. Each vertex is a row of the
storage backend, keyed by the vertex id, whose columns are its properties and edges (the adjacency
list, sorted by label, so a vertex's edges of one label are one slice); a composite index is more
rows, keyed by the indexed value. Here the backend is `inmemory`: all of it in the server's heap, one
server, gone at restart. In production it is Cassandra (or ScyllaDB), HBase or Bigtable: the rows are
partitioned and replicated across that cluster, any number of stateless JanusGraph Servers (or
applications embedding JanusGraph) run the traversals and share it, the schema and GLOBAL settings
live in the backend for all of them, ids are handed out in blocks per instance, and uniqueness needs
the backend's locking. Mixed indexes (full text, ranges, geo) go to a separate index backend
(Elasticsearch, Solr or Lucene).

Engine: JanusGraph 1.1 with the inmemory backend and `schema.default=none` (JANUSGRAPH_URL); schema
names and labels `jgs_*` (a schema element cannot be dropped, so the lesson reuses what it declared).
Run: `make up SERVICES=janusgraph` (or `make local-up`), then `python graph/janusgraph_schema.py`.
Look for: the five refusals and their messages, `index=jgs_by_email` against `fullscan=true`, and
the lookup times.
"""

from __future__ import annotations

import contextlib
import logging
import random
from dataclasses import dataclass, field

from gremlin_python.driver.client import Client
from gremlin_python.driver.driver_remote_connection import DriverRemoteConnection
from gremlin_python.driver.protocol import GremlinServerError
from gremlin_python.process.anonymous_traversal import traversal
from gremlin_python.process.graph_traversal import GraphTraversalSource, __
from janusgraph_python.driver.serializer import JanusGraphBinarySerializersV1

from common import console
from common.settings import janusgraph_url, require
from common.timing import best_of

REQUIRES = ("janusgraph",)
SEED, N_PEOPLE = 41, 2_000
CITIES = ["Lisbon", "Porto", "Lyon", "Bonn", "Graz", "Turin"]
FIRST = ["Ana", "Bo", "Cleo", "Dev", "Eli", "Fay", "Gus", "Ines", "Jon", "Kai", "Lea", "Max"]
# The schema's names, bound into the management scripts (never formatted into them).
NAMES = {
    "emailKey": "jgs_email",
    "handleKey": "jgs_handle",
    "nameKey": "jgs_name",
    "bornKey": "jgs_born",
    "personLabel": "jgs_person",
    "cityLabel": "jgs_city",
    "livesIn": "jgs_lives_in",
    "byEmail": "jgs_by_email",
}
# Idempotent: what exists is kept (a schema element can be renamed but never dropped). The keys and
# the index are made in one management transaction, so the index is ENABLED at once; an index added
# over keys that already hold data would need a REINDEX first.
DECLARE_SCHEMA = """
def mgmt = graph.openManagement()
try {
  def makeKey = { name, type -> mgmt.containsPropertyKey(name) ? mgmt.getPropertyKey(name)
        : mgmt.makePropertyKey(name).dataType(type).cardinality(org.janusgraph.core.Cardinality.SINGLE).make() }
  def email = makeKey(emailKey, String.class)
  makeKey(handleKey, String.class); makeKey(nameKey, String.class); makeKey(bornKey, Integer.class)
  [personLabel, cityLabel].each { if (!mgmt.containsVertexLabel(it)) mgmt.makeVertexLabel(it).make() }
  if (!mgmt.containsEdgeLabel(livesIn)) mgmt.makeEdgeLabel(livesIn).multiplicity(Multiplicity.MANY2ONE).make()
  if (!mgmt.containsGraphIndex(byEmail)) mgmt.buildIndex(byEmail, Vertex.class).addKey(email).unique().buildCompositeIndex()
  mgmt.commit()
} catch (e) { mgmt.rollback(); throw e }
"""
READ_SCHEMA = """
def mgmt = graph.openManagement()
try {
  def declared = [emailKey, handleKey, nameKey, bornKey].collect { name -> def k = mgmt.getPropertyKey(name)
         [name, 'property key', k.dataType().simpleName + ', ' + k.cardinality()] }
  def emailIndex = mgmt.getGraphIndex(byEmail)
  declared + [[livesIn, 'edge label', mgmt.getEdgeLabel(livesIn).multiplicity().toString()],
          [byEmail, 'composite index' + (emailIndex.isUnique() ? ', unique' : ''),
           emailIndex.getIndexStatus(mgmt.getPropertyKey(emailKey)).toString()]]
} finally { mgmt.rollback() }
"""
READ_SETTINGS = "['storage.backend', 'schema.default'].collect { graph.configuration().getString(it) }"


@dataclass
class SchemaResult:
    schema: list[tuple[str, str, str]]  # (name, kind, data type / multiplicity / status)
    storage_backend: str
    schema_default: str
    people: int
    cities: int
    refused: dict[str, str]  # what was tried -> the server's message
    people_after: int  # nothing of a refused request was written
    cities_of_one_person: int
    people_in_biggest_city: int  # MANY2ONE: one city out of each person, many people into a city
    by_email: dict[str, object]  # profile(): {"index": name or None, "fullscan": bool}
    by_handle: dict[str, object]
    same_person: bool
    plain_client_error: str
    seconds: dict[str, float] = field(compare=False)


def generate(seed: int = SEED) -> list[dict]:
    rng = random.Random(seed)
    people = []
    for number in range(1, N_PEOPLE + 1):
        first = rng.choice(FIRST)
        handle = f"{first.lower()}{number:04d}"
        people.append({"email": f"{handle}@jgs.example", "handle": handle, "name": first, "born": rng.randint(1950, 2005), "city": rng.choice(CITIES)})  # fmt: skip
    return people


@contextlib.contextmanager
def expected_error():
    """gremlinpython logs every error the server sends; here the error is the lesson's point."""
    logger = logging.getLogger("gremlinpython")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def refusal(attempt) -> str:
    """The server's message for a request it refuses (the whole request is rolled back)."""
    try:
        with expected_error():
            attempt.iterate()
    except GremlinServerError as refused:
        return str(refused).removeprefix("500: ").splitlines()[0]
    return "(accepted)"


def row(key: str):
    """The value of `key` in the row being loaded: a new anonymous traversal per use (steps mutate it)."""
    return __.select("r").select(key)


def reset_and_load(g: GraphTraversalSource, people: list[dict]) -> dict[str, object]:
    """Cities first, then each city's people with their one jgs_lives_in edge, one request a city."""
    g.V().has_label("jgs_person", "jgs_city").drop().iterate()  # no label index: a scan, logged
    city_ids = {}
    for city in CITIES:
        city_ids[city] = g.add_v("jgs_city").property("jgs_name", city).id_().next()
    for city, city_id in city_ids.items():
        rows = [{k: p[k] for k in ("email", "handle", "name", "born")} for p in people if p["city"] == city]
        (
            g.V(city_id).as_("c").constant(rows).unfold().as_("r")
            .add_v("jgs_person").property("jgs_email", row("email")).property("jgs_handle", row("handle"))
            .property("jgs_name", row("name")).property("jgs_born", row("born"))
            .add_e("jgs_lives_in").to("c")
            .iterate()
        )  # fmt: skip
    return city_ids


def refusals(g: GraphTraversalSource, someone: dict, other_city) -> dict[str, str]:
    person = g.V().has("jgs_person", "jgs_email", someone["email"])  # a traversal grows as steps are added
    return {
        "a second jgs_lives_in edge (MANY2ONE)": refusal(person.add_e("jgs_lives_in").to(__.V(other_city))),
        "an undeclared vertex label": refusal(g.add_v("jgs_pet").property("jgs_name", "Rex")),
        "an undeclared property key": refusal(
            g.add_v("jgs_person").property("jgs_email", "new@jgs.example").property("jgs_nickname", "Bo")
        ),
        "a word for the Integer key jgs_born": refusal(
            g.add_v("jgs_person")
            .property("jgs_email", "new@jgs.example")
            .property("jgs_born", "nineteen ninety")
        ),
        "a second person with the same email": refusal(
            g.add_v("jgs_person").property("jgs_email", someone["email"])
        ),
    }


def profiled(g: GraphTraversalSource, key: str, value: str) -> dict[str, object]:
    """profile() of a lookup: the index its backend query used, and whether it scanned everything."""
    metrics = g.V().has("jgs_person", key, value).profile().next()["metrics"]
    index, fullscan = None, False
    while metrics:
        metric = metrics.pop()
        index = metric["annotations"].get("index", index)
        fullscan = fullscan or metric["annotations"].get("fullscan") == "true"
        metrics.extend(metric["metrics"])
    return {"index": index, "fullscan": fullscan}


def plain_gremlinpython(url: str) -> str:
    """The same edge read with plain gremlinpython: it does not know JanusGraph's edge id type."""
    connection = DriverRemoteConnection(url, "g")
    try:
        traversal().with_remote(connection).E().has_label("jgs_lives_in").limit(1).next()
        return "(read)"
    except Exception as error:  # the driver's deserializer fails; the type depends on its version
        return f"{type(error).__name__}: {error}"
    finally:
        connection.close()


def run(g: GraphTraversalSource, client: Client, url: str) -> SchemaResult:
    console.title("JanusGraph schema: keys, multiplicity, composite indexes and the storage underneath")
    console.step("Declare the schema through the management API (a Groovy script with bindings)")
    client.submit(DECLARE_SCHEMA, NAMES).all().result()
    schema = [tuple(row) for row in client.submit(READ_SCHEMA, NAMES).all().result()]
    console.table(["name", "kind", "type, cardinality / multiplicity / status"], schema)
    backend, default = client.submit(READ_SETTINGS).all().result()
    console.say(f"storage.backend={backend}, schema.default={default}")

    console.step("Load people and cities with bytecode traversals")
    people = generate()
    city_ids = reset_and_load(g, people)
    n_people = g.V().has_label("jgs_person").count().next()
    console.say(f"{n_people:,} people living in {len(city_ids)} cities, one jgs_lives_in edge each")

    console.step("What the schema refuses: each request rolled back whole")
    someone = people[0]
    other = next(i for c, i in city_ids.items() if c != someone["city"])
    refused = refusals(g, someone, other)
    console.table(["tried", "the server said"], list(refused.items()))

    def person():  # a fresh traversal each time: adding a step changes the traversal object itself
        return g.V().has("jgs_person", "jgs_email", someone["email"])

    cities_of_one = person().out("jgs_lives_in").count().next()
    biggest = max(g.V(i).in_("jgs_lives_in").count().next() for i in city_ids.values())
    console.say(
        f"{someone['handle']} still lives in {cities_of_one} city; the biggest city has {biggest} people"
    )

    console.step("A composite index against a scan: profile() of the two lookups")
    by_email, by_handle = (
        profiled(g, "jgs_email", someone["email"]),
        profiled(g, "jgs_handle", someone["handle"]),
    )
    same = person().id_().next() == g.V().has("jgs_person", "jgs_handle", someone["handle"]).id_().next()
    seconds = {
        "by email": best_of(lambda: person().id_().next()),
        "by handle": best_of(lambda: g.V().has("jgs_person", "jgs_handle", someone["handle"]).id_().next()),
    }
    for label, found in (("by email (indexed)", by_email), ("by handle (no index)", by_handle)):
        console.say(f"{label}: index={found['index']}, fullscan={str(found['fullscan']).lower()}")
    console.compare("lookup by handle (scan)", seconds["by handle"], "by email (index)", seconds["by email"])

    console.step("What runs where: the storage backend under the graph")
    console.table(
        ["what", "here", "in a distributed deployment"],
        [
            ("traversals, schema checks, transactions", "this JanusGraph Server", "many stateless servers or embedded instances"),
            ("vertices with their edges, one row each", f"{backend}: this heap", "Cassandra/ScyllaDB, HBase or Bigtable"),
            ("composite indexes, rows keyed by value", "this heap", "the same storage cluster"),
            ("mixed indexes: full text, ranges, geo", "none", "Elasticsearch, Solr or Lucene"),
            ("schema, GLOBAL settings, id blocks, locks", "this heap", "the storage backend, shared by every instance"),
        ],
    )  # fmt: skip

    console.step("Why janusgraphpython: a plain gremlinpython client reads an edge")
    plain = plain_gremlinpython(url)
    console.say(f"plain gremlinpython: {plain}")
    console.say(
        "its GraphBinary reader knows no custom types; an edge id here is JanusGraph's RelationIdentifier"
    )
    return SchemaResult(
        schema=schema,
        storage_backend=backend,
        schema_default=default,
        people=n_people,
        cities=len(city_ids),
        refused=refused,
        people_after=g.V().has_label("jgs_person").count().next(),
        cities_of_one_person=cities_of_one,
        people_in_biggest_city=biggest,
        by_email=by_email,
        by_handle=by_handle,
        same_person=same,
        plain_client_error=plain,
        seconds=seconds,
    )


def main() -> int:
    require(*REQUIRES)
    url = janusgraph_url()
    serializer = JanusGraphBinarySerializersV1()
    connection = DriverRemoteConnection(url, "g", message_serializer=serializer)
    client = Client(url, "g", message_serializer=JanusGraphBinarySerializersV1())
    try:
        result = run(traversal().with_remote(connection), client, url)
    finally:
        connection.close()
        client.close()
    holds = (
        "(accepted)" not in result.refused.values()
        and result.by_email["index"]
        and result.by_handle["fullscan"]
    )
    return 0 if holds else 1


if __name__ == "__main__":
    raise SystemExit(main())

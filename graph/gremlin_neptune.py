"""Gremlin for Amazon Neptune: the Cypher lessons' paths and recommendations as bytecode traversals

The questions of graph/traversals.py and graph/recommendations.py, on the same generated data,
asked in Gremlin: people one to three hops out (paths against people), every shortest path between
two people, friends of friends, a filter on every edge of a path, a shortest path that avoids a city;
then also-bought, Jaccard similarity and what the most similar customers bought. Cypher describes a
pattern and lets the planner find it; Gremlin spells out the walk step by step, so a shortest path is
a breadth-first search written out (repeat, a set of vertices already seen, a barrier per level).
Data goes in with mergeV/mergeE, vertices carrying string ids of the lesson's own, as Neptune's
user-supplied ids are strings; a lookup by id is the cheapest one Neptune has.

What Neptune refuses that Gremlin Server accepts: Neptune parses Gremlin itself rather than running
Groovy, so it takes traversals only: no lambda steps, no Groovy scripts (variables, loops, arbitrary
Java), no `graph` object, no script bindings. This lesson sends bytecode traversals only and checks
each one for lambdas before sending it; then it shows Gremlin Server running a lambda and a Groovy
script that Neptune would refuse, and the same lambda refused by TinkerPop's LambdaRestrictionStrategy,
the way to make a local server refuse what Neptune refuses. See "Gremlin standards compliance in Amazon
Neptune", https://docs.aws.amazon.com/neptune/latest/userguide/access-graph-gremlin-differences.html
The driver's minor version must be the server's: each Neptune engine release names the TinkerPop
version it speaks, and a gremlinpython 3.8 ends iterate() with a `discard()` step that a 3.7 server
does not know ("Could not locate method"), so gremlinpython is pinned to 3.7 here.

Neptune also answers openCypher, over HTTPS (`/openCypher`) and Bolt, on the same graph: the Cypher
lessons are this lesson's counterpart, and Neo4j's driver connects to Neptune over Bolt
(https://docs.aws.amazon.com/neptune/latest/userguide/access-graph-opencypher.html). Not all of their
Cypher runs there: Neptune's openCypher lacks shortestPath() and allShortestPaths(), which is what the
repeat() below replaces, and Neo4j extensions such as COUNT {} subqueries need rewriting
(https://docs.aws.amazon.com/neptune/latest/userguide/feature-opencypher-compliance.html).

Engine: Gremlin Server 3.7 with TinkerGraph, the local stand-in for Neptune (GREMLIN_URL); vertices
labelled `gn_*` with ids `gn:...`, edges between them only.
Run: `make up SERVICES=gremlin` (or `make local-up`), then `python graph/gremlin_neptune.py`.
Look for: the same numbers as the two Cypher lessons, "lambdas in this lesson's traversals: 0", and
the lambda that Gremlin Server runs but the lesson's check and LambdaRestrictionStrategy refuse.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import logging
from dataclasses import dataclass, field

from gremlin_python.driver.client import Client
from gremlin_python.driver.driver_remote_connection import DriverRemoteConnection
from gremlin_python.driver.protocol import GremlinServerError
from gremlin_python.process.anonymous_traversal import traversal
from gremlin_python.process.graph_traversal import GraphTraversal, GraphTraversalSource, __
from gremlin_python.process.strategies import LambdaRestrictionStrategy
from gremlin_python.process.traversal import Bytecode, Column, Direction, Order, P, Scope, T

from common import console
from common.settings import gremlin_url, require
from common.timing import timer

REQUIRES = ("gremlin",)
PREFIX = "gn"  # labels gn_person, gn_customer, gn_product, gn_category; ids gn:<kind>:<key>
LABELS = [f"{PREFIX}_{kind}" for kind in ("person", "customer", "product", "category")]
BATCH = 500  # rows per mergeV/mergeE request
# A Groovy script: variables and a loop. Gremlin Server runs it; Neptune accepts only traversals.
GROOVY_SCRIPT = "total = 0; for (i in 1..3) { total += i }; total"
# A lambda step: a Groovy closure shipped inside the bytecode and compiled on the server.
LAMBDA = "it.get().value('name').length()"


def sibling(name: str):
    """Another lesson of this folder, for its data generator: `graph.<name>` when this file is imported
    as `graph.gremlin_neptune`, `<name>` when it runs as a script (its folder is then first on the path)."""
    return importlib.import_module(f"{__package__}.{name}" if __package__ else name)


def vid(kind: str, key: str) -> str:
    return f"{PREFIX}:{kind}:{key}"


@dataclass
class GremlinResult:
    person: str
    other: str
    within_three: dict[int, tuple[int, int]]  # hops -> (people first reached there, paths ending there)
    all_shortest: list[list[str]]
    friends_of_friends: list[tuple[str, str, int]]
    within_three_since: int
    shortest_avoiding: list[str] = field(compare=False)  # one of the shortest: which one may differ
    customer: str = ""
    product: str = ""
    also_bought: list[tuple[str, int]] = field(default_factory=list)
    similar_people: list[tuple[str, int, int, float]] = field(default_factory=list)
    from_similar_people: list[tuple[str, int]] = field(default_factory=list)
    traversals_sent: int = 0
    lambdas_in_lesson: list[str] = field(default_factory=list)  # steps of the lesson's own traversals
    lambda_steps_found: list[str] = field(default_factory=list)  # in the demonstration traversal
    lambda_refused_by_check: str = ""  # the lesson's own check, before sending
    lambda_on_gremlin_server: object = None  # what Gremlin Server answered to it, sent unchecked
    lambda_refused: str = ""  # the server's error under LambdaRestrictionStrategy
    groovy_script_result: object = None


def lambda_steps(bytecode: Bytecode) -> list[str]:
    """The steps of a traversal (child traversals and predicates included) that carry a lambda."""
    found = []
    for name, *args in bytecode.source_instructions + bytecode.step_instructions:
        for arg in args:
            if inspect.isfunction(arg):
                found.append(name)
            elif isinstance(arg, (Bytecode, GraphTraversal)):
                found += lambda_steps(arg if isinstance(arg, Bytecode) else arg.bytecode)
    return found


class NeptuneWouldRefuse(ValueError):
    """A traversal with a lambda step: refused before it is sent, as Neptune would refuse it."""


class Checked:
    """Sends traversals as Neptune would take them: each one checked for lambdas first."""

    def __init__(self) -> None:
        self.sent = 0
        self.lambdas: list[str] = []

    def __call__(self, t: GraphTraversal) -> list:
        found = lambda_steps(t.bytecode)
        self.lambdas += found
        if found:
            raise NeptuneWouldRefuse(f"lambda in step(s) {found}")
        self.sent += 1
        return t.to_list()


def merge(send: Checked, g: GraphTraversalSource, rows: list[dict], edges: bool = False) -> None:
    """Upserts in batches: inject the rows, unfold them, and mergeV/mergeE each map (ids included):
    an element that exists is matched, one that does not is created, in one round trip per batch."""
    for start in range(0, len(rows), BATCH):
        batch = g.inject(rows[start : start + BATCH]).unfold()
        send((batch.merge_e() if edges else batch.merge_v()).none())


def reset_and_load(send: Checked, g, people, shop) -> None:
    """`people`: graph/traversals.py's friendships; `shop`: graph/recommendations.py's purchases."""
    send(g.V().has_label(*LABELS).drop())  # drops their edges too
    vertices = [
        {T.id: vid("person", r["email"]), T.label: "gn_person", **{k: r[k] for k in ("email", "handle", "name", "city")}}
        for r in people.rows
    ]  # fmt: skip
    vertices += [{T.id: vid("category", c), T.label: "gn_category", "name": c} for c in shop.categories]
    vertices += [
        {T.id: vid("product", p["sku"]), T.label: "gn_product", "sku": p["sku"], "name": p["name"]}
        for p in shop.products
    ]
    vertices += [
        {T.id: vid("customer", p["email"]), T.label: "gn_customer", "email": p["email"], "name": p["name"]}
        for p in shop.people
    ]
    merge(send, g, vertices)
    edges = [
        {T.label: "friend", Direction.OUT: vid("person", f["a"]), Direction.IN: vid("person", f["b"]), "since": f["since"]}
        for f in people.friendships
    ]  # fmt: skip
    edges += [
        {T.label: "in_category", Direction.OUT: vid("product", p["sku"]), Direction.IN: vid("category", c)}
        for p in shop.products
        for c in p["categories"]
    ]
    edges += [
        {T.label: "bought", Direction.OUT: vid("customer", p["email"]), Direction.IN: vid("product", sku)}
        for p in shop.people
        for sku in p["bought"]
    ]
    merge(send, g, edges, edges=True)


def within_three(g, email: str) -> GraphTraversal:
    """Every simple path of 1..3 hops (Cypher's *1..3 never repeats a relationship, which within three
    hops gives the same paths), grouped by the person it ends at, then by that person's fewest hops."""
    return (
        g.V(vid("person", email))
        .repeat(__.both("friend").simple_path()).emit().times(3)
        .group().by(__.id_()).by(__.path().count(Scope.local).fold())  # person -> lengths of paths
        .unfold()
        .project("hops", "paths")
        .by(__.select(Column.values).min_(Scope.local).math("_ - 1"))
        .by(__.select(Column.values).count(Scope.local))
        .group().by("hops").by(__.fold().project("people", "paths")
                               .by(__.count(Scope.local)).by(__.unfold().select("paths").sum_()))
    )  # fmt: skip


def shortest_paths(g, a: str, b: str, avoid_city: str | None = None) -> GraphTraversal:
    """Breadth-first search: each level's new vertices, all of them (barrier), join the `seen` set, so
    a vertex is reached only at its shortest distance, by every shortest path that leads there."""
    step = __.both("friend")
    if avoid_city:
        step = step.has("city", P.neq(avoid_city))
    step = step.where(P.without("seen")).barrier().aggregate("seen")
    walk = g.V(vid("person", a)).aggregate("seen").repeat(step).until(__.has_id(vid("person", b)))
    return walk.path().by("email")


def friends_of_friends(g, email: str) -> GraphTraversal:
    return (
        g.V(vid("person", email)).as_("me")
        .both("friend").aggregate("friends")
        .both("friend").where(P.neq("me")).where(P.without("friends"))
        .group_count().unfold()
        .project("email", "name", "through")
        .by(__.select(Column.keys).values("email")).by(__.select(Column.keys).values("name"))
        .by(__.select(Column.values))
        .order().by(__.select("through"), Order.desc).by(__.select("name")).by(__.select("email"))
    )  # fmt: skip


def within_three_since(g, email: str, year: int) -> GraphTraversal:
    """A filter on every edge of the path: only friendships made since `year` are walked."""
    step = __.both_e("friend").has("since", P.gte(year)).other_v().simple_path()
    return g.V(vid("person", email)).repeat(step).emit().times(3).dedup().count()


def also_bought(g, sku: str, n: int) -> GraphTraversal:
    return (
        g.V(vid("product", sku)).as_("p").in_("bought").out("bought").where(P.neq("p"))
        .group_count().by("name").unfold()
        .order().by(Column.values, Order.desc).by(Column.keys).limit(n)
    )  # fmt: skip


def most_similar(g, email: str) -> GraphTraversal:
    """Jaccard = shared / (mine + theirs - shared), for everyone with a product in common; `mine` is
    the side effect aggregated on the way out, so one traversal does it all."""
    return (
        g.V(vid("customer", email)).as_("me").out("bought").aggregate("mine")
        .in_("bought").where(P.neq("me"))
        .group_count().unfold()
        .project("customer", "name", "shared", "theirs", "mine")
        .by(Column.keys).by(__.select(Column.keys).values("name")).by(Column.values)
        .by(__.select(Column.keys).out("bought").count()).by(__.select("mine").count(Scope.local))
        .project("customer", "name", "shared", "union", "jaccard")
        .by(__.select("customer")).by(__.select("name")).by(__.select("shared"))
        .by(__.math("mine + theirs - shared")).by(__.math("shared / (mine + theirs - shared)"))
        .order().by(__.select("jaccard"), Order.desc).by(__.select("name"))
    )  # fmt: skip


def from_similar_people(g, email: str, neighbours: int, n: int) -> GraphTraversal:
    return (
        most_similar(g, email).limit(neighbours).select("customer")
        .out("bought").where(P.without("mine"))
        .group_count().by("name").unfold()
        .order().by(Column.values, Order.desc).by(Column.keys).limit(n)
    )  # fmt: skip


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


def what_neptune_refuses(g, url: str, result: GremlinResult, someone: str) -> None:
    """A lambda and a Groovy script: Gremlin Server runs both; Neptune would refuse both."""
    with_lambda = g.V(vid("person", someone)).map(lambda: LAMBDA)
    result.lambda_steps_found = lambda_steps(with_lambda.bytecode)
    try:
        Checked()(with_lambda)
    except NeptuneWouldRefuse as refused:
        result.lambda_refused_by_check = str(refused)
    result.lambda_on_gremlin_server = with_lambda.next()  # sent unchecked: the server compiles the closure
    guarded = g.with_strategies(LambdaRestrictionStrategy()).V(vid("person", someone)).map(lambda: LAMBDA)
    try:
        with expected_error():
            guarded.next()
    except GremlinServerError as refused:
        result.lambda_refused = str(refused).split(": ", 1)[-1]
    client = Client(url, "g")
    try:
        result.groovy_script_result = client.submit(GROOVY_SCRIPT).all().result()[0]
    finally:
        client.close()


def ask_paths(send: Checked, g, traversals, people) -> GremlinResult:
    a, b = traversals.pick_pair(people)
    names = {row["email"]: row["name"] for row in people.rows}
    console.step("One to three hops out: paths, not people (traversals.py's first question)")
    grouped = send(within_three(g, a))[0]
    reach = {int(hops): (v["people"], v["paths"]) for hops, v in sorted(grouped.items())}
    console.table(["hops away", "people", "paths of 1..3 hops to them"], [(h, *reach[h]) for h in reach])

    console.step(f"Every shortest path to {names[b]}, by breadth-first search in repeat()")
    every = sorted(p.objects for p in send(shortest_paths(g, a, b)))
    console.say(f"{len(every)} paths of {len(every[0]) - 1} hops")
    for path in every:
        console.say("  " + " - ".join(names[e] for e in path))

    console.step("Friends of friends who are not friends yet, and filters along the path")
    fof = [(r["email"], r["name"], r["through"]) for r in send(friends_of_friends(g, a))]
    console.say(f"{len(fof)} friends of friends; the most connected: {fof[0][1]} ({fof[0][2]} in common)")
    since = send(within_three_since(g, a, traversals.SINCE_YEAR))[0]
    avoiding = send(shortest_paths(g, a, b, traversals.AVOIDED_CITY).limit(1))[0].objects
    console.say(f"within 3 hops through friendships made since {traversals.SINCE_YEAR}: {since} people")
    console.say(
        f"shortest path avoiding {traversals.AVOIDED_CITY}: {len(avoiding) - 1} hops "
        f"(against {len(every[0]) - 1})"
    )
    return GremlinResult(a, b, reach, every, fof, since, avoiding)


def ask_recommendations(send: Checked, g, recommendations, shop, result: GremlinResult) -> None:
    me, product = shop.people[recommendations.SHOWN_PERSON], recommendations.most_bought(shop)
    result.customer, result.product = me["email"], product["sku"]
    top_n = recommendations.TOP_N
    console.step(f"People who bought {product['name']} also bought (recommendations.py)")
    result.also_bought = [next(iter(m.items())) for m in send(also_bought(g, product["sku"], top_n))]
    console.table(["product", "bought by buyers of both"], result.also_bought)

    console.step(f"Customers most like {me['name']}: Jaccard similarity, then what they bought")
    similar = send(most_similar(g, me["email"]).limit(top_n))
    result.similar_people = [(r["name"], r["shared"], int(r["union"]), r["jaccard"]) for r in similar]
    console.table(["customer", "shared", "union", "Jaccard"], result.similar_people)
    rows = send(from_similar_people(g, me["email"], recommendations.NEIGHBOURS, top_n))
    result.from_similar_people = [next(iter(m.items())) for m in rows]
    console.table(["product", "similar customers who bought it"], result.from_similar_people)


def run(g: GraphTraversalSource, url: str) -> GremlinResult:
    console.title("Gremlin for Neptune: paths and recommendations as bytecode traversals")
    paths, purchases = sibling("traversals"), sibling("recommendations")  # the Cypher lessons
    people, shop = paths.generate(), purchases.generate()  # their data, from the same seeds
    checked = Checked()
    console.step("Load both lessons' data with mergeV and mergeE, string ids of the lesson's own")
    with timer() as loading:
        reset_and_load(checked, g, people, shop)
    vertices = checked(g.V().has_label(*LABELS).count())[0]
    edges = checked(g.V().has_label(*LABELS).out_e().count())[0]
    console.say(f"{vertices:,} vertices and {edges:,} edges in {loading.seconds:.1f} s, {BATCH} per request")
    result = ask_paths(checked, g, paths, people)
    ask_recommendations(checked, g, purchases, shop, result)

    console.step("What Neptune refuses and Gremlin Server accepts: lambdas and Groovy scripts")
    result.traversals_sent, result.lambdas_in_lesson = checked.sent, list(checked.lambdas)
    console.say(
        f"{checked.sent} traversals sent as bytecode; lambdas in this lesson's traversals: {len(checked.lambdas)}"
    )
    what_neptune_refuses(g, url, result, people.rows[0]["email"])
    console.say(f"a map() lambda, checked as this lesson checks its own: {result.lambda_refused_by_check}")
    console.say(
        f"the same sent unchecked: Gremlin Server compiled the closure and answered {result.lambda_on_gremlin_server!r}"
    )
    console.say(f"the same with LambdaRestrictionStrategy, as Neptune would: {result.lambda_refused}")
    console.say(
        f"a Groovy script with a variable and a loop: Gremlin Server answered {result.groovy_script_result!r}"
    )
    return result


def main() -> int:
    require(*REQUIRES)
    url = gremlin_url()
    connection = DriverRemoteConnection(url, "g")
    try:
        result = run(traversal().with_remote(connection), url)
    finally:
        connection.close()
    holds = not result.lambdas_in_lesson and result.lambda_refused and len(result.all_shortest) > 1
    return 0 if holds else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Graph modeling: a social-and-commerce graph loaded idempotently, and the choices made on the way

People follow people, place purchases and buy products that sit in a tree of categories. This
lesson creates the uniqueness constraints and the index first (MERGE finds its node through them),
then loads the same generated data twice: one row per query, and in batches of rows sent as one
list and expanded with UNWIND. Both give the same nodes and relationships; the batched load sends
far fewer queries. A third load changes nothing: MERGE makes the load idempotent. On the way it
shows each modeling choice with a query that depends on it: a category as a node (traversed up a
tree) rather than a property, FOLLOWS as a directed relationship read both ways, and a Purchase
node between a person and the products, rather than a BOUGHT relationship with a date on it.

Engine: Neo4j (NEO4J_URL), nodes labelled `GraphModeling`; constraints named `graph_modeling_*`, on that
label: a constraint covers every node with its label, so one on Person would reach other lessons' people.
Run: `make up SERVICES=neo4j` (or `make local-up`), then `python graph/graph_modeling.py`.
Look for: the same counts from both loads with far fewer queries in batches, "created 0 nodes,
0 relationships" on the reload, and the orders a BOUGHT relationship could not tell apart.
"""

from __future__ import annotations

import datetime
import random
from dataclasses import dataclass, field

from neo4j import Driver, GraphDatabase

from common import console
from common.neo4j_schema import wait_until_online
from common.settings import CONNECT_TIMEOUT_S, neo4j_auth, neo4j_url, require
from common.timing import timer

REQUIRES = ("neo4j",)
DATABASE = "neo4j"
SEED = 11
N_PEOPLE, N_ORDERS, MAX_FOLLOWS = 40, 60, 3
FOLLOW_BACK = 0.3  # how often a followed person follows back
SAME_DAY_ORDERS = 3  # people who place two separate orders on one day
BATCH_SIZE = 50
DELETE_BATCH = 1_000
EMAIL_DOMAIN = "graph-modeling.example"
FIRST_NAMES = ["Ana", "Bruno", "Chen", "Dara", "Emil", "Farah", "Goran", "Hana", "Ivo", "Jun", "Kemi", "Lars"]
LAST_NAMES = ["Silva", "Novak", "Okafor", "Berg", "Tanaka", "Moreau", "Costa", "Weber", "Ruiz", "Park"]
# The category tree: top-level categories and their subcategories, where products are filed.
CATEGORY_TREE = {
    "Electronics": {"Phones": ["phone", "charger"], "Laptops": ["laptop", "dock"], "Audio": ["speaker"]},
    "Home": {"Kitchen": ["kettle", "pan"], "Garden": ["hose", "planter"]},
    "Books": {"Fiction": ["novel", "anthology"], "Science": ["atlas", "field guide"]},
}
VARIANTS = ["Basic", "Pro"]
FIRST_DAY = datetime.date(2024, 1, 1)
SHOWN_PERSON = 0  # whose follows are shown

# The uniqueness constraints that MERGE relies on, and one index for a lookup by date. A constraint
# covers every node with its label, so these are on the lesson's own label, each on a key only one
# kind has (a person's display name is `full_name`, a product's `title`, so `name` is a category's).
# In an application of your own, put them on Person, Product, Category and Purchase.
# (nodes, property, kind, statement): labels and names are written literally, never formatted.
SCHEMA = [
    ("Person", "email", "UNIQUENESS",
     "CREATE CONSTRAINT graph_modeling_email IF NOT EXISTS FOR (p:GraphModeling) REQUIRE p.email IS UNIQUE"),
    ("Product", "sku", "UNIQUENESS",
     "CREATE CONSTRAINT graph_modeling_sku IF NOT EXISTS FOR (p:GraphModeling) REQUIRE p.sku IS UNIQUE"),
    ("Category", "name", "UNIQUENESS",
     "CREATE CONSTRAINT graph_modeling_name IF NOT EXISTS FOR (c:GraphModeling) REQUIRE c.name IS UNIQUE"),
    ("Purchase", "id", "UNIQUENESS",
     "CREATE CONSTRAINT graph_modeling_id IF NOT EXISTS FOR (o:GraphModeling) REQUIRE o.id IS UNIQUE"),
    ("Purchase", "date", "RANGE",
     "CREATE INDEX graph_modeling_date IF NOT EXISTS FOR (o:GraphModeling) ON (o.date)"),
]  # fmt: skip
# What earlier versions created on the shared labels Person, Product, Category and Purchase.
DROP_OLD_SCHEMA = [
    "DROP CONSTRAINT graph_modeling_person_email IF EXISTS",
    "DROP CONSTRAINT graph_modeling_product_sku IF EXISTS",
    "DROP CONSTRAINT graph_modeling_category_name IF EXISTS",
    "DROP CONSTRAINT graph_modeling_purchase_id IF EXISTS",
    "DROP INDEX graph_modeling_purchase_date IF EXISTS",
]
SCHEMA_IN_PLACE = """
SHOW INDEXES YIELD labelsOrTypes, properties, type, owningConstraint, state
WHERE labelsOrTypes = ['GraphModeling']
RETURN properties[0] AS property,
       CASE WHEN owningConstraint IS NULL THEN type ELSE 'UNIQUENESS' END AS kind, state
"""

# One statement per kind of record; each takes a list of rows, so the row-by-row load sends the
# same statement with a list of one row. Every MERGE names the key only, then SETs the rest:
# MERGE on all properties would create a second node when a non-key property changes.
LOAD_CATEGORIES = """
UNWIND $rows AS row
MERGE (c:GraphModeling:Category {name: row.name})
WITH c, row WHERE row.parent IS NOT NULL
MERGE (parent:GraphModeling:Category {name: row.parent})
MERGE (c)-[:SUBCATEGORY_OF]->(parent)
"""
LOAD_PRODUCTS = """
UNWIND $rows AS row
MERGE (p:GraphModeling:Product {sku: row.sku})
SET p.title = row.name, p.price = row.price
WITH p, row
MATCH (c:GraphModeling:Category {name: row.category})
MERGE (p)-[:IN_CATEGORY]->(c)
"""
LOAD_PEOPLE = """
UNWIND $rows AS row
MERGE (p:GraphModeling:Person {email: row.email})
SET p.full_name = row.name, p.joined = date(row.joined)
"""
LOAD_FOLLOWS = """
UNWIND $rows AS row
MATCH (a:GraphModeling:Person {email: row.src})
MATCH (b:GraphModeling:Person {email: row.dst})
MERGE (a)-[f:FOLLOWS]->(b)
SET f.since = date(row.since)
"""
LOAD_PURCHASES = """
UNWIND $rows AS row
MATCH (person:GraphModeling:Person {email: row.email})
MERGE (o:GraphModeling:Purchase {id: row.id})
SET o.date = date(row.date)
MERGE (person)-[:PLACED]->(o)
WITH o, row
UNWIND row.lines AS line
MATCH (p:GraphModeling:Product {sku: line.sku})
MERGE (o)-[c:CONTAINS]->(p)
SET c.quantity = line.quantity, c.unit_price = line.unit_price
"""
DELETE_SOME = "MATCH (n:GraphModeling) WITH n LIMIT $limit DETACH DELETE n RETURN count(*) AS deleted"
COUNT_LABELS = """
MATCH (n:GraphModeling)
UNWIND [label IN labels(n) WHERE label <> 'GraphModeling'] AS label
RETURN label, count(*) AS n ORDER BY label
"""
COUNT_TYPES = """
MATCH (:GraphModeling)-[r]->(:GraphModeling)
RETURN type(r) AS type, count(*) AS n ORDER BY type
"""
PRODUCTS_UNDER = """
MATCH (top:GraphModeling:Category {name: $category})<-[:SUBCATEGORY_OF*0..]-(c:Category)
      <-[:IN_CATEGORY]-(p:Product)
RETURN count(DISTINCT p) AS products, collect(DISTINCT c.name) AS categories
"""
FOLLOWS_OF = """
MATCH (me:GraphModeling:Person {email: $email})
RETURN me.full_name AS name,
       COUNT { (me)-[:FOLLOWS]->() } AS following,
       COUNT { (me)<-[:FOLLOWS]-() } AS followers,
       COUNT { (me)-[:FOLLOWS]->(other)-[:FOLLOWS]->(me) } AS mutual
"""
MUTUAL_PAIRS = """
MATCH (a:GraphModeling:Person)-[:FOLLOWS]->(b:Person)-[:FOLLOWS]->(a)
WHERE a.email < b.email
RETURN count(*) AS pairs
"""
ORDERS_VS_PERSON_DAYS = """
MATCH (p:GraphModeling:Person)-[:PLACED]->(o:Purchase)
RETURN count(o) AS orders, count(DISTINCT [p.email, o.date]) AS person_days
"""
BOUGHT_TOGETHER = """
MATCH (a:GraphModeling:Product)<-[:CONTAINS]-(o:Purchase)-[:CONTAINS]->(b:Product)
WHERE a.sku < b.sku
RETURN a.title AS first, b.title AS second, count(o) AS orders
ORDER BY orders DESC, first, second
LIMIT 3
"""
KINDS = ["categories", "products", "people", "follows", "purchases"]
STATEMENTS = dict(
    zip(KINDS, [LOAD_CATEGORIES, LOAD_PRODUCTS, LOAD_PEOPLE, LOAD_FOLLOWS, LOAD_PURCHASES], strict=True)
)


@dataclass
class GraphCounts:
    labels: dict[str, int]
    relationship_types: dict[str, int]


@dataclass
class LoadRun:
    queries: int  # queries sent: each is a transaction and at least one network round trip
    nodes_created: int
    relationships_created: int
    counts: GraphCounts
    seconds: float = field(compare=False)


@dataclass
class ModelingResult:
    schema: list[tuple[str, str, str]]  # (label, property, kind) in place before loading
    rows: dict[str, int]  # source records of each kind
    row_by_row: LoadRun
    batched: LoadRun
    reload: LoadRun
    products_under: dict[str, int]  # top-level category -> products found by walking the tree
    leaves_under: dict[str, list[str]]
    follows_shown: dict[str, int]
    mutual_pairs: int
    orders: int
    person_days: int  # what a BOUGHT {date} relationship could tell apart
    bought_together: list[tuple[str, str, int]]


class QueryCounter:
    """Sends statements with execute_query and counts them, with the nodes and relationships they create."""

    def __init__(self, driver: Driver):
        self.driver = driver
        self.queries = self.nodes_created = self.relationships_created = 0

    def send(self, statement: str, rows: list[dict]) -> None:
        summary = self.driver.execute_query(statement, rows=rows, database_=DATABASE).summary
        self.queries += 1
        self.nodes_created += summary.counters.nodes_created
        self.relationships_created += summary.counters.relationships_created


def generate(seed: int = SEED) -> dict[str, list[dict]]:
    """Deterministic source records, the way they would come from files or another database."""
    rng = random.Random(seed)
    categories = []
    for top, subcategories in CATEGORY_TREE.items():
        categories.append({"name": top, "parent": None})
        categories += [{"name": leaf, "parent": top} for leaf in subcategories]
    products = []
    for subcategories in CATEGORY_TREE.values():
        for leaf, nouns in subcategories.items():
            for noun in nouns:
                for variant in VARIANTS:
                    sku = f"GM-{len(products) + 1:03d}"
                    price = round(rng.uniform(5, 400), 2)
                    products.append(
                        {"sku": sku, "name": f"{variant} {noun}", "price": price, "category": leaf}
                    )
    names = rng.sample([f"{first} {last}" for first in FIRST_NAMES for last in LAST_NAMES], N_PEOPLE)
    people = [
        {
            "email": f"{name.lower().replace(' ', '.')}@{EMAIL_DOMAIN}",
            "name": name,
            "joined": str(FIRST_DAY - datetime.timedelta(days=rng.randint(30, 900))),
        }
        for name in names
    ]
    pairs = []
    for person in people:
        for other in rng.sample(people, rng.randint(0, MAX_FOLLOWS)):
            if other is not person:
                pairs.append((person["email"], other["email"]))
    followed = set(pairs)
    for src, dst in list(pairs):
        if (dst, src) not in followed and rng.random() < FOLLOW_BACK:
            followed.add((dst, src))
            pairs.append((dst, src))
    follows = [
        {"src": src, "dst": dst, "since": str(FIRST_DAY + datetime.timedelta(days=rng.randint(0, 300)))}
        for src, dst in pairs
    ]
    return {
        "categories": categories,
        "products": products,
        "people": people,
        "follows": follows,
        "purchases": _purchases(rng, people, products),
    }


def _purchases(rng: random.Random, people: list[dict], products: list[dict]) -> list[dict]:
    """Orders of one to three products; each person orders at most once a day, except the first
    SAME_DAY_ORDERS people, who place two separate orders on one day."""
    days_used: dict[str, set[int]] = {}
    purchases = []
    for number in range(1, N_ORDERS + 1):
        planted = number <= 2 * SAME_DAY_ORDERS
        person = people[(number - 1) % SAME_DAY_ORDERS] if planted else rng.choice(people)
        used = days_used.setdefault(person["email"], set())
        if planted and number > SAME_DAY_ORDERS:
            day = max(used)  # the same day as this person's first order
        else:
            day = rng.choice([d for d in range(365) if d not in used])
        used.add(day)
        lines = [
            {"sku": product["sku"], "quantity": rng.randint(1, 3), "unit_price": product["price"]}
            for product in rng.sample(products, rng.randint(1, 3))
        ]
        date = FIRST_DAY + datetime.timedelta(days=day)
        purchases.append(
            {"id": f"GM-O{number:04d}", "email": person["email"], "date": str(date), "lines": lines}
        )
    return purchases


def reset(driver: Driver) -> None:
    """Delete this lesson's nodes a batch at a time: one DETACH DELETE of everything would hold
    every change in one transaction's memory. Constraints stay: they are shared and idempotent."""
    while driver.execute_query(DELETE_SOME, limit=DELETE_BATCH, database_=DATABASE).records[0]["deleted"]:
        pass


def create_schema(driver: Driver) -> list[tuple[str, str, str]]:
    """Constraints before data: MERGE finds an existing node through the constraint's index (without
    it, every MERGE scans the label), and two loads running at once cannot both create a node."""
    for statement in [*DROP_OLD_SCHEMA, *(statement for *_, statement in SCHEMA)]:
        driver.execute_query(statement, database_=DATABASE)
    wait_until_online(driver, "GraphModeling", DATABASE)  # its own indexes only: lessons run side by side
    records = driver.execute_query(SCHEMA_IN_PLACE, database_=DATABASE).records
    in_place = {(r["property"], r["kind"]) for r in records if r["state"] == "ONLINE"}
    return [(nodes, prop, kind) for nodes, prop, kind, _ in SCHEMA if (prop, kind) in in_place]


def load(driver: Driver, records: dict[str, list[dict]], batch_size: int) -> LoadRun:
    """Every kind of record, in order (categories before the products filed in them), `batch_size`
    rows per query."""
    counter = QueryCounter(driver)
    with timer() as elapsed:
        for kind in KINDS:
            rows = records[kind]
            for start in range(0, len(rows), batch_size):
                counter.send(STATEMENTS[kind], rows[start : start + batch_size])
    return LoadRun(
        counter.queries,
        counter.nodes_created,
        counter.relationships_created,
        count_graph(driver),
        elapsed.seconds,
    )


def count_graph(driver: Driver) -> GraphCounts:
    labels = driver.execute_query(COUNT_LABELS, database_=DATABASE).records
    types = driver.execute_query(COUNT_TYPES, database_=DATABASE).records
    return GraphCounts({r["label"]: r["n"] for r in labels}, {r["type"]: r["n"] for r in types})


def products_under_each_top_category(driver: Driver) -> tuple[dict[str, int], dict[str, list[str]]]:
    """Category is a node, so a question about "Electronics" walks down its subcategories. As a
    string property on Product, the tree would live in application code, and a category could not
    carry properties or relationships of its own."""
    counts, leaves = {}, {}
    for top in CATEGORY_TREE:
        record = driver.execute_query(PRODUCTS_UNDER, category=top, database_=DATABASE).records[0]
        counts[top] = record["products"]
        leaves[top] = sorted(record["categories"])
    return counts, leaves


def follows_both_ways(driver: Driver, email: str) -> tuple[dict[str, int], int]:
    """FOLLOWS points from follower to followed: following someone is not being followed back.
    One stored direction is read either way; a mutual follow is two relationships."""
    record = driver.execute_query(FOLLOWS_OF, email=email, database_=DATABASE).records[0]
    pairs = driver.execute_query(MUTUAL_PAIRS, database_=DATABASE).records[0]["pairs"]
    return {key: record[key] for key in ("following", "followers", "mutual")}, pairs


def orders_as_nodes(driver: Driver) -> tuple[int, int, list[tuple[str, str, int]]]:
    """A Purchase node groups the products bought together and holds the date once; each line's
    quantity and price sit on CONTAINS. A (person)-[:BOUGHT {date, quantity}]->(product) relationship
    cannot say which products went together: two orders on one day become one, and there is no
    node for a payment, a shipment or a review to point at."""
    record = driver.execute_query(ORDERS_VS_PERSON_DAYS, database_=DATABASE).records[0]
    together = driver.execute_query(BOUGHT_TOGETHER, database_=DATABASE).records
    return record["orders"], record["person_days"], [(r["first"], r["second"], r["orders"]) for r in together]


def run(driver: Driver) -> ModelingResult:
    console.title("Graph modeling: a social-and-commerce graph, loaded idempotently")
    records = generate()
    rows = {kind: len(records[kind]) for kind in KINDS}

    console.step("Constraints and indexes first")
    console.say("MERGE looks its key up: a uniqueness constraint gives it an index and forbids duplicates.")
    schema = create_schema(driver)
    console.table(["for nodes", "property (on label GraphModeling)", "kind"], schema)

    console.step("Load one row per query")
    console.say("The same MERGE statements as the batched load, each sent with a list of one row.")
    reset(driver)
    row_by_row = load(driver, records, batch_size=1)
    _show_load(row_by_row, rows)

    console.step(f"Load in batches: UNWIND a list of {BATCH_SIZE} rows per query")
    reset(driver)
    batched = load(driver, records, batch_size=BATCH_SIZE)
    _show_load(batched, rows)
    console.compare(
        f"{row_by_row.queries:,} queries", row_by_row.seconds, f"{batched.queries:,} queries", batched.seconds
    )
    same = row_by_row.counts == batched.counts
    console.say(f"same nodes and relationships by label and type: {'yes' if same else 'NO'}")

    console.step("Load the same records again: MERGE matches what is there")
    reload = load(driver, records, batch_size=BATCH_SIZE)
    console.say(f"created {reload.nodes_created} nodes, {reload.relationships_created} relationships")

    console.step("Category is a node, not a property: a tree can be walked")
    console.say(
        "A Product.category string could not be walked up to its parent, nor carry properties of its own."
    )
    products_under, leaves_under = products_under_each_top_category(driver)
    console.table(
        ["top category", "subcategories walked", "products"],
        [(top, ", ".join(leaves_under[top]), products_under[top]) for top in CATEGORY_TREE],
    )

    console.step("FOLLOWS has a direction; a query reads it either way")
    console.say("One specific type per meaning (FOLLOWS, PLACED, CONTAINS, IN_CATEGORY): a pattern picks its")
    console.say("relationships by type, without reading a property such as {kind: 'follows'} on each one.")
    shown = records["people"][SHOWN_PERSON]
    follows_shown, mutual_pairs = follows_both_ways(driver, shown["email"])
    console.table(["person", "following", "followers", "mutual"], [(shown["name"], *follows_shown.values())])
    console.say(f"mutual pairs in the graph: {mutual_pairs} (each stored as two FOLLOWS relationships)")

    console.step("Purchase is a node between person and products, not a BOUGHT relationship")
    orders, person_days, together = orders_as_nodes(driver)
    console.say(
        f"{orders} orders; a BOUGHT {{date}} relationship could tell {person_days} apart "
        f"({orders - person_days} orders merged with another of the same person and day)"
    )
    console.table(["bought together", "with", "orders"], together)

    console.step("What the graph holds")
    counts = batched.counts
    console.table(["label", "nodes"], counts.labels.items())
    console.table(["relationship type", "relationships"], counts.relationship_types.items())

    return ModelingResult(
        schema=schema,
        rows=rows,
        row_by_row=row_by_row,
        batched=batched,
        reload=reload,
        products_under=products_under,
        leaves_under=leaves_under,
        follows_shown=follows_shown,
        mutual_pairs=mutual_pairs,
        orders=orders,
        person_days=person_days,
        bought_together=together,
    )


def _show_load(load_run: LoadRun, rows: dict[str, int]) -> None:
    console.say(
        f"{sum(rows.values()):,} records in {load_run.queries:,} queries, {console.seconds(load_run.seconds)}: "
        f"created {load_run.nodes_created:,} nodes and {load_run.relationships_created:,} relationships"
    )


def main() -> int:
    require(*REQUIRES)
    with GraphDatabase.driver(neo4j_url(), auth=neo4j_auth(), connection_timeout=CONNECT_TIMEOUT_S) as driver:
        result = run(driver)
    return 0 if result.row_by_row.counts == result.batched.counts and result.reload.nodes_created == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())

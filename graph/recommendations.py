"""Recommendations in Cypher: also-bought, Jaccard similarity between people, and shared categories

Three ways to recommend products from a purchase graph, each one query. Collaborative filtering:
people who bought this product also bought those (two hops out and back). Similar people: the
Jaccard similarity of two people's purchases (products in common divided by products either
bought), computed in Cypher, and the products the most similar people bought that this person has
not. Content-based: products in the categories this person buys from most, weighted by how often.
Every ranking breaks ties by name in ORDER BY, so the top N is the same on every run, and each
list is checked against the same computation in Python.

Engine: Neo4j (NEO4J_URL), nodes labelled `Recommendations`; constraints and an index `recommendations_*`,
all on that label: a constraint covers every node with its label, so one on Person would reach other
lessons' people.
Run: `make up SERVICES=neo4j` (or `make local-up`), then `python graph/recommendations.py`.
Look for: the similarity table (shared / union = Jaccard) and how the three lists differ.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from neo4j import Driver, GraphDatabase

from common import console
from common.neo4j_schema import wait_until_online
from common.settings import CONNECT_TIMEOUT_S, neo4j_auth, neo4j_url, require

REQUIRES = ("neo4j",)
DATABASE = "neo4j"
SEED = 31
N_PEOPLE, N_PRODUCTS = 300, 120
MIN_BOUGHT, MAX_BOUGHT = 4, 12
FAVOURITE_SHARE = 0.75  # of a person's purchases, the share from their one or two favourite categories
TOP_N = 5
NEIGHBOURS = 10  # the most similar people whose purchases are recommended
SHOWN_PERSON = 0
EMAIL_DOMAIN = "recommendations.example"
CATEGORIES = {
    "Board games": ["chess set", "card game", "puzzle", "dice set"],
    "Camping": ["tent", "stove", "lantern", "sleeping bag"],
    "Coffee": ["grinder", "kettle", "dripper", "espresso cups"],
    "Cycling": ["helmet", "bike light", "pump", "saddle bag"],
    "Crafts": ["yarn", "brush set", "sketchbook", "clay"],
    "Photography": ["tripod", "lens cloth", "camera strap", "filter"],
    "Running": ["running shoes", "water bottle", "armband", "socks"],
    "Tea": ["teapot", "tea tin", "infuser", "matcha whisk"],
}
ADJECTIVES = ["Alpine", "Bright", "Classic", "Compact", "Deluxe", "Everyday", "Field", "Grand", "Light",
              "Nordic", "Travel", "Urban", "Vintage", "Wild", "Zen"]  # fmt: skip
FIRST_NAMES = ["Aiko", "Bela", "Cyra", "Dina", "Enzo", "Femi", "Gil", "Hugo", "Iris", "Joao", "Kira", "Luca",
               "Mona", "Nils", "Oren", "Pau", "Rhea", "Sami", "Tara", "Uma"]  # fmt: skip
LAST_NAMES = ["Abe", "Bauer", "Chu", "Diaz", "Eriksen", "Fox", "Gray", "Hale", "Ito", "Jovic", "Khan", "Lund",
              "Marx", "Nagy", "Orr", "Pike"]  # fmt: skip

# On the lesson's own label: only people have an email and only products a sku. Names are not unique
# across kinds (a person's, a product's), so category names get a plain index. The drops remove what
# earlier versions created on the shared labels Person, Product and Category.
SCHEMA = [
    "DROP CONSTRAINT recommendations_person_email IF EXISTS",
    "DROP CONSTRAINT recommendations_product_sku IF EXISTS",
    "DROP CONSTRAINT recommendations_category_name IF EXISTS",
    "CREATE CONSTRAINT recommendations_email IF NOT EXISTS FOR (p:Recommendations) REQUIRE p.email IS UNIQUE",
    "CREATE CONSTRAINT recommendations_sku IF NOT EXISTS FOR (p:Recommendations) REQUIRE p.sku IS UNIQUE",
    "CREATE INDEX recommendations_name IF NOT EXISTS FOR (n:Recommendations) ON (n.name)",
]
DELETE_SOME = "MATCH (n:Recommendations) WITH n LIMIT $limit DETACH DELETE n RETURN count(*) AS deleted"
LOAD_CATEGORIES = "UNWIND $rows AS name CREATE (:Recommendations:Category {name: name})"
LOAD_PRODUCTS = """
UNWIND $rows AS row
CREATE (p:Recommendations:Product {sku: row.sku, name: row.name})
WITH p, row
UNWIND row.categories AS category
MATCH (c:Recommendations:Category {name: category})
CREATE (p)-[:IN_CATEGORY]->(c)
"""
LOAD_PEOPLE = """
UNWIND $rows AS row
CREATE (person:Recommendations:Person {email: row.email, name: row.name})
WITH person, row
UNWIND row.bought AS sku
MATCH (p:Recommendations:Product {sku: sku})
CREATE (person)-[:BOUGHT]->(p)
"""
# Two hops out and back: from the product to its buyers, and on to everything else they bought.
ALSO_BOUGHT = """
MATCH (:Recommendations:Product {sku: $sku})<-[:BOUGHT]-(buyer:Person)-[:BOUGHT]->(other:Product)
WHERE other.sku <> $sku
RETURN other.name AS product, count(buyer) AS buyers
ORDER BY buyers DESC, product
LIMIT $n
"""
# Jaccard(A, B) = |A and B| / |A or B| over the sets of products bought. Only people with at least
# one product in common are reached, which is also the only way the similarity is above zero.
SIMILAR_PEOPLE = """
MATCH (me:Recommendations:Person {email: $email})-[:BOUGHT]->(p:Product)<-[:BOUGHT]-(other:Person)
WITH me, other, count(p) AS shared
WITH other, shared, COUNT { (me)-[:BOUGHT]->() } + COUNT { (other)-[:BOUGHT]->() } - shared AS union
RETURN other.email AS email, other.name AS name, shared, union, toFloat(shared) / union AS jaccard
ORDER BY jaccard DESC, name
LIMIT $n
"""
FROM_SIMILAR_PEOPLE = """
MATCH (me:Recommendations:Person {email: $email})-[:BOUGHT]->(p:Product)<-[:BOUGHT]-(other:Person)
WITH me, other, count(p) AS shared
WITH me, other, toFloat(shared) / (COUNT { (me)-[:BOUGHT]->() } + COUNT { (other)-[:BOUGHT]->() } - shared)
     AS jaccard
ORDER BY jaccard DESC, other.name
LIMIT $neighbours
MATCH (other)-[:BOUGHT]->(rec:Product)
WHERE NOT (me)-[:BOUGHT]->(rec)
RETURN rec.name AS product, count(other) AS neighbours
ORDER BY neighbours DESC, product
LIMIT $n
"""
# Content-based: no other person involved, only the categories of what this person bought.
BY_CATEGORIES = """
MATCH (me:Recommendations:Person {email: $email})-[:BOUGHT]->(:Product)-[:IN_CATEGORY]->(c:Category)
WITH me, c, count(*) AS affinity
MATCH (c)<-[:IN_CATEGORY]-(rec:Product)
WHERE NOT (me)-[:BOUGHT]->(rec)
WITH rec, sum(affinity) AS score, collect(c.name) AS via
RETURN rec.name AS product, score, via
ORDER BY score DESC, product
LIMIT $n
"""
CATEGORY_AFFINITY = """
MATCH (me:Recommendations:Person {email: $email})-[:BOUGHT]->(:Product)-[:IN_CATEGORY]->(c:Category)
RETURN c.name AS category, count(*) AS bought
ORDER BY bought DESC, category
"""


@dataclass
class Shop:
    categories: list[str]
    products: list[dict]  # sku, name, categories
    people: list[dict]  # email, name, bought (skus)


@dataclass
class RecommendationResult:
    person: str
    product: str
    also_bought: list[tuple[str, int]]  # (product, buyers of both)
    similar_people: list[tuple[str, int, int, float]]  # (name, shared, union, jaccard)
    from_similar_people: list[tuple[str, int]]  # (product, neighbours who bought it)
    category_affinity: list[tuple[str, int]]
    by_categories: list[tuple[str, int, list[str]]]  # (product, score, categories it shares)


def generate(seed: int = SEED) -> Shop:
    rng = random.Random(seed)
    categories = list(CATEGORIES)
    names = rng.sample(
        [f"{adj} {noun}" for c in categories for noun in CATEGORIES[c] for adj in ADJECTIVES], N_PRODUCTS
    )
    home = {f"{adj} {noun}": c for c in categories for noun in CATEGORIES[c] for adj in ADJECTIVES}
    products = []
    for number, name in enumerate(sorted(names), start=1):
        extra = [rng.choice(categories)] if rng.random() < 0.3 else []  # some fit a second category
        products.append(
            {"sku": f"REC-{number:03d}", "name": name, "categories": sorted({home[name], *extra})}
        )
    in_category = {c: [p["sku"] for p in products if c in p["categories"]] for c in categories}
    all_skus = [p["sku"] for p in products]
    people = []
    for first_last in rng.sample([f"{f} {last}" for f in FIRST_NAMES for last in LAST_NAMES], N_PEOPLE):
        favourites = rng.sample(categories, rng.randint(1, 2))
        bought: set[str] = set()
        for _ in range(rng.randint(MIN_BOUGHT, MAX_BOUGHT)):
            pool = in_category[rng.choice(favourites)] if rng.random() < FAVOURITE_SHARE else all_skus
            bought.add(rng.choice(pool))
        email = f"{first_last.lower().replace(' ', '.')}@{EMAIL_DOMAIN}"
        people.append({"email": email, "name": first_last, "bought": sorted(bought)})
    return Shop(categories, products, people)


def most_bought(shop: Shop) -> dict:
    buyers = {p["sku"]: 0 for p in shop.products}
    for person in shop.people:
        for sku in person["bought"]:
            buyers[sku] += 1
    return max(shop.products, key=lambda p: (buyers[p["sku"]], p["sku"]))


def reset_and_load(driver: Driver, shop: Shop) -> None:
    while driver.execute_query(DELETE_SOME, limit=5_000, database_=DATABASE).records[0]["deleted"]:
        pass
    for statement in SCHEMA:
        driver.execute_query(statement, database_=DATABASE)
    wait_until_online(driver, "Recommendations", DATABASE)  # its own indexes only: lessons run side by side
    driver.execute_query(LOAD_CATEGORIES, rows=shop.categories, database_=DATABASE)
    driver.execute_query(LOAD_PRODUCTS, rows=shop.products, database_=DATABASE)
    driver.execute_query(LOAD_PEOPLE, rows=shop.people, database_=DATABASE)


def query(driver: Driver, statement: str, **parameters) -> list:
    return driver.execute_query(statement, parameters, database_=DATABASE).records


def run(driver: Driver) -> RecommendationResult:
    console.title("Recommendations: also-bought, Jaccard similarity and shared categories")
    shop = generate()
    reset_and_load(driver, shop)
    bought = sum(len(p["bought"]) for p in shop.people)
    console.say(f"{len(shop.people)} people, {len(shop.products)} products, {bought:,} purchases")
    me = shop.people[SHOWN_PERSON]
    product = most_bought(shop)

    console.step(f"People who bought {product['name']} also bought")
    console.say("Collaborative filtering: from the product to its buyers, and on to their other purchases.")
    also = [(r["product"], r["buyers"]) for r in query(driver, ALSO_BOUGHT, sku=product["sku"], n=TOP_N)]
    console.table(["product", "bought by buyers of both"], also)

    console.step(f"People most like {me['name']}: Jaccard similarity of what they bought")
    console.say(f"{me['name']} bought {len(me['bought'])} products; Jaccard = shared / union, ties by name.")
    similar = [
        (r["name"], r["shared"], r["union"], r["jaccard"])
        for r in query(driver, SIMILAR_PEOPLE, email=me["email"], n=TOP_N)
    ]
    console.table(["person", "shared", "union", "Jaccard"], similar)

    console.step(f"What the {NEIGHBOURS} most similar people bought that {me['name']} has not")
    from_similar = [
        (r["product"], r["neighbours"])
        for r in query(driver, FROM_SIMILAR_PEOPLE, email=me["email"], neighbours=NEIGHBOURS, n=TOP_N)
    ]
    console.table(["product", "similar people who bought it"], from_similar)

    console.step("Content-based: products in the categories this person buys from")
    affinity = [(r["category"], r["bought"]) for r in query(driver, CATEGORY_AFFINITY, email=me["email"])]
    console.say("affinity: " + ", ".join(f"{category} {n}" for category, n in affinity))
    by_categories = [
        (r["product"], r["score"], sorted(r["via"]))
        for r in query(driver, BY_CATEGORIES, email=me["email"], n=TOP_N)
    ]
    console.table(
        ["product", "score", "shared categories"], [(p, s, ", ".join(v)) for p, s, v in by_categories]
    )
    console.say("Each method answers a different question: same buyers, same taste, or same kind of thing.")

    return RecommendationResult(
        person=me["email"],
        product=product["sku"],
        also_bought=also,
        similar_people=similar,
        from_similar_people=from_similar,
        category_affinity=affinity,
        by_categories=by_categories,
    )


def main() -> int:
    require(*REQUIRES)
    with GraphDatabase.driver(neo4j_url(), auth=neo4j_auth(), connection_timeout=CONNECT_TIMEOUT_S) as driver:
        result = run(driver)
    return 0 if result.also_bought and result.similar_people else 1


if __name__ == "__main__":
    raise SystemExit(main())

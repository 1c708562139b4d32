"""Graph vs relational: the same hop questions by recursive CTE in PostgreSQL and by Cypher in Neo4j

One generated follower graph (2,000 people, 10 follows each) is loaded into both engines: an edge
table `follows(src, dst)` with its indexes in PostgreSQL, and FOLLOWS relationships in Neo4j. Both
then answer the same two questions: who is within N hops of a person (N from 1 to 5), and how
many hops separate two people. The answers are compared set for set, and the time of each is
measured as the depth grows. In SQL the traversal is a recursive CTE that joins the edge table
once per hop; UNION (not UNION ALL) keeps one row per person and depth, where UNION ALL would
carry every walk and grow tenfold per hop. In Cypher it is a variable-length pattern that returns
DISTINCT people, which Neo4j runs as a breadth-first expansion that never visits a person twice.

Engine: PostgreSQL (POSTGRES_URL), schema `graph_vs_relational`; Neo4j (NEO4J_URL), nodes labelled
`GraphVsRelational`, constraint `graph_vs_relational_id` (on that label: a constraint covers every
node with its label, so one on Person would reach other lessons' people).
Run: `make up SERVICES="postgres neo4j"` (or `make local-up`), then `python graph/graph_vs_relational.py`.
Look for: "same people at every depth: yes", the CTE rows against the walks UNION ALL would keep,
and the SQL and Cypher milliseconds side by side as the depth grows.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import psycopg
from neo4j import Driver, GraphDatabase
from psycopg import sql

from common import console
from common.neo4j_schema import wait_until_online
from common.settings import CONNECT_TIMEOUT_S, neo4j_auth, neo4j_url, postgres_url, require
from common.timing import best_of

REQUIRES = ("neo4j", "postgres")
SCHEMA = "graph_vs_relational"
DATABASE = "neo4j"
SEED = 43
N_PEOPLE, FOLLOWS_EACH = 2_000, 10
DEPTHS = [1, 2, 3, 4, 5]
START = 1
UNFOLLOWED = N_PEOPLE  # nobody follows this person: no path leads there
N_PAIRS = 5
MAX_HOPS = 8  # the bound of the shortest-path searches
BATCH_SIZE = 5_000
FOLLOWERS_PER_BATCH = 500  # 5,000 relationships per transaction

TABLES = [
    "CREATE TABLE person (id integer PRIMARY KEY, name text NOT NULL)",
    "CREATE TABLE follows (src integer NOT NULL REFERENCES person, dst integer NOT NULL REFERENCES person,"
    " PRIMARY KEY (src, dst))",
    # The primary key (src, dst) serves hops forward; this one serves "who follows me" backwards.
    "CREATE INDEX follows_dst ON follows (dst, src)",
]
# One row per (person, depth): UNION drops a row already produced, so a depth holds each person
# once, however many walks reach them. min(depth) is how far each person is.
SQL_WITHIN = """
WITH RECURSIVE reach(id, depth) AS (
    SELECT %(start)s::integer, 0
  UNION
    SELECT f.dst, r.depth + 1
    FROM reach r JOIN follows f ON f.src = r.id
    WHERE r.depth < %(depth)s
)
SELECT id, min(depth) AS hops FROM reach WHERE id <> %(start)s GROUP BY id
"""
SQL_CTE_ROWS = """
WITH RECURSIVE reach(id, depth) AS (
    SELECT %(start)s::integer, 0
  UNION
    SELECT f.dst, r.depth + 1 FROM reach r JOIN follows f ON f.src = r.id WHERE r.depth < %(depth)s
)
SELECT count(*) FROM reach
"""
# The same recursion with UNION ALL: one row per walk, ten times more at every hop.
SQL_WALKS = """
WITH RECURSIVE reach(id, depth) AS (
    SELECT %(start)s::integer, 0
  UNION ALL
    SELECT f.dst, r.depth + 1 FROM reach r JOIN follows f ON f.src = r.id WHERE r.depth < %(depth)s
)
SELECT count(*) FROM reach
"""
SQL_SHORTEST = """
WITH RECURSIVE reach(id, depth) AS (
    SELECT %(src)s::integer, 0
  UNION
    SELECT f.dst, r.depth + 1 FROM reach r JOIN follows f ON f.src = r.id WHERE r.depth < %(max_hops)s
)
SELECT min(depth) FROM reach WHERE id = %(dst)s
"""

CONSTRAINT = (
    "CREATE CONSTRAINT graph_vs_relational_id IF NOT EXISTS FOR (p:GraphVsRelational) REQUIRE p.id IS UNIQUE"
)
# Earlier versions put the constraint on the shared label Person, where it constrained other lessons too.
DROP_OLD_CONSTRAINT = "DROP CONSTRAINT graph_vs_relational_person_id IF EXISTS"
SQL_COUNTS = "SELECT (SELECT count(*) FROM person), (SELECT count(*) FROM follows)"
CYPHER_COUNTS = """
MATCH (p:GraphVsRelational)
RETURN count(p) AS people, sum(COUNT { (p)-[:FOLLOWS]->(:GraphVsRelational) }) AS follows
"""
DELETE_SOME = "MATCH (n:GraphVsRelational) WITH n LIMIT $limit DETACH DELETE n RETURN count(*) AS deleted"
LOAD_PEOPLE = "UNWIND $rows AS row CREATE (:GraphVsRelational:Person {id: row[0], name: row[1]})"
# The edge list grouped by follower: one lookup of the follower for all of their follows.
LOAD_FOLLOWS = """
UNWIND $rows AS row
MATCH (a:GraphVsRelational:Person {id: row.src})
UNWIND row.follows AS dst
MATCH (b:GraphVsRelational:Person {id: dst})
CREATE (a)-[:FOLLOWS]->(b)
"""
# A variable-length bound cannot be a parameter, so each depth is its own statement. DISTINCT
# endpoints let Neo4j expand breadth-first and skip people it has already reached; one list in
# one record crosses the network faster than a record per person.
CYPHER_WITHIN = {
    1: "MATCH (me:GraphVsRelational:Person {id: $start})-[:FOLLOWS*1..1]->(p:Person) WHERE p <> me "
    "RETURN collect(DISTINCT p.id) AS ids",
    2: "MATCH (me:GraphVsRelational:Person {id: $start})-[:FOLLOWS*1..2]->(p:Person) WHERE p <> me "
    "RETURN collect(DISTINCT p.id) AS ids",
    3: "MATCH (me:GraphVsRelational:Person {id: $start})-[:FOLLOWS*1..3]->(p:Person) WHERE p <> me "
    "RETURN collect(DISTINCT p.id) AS ids",
    4: "MATCH (me:GraphVsRelational:Person {id: $start})-[:FOLLOWS*1..4]->(p:Person) WHERE p <> me "
    "RETURN collect(DISTINCT p.id) AS ids",
    5: "MATCH (me:GraphVsRelational:Person {id: $start})-[:FOLLOWS*1..5]->(p:Person) WHERE p <> me "
    "RETURN collect(DISTINCT p.id) AS ids",
}
CYPHER_SHORTEST = """
MATCH (a:GraphVsRelational:Person {id: $src}), (b:GraphVsRelational:Person {id: $dst})
OPTIONAL MATCH path = shortestPath((a)-[:FOLLOWS*..8]->(b))
RETURN length(path) AS hops
"""


@dataclass
class Depth:
    depth: int
    reached: int  # people within `depth` hops
    first_reached: int  # people exactly `depth` hops away
    cte_rows: int  # rows the UNION recursion produced
    walks: int  # rows UNION ALL would have produced
    sql_s: float = field(compare=False)
    cypher_s: float = field(compare=False)


@dataclass
class GraphVsRelationalResult:
    sql_counts: tuple[int, int]  # people, follows: counted in each engine after the load
    neo4j_counts: tuple[int, int]
    depths: list[Depth]
    sql_by_hops: dict[int, set[int]]  # people exactly N hops away, by SQL
    cypher_by_hops: dict[int, set[int]]  # the same from Cypher: within N minus within N-1
    shortest: list[tuple[int, int, int | None, int | None]]  # (from, to, SQL hops, Cypher hops)

    @property
    def same_answers(self) -> bool:
        return self.sql_by_hops == self.cypher_by_hops and all(s == c for _, _, s, c in self.shortest)


def generate(seed: int = SEED) -> tuple[list[tuple[int, str]], list[tuple[int, int]]]:
    """People 1..N_PEOPLE; each follows FOLLOWS_EACH others at random, never UNFOLLOWED."""
    rng = random.Random(seed)
    people = [(i, f"person {i:04d}") for i in range(1, N_PEOPLE + 1)]
    candidates = [i for i in range(1, N_PEOPLE + 1) if i != UNFOLLOWED]
    edges = []
    for src in range(1, N_PEOPLE + 1):
        picked = [dst for dst in rng.sample(candidates, FOLLOWS_EACH + 1) if dst != src]
        edges += [(src, dst) for dst in picked[:FOLLOWS_EACH]]
    return people, edges


def pairs(seed: int = SEED) -> list[tuple[int, int]]:
    rng = random.Random(seed + 1)
    chosen = [(START, rng.randint(2, N_PEOPLE - 1)) for _ in range(N_PAIRS - 1)]
    return [*chosen, (START, UNFOLLOWED)]


def load_postgres(conn: psycopg.Connection, people: list, edges: list) -> None:
    with conn.cursor() as cur:
        cur.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SCHEMA)))
        cur.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(SCHEMA)))
        cur.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(SCHEMA)))
        for statement in TABLES:
            cur.execute(statement)
        with cur.copy("COPY person (id, name) FROM STDIN") as copy:
            for row in people:
                copy.write_row(row)
        with cur.copy("COPY follows (src, dst) FROM STDIN") as copy:
            for row in edges:
                copy.write_row(row)
        cur.execute("ANALYZE person")
        cur.execute("ANALYZE follows")
    conn.commit()


def load_neo4j(driver: Driver, people: list, edges: list) -> None:
    while driver.execute_query(DELETE_SOME, limit=BATCH_SIZE, database_=DATABASE).records[0]["deleted"]:
        pass
    driver.execute_query(DROP_OLD_CONSTRAINT, database_=DATABASE)
    driver.execute_query(CONSTRAINT, database_=DATABASE)
    wait_until_online(driver, "GraphVsRelational", DATABASE)  # its own indexes only: lessons run side by side
    driver.execute_query(LOAD_PEOPLE, rows=[list(p) for p in people], database_=DATABASE)
    follows: dict[int, list[int]] = {}
    for src, dst in edges:
        follows.setdefault(src, []).append(dst)
    rows = [{"src": src, "follows": dsts} for src, dsts in follows.items()]
    for start in range(0, len(rows), FOLLOWERS_PER_BATCH):
        driver.execute_query(LOAD_FOLLOWS, rows=rows[start : start + FOLLOWERS_PER_BATCH], database_=DATABASE)


def count_both(conn: psycopg.Connection, driver: Driver) -> tuple[tuple[int, int], tuple[int, int]]:
    with conn.cursor() as cur:
        cur.execute(SQL_COUNTS)
        in_sql = tuple(cur.fetchone())
    conn.rollback()
    record = driver.execute_query(CYPHER_COUNTS, database_=DATABASE).records[0]
    return in_sql, (record["people"], record["follows"])


def sql_within(conn: psycopg.Connection, depth: int) -> dict[int, int]:
    with conn.cursor() as cur:
        cur.execute(SQL_WITHIN, {"start": START, "depth": depth})
        return dict(cur.fetchall())


def sql_count(conn: psycopg.Connection, statement: str, depth: int) -> int:
    with conn.cursor() as cur:
        cur.execute(statement, {"start": START, "depth": depth})
        return cur.fetchone()[0]


def cypher_within(driver: Driver, depth: int) -> set[int]:
    records = driver.execute_query(CYPHER_WITHIN[depth], start=START, database_=DATABASE).records
    return set(records[0]["ids"])


def compare_depths(conn: psycopg.Connection, driver: Driver) -> tuple[list[Depth], dict, dict]:
    depths, sql_by_hops, cypher_by_hops = [], {}, {}
    previous: set[int] = set()
    for depth in DEPTHS:
        hops = sql_within(conn, depth)
        sql_by_hops[depth] = {person for person, h in hops.items() if h == depth}
        reached = cypher_within(driver, depth)
        cypher_by_hops[depth] = reached - previous
        previous = reached
        sql_s = best_of(lambda d=depth: sql_within(conn, d))
        cypher_s = best_of(lambda d=depth: cypher_within(driver, d))
        cte_rows, walks = sql_count(conn, SQL_CTE_ROWS, depth), sql_count(conn, SQL_WALKS, depth)
        depths.append(Depth(depth, len(hops), len(sql_by_hops[depth]), cte_rows, walks, sql_s, cypher_s))
    conn.rollback()
    return depths, sql_by_hops, cypher_by_hops


def compare_shortest(
    conn: psycopg.Connection, driver: Driver
) -> list[tuple[int, int, int | None, int | None]]:
    answers = []
    with conn.cursor() as cur:
        for src, dst in pairs():
            cur.execute(SQL_SHORTEST, {"src": src, "dst": dst, "max_hops": MAX_HOPS})
            in_sql = cur.fetchone()[0]
            records = driver.execute_query(CYPHER_SHORTEST, src=src, dst=dst, database_=DATABASE).records
            answers.append((src, dst, in_sql, records[0]["hops"]))
    conn.rollback()
    return answers


def run(conn: psycopg.Connection, driver: Driver) -> GraphVsRelationalResult:
    console.title("Graph vs relational: hops by recursive CTE and by Cypher")

    console.step("Load one generated edge list into both engines")
    people, edges = generate()
    load_postgres(conn, people, edges)
    load_neo4j(driver, people, edges)
    in_sql, in_neo4j = count_both(conn, driver)
    console.table(
        ["counted in", "people", "follows"],
        [("PostgreSQL: tables with indexes", *in_sql), ("Neo4j: nodes and relationships", *in_neo4j)],
    )

    console.step(f"Everyone within N hops of person {START}, N = 1..{DEPTHS[-1]}")
    console.say("SQL joins the edge table once per hop; Cypher expands relationships from the start node.")
    depths, sql_by_hops, cypher_by_hops = compare_depths(conn, driver)
    console.table(
        ["depth", "SQL", "Cypher", "reached", "new", "CTE rows", "UNION ALL rows"],
        [
            (d.depth, console.seconds(d.sql_s), console.seconds(d.cypher_s), d.reached, d.first_reached,
             d.cte_rows, d.walks)
            for d in depths
        ],
    )  # fmt: skip
    same_sets = sql_by_hops == cypher_by_hops
    console.say(f"same people at every depth: {'yes' if same_sets else 'NO'}")
    console.say(
        "CTE rows: one per person and depth (UNION); UNION ALL would keep one per walk, "
        f"{FOLLOWS_EACH}x more at every hop"
    )

    console.step("Shortest number of hops between two people")
    shortest = compare_shortest(conn, driver)
    console.table(
        ["from", "to", "SQL hops", "Cypher hops"],
        [(s, d, "no path" if a is None else a, "no path" if b is None else b) for s, d, a, b in shortest],
    )
    console.say(
        f"same lengths: {'yes' if all(a == b for *_, a, b in shortest) else 'NO'}; "
        f"SQL cannot stop at the first hit, so it always recurses {MAX_HOPS} levels, "
        "while shortestPath stops when the two searches meet"
    )

    return GraphVsRelationalResult(in_sql, in_neo4j, depths, sql_by_hops, cypher_by_hops, shortest)


def main() -> int:
    require(*REQUIRES)
    with (
        psycopg.connect(postgres_url(), connect_timeout=CONNECT_TIMEOUT_S) as conn,
        GraphDatabase.driver(neo4j_url(), auth=neo4j_auth(), connection_timeout=CONNECT_TIMEOUT_S) as driver,
    ):
        result = run(conn, driver)
    return 0 if result.same_answers and result.sql_counts == result.neo4j_counts else 1


if __name__ == "__main__":
    raise SystemExit(main())

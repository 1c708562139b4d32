"""Traversals: variable-length paths, shortest paths, friends of friends, and filters along a path

A thousand people and their friendships, stored once and read in both directions. This lesson
walks one to three hops out from a person (and counts how many more paths there are than people:
a variable-length pattern returns paths, DISTINCT turns them into people), finds the shortest path
and all shortest paths between two people, lists friends of friends who are not already friends,
and filters along the path: only friendships made since a given year (all() over the
relationships), and a shortest path that avoids everyone from one city (none() over the nodes).
Every answer is checked against a breadth-first search in Python over the same edge list. Last,
PROFILE compares starting from a property with a uniqueness constraint (an index seek) with
starting from a property without an index (a label scan), by the database hits of each plan.

Engine: Neo4j (NEO4J_URL), nodes labelled `Traversals`; constraint `traversals_email` on that label (a
constraint covers every node with its label: one on Person would reach other lessons' people).
Run: `make up SERVICES=neo4j` (or `make local-up`), then `python graph/traversals.py`.
Look for: paths vs distinct people, the detour when a city is avoided, and NodeUniqueIndexSeek
against NodeByLabelScan with their database hits.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field

from neo4j import Driver, GraphDatabase

from common import console
from common.neo4j_schema import wait_until_online
from common.settings import CONNECT_TIMEOUT_S, neo4j_auth, neo4j_url, require

REQUIRES = ("neo4j",)
DATABASE = "neo4j"
SEED = 23
N_PEOPLE = 1_000
LOCAL_FRIENDS = 2  # each person befriends two people of their city and one from anywhere
CLOSE_TRIANGLE = 0.6  # and, this often, a friend of a friend
CITIES = ["Lisbon", "Porto", "Lyon", "Bonn", "Graz", "Turin"]
AVOIDED_CITY = "Porto"
SINCE_YEAR = 2016  # friendships made this year or later, for the all() filter
MIN_HOPS_APART = 4  # the two people whose shortest paths are shown are at least this far apart
EMAIL_DOMAIN = "traversals.example"
BATCH_SIZE = 1_000
DELETE_BATCH = 2_000
SHOWN = 5

CONSTRAINT = "CREATE CONSTRAINT traversals_email IF NOT EXISTS FOR (p:Traversals) REQUIRE p.email IS UNIQUE"
DROP_OLD_CONSTRAINT = "DROP CONSTRAINT traversals_person_email IF EXISTS"  # on Person, in earlier versions
DELETE_SOME = "MATCH (n:Traversals) WITH n LIMIT $limit DETACH DELETE n RETURN count(*) AS deleted"
LOAD_PEOPLE = """
UNWIND $rows AS row
CREATE (:Traversals:Person {email: row.email, handle: row.handle, name: row.name, city: row.city})
"""
# A friendship is mutual: stored once, in an arbitrary direction, and matched without an arrow.
LOAD_FRIENDS = """
UNWIND $rows AS row
MATCH (a:Traversals:Person {email: row.a})
MATCH (b:Traversals:Person {email: row.b})
CREATE (a)-[:FRIEND {since: row.since}]->(b)
"""
WITHIN_THREE = """
MATCH path = (me:Traversals:Person {email: $email})-[:FRIEND*1..3]-(other:Person)
WHERE other <> me
WITH other, min(length(path)) AS hops, count(path) AS paths
RETURN hops, count(other) AS people, sum(paths) AS paths
ORDER BY hops
"""
SHORTEST = """
MATCH (a:Traversals:Person {email: $a}), (b:Traversals:Person {email: $b})
MATCH path = shortestPath((a)-[:FRIEND*]-(b))
RETURN [n IN nodes(path) | n.email] AS emails
"""
ALL_SHORTEST = """
MATCH (a:Traversals:Person {email: $a}), (b:Traversals:Person {email: $b})
MATCH path = allShortestPaths((a)-[:FRIEND*]-(b))
RETURN [n IN nodes(path) | n.email] AS emails
"""
FRIENDS_OF_FRIENDS = """
MATCH (me:Traversals:Person {email: $email})-[:FRIEND]-(friend)-[:FRIEND]-(fof:Person)
WHERE fof <> me AND NOT (me)-[:FRIEND]-(fof)
RETURN fof.email AS email, fof.name AS name, count(DISTINCT friend) AS through
ORDER BY through DESC, name, email
"""
WITHIN_THREE_SINCE = """
MATCH path = (me:Traversals:Person {email: $email})-[:FRIEND*1..3]-(other:Person)
WHERE other <> me AND all(r IN relationships(path) WHERE r.since >= $year)
RETURN count(DISTINCT other) AS people
"""
SHORTEST_AVOIDING = """
MATCH (a:Traversals:Person {email: $a}), (b:Traversals:Person {email: $b})
MATCH path = shortestPath((a)-[:FRIEND*]-(b))
WHERE none(n IN nodes(path) WHERE n.city = $city)
RETURN [n IN nodes(path) | n.email] AS emails
"""
PROFILE_BY_EMAIL = """
PROFILE MATCH (p:Traversals:Person {email: $email})-[:FRIEND]-(friend)
RETURN count(friend) AS friends
"""
PROFILE_BY_HANDLE = """
PROFILE MATCH (p:Traversals:Person {handle: $handle})-[:FRIEND]-(friend)
RETURN count(friend) AS friends
"""
FIRST_NAMES = [
    "Ana",
    "Bo",
    "Cleo",
    "Dev",
    "Eli",
    "Fay",
    "Gus",
    "Ines",
    "Jon",
    "Kai",
    "Lea",
    "Max",
    "Noor",
    "Otto",
]
LAST_NAMES = ["Alves", "Brandt", "Cruz", "Dahl", "Eder", "Faure", "Gallo", "Holm", "Iver", "Jansen", "Klein"]


@dataclass
class People:
    rows: list[dict]
    friendships: list[dict]

    def adjacency(self, since: int | None = None) -> dict[str, set[str]]:
        neighbours: dict[str, set[str]] = {row["email"]: set() for row in self.rows}
        for friendship in self.friendships:
            if since is None or friendship["since"] >= since:
                neighbours[friendship["a"]].add(friendship["b"])
                neighbours[friendship["b"]].add(friendship["a"])
        return neighbours

    def city_of(self) -> dict[str, str]:
        return {row["email"]: row["city"] for row in self.rows}


@dataclass
class Profiled:
    operators: list[str]  # the plan's operators in the order rows flow: the start first
    db_hits: int = field(compare=False)  # may depend on how many Person nodes other lessons left
    friends: int


@dataclass
class TraversalResult:
    person: str
    other: str
    within_three: dict[int, tuple[int, int]]  # hops -> (people first reached there, paths ending there)
    shortest: list[str] = field(compare=False)  # one of the shortest: which one may differ per run
    all_shortest: list[list[str]]
    friends_of_friends: list[tuple[str, str, int]]  # (email, name, friends in common)
    within_three_since: int
    shortest_avoiding: list[str] = field(compare=False)
    by_email: Profiled
    by_handle: Profiled

    @property
    def hops(self) -> tuple[int, int]:
        """Length of the shortest path, and of the shortest one that avoids the city."""
        return len(self.shortest) - 1, len(self.shortest_avoiding) - 1


def generate(seed: int = SEED) -> People:
    """People in cities; friends mostly from their own city, some from anywhere, and some friends of
    friends (as in life: that closes triangles, so several paths lead to the same person)."""
    rng = random.Random(seed)
    names = [f"{first} {last}" for first in FIRST_NAMES for last in LAST_NAMES]
    rows = []
    for number in range(1, N_PEOPLE + 1):
        name = rng.choice(names)
        handle = f"{name.split()[0].lower()}{number:04d}"
        rows.append(
            {"email": f"{handle}@{EMAIL_DOMAIN}", "handle": handle, "name": name, "city": rng.choice(CITIES)}
        )
    by_city: dict[str, list[int]] = {}
    for index, row in enumerate(rows):
        by_city.setdefault(row["city"], []).append(index)
    pairs: set[tuple[int, int]] = set()
    for index, row in enumerate(rows):
        for other in [*rng.sample(by_city[row["city"]], LOCAL_FRIENDS), rng.randrange(N_PEOPLE)]:
            if other != index:
                pairs.add((min(index, other), max(index, other)))
    friends: dict[int, set[int]] = {}
    for a, b in sorted(pairs):
        friends.setdefault(a, set()).add(b)
        friends.setdefault(b, set()).add(a)
    for index in range(N_PEOPLE):
        if rng.random() < CLOSE_TRIANGLE and friends.get(index):
            friend = rng.choice(sorted(friends[index]))
            other = rng.choice(sorted(friends[friend]))
            if other != index:
                pairs.add((min(index, other), max(index, other)))
    friendships = [
        {"a": rows[a]["email"], "b": rows[b]["email"], "since": rng.randint(2008, 2024)}
        for a, b in sorted(pairs)
    ]
    return People(rows, friendships)


def distances(neighbours: dict[str, set[str]], start: str, allowed=lambda email: True) -> dict[str, int]:
    """Breadth-first search: hops from `start` to everyone it reaches through allowed people."""
    hops = {start: 0}
    queue = deque([start])
    while queue:
        current = queue.popleft()
        for nxt in neighbours[current]:
            if nxt not in hops and allowed(nxt):
                hops[nxt] = hops[current] + 1
                queue.append(nxt)
    return hops


def count_shortest_paths(neighbours: dict[str, set[str]], start: str) -> dict[str, int]:
    """How many shortest paths lead from `start` to each person (BFS, counting predecessors)."""
    hops = distances(neighbours, start)
    counts = {start: 1}
    for email in sorted(hops, key=hops.get)[1:]:
        counts[email] = sum(counts[p] for p in neighbours[email] if hops.get(p) == hops[email] - 1)
    return counts


def pick_pair(people: People) -> tuple[str, str]:
    """Two people outside the avoided city, far apart, joined by several shortest paths, and for
    whom avoiding the city makes a detour (so the none() filter visibly changes the answer)."""
    city = people.city_of()
    neighbours = people.adjacency()
    start = next(row["email"] for row in people.rows if row["city"] != AVOIDED_CITY)
    hops = distances(neighbours, start)
    around = distances(neighbours, start, allowed=lambda e: city[e] != AVOIDED_CITY)
    paths = count_shortest_paths(neighbours, start)
    far = [e for e in around if hops[e] >= MIN_HOPS_APART]
    return start, max(far, key=lambda e: (around[e] > hops[e], paths[e], -hops[e], e))


def reset_and_load(driver: Driver, people: People) -> None:
    while driver.execute_query(DELETE_SOME, limit=DELETE_BATCH, database_=DATABASE).records[0]["deleted"]:
        pass
    for start in range(0, len(people.rows), BATCH_SIZE):
        driver.execute_query(LOAD_PEOPLE, rows=people.rows[start : start + BATCH_SIZE], database_=DATABASE)
    # The constraint's index is built over the people now there, so its sampled statistics (what the
    # planner costs plans by) are current; sampled on an empty label, a scan would look as cheap as a seek.
    driver.execute_query(DROP_OLD_CONSTRAINT, database_=DATABASE)
    driver.execute_query(CONSTRAINT, database_=DATABASE)
    driver.execute_query("CALL db.resampleIndex('traversals_email')", database_=DATABASE)
    wait_until_online(driver, "Traversals", DATABASE)  # its own indexes only: lessons run side by side
    for start in range(0, len(people.friendships), BATCH_SIZE):
        rows = people.friendships[start : start + BATCH_SIZE]
        driver.execute_query(LOAD_FRIENDS, rows=rows, database_=DATABASE)


def within_three(driver: Driver, email: str) -> dict[int, tuple[int, int]]:
    """`*1..3` returns every path (no relationship twice) up to three hops: many reach the same person."""
    records = driver.execute_query(WITHIN_THREE, email=email, database_=DATABASE).records
    return {r["hops"]: (r["people"], r["paths"]) for r in records}


def shortest_paths(driver: Driver, a: str, b: str) -> tuple[list[str], list[list[str]]]:
    """shortestPath returns one path of the fewest hops; allShortestPaths returns all of that length."""
    one = driver.execute_query(SHORTEST, a=a, b=b, database_=DATABASE).records[0]["emails"]
    every = sorted(
        r["emails"] for r in driver.execute_query(ALL_SHORTEST, a=a, b=b, database_=DATABASE).records
    )
    return one, every


def friends_of_friends(driver: Driver, email: str) -> list[tuple[str, str, int]]:
    """Two hops out, minus the person and the direct friends; ranked by friends in common."""
    records = driver.execute_query(FRIENDS_OF_FRIENDS, email=email, database_=DATABASE).records
    return [(r["email"], r["name"], r["through"]) for r in records]


def filtered_along_the_path(driver: Driver, a: str, b: str) -> tuple[int, list[str]]:
    """A predicate on every relationship (all) and on every node (none) of the path; Neo4j checks
    them while it expands, so a path that fails is cut as soon as it fails."""
    since = driver.execute_query(WITHIN_THREE_SINCE, email=a, year=SINCE_YEAR, database_=DATABASE).records
    avoiding = driver.execute_query(
        SHORTEST_AVOIDING, a=a, b=b, city=AVOIDED_CITY, database_=DATABASE
    ).records
    return since[0]["people"], avoiding[0]["emails"]


def profile(driver: Driver, statement: str, **parameters) -> Profiled:
    """Run with PROFILE: the plan comes back in the summary, each operator with its database hits
    (reads of nodes, relationships and properties in the store)."""
    result = driver.execute_query(statement, parameters, database_=DATABASE)
    operators, hits = [], 0
    stack = [result.summary.profile]
    while stack:
        operator = stack.pop()
        operators.append(operator["operatorType"].split("@")[0])
        hits += operator.get("dbHits", 0)
        stack.extend(operator.get("children", []))
    return Profiled(operators[::-1], hits, result.records[0]["friends"])


def run(driver: Driver) -> TraversalResult:
    console.title("Traversals: paths, shortest paths, friends of friends, filters and PROFILE")
    people = generate()
    reset_and_load(driver, people)
    names = {row["email"]: row["name"] for row in people.rows}
    a, b = pick_pair(people)
    console.say(
        f"{len(people.rows):,} people, {len(people.friendships):,} friendships; from {names[a]} ({a})"
    )

    console.step("One to three hops out: paths, not people")
    reach = within_three(driver, a)
    console.table(
        ["hops away", "people", "paths of 1..3 hops to them"], [(h, *reach[h]) for h in sorted(reach)]
    )
    console.say("one person is the end of several paths: count DISTINCT people, not rows")

    console.step(f"Shortest path and all shortest paths to {names[b]}")
    shortest, all_shortest = shortest_paths(driver, a, b)
    console.say(f"shortestPath: {len(shortest) - 1} hops: {' - '.join(names[e] for e in shortest)}")
    console.say(f"allShortestPaths: {len(all_shortest)} paths of {len(all_shortest[0]) - 1} hops")
    for path in all_shortest[:SHOWN]:
        console.say("  " + " - ".join(names[e] for e in path))

    console.step("Friends of friends who are not friends yet")
    fof = friends_of_friends(driver, a)
    console.say(f"{len(fof)} people; the most connected:")
    console.table(["name", "email", "friends in common"], [(name, e, n) for e, name, n in fof[:SHOWN]])

    console.step("Filters along the path: all() on relationships, none() on nodes")
    since, avoiding = filtered_along_the_path(driver, a, b)
    everyone = sum(n for n, _ in reach.values())
    console.say(
        f"within 3 hops: {everyone} people; through friendships made since {SINCE_YEAR} only: {since}"
    )
    console.say(
        f"shortest path to {names[b]}: {len(shortest) - 1} hops; avoiding everyone in {AVOIDED_CITY}: "
        f"{len(avoiding) - 1} hops"
    )

    console.step("PROFILE: start from an indexed property, then from one without an index")
    handle = next(row["handle"] for row in people.rows if row["email"] == a)
    by_email = profile(driver, PROFILE_BY_EMAIL, email=a)
    by_handle = profile(driver, PROFILE_BY_HANDLE, handle=handle)
    for label, profiled in (
        ("{email: $email}, unique", by_email),
        ("{handle: $handle}, no index", by_handle),
    ):
        console.say(f"{label}: {profiled.db_hits:,} db hits; {' > '.join(profiled.operators)}")
    console.say(f"the seek reads {by_handle.db_hits / max(by_email.db_hits, 1):.0f}x less of the store")

    return TraversalResult(
        person=a,
        other=b,
        within_three=reach,
        shortest=shortest,
        all_shortest=all_shortest,
        friends_of_friends=fof,
        within_three_since=since,
        shortest_avoiding=avoiding,
        by_email=by_email,
        by_handle=by_handle,
    )


def main() -> int:
    require(*REQUIRES)
    with GraphDatabase.driver(neo4j_url(), auth=neo4j_auth(), connection_timeout=CONNECT_TIMEOUT_S) as driver:
        result = run(driver)
    return 0 if result.by_email.db_hits < result.by_handle.db_hits else 1


if __name__ == "__main__":
    raise SystemExit(main())

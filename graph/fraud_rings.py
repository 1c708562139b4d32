"""Fraud rings: accounts linked by shared devices and addresses, found by pattern matching and scored

Each account uses a device and lives at an address. Fraudsters open many accounts and reuse a
phone or a mailbox between them, so rings show up as accounts joined through shared identifiers:
(Account)-[:USES]->(Device)<-[:USES]-(Account), and the same through (Address). This lesson plants
four rings of different shapes (a chain, a star, a cycle, a dense cluster) among a thousand clean
accounts and forty households (two people at one address), then finds them with Cypher only, no
graph-algorithm library: pairs sharing an identifier, accounts that lie on a cycle, and connected
components computed by repeating one query that hands each account the smallest id among the
accounts it shares something with, until nothing changes. A component of three or more accounts is
a ring; its risk score counts its shared identifiers, its accounts and its chargebacks. The planted
rings come back exactly, households are left alone, and every clean account scores 0.

Engine: Neo4j (NEO4J_URL), nodes labelled `FraudRings`; constraint `fraud_rings_id` on that label (ids
carry their kind, `acct-`, `dev-`, `addr-`), so no constraint reaches another lesson's nodes.
Run: `make up SERVICES=neo4j` (or `make local-up`), then `python graph/fraud_rings.py`.
Look for: the rounds until the components settle, the rings table with their scores, and the
members a cycle misses but a component finds.
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
SEED = 53
N_ACCOUNTS = 1_200
N_HOUSEHOLDS = 40  # pairs of accounts at one address: linked, but too small to be a ring
MIN_RING_SIZE = 3
NOISE_CHARGEBACK_RATE = 0.02  # clean accounts have chargebacks too: alone they are not a pattern
# The score of a ring, given to each of its accounts.
POINTS_PER_SHARED_IDENTIFIER, POINTS_PER_ACCOUNT, POINTS_PER_CHARGEBACK = 10, 5, 25
MAX_ROUNDS = 50
# Planted rings: each group is (kind, members) = these members share one identifier of that kind
# (the first member's own). Member numbers are positions in the ring.
RINGS = {
    "chain": ([("device", [0, 1]), ("address", [1, 2]), ("device", [2, 3]), ("address", [3, 4])], 3),
    "star": ([("device", [0, 1, 2, 3])], 1),
    "cycle": ([("device", [0, 1]), ("address", [1, 2]), ("device", [2, 0])], 2),
    "dense": ([("device", [0, 1, 2]), ("device", [3, 4, 5]), ("address", [0, 3]), ("address", [2, 5])], 4),
}  # name: (groups, chargebacks in the ring)
INVESTIGATED_RING = "dense"

# A constraint covers every node with its label: on the lesson's own label, never on a shared one.
# The first three drop what earlier versions created on the shared labels Account, Device and Address.
SCHEMA = [
    "DROP CONSTRAINT fraud_rings_account_id IF EXISTS",
    "DROP CONSTRAINT fraud_rings_device_id IF EXISTS",
    "DROP CONSTRAINT fraud_rings_address_id IF EXISTS",
    "CREATE CONSTRAINT fraud_rings_id IF NOT EXISTS FOR (n:FraudRings) REQUIRE n.id IS UNIQUE",
]
DELETE_SOME = "MATCH (n:FraudRings) WITH n LIMIT $limit DETACH DELETE n RETURN count(*) AS deleted"
LOAD_ACCOUNTS = """
UNWIND $rows AS row
CREATE (a:FraudRings:Account {id: row.id, chargebacks: row.chargebacks})
FOREACH (device IN row.devices |
    MERGE (d:FraudRings:Device {id: device})
    CREATE (a)-[:USES]->(d))
FOREACH (address IN row.addresses |
    MERGE (x:FraudRings:Address {id: address})
    CREATE (a)-[:LIVES_AT]->(x))
"""
SHARED_PAIRS = """
MATCH (a:FraudRings:Account)-[:USES|LIVES_AT]->(shared)<-[:USES|LIVES_AT]-(b:Account)
WHERE a.id < b.id
RETURN CASE WHEN shared:Device THEN 'device' ELSE 'address' END AS kind, count(*) AS pairs
ORDER BY kind
"""
# A cycle through identifiers: leave the account and come back to it by other relationships.
ON_A_CYCLE = """
MATCH (a:FraudRings:Account)
WHERE EXISTS { (a)-[:USES|LIVES_AT*4..12]-(a) }
RETURN a.id AS id ORDER BY id
"""
START_COMPONENTS = "MATCH (a:FraudRings:Account) SET a.component = a.id, a.risk = 0"
# One round: each account takes the smallest component id among accounts it shares anything with.
# Ids spread one hop per round, so the rounds needed are about the width of the widest ring.
SPREAD_COMPONENT = """
MATCH (a:FraudRings:Account)-[:USES|LIVES_AT]->()<-[:USES|LIVES_AT]-(b:Account)
WITH a, min(b.component) AS lowest
WHERE lowest < a.component
SET a.component = lowest
RETURN count(a) AS changed
"""
SCORE_RINGS = """
MATCH (a:FraudRings:Account)
WITH a.component AS ring, collect(a) AS members, sum(a.chargebacks) AS chargebacks
WHERE size(members) >= $min_size
UNWIND members AS member
MATCH (member)-[:USES|LIVES_AT]->(shared)<-[:USES|LIVES_AT]-(:Account)
WITH ring, members, chargebacks, count(DISTINCT shared) AS identifiers
WITH ring, members, chargebacks, identifiers,
     $per_identifier * identifiers + $per_account * size(members) + $per_chargeback * chargebacks AS score
FOREACH (member IN members | SET member.risk = score)
RETURN ring, [m IN members | m.id] AS accounts, identifiers, chargebacks, score
ORDER BY score DESC, ring
"""
SIZES = """
MATCH (a:FraudRings:Account)
WITH a.component AS component, count(*) AS size
RETURN size, count(*) AS components ORDER BY size
"""
RISK = "MATCH (a:FraudRings:Account) RETURN a.id AS id, a.risk AS risk"
# Bounded variable-length: everyone linked to one account through up to 6 shared identifiers.
AROUND_ONE = """
MATCH (a:FraudRings:Account {id: $id})-[:USES|LIVES_AT*2..12]-(b:Account)
WHERE b <> a
RETURN collect(DISTINCT b.id) AS linked
"""


@dataclass
class Ring:
    component: str  # the smallest account id in it
    accounts: list[str]
    shared_identifiers: int
    chargebacks: int
    score: int


@dataclass
class Accounts:
    rows: list[dict]  # id, chargebacks, devices, addresses
    rings: dict[str, list[str]]  # planted ring name -> account ids
    households: list[list[str]]


@dataclass
class FraudResult:
    accounts: int
    shared_pairs: dict[str, int]  # kind of identifier -> pairs of accounts sharing one
    on_a_cycle: list[str]
    rounds: int  # rounds of the component query until nothing changed
    component_sizes: dict[int, int]  # size -> how many components of that size
    rings: list[Ring]
    risk: dict[str, int]  # account id -> score (0 for every account outside a ring)
    investigated: str
    around_investigated: list[str]


def generate(seed: int = SEED) -> Accounts:
    rng = random.Random(seed)
    rows = [
        {
            "id": f"acct-{i:04d}",
            "chargebacks": int(rng.random() < NOISE_CHARGEBACK_RATE),
            "devices": [f"dev-{i:04d}"],
            "addresses": [f"addr-{i:04d}"],
        }
        for i in range(1, N_ACCOUNTS + 1)
    ]
    needed = 2 * N_HOUSEHOLDS + sum(1 + max(max(m) for _, m in groups) for groups, _ in RINGS.values())
    chosen = rng.sample(rows, needed)
    households = []
    for _ in range(N_HOUSEHOLDS):
        first, second = chosen.pop(), chosen.pop()
        second["addresses"] = list(first["addresses"])  # moved in together
        households.append(sorted([first["id"], second["id"]]))
    rings = {}
    for name, (groups, chargebacks) in RINGS.items():
        size = 1 + max(max(members) for _, members in groups)
        members = [chosen.pop() for _ in range(size)]
        for member in members:
            member["chargebacks"] = 0
        for _ in range(chargebacks):
            rng.choice(members)["chargebacks"] += 1
        for kind, positions in groups:
            key = "devices" if kind == "device" else "addresses"
            shared = members[positions[0]][key][0]  # the first member's own identifier
            for position in positions[1:]:
                members[position][key].append(shared)
        rings[name] = sorted(m["id"] for m in members)
    return Accounts(rows, rings, households)


def reset_and_load(driver: Driver, accounts: Accounts) -> None:
    while driver.execute_query(DELETE_SOME, limit=5_000, database_=DATABASE).records[0]["deleted"]:
        pass
    for statement in SCHEMA:
        driver.execute_query(statement, database_=DATABASE)
    wait_until_online(driver, "FraudRings", DATABASE)  # its own indexes only: lessons run side by side
    for start in range(0, len(accounts.rows), 500):
        driver.execute_query(LOAD_ACCOUNTS, rows=accounts.rows[start : start + 500], database_=DATABASE)


def find_components(driver: Driver) -> int:
    """Connected components without a graph library: repeat one query until no account changes."""
    driver.execute_query(START_COMPONENTS, database_=DATABASE)
    for rounds in range(1, MAX_ROUNDS + 1):
        if driver.execute_query(SPREAD_COMPONENT, database_=DATABASE).records[0]["changed"] == 0:
            return rounds
    raise RuntimeError(f"components still changing after {MAX_ROUNDS} rounds")


def score_rings(driver: Driver) -> list[Ring]:
    records = driver.execute_query(
        SCORE_RINGS,
        min_size=MIN_RING_SIZE,
        per_identifier=POINTS_PER_SHARED_IDENTIFIER,
        per_account=POINTS_PER_ACCOUNT,
        per_chargeback=POINTS_PER_CHARGEBACK,
        database_=DATABASE,
    ).records
    return [
        Ring(r["ring"], sorted(r["accounts"]), r["identifiers"], r["chargebacks"], r["score"])
        for r in records
    ]


def run(driver: Driver) -> FraudResult:
    console.title("Fraud rings: accounts linked by shared devices and addresses")
    accounts = generate()
    reset_and_load(driver, accounts)
    console.say(
        f"{len(accounts.rows):,} accounts, {N_HOUSEHOLDS} households, {len(RINGS)} planted rings "
        f"({', '.join(f'{name} of {len(ids)}' for name, ids in accounts.rings.items())})"
    )

    console.step("Pairs of accounts that share an identifier")
    console.say("One pattern: (Account)-->(shared)<--(Account), for a device or an address.")
    records = driver.execute_query(SHARED_PAIRS, database_=DATABASE).records
    shared_pairs = {r["kind"]: r["pairs"] for r in records}
    console.table(["shared", "pairs of accounts"], shared_pairs.items())

    console.step("Accounts on a cycle: back to themselves through other identifiers")
    on_a_cycle = [r["id"] for r in driver.execute_query(ON_A_CYCLE, database_=DATABASE).records]
    console.say(f"{len(on_a_cycle)} accounts: {', '.join(on_a_cycle)}")
    console.say("A cycle finds the tight core of a ring, not the members hanging off it.")

    console.step("Connected components: spread the smallest id until nothing changes")
    rounds = find_components(driver)
    sizes = {r["size"]: r["components"] for r in driver.execute_query(SIZES, database_=DATABASE).records}
    console.say(f"settled after {rounds} rounds (the last one changed nothing)")
    console.table(["accounts in component", "components"], sizes.items())

    console.step(f"Rings (components of {MIN_RING_SIZE} accounts or more) and their risk score")
    console.say(
        f"score = {POINTS_PER_SHARED_IDENTIFIER} x shared identifiers + {POINTS_PER_ACCOUNT} x accounts "
        f"+ {POINTS_PER_CHARGEBACK} x chargebacks"
    )
    rings = score_rings(driver)
    planted_as = {tuple(ids): name for name, ids in accounts.rings.items()}
    console.table(
        ["ring", "accounts", "shared identifiers", "chargebacks", "score", "planted as"],
        [
            (r.component, len(r.accounts), r.shared_identifiers, r.chargebacks, r.score,
             planted_as.get(tuple(r.accounts), "(not planted)"))
            for r in rings
        ],
    )  # fmt: skip
    exact = sum(1 for r in rings if tuple(r.accounts) in planted_as)
    console.say(f"planted rings found with exactly their members: {exact} of {len(RINGS)}")
    risk = {r["id"]: r["risk"] for r in driver.execute_query(RISK, database_=DATABASE).records}
    scored = sum(1 for value in risk.values() if value > 0)
    console.say(f"accounts with a score above 0: {scored}; every other account: 0 (households included)")

    console.step("Investigate one account: a bounded variable-length path")
    investigated = accounts.rings[INVESTIGATED_RING][0]
    around = driver.execute_query(AROUND_ONE, id=investigated, database_=DATABASE).records[0]["linked"]
    console.say(f"{investigated} is linked to {len(around)} accounts within 6 shared identifiers")
    console.say(
        "Fine for one account; for all of them at once the components above do not depend on a bound."
    )

    return FraudResult(
        accounts=len(accounts.rows),
        shared_pairs=shared_pairs,
        on_a_cycle=on_a_cycle,
        rounds=rounds,
        component_sizes=sizes,
        rings=rings,
        risk=risk,
        investigated=investigated,
        around_investigated=sorted(around),
    )


def main() -> int:
    require(*REQUIRES)
    with GraphDatabase.driver(neo4j_url(), auth=neo4j_auth(), connection_timeout=CONNECT_TIMEOUT_S) as driver:
        result = run(driver)
    return 0 if len(result.rings) == len(RINGS) else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""NoSQL injection: MongoDB operators, Cypher by concatenation, Redis key names, each attack then its defence

"NoSQL" does not mean "no injection". Whenever request data decides the shape of a query instead of
only a value in it, an attacker can rewrite the query. This lesson attacks three labelled
vulnerable functions and then the same attacks against the safe ones. MongoDB: a JSON body whose
token is `{"$ne": null}` or `{"$gt": ""}` logs in without the token, and `{"$regex": "^a"}` extracts
a stored token one character at a time; type validation (or a cast to str) stops both. Neo4j: a
Cypher query built by concatenation leaks every note and then deletes them all; the same input as a
parameter matches nothing, and a label from the request is checked against an allow-list. Redis: an
id of `alice:token` reads another key of the namespace and an id of `*` logs every user out; an id
checked against a pattern stops both, and a Lua script that takes its keys as KEYS declares them to
the server (which a script that builds key names from ARGV cannot).

Engine: MongoDB (MONGO_URL), database `nosql_injection`; Neo4j (NEO4J_URL), nodes labelled
`NosqlInjection`; Redis (REDIS_URL), keys under `nosql_injection:`. Everything here is query
semantics, so the local MongoDB stand-in runs all of it.
Run: `make up SERVICES="mongodb neo4j redis"` (or `make local-up`), then `python security/nosql_injection.py`.
Look for: UNSAFE beside every attack that worked, the token extracted by $regex, "notes left: 0"
after the Cypher delete, and the same inputs refused or matching nothing against the safe code.
"""

from __future__ import annotations

import re
import secrets
import string
from dataclasses import dataclass, field

import pymongo
import redis
from neo4j import Driver, GraphDatabase
from pymongo.collection import Collection

from common import console
from common.settings import CONNECT_TIMEOUT_S, mongo_url, neo4j_auth, neo4j_url, redis_url, require

REQUIRES = ("mongodb", "neo4j", "redis")
DATABASE = "nosql_injection"  # MongoDB
LABEL = "NosqlInjection"  # Neo4j
NEO4J_DATABASE = "neo4j"
PREFIX = "nosql_injection:"  # Redis
USERS = ["alice", "bob", "carol"]
TOKEN_ALPHABET = string.hexdigits[:16]  # secrets.token_hex: 0-9 a-f
NOTES = {"alice": ["salary review", "board minutes", "vpn recovery codes"], "bob": ["lunch order", "holiday"]}
SESSIONS_PER_USER = 3
ID_PATTERN = re.compile(r"[a-z0-9_-]{1,32}")  # no `:` (a namespace separator), no glob characters
NODE_LABELS = {"Note", "Tag"}  # what a request may name
MONGO_ATTACKS = {
    "token {$ne: null}": {"username": "alice", "token": {"$ne": None}},
    "username and token {$gt: ''}": {"username": {"$gt": ""}, "token": {"$gt": ""}},
}
CYPHER_LEAK = "nobody' OR '1'='1"
CYPHER_DELETE = "nobody' OR true WITH n DETACH DELETE n RETURN count(*) AS title //"
LABEL_ATTACK = "Note) DETACH DELETE n //"
REDIS_PROFILE_ATTACK = "alice:token"
REDIS_LOGOUT_ATTACK = "*"

DELETE_ALL = "MATCH (n:NosqlInjection) DETACH DELETE n"
LOAD_NOTES = "UNWIND $rows AS row CREATE (:NosqlInjection:Note {owner: row.owner, title: row.title})"
COUNT_NOTES = "MATCH (n:NosqlInjection:Note) RETURN count(n) AS notes"
NOTES_OF = "MATCH (n:NosqlInjection:Note) WHERE n.owner = $owner RETURN n.title AS title ORDER BY title"
# A label cannot be a parameter in `(n:Label)` before Cypher's dynamic labels (Neo4j 5.26: `$($label)`);
# checked against the allow-list, it is compared as a value, so it is never part of the query text.
COUNT_BY_LABEL = "MATCH (n:NosqlInjection) WHERE $label IN labels(n) RETURN count(n) AS nodes"
# UNSAFE: builds a key name from ARGV inside the script, so the server cannot see which key it reads.
PROFILE_FROM_ARGV = "return redis.call('GET', 'nosql_injection:user:' .. ARGV[1])"
PROFILE_FROM_KEYS = "return redis.call('GET', KEYS[1])"


class InvalidRequest(ValueError):
    """The request does not have the shape the endpoint accepts."""


@dataclass
class MongoFacts:
    vulnerable_logins: dict[str, str | None]  # attack -> the user it logged in as
    validated: dict[str, str]  # attack -> "refused" or a user
    cast_to_str: dict[str, str | None]
    regex_extracted: bool  # the whole token, read back through $regex on the vulnerable login
    regex_queries: int = field(compare=False)  # depends on the token drawn
    regex_safe_extracted: int = 0  # characters the same oracle gets from the safe login
    honest_login: str | None = None


@dataclass
class CypherFacts:
    vulnerable_leak: list[str]
    safe_leak: list[str]
    notes: int
    safe_delete_rows: int
    notes_after_safe_delete: int
    notes_after_vulnerable_delete: int
    label_counts: dict[str, int]  # allowed label -> nodes
    label_attack_refused: bool


@dataclass
class RedisFacts:
    vulnerable_profile_leaked: bool  # the token came back from the profile endpoint
    safe_profile_refused: bool
    sessions: int
    vulnerable_logout_deleted: int
    safe_logout_refused: bool
    sessions_after_safe_logout: int
    argv_script_leaked: bool
    keys_script_refused: bool
    declared_keys_argv: list[str]  # what the server sees the script will touch (COMMAND GETKEYS)
    declared_keys_keys: list[str]


@dataclass
class InjectionResult:
    mongo: MongoFacts
    cypher: CypherFacts
    redis: RedisFacts


def refused(action) -> bool:
    """True when the request was refused (InvalidRequest) before any query ran."""
    try:
        action()
    except InvalidRequest:
        return True
    return False


# --- MongoDB --------------------------------------------------------------------------------------
def login_vulnerable(users: Collection, body: dict) -> str | None:
    """UNSAFE: puts the parsed JSON body straight into the filter; a dict value becomes an operator."""
    found = users.find_one({"username": body["username"], "token": body["token"]})
    return found["username"] if found else None


def login_validated(users: Collection, body: dict) -> str | None:
    """Safe: both fields must be strings; anything else is refused before a query is made."""
    username, token = body.get("username"), body.get("token")
    if not isinstance(username, str) or not isinstance(token, str):
        raise InvalidRequest("username and token must be strings")
    found = users.find_one({"username": username, "token": token})
    return found["username"] if found else None


def login_cast(users: Collection, body: dict) -> str | None:
    """Safe: cast to str; `{'$ne': None}` becomes a string that matches no token."""
    found = users.find_one({"username": str(body["username"]), "token": str(body["token"])})
    return found["username"] if found else None


def extract_token(login, users: Collection, username: str) -> tuple[str, int]:
    """Guess the token a character at a time: the login says yes when the regex matches the prefix."""
    known, queries = "", 0
    while True:
        for char in TOKEN_ALPHABET:
            queries += 1
            try:
                if login(users, {"username": username, "token": {"$regex": f"^{known}{char}"}}):
                    known += char
                    break
            except InvalidRequest:
                return known, queries
        else:
            return known, queries


def mongo_part(client: pymongo.MongoClient) -> MongoFacts:
    client.drop_database(DATABASE)
    users = client[DATABASE]["users"]
    # Each user's API token, drawn at run time. A real service stores a hash of it (and compares it in
    # constant time); it is stored as it is here so that the $regex step has something to extract.
    tokens = {username: secrets.token_hex(8) for username in USERS}
    users.insert_many([{"username": u, "token": t, "role": "admin" if u == "alice" else "user"}
                       for u, t in tokens.items()])  # fmt: skip

    def validated(body: dict) -> str:
        try:
            return login_validated(users, body) or "no match"
        except InvalidRequest:
            return "refused"

    extracted, queries = extract_token(login_vulnerable, users, "alice")
    safe_extracted, _ = extract_token(login_validated, users, "alice")
    return MongoFacts(
        vulnerable_logins={label: login_vulnerable(users, body) for label, body in MONGO_ATTACKS.items()},
        validated={label: validated(body) for label, body in MONGO_ATTACKS.items()},
        cast_to_str={label: login_cast(users, body) for label, body in MONGO_ATTACKS.items()},
        regex_extracted=extracted == tokens["alice"],
        regex_queries=queries,
        regex_safe_extracted=len(safe_extracted),
        honest_login=login_validated(users, {"username": "bob", "token": tokens["bob"]}),
    )


# --- Neo4j ----------------------------------------------------------------------------------------
def notes_of_vulnerable(driver: Driver, owner: str) -> list[str]:
    """UNSAFE: concatenates the owner into the Cypher text; a quote in it ends the string literal."""
    query = "MATCH (n:NosqlInjection:Note) WHERE n.owner = '" + owner + "' RETURN n.title AS title"
    return sorted(str(r["title"]) for r in driver.execute_query(query, database_=NEO4J_DATABASE).records)


def notes_of(driver: Driver, owner: str) -> list[str]:
    """Safe: the owner is a parameter, a value the query compares, whatever characters it holds."""
    records = driver.execute_query(NOTES_OF, owner=owner, database_=NEO4J_DATABASE).records
    return [r["title"] for r in records]


def count_by_label(driver: Driver, label: str) -> int:
    """Safe: a label from a request must be one the application knows, and is passed as a value."""
    if label not in NODE_LABELS:
        raise InvalidRequest(f"unknown label {label!r}")
    return driver.execute_query(COUNT_BY_LABEL, label=label, database_=NEO4J_DATABASE).records[0]["nodes"]


def note_count(driver: Driver) -> int:
    return driver.execute_query(COUNT_NOTES, database_=NEO4J_DATABASE).records[0]["notes"]


def cypher_part(driver: Driver) -> CypherFacts:
    driver.execute_query(DELETE_ALL, database_=NEO4J_DATABASE)
    rows = [{"owner": owner, "title": title} for owner, titles in NOTES.items() for title in titles]
    driver.execute_query(LOAD_NOTES, rows=rows, database_=NEO4J_DATABASE)
    notes = note_count(driver)
    leak, safe_leak = notes_of_vulnerable(driver, CYPHER_LEAK), notes_of(driver, CYPHER_LEAK)
    safe_delete = notes_of(driver, CYPHER_DELETE)
    after_safe = note_count(driver)
    notes_of_vulnerable(driver, CYPHER_DELETE)
    after_vulnerable = note_count(driver)
    driver.execute_query(LOAD_NOTES, rows=rows, database_=NEO4J_DATABASE)  # for the label step
    return CypherFacts(
        vulnerable_leak=leak,
        safe_leak=safe_leak,
        notes=notes,
        safe_delete_rows=len(safe_delete),
        notes_after_safe_delete=after_safe,
        notes_after_vulnerable_delete=after_vulnerable,
        label_counts={label: count_by_label(driver, label) for label in sorted(NODE_LABELS)},
        label_attack_refused=refused(lambda: count_by_label(driver, LABEL_ATTACK)),
    )


# --- Redis ----------------------------------------------------------------------------------------
def user_key(user_id: str, *parts: str) -> str:
    """Safe: the id must match ID_PATTERN, so it can neither add a `:` level nor be a glob."""
    if not ID_PATTERN.fullmatch(user_id):
        raise InvalidRequest(f"invalid user id {user_id!r}")
    return ":".join([PREFIX + "user", user_id, *parts])


def profile_vulnerable(client: redis.Redis, user_id: str) -> str | None:
    """UNSAFE: the id goes into the key name as it came; `alice:token` names alice's token key."""
    return client.get(PREFIX + "user:" + user_id)


def profile(client: redis.Redis, user_id: str) -> str | None:
    return client.get(user_key(user_id))


def logout_everywhere_vulnerable(client: redis.Redis, user_id: str) -> int:
    """UNSAFE: the id goes into a SCAN pattern; `*` matches every user's sessions."""
    names = list(client.scan_iter(match=PREFIX + "user:" + user_id + ":session:*"))
    return client.unlink(*names) if names else 0


def logout_everywhere(client: redis.Redis, user_id: str) -> int:
    names = list(client.scan_iter(match=user_key(user_id, "session", "*")))
    return client.unlink(*names) if names else 0


def profile_script_vulnerable(client: redis.Redis, user_id: str) -> str | None:
    """UNSAFE: the script builds the key name from ARGV, unchecked and undeclared to the server."""
    return client.eval(PROFILE_FROM_ARGV, 0, user_id)


def profile_script(client: redis.Redis, user_id: str) -> str | None:
    """Safe: the key is built by the checked `user_key` and passed as KEYS[1]."""
    return client.eval(PROFILE_FROM_KEYS, 1, user_key(user_id))


def session_count(client: redis.Redis) -> int:
    return sum(1 for _ in client.scan_iter(match=PREFIX + "user:*:session:*"))


def declared_keys(client: redis.Redis, script: str, keys: list[str], args: list[str]) -> list[str]:
    """The keys the server reads from an EVAL call (what ACL key checks and cluster routing use)."""
    try:
        return client.command_getkeys("EVAL", script, len(keys), *keys, *args)
    except redis.ResponseError:  # older servers: "the command has no key arguments"
        return []


def redis_part(client: redis.Redis) -> RedisFacts:
    names = list(client.scan_iter(match=PREFIX + "*"))
    if names:
        client.unlink(*names)
    tokens = {}
    for user_id in USERS:
        tokens[user_id] = secrets.token_hex(8)
        client.set(user_key(user_id), f'{{"name": "{user_id.title()}"}}')
        client.set(user_key(user_id, "token"), tokens[user_id])
        for n in range(SESSIONS_PER_USER):
            client.set(user_key(user_id, "session", str(n)), "active")
    sessions = session_count(client)

    leaked = profile_vulnerable(client, REDIS_PROFILE_ATTACK) == tokens["alice"]
    safe_refused = refused(lambda: profile(client, REDIS_PROFILE_ATTACK))
    logout_refused = refused(lambda: logout_everywhere(client, REDIS_LOGOUT_ATTACK))
    after_safe = session_count(client)
    deleted = logout_everywhere_vulnerable(client, REDIS_LOGOUT_ATTACK)

    argv_leaked = profile_script_vulnerable(client, REDIS_PROFILE_ATTACK) == tokens["alice"]
    keys_refused = refused(lambda: profile_script(client, REDIS_PROFILE_ATTACK))
    return RedisFacts(
        vulnerable_profile_leaked=leaked,
        safe_profile_refused=safe_refused,
        sessions=sessions,
        vulnerable_logout_deleted=deleted,
        safe_logout_refused=logout_refused,
        sessions_after_safe_logout=after_safe,
        argv_script_leaked=argv_leaked,
        keys_script_refused=keys_refused,
        declared_keys_argv=declared_keys(client, PROFILE_FROM_ARGV, [], ["alice"]),
        declared_keys_keys=declared_keys(client, PROFILE_FROM_KEYS, [user_key("alice")], []),
    )


def _verdict(worked: bool) -> str:
    return "UNSAFE: the attack worked" if worked else "stopped"


def run(mongo: pymongo.MongoClient, driver: Driver, client: redis.Redis) -> InjectionResult:
    console.title("NoSQL injection: the attack on a labelled vulnerable function, then the defence")

    console.step(f"MongoDB: operators smuggled in a JSON body (database `{DATABASE}`, reset first)")
    m = mongo_part(mongo)
    console.table(
        ["login body", "vulnerable (UNSAFE)", "strings only", "cast to str"],
        [(label, m.vulnerable_logins[label] or "no match", m.validated[label], m.cast_to_str[label] or "no match")
         for label in MONGO_ATTACKS],
    )  # fmt: skip
    console.say(f"$regex on the vulnerable login: alice's whole token extracted: {m.regex_extracted} "
                f"({m.regex_queries} guesses); {_verdict(m.regex_extracted)}")  # fmt: skip
    console.say(f"the same oracle against the strings-only login: {m.regex_safe_extracted} characters; "
                f"an honest login still works: {m.honest_login}")  # fmt: skip

    console.step(f"Neo4j: Cypher built by concatenation against parameters (label `{LABEL}`, reset first)")
    c = cypher_part(driver)
    console.table(
        ["owner sent", "code", "rows", "notes left"],
        [
            (CYPHER_LEAK, "concatenated (UNSAFE)", len(c.vulnerable_leak), c.notes),
            (CYPHER_LEAK, "parameter", len(c.safe_leak), c.notes),
            (CYPHER_DELETE, "parameter", c.safe_delete_rows, c.notes_after_safe_delete),
            (CYPHER_DELETE, "concatenated (UNSAFE)", "-", c.notes_after_vulnerable_delete),
        ],
    )
    console.say(
        f"leaked through the quote: {', '.join(c.vulnerable_leak)}; {_verdict(bool(c.vulnerable_leak))}"
    )
    console.say(f"a label from the request, {LABEL_ATTACK!r}: refused by the allow-list: {c.label_attack_refused}; "
                f"allowed labels counted: {c.label_counts}")  # fmt: skip

    console.step(f"Redis: key names built from request data (keys under `{PREFIX}`, reset first)")
    r = redis_part(client)
    console.table(
        ["request", "vulnerable (UNSAFE)", "id checked against a pattern"],
        [
            (f"profile of {REDIS_PROFILE_ATTACK!r}", f"alice's token: {r.vulnerable_profile_leaked}",
             "refused" if r.safe_profile_refused else "allowed"),
            (f"log out everywhere as {REDIS_LOGOUT_ATTACK!r}",
             f"{r.vulnerable_logout_deleted} of {r.sessions} sessions deleted",
             f"refused; sessions left {r.sessions_after_safe_logout}" if r.safe_logout_refused else "allowed"),
            (f"Lua, profile of {REDIS_PROFILE_ATTACK!r}", f"key built from ARGV: token leaked: {r.argv_script_leaked}",
             "KEYS[1] from the checked id: refused" if r.keys_script_refused else "allowed"),
        ],
    )  # fmt: skip
    console.say(f"COMMAND GETKEYS: the ARGV script declares {r.declared_keys_argv}, the KEYS script "
                f"{r.declared_keys_keys}: only declared keys are routed in a cluster and checked by ACLs "
                "before the script runs")  # fmt: skip
    return InjectionResult(m, c, r)


def main() -> int:
    require(*REQUIRES)
    with (
        pymongo.MongoClient(mongo_url(), serverSelectionTimeoutMS=CONNECT_TIMEOUT_S * 1000) as mongo,
        GraphDatabase.driver(neo4j_url(), auth=neo4j_auth(), connection_timeout=CONNECT_TIMEOUT_S) as driver,
        redis.Redis.from_url(
            redis_url(), decode_responses=True, socket_connect_timeout=CONNECT_TIMEOUT_S
        ) as client,
    ):
        result = run(mongo, driver, client)
    m, c, r = result.mongo, result.cypher, result.redis
    attacks_work = (
        all(m.vulnerable_logins.values())
        and m.regex_extracted
        and r.argv_script_leaked
        and (len(c.vulnerable_leak), c.notes_after_vulnerable_delete, r.vulnerable_logout_deleted)
        == (c.notes, 0, r.sessions)
        and r.vulnerable_profile_leaked
    )
    defences_hold = (
        set(m.validated.values()) == {"refused"}
        and not any(m.cast_to_str.values())
        and (m.regex_safe_extracted, len(c.safe_leak), c.notes_after_safe_delete) == (0, 0, c.notes)
        and all(
            [c.label_attack_refused, r.safe_profile_refused, r.safe_logout_refused, r.keys_script_refused]
        )
    )
    return 0 if attacks_work and defences_hold else 1


if __name__ == "__main__":
    raise SystemExit(main())

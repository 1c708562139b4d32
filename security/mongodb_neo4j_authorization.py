"""MongoDB and Neo4j authorization: built-in and custom roles, and what Neo4j Community cannot restrict

Authentication says who a client is; authorization says what it may do. MongoDB grants privileges
(actions on a resource: a database or one collection) through roles: built-in ones such as `read`,
and custom ones made with createRole. This lesson gives an analyst a custom role that may `find` in
one collection only, and an auditor the built-in `read` role on the database, then connects as each
and tries the same reads and writes, reading back the privileges the server granted
(connectionStatus). Neo4j Community has users but no roles: every user may do everything, create
users included; CREATE ROLE, GRANT and SHOW PRIVILEGES need Enterprise. The lesson measures both.

Engine: MongoDB (MONGO_URL), database `mongodb_neo4j_authorization`, whose users and roles are
dropped first and last; Neo4j (NEO4J_URL), nodes labelled `MongodbNeo4jAuthorization`, users
`mongodb_neo4j_authorization_*`, dropped at the end even when the lesson fails. The MongoDB part needs
a real MongoDB (the local stand-in has no users or roles: the lesson says so and goes on), and a
server started with `--auth` to enforce the roles (the compose server is not, so every lesson can
connect without a user: there the lesson shows the grants and says that they are not enforced).
Run: `make up SERVICES="mongodb neo4j"` (or `make local-up`), then `python security/mongodb_neo4j_authorization.py`.
Look for: the analyst's single privilege (find on orders), Unauthorized (code 13) where authorization
is enforced, and Neo4j's UnsupportedAdministrationCommand beside a fresh user that creates users.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

import pymongo
from neo4j import Driver, GraphDatabase
from neo4j.exceptions import Neo4jError
from pymongo.errors import OperationFailure

from common import console
from common.settings import CONNECT_TIMEOUT_S, mongo_url, neo4j_auth, neo4j_url, require

REQUIRES = ("mongodb", "neo4j")
DATABASE = "mongodb_neo4j_authorization"
PREFIX = "mongodb_neo4j_authorization_"
ROLE = PREFIX + "orders_reader"
NEO4J_DATABASE = "neo4j"
COMMAND_NOT_FOUND = 59  # MongoDB's code for a command the server does not have
ORDERS, PAYROLL = 20, 5
MONGO_USERS = {
    "analyst": [ROLE],  # custom: find on `orders` only
    "auditor": [{"role": "read", "db": DATABASE}],  # built-in: read every collection of the database
}
MONGO_ACTIONS = {
    "find orders": lambda db: db.orders.count_documents({}),
    "find payroll": lambda db: db.payroll.count_documents({}),
    "insert orders": lambda db: db.orders.insert_one({"_id": "probe", "total": 0}),
}
SHOW_OUR_USERS = (
    "SHOW USERS YIELD user, roles WHERE user STARTS WITH $prefix OR user = 'neo4j' RETURN user, roles"
)
CREATE_USER = "CREATE USER $name SET PASSWORD $password CHANGE NOT REQUIRED"
DROP_USER = "DROP USER $name IF EXISTS"
LOAD_REPORTS = "UNWIND range(1, $n) AS i CREATE (:MongodbNeo4jAuthorization:Report {number: i})"
DELETE_REPORTS = "MATCH (n:MongodbNeo4jAuthorization) DETACH DELETE n RETURN count(*) AS deleted"
CURRENT_USER = "SHOW CURRENT USER YIELD user RETURN user"
EDITION = "CALL dbms.components() YIELD edition RETURN edition"
ENTERPRISE_ONLY = {
    "CREATE ROLE": "CREATE ROLE mongodb_neo4j_authorization_reader IF NOT EXISTS",
    "SHOW ROLES": "SHOW ROLES",
    "GRANT MATCH": "GRANT MATCH {*} ON GRAPH neo4j TO mongodb_neo4j_authorization_reader",
    "SHOW PRIVILEGES": "SHOW PRIVILEGES",
}
REPORTS = 3


@dataclass
class MongoFacts:
    enforced: bool  # the server runs with authorization enabled (--auth)
    privileges: dict[str, list[tuple[str, list[str]]]]  # user -> (collection or "*", actions)
    roles: dict[str, list[str]]
    matrix: dict[str, dict[str, int | None]]  # user -> action -> None (allowed) or the error code
    wrong_password: int | None  # the error code of a login with a wrong password


@dataclass
class Neo4jFacts:
    edition: str
    roles_column: dict[str, object]  # SHOW USERS: user -> roles (None on Community)
    fresh_user_ran_as: str  # SHOW CURRENT USER with the new user's credentials
    fresh_user_deleted: int  # nodes a just-created user deleted
    fresh_user_created_a_user: bool
    enterprise_only: dict[str, str | None]  # command -> the Neo4j error code, None when it ran
    wrong_password: str | None
    users_left: list[str]


@dataclass
class AuthorizationResult:
    mongo: MongoFacts | None  # None: this server has no users or roles (the local stand-in)
    neo4j: Neo4jFacts
    no_mongo_auth: str = field(default="", compare=False)


# --- MongoDB --------------------------------------------------------------------------------------
def reset_mongo(client: pymongo.MongoClient) -> bool:
    """Drop the database and the users and roles defined on it; False when the server has none."""
    db = client[DATABASE]
    try:
        db.command("dropAllUsersFromDatabase")
        db.command("dropAllRolesFromDatabase")
    except OperationFailure as missing:
        if missing.code == COMMAND_NOT_FOUND:
            return False
        raise
    client.drop_database(DATABASE)
    return True


def connect_mongo(client: pymongo.MongoClient, user: str, password: str) -> pymongo.MongoClient:
    host, port = client.address
    return pymongo.MongoClient(host, port, username=user, password=password, authSource=DATABASE,
                               directConnection=True, serverSelectionTimeoutMS=CONNECT_TIMEOUT_S * 1000)  # fmt: skip


def mongo_outcome(action) -> int | None:
    try:
        action()
    except OperationFailure as refused:
        return refused.code
    return None


def mongo_part(client: pymongo.MongoClient) -> MongoFacts:
    db = client[DATABASE]
    db.orders.insert_many([{"_id": n, "total": n * 10} for n in range(ORDERS)])
    db.payroll.insert_many([{"_id": n, "salary": 50_000 + n} for n in range(PAYROLL)])
    db.command(
        "createRole",
        ROLE,
        privileges=[{"resource": {"db": DATABASE, "collection": "orders"}, "actions": ["find"]}],
        roles=[],
    )
    passwords = {name: secrets.token_urlsafe(24) for name in MONGO_USERS}
    for name, roles in MONGO_USERS.items():
        db.command("createUser", PREFIX + name, pwd=passwords[name], roles=roles)
    options = client.admin.command("getCmdLineOpts").get("parsed", {})
    enforced = options.get("security", {}).get("authorization") == "enabled"

    privileges, roles, matrix = {}, {}, {}
    for name in MONGO_USERS:
        with connect_mongo(client, PREFIX + name, passwords[name]) as user:
            status = user[DATABASE].command("connectionStatus", showPrivileges=True)["authInfo"]
            roles[name] = sorted(role["role"] for role in status["authenticatedUserRoles"])
            privileges[name] = sorted(
                (grant["resource"].get("collection") or "*", sorted(grant["actions"]))
                for grant in status["authenticatedUserPrivileges"]
                if grant["resource"].get("db") == DATABASE
            )
            matrix[name] = {label: mongo_outcome(lambda a=action: a(user[DATABASE]))
                            for label, action in MONGO_ACTIONS.items()}  # fmt: skip
        db.orders.delete_one({"_id": "probe"})
    with connect_mongo(client, PREFIX + "analyst", "not-" + passwords["analyst"]) as wrong:
        wrong_password = mongo_outcome(lambda: wrong[DATABASE].command("ping"))
    return MongoFacts(enforced, privileges, roles, matrix, wrong_password)


# --- Neo4j ----------------------------------------------------------------------------------------
def our_neo4j_users(driver: Driver) -> list[str]:
    records = driver.execute_query(SHOW_OUR_USERS, prefix=PREFIX, database_="system").records
    return sorted(r["user"] for r in records if r["user"].startswith(PREFIX))


def drop_neo4j_users(driver: Driver) -> None:
    for name in our_neo4j_users(driver):
        driver.execute_query(DROP_USER, name=name, database_="system")


def neo4j_code(driver: Driver, statement: str, parameters: dict | None = None, **options) -> str | None:
    """None when the statement ran, else the Neo4j error code it was refused with."""
    try:
        driver.execute_query(statement, parameters, database_="system", **options)
    except Neo4jError as refused:
        return refused.code
    return None


def neo4j_part(driver: Driver) -> Neo4jFacts:
    drop_neo4j_users(driver)
    driver.execute_query(DELETE_REPORTS, database_=NEO4J_DATABASE)
    driver.execute_query(LOAD_REPORTS, n=REPORTS, database_=NEO4J_DATABASE)
    edition = driver.execute_query(EDITION, database_=NEO4J_DATABASE).records[0]["edition"]
    name, password = PREFIX + "analyst", secrets.token_urlsafe(24)
    try:
        driver.execute_query(CREATE_USER, name=name, password=password, database_="system")
        roles = {r["user"]: r["roles"] for r in
                 driver.execute_query(SHOW_OUR_USERS, prefix=PREFIX, database_="system").records}  # fmt: skip
        # Per query credentials (auth_): the same driver, the queries run as the new user.
        fresh = (name, password)
        ran_as = driver.execute_query(CURRENT_USER, database_="system", auth_=fresh).records[0]["user"]
        deleted = driver.execute_query(DELETE_REPORTS, database_=NEO4J_DATABASE, auth_=fresh).records[0][
            "deleted"
        ]
        other = {"name": PREFIX + "made_by_analyst", "password": secrets.token_urlsafe(24)}
        created = neo4j_code(driver, CREATE_USER, other, auth_=fresh) is None
        enterprise_only = {
            label: neo4j_code(driver, statement) for label, statement in ENTERPRISE_ONLY.items()
        }
        wrong_password = neo4j_code(driver, "SHOW CURRENT USER", auth_=(name, "not-" + password))
    finally:
        drop_neo4j_users(driver)
        neo4j_code(driver, "DROP ROLE mongodb_neo4j_authorization_reader IF EXISTS")  # on Enterprise only
    return Neo4jFacts(
        edition, roles, ran_as, deleted, created, enterprise_only, wrong_password, our_neo4j_users(driver)
    )


def _cell(outcome: int | str | None) -> str:
    """None: allowed; else MongoDB's error code or the last part of Neo4j's."""
    return "allowed" if outcome is None else f"refused ({str(outcome).rsplit('.', 1)[-1]})"


def run(mongo: pymongo.MongoClient, driver: Driver) -> AuthorizationResult:
    console.title("Authorization in MongoDB and Neo4j: roles, privileges, and a Community without roles")

    console.step(f"MongoDB: a custom role and a built-in one, in database `{DATABASE}` (reset first)")
    mongo_facts, missing = None, ""
    if reset_mongo(mongo):
        try:
            mongo_facts = mongo_part(mongo)
        finally:
            reset_mongo(mongo)
    else:
        missing = "this server has no users or roles (the local stand-in): needs a real MongoDB"
        console.say(f"skipped: {missing}")
    if mongo_facts is not None:
        for name in MONGO_USERS:
            grants = "; ".join(f"{c}: {', '.join(a)}" for c, a in mongo_facts.privileges[name])
            console.say(f"{PREFIX}{name}: roles {mongo_facts.roles[name]}; privileges {grants}")
        console.table(
            ["action", *MONGO_USERS],
            [(label, *(_cell(mongo_facts.matrix[u][label]) for u in MONGO_USERS)) for label in MONGO_ACTIONS],
        )
        console.say(f"a wrong password: {_cell(mongo_facts.wrong_password)}")
        if not mongo_facts.enforced:
            console.say("this server runs without --auth: the roles are stored and reported, not enforced")

    console.step("Neo4j: users, and what only Enterprise can restrict")
    facts = neo4j_part(driver)
    console.say(f"edition: {facts.edition}; SHOW USERS roles column: {facts.roles_column}")
    console.say(f"a user created a moment ago ({facts.fresh_user_ran_as}) deleted {facts.fresh_user_deleted} of {REPORTS} nodes and "
                f"created another user: {facts.fresh_user_created_a_user}")  # fmt: skip
    console.table(
        ["administration command", "outcome"], [(k, _cell(v)) for k, v in facts.enterprise_only.items()]
    )
    console.say(
        f"a wrong password: {_cell(facts.wrong_password)}; users left under `{PREFIX}`: {len(facts.users_left)}"
    )
    return AuthorizationResult(mongo_facts, facts, missing)


def main() -> int:
    require(*REQUIRES)
    with (
        pymongo.MongoClient(mongo_url(), serverSelectionTimeoutMS=CONNECT_TIMEOUT_S * 1000) as mongo,
        GraphDatabase.driver(neo4j_url(), auth=neo4j_auth(), connection_timeout=CONNECT_TIMEOUT_S) as driver,
    ):
        result = run(mongo, driver)
    n = result.neo4j
    neo4j_holds = (
        n.wrong_password is not None
        and not n.users_left
        and (n.edition != "community" or (n.fresh_user_created_a_user and all(n.enterprise_only.values())))
    )
    m = result.mongo
    mongo_holds = m is None or (
        m.privileges["analyst"] == [("orders", ["find"])]
        and m.wrong_password is not None
        and (not m.enforced or m.matrix["analyst"]["find payroll"] is not None)
    )
    return 0 if neo4j_holds and mongo_holds else 1


if __name__ == "__main__":
    raise SystemExit(main())

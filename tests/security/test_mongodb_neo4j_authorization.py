import pytest
from neo4j import GraphDatabase
from pymongo import MongoClient

from security import mongodb_neo4j_authorization as lesson

UNAUTHORIZED = 13  # MongoDB's code when an authenticated user lacks the privilege
AUTHENTICATION_FAILED = 18
UNSUPPORTED = "Neo.ClientError.Statement.UnsupportedAdministrationCommand"


@pytest.fixture(scope="module")
def clients(mongodb, neo4j):
    from common.settings import setting

    auth = tuple(neo4j.env.get(name, setting(name)) for name in ("NEO4J_USER", "NEO4J_PASSWORD"))
    with MongoClient(mongodb.url) as mongo, GraphDatabase.driver(neo4j.url, auth=auth) as driver:
        yield mongo, driver


@pytest.fixture(scope="module")
def result(clients):
    return lesson.run(*clients)


def test_the_mongodb_part_runs_wherever_the_server_has_users(mongodb, result):
    assert (result.mongo is None) == (not mongodb.real), result.no_mongo_auth


@pytest.mark.real_mongodb
def test_the_custom_role_grants_find_on_one_collection_only(result):
    mongo = result.mongo
    assert mongo.roles == {"analyst": [lesson.ROLE], "auditor": ["read"]}
    assert mongo.privileges["analyst"] == [("orders", ["find"])]
    auditor = dict(mongo.privileges["auditor"])
    assert "find" in auditor["*"] and "insert" not in auditor["*"]  # the whole database, read only


@pytest.mark.real_mongodb
def test_mongodb_refuses_what_the_roles_do_not_grant_where_authorization_is_on(result):
    mongo = result.mongo
    assert mongo.wrong_password == AUTHENTICATION_FAILED
    if not mongo.enforced:  # the compose server runs without --auth: every action is allowed
        assert {o for actions in mongo.matrix.values() for o in actions.values()} == {None}
        return
    assert mongo.matrix == {
        "analyst": {"find orders": None, "find payroll": UNAUTHORIZED, "insert orders": UNAUTHORIZED},
        "auditor": {"find orders": None, "find payroll": None, "insert orders": UNAUTHORIZED},
    }


def test_neo4j_community_has_users_but_no_roles(result):
    n = result.neo4j
    if n.edition != "community":
        pytest.skip(f"Neo4j {n.edition}: roles exist there")
    assert n.roles_column == {lesson.PREFIX + "analyst": None, "neo4j": None}
    assert n.enterprise_only == {label: UNSUPPORTED for label in lesson.ENTERPRISE_ONLY}


def test_a_fresh_neo4j_community_user_may_do_everything(result):
    n = result.neo4j
    if n.edition != "community":
        pytest.skip(f"Neo4j {n.edition}: roles restrict users there")
    assert n.fresh_user_ran_as == lesson.PREFIX + "analyst"
    assert n.fresh_user_deleted == lesson.REPORTS
    assert n.fresh_user_created_a_user


def test_neo4j_refuses_a_wrong_password_and_the_users_are_gone(clients, result):
    assert result.neo4j.wrong_password == "Neo.ClientError.Security.Unauthorized"
    assert result.neo4j.users_left == []
    assert lesson.our_neo4j_users(clients[1]) == []


def test_neo4j_users_are_dropped_even_when_the_lesson_fails(clients, result, monkeypatch):
    original, calls = lesson.neo4j_code, []

    def fail_first(*args, **options):
        calls.append(lesson.our_neo4j_users(clients[1]))
        if len(calls) == 1:  # the first try, made as the new user: fail there
            raise RuntimeError("the lesson fails half-way")
        return original(*args, **options)

    monkeypatch.setattr(lesson, "neo4j_code", fail_first)
    with pytest.raises(RuntimeError):
        lesson.neo4j_part(clients[1])
    assert calls[0] == [lesson.PREFIX + "analyst"]  # the user existed when the lesson failed
    assert lesson.our_neo4j_users(clients[1]) == []


def test_a_second_run_gives_the_same_facts(clients, result):
    assert lesson.run(*clients) == result

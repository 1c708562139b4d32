import pytest
from neo4j import GraphDatabase
from pymongo import MongoClient
from redis import Redis

from security import nosql_injection as lesson

N_NOTES = sum(len(titles) for titles in lesson.NOTES.values())


@pytest.fixture(scope="module")
def clients(mongodb, neo4j, redis):
    from common.settings import setting

    auth = tuple(neo4j.env.get(name, setting(name)) for name in ("NEO4J_USER", "NEO4J_PASSWORD"))
    with (
        MongoClient(mongodb.url) as mongo,
        GraphDatabase.driver(neo4j.url, auth=auth) as driver,
        Redis.from_url(redis.url, decode_responses=True) as client,
    ):
        yield mongo, driver, client


@pytest.fixture(scope="module")
def result(clients):
    return lesson.run(*clients)


def test_mongodb_operator_injection_logs_in_without_the_token(result):
    assert result.mongo.vulnerable_logins == {label: "alice" for label in lesson.MONGO_ATTACKS}


def test_mongodb_regex_extracts_the_whole_token(result):
    assert result.mongo.regex_extracted
    assert result.mongo.regex_queries >= 16  # at least one guess per character


def test_mongodb_type_validation_and_casting_stop_the_operators(result):
    mongo = result.mongo
    assert mongo.validated == {label: "refused" for label in lesson.MONGO_ATTACKS}
    assert mongo.cast_to_str == {label: None for label in lesson.MONGO_ATTACKS}
    assert mongo.regex_safe_extracted == 0
    assert mongo.honest_login == "bob"


def test_concatenated_cypher_leaks_every_note_and_parameters_leak_none(result):
    cypher = result.cypher
    assert cypher.notes == N_NOTES
    assert cypher.vulnerable_leak == sorted(t for titles in lesson.NOTES.values() for t in titles)
    assert cypher.safe_leak == []


def test_concatenated_cypher_deletes_the_notes_and_parameters_delete_none(result):
    cypher = result.cypher
    assert (cypher.safe_delete_rows, cypher.notes_after_safe_delete) == (0, N_NOTES)
    assert cypher.notes_after_vulnerable_delete == 0


def test_labels_go_through_an_allow_list(result):
    assert result.cypher.label_attack_refused
    assert result.cypher.label_counts == {"Note": N_NOTES, "Tag": 0}
    with pytest.raises(lesson.InvalidRequest):
        lesson.count_by_label(None, "Note:Secret")


def test_an_id_with_a_colon_reads_another_key_unless_checked(result):
    assert result.redis.vulnerable_profile_leaked
    assert result.redis.safe_profile_refused


def test_a_glob_id_logs_everyone_out_unless_checked(result):
    r = result.redis
    assert r.sessions == len(lesson.USERS) * lesson.SESSIONS_PER_USER
    assert r.safe_logout_refused and r.sessions_after_safe_logout == r.sessions
    assert r.vulnerable_logout_deleted == r.sessions


def test_a_script_should_take_its_keys_as_keys(result):
    r = result.redis
    assert r.argv_script_leaked
    assert r.keys_script_refused
    assert r.declared_keys_argv == []
    assert r.declared_keys_keys == [lesson.user_key("alice")]


@pytest.mark.parametrize("user_id", ["alice:token", "*", "a?", "[ab]", "", "x" * 33, "Alice"])
def test_the_id_pattern_refuses_separators_and_globs(user_id):
    with pytest.raises(lesson.InvalidRequest):
        lesson.user_key(user_id)


def test_a_second_run_gives_the_same_facts(clients, result):
    assert lesson.run(*clients) == result

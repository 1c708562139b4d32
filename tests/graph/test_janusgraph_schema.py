import pytest
from gremlin_python.driver.client import Client
from gremlin_python.driver.driver_remote_connection import DriverRemoteConnection
from gremlin_python.process.anonymous_traversal import traversal
from janusgraph_python.driver.serializer import JanusGraphBinarySerializersV1

from graph import janusgraph_schema as lesson


def run_lesson(url):
    connection = DriverRemoteConnection(url, "g", message_serializer=JanusGraphBinarySerializersV1())
    client = Client(url, "g", message_serializer=JanusGraphBinarySerializersV1())
    try:
        return lesson.run(traversal().with_remote(connection), client, url)
    finally:
        connection.close()
        client.close()


@pytest.fixture(scope="module")
def result(janusgraph):
    return run_lesson(janusgraph.url)


def test_the_schema_is_declared_and_read_back(result):
    kinds = {name: (kind, detail) for name, kind, detail in result.schema}
    assert kinds["jgs_email"] == ("property key", "String, SINGLE")
    assert kinds["jgs_born"] == ("property key", "Integer, SINGLE")
    assert kinds["jgs_lives_in"] == ("edge label", "MANY2ONE")
    assert kinds["jgs_by_email"] == ("composite index, unique", "ENABLED")
    assert (result.storage_backend, result.schema_default) == ("inmemory", "none")


def test_many2one_refuses_a_second_edge_out_but_not_many_in(result):
    assert "out-unique" in result.refused["a second jgs_lives_in edge (MANY2ONE)"]
    assert result.cities_of_one_person == 1
    assert result.people_in_biggest_city > 1


def test_schema_default_none_refuses_what_was_not_declared(result):
    assert (
        "Vertex Label with given name does not exist: jgs_pet" in result.refused["an undeclared vertex label"]
    )
    assert "Property Key with given name does not exist" in result.refused["an undeclared property key"]
    assert "expected data type" in result.refused["a word for the Integer key jgs_born"]


def test_the_unique_index_refuses_a_duplicate(result):
    assert "uniqueness constraint [jgs_by_email]" in result.refused["a second person with the same email"]


def test_a_refused_request_writes_nothing(result):
    assert result.people == result.people_after == lesson.N_PEOPLE
    assert result.cities == len(lesson.CITIES)


def test_the_lookup_by_email_uses_the_index_and_the_other_scans(result):
    assert result.by_email == {"index": "jgs_by_email", "fullscan": False}
    assert result.by_handle == {"index": None, "fullscan": True}
    assert result.same_person


def test_plain_gremlinpython_cannot_read_janusgraph_edges(result):
    assert result.plain_client_error != "(read)"


def test_a_second_run_gives_the_same_facts(janusgraph, result):
    assert run_lesson(janusgraph.url) == result

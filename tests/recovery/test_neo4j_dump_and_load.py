import pytest

from common.settings import servers_mode
from recovery import neo4j_dump_and_load as lesson
from servers.throwaway import NoThrowaway


def run_or_skip(run, *args):
    """The drill needs its local server (the lesson's LOCAL_ONLY says why): a skip where only Docker serves."""
    try:
        return run(*args)
    except NoThrowaway as missing:
        if servers_mode() == "local":
            pytest.fail(str(missing))
        pytest.skip(str(missing))


@pytest.fixture(scope="module")
def result(neo4j):
    from common.settings import setting

    auth = tuple(neo4j.env.get(name, setting(name)) for name in ("NEO4J_USER", "NEO4J_PASSWORD"))
    return run_or_skip(lesson.run, lesson.server_note(neo4j.url, auth))


def test_neo4j_admin_refuses_to_dump_a_running_database(result):
    assert "database is in use" in result.refused_while_running


def test_the_load_restores_every_node_relationship_and_constraint(result):
    assert result.restored == result.at_backup
    assert result.at_backup.nodes == lesson.PEOPLE + lesson.COMPANIES
    assert result.at_backup.relationships == lesson.KNOWS + lesson.PEOPLE  # KNOWS and one WORKS_AT each
    assert len(result.at_backup.constraints) == len(lesson.SCHEMA)


def test_a_dump_of_neo4j_alone_leaves_the_application_user_behind(result):
    assert lesson.APP_USER in result.users_source
    assert lesson.APP_USER not in result.users_restored
    assert result.app_login_restored == "Unauthorized"


def test_loading_the_system_dump_too_brings_the_user_back_and_keeps_the_data(result):
    assert result.users_with_system == result.users_source
    assert result.app_login_with_system == "ok"
    assert result.restored_with_system == result.at_backup


def test_the_headline_holds(result):
    assert result.holds  # what main() exits on


def test_a_second_run_gives_the_same_facts(result):
    assert lesson.run(result.server) == result

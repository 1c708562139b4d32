"""Fixtures: one per engine (the session's server, from tests/engine_pool.py), and helpers.

The engine pool itself is a plugin module, registered here; tests import `engine` and
`run_script` from `tests.engine_pool`, never from this file.
"""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite("tests.engine_pool")

from common import console  # noqa: E402
from common.catalog import lessons  # noqa: E402
from common.settings import ENGINES, NEEDS_REAL_MONGODB  # noqa: E402
from servers.sources import Provided  # noqa: E402
from tests.engine_pool import engine  # noqa: E402

pytest_plugins = ["tests.engine_pool"]


def _engine_fixture(key: str):
    @pytest.fixture(scope="session", name=key)
    def fixture() -> Provided:
        return engine(key)

    return fixture


for _key in ENGINES:
    globals()[f"_fixture_{_key}"] = _engine_fixture(_key)


@pytest.fixture(autouse=True)
def _quiet_console():
    """Lessons narrate through common.console; tests only read what run() returns."""
    console.quiet(True)
    yield
    console.quiet(False)


@pytest.fixture(autouse=True)
def _real_mongodb_only(request):
    if request.node.get_closest_marker("real_mongodb"):
        served = engine("mongodb")
        if not served.real:
            pytest.skip(
                f"{NEEDS_REAL_MONGODB}: {served.detail} lacks it; runs with the real image or MONGO_URL"
            )


@pytest.fixture(scope="session")
def catalog():
    return lessons()


@pytest.fixture(scope="session")
def neo4j_driver(neo4j):
    """A driver for the session's Neo4j, with its credentials (or the compose defaults)."""
    from neo4j import GraphDatabase

    from common.settings import setting

    auth = tuple(neo4j.env.get(name, setting(name)) for name in ("NEO4J_USER", "NEO4J_PASSWORD"))
    with GraphDatabase.driver(neo4j.url, auth=auth) as driver:
        yield driver


@pytest.fixture(scope="session")
def mongo_client(mongodb):
    from pymongo import MongoClient

    with MongoClient(mongodb.url) as client:
        yield client

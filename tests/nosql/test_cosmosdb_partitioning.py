import pytest

from common.settings import cosmos_client_options, cosmos_mongo_url
from nosql import cosmosdb_partitioning as lesson


@pytest.fixture(scope="module")
def client(cosmosdb):
    return lesson.connect(cosmos_client_options(cosmosdb.url, cosmosdb.env.get("COSMOS_KEY")))


@pytest.fixture(scope="module")
def result(client):
    return lesson.run(client)


def expected_partitions(key):
    return len({order[key] for order in lesson.generate()})


def test_logical_partitions_are_the_distinct_key_values(result):
    for key in lesson.CONTAINERS:
        facts = result.by_key(key)
        assert facts.items == lesson.N_ORDERS
        assert facts.logical_partitions == expected_partitions(key)


def test_the_low_cardinality_key_makes_few_partitions_and_a_hot_one(result):
    customer, status = result.by_key("customerId"), result.by_key("status")
    assert status.logical_partitions == len(lesson.STATUSES) < customer.logical_partitions
    assert status.largest_partition > customer.largest_partition
    assert status.largest_partition * 2 > status.items  # delivered: over half the orders


def test_the_single_partition_query_answers_from_its_partition_only(result):
    queries = result.queries
    assert len(queries.single_partition_ids) == queries.expected > 0
    assert set(queries.single_partition_keys) == {lesson.CUSTOMER}


def test_one_partition_and_every_partition_give_the_same_orders(result):
    queries = result.queries
    assert queries.single_partition_ids == queries.cross_partition_ids == queries.other_key_ids


def test_the_partition_key_alone_scopes_a_query_on_a_real_server(result, cosmosdb):
    if not cosmosdb.real:
        pytest.skip(f"{cosmosdb.detail} ignores a query's partition key header")
    assert result.queries.key_alone_count == result.queries.expected


def test_a_write_returns_a_session_token(result, cosmosdb):
    if not cosmosdb.real:
        pytest.skip(f"{cosmosdb.detail} sends no x-ms-session-token")
    assert result.session_token


def test_request_charges_are_read_where_the_server_reports_them(result, cosmosdb):
    assert set(result.charges) >= {
        "point read (id + partition key)",
        "query, one partition (key in the filter)",
    }
    if not cosmosdb.real:
        pytest.skip(f"{cosmosdb.detail} sends no x-ms-request-charge")
    assert all(value is not None and value > 0 for value in result.charges.values()), result.charges


def test_one_region_and_a_default_consistency_level(result):
    assert result.regions == 1
    assert result.default_consistency in {name.replace(" ", "") for name, _ in lesson.CONSISTENCY}


@pytest.mark.skipif(
    not cosmos_mongo_url(), reason="needs a Cosmos DB for MongoDB endpoint in COSMOS_MONGO_URL"
)
def test_the_mongodb_api_reports_request_charges(client):
    mongo = lesson.run(client, cosmos_mongo_url()).mongo
    assert mongo["found"] > 0
    assert mongo["insert_charge"] > 0 and mongo["count_charge"] > 0


def test_a_second_run_gives_the_same_facts(client, result):
    again = lesson.run(client)
    assert again.partitions == result.partitions
    assert again.queries == result.queries

import pytest
from pymongo import MongoClient

from nosql import mongodb_embedding_vs_referencing as lesson

SHOP = lesson.generate_shop()


@pytest.fixture(scope="module")
def trips():
    return lesson.RoundTrips()


@pytest.fixture(scope="module")
def client(mongodb, trips):
    with MongoClient(mongodb.url, event_listeners=[trips]) as connection:
        yield connection


@pytest.fixture(scope="module")
def result(client, trips):
    return lesson.run(client, trips)


def ways(result, question_start):
    """The accesses of the question whose label starts with `question_start`, by how they answered."""
    return {a.how: a for a in result.accesses if a.question.startswith(question_start)}


def test_the_same_shop_is_stored_both_ways(result):
    assert result.documents == {
        "customers_embedded": lesson.N_CUSTOMERS,
        "customers": lesson.N_CUSTOMERS,
        "orders": lesson.N_ORDERS,
        "products": lesson.N_PRODUCTS,
        "categories": len(lesson.CATEGORIES),
    }
    assert all(size > 0 for size in result.collection_bytes.values())


def test_every_way_of_answering_gives_the_same_answer(result):
    assert len(result.same_answers) == 4
    assert all(result.same_answers.values()), result.same_answers


def test_the_customer_page_is_one_round_trip_embedded_or_with_lookup(result):
    page = ways(result, "customer page")
    assert page["embedded, whole document"].round_trips == 1
    assert page["embedded, $slice"].round_trips == 1
    assert page["referenced, find each"].round_trips == 3
    assert page["referenced, $lookup"].round_trips == 1
    assert page["referenced, find each"].documents > page["referenced, $lookup"].documents == 1
    assert page["embedded, $slice"].bytes < page["embedded, whole document"].bytes


def test_reading_one_embedded_order_ships_its_whole_customer_unless_projected(result):
    order = ways(result, "one order")
    assert {a.round_trips for a in order.values()} == {1}
    assert order["referenced, by _id"].bytes < order["embedded, $elemMatch"].bytes
    assert order["embedded, $elemMatch"].bytes < order["embedded, whole customer"].bytes
    assert order["embedded, whole customer"].bytes > 5 * order["referenced, by _id"].bytes


def test_many_to_many_through_arrays_of_ids(result):
    categories = ways(result, "categories of product")
    assert categories["two queries"].round_trips == 2
    assert categories["$lookup on the ids"].round_trips == 1
    product = SHOP.products[0]
    assert categories["two queries"].documents == 1 + len(product["category_ids"])
    in_category = ways(result, "products in category")["multikey array query"]
    expected = [p for p in SHOP.products if product["category_ids"][0] in p["category_ids"]]
    assert (in_category.round_trips, in_category.documents) == (1, len(expected))


def test_renaming_an_embedded_product_rewrites_every_copy(result):
    rename = result.rename
    lines = [(o["customer_id"], line) for o in SHOP.orders for line in o["items"]]
    copies = [customer for customer, line in lines if line["product_id"] == rename.product_id]
    assert rename.referenced_modified == rename.referenced_copies == 1
    assert rename.embedded_copies == len(copies)
    assert rename.embedded_modified == len(set(copies)) > 1
    assert rename.stale_copies_after == 0
    assert rename.embedded_bytes_rewritten > 100 * rename.referenced_bytes_rewritten


def test_the_unbounded_array_grows_linearly_toward_the_limit(result):
    assert [step.entries for step in result.growth] == lesson.GROWTH_STEPS
    sizes = [step.document_bytes for step in result.growth]
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)
    assert 30 < result.bytes_per_entry < 80
    assert result.max_document_bytes == 16 * 1024 * 1024
    expected = (result.max_document_bytes - sizes[-1]) / result.bytes_per_entry
    assert result.entries_to_limit == int(expected) > 100_000


@pytest.mark.real_mongodb
def test_the_secondary_indexes_are_built(result):
    assert result.indexes_built


def test_a_second_run_gives_the_same_facts(client, trips, result):
    assert lesson.run(client, trips) == result

import math

import pytest

from nosql import dynamodb_single_table as lesson


@pytest.fixture(scope="module")
def client(dynamodb):
    return lesson.connect(dynamodb.url)


@pytest.fixture(scope="module")
def result(client):
    return lesson.run(client)


def pattern(result, name):
    return next(run for run in result.patterns if run.pattern == name)


def test_every_pattern_but_the_paged_one_is_a_single_request(result):
    assert [run.pattern for run in result.patterns] == [name for name, _ in lesson.ACCESS_PATTERNS]
    for run in result.patterns[:-1]:
        assert run.round_trips == 1, run


def test_get_a_customer(result):
    assert pattern(result, "get a customer").items == 1


def test_a_customers_orders_come_from_gsi2_newest_first(result):
    placed = result.customer_orders_placed
    assert len(placed) == result.expected_customer_orders > 1
    assert placed == sorted(placed, reverse=True)


def test_an_order_and_its_items_are_one_item_collection(result):
    types = result.order_item_types
    assert len(types) == result.expected_order_lines
    assert types.count("order") == 1
    assert types.count("item") == len(types) - 1 >= 1


def test_orders_by_status_come_from_gsi1(result):
    assert result.shipped_in_month == result.expected_shipped_in_month > 0


def test_pagination_follows_last_evaluated_key(result):
    pages = result.pending_pages
    assert sum(pages) == result.expected_pending
    assert all(size == lesson.PAGE_SIZE for size in pages[:-1])
    # A full last page may be followed by an empty one: the server could not know it was the last.
    full_pages = math.ceil(result.expected_pending / lesson.PAGE_SIZE)
    assert len(pages) in (full_pages, full_pages + 1)
    assert pattern(result, "every pending order").round_trips == len(pages) > 1


def test_loading_took_one_request_per_batch(result):
    batches = math.ceil(result.items_loaded / lesson.BATCH_SIZE)
    # At least one request a batch; a resent unprocessed batch or a retry adds a few, never one per item.
    assert batches <= result.load_requests < 2 * batches


def test_a_conditional_put_rejects_the_duplicate(result):
    conditional = result.conditional
    assert conditional.first_put == "written"
    assert conditional.duplicate_put == "ConditionalCheckFailedException"
    assert conditional.unconditional_overwrote


def test_transactions_are_all_or_nothing(result):
    transaction = result.transaction
    assert transaction.supported
    assert transaction.unique_email_first == "written"
    assert transaction.unique_email_duplicate == "TransactionCanceledException"
    assert transaction.duplicate_reasons == ["None", "ConditionalCheckFailed"]
    assert not transaction.duplicate_profile_written
    assert transaction.order_placed_reasons == []  # committed
    assert transaction.order_placed_items == 3  # header and two lines
    assert transaction.customer_order_count == 1
    assert transaction.orphan_order_reasons[-1] == "ConditionalCheckFailed"
    assert set(transaction.orphan_order_reasons[:-1]) == {"None"}
    assert transaction.orphan_order_items_written == 0


def test_a_second_run_gives_the_same_facts(client, result):
    assert lesson.run(client) == result

import pytest

from nosql import simpledb_legacy as lesson


@pytest.fixture(scope="module")
def result(moto, dynamodb):
    return lesson.run(*lesson.clients(moto.url, dynamodb.url))


def test_an_attribute_holds_several_string_values(result):
    assert result.item_attributes == {"price": ["25"], "tags": ["databases", "aws", "nosql"]}


def test_a_put_without_replace_adds_a_value_and_replace_overwrites(result):
    assert sorted(result.price_values_after_plain_put) == ["25", "30"]
    assert result.price_values_after_replace == ["25"]


def test_plain_strings_compare_lexicographically(result):
    assert result.string_order == [-5, 10, 100, 25, 9]
    assert result.string_above == [9]  # '9' > '25' as strings; '100' is not


def test_offset_and_zero_padding_make_strings_compare_as_numbers(result):
    assert result.encoded_order == sorted(lesson.BOOKS[name][0] for name in lesson.BOOKS)
    assert result.encoded_above == [100]
    for low, high in zip(result.encoded_order, result.encoded_order[1:], strict=False):
        assert lesson.encode(low) < lesson.encode(high) and lesson.decode(lesson.encode(low)) == low


def test_the_select_the_server_ran_agrees_with_the_computed_order(result):
    """moto answers Select with HTTP 500: the lesson then relies on its own computation, and says so."""
    if result.server_order is None:
        assert result.server_answers["Select"].startswith("HTTP 5")
    else:
        assert result.server_order == result.encoded_above


def test_the_books_are_written_whether_or_not_batch_put_is_served(result):
    if result.server_answers["BatchPutAttributes"] == "ok":
        assert result.puts_sent == 0
    else:
        assert result.puts_sent == len(lesson.BOOKS)


def test_a_consistent_read_returns_the_latest_write(result):
    assert [lesson.decode(v) for v in result.consistent_read] == [12]
    assert result.eventual_read in ([lesson.encode(12)], [lesson.encode(10)])  # the new value, or the old


def test_dynamodb_orders_numbers_itself_and_keeps_types(result):
    assert result.dynamodb_order == [-5, 9, 10, 25, 100]
    assert result.dynamodb_types == {"shelf": "S", "price": "N", "item": "S", "tags": "SS"}
    assert result.holds


def test_boto3_signs_simpledb_with_signature_version_2(result):
    assert result.signature_version == "v2"


def test_a_second_run_gives_the_same_facts(result, moto, dynamodb):
    again = lesson.run(*lesson.clients(moto.url, dynamodb.url))
    assert again == result

from decimal import Decimal

import pytest

from nosql import mongodb_polymorphic_schemas as lesson

V1, V2 = lesson.generate()
ALL = V1 + V2


@pytest.fixture(scope="module")
def result(mongo_client):
    return lesson.run(mongo_client)


def rejection(result, label):
    return next(r for r in result.rejections if r.label == label)


def test_one_collection_holds_every_kind_and_version(result):
    expected = {f"{kind} v1": n for kind, n in lesson.COUNTS_V1.items()}
    expected |= {f"{kind} v2": n for kind, n in lesson.COUNTS_V2.items()}
    assert result.by_kind_and_version == dict(sorted(expected.items()))


def test_a_query_across_kinds_returns_several_kinds(result):
    cheap = sorted((d["price_cents"], d["_id"], d) for d in V2 if d["price_cents"] < lesson.CHEAP_CENTS)
    assert result.cheap_across_kinds == [(d["kind"], d["name"], cents) for cents, _, d in cheap]
    assert {kind for kind, _, _ in result.cheap_across_kinds} == set(lesson.KINDS)


def test_queries_within_a_kind(result):
    assert result.within_kind == {
        "books by Italo Calvino": sum(d["kind"] == "book" and d["author"] == "Italo Calvino" for d in ALL),
        "films over 150 minutes": sum(d["kind"] == "film" and d["runtime_minutes"] > 150 for d in ALL),
        "switch games for 4+ players": sum(
            d["kind"] == "game" and d["platform"] == "switch" and d["players"] >= 4 for d in ALL
        ),
    }


def test_the_id_index_holds_one_entry_per_document(result):
    assert result.partial.id_entries == len(ALL)


@pytest.mark.real_mongodb
def test_each_partial_index_covers_only_its_kind(result):
    # Index entries as validate counts them (keysPerIndex), not documents matching the filter.
    per_kind = {kind: sum(d["kind"] == kind for d in ALL) for kind in lesson.KINDS}
    assert result.partial.covered == {
        "book_isbn": per_kind["book"],
        "film_runtime": per_kind["film"],
        "game_platform": per_kind["game"],
    }


def test_a_valid_document_is_accepted_and_the_verdict_is_recorded(result):
    assert result.good_document_accepted
    assert [r.label for r in result.rejections] == list(lesson.BAD_DOCUMENTS)
    assert result.validation_enforced == all(r.code == 121 for r in result.rejections)


def test_version_1_documents_are_upgraded_when_read_and_written_back_once(result):
    migration = result.migration
    read_v1 = V1[: lesson.PAGE // 3]
    assert migration.v1_before == len(V1)
    assert migration.read == lesson.PAGE
    assert migration.upgraded_on_read == migration.written_back == len(read_v1)
    assert migration.read_again == lesson.PAGE
    assert migration.upgraded_on_second_read == migration.writes_on_second_read == 0
    assert migration.v1_after == len(V1) - len(read_v1)
    assert migration.all_read_as_v2
    newly_cheap = sum(Decimal(d["price"]) * 100 < lesson.CHEAP_CENTS for d in read_v1)
    assert migration.cheap_found_after - migration.cheap_found_before == newly_cheap


def test_upgrade_turns_the_price_string_into_cents():
    old = {"_id": 1, "kind": "game", "name": "x", "price": "12.34", "schema_version": 1}
    assert lesson.upgrade(old) == {
        "_id": 1,
        "kind": "game",
        "name": "x",
        "price_cents": 1234,
        "schema_version": 2,
    }


@pytest.mark.real_mongodb
def test_the_validator_rejects_with_code_121_and_names_the_rule(result):
    assert result.validation_enforced
    book = rejection(result, "a book without an isbn")
    assert (book.code, book.message) == (121, "Document failed validation")
    required = [rule for rule in book.kind_branch if rule["operatorName"] == "required"]
    assert required and required[0]["missingProperties"] == ["isbn"]

    film = rejection(result, "a film with a negative runtime")
    assert film.code == 121
    [properties] = [rule for rule in film.kind_branch if rule["operatorName"] == "properties"]
    [runtime] = [p for p in properties["propertiesNotSatisfied"] if p["propertyName"] == "runtime_minutes"]
    assert runtime["details"][0]["operatorName"] == "minimum"
    assert runtime["details"][0]["consideredValue"] == -5


@pytest.mark.real_mongodb
def test_partial_indexes_are_built_and_admit_documents_of_other_kinds(result):
    partial = result.partial
    assert all(partial.built.values()), partial.built
    assert all(size > 0 for size in partial.sizes.values()), partial.sizes
    assert partial.other_kinds_admitted
    assert partial.duplicate_isbn_rejected


@pytest.mark.real_mongodb
def test_a_partial_index_serves_only_queries_that_name_its_kind(result):
    assert result.partial.plan_naming_kind == "IXSCAN"
    assert result.partial.plan_without_kind == "COLLSCAN"


def test_a_second_run_gives_the_same_facts(mongo_client, result):
    assert lesson.run(mongo_client) == result

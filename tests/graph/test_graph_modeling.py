import pytest

from graph import graph_modeling as lesson


@pytest.fixture(scope="module")
def result(neo4j_driver):
    return lesson.run(neo4j_driver)


@pytest.fixture(scope="module")
def records():
    return lesson.generate()


def test_constraints_and_the_index_are_in_place_before_loading(result):
    assert result.schema == [(label, prop, kind) for label, prop, kind, _ in lesson.SCHEMA]


def test_both_loads_give_the_same_graph(result, records):
    assert result.row_by_row.counts == result.batched.counts
    counts = result.batched.counts
    assert counts.labels == {
        "Category": len(records["categories"]),
        "Person": lesson.N_PEOPLE,
        "Product": len(records["products"]),
        "Purchase": lesson.N_ORDERS,
    }
    lines = sum(len(order["lines"]) for order in records["purchases"])
    assert counts.relationship_types == {
        "CONTAINS": lines,
        "FOLLOWS": len(records["follows"]),
        "IN_CATEGORY": len(records["products"]),
        "PLACED": lesson.N_ORDERS,
        "SUBCATEGORY_OF": sum(1 for c in records["categories"] if c["parent"]),
    }
    for run in (result.row_by_row, result.batched):
        assert run.nodes_created == sum(counts.labels.values())
        assert run.relationships_created == sum(counts.relationship_types.values())


def test_the_batched_load_sends_far_fewer_queries(result):
    assert result.row_by_row.queries == sum(result.rows.values())
    batches = sum(-(-n // lesson.BATCH_SIZE) for n in result.rows.values())
    assert result.batched.queries == batches
    assert result.batched.queries * 10 < result.row_by_row.queries


def test_loading_again_creates_nothing(result):
    assert result.reload.nodes_created == 0
    assert result.reload.relationships_created == 0
    assert result.reload.counts == result.batched.counts


def test_a_category_question_walks_the_tree(result, records):
    for top, subcategories in lesson.CATEGORY_TREE.items():
        filed = sum(1 for p in records["products"] if p["category"] in subcategories)
        assert result.products_under[top] == filed > 0
        assert result.leaves_under[top] == sorted(subcategories)


def test_follows_is_read_in_both_directions(result, records):
    shown = records["people"][lesson.SHOWN_PERSON]["email"]
    edges = {(f["src"], f["dst"]) for f in records["follows"]}
    assert result.follows_shown == {
        "following": sum(1 for src, _ in edges if src == shown),
        "followers": sum(1 for _, dst in edges if dst == shown),
        "mutual": sum(1 for src, dst in edges if src == shown and (dst, src) in edges),
    }
    assert result.mutual_pairs == sum(1 for src, dst in edges if src < dst and (dst, src) in edges) > 0


def test_a_bought_relationship_would_merge_same_day_orders(result):
    assert result.orders == lesson.N_ORDERS
    assert result.person_days == lesson.N_ORDERS - lesson.SAME_DAY_ORDERS
    assert result.bought_together and all(orders >= 1 for *_, orders in result.bought_together)


def test_a_second_run_gives_the_same_facts(neo4j_driver, result):
    assert lesson.run(neo4j_driver) == result

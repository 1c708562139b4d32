import pytest

from graph import recommendations as lesson


@pytest.fixture(scope="module")
def result(neo4j_driver):
    return lesson.run(neo4j_driver)


@pytest.fixture(scope="module")
def shop():
    return lesson.generate()


@pytest.fixture(scope="module")
def bought(shop):
    return {p["email"]: set(p["bought"]) for p in shop.people}


@pytest.fixture(scope="module")
def names(shop):
    return {p["sku"]: p["name"] for p in shop.products} | {p["email"]: p["name"] for p in shop.people}


def top(scores, n=lesson.TOP_N):
    """Highest score first, ties by name: what every ORDER BY in the lesson does."""
    return sorted(scores, key=lambda item: (-item[1], item[0]))[:n]


def jaccard_to(me, bought):
    mine = bought[me]
    return {
        other: len(mine & theirs) / len(mine | theirs)
        for other, theirs in bought.items()
        if other != me and mine & theirs
    }


def test_people_who_bought_this_also_bought(result, shop, bought, names):
    sku = result.product
    counts = {}
    for skus in bought.values():
        if sku in skus:
            for other in skus - {sku}:
                counts[names[other]] = counts.get(names[other], 0) + 1
    assert result.also_bought == top(counts.items())
    assert result.product == lesson.most_bought(shop)["sku"]


def test_jaccard_similarity_matches_the_sets(result, bought, names):
    me = result.person
    similarity = jaccard_to(me, bought)
    expected = top([(names[e], j) for e, j in similarity.items()])
    assert [(name, jaccard) for name, _, _, jaccard in result.similar_people] == expected
    for name, shared, union, jaccard in result.similar_people:
        other = next(e for e, n in names.items() if n == name and "@" in e)
        assert (shared, union) == (len(bought[me] & bought[other]), len(bought[me] | bought[other]))
        assert jaccard == shared / union
    assert 0 < result.similar_people[-1][3] <= result.similar_people[0][3] < 1


def test_recommendations_from_the_most_similar_people(result, bought, names):
    me = result.person
    similarity = jaccard_to(me, bought)
    nearest = sorted(similarity, key=lambda e: (-similarity[e], names[e]))[: lesson.NEIGHBOURS]
    counts = {}
    for other in nearest:
        for sku in bought[other] - bought[me]:
            counts[names[sku]] = counts.get(names[sku], 0) + 1
    assert result.from_similar_people == top(counts.items())


def test_content_based_by_shared_categories(result, shop, bought):
    me = result.person
    categories = {p["sku"]: p["categories"] for p in shop.products}
    affinity = {}
    for sku in bought[me]:
        for category in categories[sku]:
            affinity[category] = affinity.get(category, 0) + 1
    assert result.category_affinity == top(affinity.items(), n=None)
    scores = {
        p["name"]: (
            sum(affinity.get(c, 0) for c in p["categories"]),
            [c for c in p["categories"] if c in affinity],
        )
        for p in shop.products
        if p["sku"] not in bought[me] and any(c in affinity for c in p["categories"])
    }
    expected = top([(name, score) for name, (score, _) in scores.items()])
    assert [(name, score) for name, score, _ in result.by_categories] == expected
    assert all(via == scores[name][1] for name, _, via in result.by_categories)


def test_the_three_methods_give_different_lists(result):
    lists = [
        [name for name, *_ in result.also_bought],
        [name for name, *_ in result.from_similar_people],
        [name for name, *_ in result.by_categories],
    ]
    assert len({tuple(names) for names in lists}) == 3


def test_a_second_run_gives_the_same_facts(neo4j_driver, result):
    assert lesson.run(neo4j_driver) == result

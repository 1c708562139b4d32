from itertools import pairwise

import pytest
from gremlin_python.driver.driver_remote_connection import DriverRemoteConnection
from gremlin_python.process.anonymous_traversal import traversal
from gremlin_python.process.graph_traversal import __
from gremlin_python.structure.graph import Graph

from graph import gremlin_neptune as lesson
from graph import recommendations, traversals


def run_lesson(url):
    connection = DriverRemoteConnection(url, "g")
    try:
        return lesson.run(traversal().with_remote(connection), url)
    finally:
        connection.close()


@pytest.fixture(scope="module")
def result(gremlin):
    return run_lesson(gremlin.url)


@pytest.fixture(scope="module")
def people():
    return traversals.generate()


@pytest.fixture(scope="module")
def neighbours(people):
    return people.adjacency()


@pytest.fixture(scope="module")
def shop():
    return recommendations.generate()


def trails(neighbours, start, max_len=3):
    """Ends of the walks that never use a friendship twice (Cypher's *1..3), start excluded."""
    ends = []

    def walk(path):
        if len(path) > 1 and path[-1] != start:
            ends.append(path[-1])
        if len(path) - 1 < max_len:
            for other in neighbours[path[-1]]:
                if len(path) < 2 or other != path[-2]:
                    walk([*path, other])

    walk([start])
    return ends


def test_paths_outnumber_the_people_they_reach(result, neighbours):
    hops = traversals.distances(neighbours, result.person)
    ends = trails(neighbours, result.person)
    expected = {}
    for depth in (1, 2, 3):
        at_depth = {e for e, h in hops.items() if h == depth}
        expected[depth] = (len(at_depth), sum(1 for e in ends if e in at_depth))
    assert result.within_three == expected
    people, paths = map(sum, zip(*result.within_three.values(), strict=True))
    assert paths > people


def test_every_shortest_path_is_found_by_the_breadth_first_repeat(result, neighbours):
    hops = traversals.distances(neighbours, result.person)[result.other]
    assert hops >= traversals.MIN_HOPS_APART
    assert (
        len(result.all_shortest)
        == traversals.count_shortest_paths(neighbours, result.person)[result.other]
        > 1
    )
    for path in result.all_shortest:
        assert (path[0], path[-1], len(path) - 1) == (result.person, result.other, hops)
        assert all(b in neighbours[a] for a, b in pairwise(path))


def test_friends_of_friends_exclude_friends_and_self(result, neighbours):
    me, friends = result.person, neighbours[result.person]
    expected = {}
    for friend in friends:
        for fof in neighbours[friend] - friends - {me}:
            expected[fof] = expected.get(fof, 0) + 1
    assert {email: n for email, _, n in result.friends_of_friends} == expected
    ranks = [(-n, name, email) for email, name, n in result.friends_of_friends]
    assert ranks == sorted(ranks)


def test_filters_along_the_path(result, people, neighbours):
    recent = people.adjacency(since=traversals.SINCE_YEAR)
    reached = {e for e, h in traversals.distances(recent, result.person).items() if 1 <= h <= 3}
    assert result.within_three_since == len(reached)
    city = people.city_of()
    detour = traversals.distances(neighbours, result.person, lambda e: city[e] != traversals.AVOIDED_CITY)
    assert len(result.shortest_avoiding) - 1 == detour[result.other] > len(result.all_shortest[0]) - 1
    assert not any(city[e] == traversals.AVOIDED_CITY for e in result.shortest_avoiding)


def test_recommendations_match_the_sets(result, shop):
    bought = {p["email"]: set(p["bought"]) for p in shop.people}
    names = {p["sku"]: p["name"] for p in shop.products} | {p["email"]: p["name"] for p in shop.people}
    me = result.customer

    def top(scores, n=recommendations.TOP_N):
        return sorted(scores, key=lambda item: (-item[1], item[0]))[:n]

    counts = {}
    for skus in bought.values():
        if result.product in skus:
            for other in skus - {result.product}:
                counts[names[other]] = counts.get(names[other], 0) + 1
    assert result.also_bought == top(counts.items())
    jaccard = {
        o: len(bought[me] & b) / len(bought[me] | b) for o, b in bought.items() if o != me and bought[me] & b
    }
    assert [(name, j) for name, _, _, j in result.similar_people] == top(
        (names[e], j) for e, j in jaccard.items()
    )
    nearest = sorted(jaccard, key=lambda e: (-jaccard[e], names[e]))[: recommendations.NEIGHBOURS]
    picks = {}
    for other in nearest:
        for sku in bought[other] - bought[me]:
            picks[names[sku]] = picks.get(names[sku], 0) + 1
    assert result.from_similar_people == top(picks.items())


def test_the_cypher_lessons_give_the_same_answers(result, neo4j_driver):
    """The same generated data in Neo4j, asked in Cypher: every answer equal."""
    cypher = traversals.run(neo4j_driver)
    assert (cypher.person, cypher.other) == (result.person, result.other)
    assert cypher.within_three == result.within_three
    assert cypher.all_shortest == result.all_shortest
    assert cypher.friends_of_friends == result.friends_of_friends
    assert cypher.within_three_since == result.within_three_since
    assert len(cypher.shortest_avoiding) == len(result.shortest_avoiding)
    shop = recommendations.run(neo4j_driver)
    assert (shop.person, shop.product) == (result.customer, result.product)
    assert shop.also_bought == result.also_bought
    assert shop.similar_people == result.similar_people
    assert shop.from_similar_people == result.from_similar_people


def test_the_lesson_sends_no_lambda_and_neptunes_refusal_is_reproduced(result):
    assert result.traversals_sent > 10 and result.lambdas_in_lesson == []
    assert result.lambda_steps_found == ["map"]
    assert "map" in result.lambda_refused_by_check  # the lesson's own check, before sending
    assert isinstance(result.lambda_on_gremlin_server, int)  # Gremlin Server ran the closure
    assert "lambda" in result.lambda_refused  # refused under LambdaRestrictionStrategy
    assert result.groovy_script_result == 6  # Gremlin Server ran the Groovy loop


def test_the_lambda_check_looks_into_child_traversals():
    g = traversal().with_graph(Graph())  # builds bytecode; nothing is sent
    assert lesson.lambda_steps(g.V().out().count().bytecode) == []
    assert lesson.lambda_steps(g.V().where(__.map(lambda: "it.get()")).bytecode) == ["map"]
    assert lesson.lambda_steps(lesson.friends_of_friends(g, "x").bytecode) == []


def test_a_second_run_gives_the_same_facts(gremlin, result):
    assert run_lesson(gremlin.url) == result

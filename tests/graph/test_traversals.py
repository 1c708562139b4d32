from itertools import pairwise

import pytest

from graph import traversals as lesson


@pytest.fixture(scope="module")
def result(neo4j_driver):
    return lesson.run(neo4j_driver)


@pytest.fixture(scope="module")
def people():
    return lesson.generate()


@pytest.fixture(scope="module")
def neighbours(people):
    return people.adjacency()


def bfs(neighbours, start, allowed=lambda _: True):
    hops, frontier = {start: 0}, [start]
    while frontier:
        nxt = []
        for node in frontier:
            for other in sorted(neighbours[node]):
                if other not in hops and allowed(other):
                    hops[other] = hops[node] + 1
                    nxt.append(other)
        frontier = nxt
    return hops


def trails(neighbours, start, max_len):
    """Walks that never use a friendship twice: in a simple graph up to 3 hops, no step straight back."""
    ends = []

    def walk(path):
        if len(path) > 1:
            ends.append(path[-1])
        if len(path) - 1 == max_len:
            return
        for other in neighbours[path[-1]]:
            if len(path) < 2 or other != path[-2]:
                walk([*path, other])

    walk([start])
    return ends


def test_paths_outnumber_the_people_they_reach(result, neighbours):
    hops = bfs(neighbours, result.person)
    ends = [e for e in trails(neighbours, result.person, 3) if e != result.person]
    expected = {}
    for depth in (1, 2, 3):
        at_depth = {e for e, h in hops.items() if h == depth}
        expected[depth] = (len(at_depth), sum(1 for e in ends if e in at_depth))
    assert result.within_three == expected
    people, paths = map(sum, zip(*result.within_three.values(), strict=True))
    assert paths > people


def test_shortest_paths_have_the_bfs_length(result, neighbours):
    hops = bfs(neighbours, result.person)[result.other]
    assert hops >= lesson.MIN_HOPS_APART
    assert len(result.shortest) - 1 == hops
    assert result.shortest in result.all_shortest
    assert (
        len(result.all_shortest) == lesson.count_shortest_paths(neighbours, result.person)[result.other] > 1
    )
    for path in result.all_shortest:
        assert (path[0], path[-1], len(path) - 1) == (result.person, result.other, hops)
        assert all(b in neighbours[a] for a, b in pairwise(path))


def test_friends_of_friends_exclude_friends_and_self(result, neighbours):
    me = result.person
    friends = neighbours[me]
    expected = {}
    for friend in friends:
        for fof in neighbours[friend]:
            if fof != me and fof not in friends:
                expected[fof] = expected.get(fof, 0) + 1
    assert {email: n for email, _, n in result.friends_of_friends} == expected
    ranks = [(-n, name, email) for email, name, n in result.friends_of_friends]
    assert ranks == sorted(ranks)


def test_filters_along_the_path(result, people, neighbours):
    recent = people.adjacency(since=lesson.SINCE_YEAR)
    reached = {e for e, h in bfs(recent, result.person).items() if 1 <= h <= 3}
    assert result.within_three_since == len(reached)
    assert result.within_three_since < sum(n for n, _ in result.within_three.values())

    city = people.city_of()
    detour = bfs(neighbours, result.person, allowed=lambda e: city[e] != lesson.AVOIDED_CITY)[result.other]
    assert len(result.shortest_avoiding) - 1 == detour >= len(result.shortest) - 1
    assert not any(city[e] == lesson.AVOIDED_CITY for e in result.shortest_avoiding)


def test_profile_index_seek_against_label_scan(result, neighbours):
    assert "NodeUniqueIndexSeek" in result.by_email.operators
    assert not {"NodeByLabelScan", "AllNodesScan"} & set(result.by_email.operators)
    assert {"NodeByLabelScan", "AllNodesScan"} & set(result.by_handle.operators)
    assert result.by_email.friends == result.by_handle.friends == len(neighbours[result.person])
    assert result.by_email.db_hits * 10 < result.by_handle.db_hits


def test_a_second_run_gives_the_same_facts(neo4j_driver, result):
    again = lesson.run(neo4j_driver)
    assert again == result
    assert again.hops == result.hops

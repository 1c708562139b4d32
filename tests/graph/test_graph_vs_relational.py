import psycopg
import pytest

from graph import graph_vs_relational as lesson


@pytest.fixture(scope="module")
def conn(postgres):
    with psycopg.connect(postgres.url) as conn:
        yield conn


@pytest.fixture(scope="module")
def result(conn, neo4j_driver):
    return lesson.run(conn, neo4j_driver)


@pytest.fixture(scope="module")
def hops_from():
    _, edges = lesson.generate()
    following = {}
    for src, dst in edges:
        following.setdefault(src, []).append(dst)

    def bfs(start):
        hops, frontier = {start: 0}, [start]
        while frontier:
            nxt = []
            for person in frontier:
                for other in following.get(person, []):
                    if other not in hops:
                        hops[other] = hops[person] + 1
                        nxt.append(other)
            frontier = nxt
        return hops

    return bfs


def test_both_engines_hold_the_same_graph(result):
    # Counted in each database after the load, not taken from the generator.
    expected = (lesson.N_PEOPLE, lesson.N_PEOPLE * lesson.FOLLOWS_EACH)
    assert result.sql_counts == result.neo4j_counts == expected


def test_same_people_at_every_depth(result, hops_from):
    assert result.sql_by_hops == result.cypher_by_hops
    hops = hops_from(lesson.START)
    for depth in lesson.DEPTHS:
        assert result.sql_by_hops[depth] == {p for p, h in hops.items() if h == depth}
    assert [d.first_reached for d in result.depths] == [len(result.sql_by_hops[d]) for d in lesson.DEPTHS]
    reached = [d.reached for d in result.depths]
    assert reached == sorted(reached) and reached[-1] == sum(d.first_reached for d in result.depths)


def test_same_shortest_lengths(result, hops_from):
    hops = hops_from(lesson.START)
    assert [(src, dst) for src, dst, _, _ in result.shortest] == lesson.pairs()
    for _, dst, in_sql, in_cypher in result.shortest:
        assert in_sql == in_cypher == hops.get(dst)
    assert result.shortest[-1][2:] == (None, None)  # nobody follows UNFOLLOWED
    assert result.same_answers


def test_union_keeps_one_row_per_person_and_depth(result):
    for d in result.depths:
        assert d.cte_rows <= 1 + d.depth * lesson.N_PEOPLE
        assert d.walks == sum(lesson.FOLLOWS_EACH**k for k in range(d.depth + 1))
    deepest = result.depths[-1]
    assert deepest.walks > 10 * deepest.cte_rows


def test_a_second_run_gives_the_same_facts(conn, neo4j_driver, result):
    assert lesson.run(conn, neo4j_driver) == result

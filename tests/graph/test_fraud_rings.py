import pytest

from graph import fraud_rings as lesson


@pytest.fixture(scope="module")
def result(neo4j_driver):
    return lesson.run(neo4j_driver)


@pytest.fixture(scope="module")
def accounts():
    return lesson.generate()


@pytest.fixture(scope="module")
def links(accounts):
    """The bipartite graph account - identifier, as a set of edges."""
    edges = set()
    for row in accounts.rows:
        edges |= {(row["id"], ("device", d)) for d in row["devices"]}
        edges |= {(row["id"], ("address", x)) for x in row["addresses"]}
    return edges


def connected(edges, a, b):
    neighbours = {}
    for u, v in edges:
        neighbours.setdefault(u, set()).add(v)
        neighbours.setdefault(v, set()).add(u)
    seen, stack = {a}, [a]
    while stack:
        for nxt in neighbours.get(stack.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return b in seen


def test_planted_rings_are_found_exactly(result, accounts):
    found = sorted(ring.accounts for ring in result.rings)
    assert found == sorted(accounts.rings.values())


def test_ring_scores_follow_the_pattern(result, accounts):
    by_members = {tuple(ring.accounts): ring for ring in result.rings}
    chargebacks = {row["id"]: row["chargebacks"] for row in accounts.rows}
    for name, (groups, planted_chargebacks) in lesson.RINGS.items():
        ring = by_members[tuple(accounts.rings[name])]
        assert ring.shared_identifiers == len(groups)
        assert ring.chargebacks == planted_chargebacks == sum(chargebacks[a] for a in ring.accounts)
        assert ring.score == (
            lesson.POINTS_PER_SHARED_IDENTIFIER * len(groups)
            + lesson.POINTS_PER_ACCOUNT * len(ring.accounts)
            + lesson.POINTS_PER_CHARGEBACK * planted_chargebacks
        )
        assert ring.component == min(ring.accounts)
    scores = [(-ring.score, ring.component) for ring in result.rings]
    assert scores == sorted(scores)


def test_clean_accounts_and_households_score_zero(result, accounts):
    in_rings = {a for ids in accounts.rings.values() for a in ids}
    assert len(result.risk) == lesson.N_ACCOUNTS
    assert all(score > 0 for account, score in result.risk.items() if account in in_rings)
    assert all(score == 0 for account, score in result.risk.items() if account not in in_rings)
    assert result.component_sizes[2] == lesson.N_HOUSEHOLDS
    noisy = [row["id"] for row in accounts.rows if row["chargebacks"] and row["id"] not in in_rings]
    assert noisy and all(result.risk[a] == 0 for a in noisy)


def test_shared_pairs_count_every_pair_once(result, accounts):
    def pairs(key):
        users = {}
        for row in accounts.rows:
            for identifier in row[key]:
                users.setdefault(identifier, []).append(row["id"])
        return sum(len(ids) * (len(ids) - 1) // 2 for ids in users.values())

    assert result.shared_pairs == {"address": pairs("addresses"), "device": pairs("devices")}


def test_a_cycle_finds_only_the_core(result, accounts, links):
    # An account lies on a cycle when one of its links can be removed and it still reaches that
    # identifier; only links to a shared identifier can be such a link.
    users = {}
    for _, identifier in links:
        users[identifier] = users.get(identifier, 0) + 1
    candidates = [(a, i) for a, i in links if users[i] > 1]
    on_cycle = sorted({a for a, i in candidates if connected(links - {(a, i)}, a, i)})
    assert result.on_a_cycle == on_cycle
    assert set(accounts.rings["cycle"]) <= set(on_cycle)
    assert set(on_cycle) <= set(accounts.rings["cycle"]) | set(accounts.rings["dense"])
    assert not set(accounts.rings["dense"]) <= set(on_cycle)  # members hanging off the core are missed


def test_components_settle_and_the_investigation_agrees(result, accounts):
    assert 2 <= result.rounds < lesson.MAX_ROUNDS
    ring = accounts.rings[lesson.INVESTIGATED_RING]
    assert result.investigated in ring
    assert result.around_investigated == sorted(set(ring) - {result.investigated})


def test_a_second_run_gives_the_same_facts(neo4j_driver, result):
    assert lesson.run(neo4j_driver) == result

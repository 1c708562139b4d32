from collections import Counter, defaultdict

import pytest

from nosql import mongodb_aggregation_patterns as lesson

DATA = lesson.generate()
COUNTED = [o for o in DATA.orders if o["status"] in lesson.REVENUE_STATUSES]


@pytest.fixture(scope="module")
def result(mongo_client):
    return lesson.run(mongo_client)


def test_the_orders_are_loaded(result):
    assert result.counts == {
        "customers": lesson.N_CUSTOMERS,
        "products": lesson.N_PRODUCTS,
        "orders": lesson.N_ORDERS,
    }


def test_match_and_group_give_revenue_per_month(result):
    expected = defaultdict(lambda: [0, 0])
    for order in COUNTED:
        month = expected[order["ordered_at"].strftime("%Y-%m")]
        month[0] += 1
        month[1] += order["total_cents"]
    assert result.revenue_by_month == [(month, n, cents) for month, (n, cents) in sorted(expected.items())]


def test_unwind_group_and_lookup_name_the_best_sellers(result):
    units, revenue = Counter(), Counter()
    for order in COUNTED:
        for line in order["items"]:
            units[line["product_id"]] += line["qty"]
            revenue[line["product_id"]] += line["qty"] * line["unit_price_cents"]
    best = sorted(revenue, key=lambda product_id: (-revenue[product_id], product_id))[: lesson.TOP]
    names = {p["_id"]: p["name"] for p in DATA.products}
    assert result.top_products == [(names[p], units[p], revenue[p]) for p in best]


def test_facet_summaries_each_cover_the_orders(result):
    facets = result.facets
    assert dict(facets["by_status"]) == dict(Counter(o["status"] for o in DATA.orders))
    assert sum(n for _, n in facets["by_total"]) == lesson.N_ORDERS
    assert sum(revenue for _, _, revenue in facets["by_channel"]) == sum(o["total_cents"] for o in COUNTED)


def test_totals_kept_on_write_equal_a_group_on_read(result):
    computed = result.computed
    orders = DATA.orders + DATA.new_orders
    assert computed.new_orders == lesson.N_NEW_ORDERS
    assert computed.customers_compared == len({o["customer_id"] for o in orders})
    assert computed.totals_equal
    assert computed.top_equal
    assert computed.orders_grouped == len(orders)
    assert computed.customers_read == lesson.TOP_CUSTOMERS


def test_merge_refreshes_the_report_in_place(result):
    report = result.report
    late = [o for o in DATA.late_orders if o["status"] in lesson.REVENUE_STATUSES]
    assert report.documents_first == report.documents_after_rerun == 12
    assert report.month == f"{lesson.YEAR}-{lesson.LATE_MONTH:02d}"
    assert report.after["orders"] - report.before["orders"] == len(late) > 0
    assert report.after["revenue_cents"] - report.before["revenue_cents"] == sum(
        o["total_cents"] for o in late
    )
    assert report.rewritten_months == [report.month]  # the other months' documents were not rewritten
    assert report.other_months_unchanged
    assert report.equals_fresh_group


def test_a_second_run_gives_the_same_facts(mongo_client, result):
    assert lesson.run(mongo_client) == result

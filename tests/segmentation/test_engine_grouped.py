"""Sibling conditions over one event set share one grouped subquery (compiler fast path).

`members` asserts compiler == evaluator and the exact complement; these cases also check that
the merge happened (one GROUP BY in the SQL) so the fast path is what the comparison covers.
"""

import pytest

from customers.models import Customer
from segmentation.engine import compile_definition
from tests.segmentation.engine_fixtures import NOW, REGISTRY, ago, attr, customer, event, members

pytestmark = pytest.mark.django_db


@pytest.fixture
def buyers():
    loyal = customer(email="loyal@x.com")
    lapsed = customer(email="lapsed@x.com")
    few = customer(email="few@x.com")
    never = customer(email="never@x.com")
    for days in (1, 20, 40, 60, 80):
        event(loyal, "Order Completed", ago(days=days), properties={"revenue": 300})
    for days in (100, 120, 140, 160, 180, 200):
        event(lapsed, "Order Completed", ago(days=days), properties={"revenue": "0.1"})
    event(few, "Order Completed", ago(days=2), properties={"revenue": 0.2})
    event(few, "Order Completed", ago(days=-1), properties={"revenue": 5000})  # future: ignored
    for days in range(1, 4):
        event(few, "Page Viewed", ago(days=days))
        event(never, "Page Viewed", ago(days=days + 30))
    return {"loyal": loyal.pk, "lapsed": lapsed.pk, "few": few.pk, "never": never.pk}


def group_by_count(definition) -> int:
    sql = str(Customer.objects.filter(compile_definition(definition, now=NOW, registry=REGISTRY)).query)
    return sql.upper().count("GROUP BY")


CASES = [
    # loyal-customers and at-risk-customers
    (
        {
            "match": "all",
            "conditions": [attr("orders_count", "at_least", 5), attr("last_order_at", "less_than_days_ago", 90)],
        },
        {"loyal"},
        1,
    ),
    (
        {
            "match": "all",
            "conditions": [attr("orders_count", "at_least", 1), attr("last_order_at", "more_than_days_ago", 90)],
        },
        {"lapsed"},
        1,
    ),
    # count, sum and max of the same orders; one of them true at zero stays correlated
    (
        {
            "match": "any",
            "conditions": [attr("total_spent", "at_least", 1000), attr("orders_count", "is", 6)],
        },
        {"loyal", "lapsed"},
        1,
    ),
    (
        {
            "match": "all",
            "conditions": [attr("total_spent", "more_than", 0.5), attr("orders_count", "less_than", 2)],
        },
        set(),
        2,
    ),
    (
        {
            "match": "all",
            "conditions": [attr("total_spent", "between", [0.1, 0.3]), attr("last_order_at", "has_any_value")],
        },
        {"few"},
        1,
    ),
    # two windowed counts of one event condition
    (
        {
            "match": "any",
            "conditions": [
                {"event": "Page Viewed", "within": {"last_days": 30}, "count": {"operator": "at_least", "value": 3}},
                {"event": "Page Viewed", "within": {"last_days": 30}, "count": {"operator": "is", "value": 1}},
            ],
        },
        {"few"},
        1,
    ),
    # "at least once" merged into a sibling: nothing for AND, everything for OR
    (
        {
            "match": "any",
            "conditions": [attr("orders_count", "at_least", 1), attr("total_spent", "more_than", 1000)],
        },
        {"loyal", "lapsed", "few"},
        0,
    ),
    (
        {
            "match": "all",
            "conditions": [attr("orders_count", "more_than", 0), attr("total_spent", "at_most", 1)],
        },
        {"lapsed", "few"},
        1,
    ),
    # different event sets are not merged
    (
        {
            "match": "all",
            "conditions": [
                {"event": "Page Viewed", "count": {"operator": "at_least", "value": 3}},
                attr("orders_count", "at_least", 1),
            ],
        },
        {"few"},
        1,  # the second is a semi-join
    ),
    # a negated sibling is compiled on its own, negated group merges inside
    (
        {
            "match": "all",
            "conditions": [
                attr("orders_count", "is_not", 5),
                {
                    "match": "all",
                    "negate": True,
                    "conditions": [attr("orders_count", "at_least", 1), attr("last_order_at", "less_than_days_ago", 7)],
                },
            ],
        },
        {"lapsed", "never"},
        None,
    ),
]


@pytest.mark.parametrize(("definition", "expected", "group_bys"), CASES)
def test_merged_grouped_conditions_agree_with_the_evaluator(buyers, definition, expected, group_bys):
    assert members(definition, registry=REGISTRY) == {buyers[name] for name in expected}
    if group_bys is not None:
        assert group_by_count(definition) == group_bys


DID_NOT = [
    (attr("orders_count", "is", 0), {"never"}),
    (attr("orders_count", "at_most", 0.5), {"never"}),
    (attr("orders_count", "less_than", 1), {"never"}),
    (attr("orders_count", "between", [-1, 0.9]), {"never"}),
    (attr("orders_count", "less_than", 1.5), {"never", "few"}),
    (attr("orders_count", "is_not", 1), {"never", "loyal", "lapsed"}),
    (
        {"event": "Page Viewed", "within": {"last_days": 30}, "count": {"operator": "is", "value": 0}},
        {"loyal", "lapsed", "never"},
    ),
    ({"event": "Page Viewed", "count": {"operator": "at_most", "value": 0}}, {"loyal", "lapsed"}),
]


@pytest.mark.parametrize(("condition", "expected"), DID_NOT)
def test_counts_true_only_at_zero_compile_to_not_exists(buyers, condition, expected):
    definition = {"match": "all", "conditions": [condition]}
    assert members(definition, registry=REGISTRY) == {buyers[name] for name in expected}
    sql = str(Customer.objects.filter(compile_definition(definition, now=NOW, registry=REGISTRY)).query).upper()
    zero_only = condition.get("count", condition).get("operator") not in ("is_not",) and expected != {"never", "few"}
    assert ("EXISTS" in sql and "GROUP BY" not in sql) == zero_only


PERFORMED = [
    ({"event": "Page Viewed", "count": {"operator": "at_least", "value": 1}}, {"few", "never"}, True),
    ({"event": "Page Viewed", "count": {"operator": "more_than", "value": 0}}, {"few", "never"}, True),
    (attr("orders_count", "at_least", 0.5), {"loyal", "lapsed", "few"}, True),
    (attr("orders_count", "more_than", 0.9), {"loyal", "lapsed", "few"}, True),
    ({"event": "Page Viewed", "count": {"operator": "at_least", "value": 2}}, {"few", "never"}, False),
    ({"event": "Page Viewed", "count": {"operator": "is", "value": 1}}, set(), False),
    (attr("total_spent", "more_than", 0), {"loyal", "lapsed", "few"}, False),
]


@pytest.mark.parametrize(("condition", "expected", "semi_join"), PERFORMED)
def test_counts_of_at_least_once_compile_to_a_semi_join(buyers, condition, expected, semi_join):
    definition = {"match": "all", "conditions": [condition]}
    assert members(definition, registry=REGISTRY) == {buyers[name] for name in expected}
    assert (group_by_count(definition) == 0) == semi_join


def test_limiting_to_some_customers_keeps_their_verdicts(buyers):
    """compile_definition(customer_ids=...) (incremental re-evaluation) agrees with the full query."""
    customer(email="tagged@x.com", tags=["VIP"])
    conditions = [d for d, _, _ in CASES]
    conditions += [{"match": "all", "conditions": [c]} for c, *_ in DID_NOT + PERFORMED]
    conditions += [
        {"match": "all", "conditions": [attr("tags", "contains", "vip")]},
        {"match": "any", "conditions": [attr("tags", "has_any_value"), attr("orders_count", "at_most", 5)]},
    ]
    everyone = list(Customer.objects.values_list("pk", flat=True))
    subsets = [[buyers["loyal"], buyers["few"]], [buyers["never"]], everyone[-2:]]
    for definition in conditions:
        full = set(
            Customer.objects.filter(compile_definition(definition, now=NOW, registry=REGISTRY)).values_list(
                "pk", flat=True
            )
        )
        for subset in subsets:
            for ids in (subset, Customer.objects.filter(pk__in=subset).values("pk")):
                q = compile_definition(definition, now=NOW, registry=REGISTRY, customer_ids=ids)
                limited = set(Customer.objects.filter(pk__in=subset).filter(q).values_list("pk", flat=True))
                assert limited == full & set(subset), definition

"""summarize, definition_dependencies and explain."""

import pytest
from hypothesis import HealthCheck, given, settings

from segmentation.engine import (
    customer_data_from_db,
    definition_dependencies,
    evaluate,
    explain,
    summarize,
)
from tests.segmentation.engine_fixtures import NOW, REGISTRY, ago, customer, event, segment_with
from tests.segmentation.test_engine_properties import definitions


def all_of(*conditions, **extra):
    return {"match": "all", "conditions": list(conditions), **extra}


def test_everyone_and_nobody():
    assert summarize({"match": "all", "conditions": []}) == "Everyone"
    assert summarize({"match": "any", "conditions": [], "negate": True}) == "Nobody"


def test_nested_groups_read_as_all_of_and_any_of():
    definition = {
        "match": "any",
        "conditions": [
            all_of(
                {"attribute": "orders_count", "operator": "at_least", "value": 2},
                {"attribute": "custom.plan", "operator": "is_any_of", "value": ["gold", "silver"]},
            ),
            all_of({"segment": "vip list", "operator": "in"}, negate=True),
        ],
    }
    assert summarize(definition) == (
        "Customers matching (any of: (all of: number of orders is at least 2; plan (custom) is any of “gold”, "
        "“silver”); not (all of: in segment “vip list”))"
    )


@pytest.mark.parametrize(
    ("condition", "text"),
    [
        (
            {"attribute": "created_at", "operator": "before", "value": "2026-01-01"},
            "Customers whose created is before “2026-01-01” (UTC)",
        ),
        (
            {"attribute": "last_seen_at", "operator": "less_than_days_ago", "value": 7},
            "Customers whose last seen is less than 7 days ago (UTC)",
        ),
        (
            {"attribute": "birth_date", "operator": "between", "value": ["1990-01-01", "1999-12-31"]},
            "Customers whose birth date is between “1990-01-01” and “1999-12-31” (UTC)",
        ),
        ({"attribute": "email", "operator": "is_unknown"}, "Customers whose email is unknown"),
        ({"attribute": "tags", "operator": "does_not_contain", "value": "vip"}, "Customers who are not tagged “vip”"),
        (
            {"attribute": "total_spent", "operator": "at_least", "value": 1000},
            "Customers who spent at least 1000 in total",
        ),
        (
            {"event": "Page Viewed", "count": {"operator": "is", "value": 0}},
            "Customers who did not perform “Page Viewed”",
        ),
        (
            {"event": "Order Completed", "within": {"between": ["2026-01-01", "2026-01-31"]}},
            "Customers who performed “Order Completed” between 2026-01-01 and 2026-01-31 (UTC)",
        ),
        (
            {
                "event": "Order Completed",
                "aggregate": {
                    "function": "avg",
                    "property": "properties.revenue",
                    "operator": "between",
                    "value": [1, 5],
                },
            },
            "Customers who had an average revenue between 1 and 5 over Order Completed events",
        ),
        (
            {
                "event": "Product Added",
                "count": {"operator": "at_least", "value": 2},
                "followed_by": {
                    "event": "Order Completed",
                    "where": [{"property": "properties.coupon", "operator": "has_any_value"}],
                },
            },
            "Customers who performed “Product Added” at least 2 times followed by “Order Completed” where "
            "coupon has any value",
        ),
        ({"segment": "vip list", "operator": "not_in"}, "Customers who are not in segment “vip list”"),
    ],
)
def test_condition_phrases(condition, text):
    text = text.replace("where coupon", "where properties.coupon")
    assert summarize(all_of(condition)) == text


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(definition=definitions)
def test_every_valid_definition_has_a_summary(definition):
    text = summarize(definition)
    assert text.startswith(("Customers", "Everyone", "Nobody"))


def test_dependencies_are_classified():
    definition = {
        "match": "any",
        "conditions": [
            {"attribute": "event_count", "operator": "at_least", "value": 1},
            {"event": "Product Added", "not_followed_by": {"event": "Order Completed"}},
            {"segment": "VIP List", "operator": "in"},
            {"event": "Page Viewed", "within": {"after": "2026-01-01"}},
            {"attribute": "custom.plan", "operator": "is", "value": "gold"},
        ],
    }
    assert definition_dependencies(definition) == {
        "events": ["*", "Order Completed", "Page Viewed", "Product Added"],
        "attributes": ["custom.plan", "event_count"],
        "segments": ["vip list"],
        "time": False,
    }


@pytest.mark.parametrize(
    "condition",
    [
        {"event": "Page Viewed", "within": {"last_hours": 2}},
        {"event": "Page Viewed", "within": {"last_days": 2}},
        {"attribute": "age", "operator": "at_least", "value": 18},
        {"attribute": "custom.signup", "operator": "more_than_days_ago", "value": 3},
        {"match": "all", "conditions": [{"attribute": "created_at", "operator": "less_than_days_ago", "value": 3}]},
    ],
)
def test_time_dependence(condition):
    assert definition_dependencies(all_of(condition))["time"] is True


@pytest.mark.django_db
def test_explain_reports_every_node():
    c = customer(country="PL", tags=["vip"])
    event(c, "Order Completed", ago(days=1), properties={"revenue": 10})
    segment_with("vip list", [c])
    definition = {
        "match": "any",
        "conditions": [
            {"attribute": "country", "operator": "is", "value": "GB"},
            all_of(
                {"attribute": "orders_count", "operator": "at_least", "value": 1},
                {"segment": "vip list", "operator": "in"},
            ),
        ],
    }
    (data,) = customer_data_from_db([c.pk])
    memberships = {"vip list": {c.pk}}
    rows = explain(definition, data, now=NOW, memberships=memberships, registry=REGISTRY)
    assert [(r["pointer"], r["matched"]) for r in rows] == [
        ("", True),
        ("/conditions/0", False),
        ("/conditions/1", True),
        ("/conditions/1/conditions/0", True),
        ("/conditions/1/conditions/1", True),
    ]
    assert rows[1]["text"] == "country is “GB”"
    assert evaluate(definition, data, now=NOW, memberships={}, registry=REGISTRY) is False

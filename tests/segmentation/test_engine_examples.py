"""The spec's examples and the pre-built segments (decisions 25) on a small, hand-checked cast."""

import datetime as dt

import pytest

from segmentation.engine import definition_dependencies, summarize, validate_definition
from tests.segmentation.engine_fixtures import NOW, REGISTRY, ago, customer, event, members

pytestmark = pytest.mark.django_db


def all_of(*conditions):
    return {"match": "all", "conditions": list(conditions)}


SPEC_UK_MAILCHIMP = all_of(
    {"attribute": "email", "operator": "ends_with", "value": ".uk"},
    {"attribute": "source", "operator": "is", "value": "MailChimp"},
)
SPEC_PL_SPENDERS = all_of(
    {"attribute": "country", "operator": "is", "value": "PL"},
    {
        "event": "Order Completed",
        "aggregate": {"function": "sum", "property": "properties.revenue", "operator": "more_than", "value": 100},
    },
)
CART_ABANDONERS = all_of(
    {"event": "Product Added", "within": {"last_days": 7}, "not_followed_by": {"event": "Order Completed"}}
)
ENGAGED_MOBILE = {
    "match": "any",
    "conditions": [
        all_of(
            {
                "event": "Page Viewed",
                "within": {"last_days": 30},
                "where": [{"property": "context.device.type", "operator": "is", "value": "mobile"}],
                "count": {"operator": "at_least", "value": 5},
            },
            {"attribute": "country", "operator": "is_not", "value": "GB"},
        ),
        {"attribute": "tags", "operator": "contains", "value": "vip"},
    ],
}

PREBUILT = {
    "everyone": {"match": "all", "conditions": []},
    "new-visitors": all_of(
        {"attribute": "first_seen_at", "operator": "less_than_days_ago", "value": 30},
        {"attribute": "orders_count", "operator": "is", "value": 0},
    ),
    "returning-customers": all_of({"attribute": "orders_count", "operator": "at_least", "value": 2}),
    "high-value-customers": all_of({"attribute": "total_spent", "operator": "at_least", "value": 1000}),
    "cart-abandoners": CART_ABANDONERS,
    "non-customer-visitors": all_of(
        {"event": "Page Viewed"}, {"attribute": "orders_count", "operator": "is", "value": 0}
    ),
    "engaged-mobile-browsers": all_of(
        {
            "event": "Page Viewed",
            "within": {"last_days": 30},
            "where": [{"property": "context.device.type", "operator": "is", "value": "mobile"}],
            "count": {"operator": "at_least", "value": 5},
        }
    ),
    "email-engaged-customers": {
        "match": "any",
        "conditions": [
            {"event": "Email Opened", "within": {"last_days": 30}},
            {"event": "Email Clicked", "within": {"last_days": 30}},
        ],
    },
    "loyal-customers": all_of(
        {"attribute": "orders_count", "operator": "at_least", "value": 5},
        {"attribute": "last_order_at", "operator": "less_than_days_ago", "value": 90},
    ),
    "at-risk-customers": all_of(
        {"attribute": "orders_count", "operator": "at_least", "value": 1},
        {"attribute": "last_order_at", "operator": "more_than_days_ago", "value": 90},
    ),
}


@pytest.fixture
def shop():
    uk = customer(email="jo@example.co.uk", source="mailchimp", country="GB", first_seen_at=ago(days=10))
    pl = customer(email="ola@example.pl", country="PL", tags=["VIP"], first_seen_at=ago(days=200))
    for days, revenue in ((1, 80), (20, "30.50"), (40, 400), (60, 300), (80, 250)):
        event(pl, "Order Completed", ago(days=days), properties={"revenue": revenue})
    for hours in range(5):
        event(pl, "Page Viewed", ago(hours=hours + 1), context={"device": {"type": "Mobile"}})
    event(pl, "Email Clicked", ago(days=3))
    cart = customer(country="DE", first_seen_at=ago(days=5))
    event(cart, "Order Completed", ago(days=6), properties={"revenue": 20})
    event(cart, "Product Added", ago(days=2))
    event(cart, "Page Viewed", ago(days=2))
    lapsed = customer(country="PL", first_seen_at=ago(days=400))
    event(lapsed, "Order Completed", ago(days=120), properties={"revenue": 99.99})
    event(lapsed, "Order Completed", ago(days=100), properties={"revenue": "0.02"})
    event(lapsed, "Email Opened", ago(days=31))
    return {"uk": uk.pk, "pl": pl.pk, "cart": cart.pk, "lapsed": lapsed.pk}


def who(ids, shop):
    reverse = {v: k for k, v in shop.items()}
    return sorted(reverse[i] for i in ids)


def test_spec_examples(shop):
    assert who(members(SPEC_UK_MAILCHIMP), shop) == ["uk"]
    assert who(members(SPEC_PL_SPENDERS), shop) == ["lapsed", "pl"]  # 1060.50 and 100.01
    assert who(members(CART_ABANDONERS), shop) == ["cart"]
    assert who(members(ENGAGED_MOBILE), shop) == ["pl"]


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("everyone", ["cart", "lapsed", "pl", "uk"]),
        ("new-visitors", ["uk"]),
        ("returning-customers", ["lapsed", "pl"]),
        ("high-value-customers", ["pl"]),
        ("cart-abandoners", ["cart"]),
        ("non-customer-visitors", []),
        ("engaged-mobile-browsers", ["pl"]),
        ("email-engaged-customers", ["pl"]),
        ("loyal-customers", ["pl"]),
        ("at-risk-customers", ["lapsed"]),
    ],
)
def test_prebuilt_segments(shop, key, expected):
    assert who(members(PREBUILT[key]), shop) == expected


def test_prebuilt_definitions_validate_and_classify():
    for definition in PREBUILT.values():
        assert validate_definition(definition, registry=REGISTRY, segment_keys=set()) == []
    assert definition_dependencies(PREBUILT["loyal-customers"]) == {
        "events": ["Order Completed"],
        "attributes": ["last_order_at", "orders_count"],
        "segments": [],
        "time": True,
    }
    assert definition_dependencies(PREBUILT["high-value-customers"])["time"] is False
    assert definition_dependencies(PREBUILT["everyone"]) == {
        "events": [],
        "attributes": [],
        "segments": [],
        "time": False,
    }


def test_spec_example_summaries():
    assert summarize(SPEC_PL_SPENDERS) == "Customers in Poland who spent more than 100 in total on Order Completed"
    assert summarize(SPEC_UK_MAILCHIMP) == "Customers whose email ends with “.uk” and whose source is “MailChimp”"
    assert summarize(CART_ABANDONERS) == (
        "Customers who performed “Product Added” not followed by “Order Completed” in the last 7 days"
    )
    assert summarize(ENGAGED_MOBILE) == (
        "Customers matching (any of: (all of: performed “Page Viewed” at least 5 times where "
        "context.device.type is “mobile” in the last 30 days; country is not “GB”); are tagged “vip”)"
    )


def test_now_is_explicit():
    later = NOW + dt.timedelta(days=365)
    c = customer(first_seen_at=ago(days=1))
    assert members(PREBUILT["new-visitors"]) == {c.pk}
    assert members(PREBUILT["new-visitors"], now=later) == set()

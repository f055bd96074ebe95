import pytest

from tests.segmentation.engine_fixtures import ago, customer, event, members, one

pytestmark = pytest.mark.django_db


def test_smoke():
    a = customer(
        country="PL", email="a@x.uk", first_name="Ann", custom={"plan": "Gold", "score": 5, "vip": True}, tags=["VIP"]
    )
    b = customer(country="GB", custom={"score": "7"})
    c = customer()
    event(a, "Order Completed", ago(days=1), properties={"revenue": 120.5})
    event(a, "Order Completed", ago(days=2), properties={"revenue": "30"})
    event(b, "Product Added", ago(days=1))
    event(b, "Order Completed", ago(days=3), properties={"revenue": 1})
    assert members(one({"attribute": "country", "operator": "is", "value": "pl"})) == {a.pk}
    assert members(one({"attribute": "country", "operator": "is_not", "value": "pl"})) == {b.pk, c.pk}
    assert members(one({"attribute": "custom.plan", "operator": "is", "value": " gold "})) == {a.pk}
    assert members(one({"attribute": "custom.score", "operator": "more_than", "value": 4})) == {a.pk}
    assert members(one({"attribute": "custom.vip", "operator": "is_not", "value": True})) == {b.pk, c.pk}
    assert members(one({"attribute": "tags", "operator": "contains", "value": "vip"})) == {a.pk}
    assert members(one({"attribute": "total_spent", "operator": "more_than", "value": 100})) == {a.pk}
    assert members(one({"attribute": "total_spent", "operator": "less_than", "value": 100})) == {b.pk, c.pk}
    assert members(one({"attribute": "orders_count", "operator": "is", "value": 0})) == {c.pk}
    assert members(
        one({"event": "Product Added", "within": {"last_days": 7}, "not_followed_by": {"event": "Order Completed"}})
    ) == {b.pk}
    assert members(
        one(
            {
                "event": "Order Completed",
                "aggregate": {"function": "avg", "property": "properties.revenue", "operator": "is", "value": 75.25},
            }
        )
    ) == {a.pk}
    assert members(one({"event": "Order Completed", "count": {"operator": "less_than", "value": 2}})) == {b.pk, c.pk}
    assert members(one({"attribute": "last_order_at", "operator": "less_than_days_ago", "value": 2})) == {a.pk}

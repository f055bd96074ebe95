"""`Event.revenue` (stored, generated) is exactly the engine's reading of `properties.revenue`."""

from decimal import Decimal

import pytest

from customers.models import Event
from segmentation.engine.expressions import JsonNumber
from tests.segmentation.engine_fixtures import NOW, customer, event

pytestmark = pytest.mark.django_db

VALUES = [10, 0.1, "0.2", "120.50", "-5", "02134", "abc", "1e5", " 5", "5\n", "", True, None, [1], {"a": 1}]


def test_generated_revenue_matches_the_engine_expression():
    c = customer()
    for value in VALUES:
        event(c, "Order Completed", NOW, properties={"revenue": value})
    event(c, "Order Completed", NOW, properties={})
    event(c, "Order Completed", NOW, properties={"total": {"revenue": 3}})
    rows = Event.objects.annotate(engine=JsonNumber("properties", ["revenue"], strings=True)).values_list(
        "properties", "revenue", "engine"
    )
    known = {}
    for properties, stored, engine in rows:
        assert (stored is None) == (engine is None), properties
        if stored is not None:
            assert Decimal(str(stored)) == Decimal(str(engine)), properties
            known[str(properties["revenue"])] = Decimal(str(stored))
    assert known == {
        "10": Decimal(10),
        "0.1": Decimal("0.1"),
        "0.2": Decimal("0.2"),
        "120.50": Decimal("120.5"),
        "-5": Decimal(-5),
    }


def test_revenue_follows_updates_of_properties():
    c = customer()
    e = event(c, "Order Completed", NOW, properties={"revenue": "abc"})
    Event.objects.filter(pk=e.pk).update(properties={"revenue": 7})
    assert Event.objects.get(pk=e.pk).revenue == 7

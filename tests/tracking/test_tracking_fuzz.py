"""Property-based: whatever JSON arrives, the tracking API answers 200/400 with the wire envelope."""

import json

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from customers.models import Source
from tests.factories import SourceFactory

pytestmark = pytest.mark.django_db

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=12,
)
fields = {
    "type": st.sampled_from(["track", "identify", "page", "screen", "group", "alias", "nope"]) | json_values,
    "userId": st.sampled_from(["u1", "u2", ""]) | json_values,
    "anonymousId": st.sampled_from(["a1", "a2"]) | json_values,
    "previousId": st.sampled_from(["u1", "a1"]) | json_values,
    "event": st.sampled_from(["E", "Order Completed"]) | json_values,
    "messageId": st.sampled_from(["m1", "m2"]) | json_values,
    "timestamp": st.sampled_from(["2026-01-01T00:00:00Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"])
    | json_values,
    "sentAt": st.sampled_from(["2026-01-01T00:00:00Z", "0001-01-01T00:00:00+14:00"]) | json_values,
    "properties": json_values,
    "traits": json_values,
    "context": json_values,
    "name": json_values,
    "groupId": json_values,
}
messages = st.fixed_dictionaries({}, optional=fields)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(messages, max_size=5), route=st.sampled_from(["batch", "t", "i", "p", "a", "g", "s"]))
def test_any_json_gets_an_answer_in_the_wire_envelope(db, batch, route):
    # Examples share the test's transaction, so stored state accumulates like real traffic.
    key = (Source.objects.filter(name="fuzz").first() or SourceFactory(name="fuzz")).write_key
    body = {"writeKey": key, "batch": batch} if route == "batch" else {"writeKey": key, **(batch[0] if batch else {})}
    response = Client().post(f"/v1/{route}", data=json.dumps(body), content_type="text/plain")
    assert response.status_code in (200, 400), response.content
    data = response.json()
    if response.status_code == 200:
        assert data["success"] is True
    else:
        assert data["code"] and data["message"]

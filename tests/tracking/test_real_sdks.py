"""The real Python SDKs against a live server: every event arrives exactly once, no SDK error."""

import pytest

from customers.models import Customer, CustomerIdentity, Event
from tests.factories import SourceFactory

pytestmark = [pytest.mark.integration]

MANY = 3000


def _segment(host, key, errors):
    from segment.analytics import Client

    # Segment's SDK: body writeKey (plus Basic auth), no gzip.
    return Client(write_key=key, host=host, on_error=lambda e, batch: errors.append(e), max_retries=1, upload_size=250)


def _rudder(host, key, errors):
    from rudderstack.analytics.client import Client

    # RudderStack's SDK: Basic auth, gzip on by default.
    return Client(write_key=key, host=host, on_error=lambda e, batch: errors.append(e), max_retries=1, upload_size=250)


@pytest.mark.parametrize("make_client", [_segment, _rudder], ids=["segment", "rudderstack"])
def test_sdk_identify_track_page_alias_and_a_big_batch(live_server, make_client):
    source = SourceFactory()
    errors = []
    client = make_client(live_server.url, source.write_key, errors)
    client.identify("old-id", {"email": "Ann@Example.com", "firstName": "Ann", "plan": "gold"}, anonymous_id="anon-1")
    client.track("old-id", "Product Viewed", {"sku": "X1", "price": 9.5})
    client.page("old-id", "Docs", "Home", {"path": "/"})
    client.alias("old-id", "new-id")
    for i in range(MANY):
        client.track("new-id", "Clicked", {"n": i})
    client.flush()
    client.join()

    assert errors == []
    customer = Customer.objects.get()
    assert (customer.external_id, customer.email, customer.first_name) == ("new-id", "ann@example.com", "Ann")
    assert customer.custom == {"plan": "gold"}
    assert set(CustomerIdentity.objects.values_list("kind", "value")) == {("anonymous", "anon-1"), ("alias", "old-id")}
    assert Event.objects.filter(name="Clicked").count() == MANY
    assert sorted(Event.objects.filter(name="Clicked").values_list("properties__n", flat=True)) == list(range(MANY))
    assert Event.objects.filter(name="Product Viewed").count() == 1
    page = Event.objects.get(name="Page Viewed")
    assert page.properties == {"path": "/", "name": "Home", "category": "Docs"}
    assert Event.objects.exclude(customer=customer).count() == 0
    assert Event.objects.filter(source=source, message_id__isnull=True).count() == 0

import datetime as dt

import pytest
from django.utils import timezone

from segmentation.models import LedgerEntry, Membership, Segment
from tests.factories import CustomerFactory, EventFactory, SourceFactory

pytestmark = pytest.mark.django_db

T0 = timezone.now() - dt.timedelta(days=30)


def _at(hours):
    return T0 + dt.timedelta(hours=hours)


def _walk(api, url, **params):
    """Follow cursor pages to the end; returns every result and the page bodies."""
    results, pages = [], []
    body = api.get(url, {"page_size": 2, **params}).json()
    while True:
        pages.append(body)
        results += body["results"]
        if not body["next"]:
            return results, pages
        body = api.get(body["next"]).json()


def test_customer_events_newest_first_cursor_paginated(admin_api):
    c = CustomerFactory(external_id="ev.ok")
    other = CustomerFactory()
    for h in (1, 5, 3, 3, 2):
        EventFactory(customer=c, timestamp=_at(h), name="Page Viewed")
    EventFactory(customer=other)
    results, pages = _walk(admin_api, f"/api/customers/{c.external_id}/events/")
    assert set(pages[0]) == {"next", "previous", "results"}  # no count (decisions 32)
    stamps = [r["timestamp"] for r in results]
    assert len(results) == 5 and stamps == sorted(stamps, reverse=True)
    assert {r["customer"] for r in results} == {c.external_id}


def test_customer_events_filters(admin_api):
    c = CustomerFactory(external_id=None)
    EventFactory(customer=c, timestamp=_at(1), name="Order Completed")
    EventFactory(customer=c, timestamp=_at(5), name="Order Completed")
    EventFactory(customer=c, timestamp=_at(5), name="Page Viewed")
    url = f"/api/customers/id:{c.pk}/events/"
    body = admin_api.get(url, {"name": "Order Completed", "after": _at(2).isoformat()}).json()
    assert [r["name"] for r in body["results"]] == ["Order Completed"]
    assert body["results"][0]["customer"] == f"id:{c.pk}"
    assert len(admin_api.get(url, {"before": _at(2).isoformat()}).json()["results"]) == 1
    assert admin_api.get(url, {"after": "not a date"}).status_code == 400
    assert admin_api.get("/api/customers/nobody-here/events/").status_code == 404


def test_all_events_filters(admin_api):
    web, app = SourceFactory(name="Web"), SourceFactory(name="App")
    a, b = CustomerFactory(external_id="a"), CustomerFactory(external_id="b")
    EventFactory(customer=a, source=web, name="Signed Up", timestamp=_at(1))
    EventFactory(customer=b, source=app, name="Signed Up", timestamp=_at(2))
    EventFactory(customer=b, source=app, name="Page Viewed", timestamp=_at(3))

    def names(**params):
        response = admin_api.get("/api/events/", params)
        assert response.status_code == 200
        return [(r["customer"], r["name"]) for r in response.json()["results"]]

    assert names() == [("b", "Page Viewed"), ("b", "Signed Up"), ("a", "Signed Up")]
    assert names(customer="a") == [("a", "Signed Up")]
    assert names(customer=f"id:{b.pk}", name="Signed Up") == [("b", "Signed Up")]
    assert names(source="web") == [("a", "Signed Up")]
    assert names(source=str(app.pk)) == [("b", "Page Viewed"), ("b", "Signed Up")]
    assert names(after=_at(2).isoformat(), before=_at(3).isoformat()) == [("b", "Signed Up")]
    results, _ = _walk(admin_api, "/api/events/")
    assert len(results) == 3
    event_id = results[0]["id"]
    assert admin_api.get(f"/api/events/{event_id}/").json()["name"] == "Page Viewed"


def test_events_are_read_only(admin_api):
    event = EventFactory()
    assert admin_api.post("/api/events/", {"name": "x"}, format="json").status_code == 405
    assert admin_api.delete(f"/api/events/{event.pk}/").status_code == 405


def test_invalid_cursor_is_a_readable_404(admin_api):
    response = admin_api.get("/api/events/", {"cursor": "garbage"})
    assert response.status_code == 404
    assert response.json()["message"]


def test_customer_segments_memberships_and_history(admin_api):
    c = CustomerFactory(external_id="seg-user")
    vip = Segment.objects.create(key="vip", name="VIP", kind="static")
    old = Segment.objects.create(key="old", name="Old", kind="static")
    Membership.objects.create(segment=vip, customer=c, entered_at=_at(10))
    LedgerEntry.objects.create(segment=old, customer=c, change="entered", at=_at(1), reason="api")
    LedgerEntry.objects.create(segment=old, customer=c, change="exited", at=_at(2), reason="manual")
    LedgerEntry.objects.create(
        segment=vip, customer=c, change="entered", at=_at(10), reason="event", detail={"event": "Order Completed"}
    )
    body = admin_api.get("/api/customers/seg-user/segments/").json()
    assert [m["segment"] for m in body["memberships"]] == ["vip"]
    assert [(r["segment"], r["change"], r["reason"]) for r in body["results"]] == [
        ("vip", "entered", "event"),
        ("old", "exited", "manual"),
        ("old", "entered", "api"),
    ]
    assert body["results"][0]["detail"] == {"event": "Order Completed"}
    assert body["results"][0]["reason_label"] == "Event"
    filtered = admin_api.get("/api/customers/seg-user/segments/", {"segment": "OLD", "change": "exited"}).json()
    assert [r["reason"] for r in filtered["results"]] == ["manual"]
    assert admin_api.get("/api/customers/missing/segments/").status_code == 404

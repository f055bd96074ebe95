import datetime as dt

import pytest
from django.utils import timezone

from personalization.models import Placement, Variant
from segmentation.models import Membership, Segment
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def hero():
    placement = Placement.objects.create(key="home-hero", name="Home hero")
    vip = Segment.objects.create(key="vips", name="VIPs", kind="static", status="ready")
    buyers = Segment.objects.create(key="buyers", name="Buyers", kind="static", status="ready")
    Variant.objects.create(placement=placement, name="Default", content={"title": "Welcome"})
    Variant.objects.create(placement=placement, name="VIP", segment=vip, priority=10, content={"title": "Hi VIP"})
    Variant.objects.create(placement=placement, name="Buyer", segment=buyers, priority=5, content={"title": "Again?"})
    return placement, vip, buyers


def _join(segment, customer):
    Membership.objects.create(segment=segment, customer=customer, entered_at=timezone.now())


def test_highest_priority_matching_segment_wins(admin_api, hero):
    _, vip, buyers = hero
    customer = CustomerFactory(external_id="ann")
    _join(buyers, customer)
    _join(vip, customer)
    body = admin_api.get("/api/placements/home-hero/decide/?customer=ann").json()
    assert body == {"placement": "home-hero", "variant": "VIP", "segment": "vips", "content": {"title": "Hi VIP"}}


def test_non_members_unknown_and_anonymous_visitors_get_the_fallback(admin_api, hero):
    CustomerFactory(external_id="bob")
    for query in ("?customer=bob", "?customer=nobody-knows", ""):
        body = admin_api.get(f"/api/placements/home-hero/decide/{query}").json()
        assert (body["variant"], body["segment"]) == ("Default", None)


def test_inactive_and_out_of_window_variants_are_skipped(admin_api, hero):
    placement, vip, _ = hero
    customer = CustomerFactory(external_id="cy")
    _join(vip, customer)
    Variant.objects.filter(name="VIP").update(active=False)
    later = timezone.now() + dt.timedelta(days=1)
    Variant.objects.filter(name="Default").update(starts_at=later)
    body = admin_api.get("/api/placements/home-hero/decide/?customer=cy").json()
    assert body["variant"] is None and body["content"] is None


def test_unknown_placement_is_404_with_envelope(admin_api, db):
    response = admin_api.get("/api/placements/nope/decide/")
    assert response.status_code == 404
    assert response.json()["message"]


def test_needs_view_permissions(nobody_api, analyst_api, hero):
    assert nobody_api.get("/api/placements/home-hero/decide/").status_code == 403
    assert analyst_api.get("/api/placements/home-hero/decide/").status_code == 200

"""Browser: the customer list, search, the profile page with its event timeline; screenshots for the docs."""

import datetime as dt
from pathlib import Path

import pytest
from django.utils import timezone

from customers.demo import demo_seed
from customers.models import Customer

SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


@pytest.fixture
def demo(db):
    now = timezone.now().replace(second=0, microsecond=0) - dt.timedelta(minutes=5)
    demo_seed(seed=42, now=now, customers=300, events=9000)


def test_list_search_profile_timeline(admin_page, live_server, demo):
    page = admin_page
    page.goto(f"{live_server.url}/admin/customers/customer/")
    page.wait_for_selector("#result_list")
    page.click("#toggle-nav-sidebar")  # more room for the table (the admin remembers the choice)
    assert page.locator("#result_list tbody tr").count() == 50
    assert page.locator("#changelist-filter").get_by_text("Poland (PL)").count() == 1
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(SHOTS / "customers-list.png"))

    # The buyer with the most orders: a profile with a full timeline.
    target = max(Customer.objects.exclude(email=None), key=lambda c: c.events.filter(name="Order Completed").count())
    _memberships(target)
    page.fill("#searchbar", target.email)
    page.press("#searchbar", "Enter")
    page.wait_for_selector("#result_list")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1
    rows.first.locator("th a").click()

    page.wait_for_selector("#timeline")
    assert page.locator("#id_email").input_value() == target.email
    timeline = page.locator("#timeline tbody tr")
    assert timeline.count() == min(25, target.events.count())
    assert page.locator("#timeline").get_by_text("Order Completed").count() >= 1
    assert "Page 1 of" in page.locator("#timeline .tessera-pager").inner_text() or target.events.count() <= 25
    assert page.locator("#memberships").get_by_text(high_name(), exact=True).count() == 2  # member + history
    page.screenshot(path=str(SHOTS / "customers-profile.png"), full_page=True)

    if target.events.count() > 25:
        page.get_by_role("link", name="Older ›").click()
        page.wait_for_selector("#timeline")
        assert "Page 2 of" in page.locator("#timeline .tessera-pager").inner_text()


def high_name():
    from segmentation.models import Segment

    return Segment.objects.get(key="high-value-customers").name


def _memberships(customer):
    """Segment rows as a recompute would leave them (the engine is tested in tests/segmentation)."""
    from segmentation.models import LedgerEntry, Membership, Segment

    now = timezone.now()
    # Pre-built segments may already exist (created after migrate); reuse them.
    high, _ = Segment.objects.get_or_create(
        key="high-value-customers", defaults={"name": "High-value customers", "status": "ready", "definition": {
            "match": "all", "conditions": [{"attribute": "total_spent", "operator": "at_least", "value": 1000}]}},
    )  # fmt: skip
    vip = Segment.objects.create(key="spring-vip-list", name="Spring VIP list", kind="static", status="ready")
    for segment, days, reason in ((high, 3, "event"), (vip, 12, "manual")):
        at = now - dt.timedelta(days=days)
        Membership.objects.create(segment=segment, customer=customer, entered_at=at)
        detail = {"event": "Order Completed"} if reason == "event" else {}
        LedgerEntry.objects.create(segment=segment, customer=customer, change="entered", at=at, reason=reason,
                                   detail=detail)  # fmt: skip
    newcomers, _ = Segment.objects.get_or_create(
        key="new-visitors", defaults={"name": "New visitors", "definition": {"match": "all", "conditions": []}}
    )
    LedgerEntry.objects.create(segment=newcomers, customer=customer, change="exited", at=now - dt.timedelta(days=20),
                               reason="scheduled")  # fmt: skip

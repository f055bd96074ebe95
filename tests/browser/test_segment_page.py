"""Browser: the segment page (summary, size, sparkline, members, entries and exits) and the list."""

import datetime as dt
from pathlib import Path

import pytest
from django.utils import timezone

from segmentation import services
from segmentation.models import Reason, Segment, Snapshot
from tests.factories import CustomerFactory, EventFactory

SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
pytestmark = pytest.mark.django_db(transaction=True)

DEFINITION = {
    "match": "all",
    "conditions": [
        {"attribute": "country", "operator": "is_any_of", "value": ["PL", "DE"]},
        {"event": "Order Completed", "within": {"last_days": 90}, "count": {"operator": "at_least", "value": 1}},
    ],
}


@pytest.fixture
def segment(admin_user):
    customers = [
        CustomerFactory(country=country, first_name=name, last_name="Nowak", email=f"{name.lower()}@example.com")
        for name, country in [("Ola", "PL"), ("Jan", "PL"), ("Eva", "DE"), ("Tom", "GB"), ("Ida", "DE")]
    ]
    for c in customers[:4]:
        EventFactory(customer=c, name="Order Completed", properties={"revenue": 120})
    with_tags = services.segment_create(
        name="Recent EU buyers", key="recent-eu-buyers", definition=DEFINITION, tags=["eu", "orders"], owner=admin_user
    )
    segment = Segment.objects.get(pk=with_tags.pk)
    services.segment_recompute(segment_id=segment.pk, version=segment.version, reason=Reason.DEFINITION_CHANGED)
    # Some history for the sparkline: earlier recomputes of the last weeks.
    now = timezone.now()
    for i, size in enumerate([1, 2, 2, 4, 3, 5, 4, 3]):
        at = now - dt.timedelta(days=30 - i * 3)
        Snapshot.objects.create(segment=segment, reason=Reason.SCHEDULED, started_at=at, finished_at=at, size=size)
    segment.refresh_from_db()
    return segment


def test_segment_page_shows_summary_size_history_members_and_changes(admin_page, live_server, segment):
    page = admin_page
    page.goto(f"{live_server.url}/admin/segmentation/segment/{segment.pk}/overview/")
    assert page.text_content("#seg-size").strip() == "3"
    assert "Poland" in page.text_content(".seg-summary") or "PL" in page.text_content(".seg-summary")
    assert page.locator("svg.seg-spark polyline").count() == 1
    rows = page.locator(".seg-members tbody tr").all_text_contents()
    assert len(rows) == 3 and "ola@example.com" in rows[0]
    changes = page.locator(".seg-ledger tbody tr").all_text_contents()
    assert len(changes) == 3 and all("Entered" in c and "Definition changed" in c for c in changes)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.screenshot(path=str(SHOTS / "segment-page.png"), full_page=True)

    page.fill(".seg-search input[name=q]", "eva")
    page.click(".seg-search button")
    rows = page.locator(".seg-members tbody tr").all_text_contents()
    assert len(rows) == 1 and "eva@example.com" in rows[0]


def test_segment_list_links_to_the_page_and_filters_by_tag(admin_page, live_server, segment):
    page = admin_page
    page.goto(f"{live_server.url}/admin/segmentation/segment/")
    row = page.locator("#result_list tbody tr", has_text="Recent EU buyers")
    assert "eu" in row.text_content() and "Ready" in row.text_content() and "recent-eu-buyers" in row.text_content()
    page.screenshot(path=str(SHOTS / "segment-list.png"), full_page=True)
    row.locator("a", has_text="Recent EU buyers").click()
    page.wait_for_url(f"**/segment/{segment.pk}/overview/")
    page.goto(f"{live_server.url}/admin/segmentation/segment/?tags__id__exact={segment.tags.get(name='eu').pk}")
    assert page.locator("#result_list tbody tr").count() == 1

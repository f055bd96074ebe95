"""Browser: manage a static segment by drag and drop, with buttons, and by CSV upload."""

from pathlib import Path

import pytest

from segmentation import services
from segmentation.models import LedgerEntry, Membership
from tests.factories import CustomerFactory

SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def segment(admin_user):
    return services.segment_create(name="Conference leads", key="conference-leads", kind="static", owner=admin_user)


@pytest.fixture
def people(db):
    names = [
        ("Ada", "Lovelace"),
        ("Alan", "Turing"),
        ("Grace", "Hopper"),
        ("Edsger", "Dijkstra"),
        ("Barbara", "Liskov"),
    ]
    return [
        CustomerFactory(first_name=first, last_name=last, email=f"{first.lower()}@example.com", country=c)
        for (first, last), c in zip(names, ["GB", "GB", "US", "NL", "US"], strict=True)
    ]


def _members(segment):
    return set(Membership.objects.filter(segment=segment).values_list("customer_id", flat=True))


def _open(page, live_server, segment):
    page.goto(f"{live_server.url}/admin/segmentation/segment/{segment.pk}/members/")
    page.wait_for_selector("#seg-search-list li[data-customer]")
    page.wait_for_selector("#seg-members-list li")


def _wait_reload(page, which, before):
    page.wait_for_function(
        f"document.getElementById('{which}').getAttribute('data-loaded') !== {before!r}",
    )


def test_drag_three_customers_in_and_one_out(admin_page, live_server, segment, people):
    page = admin_page
    _open(page, live_server, segment)
    search = page.locator("#seg-search-list")
    members = page.locator("#seg-members-list")

    # Select three (ticking, as a multi-selection) and drag one of them: all three move.
    for person in people[:3]:
        search.locator(f"li[data-customer='{person.pk}'] .seg-pick").check()
    before = members.get_attribute("data-loaded")
    before_search = search.get_attribute("data-loaded")
    search.locator(f"li[data-customer='{people[0].pk}']").drag_to(members)
    # Both lists reload in parallel after a change; wait for each before reading it.
    _wait_reload(page, "seg-members-list", before)
    _wait_reload(page, "seg-search-list", before_search)
    page.wait_for_function("document.getElementById('seg-member-count').textContent === '3'")
    assert _members(segment) == {p.pk for p in people[:3]}
    assert members.locator("li[data-customer]").count() == 3
    assert search.locator("li.seg-is-member").count() == 3

    # Drag one back out onto the remove zone (both ends in view: a drag does not scroll the page).
    page.locator("#seg-remove-zone").scroll_into_view_if_needed()
    before = members.get_attribute("data-loaded")
    members.locator(f"li[data-customer='{people[1].pk}']").drag_to(page.locator("#seg-remove-zone"))
    _wait_reload(page, "seg-members-list", before)
    page.wait_for_function("document.getElementById('seg-member-count').textContent === '2'")
    assert _members(segment) == {people[0].pk, people[2].pk}
    assert set(LedgerEntry.objects.filter(segment=segment).values_list("reason", flat=True)) == {"manual"}

    page.set_viewport_size({"width": 1280, "height": 900})
    page.evaluate("window.scrollTo(0, 0)")  # the admin's sticky sidebar follows the scroll position
    page.screenshot(path=str(SHOTS / "manual-segment.png"), full_page=True)


def test_buttons_search_and_add_all(admin_page, live_server, segment, people):
    page = admin_page
    page.on("dialog", lambda dialog: dialog.accept())
    _open(page, live_server, segment)
    search = page.locator("#seg-search-list")
    members = page.locator("#seg-members-list")

    search.locator(f"li[data-customer='{people[3].pk}'] .seg-pick").check()
    before = members.get_attribute("data-loaded")
    before_search = search.get_attribute("data-loaded")
    page.click("#seg-add-selected")
    _wait_reload(page, "seg-members-list", before)
    _wait_reload(page, "seg-search-list", before_search)
    assert _members(segment) == {people[3].pk}

    page.fill("#seg-search-form input[name=country]", "US")
    before = search.get_attribute("data-loaded")
    page.click("#seg-search-form button[type=submit]")
    _wait_reload(page, "seg-search-list", before)
    assert search.locator("li[data-customer]").count() == 2
    before = members.get_attribute("data-loaded")
    before_search = search.get_attribute("data-loaded")
    page.click("#seg-add-all")
    _wait_reload(page, "seg-members-list", before)
    _wait_reload(page, "seg-search-list", before_search)
    assert _members(segment) == {people[3].pk, people[2].pk, people[4].pk}

    members.locator(f"li[data-customer='{people[3].pk}'] .seg-pick").check()
    before = members.get_attribute("data-loaded")
    page.click("#seg-remove-selected")
    _wait_reload(page, "seg-members-list", before)
    assert _members(segment) == {people[2].pk, people[4].pk}


def test_upload_member_csv_reports_unmatched_rows(admin_page, live_server, segment, people, tmp_path):
    page = admin_page
    _open(page, live_server, segment)
    csv_file = tmp_path / "members.csv"
    csv_file.write_text(
        f"external_id,email\r\n{people[0].external_id},\r\n,grace@example.com\r\nno-such-id,\r\n", encoding="utf-8"
    )
    page.set_input_files("#seg-upload-file", str(csv_file))
    page.click("#seg-upload button[type=submit]")
    page.wait_for_selector("#seg-upload-report:not([hidden])")
    report = page.text_content("#seg-upload-report")
    assert "1 row(s) did not match" in report and "no-such-id" in report
    assert "2 added" in page.text_content("#seg-flash")
    assert _members(segment) == {people[0].pk, people[2].pk}


def test_add_all_above_the_limit_runs_as_a_job_with_progress(admin_page, live_server, segment, people, settings):
    settings.TESSERA_MANUAL_INLINE_LIMIT = 2
    page = admin_page
    page.on("dialog", lambda dialog: dialog.accept())
    services.segment_members_add(segment=segment, customer_ids=[people[0].pk], reason="manual")
    _open(page, live_server, segment)
    before = page.locator("#seg-members-list").get_attribute("data-loaded")
    # Record every text the progress label shows (eager Celery finishes the job within the request).
    page.evaluate(
        """() => { window.jobLabels = []; const label = document.getElementById('seg-job-label');
        new MutationObserver(() => window.jobLabels.push(label.textContent))
          .observe(label, {childList: true, characterData: true, subtree: true}); }"""
    )
    page.click("#seg-add-all")
    # The 202 shows the job box; the page polls /api/jobs/<id>/ and reloads the lists when it ends.
    page.wait_for_selector("#seg-job:not([hidden])")
    page.wait_for_selector("#seg-job[data-status=succeeded]")
    _wait_reload(page, "seg-members-list", before)
    labels = page.evaluate("window.jobLabels")
    assert labels[0] == "Adding customers in the background…" and labels[-1].startswith("Done:")
    assert "Done: 5 of 5 customers checked, 4 added." in page.text_content("#seg-job-label")
    assert page.evaluate("document.getElementById('seg-job-progress').value") == 1
    page.wait_for_function("document.getElementById('seg-member-count').textContent === '5'")
    assert "Added 4 (1 already members)." in page.text_content("#seg-flash")
    assert _members(segment) == {p.pk for p in people}
    assert page.locator("#seg-members-list li[data-customer]").count() == 5
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(SHOTS / "manual-segment-job.png"), full_page=True)


def test_large_csv_upload_runs_as_a_job_and_keeps_the_report(
    admin_page, live_server, segment, people, tmp_path, settings
):
    settings.TESSERA_MANUAL_INLINE_LIMIT = 1
    page = admin_page
    _open(page, live_server, segment)
    csv_file = tmp_path / "members.csv"
    csv_file.write_text(f"external_id\r\n{people[0].external_id}\r\n{people[1].external_id}\r\nno-such-id\r\n")
    page.set_input_files("#seg-upload-file", str(csv_file))
    page.click("#seg-upload button[type=submit]")
    page.wait_for_selector("#seg-job[data-status=succeeded]")
    assert "1 row(s) did not match" in page.text_content("#seg-upload-report")
    page.wait_for_function("document.getElementById('seg-member-count').textContent === '2'")
    assert "Upload: 2 matched, 2 added, 0 already members, 1 unmatched." in page.text_content("#seg-flash")
    assert _members(segment) == {people[0].pk, people[1].pk}

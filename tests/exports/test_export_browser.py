"""Browser: create an export in the admin, run it now, see the run and its download link."""

from pathlib import Path

import pytest

from segmentation.models import Export, ExportRun, Membership, Segment
from tests.factories import CustomerFactory

SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


@pytest.fixture
def vip(transactional_db):
    from django.utils import timezone

    segment = Segment.objects.create(key="vip-browser", name="VIP customers", kind="static", status="ready")
    customers = [
        CustomerFactory(external_id=f"v{i}", email=None if i % 3 == 0 else f"v{i}@example.com", first_name=f"Name{i}")
        for i in range(12)
    ]
    Membership.objects.bulk_create(
        Membership(segment=segment, customer=c, entered_at=timezone.now()) for c in customers
    )
    return segment


def test_create_and_run_export_in_admin(admin_page, live_server, vip):
    page = admin_page
    page.goto(f"{live_server.url}/admin/segmentation/export/add/")
    page.fill("#id_name", "VIP newsletter")
    page.select_option("#id_segment", label="VIP customers")
    page.fill("#id_columns_text", "external_id, email, first_name, entered_at")
    page.fill("#id_mandatory_text", "email")
    # Only the fields of the chosen destination and schedule are shown.
    assert page.is_hidden("#id_folder_path") and page.is_hidden("#id_webhook_url") and page.is_hidden("#id_cron")
    page.select_option("#id_destination_kind", "webhook")
    assert page.is_visible("#id_webhook_url") and page.is_visible("#id_webhook_secret")
    assert page.is_hidden("#id_folder_path") and page.is_hidden("#id_storage_alias")
    page.select_option("#id_destination_kind", "folder")
    assert page.is_visible("#id_folder_path") and page.is_hidden("#id_webhook_url")
    page.select_option("#id_destination_kind", "download")
    assert page.is_hidden("#id_folder_path")
    page.select_option("#id_schedule_type", "crontab")
    page.fill("#id_cron", "0 3 * * *")
    page.fill("#id_timezone", "Europe/Warsaw")
    page.click("input[name=_continue]")
    page.wait_for_selector(".messagelist")
    body = page.locator("#content").inner_text()
    assert "8 of 12 customers have every mandatory attribute" in body
    export = Export.objects.get(name="VIP newsletter")
    assert export.periodic_task is not None and export.periodic_task.enabled

    page.click("button.export-run-now")
    page.wait_for_selector("#export-runs .export-run")
    run = ExportRun.objects.get(export=export)
    assert run.status == "succeeded", run.error
    assert page.locator("#export-runs .run-status").first.inner_text() == "Succeeded"
    link = page.locator("#export-runs a.export-download")
    assert link.count() == 1
    with page.expect_download() as download:
        link.click()
    data = Path(download.value.path()).read_bytes()
    assert data.startswith(b"external_id,email,first_name,entered_at\r\n") and data.count(b"\r\n") == 9
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "export-admin.png"), full_page=True)

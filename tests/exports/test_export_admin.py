"""The export admin: create through the form, preview sentence, run now, downloads."""

import pytest
from django.urls import reverse

from segmentation.models import Export, ExportRun

from .helpers import make_export, run_now

FORM = {
    "name": "Admin export",
    "mode": "full",
    "delimiter": ",",
    "filename_template": "{segment}-{date:%Y-%m-%d}.csv",
    "destination_kind": "download",
    "schedule_type": "crontab",
    "cron": "0 3 * * *",
    "timezone": "Europe/Warsaw",
    "enabled": "on",
    "columns_text": "external_id, email",
    "mandatory_text": "email",
}


@pytest.fixture
def admin_client_logged(client, admin_user):
    client.force_login(admin_user)
    return client


def test_create_export_with_schedule(admin_client_logged, members, segment):
    response = admin_client_logged.post(reverse("admin:segmentation_export_add"), {**FORM, "segment": segment.pk})
    assert response.status_code == 302, response.context["adminform"].form.errors
    export = Export.objects.get(name="Admin export")
    assert export.columns == ["external_id", "email"] and export.mandatory == ["email"]
    assert export.periodic_task.crontab.hour == "3"
    assert str(export.periodic_task.crontab.timezone) == "Europe/Warsaw"
    page = admin_client_logged.get(reverse("admin:segmentation_export_change", args=[export.pk])).content.decode()
    assert "2 of 3 customers have every mandatory attribute" in page
    assert "Run now" in page


def test_form_errors_are_shown(admin_client_logged, segment):
    data = {**FORM, "segment": segment.pk, "columns_text": "bogus", "cron": "whenever"}
    response = admin_client_logged.post(reverse("admin:segmentation_export_add"), data)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "columns_text" in errors and "cron" in errors


@pytest.mark.django_db(transaction=True)
def test_run_now_and_download(admin_client_logged, members, segment):
    export = make_export(segment)
    response = admin_client_logged.post(reverse("admin:segmentation_export_run", args=[export.pk]))
    assert response.status_code == 302
    run = ExportRun.objects.get(export=export)
    assert run.status == "succeeded", run.error
    page = admin_client_logged.get(reverse("admin:segmentation_export_change", args=[export.pk])).content.decode()
    assert "vip.csv" in page and "Succeeded" in page
    download = admin_client_logged.get(reverse("admin:segmentation_export_download", args=[export.pk, run.pk]))
    assert b"".join(download.streaming_content).startswith(b"external_id,email")


def test_run_now_while_active_warns(admin_client_logged, members, segment):
    from segmentation.exports.services import export_run_start

    export = make_export(segment)
    export_run_start(export=export, enqueue=False)
    response = admin_client_logged.post(reverse("admin:segmentation_export_run", args=[export.pk]), follow=True)
    assert "already has a run in progress" in response.content.decode()


def test_runs_changelist(admin_client_logged, members, segment):
    run_now(make_export(segment))
    assert admin_client_logged.get(reverse("admin:segmentation_exportrun_changelist")).status_code == 200

"""/api/exports/: CRUD, run now (202 / 409), run history and downloads."""

import pytest
from django.contrib.auth.models import Permission

from segmentation.exports.services import export_run
from segmentation.models import Export, ExportRun

from .helpers import make_export

BODY = {
    "name": "Newsletter",
    "segment": "vip",
    "columns": ["external_id", "email", "tags"],
    "mandatory": ["email"],
    "filename_template": "{segment}-{date:%Y-%m-%d}.csv",
}


def test_create_list_and_preview(marketer_api, members, segment):
    response = marketer_api.post("/api/exports/", BODY, format="json")
    assert response.status_code == 201, response.json()
    data = response.json()
    assert data["segment"] == "vip" and data["owner"] == "marketer"
    assert data["preview"]["sentence"] == "2 of 3 customers have every mandatory attribute"
    listing = marketer_api.get("/api/exports/").json()
    assert listing["count"] == 1 and listing["results"][0]["id"] == data["id"]
    preview = marketer_api.post("/api/exports/preview/", {"segment": "vip", "mandatory": ["country"]}, format="json")
    assert preview.json()["exported"] == 2


def test_validation_errors_use_the_envelope(marketer_api, segment):
    response = marketer_api.post("/api/exports/", {**BODY, "columns": ["nope"]}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid" and body["errors"][0]["field"] == "columns"
    response = marketer_api.post(
        "/api/exports/",
        {**BODY, "schedule_type": "crontab", "cron": "every day", "timezone": "Mars/Base"},
        format="json",
    )
    fields = {e["field"] for e in response.json()["errors"]}
    assert {"cron", "timezone"} <= fields


def test_run_now_returns_job_and_409_while_active(marketer_api, members, segment):
    export = make_export(segment)
    response = marketer_api.post(f"/api/exports/{export.pk}/run/")
    assert response.status_code == 202
    job_id = response.json()["job"]
    assert response["Location"] == f"/api/jobs/{job_id}/"
    again = marketer_api.post(f"/api/exports/{export.pk}/run/")
    assert again.status_code == 409 and again.json()["code"] == "conflict"


@pytest.mark.django_db(transaction=True)
def test_run_executes_and_runs_list_offers_download(marketer_api, members, segment):
    export = make_export(segment)
    response = marketer_api.post(f"/api/exports/{export.pk}/run/")  # eager Celery runs it after commit
    assert response.status_code == 202
    run = ExportRun.objects.get(pk=response.json()["run"]["id"])
    assert run.status == "succeeded", run.error
    runs = marketer_api.get(f"/api/exports/{export.pk}/runs/").json()["results"]
    assert runs[0]["rows_written"] == 3 and runs[0]["download_url"].endswith(f"/runs/{run.pk}/download/")
    download = marketer_api.get(runs[0]["download_url"])
    assert download.status_code == 200
    assert b"".join(download.streaming_content).startswith(b"external_id,email,first_name,country\r\na1,")


def test_download_needs_view_customer(analyst_api, analyst, members, segment):
    export = make_export(segment)
    from segmentation.exports.services import export_run_start

    run = export_run_start(export=export, enqueue=False)
    export_run(run_id=run.pk)
    url = f"/api/exports/{export.pk}/runs/{run.pk}/download/"
    assert analyst_api.get(url).status_code == 200
    analyst.groups.first().permissions.remove(Permission.objects.get(codename="view_customer"))
    analyst.user_permissions.clear()
    from django.contrib.auth.models import User

    analyst = User.objects.get(pk=analyst.pk)
    analyst_api.force_authenticate(analyst)
    assert analyst_api.get(url).status_code == 403
    assert analyst_api.get(f"/api/exports/{export.pk}/runs/").status_code == 200


def test_read_only_roles_cannot_write_or_run(analyst_api, nobody_api, members, segment):
    export = make_export(segment)
    assert analyst_api.post("/api/exports/", BODY, format="json").status_code == 403
    assert analyst_api.post(f"/api/exports/{export.pk}/run/").status_code == 403
    assert nobody_api.get("/api/exports/").status_code == 403


def test_webhook_secret_is_write_only(admin_api, segment, settings):
    settings.TESSERA_WEBHOOK_ALLOW_PRIVATE = True
    body = {**BODY, "destination_kind": "webhook", "destination": {"url": "http://127.0.0.1:9/x", "secret": "x" * 20}}
    data = admin_api.post("/api/exports/", body, format="json").json()
    assert data["destination"]["secret"] == "********"
    patched = admin_api.patch(
        f"/api/exports/{data['id']}/",
        {"destination": {"url": "http://127.0.0.1:9/y", "secret": "********"}},
        format="json",
    )
    assert patched.status_code == 200, patched.json()
    assert Export.objects.get(pk=data["id"]).destination == {"url": "http://127.0.0.1:9/y", "secret": "x" * 20}


def test_delete_removes_schedule(admin_api, segment):
    data = admin_api.post("/api/exports/", {**BODY, "schedule_type": "interval", "interval_minutes": 15}, format="json")
    export = Export.objects.get(pk=data.json()["id"])
    task_id = export.periodic_task_id
    assert task_id
    assert admin_api.delete(f"/api/exports/{export.pk}/").status_code == 204
    from django_celery_beat.models import PeriodicTask

    assert not PeriodicTask.objects.filter(pk=task_id).exists()

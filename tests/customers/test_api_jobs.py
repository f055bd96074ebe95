import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings

from customers.models import Customer, Job

pytestmark = pytest.mark.django_db


def test_users_see_their_own_jobs_staff_with_view_job_all(nobody, nobody_api, analyst, analyst_api):
    mine = Job.objects.create(kind="import", created_by=nobody, status="running", progress=5, total=10)
    theirs = Job.objects.create(kind="recompute", created_by=analyst)
    body = nobody_api.get("/api/jobs/").json()
    assert [j["id"] for j in body["results"]] == [mine.pk]
    job = nobody_api.get(f"/api/jobs/{mine.pk}/").json()
    assert (job["status"], job["progress"], job["total"], job["result"], job["errors"]) == ("running", 5, 10, {}, [])
    assert nobody_api.get(f"/api/jobs/{theirs.pk}/").status_code == 404
    assert {j["id"] for j in analyst_api.get("/api/jobs/").json()["results"]} == {mine.pk, theirs.pk}
    assert [j["id"] for j in analyst_api.get("/api/jobs/", {"status": "running"}).json()["results"]] == [mine.pk]


def _csv(content=b"external_id,email\r\nu1,u1@example.com\r\n"):
    return SimpleUploadedFile("people.csv", content, content_type="text/csv")


def test_import_needs_customer_write_permission(analyst_api):
    assert analyst_api.post("/api/imports/", {"file": _csv()}, format="multipart").status_code == 403


def test_import_requires_a_multipart_file(admin_api):
    response = admin_api.post("/api/imports/", {"file": "x"}, format="json")
    assert response.status_code == 415 and response.json()["message"]
    response = admin_api.post("/api/imports/", {}, format="multipart")
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "file"


def test_import_over_the_limit_is_413(admin_api):
    with override_settings(TESSERA_IMPORT_MAX_BYTES=10):
        response = admin_api.post("/api/imports/", {"file": _csv()}, format="multipart")
    assert response.status_code == 413 and response.json()["message"]


def test_import_answers_202_with_the_job_and_imports(
    admin_api, admin_user, settings, tmp_path, django_capture_on_commit_callbacks
):
    settings.MEDIA_ROOT = tmp_path
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_api.post("/api/imports/", {"file": _csv()}, format="multipart")
    assert response.status_code == 202, response.json()
    job = Job.objects.get(pk=response.json()["id"])
    assert response["Location"] == f"/api/jobs/{job.pk}/"
    assert response.json()["status"] == "queued"
    assert job.created_by == admin_user
    assert len(list((tmp_path / "imports").iterdir())) == 1
    polled = admin_api.get(response["Location"]).json()
    assert polled["status"] == "succeeded", polled
    assert Customer.objects.get(external_id="u1").email == "u1@example.com"


def test_import_dry_run_writes_nothing(admin_api, settings, tmp_path, django_capture_on_commit_callbacks):
    settings.MEDIA_ROOT = tmp_path
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_api.post(
            "/api/imports/",
            {"file": _csv(b"external_id;email\r\nu1;u1@example.com\r\n"), "dry_run": "true", "delimiter": ";"},
            format="multipart",
        )
    assert response.status_code == 202
    assert admin_api.get(response["Location"]).json()["status"] == "succeeded"
    assert not Customer.objects.exists()


def test_import_with_bad_rows_reports_on_the_job(admin_api, settings, tmp_path, django_capture_on_commit_callbacks):
    settings.MEDIA_ROOT = tmp_path
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_api.post(
            "/api/imports/", {"file": _csv(b"external_id,email\r\nu1,not-an-email\r\n")}, format="multipart"
        )
    job = admin_api.get(response["Location"]).json()
    assert job["status"] == "failed"
    assert job["errors"] == [{"line": 2, "column": "email", "message": "“not-an-email” is not a valid email address."}]
    assert not Customer.objects.exists()


def test_large_upload_is_moved_not_copied_into_media(admin_api, settings, tmp_path, django_capture_on_commit_callbacks):
    settings.MEDIA_ROOT = tmp_path
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 10  # force Django's temporary-file upload handler
    rows = b"".join(f"u{i},u{i}@example.com\r\n".encode() for i in range(50))
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_api.post("/api/imports/", {"file": _csv(b"external_id,email\r\n" + rows)}, format="multipart")
    assert response.status_code == 202
    assert admin_api.get(response["Location"]).json()["status"] == "succeeded"
    assert Customer.objects.count() == 50

import io

import pytest
from django.urls import reverse

from customers.models import Customer

pytestmark = pytest.mark.django_db

URL = reverse("admin:customers_customer_import")


@pytest.fixture
def staff(client, admin_user, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    client.force_login(admin_user)
    return client


def _upload(client, text: str, name="people.csv", encoding="utf-8", **extra):
    upload = io.BytesIO(text.encode(encoding))
    upload.name = name
    return client.post(URL, {"file": upload, "delimiter": "", **extra})


def test_upload_form_renders(staff):
    html = staff.get(URL).content.decode()
    assert "Import customers from CSV" in html and 'type="file"' in html and "custom.&lt;key&gt;" in html


def test_good_file_previews_then_imports_on_confirm(staff, tmp_path):
    csv = "external_id,email,country,tags,custom.plan\r\nu1,A@Example.com,Poland,vip,pro\r\nu2,b@example.com,GB,,\r\n"
    response = _upload(staff, csv)
    assert response.status_code == 200
    result = response.context["result"]
    assert (result.ok, result.created, result.rejected) == (True, 2, 0)
    assert not Customer.objects.exists()  # a dry run writes nothing
    html = response.content.decode()
    assert "2</strong> to create" in html and "Import 2 changes" in html
    token = response.context["token"]
    response = staff.post(URL, {"confirm": "1", "token": token, "delimiter": "", "source": "csv:people.csv"})
    assert response.status_code == 302
    u1 = Customer.objects.get(external_id="u1")
    assert (u1.email, u1.country, u1.custom) == ("a@example.com", "PL", {"plan": "pro"})
    assert list(u1.tags.values_list("name", flat=True)) == ["vip"]
    assert not (tmp_path / "imports" / token).exists()


def test_bad_rows_are_listed_with_line_numbers_and_nothing_can_be_confirmed(staff):
    csv = "external_id,email,country\r\nu1,ok@example.com,PL\r\nu2,nope,PL\r\nu3,c@example.com,Atlantis\r\n"
    response = _upload(staff, csv)
    result = response.context["result"]
    assert not result.ok and result.rejected == 2
    html = response.content.decode()
    assert "Nothing will be imported" in html and "Atlantis" in html
    assert {e["line"] for e in result.errors} == {3, 4}
    assert 'name="confirm"' not in html
    assert not Customer.objects.exists()


def test_file_level_errors_are_shown(staff):
    response = _upload(staff, "external_id,email\r\nu1,zoë@example.com\r\n", encoding="latin-1")
    assert response.context["result"].file_error
    assert "errornote" in response.content.decode()
    response = _upload(staff, "external_id,favourite_colour\r\nu1,red\r\n")
    assert "favourite_colour" in response.context["result"].file_error
    response = _upload(staff, "")
    assert "empty" in str(response.context["form"].errors["file"])


@pytest.mark.parametrize("token", ["../../etc/passwd", "admin-123.csv", ""])
def test_confirm_refuses_unknown_tokens(staff, token):
    response = staff.post(URL, {"confirm": "1", "token": token}, follow=True)
    assert "upload it again" in response.content.decode()
    assert not Customer.objects.exists()


def test_marketer_may_import_analyst_may_not(client, marketer, analyst):
    client.force_login(marketer)
    assert client.get(URL).status_code == 200
    client.force_login(analyst)
    assert client.get(URL).status_code == 403


def test_large_file_runs_as_a_background_job(staff, monkeypatch, django_capture_on_commit_callbacks):
    from customers.admin import imports
    from customers.models import Job

    monkeypatch.setattr(imports, "ADMIN_SYNC_BYTES", 10)
    csv = "external_id;email\r\nbig1;big1@example.com\r\nbig2;big2@example.com\r\n"
    with django_capture_on_commit_callbacks(execute=True):
        response = _upload(staff, csv, name="big.csv")
    job = Job.objects.get(kind="import")
    assert response.status_code == 302 and response["Location"].endswith(f"/admin/customers/job/{job.pk}/change/")
    job.refresh_from_db()
    assert job.status == "succeeded", job.errors
    assert set(Customer.objects.values_list("external_id", flat=True)) == {"big1", "big2"}
    assert Customer.objects.get(external_id="big1").source == "csv:big.csv"
    assert staff.get(response["Location"]).status_code == 200

"""End to end with a real worker: large manual member changes in the admin run as a `members` job."""

import io

import pytest
from django.urls import reverse

from customers.models import Job
from segmentation.models import LedgerEntry, Membership, Segment
from segmentation.services import segment_create
from tests.factories import CustomerFactory

from .conftest import wait_for

pytestmark = pytest.mark.integration


def _finished(job_id):
    job = Job.objects.get(pk=job_id)
    return job if job.status in (Job.Status.SUCCEEDED, Job.Status.FAILED) else None


def test_add_all_and_csv_upload_run_on_the_worker(celery_worker_process, client, admin_user, settings):
    settings.TESSERA_MANUAL_INLINE_LIMIT = 2
    log = celery_worker_process["log"]
    Segment.objects.filter(prebuilt=True).delete()
    segment = segment_create(name="Leads", key="leads", kind="static", owner=admin_user)
    pl = CustomerFactory.create_batch(4, country="PL")
    others = [CustomerFactory(country="DE", external_id=f"de-{i}") for i in range(3)]
    client.force_login(admin_user)

    url = reverse("admin:segmentation_segment_members_add", args=[segment.pk])
    response = client.post(url, {"search": {"country": "PL"}}, "application/json")
    assert response.status_code == 202
    job = wait_for(lambda: _finished(response.json()["job"]), what="the search job", log=log)
    assert job.status == Job.Status.SUCCEEDED and job.result["added"] == 4
    assert client.get(response.json()["status_url"]).json()["status"] == "succeeded"

    upload = io.BytesIO(("external_id\n" + "".join(f"{c.external_id}\n" for c in others)).encode())
    upload.name = "members.csv"
    url = reverse("admin:segmentation_segment_members_upload", args=[segment.pk])
    response = client.post(url, {"file": upload})
    assert response.status_code == 202 and response.json()["matched"] == 3
    job = wait_for(lambda: _finished(response.json()["job"]), what="the CSV job", log=log)
    assert job.status == Job.Status.SUCCEEDED and job.result["member_count"] == 7

    assert set(Membership.objects.filter(segment=segment).values_list("customer_id", flat=True)) == {
        c.pk for c in pl + others
    }
    assert set(LedgerEntry.objects.filter(segment=segment).values_list("reason", flat=True)) == {"manual"}
    assert Segment.objects.get(pk=segment.pk).member_count == 7

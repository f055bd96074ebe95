"""Large manual member changes in the admin run as a `members` job (202 + progress + result)."""

import io
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from customers.models import Job
from segmentation import services
from segmentation.models import LedgerEntry, Membership, Segment, Snapshot
from segmentation.services import members as members_service
from tests.factories import CustomerFactory


@pytest.fixture
def low_limit(settings):
    settings.TESSERA_MANUAL_INLINE_LIMIT = 3
    return settings


def _add(client, segment, body):
    return client.post(reverse("admin:segmentation_segment_members_add", args=[segment.pk]), body, "application/json")


def _upload(client, segment, text):
    upload = io.BytesIO(text.encode())
    upload.name = "members.csv"
    return client.post(reverse("admin:segmentation_segment_members_upload", args=[segment.pk]), {"file": upload})


def _members(segment):
    return set(Membership.objects.filter(segment=segment).values_list("customer_id", flat=True))


def _ledger(segment):
    return sorted(
        LedgerEntry.objects.filter(segment=segment).values_list("customer_id", "change", "reason", "detail"),
        key=lambda row: row[0],
    )


def test_add_all_above_the_limit_answers_202_with_a_job(staff, segment, low_limit, django_capture_on_commit_callbacks):
    pl = CustomerFactory.create_batch(5, country="PL")
    CustomerFactory(country="DE")
    services.segment_members_add(segment=segment, customer_ids=[pl[0].pk], reason="manual")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = _add(staff, segment, {"search": {"country": "PL"}})
    assert response.status_code == 202
    assert len(callbacks) == 1
    data = response.json()
    job = Job.objects.get(pk=data["job"])
    assert data["status_url"] == f"/api/jobs/{job.pk}/"
    assert job.kind == "members" and job.status == Job.Status.SUCCEEDED
    assert (job.total, job.progress) == (5, 5)
    assert job.result == {"segment_id": segment.pk, "added": 4, "unchanged": 1, "member_count": 5}
    assert _members(segment) == {c.pk for c in pl}
    segment.refresh_from_db()
    assert segment.member_count == 5
    assert {r[2] for r in _ledger(segment)} == {"manual"}
    # The page polls the REST job detail; the job's creator may read it.
    status = staff.get(data["status_url"]).json()
    assert (status["status"], status["progress"], status["total"]) == ("succeeded", 5, 5)
    assert status["result"]["added"] == 4


def test_the_job_is_enqueued_only_after_commit(staff, segment, low_limit, django_capture_on_commit_callbacks):
    CustomerFactory.create_batch(4, country="PL")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = _add(staff, segment, {"search": {"country": "PL"}})
    assert response.status_code == 202 and len(callbacks) == 1
    job = Job.objects.get(pk=response.json()["job"])
    assert job.status == Job.Status.QUEUED and _members(segment) == set()


def test_selection_at_the_limit_stays_instant(staff, segment, low_limit):
    pl = CustomerFactory.create_batch(3, country="PL")
    response = _add(staff, segment, {"search": {"country": "PL"}})
    assert response.status_code == 200
    assert response.json() == {"added": 3, "unchanged": 0, "member_count": 3}
    assert _members(segment) == {c.pk for c in pl} and not Job.objects.exists()


def test_job_gives_the_same_members_ledger_and_count_as_the_instant_path(admin_user, settings):
    """The set-based job path and the chunked per-id path agree (run on PostgreSQL and SQLite)."""
    people = CustomerFactory.create_batch(12, country="PL")
    CustomerFactory.create_batch(3, country="DE")
    instant = services.segment_create(name="Instant", key="instant", kind="static", owner=admin_user)
    by_job = services.segment_create(name="By job", key="by-job", kind="static", owner=admin_user)
    for seg in (instant, by_job):
        services.segment_members_add(segment=seg, customer_ids=[people[3].pk, people[7].pk], reason="manual")
    services.segment_members_add(segment=instant, customer_ids=[c.pk for c in people], reason="manual")
    # Chunks of 5 rows: three chunk transactions, one of them partly already members.
    settings_chunk = members_service.SET_CHUNK
    members_service.SET_CHUNK = 5
    try:
        job = services.segment_members_job_create(segment=by_job, user=admin_user, search={"country": "PL"})
        result = services.segment_members_job_run(job_id=job.pk)
    finally:
        members_service.SET_CHUNK = settings_chunk
    assert result == {"segment_id": by_job.pk, "added": 10, "unchanged": 2, "member_count": 12}
    instant.refresh_from_db()
    by_job.refresh_from_db()
    assert _members(by_job) == _members(instant)
    assert by_job.member_count == instant.member_count == 12
    assert _ledger(by_job) == _ledger(instant)
    assert by_job.status == Segment.Status.READY
    snapshots = list(Snapshot.objects.filter(segment=by_job).order_by("id").values_list("size", "entered", "reason"))
    # One snapshot for the first two ids, then one per chunk that added someone, sizes running up.
    assert snapshots[0] == (2, 2, "manual")
    assert sum(s[1] for s in snapshots) == 12 and snapshots[-1][0] == 12
    assert [s[0] for s in snapshots] == sorted(s[0] for s in snapshots)
    assert set(LedgerEntry.objects.filter(segment=by_job).values_list("snapshot_id", flat=True)) <= {
        s.pk for s in Snapshot.objects.filter(segment=by_job)
    }
    assert Job.objects.get(pk=job.pk).progress == 12


def test_csv_upload_above_the_limit_keeps_the_unmatched_report(
    staff, segment, low_limit, django_capture_on_commit_callbacks
):
    people = [CustomerFactory(external_id=f"u-{i}") for i in range(5)]
    text = "external_id\r\n" + "".join(f"u-{i}\r\n" for i in range(5)) + "nope\r\n"
    with django_capture_on_commit_callbacks(execute=True):
        response = _upload(staff, segment, text)
    assert response.status_code == 202
    data = response.json()
    assert (data["matched"], data["unmatched_count"]) == (5, 1)
    assert data["unmatched"] == [{"row": 7, "value": "nope", "reason": "no customer with this external_id"}]
    job = Job.objects.get(pk=data["job"])
    assert job.status == Job.Status.SUCCEEDED and job.result["added"] == 5 and job.total == 5
    assert _members(segment) == {c.pk for c in people}


def test_csv_job_chunks_ids_like_the_instant_path(admin_user):
    people = CustomerFactory.create_batch(7)
    seg = services.segment_create(name="Ids", key="ids", kind="static", owner=admin_user)
    services.segment_members_add(segment=seg, customer_ids=[people[0].pk], reason="manual")
    chunk, set_chunk = members_service.IDS_CHUNK, members_service.SET_CHUNK
    members_service.IDS_CHUNK = members_service.SET_CHUNK = 3  # SQLite / PostgreSQL id chunks
    try:
        job = services.segment_members_job_create(segment=seg, user=admin_user, customer_ids=[c.pk for c in people])
        # The ids wait in a file (not in the job's params) that the job deletes when it ends.
        assert "customer_ids" not in job.params and Path(job.params["ids_file"]).exists()
        result = services.segment_members_job_run(job_id=job.pk)
        assert not Path(job.params["ids_file"]).exists()
    finally:
        members_service.IDS_CHUNK, members_service.SET_CHUNK = chunk, set_chunk
    assert (result["added"], result["unchanged"], result["member_count"]) == (6, 1, 7)
    assert _members(seg) == {c.pk for c in people}
    assert Snapshot.objects.filter(segment=seg).count() == 4  # the first id, then three chunks


def test_a_job_runs_once(admin_user, segment):
    CustomerFactory.create_batch(2)
    job = services.segment_members_job_create(segment=segment, user=admin_user, search={})
    assert services.segment_members_job_run(job_id=job.pk)["added"] == 2
    assert services.segment_members_job_run(job_id=job.pk) is None


def test_an_error_is_recorded_on_the_job(admin_user, segment):
    CustomerFactory.create_batch(2)
    job = services.segment_members_job_create(segment=segment, user=admin_user, search={})
    Segment.objects.filter(pk=segment.pk).update(
        kind=Segment.Kind.DYNAMIC, definition={"match": "all", "conditions": []}
    )
    services.segment_members_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert "auto-update" in job.errors[0]["message"]
    assert job.result["added"] == 0 and _members(segment) == set()
    assert not Snapshot.objects.filter(segment=segment).exists()


def test_a_failing_chunk_leaves_earlier_chunks_applied_and_itself_undone(admin_user, segment, monkeypatch):
    people = CustomerFactory.create_batch(6)
    calls = {"n": 0}
    from segmentation.services import recompute  # the chunk imports it at call time

    original = recompute.dependents_reevaluate

    def fail_second(**kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("disk full")
        return original(**kwargs)

    monkeypatch.setattr(recompute, "dependents_reevaluate", fail_second)
    monkeypatch.setattr(members_service, "SET_CHUNK", 3)
    job = services.segment_members_job_create(segment=segment, user=admin_user, search={})
    result = services.segment_members_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED and job.errors == [{"message": "disk full"}]
    assert (job.progress, result["added"], result["member_count"]) == (3, 3, 3)
    assert _members(segment) == {c.pk for c in people[:3]}
    segment.refresh_from_db()
    assert segment.member_count == 3
    assert LedgerEntry.objects.filter(segment=segment).count() == 3
    assert Snapshot.objects.filter(segment=segment).count() == 1
    # Running the same change again adds only the rest.
    again = services.segment_members_job_create(segment=segment, user=admin_user, search={})
    monkeypatch.setattr(recompute, "dependents_reevaluate", original)
    assert services.segment_members_job_run(job_id=again.pk)["added"] == 3
    assert _members(segment) == {c.pk for c in people}


def test_permissions_are_checked_before_a_job_is_made(client, segment, low_limit, django_user_model):
    CustomerFactory.create_batch(5, country="PL")
    viewer = django_user_model.objects.create_user("viewer", password="x", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_segment"))
    client.force_login(viewer)
    assert _add(client, segment, {"search": {"country": "PL"}}).status_code == 403
    assert _upload(client, segment, "external_id\r\nx\r\n").status_code == 403
    assert not Job.objects.exists()


def test_prebuilt_and_dynamic_segments_are_refused(staff, segment, low_limit):
    CustomerFactory.create_batch(5, country="PL")
    Segment.objects.filter(pk=segment.pk).update(prebuilt=True)
    assert _add(staff, segment, {"search": {"country": "PL"}}).status_code == 403
    assert _upload(staff, segment, "external_id\r\nx\r\n").status_code == 403
    dynamic = services.segment_create(name="Dyn", definition={"match": "all", "conditions": []})
    assert _add(staff, dynamic, {"search": {}}).status_code == 404
    assert not Job.objects.exists()


def test_the_members_page_config_and_small_changes_are_unchanged(staff, segment, low_limit):
    a, b = CustomerFactory.create_batch(2)
    response = _add(staff, segment, {"ids": [a.pk, b.pk]})
    assert response.status_code == 200 and response.json() == {"added": 2, "unchanged": 0, "member_count": 2}

"""`recompute_segments` command and the periodic-task registration."""

import json

import pytest
from django.core.management import CommandError, call_command
from django_celery_beat.models import PeriodicTask

from customers.models import Job
from segmentation.models import Membership, Segment
from segmentation.receivers import periodic_tasks_register
from segmentation.services import segment_create
from tests.factories import CustomerFactory

PL = {"match": "all", "conditions": [{"attribute": "country", "operator": "is", "value": "PL"}]}


def test_recompute_all_in_dependency_order(db, capsys):
    segment_create(name="Poles", key="poles", definition=PL)
    segment_create(
        name="On top", key="on-top", definition={"match": "all", "conditions": [{"segment": "poles", "operator": "in"}]}
    )
    customer = CustomerFactory(country="PL")
    call_command("recompute_segments")
    out = capsys.readouterr().out
    assert out.index("poles:") < out.index("on-top:")
    assert "poles: 1 members (+1 / -0)" in out
    assert Membership.objects.filter(segment__key="on-top", customer=customer).exists()
    everyone = Segment.objects.get(key="everyone")
    assert everyone.status == Segment.Status.READY and everyone.member_count == 1
    job = Job.objects.get(kind="recompute")
    assert job.status == Job.Status.SUCCEEDED and job.progress == job.total


def test_recompute_named_keys(db, capsys):
    segment_create(name="Poles", key="poles", definition=PL)
    call_command("recompute_segments", "POLES")
    out = capsys.readouterr().out
    assert "poles: 0 members" in out and "everyone" not in out
    with pytest.raises(CommandError):
        call_command("recompute_segments", "ghost")
    segment_create(name="Static", key="by-hand", kind="static")
    with pytest.raises(CommandError):
        call_command("recompute_segments", "by-hand")


def test_periodic_tasks_are_registered_idempotently(db, settings):
    # Registered after migrate already; again with new intervals, still one row each.
    settings.TESSERA_SWEEP_TIME_MINUTES = 7
    periodic_tasks_register()
    periodic_tasks_register()
    tasks = {t.name: t for t in PeriodicTask.objects.filter(task__startswith="segmentation.")}
    assert set(tasks) == {"Segments: sweep time-dependent", "Segments: sweep all", "Segments: watchdog"}
    sweep = tasks["Segments: sweep time-dependent"]
    assert (sweep.interval.every, sweep.interval.period) == (7, "minutes")
    assert json.loads(sweep.kwargs) == {"scope": "time"}
    assert tasks["Segments: sweep all"].interval.every == 60


def test_prebuilt_dependencies_are_classified_after_migrate(db):
    loyal = Segment.objects.get(key="loyal-customers")
    assert loyal.prebuilt and loyal.status == Segment.Status.PENDING
    assert "orders_count" in loyal.dependencies["attributes"]
    assert loyal.dependencies["time"] is True


def test_sweep_task_reports_through_a_job(db):
    from segmentation.tasks import segments_sweep_task

    Segment.objects.filter(prebuilt=True).exclude(key="everyone").delete()
    CustomerFactory()
    assert segments_sweep_task.delay("all").get() == {"applied": 1}
    job = Job.objects.get(kind="recompute")
    assert (job.status, job.total, job.progress, job.params) == (Job.Status.SUCCEEDED, 1, 1, {"sweep": "all"})
    assert job.result["segments"][0]["segment"] == "everyone"


def test_failing_recompute_task_retries_then_fails_its_job(db, marketer, django_capture_on_commit_callbacks):
    from segmentation.services import segment_recompute_start
    from segmentation.tasks import segment_recompute_task

    broken = segment_create(name="Broken", definition=PL)
    Segment.objects.filter(pk=broken.pk).update(definition={"match": "all", "conditions": [{"bogus": 1}]})
    broken.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        job = segment_recompute_start(segment=broken, user=marketer)
    broken.refresh_from_db()
    job.refresh_from_db()
    # The first attempt failed and scheduled a retry: the segment shows why, the job waits.
    assert broken.status == Segment.Status.FAILED and "bogus" in broken.last_error
    assert broken.retry_count == 1
    assert job.status == Job.Status.RUNNING
    # The last retry gives up: the job fails with the error; other segments were never blocked.
    with pytest.raises(Exception, match="bogus"):  # eager Celery propagates the final error
        segment_recompute_task.apply(args=(broken.pk, broken.version, "manual", job.pk), retries=5)
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED and "bogus" in job.errors[0]["message"]
    assert Segment.objects.get(pk=broken.pk).retry_count == 2


def test_pending_in_background_queues_only_never_computed_segments(db, capsys, django_capture_on_commit_callbacks):
    customer = CustomerFactory(country="PL")
    call_command("recompute_segments", "everyone")
    capsys.readouterr()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        call_command("recompute_segments", "--pending", "--background")
    assert len(callbacks) == 1
    out = capsys.readouterr().out
    assert "Queued 9 segment(s)" in out
    job = Job.objects.filter(kind="recompute").latest("id")
    assert "everyone" not in job.params["segments"] and job.status == Job.Status.SUCCEEDED
    assert not Segment.objects.filter(kind="dynamic", computed_at__isnull=True).exists()
    assert Membership.objects.filter(segment__key="everyone", customer=customer).exists()
    call_command("recompute_segments", "--pending", "--background")
    assert "Nothing to recompute." in capsys.readouterr().out

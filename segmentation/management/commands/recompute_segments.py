"""`python manage.py recompute_segments [KEY ...]`: recompute now, in dependency order."""

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from segmentation.models import Reason, Segment
from segmentation.selectors import segment_get
from segmentation.services import segments_recompute_many
from segmentation.services.jobs import job_create
from segmentation.tasks import segments_recompute_all_task


class Command(BaseCommand):
    help = "Recompute auto-update segments now (all of them, in dependency order, when no key is given)."

    def add_arguments(self, parser):
        parser.add_argument("keys", nargs="*", metavar="KEY", help="Segment keys (any case).")
        parser.add_argument(
            "--pending", action="store_true", help="Only segments never computed yet (used by `make run`)."
        )
        parser.add_argument(
            "--background", action="store_true", help="Queue the work for a Celery worker instead of running it here."
        )

    def handle(self, *args, keys=(), pending=False, background=False, **options):
        if keys:
            segments = []
            for key in keys:
                segment = segment_get(key=key)
                if segment is None:
                    raise CommandError(f"No segment has the key “{key}”.")
                if segment.kind != Segment.Kind.DYNAMIC:
                    raise CommandError(f"“{segment.key}” is {segment.kind}: only auto-update segments are recomputed.")
                segments.append(segment)
        else:
            segments = list(Segment.objects.filter(kind=Segment.Kind.DYNAMIC))
        if pending:
            segments = [s for s in segments if s.computed_at is None]
        if not segments:
            self.stdout.write("Nothing to recompute.")
            return
        job = job_create(params={"segments": [s.key for s in segments], "command": True}, total=len(segments))
        if background:
            keys = [s.key for s in segments]
            transaction.on_commit(lambda: segments_recompute_all_task.delay(job_id=job.pk, keys=keys))
            self.stdout.write(f"Queued {len(segments)} segment(s) for the worker (job {job.pk}).")
            return
        summary = segments_recompute_many(segments=segments, reason=Reason.MANUAL, job_id=job.pk)
        for result in summary["segments"]:
            if result["status"] == "applied":
                line = (
                    f"{result['segment']}: {result['size']} members (+{result['entered']} / -{result['exited']}) "
                    f"in {result['duration_ms']} ms"
                )
                self.stdout.write(self.style.SUCCESS(line))
            elif result["status"] == "failed":
                self.stdout.write(self.style.ERROR(f"{result['segment']}: failed: {result['error']}"))
            else:
                self.stdout.write(f"{result['segment']}: skipped ({result.get('why', '')})")
        failed = sum(r["status"] == "failed" for r in summary["segments"])
        self.stdout.write(f"{summary['applied']} recomputed, {failed} failed (job {job.pk}).")
        if failed:
            raise CommandError(f"{failed} segment(s) failed.")

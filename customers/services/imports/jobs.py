"""Background imports: uploads in storage, a Job, and the task's service."""

from __future__ import annotations

import uuid
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from customers.models import Job

from ..csvio import CsvFileError
from .service import customer_import


def import_upload_store(*, file, max_bytes: int | None = None) -> str:
    """Stream an upload (any binary file object or Django UploadedFile) into storage; returns its path.

    Refuses files over TESSERA_IMPORT_MAX_BYTES (1 GB by default) without keeping a partial copy.
    """
    limit = max_bytes or getattr(settings, "TESSERA_IMPORT_MAX_BYTES", 1024**3)
    folder = Path(settings.MEDIA_ROOT) / "imports" / timezone.now().strftime("%Y-%m-%d")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{uuid.uuid4().hex}.csv"
    size = 0
    chunks = file.chunks() if hasattr(file, "chunks") else iter(lambda: file.read(1024 * 1024), b"")
    try:
        with open(path, "wb") as out:
            for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise CsvFileError(f"The file is larger than the limit of {limit // (1024 * 1024)} MB.")
                out.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return str(path)


def customer_import_start(
    *, upload_path: str, user=None, dry_run: bool = False, delimiter: str | None = None, source: str | None = None
) -> Job:
    """Create an import Job and enqueue customer_import_task once the Job is committed."""
    job = Job.objects.create(
        kind="import",
        created_by=user if getattr(user, "pk", None) else None,
        params={"path": str(upload_path), "dry_run": dry_run, "delimiter": delimiter, "source": source},
    )
    from customers.tasks_import import customer_import_task

    transaction.on_commit(lambda: customer_import_task.delay(job.pk))
    return job


def customer_import_run(*, job_id: int) -> Job | None:
    """Run a queued import Job (the task's body): progress, result, errors and status on the Job.

    The Job is claimed by compare-and-set, so a redelivered task does not import twice.
    """
    claimed = Job.objects.filter(pk=job_id, status=Job.Status.QUEUED).update(
        status=Job.Status.RUNNING, started_at=timezone.now()
    )
    if not claimed:
        return None
    job = Job.objects.get(pk=job_id)
    params = job.params

    def progress(done: int, total: int) -> None:
        Job.objects.filter(pk=job_id).update(progress=done, total=total)

    try:
        result = customer_import(
            path_or_file=params["path"],
            dry_run=bool(params.get("dry_run")),
            delimiter=params.get("delimiter"),
            source=params.get("source"),
            progress=progress,
        )
    except Exception as exc:
        Job.objects.filter(pk=job_id).update(
            status=Job.Status.FAILED,
            finished_at=timezone.now(),
            errors=[{"line": None, "column": None, "message": f"The import stopped unexpectedly: {exc}"}],
        )
        raise
    summary = result.as_dict()
    errors = summary.pop("errors")
    Job.objects.filter(pk=job_id).update(
        status=Job.Status.SUCCEEDED if result.ok else Job.Status.FAILED,
        finished_at=timezone.now(),
        result=summary,
        errors=errors,
    )
    job.refresh_from_db()
    return job

"""The Celery task for large customer imports (re-exported from customers.tasks)."""

from celery import shared_task

from customers.services.csvio import CsvFileError


# A failed import is final (its file stays as uploaded), so no automatic retries; the time limits
# are the project defaults (25/30 min), far above a 1M-row import.
@shared_task(name="customers.customer_import", throws=(CsvFileError,), max_retries=0)
def customer_import_task(job_id: int) -> None:
    from customers.services.imports import customer_import_run

    customer_import_run(job_id=job_id)

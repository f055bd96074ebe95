"""End to end with a real prefork worker: a large CSV import validated with a helper process."""

import io
import re

import pytest
from django.db import connection

from customers.models import Customer, Job
from customers.services.imports import customer_import_start, import_upload_store

from .conftest import wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="helpers serve PostgreSQL imports"),
]


@pytest.mark.worker(pool="prefork", env={"TESSERA_IMPORT_HELPERS": "1", "TESSERA_IMPORT_SEGMENT_BYTES": "2048"})
def test_an_import_job_in_a_prefork_worker_validates_with_a_helper(celery_worker_process, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    rows = "".join(f'w{i},w{i}@example.com,"Name, {i}",vip\n' for i in range(2000))
    path = import_upload_store(file=io.BytesIO(("external_id,email,first_name,tags\n" + rows).encode()))
    job = customer_import_start(upload_path=path)

    def finished():
        current = Job.objects.get(pk=job.pk)
        return current if current.status in (Job.Status.SUCCEEDED, Job.Status.FAILED) else None

    log = celery_worker_process["log"]
    done = wait_for(finished, what="the import job", log=log)
    assert done.status == Job.Status.SUCCEEDED, done.errors
    assert done.result["created"] == 2000 and done.progress == done.total
    assert Customer.objects.count() == 2000
    assert Customer.objects.get(external_id="w1999").first_name == "Name, 1999"
    helped = re.search(r"in (\d+) segments, (\d+) of them by 1 helper processes", log.read_text())
    assert helped, log.read_text()[-3000:]
    assert 0 < int(helped[2]) < int(helped[1])

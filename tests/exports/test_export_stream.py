"""Large files stream through the writer's buffer; the heartbeat thread publishes progress."""

import http.server
import threading
import time

import pytest

from customers.models import Customer
from segmentation.models import ExportRun

from .conftest import add_members
from .helpers import content, make_export, run_now


@pytest.mark.django_db(transaction=True)
def test_file_larger_than_the_buffer(segment):
    long_name = "x" * 120
    Customer.objects.bulk_create(
        Customer(external_id=f"big-{i:05d}", first_name=long_name, last_name=long_name) for i in range(6000)
    )
    add_members(segment, Customer.objects.filter(external_id__startswith="big-"))
    run = run_now(make_export(segment, columns=["external_id", "first_name", "last_name"]))
    assert run.status == "succeeded", run.error
    data = content(run)
    assert len(data) > 1.3 * 2**20 and run.rows_written == 6000
    lines = data.split(b"\r\n")
    assert lines[1] == b"big-00000," + long_name.encode() + b"," + long_name.encode()
    assert lines[6000].startswith(b"big-05999,")


class Slow(http.server.BaseHTTPRequestHandler):
    seen = []

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(2)
        # What the run row says while its worker is still waiting for this answer.
        type(self).seen.append(ExportRun.objects.values_list("started_at", "heartbeat_at").get())
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.mark.django_db(transaction=True)
def test_heartbeat_continues_during_a_slow_delivery(members, segment, settings):
    settings.TESSERA_WEBHOOK_ALLOW_PRIVATE = True
    settings.TESSERA_EXPORT_STALE_SECONDS = 2  # beats every 0.5 s
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/"
        export = make_export(segment, destination_kind="webhook", destination={"url": url, "secret": "s" * 20})
        run = run_now(export)
    finally:
        server.shutdown()
    assert run.status == ExportRun.Status.SUCCEEDED, run.error
    started, beat = Slow.seen[0]
    assert (beat - started).total_seconds() >= 1  # beats landed while the POST was waiting


@pytest.mark.django_db(transaction=True)
def test_mandatory_counts_of_a_direct_run_outside_a_transaction(members, segment):
    """A full PostgreSQL run with mandatory attributes counts members in the COPY's own snapshot."""
    run = run_now(make_export(segment, columns=["external_id"], mandatory=["email"]))
    assert run.status == "succeeded", run.error
    assert content(run) == b"external_id\r\na1\r\nc3\r\n"
    assert (run.members_total, run.rows_written, run.rows_skipped) == (3, 2, 1)

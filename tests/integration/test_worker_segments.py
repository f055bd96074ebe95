"""End to end with a real worker: an event sent to the tracking API moves a customer into a segment."""

import base64
import json
import urllib.request

import pytest

from customers.models import Source
from segmentation.models import LedgerEntry, Membership, Segment
from segmentation.services import segment_create

from .conftest import wait_for

pytestmark = pytest.mark.integration

BUYERS = {"match": "all", "conditions": [{"event": "Order Completed"}]}


def _track(url: str, write_key: str, payload: dict) -> int:
    token = base64.b64encode(f"{write_key}:".encode()).decode()
    request = urllib.request.Request(
        f"{url}/v1/track",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Basic {token}"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status


def test_tracked_event_moves_customer_into_segment(celery_worker_process, live_server):
    log = celery_worker_process["log"]
    # Only this test's segment: the pre-built ones would be recomputed too and slow the worker down.
    Segment.objects.filter(prebuilt=True).delete()
    segment = segment_create(name="Buyers", definition=BUYERS)  # enqueued to the broker on commit
    wait_for(
        lambda: Segment.objects.get(pk=segment.pk).status == Segment.Status.READY,
        what="the first recompute by the worker",
        log=log,
    )
    source = Source.objects.create(name="Web shop")
    status = _track(
        live_server.url,
        source.write_key,
        {"userId": "buyer-1", "event": "Order Completed", "properties": {"revenue": 42}},
    )
    assert status == 200
    member = wait_for(
        lambda: Membership.objects.filter(segment=segment, customer__external_id="buyer-1").first(),
        what="the membership change",
        log=log,
    )
    entry = LedgerEntry.objects.get(segment=segment, customer_id=member.customer_id)
    assert (entry.change, entry.reason) == ("entered", "event")
    assert entry.detail["event"] == "Order Completed"
    assert Segment.objects.get(pk=segment.pk).member_count == 1

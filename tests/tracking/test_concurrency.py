"""Concurrent requests for the same new profile (decisions 13: unique constraint + retry)."""

import json
import threading

import pytest
from django.db import connection
from django.test import Client

from customers.models import Customer, CustomerIdentity, Event
from tests.factories import SourceFactory


@pytest.mark.django_db(transaction=True)
def test_concurrent_first_messages_create_one_profile_per_id():
    source = SourceFactory()
    barrier = threading.Barrier(6)
    statuses = []

    def worker(n):
        try:
            batch = [{"type": "track", "anonymousId": f"anon-{i}", "event": f"E{n}"} for i in range(20)]
            batch += [{"type": "track", "userId": f"user-{i}", "event": f"E{n}"} for i in range(20)]
            body = json.dumps({"writeKey": source.write_key, "batch": batch})
            barrier.wait()
            statuses.append(Client().post("/v1/batch", data=body, content_type="application/json").status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 6
    assert CustomerIdentity.objects.count() == 20
    assert Customer.objects.count() == 40
    assert Event.objects.count() == 6 * 40


@pytest.mark.django_db(transaction=True)
def test_concurrent_logins_merge_the_anonymous_profile_once():
    source = SourceFactory()
    anon_batch = [{"type": "track", "anonymousId": f"a{i}", "event": "Browse"} for i in range(10)]
    Client().post(
        "/v1/batch", data=json.dumps({"writeKey": source.write_key, "batch": anon_batch}), content_type="text/plain"
    )
    Customer.objects.create(external_id="u1")
    barrier = threading.Barrier(5)
    statuses = []

    def worker(n):
        try:
            batch = [{"type": "identify", "anonymousId": f"a{i}", "userId": "u1"} for i in range(10)]
            batch.append({"type": "track", "userId": "u1", "event": f"Login {n}"})
            body = json.dumps({"writeKey": source.write_key, "batch": batch[n:] + batch[:n]})
            barrier.wait()
            statuses.append(Client().post("/v1/batch", data=body, content_type="application/json").status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 5
    user = Customer.objects.get()
    assert user.external_id == "u1"
    assert Event.objects.filter(customer=user).count() == 15
    assert CustomerIdentity.objects.filter(customer=user).count() == 10

import base64
import gzip
import json

import pytest
from django.test import Client

from customers.models import Customer, CustomerIdentity, Event
from tests.factories import SourceFactory


@pytest.fixture
def source(db):
    return SourceFactory(name="Web")


@pytest.fixture
def send(source):
    """POST a tracking body; returns (status, parsed JSON). Body writeKey is the default auth."""
    client = Client()

    def _send(path, body, *, key=None, auth=None, raw=None, gzip_body=False, encoding=None, query="", **headers):
        if raw is None:
            if isinstance(body, dict) and auth is None and key is not False and "writeKey" not in body:
                body = {**body, "writeKey": key or source.write_key}
            raw = json.dumps(body).encode()
        if gzip_body:
            raw = gzip.compress(raw)
            encoding = encoding or "gzip"
        if auth is not None:
            headers["HTTP_AUTHORIZATION"] = "Basic " + base64.b64encode(f"{auth}:".encode()).decode()
        if encoding:
            headers["HTTP_CONTENT_ENCODING"] = encoding
        content_type = headers.pop("content_type", "application/json")
        response = client.post(f"{path}{query}", data=raw, content_type=content_type, **headers)
        data = json.loads(response.content) if response.content else None
        return response.status_code, data

    return _send


def stored_state():
    """Everything a refused request must leave untouched."""
    return (
        list(Customer.objects.order_by("pk").values()),
        list(Event.objects.order_by("pk").values()),
        list(CustomerIdentity.objects.order_by("pk").values("customer_id", "kind", "value")),
    )

"""The REST API against its own OpenAPI schema.

- the schema is valid and complete (every /api/ operation documents the error envelope);
- schemathesis fuzzes every operation through the Django WSGI app with an admin token, with
  schema-conforming and schema-violating input: no answer is a 5xx, and every 4xx carries the
  error envelope with a readable `message` (decisions 9).

Examples are bounded (`FUZZ_EXAMPLES`, lower than the hypothesis profile) so the whole file runs
in a few minutes per database; set TESSERA_FUZZ_EXAMPLES to dig deeper locally.
"""

import json
import os

import pytest
import schemathesis
from django.core import signals
from django.core.management import call_command
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from config.wsgi import application
from tests.factories import CustomerFactory, EventFactory, SourceFactory, TagFactory

FUZZ_EXAMPLES = int(os.environ.get("TESSERA_FUZZ_EXAMPLES", "12"))
ERROR_CODES = {"400", "401", "403"}
# Endpoints this file holds to full conformance (documented status codes, content types and
# response bodies); every other /api/ operation is fuzzed for 5xx and unreadable 4xx answers.
CONFORMANT = ("/api/",)


def _schema_dict(tmp_path) -> dict:
    out = tmp_path / "schema.json"
    call_command("spectacular", "--format", "openapi-json", "--file", str(out), "--validate", "--fail-on-warn")
    return json.loads(out.read_text())


@pytest.mark.django_db
def test_schema_is_valid_and_documents_errors(tmp_path):
    schema = _schema_dict(tmp_path)
    paths = schema["paths"]
    for expected in (
        "/api/customers/",
        "/api/customers/{external_id}/",
        "/api/customers/{external_id}/events/",
        "/api/customers/{external_id}/segments/",
        "/api/events/",
        "/api/attributes/{key}/",
        "/api/tags/",
        "/api/imports/",
        "/api/jobs/{id}/",
    ):
        assert expected in paths, expected
    for path, operations in paths.items():
        if not path.startswith(CONFORMANT):
            continue
        for method, operation in operations.items():
            if method == "parameters":
                continue
            codes = set(operation["responses"])
            assert ERROR_CODES <= codes, (method, path, codes)
            if "{" in path or method == "get":
                assert "404" in codes, (method, path)
            error = operation["responses"]["400"]["content"]["application/json"]["schema"]
            assert error == {"$ref": "#/components/schemas/Error"}
    assert "202" in paths["/api/imports/"]["post"]["responses"]
    assert "409" in paths["/api/attributes/{key}/"]["delete"]["responses"]


def test_docs_are_served_without_a_cdn(admin_api):
    html = admin_api.get("/api/docs/").content.decode()
    assert "swagger-ui" in html
    assert "cdn" not in html.lower() and "unpkg" not in html.lower()


@pytest.fixture
def api_data(db, admin_user):
    """A few rows so fuzzed lookups sometimes hit real objects."""
    source = SourceFactory(name="Web")
    for i in range(3):
        customer = CustomerFactory(external_id=f"user-{i}", tags=[f"tag{i}"], custom={"plan": "gold"})
        EventFactory(customer=customer, source=source)
    TagFactory(name="spare")
    return Token.objects.create(user=admin_user).key


def _one_savepoint_per_request(app):
    """Each request in its own savepoint, rolled back on a 5xx: on PostgreSQL a failed statement
    would otherwise abort the test transaction and turn every later request into a 500 too."""

    def wrapped(environ, start_response):
        status = []

        def capture(code, headers, exc_info=None):
            status.append(int(code.split()[0]))
            return start_response(code, headers, exc_info)

        with transaction.atomic():
            response = app(environ, capture)
            try:
                body = b"".join(response)
            finally:
                response.close()
            if status and status[0] >= 500:
                transaction.set_rollback(True)
        return [body]

    return wrapped


@pytest.fixture
def wsgi_app():
    # Like Django's test client: a real WSGI request would otherwise close the test
    # transaction's connection at request start and finish.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield _one_savepoint_per_request(application)
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def api_schema(db, wsgi_app, api_data):
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", wsgi_app)
    schema.config.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
        max_examples=FUZZ_EXAMPLES,
        with_security_parameters=False,
    )
    # The coverage phase enumerates every boundary combination of every parameter (hundreds of
    # requests per operation); bounded random fuzzing keeps CI within budget.
    schema.config.phases.update(phases=["examples", "fuzzing"])
    return schema


def readable_error(response, case) -> None:
    """A 4xx answers with the envelope and a message a person can read."""
    if not 400 <= response.status_code < 500:
        return
    where = f"{case.method} {case.formatted_path} -> {response.status_code}"
    content_type = {k.lower(): v for k, v in response.headers.items()}.get("content-type", [""])
    assert content_type[0].startswith("application/json"), where
    body = json.loads(response.content)
    assert isinstance(body.get("code"), str) and body["code"], where
    assert isinstance(body.get("message"), str) and len(body["message"].strip()) >= 5, where
    assert isinstance(body.get("errors"), list), where


fuzz = schemathesis.pytest.from_fixture("api_schema")
if os.environ.get("TESSERA_FUZZ_ONLY"):  # a path regex, to dig into one endpoint locally
    fuzz = fuzz.include(path_regex=os.environ["TESSERA_FUZZ_ONLY"])


@fuzz.parametrize()
@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture],
)
def test_api_fuzz(case, api_data):
    response = case.call(headers={"Authorization": f"Token {api_data}"})
    checks = [not_a_server_error]
    if case.path.startswith(CONFORMANT):
        checks += [status_code_conformance, content_type_conformance, response_schema_conformance]
    case.validate_response(response, checks=checks)
    readable_error(response, case)


@pytest.mark.django_db
def test_cursor_pages_have_no_count_and_number_pages_do(tmp_path):
    components = _schema_dict(tmp_path)["components"]["schemas"]
    assert "count" in components["PaginatedCustomerList"]["properties"]
    for name in ("PaginatedEventList", "PaginatedLedgerEntryList"):
        assert "count" not in components[name]["properties"], name
        assert "cursor" in str(components[name]["properties"]["next"])
    assert "memberships" in components["PaginatedLedgerEntryList"]["properties"]

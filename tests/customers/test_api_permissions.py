import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.factories import CustomerFactory, EventFactory, TagFactory

pytestmark = pytest.mark.django_db

READS = [
    "/api/customers/",
    "/api/customers/c1/",
    "/api/customers/c1/events/",
    "/api/customers/c1/segments/",
    "/api/events/",
    "/api/attributes/",
    "/api/attributes/email/",
    "/api/tags/",
]


@pytest.fixture
def data():
    customer = CustomerFactory(external_id="c1")
    EventFactory(customer=customer)
    return {"tag": TagFactory(name="t1")}


def _writes(data):
    return [
        ("post", "/api/customers/", {"external_id": "new"}),
        ("patch", "/api/customers/c1/", {"city": "Oslo"}),
        ("delete", "/api/customers/c1/", None),
        ("post", "/api/tags/", {"name": "fresh"}),
        ("patch", f"/api/tags/{data['tag'].pk}/", {"name": "renamed"}),
        ("post", "/api/attributes/", {"key": "plan", "type": "string"}),
    ]


def test_unauthenticated_is_401_with_envelope(data):
    response = APIClient().get("/api/customers/")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated" and response.json()["message"]


def test_token_auth(data, admin_user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=admin_user).key}")
    assert client.get("/api/customers/").status_code == 200


def test_nobody_is_refused_reads_and_writes(nobody_api, data):
    for url in READS:
        response = nobody_api.get(url)
        assert response.status_code == 403, url
        assert response.json()["message"]
    for method, url, body in _writes(data):
        assert getattr(nobody_api, method)(url, body, format="json").status_code == 403, url


def test_analyst_reads_but_cannot_write(analyst_api, data):
    for url in READS:
        assert analyst_api.get(url).status_code == 200, url
    for method, url, body in _writes(data):
        assert getattr(analyst_api, method)(url, body, format="json").status_code == 403, url


def test_marketer_writes_customers_and_tags_not_attributes(marketer_api, data):
    for url in READS:
        assert marketer_api.get(url).status_code == 200, url
    expected = {
        "/api/customers/": 201,
        "/api/customers/c1/": None,  # patch 200 then delete 204
        "/api/tags/": 201,
        "/api/attributes/": 403,
    }
    for method, url, body in _writes(data):
        status = getattr(marketer_api, method)(url, body, format="json").status_code
        if url == "/api/customers/c1/":
            assert status in (200, 204), (method, url)
        elif url in expected:
            assert status == expected[url], (method, url)
        else:
            assert status == 200, (method, url)


def test_options_and_head_answer_for_readers(analyst_api, data):
    for url in READS:
        assert analyst_api.options(url).status_code == 200, url
        assert analyst_api.head(url).status_code == 200, url


def test_unknown_api_paths_answer_with_the_envelope(admin_api):
    response = admin_api.get("/api/nothing/here/")
    assert response.status_code == 404 and response.json()["code"] == "not_found"
    assert admin_api.get("/api/customers").status_code == 301  # APPEND_SLASH still works

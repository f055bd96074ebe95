import datetime as dt

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from customers.models import AttributeDefinition, AuditEntry, Customer, CustomerIdentity, Event
from customers.services import customer_create
from tests.factories import CustomerFactory, EventFactory, SourceFactory

pytestmark = pytest.mark.django_db

LIST = reverse("admin:customers_customer_changelist")
ADD = reverse("admin:customers_customer_add")


def change_url(customer):
    return reverse("admin:customers_customer_change", args=[customer.pk])


@pytest.fixture
def staff(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def people():
    ann = customer_create(
        external_id="ann-1", email="ann@example.com", first_name="Ann", last_name="Nowak", country="PL",
        gender="female", source="MailChimp", tags=["vip"], custom={"plan": "pro"},
    )  # fmt: skip
    bob = customer_create(external_id="bob-2", email="bob@example.co.uk", first_name="Bob", country="GB", tags=["b2b"])
    anon = Customer.objects.create()
    CustomerIdentity.objects.create(customer=anon, kind="anonymous", value="anon-xyz")
    return ann, bob, anon


def _rows(response):
    return [str(c) for c in response.context["cl"].result_list]


def test_changelist_renders_with_filters_and_few_queries(staff, people, django_assert_max_num_queries):
    CustomerFactory.create_batch(3, country="PL", source="MailChimp", tags=["vip"])
    with django_assert_max_num_queries(16):
        response = staff.get(LIST)
    assert response.status_code == 200
    html = response.content.decode()
    for text in ("ann-1", "ann@example.com", "Ann Nowak", "vip", "anonymous", "Poland (PL)", "MailChimp"):
        assert text in html
    assert 'href="/admin/customers/customer/import/"' in html
    # Each filter choice once, however many profiles share it.
    assert html.count("Poland (PL)") == html.count(">MailChimp<") == 1


@pytest.mark.parametrize(
    "query, expected",
    [
        ({"q": "ann@"}, ["ann-1"]),
        ({"q": "nowak"}, ["ann-1"]),
        ({"q": "bob-2"}, ["bob-2"]),
        ({"country": "GB"}, ["bob-2"]),
        ({"gender": "female"}, ["ann-1"]),
        ({"source": "MailChimp"}, ["ann-1"]),
        ({"identified": "no"}, ["id:3"]),
    ],
)
def test_search_and_filters(staff, people, query, expected):
    ann, bob, anon = people
    expected = [f"id:{anon.pk}" if e == "id:3" else e for e in expected]
    assert _rows(staff.get(LIST, query)) == expected


def test_tag_and_seen_range_filters(staff, people):
    ann, bob, anon = people
    tag = ann.tags.get()
    assert _rows(staff.get(LIST, {"tag": tag.pk})) == ["ann-1"]
    Customer.objects.filter(pk=bob.pk).update(last_seen_at=timezone.now() - dt.timedelta(hours=1))
    Customer.objects.filter(pk=ann.pk).update(last_seen_at=timezone.now() - dt.timedelta(days=40))
    today = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    week = {"last_seen_at__gte": str(today - dt.timedelta(days=7)), "last_seen_at__lt": str(today + dt.timedelta(1))}
    assert _rows(staff.get(LIST, week)) == ["bob-2"]


def test_profile_page_shows_attributes_timeline_and_system_attributes(staff, people):
    ann, *_ = people
    source = SourceFactory(name="Web shop")
    now = timezone.now()
    for i in range(30):
        EventFactory(customer=ann, source=source, name="Page Viewed", timestamp=now - dt.timedelta(hours=i + 2),
                     properties={"title": f"Page {i}"}, context={"device": {"type": "mobile"}})  # fmt: skip
    EventFactory(customer=ann, name="Order Completed", timestamp=now - dt.timedelta(minutes=5),
                 properties={"revenue": 120.5, "currency": "PLN", "products": [{"name": "Mug"}]})  # fmt: skip
    response = staff.get(change_url(ann))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Event timeline" in html and "31 events" in html
    assert "120.5 PLN · 1 item(s)" in html and "Page 0" in html and "Page 29" not in html  # 25 per page
    assert "Page 1 of 2" in html
    assert '"plan": "pro"' in html and 'value="vip"' in html
    assert response.context["adminform"].form.initial["country"] == "PL"
    assert response.context["original"].orders_count == 1
    assert "UTC" in html  # times carry their zone (decisions 36)
    page2 = staff.get(change_url(ann), {"events_page": 2}).content.decode()
    assert "Page 29" in page2


def test_profile_page_shows_memberships_and_history(staff, people):
    from segmentation.models import LedgerEntry, Membership, Segment

    ann, *_ = people
    seg = Segment.objects.create(key="vip-buyers", name="VIP buyers", kind="static")
    at = timezone.now()
    Membership.objects.create(segment=seg, customer=ann, entered_at=at)
    LedgerEntry.objects.create(segment=seg, customer=ann, change="entered", at=at, reason="manual")
    html = staff.get(change_url(ann)).content.decode()
    assert "VIP buyers" in html and "vip-buyers" in html and "Entered" in html and "Manual" in html


def _form_data(**overrides):
    data = {
        "external_id": "new-1", "email": "", "phone": "", "first_name": "", "last_name": "", "gender": "",
        "birth_date": "", "country": "", "city": "", "language": "", "source": "", "custom": "{}", "tag_names": "",
    }  # fmt: skip
    data.update(overrides)
    return data


def test_add_normalises_and_goes_through_services(staff):
    data = _form_data(email=" New@Example.COM ", country="Germany", custom='{"score": "12"}', tag_names="vip, Beta")
    response = staff.post(ADD, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    c = Customer.objects.get(external_id="new-1")
    assert (c.email, c.country, c.custom) == ("new@example.com", "DE", {"score": 12})
    assert sorted(c.tags.values_list("name", flat=True)) == ["Beta", "vip"]
    assert AttributeDefinition.objects.get(key="custom.score").type == "number"


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("email", "not-an-email", "not a valid email"),
        ("country", "Atlantis", "not a known country"),
        ("custom", '["a"]', "JSON object"),
        ("custom", '{"bad key": 1}', "not a valid custom attribute key"),
        ("birth_date", "31/02/2000", "valid date"),
    ],
)
def test_add_with_bad_value_shows_form_error_and_writes_nothing(staff, field, value, message):
    response = staff.post(ADD, _form_data(**{field: value}))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert field in errors and message in str(errors[field])
    assert not Customer.objects.exists()


def test_edit_custom_attribute_must_fit_registered_type(staff, people):
    ann, *_ = people
    AttributeDefinition.objects.filter(key="custom.plan").update(type="number")
    response = staff.post(change_url(ann), _form_data(external_id="ann-1", custom='{"plan": "gold"}'))
    assert response.status_code == 200
    assert "registered as number" in str(response.context["adminform"].form.errors["custom"])


def test_edit_updates_profile_tags_and_removes_custom_keys(staff, people):
    ann, *_ = people
    before = Customer.objects.get(pk=ann.pk).updated_at
    data = _form_data(external_id="ann-1", email="ann@new.example", first_name="Anna", country="pl",
                      custom='{"loyalty": 5}', tag_names="newsletter")  # fmt: skip
    response = staff.post(change_url(ann), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    ann.refresh_from_db()
    assert (ann.email, ann.first_name, ann.last_name, ann.country) == ("ann@new.example", "Anna", None, "PL")
    assert ann.custom == {"loyalty": 5}
    assert list(ann.tags.values_list("name", flat=True)) == ["newsletter"]
    assert ann.updated_at > before


def test_duplicate_external_id_is_a_form_error(staff, people):
    response = staff.post(ADD, _form_data(external_id="ann-1"))
    assert response.status_code == 200
    assert "external_id" in response.context["adminform"].form.errors


def _action(client, action, customers, **extra):
    data = {"action": action, ACTION_CHECKBOX_NAME: [c.pk for c in customers], **extra}
    return client.post(LIST, data)


def test_bulk_add_tag_asks_for_the_tag_then_applies(staff, people):
    ann, bob, anon = people
    response = _action(staff, "add_tag", [bob, anon])
    assert response.status_code == 200
    assert "Add a tag" in response.content.decode() and "2 customers" in response.content.decode()
    response = _action(staff, "add_tag", [bob, anon], tag="Spring-2026", apply="1")
    assert response.status_code == 302
    assert set(Customer.objects.filter(tags__name="Spring-2026").values_list("pk", flat=True)) == {bob.pk, anon.pk}
    # Tags are case-insensitive: adding "VIP" to Ann reuses "vip".
    _action(staff, "add_tag", [ann], tag="VIP", apply="1")
    assert list(ann.tags.values_list("name", flat=True)) == ["vip"]


def test_bulk_remove_tag_and_bad_tag_name(staff, people):
    ann, bob, anon = people
    response = _action(staff, "remove_tag", [ann, bob], tag="a,b", apply="1")
    assert response.status_code == 200 and "may not contain a comma" in response.content.decode()
    _action(staff, "remove_tag", [ann, bob], tag="VIP", apply="1")
    assert not ann.tags.exists()
    assert list(bob.tags.values_list("name", flat=True)) == ["b2b"]


def test_bulk_tag_across_filtered_selection(staff, people):
    ann, bob, anon = people
    data = {"action": "add_tag", ACTION_CHECKBOX_NAME: [ann.pk], "select_across": "1", "tag": "gb", "apply": "1"}
    staff.post(LIST + "?country=GB", data)
    assert list(Customer.objects.filter(tags__name="gb").values_list("pk", flat=True)) == [bob.pk]


def test_delete_is_gdpr_erasure(staff, people, admin_user):
    ann, *_ = people
    EventFactory.create_batch(3, customer=ann)
    url = reverse("admin:customers_customer_delete", args=[ann.pk])
    page = staff.get(url).content.decode()
    assert "3 events" in page
    response = staff.post(url, {"post": "yes"})
    assert response.status_code == 302
    assert not Customer.objects.filter(pk=ann.pk).exists()
    assert not Event.objects.filter(customer_id=ann.pk).exists()
    audit = AuditEntry.objects.get(action="customer_erased")
    assert (audit.object_id, audit.actor) == (ann.pk, admin_user)
    assert "ann" not in str(audit.details)


def test_bulk_delete_erases_each_with_an_audit_entry(staff, people):
    ann, bob, anon = people
    response = _action(staff, "delete_selected", [ann, bob], post="yes")
    assert response.status_code == 302
    assert list(Customer.objects.values_list("pk", flat=True)) == [anon.pk]
    assert AuditEntry.objects.filter(action="customer_erased").count() == 2


def test_marketer_can_erase_without_event_permissions(client, marketer, people):
    ann, *_ = people
    EventFactory(customer=ann)
    client.force_login(marketer)
    response = client.post(reverse("admin:customers_customer_delete", args=[ann.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert not Customer.objects.filter(pk=ann.pk).exists()


def test_analyst_sees_but_cannot_change(client, analyst, people):
    ann, *_ = people
    client.force_login(analyst)
    assert client.get(LIST).status_code == 200
    assert client.get(change_url(ann)).status_code == 200
    assert client.post(change_url(ann), _form_data(external_id="x")).status_code == 403
    assert client.get(reverse("admin:customers_customer_import")).status_code == 403


def test_export_csv_of_selected_customers(staff, people):
    ann, bob, anon = people
    response = _action(staff, "export_csv", [ann, anon])
    assert response["Content-Type"].startswith("text/csv")
    body = b"".join(response.streaming_content).decode("utf-8-sig")
    lines = body.split("\r\n")
    header = lines[0].split(",")
    assert header[:3] == ["external_id", "email", "phone"] and "custom.plan" in header and "tags" in header
    assert len([line for line in lines if line]) == 3
    ann_row = dict(zip(header, lines[1].split(","), strict=True))
    assert (ann_row["email"], ann_row["country"], ann_row["custom.plan"], ann_row["tags"]) == (
        "ann@example.com", "PL", "pro", "vip",
    )  # fmt: skip


def test_export_escapes_formulas(staff):
    c = CustomerFactory(first_name="=HYPERLINK(1)")
    response = _action(staff, "export_csv", [c])
    assert "'=HYPERLINK(1)" in b"".join(response.streaming_content).decode("utf-8-sig")


def test_list_is_most_recently_seen_first_and_never_seen_last(staff, people):
    ann, bob, anon = people
    now = timezone.now()
    Customer.objects.filter(pk=ann.pk).update(last_seen_at=now - dt.timedelta(days=3))
    Customer.objects.filter(pk=anon.pk).update(last_seen_at=now - dt.timedelta(hours=1))
    assert _rows(staff.get(LIST)) == [f"id:{anon.pk}", "ann-1", "bob-2"]


def _counts(queries):
    return [q["sql"] for q in queries if q["sql"].startswith("SELECT COUNT(*)")]


def test_a_search_that_fits_on_one_page_is_not_counted_again(staff, people):
    with CaptureQueriesContext(connection) as queries:
        response = staff.get(LIST, {"q": "nowak"})
    assert _rows(response) == ["ann-1"]
    assert response.context["cl"].result_count == 1
    assert "1 result" in response.content.decode()
    # Only the unfiltered total of the paginator's "Show all" link, none for the search itself.
    assert not [sql for sql in _counts(queries) if "LIKE" in sql]


def test_pages_of_a_long_list_are_the_ordered_profiles(staff, people):
    CustomerFactory.create_batch(60, last_name="Kowalski")
    expected = [str(c) for c in Customer.objects.filter(last_name="Kowalski").order_by("-id")]
    with CaptureQueriesContext(connection) as queries:
        first = staff.get(LIST, {"q": "kowalski"})
    assert first.context["cl"].result_count == 60
    assert _counts(queries)  # more than a page: counted as usual
    second = staff.get(LIST, {"q": "kowalski", "p": 2})
    assert _rows(first) + _rows(second) == expected
    assert second.context["cl"].result_count == 60

"""Trait mapping and identity resolution (decisions 13-16)."""

import pytest
from django.utils import timezone

from customers.models import AttributeDefinition, Customer, CustomerIdentity, Event
from customers.services.identity import traits_split
from customers.signals import customers_merged, events_ingested, profile_changed
from segmentation.models import LedgerEntry, Membership, Reason, Segment
from tests.factories import CustomerFactory, TagFactory


# ------------------------------------------------------------------------------
# traits_split (pure)
# ------------------------------------------------------------------------------
def test_traits_split_maps_profile_attributes_and_flattens_the_rest():
    profile, custom = traits_split(
        {
            "email": "A@b.co",
            "firstName": "Camel",
            "first_name": "Snake",
            "lastName": "Last",
            "birthday": "1990-02-03",
            "country": "Germany",
            "address": {"country": "PL", "city": "Kraków", "street": "Rynek 1"},
            "city": "Top",
            "plan": {"tier": "gold", "seats": 3},
            "interests": ["a", "b"],
            "gone": None,
        }
    )
    assert profile == {
        "email": "A@b.co",
        "first_name": "Snake",
        "last_name": "Last",
        "birth_date": "1990-02-03",
        "country": "PL",
        "city": "Kraków",
    }
    assert custom == {"address.street": "Rynek 1", "plan.tier": "gold", "plan.seats": 3, "interests": ["a", "b"]}


def test_traits_split_null_snake_case_falls_back_to_camel_case():
    profile, custom = traits_split({"first_name": None, "firstName": "Ann", "birth_date": None, "birthday": None})
    assert profile == {"first_name": "Ann"}
    assert custom == {}


# ------------------------------------------------------------------------------
# Traits through identify
# ------------------------------------------------------------------------------
pytestmark = pytest.mark.django_db


def test_identify_normalises_traits_and_registers_custom_types(send):
    status, body = send(
        "/v1/identify",
        {
            "userId": "u1",
            "traits": {
                "email": "  Ann@Example.COM ",
                "gender": "F",
                "address": {"country": "UK"},
                "score": 12,
                "tags": ["x", "y"],
                "vip": True,
            },
        },
    )
    assert (status, body) == (200, {"success": True})
    c = Customer.objects.get()
    assert (c.email, c.gender, c.country) == ("ann@example.com", "female", "GB")
    assert c.custom == {"score": 12, "tags": ["x", "y"], "vip": True}
    types = dict(AttributeDefinition.objects.filter(kind="custom").values_list("key", "type"))
    assert types == {"custom.score": "number", "custom.tags": "list", "custom.vip": "boolean"}


def test_bad_trait_values_are_dropped_with_a_warning(send):
    send("/v1/identify", {"userId": "u1", "traits": {"email": "ok@example.com", "score": 1}})
    status, body = send(
        "/v1/identify", {"userId": "u1", "traits": {"email": "not an email", "country": "Atlantis", "score": "high"}}
    )
    assert status == 200 and body["success"] is True
    assert {w["field"] for w in body["warnings"]} == {"traits.email", "traits.country", "traits.custom.score"}
    c = Customer.objects.get()
    assert (c.email, c.country, c.custom) == ("ok@example.com", None, {"score": 1})


def test_null_trait_is_ignored_and_values_apply_in_arrival_order(send):
    batch = [
        {"type": "identify", "userId": "u1", "traits": {"city": "A", "plan": "free"}},
        {"type": "identify", "userId": "u1", "traits": {"city": "B", "plan": None}},
    ]
    send("/v1/batch", {"batch": batch})
    c = Customer.objects.get()
    assert (c.city, c.custom) == ("B", {"plan": "free"})


def test_updated_at_changes_only_when_attributes_change(send):
    send("/v1/identify", {"userId": "u1", "traits": {"city": "A"}})
    first = Customer.objects.get().updated_at
    send("/v1/identify", {"userId": "u1", "traits": {"city": "A"}})
    send("/v1/track", {"userId": "u1", "event": "E"})
    assert Customer.objects.get().updated_at == first
    send("/v1/identify", {"userId": "u1", "traits": {"city": "B"}})
    assert Customer.objects.get().updated_at > first


def test_write_key_source_is_not_the_source_attribute(send):
    send("/v1/identify", {"userId": "u1", "traits": {"city": "A"}})
    assert Customer.objects.get().source is None
    send("/v1/identify", {"userId": "u1", "traits": {"source": "newsletter"}})
    assert Customer.objects.get().source == "newsletter"


def test_email_never_identifies(send):
    CustomerFactory(external_id="known", email="ann@example.com")
    send("/v1/identify", {"anonymousId": "a1", "traits": {"email": "ann@example.com"}})
    assert Customer.objects.count() == 2


# ------------------------------------------------------------------------------
# Anonymous profiles and merges
# ------------------------------------------------------------------------------
def test_anonymous_activity_then_login_merges_into_the_user(send):
    send("/v1/page", {"anonymousId": "a1", "name": "Home", "timestamp": "2026-01-01T00:00:00Z"})
    send("/v1/identify", {"anonymousId": "a1", "traits": {"city": "Anon City", "plan": "free"}})
    user = CustomerFactory(external_id="u1", city="Real City", custom={})
    send("/v1/track", {"anonymousId": "a1", "userId": "u1", "event": "Signed In"})
    assert list(Customer.objects.values_list("pk", flat=True)) == [user.pk]
    user.refresh_from_db()
    assert user.city == "Real City"  # survivor wins
    assert user.custom == {"plan": "free"}  # gaps filled
    assert sorted(Event.objects.filter(customer=user).values_list("name", flat=True)) == ["Page Viewed", "Signed In"]
    assert CustomerIdentity.objects.get().customer_id == user.pk
    assert user.first_seen_at.isoformat().startswith("2026-01-01")
    # Later anonymous messages resolve to the user.
    send("/v1/track", {"anonymousId": "a1", "event": "Later"})
    assert Event.objects.filter(customer=user).count() == 3


def test_first_login_claims_the_anonymous_profile(send):
    send("/v1/track", {"anonymousId": "a1", "event": "E"})
    anon = Customer.objects.get()
    send("/v1/identify", {"anonymousId": "a1", "userId": "u1"})
    assert list(Customer.objects.values_list("pk", "external_id")) == [(anon.pk, "u1")]


def test_merging_twice_is_harmless(send):
    send("/v1/track", {"anonymousId": "a1", "event": "E"})
    CustomerFactory(external_id="u1")
    for _ in range(2):
        assert send("/v1/identify", {"anonymousId": "a1", "userId": "u1"})[0] == 200
    assert Customer.objects.count() == 1
    assert Event.objects.get().customer.external_id == "u1"
    assert CustomerIdentity.objects.count() == 1


def test_two_identified_profiles_never_merge_through_an_anonymous_id(send):
    send("/v1/identify", {"anonymousId": "shared-device", "userId": "u1"})
    send("/v1/track", {"anonymousId": "shared-device", "userId": "u2", "event": "E"})
    assert set(Customer.objects.values_list("external_id", flat=True)) == {"u1", "u2"}
    assert Event.objects.get().customer.external_id == "u2"
    assert CustomerIdentity.objects.get(value="shared-device").customer.external_id == "u1"


def test_merge_combines_tags_ids_and_static_memberships_with_merged_ledger(send):
    send("/v1/track", {"anonymousId": "a1", "event": "E"})
    anon = Customer.objects.get()
    anon.tags.add(TagFactory(name="from-anon"))
    user = CustomerFactory(external_id="u1", tags=["own"])
    only_anon = Segment.objects.create(key="only-anon", name="Only anon", kind="static", member_count=1)
    both = Segment.objects.create(key="both", name="Both", kind="static", member_count=2)
    now = timezone.now()
    Membership.objects.create(segment=only_anon, customer=anon, entered_at=now)
    Membership.objects.create(segment=both, customer=anon, entered_at=now)
    Membership.objects.create(segment=both, customer=user, entered_at=now)
    LedgerEntry.objects.create(segment=only_anon, customer=anon, change="entered", at=now, reason=Reason.MANUAL)

    send("/v1/identify", {"anonymousId": "a1", "userId": "u1"})

    assert not Customer.objects.filter(pk=anon.pk).exists()
    user.refresh_from_db()
    assert set(user.tags.values_list("name", flat=True)) == {"own", "from-anon"}
    assert set(Membership.objects.values_list("segment__key", "customer_id")) == {
        ("only-anon", user.pk),
        ("both", user.pk),
    }
    both.refresh_from_db()
    assert both.member_count == 1
    ledger = list(LedgerEntry.objects.order_by("id").values_list("segment__key", "customer_id", "change", "reason"))
    assert ("only-anon", user.pk, "entered", "manual") in ledger  # history moved, nothing lost
    merged = [row for row in ledger if row[3] == "merged"]
    assert sorted(merged) == sorted(
        [("only-anon", user.pk, "exited", "merged"), ("only-anon", user.pk, "entered", "merged"),
         ("both", user.pk, "exited", "merged")]
    )  # fmt: skip


def test_alias_keeps_the_new_user_id_and_the_old_one_still_resolves(send):
    send("/v1/identify", {"userId": "old", "traits": {"city": "Paris"}})
    send("/v1/track", {"userId": "old", "event": "Before"})
    send("/v1/alias", {"previousId": "old", "userId": "new"})
    c = Customer.objects.get()
    assert (c.external_id, c.city) == ("new", "Paris")
    assert CustomerIdentity.objects.filter(kind="alias", value="old", customer=c).exists()
    send("/v1/track", {"userId": "old", "event": "After"})
    assert Customer.objects.count() == 1
    assert Event.objects.filter(customer=c).count() == 2


def test_alias_merges_two_identified_profiles(send):
    send("/v1/identify", {"userId": "old", "traits": {"city": "Paris", "plan": "a"}})
    send("/v1/identify", {"userId": "new", "traits": {"city": "Rome"}})
    send("/v1/alias", {"previousId": "old", "userId": "new"})
    c = Customer.objects.get()
    assert (c.external_id, c.city, c.custom) == ("new", "Rome", {"plan": "a"})


def test_alias_of_unknown_previous_id_records_it(send):
    send("/v1/alias", {"previousId": "never-seen", "userId": "u1"})
    send("/v1/track", {"userId": "never-seen", "event": "E"})
    assert Customer.objects.get().external_id == "u1"
    assert Event.objects.get().customer.external_id == "u1"


def test_alias_from_anonymous_id_merges_the_anonymous_profile(send):
    send("/v1/track", {"anonymousId": "a1", "event": "E"})
    send("/v1/identify", {"userId": "u1"})
    send("/v1/alias", {"previousId": "a1", "userId": "u1"})
    assert Customer.objects.get().external_id == "u1"
    assert Event.objects.get().customer.external_id == "u1"


def test_one_batch_with_login_in_the_middle(send):
    batch = [
        {"type": "page", "anonymousId": "a1"},
        {"type": "identify", "anonymousId": "a1", "userId": "u1", "traits": {"city": "X"}},
        {"type": "track", "anonymousId": "a1", "event": "E"},
        {"type": "track", "userId": "u1", "event": "F"},
    ]
    send("/v1/batch", {"batch": batch})
    c = Customer.objects.get()
    assert (c.external_id, c.city) == ("u1", "X")
    assert Event.objects.filter(customer=c).count() == 3


def test_signals_after_commit(send, django_capture_on_commit_callbacks):
    got = []
    handlers = {
        "events": lambda sender, **kw: got.append(("events", kw["customer_ids"], kw["event_names"])),
        "profile": lambda sender, **kw: got.append(("profile", kw["customer_ids"], kw["reason"])),
        "merged": lambda sender, **kw: got.append(("merged", kw["survivor_id"], kw["merged_id"])),
    }
    events_ingested.connect(handlers["events"])
    profile_changed.connect(handlers["profile"])
    customers_merged.connect(handlers["merged"])
    try:
        with django_capture_on_commit_callbacks(execute=True):
            send("/v1/track", {"anonymousId": "a1", "event": "E"})
        anon = Customer.objects.get().pk
        user = CustomerFactory(external_id="u1", city=None)
        got.clear()
        with django_capture_on_commit_callbacks(execute=True):
            send("/v1/identify", {"anonymousId": "a1", "userId": "u1", "traits": {"city": "X"}})
        assert ("merged", user.pk, anon) in got
        assert ("profile", [user.pk], "profile_change") in got
        got.clear()
        with django_capture_on_commit_callbacks(execute=True):
            send("/v1/track", {"userId": "u1", "event": "Order Completed"})
        assert got == [("events", [user.pk], ["Order Completed"])]
    finally:
        events_ingested.disconnect(handlers["events"])
        profile_changed.disconnect(handlers["profile"])
        customers_merged.disconnect(handlers["merged"])


def test_identify_traits_in_context_like_rudderstack(send):
    send(
        "/v1/identify", {"userId": "u1", "context": {"traits": {"city": "Ctx", "plan": "p"}}, "traits": {"city": "Top"}}
    )
    c = Customer.objects.get()
    assert (c.city, c.custom) == ("Top", {"plan": "p"})

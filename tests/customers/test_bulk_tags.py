"""customers_tag_add / customers_tag_remove: set-based bulk tagging with one signal after commit."""

import pytest

from customers.models import Customer, Tag
from customers.services.tags import CHUNK, customers_tag_add, customers_tag_remove
from customers.signals import profile_changed
from tests.factories import CustomerFactory, TagFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def received():
    calls = []

    def receiver(sender, customer_ids, reason, **kwargs):
        calls.append((sorted(customer_ids), reason))

    profile_changed.connect(receiver)
    yield calls
    profile_changed.disconnect(receiver)


def _tagged(name):
    return set(Customer.objects.filter(tags__name__iexact=name).values_list("pk", flat=True))


def test_add_reuses_existing_tag_case_insensitively_and_reports_only_changes(
    received, django_capture_on_commit_callbacks
):
    vip = TagFactory(name="vip")
    ann, bob, cid = CustomerFactory.create_batch(3)
    ann.tags.add(vip)
    before = Customer.objects.get(pk=bob.pk).updated_at
    with django_capture_on_commit_callbacks(execute=True):
        changed = customers_tag_add(customers=Customer.objects.all(), name="VIP")
    assert changed == sorted([bob.pk, cid.pk])
    assert _tagged("vip") == {ann.pk, bob.pk, cid.pk}
    assert Tag.objects.count() == 1
    assert Customer.objects.get(pk=bob.pk).updated_at > before
    assert received == [(sorted([bob.pk, cid.pk]), "profile_change")]


def test_add_creates_a_missing_tag_and_keeps_other_tags(received, django_capture_on_commit_callbacks):
    ann = CustomerFactory()
    ann.tags.add(TagFactory(name="b2b"))
    with django_capture_on_commit_callbacks(execute=True):
        customers_tag_add(customers=Customer.objects.filter(pk=ann.pk), name="Spring 2026")
    assert set(ann.tags.values_list("name", flat=True)) == {"b2b", "Spring 2026"}


def test_remove_touches_only_profiles_that_had_the_tag(received, django_capture_on_commit_callbacks):
    vip, b2b = TagFactory(name="vip"), TagFactory(name="b2b")
    ann, bob = CustomerFactory.create_batch(2)
    ann.tags.add(vip, b2b)
    bob.tags.add(b2b)
    bob_updated = Customer.objects.get(pk=bob.pk).updated_at
    with django_capture_on_commit_callbacks(execute=True):
        changed = customers_tag_remove(customers=Customer.objects.all(), name="VIP")
    assert changed == [ann.pk]
    assert list(ann.tags.values_list("name", flat=True)) == ["b2b"]
    assert Customer.objects.get(pk=bob.pk).updated_at == bob_updated
    assert received == [([ann.pk], "profile_change")]


def test_remove_of_an_unknown_tag_changes_nothing(received, django_capture_on_commit_callbacks):
    CustomerFactory()
    with django_capture_on_commit_callbacks(execute=True):
        assert customers_tag_remove(customers=Customer.objects.all(), name="nope") == []
    assert received == [] and not Tag.objects.exists()


def test_more_customers_than_one_chunk(received, django_capture_on_commit_callbacks):
    total = CHUNK + 7
    Customer.objects.bulk_create([Customer(external_id=f"c{i}") for i in range(total)])
    with django_capture_on_commit_callbacks(execute=True):
        assert len(customers_tag_add(customers=Customer.objects.all(), name="all")) == total
    assert len(_tagged("all")) == total
    with django_capture_on_commit_callbacks(execute=True):
        assert (
            len(customers_tag_remove(customers=Customer.objects.filter(external_id__startswith="c1"), name="all")) > 0
        )
    assert _tagged("all") == set(Customer.objects.exclude(external_id__startswith="c1").values_list("pk", flat=True))

import pytest

from customers.models import Customer, Job
from customers.services.attributes import attribute_register, attribute_update_type
from customers.services.recoerce import attribute_recoerce
from customers.signals import profile_changed
from segmentation.models import Segment
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


def segment(key, definition, status=Segment.Status.READY):
    return Segment.objects.create(key=key, name=key, kind=Segment.Kind.DYNAMIC, definition=definition, status=status)


def test_number_to_string_and_back_counts_unknowns():
    attribute = attribute_register(key="code", type_="number")
    a = CustomerFactory(custom={"code": 5, "other": 1})
    b = CustomerFactory(custom={"code": 7.5})
    CustomerFactory(custom={})
    attribute_update_type(attribute=attribute, type_="string")
    job = attribute_recoerce(attribute_id=attribute.pk)
    assert job.kind == "attribute_recoerce" and job.status == Job.Status.SUCCEEDED
    assert job.result == {"converted": 2, "unknown": 0, "unchanged": 0, "failed_segments": []}
    a.refresh_from_db()
    b.refresh_from_db()
    assert a.custom == {"code": "5", "other": 1}
    assert b.custom == {"code": "7.5"}

    c = CustomerFactory(custom={"code": "abc"})
    attribute_update_type(attribute=attribute, type_="number")
    job = attribute_recoerce(attribute_id=attribute.pk)
    assert job.result["converted"] == 2 and job.result["unknown"] == 1
    assert job.total == job.progress == 3
    c.refresh_from_db()
    a.refresh_from_db()
    assert c.custom == {} and a.custom == {"code": 5, "other": 1}


def test_unchanged_values_keep_updated_at():
    attribute = attribute_register(key="when", type_="date")
    customer = CustomerFactory(custom={"when": "2026-01-02"})
    before = Customer.objects.get(pk=customer.pk).updated_at
    attribute_update_type(attribute=attribute, type_="datetime")
    job = attribute_recoerce(attribute_id=attribute.pk)
    customer.refresh_from_db()
    assert customer.custom == {"when": "2026-01-02T00:00:00.000000Z"}
    assert customer.updated_at > before
    attribute.type = "datetime"
    job = attribute_recoerce(attribute_id=attribute.pk)
    assert job.result["unchanged"] == 1


def test_segments_that_no_longer_validate_are_failed():
    attribute = attribute_register(key="score", type_="number")
    bad = segment("high score", {"match": "all", "conditions": [
        {"attribute": "custom.score", "operator": "at_least", "value": 10}]})  # fmt: skip
    fine = segment("has score", {"match": "all", "conditions": [
        {"attribute": "custom.score", "operator": "has_any_value"}]})  # fmt: skip
    other = segment("poles", {"match": "all", "conditions": [
        {"attribute": "country", "operator": "is", "value": "PL"}]})  # fmt: skip
    attribute_update_type(attribute=attribute, type_="string")
    job = attribute_recoerce(attribute_id=attribute.pk)
    assert job.result["failed_segments"] == ["high score"]
    bad.refresh_from_db()
    fine.refresh_from_db()
    other.refresh_from_db()
    assert bad.status == Segment.Status.FAILED and "custom.score is now string" in bad.last_error
    assert fine.status == other.status == Segment.Status.READY


def test_profile_changed_after_commit(django_capture_on_commit_callbacks):
    attribute = attribute_register(key="n", type_="number")
    changed = CustomerFactory(custom={"n": 1})
    received = []

    def listener(sender, customer_ids, reason, **kwargs):
        received.append((list(customer_ids), reason))

    profile_changed.connect(listener)
    try:
        attribute.type = "string"
        attribute.save()
        with django_capture_on_commit_callbacks(execute=True):
            attribute_recoerce(attribute_id=attribute.pk)
    finally:
        profile_changed.disconnect(listener)
    assert received == [([changed.pk], "profile_change")]


def test_missing_or_builtin_attribute_is_a_no_op():
    assert attribute_recoerce(attribute_id=987654) is None

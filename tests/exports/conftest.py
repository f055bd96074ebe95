"""Fixtures for export tests: a static segment with hand-made members, quick retry settings."""

import datetime as dt

import pytest
from django.utils import timezone

from segmentation.models import Membership, Segment
from tests.factories import CustomerFactory

ENTERED = dt.datetime(2026, 5, 1, 8, 30, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def export_settings(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.TESSERA_EXPORT_RETRY_BACKOFF = 0
    settings.TESSERA_EXPORT_ATTEMPTS = 2
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    return settings


def add_members(segment, customers, entered_at=ENTERED):
    Membership.objects.bulk_create([Membership(segment=segment, customer=c, entered_at=entered_at) for c in customers])
    Segment.objects.filter(pk=segment.pk).update(member_count=Membership.objects.filter(segment=segment).count())


@pytest.fixture
def segment(db):
    return Segment.objects.create(key="vip", name="VIP", kind=Segment.Kind.STATIC, status=Segment.Status.READY)


@pytest.fixture
def members(segment):
    customers = [
        CustomerFactory(external_id="a1", email="ann@example.com", first_name="Ann", country="PL"),
        CustomerFactory(external_id="b2", email=None, first_name="Bob", country="GB"),
        CustomerFactory(external_id="c3", email="cy@example.com", first_name=None, country=None),
    ]
    add_members(segment, customers)
    return customers


@pytest.fixture
def frozen_now():
    return timezone.now().replace(microsecond=0)

import pytest
from django.contrib.auth.models import Group

from customers.roles import roles_sync

pytestmark = pytest.mark.django_db


def _codenames(role):
    return set(Group.objects.get(name=role).permissions.values_list("content_type__app_label", "codename"))


def test_roles_exist_after_migrate():
    assert set(Group.objects.values_list("name", flat=True)) >= {"Marketer", "Analyst", "Developer"}


def test_marketer_manages_customers_tags_and_segments_but_not_sources():
    perms = _codenames("Marketer")
    for action in ("add", "change", "delete", "view"):
        assert ("customers", f"{action}_customer") in perms
        assert ("customers", f"{action}_tag") in perms
        assert ("segmentation", f"{action}_segment") in perms
    assert ("customers", "view_source") in perms
    assert ("customers", "change_source") not in perms
    assert ("customers", "view_event") in perms
    assert ("customers", "change_event") not in perms


def test_analyst_is_read_only():
    perms = _codenames("Analyst")
    assert ("customers", "view_customer") in perms and ("segmentation", "view_segment") in perms
    assert all(codename.startswith("view_") for _, codename in perms)


def test_developer_manages_sources_and_tokens_and_reads_the_rest():
    perms = _codenames("Developer")
    for action in ("add", "change", "delete", "view"):
        assert ("customers", f"{action}_source") in perms
        assert ("authtoken", f"{action}_token") in perms
    assert ("customers", "view_customer") in perms
    assert ("customers", "change_customer") not in perms
    assert ("segmentation", "change_segment") not in perms


def test_user_in_role_gets_the_permissions(marketer, analyst):
    assert marketer.has_perm("customers.change_customer")
    assert marketer.has_perm("segmentation.add_segment")
    assert not analyst.has_perm("customers.change_customer")
    assert analyst.has_perm("customers.view_customer")


def test_sync_is_idempotent_and_repairs_drift():
    group = Group.objects.get(name="Analyst")
    group.permissions.clear()
    roles_sync()
    roles_sync()
    assert Group.objects.filter(name="Analyst").count() == 1
    assert ("customers", "view_customer") in _codenames("Analyst")

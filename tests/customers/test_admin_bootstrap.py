import io
import re

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

pytestmark = pytest.mark.django_db


def _run():
    out = io.StringIO()
    call_command("bootstrap_admin", stdout=out)
    return out.getvalue()


def test_creates_superuser_with_printed_random_password():
    output = _run()
    password = re.search(r"password: (\S+)", output).group(1)
    user = User.objects.get(username="admin")
    assert user.is_superuser and user.is_staff
    assert len(password) >= 12 and user.check_password(password)


def test_second_run_prints_nothing_secret_and_keeps_the_password():
    first = re.search(r"password: (\S+)", _run()).group(1)
    second = _run()
    assert second.strip() == "admin user exists"
    assert User.objects.get(username="admin").check_password(first)
    assert User.objects.count() == 1


def test_any_existing_superuser_counts(admin_user):
    admin_user.username = "root"
    admin_user.save()
    assert _run().strip() == "admin user exists"
    assert not User.objects.filter(username="admin").exists()


def test_existing_plain_user_named_admin_is_not_promoted(django_user_model):
    django_user_model.objects.create_user(username="admin", password="x")
    with pytest.raises(CommandError, match="not a superuser"):
        _run()
    assert not django_user_model.objects.get(username="admin").is_superuser
    out = io.StringIO()
    call_command("bootstrap_admin", "--username", "root", stdout=out)
    assert django_user_model.objects.get(username="root").is_superuser

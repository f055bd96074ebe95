"""Shared fixtures: a standing cast of users and roles, API clients, frozen `now`."""

import datetime as dt
import os

import pytest
from django.contrib.auth.models import Group, User
from hypothesis import HealthCheck, settings
from rest_framework.test import APIClient

settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
settings.register_profile(
    "dev", max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

NOW = dt.datetime(2026, 6, 15, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def now():
    return NOW


def _user(username, role=None, **extra):
    user = User.objects.create_user(username=username, password="pw", email=f"{username}@example.com", **extra)
    if role:
        user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def admin_user(db):
    return _user("admin", is_staff=True, is_superuser=True)


@pytest.fixture
def marketer(db):
    return _user("marketer", "Marketer", is_staff=True)


@pytest.fixture
def analyst(db):
    return _user("analyst", "Analyst", is_staff=True)


@pytest.fixture
def developer(db):
    return _user("developer", "Developer", is_staff=True)


@pytest.fixture
def nobody(db):
    return _user("nobody")


def _client(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def admin_api(admin_user):
    return _client(admin_user)


@pytest.fixture
def marketer_api(marketer):
    return _client(marketer)


@pytest.fixture
def analyst_api(analyst):
    return _client(analyst)


@pytest.fixture
def nobody_api(nobody):
    return _client(nobody)


# ------------------------------------------------------------------------------
# Browser tests: Debian's headless Chromium driven by Playwright.
# Skipped with a visible reason when Chromium is missing, unless TESSERA_REQUIRE_BROWSER=1
# (set by .ci/run), which turns the skip into a failure (decisions 47).
# ------------------------------------------------------------------------------
CHROMIUM = os.environ.get("TESSERA_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(CHROMIUM):
        message = f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("TESSERA_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-background-networking", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def admin_page(page, live_server, admin_user):
    """A browser page logged into the admin as a superuser."""
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "pw")
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")
    return page

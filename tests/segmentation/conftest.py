"""Fixtures shared by the segmentation tests: a logged-in admin client and a static segment."""

import pytest

from segmentation import services


@pytest.fixture
def staff(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def segment(admin_user):
    """An empty static ("hand picked") segment owned by the admin."""
    return services.segment_create(name="Hand picked", key="hand-picked", kind="static", owner=admin_user)

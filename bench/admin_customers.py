"""Benchmark: the customer list of the admin on the profiles already in the database.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/import_bench .venv/bin/python bench/admin_customers.py

Fill the database first, e.g. `bench/import_customers.py --rows 1000000 --keep`. Renders the
changelist (default order, a search for one profile, a search for a common name, a country filter,
a later page) through Django's test client as a superuser, three times each, and prints the
machine, the number of profiles and the seconds of every render. Nothing is written except the
`bench-admin` user.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
os.environ.setdefault("DJANGO_DEBUG", "false")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402

from customers.models import Customer  # noqa: E402

LIST = "/admin/customers/customer/"
PAGES = ["", "?q=user12345", "?q=Nowak", "?country=PL", "?p=100"]
REPEAT = 3


def main() -> None:
    setup_test_environment()
    settings.ALLOWED_HOSTS = ["*"]
    user, _ = get_user_model().objects.get_or_create(
        username="bench-admin", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    print(
        f"CPUs: {os.cpu_count()}, {platform.platform()}, Python {platform.python_version()}, "
        f"database: {connection.vendor}; {Customer.objects.count():,} profiles"
    )
    for page in PAGES:
        seconds = []
        for _ in range(REPEAT):
            started = time.perf_counter()
            response = client.get(LIST + page)
            seconds.append(time.perf_counter() - started)
            if response.status_code != 200:
                raise SystemExit(f"{LIST + page}: HTTP {response.status_code}")
        print(f"{LIST + page:45} " + " ".join(f"{s:.2f} s" for s in seconds))


if __name__ == "__main__":
    main()

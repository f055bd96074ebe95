"""A real Celery worker for integration tests: the test settings without eager execution.

Started by tests as `celery -A config worker` with DJANGO_SETTINGS_MODULE=config.settings.test_worker,
DATABASE_URL pointing at the test database (pytest-django's `test_<name>` on PostgreSQL, the
file DATA_DIR/test.sqlite3 on SQLite) and the same REDIS_URL / TESSERA_DATA_DIR as the tests.
"""

from .test import *  # noqa: F401,F403

CELERY_TASK_ALWAYS_EAGER = False
CELERY_TASK_EAGER_PROPAGATES = False
# The worker reads the test database as it is: no test-database name mangling.
DATABASES["default"].pop("TEST", None)  # noqa: F405

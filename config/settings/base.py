"""Settings shared by every environment.

Everything comes from the environment (django-environ). With nothing set, Tessera runs on the
embedded default: SQLite in ./data and a Celery broker on the filesystem (no server needed).
Set DATABASE_URL=postgres://... and REDIS_URL=redis://... for production-grade backends.
"""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent
env = environ.Env()
env.read_env(str(BASE_DIR / ".env"), overwrite=False) if (BASE_DIR / ".env").exists() else None

DATA_DIR = Path(env.str("TESSERA_DATA_DIR", default=str(BASE_DIR / "data")))
DATA_DIR.mkdir(parents=True, exist_ok=True)

# ------------------------------------------------------------------------------
# GENERAL  https://docs.djangoproject.com/en/5.2/ref/settings/
# ------------------------------------------------------------------------------
DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="insecure-local-key-change-me")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
TIME_ZONE = env.str("DJANGO_TIME_ZONE", default="UTC")
LANGUAGE_CODE = "en-us"
USE_I18N = True
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

# ------------------------------------------------------------------------------
# DATABASES  https://docs.djangoproject.com/en/5.2/ref/databases/
# ------------------------------------------------------------------------------
SQLITE_PATH = DATA_DIR / "tessera.sqlite3"
DATABASES = {"default": env.db_url("DATABASE_URL", default=f"sqlite:///{SQLITE_PATH}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL + busy timeout so the web server, worker and beat can share the file (decisions 46).
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
    # The events' covering index INCLUDEs revenue on PostgreSQL; SQLite builds it without the
    # extra column, which is all the embedded default needs, so the warning is only noise.
    SILENCED_SYSTEM_CHECKS = ["models.W040"]
DATABASES["default"]["ATOMIC_REQUESTS"] = False
IS_POSTGRES = DATABASES["default"]["ENGINE"].startswith("django.db.backends.postgresql")

# ------------------------------------------------------------------------------
# APPS
# ------------------------------------------------------------------------------
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "import_export",
    "django_celery_beat",
    "customers",
    "segmentation",
    "personalization",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Serves static files (admin, vendored front-end libraries, the tracking SDK) under gunicorn.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(env.str("DJANGO_MEDIA_ROOT", default=str(DATA_DIR / "media")))
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

# ------------------------------------------------------------------------------
# CACHE / CELERY  https://docs.celeryq.dev/en/stable/userguide/configuration.html
# ------------------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
    CELERY_BROKER_URL = REDIS_URL
    CELERY_RESULT_BACKEND = REDIS_URL
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    _broker_dir = DATA_DIR / "broker"
    for _sub in ("out", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "out"),
        "data_folder_out": str(_broker_dir / "out"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
    CELERY_RESULT_BACKEND = None
CELERY_TIMEZONE = TIME_ZONE
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_TIME_LIMIT = 30 * 60
CELERY_TASK_SOFT_TIME_LIMIT = 25 * 60
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TASK_IGNORE_RESULT = True
# Task modules outside the `tasks.py` that autodiscovery loads.
CELERY_IMPORTS = ["customers.tasks_import", "segmentation.tasks_exports"]

# ------------------------------------------------------------------------------
# REST FRAMEWORK  https://www.django-rest-framework.org/api-guide/settings/
# ------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["customers.api.permissions.StrictModelPermissions"],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "customers.api.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "customers.api.schema.AutoSchema",
    "EXCEPTION_HANDLER": "customers.api.errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Tessera API",
    "DESCRIPTION": "Customer profiles, events, segments and exports.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

# ------------------------------------------------------------------------------
# TESSERA
# ------------------------------------------------------------------------------
TESSERA_SWEEP_TIME_MINUTES = env.int("TESSERA_SWEEP_TIME_MINUTES", default=15)
TESSERA_SWEEP_ALL_MINUTES = env.int("TESSERA_SWEEP_ALL_MINUTES", default=60)
# Segments a sweep recomputes at once on PostgreSQL (one connection each; 1 = one after another).
TESSERA_SWEEP_CONCURRENCY = env.int("TESSERA_SWEEP_CONCURRENCY", default=2)
TESSERA_EXPORT_RETENTION_DAYS = env.int("TESSERA_EXPORT_RETENTION_DAYS", default=30)
TESSERA_EXPORT_ATTEMPTS = env.int("TESSERA_EXPORT_ATTEMPTS", default=3)
TESSERA_EXPORT_RETRY_BACKOFF = env.int("TESSERA_EXPORT_RETRY_BACKOFF", default=5)
TESSERA_EXPORT_STALE_SECONDS = env.int("TESSERA_EXPORT_STALE_SECONDS", default=300)
TESSERA_EXPORT_QUEUED_TIMEOUT = env.int("TESSERA_EXPORT_QUEUED_TIMEOUT", default=3600)
# Server folders export destinations may write under; empty = any folder the worker can write.
TESSERA_EXPORT_FOLDER_ROOTS = env.list("TESSERA_EXPORT_FOLDER_ROOTS", default=[])
# Manual segments: "add all results" and CSV uploads above this many customers run as a job.
TESSERA_MANUAL_INLINE_LIMIT = env.int("TESSERA_MANUAL_INLINE_LIMIT", default=20_000)
TESSERA_IMPORT_MAX_BYTES = env.int("TESSERA_IMPORT_MAX_BYTES", default=1024 * 1024 * 1024)
# CSV imports on PostgreSQL: helper processes that validate segments of a large file alongside the
# importing process (0: validate in one process), and the segment size. Files under two segments
# are validated in one process.
TESSERA_IMPORT_HELPERS = env.int("TESSERA_IMPORT_HELPERS", default=1)
TESSERA_IMPORT_SEGMENT_BYTES = env.int("TESSERA_IMPORT_SEGMENT_BYTES", default=4 * 1024 * 1024)
# PostgreSQL: an import creating at least this many profiles, into a table holding at most a quarter
# as many, builds the profiles' indexes after the rows instead of row by row; the tables are locked
# for readers while it writes (customers/services/imports/indexes.py). 0 turns it off.
TESSERA_IMPORT_INDEX_REBUILD_ROWS = env.int("TESSERA_IMPORT_INDEX_REBUILD_ROWS", default=100_000)
# Messages per second per write key on the tracking API; 0 turns the limit off.
TESSERA_TRACKING_RATE_LIMIT = env.int("TESSERA_TRACKING_RATE_LIMIT", default=0)
# Event messages go to the inbox and a worker processes them (decisions 23); False processes
# every message inside the request instead (no worker needed for tracking).
TESSERA_TRACKING_INBOX = env.bool("TESSERA_TRACKING_INBOX", default=True)
TESSERA_WEBHOOK_ALLOW_PRIVATE = env.bool("TESSERA_WEBHOOK_ALLOW_PRIVATE", default=False)
EMAIL_BACKEND = env.str("DJANGO_EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env.str("DJANGO_DEFAULT_FROM_EMAIL", default="tessera@localhost")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("DJANGO_LOG_LEVEL", default="INFO")},
}

"""Settings for the test suite: SQLite by default, Postgres when DATABASE_URL is set."""

import os
from pathlib import Path

from django_bridge.sqlite import SQLITE_OPTIONS

BASE_DIR = Path(__file__).resolve().parent
SECRET_KEY = "tests-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "tests.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_bridge",
    "tests.testapp",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
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
STATIC_URL = "static/"

if os.environ.get("DATABASE_URL"):
    import dj_database_url

    DATABASES = {"default": dj_database_url.parse(os.environ["DATABASE_URL"])}
else:
    # A file, not memory: the worker's threads (and worker processes started by tests) must
    # see the test's rows. One file per test session, inherited by its subprocesses through
    # the environment, so parallel sessions never share a database.
    TEST_DB = os.environ.setdefault("AUTOMATION_TEST_DB", str(BASE_DIR / f".test-db-{os.getpid()}.sqlite3"))
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": TEST_DB,
            "OPTIONS": SQLITE_OPTIONS,
            "TEST": {"NAME": TEST_DB},
        }
    }

AUTOMATION = {
    "HEARTBEAT_TIMEOUT": 2.0,
    # The outbox sweep (a safety net) every second, so the tests of lost dispatches stay short.
    "EVENT_SWEEP_INTERVAL": 1.0,
    # The reconciler's passes every second too (they leave rows changed within RECONCILE_GRACE,
    # 300 s, alone, so they repair nothing the tests did not set up).
    "RECONCILE_INTERVAL": 1.0,
    # The HTTP tests' workflows (the guide's StateZero examples); not an auto-discovered module name.
    "WORKFLOW_MODULES": ["tests.testapp.action_workflows"],
    # The test environment's dev server registers them: the suite runs with them published.
    "SEARCH_ATTRIBUTES": True,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # Steps and services of tests/ that fail on purpose: one line each, no traceback (the
    # library's own line for a step attempt; temporalio's duplicate with its traceback dropped).
    # Failures raised anywhere else keep their tracebacks.
    "filters": {"expected_failures": {"()": "facade.testing.ExpectedFailureFilter", "paths": [BASE_DIR]}},
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "django_temporal_automation": {"handlers": ["console"], "level": "WARNING", "filters": ["expected_failures"]},
        "temporalio.activity": {"filters": ["expected_failures"]},
    },
}

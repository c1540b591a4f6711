"""Settings of the example project: the guide's workflows behind a small Django site.

Local development defaults (DEBUG, a fixed secret key, SQLite); the environment overrides what
a deployment changes: DJANGO_SECRET_KEY, DJANGO_DEBUG, DJANGO_ALLOWED_HOSTS, DATABASE_URL, and
the Temporal connection (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, ... see django_bridge/conf.py).
"""

import os
from pathlib import Path

from django_bridge.sqlite import SQLITE_OPTIONS

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-project-local-development-only")
DEBUG = os.environ.get("DJANGO_DEBUG", "1").lower() in {"1", "true", "yes", "on"}
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    # Swagger UI's files for the API docs page (statezero/docs/), served locally: works offline.
    "drf_spectacular_sidecar",
    "django_bridge",
    "shop",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "exampleproject.urls"
WSGI_APPLICATION = "exampleproject.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

if os.environ.get("DATABASE_URL"):
    import dj_database_url

    DATABASES = {"default": dj_database_url.parse(os.environ["DATABASE_URL"], conn_max_age=600)}
else:
    # The web process and the worker's step threads write to this file at the same time.
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            # EXAMPLE_SQLITE_PATH: another file (scripts/dev.py's DEV_STATE_DIR puts it there).
            "NAME": os.environ.get("EXAMPLE_SQLITE_PATH") or BASE_DIR / "db.sqlite3",
            "OPTIONS": SQLITE_OPTIONS,
            # Each step thread of the worker keeps its connection instead of reconnecting per step.
            "CONN_MAX_AGE": 600,
            # A file, not memory, for `manage.py test`: the in-process worker's threads read it too.
            "TEST": {"NAME": BASE_DIR / "test-db.sqlite3"},
        }
    }

AUTOMATION = {
    # Runs started here are picked up by `manage.py temporal_worker` polling the same queue.
    "TASK_QUEUE": "example-shop",
    # A database restart delays runs instead of failing them: the worker waits this long (the
    # default), and a step's own database errors count as outages too (off by default; the
    # shop's steps are safe to run again after a failed query).
    "DATABASE_OUTAGE_ALLOWANCE": 600,
    "STEP_DATABASE_ERRORS_ARE_OUTAGES": True,
    # Where `make dev` serves the site: start_run, watch_run and send_signal print absolute
    # run-page links (AUTOMATION_SITE_URL overrides it, as scripts/dev.py does on another port).
    "SITE_URL": "http://localhost:8000",
    # Runs publish their status, step and awaited signal to Temporal's visibility (the dev
    # server of `make dev` registers the search attributes): filter them in the Temporal UI.
    "SEARCH_ATTRIBUTES": True,
}

# The run pages and the API need a user: LoginView at /accounts/login/ (LOGIN_URL's default),
# back to the home page when the login link did not say where to go.
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django_temporal_automation": {"handlers": ["console"], "level": "INFO"}},
}

"""Django settings for ``scripts/bench.py``: a fresh SQLite file, as the test suite uses it.

``bench.py`` sets ``BENCH_DB`` to a file in a temporary directory before Django loads this.
"""

import os

from django_bridge.sqlite import SQLITE_OPTIONS

SECRET_KEY = "bench-only-not-secret"
DEBUG = False  # DEBUG=True would keep every SQL query in memory
ALLOWED_HOSTS = ["*"]
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django_bridge",
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ["BENCH_DB"],
        "OPTIONS": SQLITE_OPTIONS,
        # What docs/deployment recommends for workers: keep each step thread's connection
        # instead of reconnecting for every step (close_old_connections honours this).
        "CONN_MAX_AGE": 600,
    }
}

# bench.py --search-attributes on: what publishing them costs (off by default, as in the library).
AUTOMATION: dict = {"SEARCH_ATTRIBUTES": os.environ.get("BENCH_SEARCH_ATTRIBUTES", "off") == "on"}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django_temporal_automation": {"handlers": ["console"], "level": "WARNING"}},
}

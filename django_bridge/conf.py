"""Settings: one namespaced dict, ``settings.AUTOMATION``, read through defaults.

Environment variables override the Temporal connection, so one settings file serves the
dev server, a cluster and Temporal Cloud. Unknown keys raise, so a typo is not ignored.
"""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured

__all__ = ["DEFAULTS", "automation_settings"]

DEFAULTS: dict[str, Any] = {
    "TEMPORAL_ADDRESS": "localhost:7233",
    "TEMPORAL_NAMESPACE": "default",
    "TASK_QUEUE": "django-automation",
    "TEMPORAL_API_KEY": None,
    "TEMPORAL_TLS": False,
    "TEMPORAL_TLS_CLIENT_CERT": None,  # path to a PEM file, for mTLS
    "TEMPORAL_TLS_CLIENT_KEY": None,
    "TEMPORAL_UI_URL": "http://localhost:8233",
    "WORKFLOW_MODULES": [],
    "STEP_TIMEOUT": 3600.0,  # seconds a single step attempt may run
    "HEARTBEAT_TIMEOUT": 10.0,  # seconds without a heartbeat before a step is retried elsewhere
    "MAX_CONCURRENT_STEPS": 16,  # worker threads running steps
    "SEARCH_ATTRIBUTES": True,  # publish run status/step/signal as Temporal search attributes
    "START_ATTEMPTS": 3,  # tries to reach Temporal when starting a run before it is marked failed
}

ENV_OVERRIDES = {
    "TEMPORAL_ADDRESS": "TEMPORAL_ADDRESS",
    "TEMPORAL_NAMESPACE": "TEMPORAL_NAMESPACE",
    "TASK_QUEUE": "TEMPORAL_TASK_QUEUE",
    "TEMPORAL_API_KEY": "TEMPORAL_API_KEY",
    "TEMPORAL_TLS": "TEMPORAL_TLS",
    "TEMPORAL_TLS_CLIENT_CERT": "TEMPORAL_TLS_CLIENT_CERT_PATH",
    "TEMPORAL_TLS_CLIENT_KEY": "TEMPORAL_TLS_CLIENT_KEY_PATH",
    "TEMPORAL_UI_URL": "TEMPORAL_UI_URL",
}


def _coerce(key: str, raw: str) -> Any:
    if isinstance(DEFAULTS[key], bool):
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    return raw


class AutomationSettings:
    def __init__(self) -> None:
        # Process-wide overrides, set by the testing helpers; they beat the environment.
        self.overrides: dict[str, Any] = {}

    def __getattr__(self, key: str) -> Any:
        if key not in DEFAULTS:
            raise AttributeError(f"unknown AUTOMATION setting {key!r}")
        if key in self.overrides:
            return self.overrides[key]
        user = getattr(django_settings, "AUTOMATION", {}) or {}
        unknown = sorted(set(user) - set(DEFAULTS))
        if unknown:
            raise ImproperlyConfigured(
                f"settings.AUTOMATION has unknown keys {unknown}; valid keys are {sorted(DEFAULTS)}."
            )
        env = ENV_OVERRIDES.get(key)
        if env and os.environ.get(env):
            return _coerce(key, os.environ[env])
        return user.get(key, DEFAULTS[key])


automation_settings = AutomationSettings()

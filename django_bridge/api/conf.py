"""Settings of the HTTP API: ``settings.AUTOMATION_API``, one dict read through defaults.

Unknown keys raise, so a typo is not silently ignored. Values naming code may be objects or
dotted import paths.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

__all__ = ["API_DEFAULTS", "api_settings"]

API_DEFAULTS: dict[str, Any] = {
    # DRF permission classes every endpoint checks (an action's own `permissions` come after).
    "PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # DRF authentication classes; None: REST_FRAMEWORK['DEFAULT_AUTHENTICATION_CLASSES'].
    "AUTHENTICATION_CLASSES": None,
    # f(request, queryset) -> queryset: the runs a request may see and act on. None: all runs.
    "RUN_QUERYSET": None,
    # f(request, workflow_name, kwargs) -> kwargs: adjust the start arguments (e.g. owner_id).
    "START_KWARGS": None,
    # Seconds an action request waits for the step to finish before answering 202.
    "ACTION_TIMEOUT": 60.0,
    # Runs per page of GET runs/ (?page_size= up to MAX_PAGE_SIZE).
    "PAGE_SIZE": 50,
    "MAX_PAGE_SIZE": 500,
    # Milliseconds between refreshes of the run page while the run moves.
    "PAGE_POLL_MS": 700,
}


class APISettings:
    def _user(self) -> dict[str, Any]:
        user = getattr(django_settings, "AUTOMATION_API", None) or {}
        if not isinstance(user, dict):
            raise ImproperlyConfigured("settings.AUTOMATION_API must be a dict.")
        unknown = sorted(set(user) - set(API_DEFAULTS))
        if unknown:
            raise ImproperlyConfigured(
                f"settings.AUTOMATION_API has unknown keys {unknown}; valid keys are {sorted(API_DEFAULTS)}."
            )
        return user

    def __getattr__(self, key: str) -> Any:
        if key not in API_DEFAULTS:
            raise AttributeError(f"unknown AUTOMATION_API setting {key!r}")
        return self._user().get(key, API_DEFAULTS[key])

    def _load(self, value: Any, key: str) -> Any:
        if isinstance(value, str):
            try:
                return import_string(value)
            except ImportError as exc:
                raise ImproperlyConfigured(
                    f"settings.AUTOMATION_API[{key!r}]: cannot import {value!r}: {exc}"
                ) from None
        return value

    def permission_classes(self) -> list[type]:
        return [self._load(v, "PERMISSION_CLASSES") for v in self.PERMISSION_CLASSES or []]

    def authentication_classes(self) -> list[type] | None:
        value = self.AUTHENTICATION_CLASSES
        return None if value is None else [self._load(v, "AUTHENTICATION_CLASSES") for v in value]

    def hook(self, key: str) -> Callable[..., Any] | None:
        value = getattr(self, key)
        return None if value is None else self._load(value, key)


api_settings = APISettings()

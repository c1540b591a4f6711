"""Model events and who listens to them: ``EventDefinition``, the callbacks of ``@on_event`` and
the event trigger of ``@event_workflow`` (automations guide, sections 1-3).

Declarations only: the Django app keeps ``Event`` rows for them and the Temporal side delivers
each occurrence (docs/semantics.md, "Model events").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from ._errors import WorkflowDefinitionError
from ._retry import Retry

__all__ = ["Callback", "EventDefinition", "EventTrigger", "Phase", "event_trigger"]

Phase = Literal["occurred", "created", "cancelled"]


@dataclass(frozen=True)
class EventDefinition:
    """An event of a model, declared in the model's ``events`` list.

    Args:
        name: the event's name; subscribers name it.
        condition: ``condition(instance) -> bool``; the event is valid while it holds (always,
            when None). A condition that raises counts as false and is logged.
        date_field: for a *scheduled* event, the model's ``DateTimeField``/``DateField`` holding
            when it occurs; without it the event is *immediate* (it occurs on the commit of the
            first save in which the condition holds).
    """

    name: str
    condition: Callable[[Any], bool] | None = None
    date_field: str | None = None

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.name, str) or not self.name.strip():
            problems.append(f"the name must be a non-empty string, got {self.name!r}")
        if self.condition is not None and not callable(self.condition):
            problems.append(f"condition must be a callable taking the instance, got {self.condition!r}")
        if self.date_field is not None and (not isinstance(self.date_field, str) or not self.date_field):
            problems.append(f"date_field must be the name of a date field, got {self.date_field!r}")
        if problems:
            raise WorkflowDefinitionError(f"EventDefinition({self.name!r})", problems)

    @property
    def scheduled(self) -> bool:
        return self.date_field is not None


@dataclass(frozen=True)
class Callback:
    """A function called once per occurrence (or creation, or cancellation) of an event."""

    phase: Phase
    event_name: str
    fn: Callable[[Any], Any]
    retry: Retry
    ignores_claims: bool = False  # called even while an agent or run holds a claim on the event

    @property
    def name(self) -> str:
        """Its activity type in Temporal: where the function lives."""
        return f"{self.fn.__module__}.{self.fn.__qualname__}"


@dataclass(frozen=True)
class EventTrigger:
    """``@event_workflow``: start a run per occurrence of ``event_name``, due ``offset`` from it."""

    event_name: str
    offset: timedelta

    @property
    def offset_seconds(self) -> float:
        return self.offset.total_seconds()


def event_trigger(event_name: Any, offset: Any, offset_minutes: Any, label: str) -> EventTrigger:
    """Validate ``@event_workflow``'s trigger arguments."""
    problems = []
    if not isinstance(event_name, str) or not event_name.strip():
        problems.append(f"@event_workflow(event_name=...) must be a non-empty string, got {event_name!r}")
    if offset is not None and offset_minutes is not None:
        problems.append("give offset=timedelta(...) or the older offset_minutes=int, not both")
    if offset is not None and not isinstance(offset, timedelta):
        problems.append(f"offset must be a datetime.timedelta (negative runs before the event), got {offset!r}")
    if offset_minutes is not None and (not isinstance(offset_minutes, int) or isinstance(offset_minutes, bool)):
        problems.append(f"offset_minutes must be an int, got {offset_minutes!r}")
    if problems:
        raise WorkflowDefinitionError(label, problems)
    if offset_minutes is not None:
        offset = timedelta(minutes=offset_minutes)
    return EventTrigger(event_name, offset or timedelta(0))

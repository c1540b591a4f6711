"""What an ``@agent`` class declares, once validated: ``AgentDefinition`` and its ``HandlerDef``s."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from pydantic import BaseModel

from ._retry import Retry

__all__ = ["TEMPLATE", "AgentDefinition", "HandlerDef", "template_fields"]

# ``{{ ctx.x }}`` / ``{{ context.x }}``: the same syntax wait_for_event(match=...) accepts.
TEMPLATE = re.compile(r"\{\{\s*(ctx|context)\.([A-Za-z_][\w.]*)\s*\}\}")
_ANYTEMPLATE = re.compile(r"\{\{(.*?)\}\}")


def template_fields(match: dict[str, Any] | None) -> list[str]:
    """The Context fields a ``match`` reads (the first name of each ``{{ ctx.a.b }}``)."""
    names: list[str] = []
    for value in (match or {}).values():
        if isinstance(value, str):
            names.extend(m.group(2).split(".")[0] for m in TEMPLATE.finditer(value))
    return names


@dataclass(frozen=True)
class HandlerDef:
    """One ``@handler`` method of an agent."""

    name: str
    event_name: str
    fn: Callable[..., Any]
    offset: timedelta | None = None
    match: dict[str, Any] | None = None
    condition: Callable[[Any, Any], Any] | None = None
    retry: Retry = field(default_factory=Retry)
    ignores_claims: bool = False
    takes_ctx: bool = True
    takes_event: bool = False

    @property
    def timed(self) -> bool:
        """Runs at the event's time plus ``offset`` on a timer, rather than when it occurs."""
        return self.offset is not None and self.offset != timedelta(0)

    @property
    def offset_seconds(self) -> float:
        return self.offset.total_seconds() if self.offset is not None else 0.0


@dataclass(frozen=True)
class AgentDefinition:
    """A validated ``@agent`` class."""

    name: str
    cls: type
    spawn_on: str
    match: dict[str, Any] | None
    singleton: bool
    handlers: dict[str, HandlerDef]
    version: str = "1"

    @property
    def context_class(self) -> type[BaseModel]:
        return self.cls.Context  # type: ignore[attr-defined,no-any-return]

    def create_context(self, event: Any) -> BaseModel:
        """The spawn's Context, checked: ``create_context`` must return the agent's ``Context``."""
        ctx = self.cls.create_context(event)  # type: ignore[attr-defined]
        if not isinstance(ctx, self.context_class):
            raise TypeError(
                f"agent {self.name!r}: create_context must return {self.cls.__name__}.Context(...), got {ctx!r}"
            )
        return ctx

    def match_for(self, handler: HandlerDef | None) -> dict[str, Any] | None:
        """The match deciding whether an event reaches an instance (the handler's own, or the agent's)."""
        if handler is not None and handler.match is not None:
            return handler.match
        return self.match

    def event_names(self) -> set[str]:
        """Every event this agent listens to: its spawn event and its handlers' events."""
        return {self.spawn_on, *(h.event_name for h in self.handlers.values())}

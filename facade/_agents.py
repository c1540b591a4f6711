"""``@agent`` and ``@handler``: long-running agents that react to model events (automations guide,
section 8).

Declarations only, validated here so that every mistake is reported when the module is imported,
with its fix. The Temporal side runs each agent instance as one long-running workflow whose type
is the agent's name, and each handler as an activity ``<agent>.<handler>`` (docs/semantics.md,
"Agents").
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from pydantic import BaseModel

from ._agent_definition import TEMPLATE, AgentDefinition, HandlerDef, template_fields
from ._errors import WorkflowDefinitionError
from ._registry import registry
from ._retry import Retry

__all__ = ["agent", "handler"]

C = TypeVar("C", bound=type)
F = TypeVar("F", bound=Callable[..., Any])

_HANDLER_MARK = "_automation_handler"
_ANY_TEMPLATE = re.compile(r"\{\{(.*?)\}\}")


def handler(
    event_name: Any = None,
    *,
    offset: timedelta | None = None,
    match: dict[str, Any] | None = None,
    condition: Callable[[Any, Any], Any] | None = None,
    retry: Retry | None = None,
    ignores_claims: bool = False,
) -> Callable[[F], F]:
    """Mark an agent method as the handler of ``event_name``.

    Without ``offset`` it runs when the event occurs; with one it runs at the event's time plus
    ``offset`` (negative: before it), on a durable timer. ``match`` overrides the agent's match
    for this event, ``condition(event, ctx)`` skips it when false, ``retry`` retries it, and
    ``ignores_claims=True`` runs it even while another holder has claimed the event.
    """
    problems: list[str] = []
    if callable(event_name):
        problems.append("@handler needs the event's name: @handler('reservation_confirmed')")
    elif not isinstance(event_name, str) or not event_name.strip():
        problems.append(f"@handler(event_name) must be a non-empty string, got {event_name!r}")
    if offset is not None and not isinstance(offset, timedelta):
        problems.append(f"offset must be a datetime.timedelta (negative runs before the event), got {offset!r}")
    problems.extend(_match_problems(match, "@handler(match=...)"))
    if condition is not None and not callable(condition):
        problems.append(f"condition must be a callable taking (event, ctx), got {condition!r}")
    if retry is not None and not isinstance(retry, Retry):
        problems.append(f"retry must be a Retry(...), got {retry!r}")
    if not isinstance(ignores_claims, bool):
        problems.append(f"ignores_claims must be True or False, got {ignores_claims!r}")
    if problems:
        raise WorkflowDefinitionError(f"@handler({event_name!r})", problems)

    def decorate(fn: F) -> F:
        label = getattr(fn, "__qualname__", repr(fn))
        if not callable(fn) or inspect.iscoroutinefunction(fn):
            raise WorkflowDefinitionError(
                label, ["@handler decorates a plain method (def, not async def): def send(self, ctx): ..."]
            )
        params = list(inspect.signature(fn).parameters.values())[1:]  # after self
        takes_event = any(p.name == "event" for p in params)
        others = [p for p in params if p.name != "event"]
        if len(others) > 1 or any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
            raise WorkflowDefinitionError(
                label,
                [
                    f"a handler takes (self), (self, ctx) or (self, ctx, event), got {label}{inspect.signature(fn)}; "
                    "get_context() returns the Context too"
                ],
            )
        setattr(
            fn,
            _HANDLER_MARK,
            HandlerDef(
                name=fn.__name__,
                event_name=event_name,
                fn=fn,
                offset=offset,
                match=dict(match) if match is not None else None,
                condition=condition,
                retry=retry or Retry(),
                ignores_claims=ignores_claims,
                takes_ctx=bool(others),
                takes_event=takes_event,
            ),
        )
        return fn

    return decorate


def agent(
    name: Any,
    *,
    spawn_on: Any = None,
    match: dict[str, Any] | None = None,
    singleton: bool = True,
    version: str = "1",
) -> Callable[[C], C]:
    """Declare a long-running agent: one instance per ``match`` (``singleton=True``) or per
    occurrence of ``spawn_on`` (``singleton=False``), reacting to events with its handlers."""

    def decorate(cls: C) -> C:
        label = f"@agent({name!r})"
        problems: list[str] = []
        if not isinstance(name, str) or not name.strip():
            problems.append(f"the agent's name must be a non-empty string, got {name!r}")
        if not isinstance(spawn_on, str) or not spawn_on.strip():
            problems.append(f"spawn_on must name the event that creates an instance, got {spawn_on!r}")
        if not isinstance(singleton, bool):
            problems.append(f"singleton must be True or False, got {singleton!r}")
        problems.extend(_match_problems(match, "match"))
        context = getattr(cls, "Context", None)
        if not (isinstance(context, type) and issubclass(context, BaseModel)):
            problems.append(f"{cls.__name__} needs a nested `class Context(BaseModel)` holding the instance's state")
            context = None
        creator = inspect.getattr_static(cls, "create_context", None)
        if creator is None:
            problems.append(f"{cls.__name__} needs `@classmethod def create_context(cls, event)` returning its Context")
        elif not isinstance(creator, (classmethod, staticmethod)):
            problems.append(f"{cls.__name__}.create_context must be a @classmethod taking the spawning event")
        handlers: dict[str, HandlerDef] = {}
        for attr in dir(cls):
            definition = getattr(getattr(cls, attr, None), _HANDLER_MARK, None)
            if isinstance(definition, HandlerDef):
                handlers[definition.name] = definition
        if context is not None:
            fields = set(context.model_fields)
            for where, m in [("match", match), *((f"handler {h.name}'s match", h.match) for h in handlers.values())]:
                for f in template_fields(m):
                    if f not in fields:
                        problems.append(
                            f"{where} reads {{{{ ctx.{f} }}}} but {cls.__name__}.Context has no field {f!r} "
                            f"(fields: {', '.join(sorted(fields)) or 'none'})"
                        )
        if problems:
            raise WorkflowDefinitionError(label, problems)
        definition = AgentDefinition(
            name=name,
            cls=cls,
            spawn_on=spawn_on,
            match=dict(match) if match else match,
            singleton=singleton,
            handlers=handlers,
            version=version,
        )
        registry.register_agent(definition)
        cls._automation_agent = definition  # type: ignore[attr-defined]
        return cls

    return decorate


def _match_problems(match: Any, where: str) -> list[str]:
    if match is None:
        return []
    if not isinstance(match, dict) or not match:
        return [f"{where} must be a dict of entity lookups to values or templates, got {match!r}"]
    problems = []
    for key, value in match.items():
        if not isinstance(key, str) or not key:
            problems.append(f"{where}: each key is a lookup on the event's entity (e.g. 'guest_id'), got {key!r}")
        if isinstance(value, str):
            for expr in _ANY_TEMPLATE.findall(value):
                if not TEMPLATE.fullmatch("{{" + expr + "}}"):
                    problems.append(
                        f"{where}: {{{{{expr}}}}} is not a template this library reads; "
                        "write {{ ctx.field }} or {{ context.field }}"
                    )
    return problems

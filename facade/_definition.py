"""``@step`` and ``@on_fail`` markers, and validating a ``@workflow`` class into a definition.

``build_definition`` checks a class once, when it is decorated, and reports every problem at
once with its fix. What it returns (``WorkflowDefinition``) is what the other layers read:
the Temporal side compiles it into the spec that travels with each run.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ._errors import InvalidInputError, WorkflowDefinitionError
from ._events import EventTrigger
from ._metadata import StepDisplayMetadata
from ._payloads import validation_summary
from ._results import GATE_ATTR, Wait
from ._retry import DEFAULT_RETRY, Retry

__all__ = ["ACTION_ATTR", "STEP_ATTR", "StepDef", "WorkflowDefinition", "build_definition", "on_fail", "step"]

STEP_ATTR = "__automation_step__"
ON_FAIL_ATTR = "__automation_on_fail__"
ACTION_ATTR = "__automation_action__"

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class _StepMarker:
    start: bool
    retry: Any
    title: str | None
    visible: bool
    display: Any


def step(
    start: bool | Callable[..., Any] = False,
    retry: Retry | None = None,
    title: str | None = None,
    visible: bool = True,
    display: StepDisplayMetadata | None = None,
) -> Any:
    """Mark a method of a ``@workflow`` class as a step.

    Args:
        start: this is the step a new run begins with (exactly one per workflow).
        retry: the retry policy of this step; defaults to the workflow's ``default_retry``.
        title: a human title, shown in the Temporal UI as the activity summary.
        visible: whether UIs should show this step.
        display: form/display metadata for UIs (``StepDisplayMetadata``).
    """
    if callable(start):  # used bare, as @step
        _refuse_async(start, "@step")
        setattr(start, STEP_ATTR, _StepMarker(False, None, None, True, None))
        return start

    def decorate(fn: F) -> F:
        _refuse_async(fn, "@step")
        setattr(fn, STEP_ATTR, _StepMarker(bool(start), retry, title, visible, display))
        return fn

    return decorate


def on_fail(fn: F) -> F:
    """Mark the compensation handler that runs when the run fails (semantics: "On-fail handlers and definition errors")."""
    _refuse_async(fn, "@on_fail")
    setattr(fn, ON_FAIL_ATTR, True)
    return fn


def _refuse_async(fn: Any, decorator: str) -> None:
    """Steps run in a worker thread (so the ORM works), never on an event loop: an ``async def``
    would return an un-awaited coroutine. Refuse it where it is written, with the fix."""
    if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
        qualname = getattr(fn, "__qualname__", repr(fn))
        owner, _, name = qualname.rpartition(".")
        raise WorkflowDefinitionError(
            owner or qualname,
            [
                f"{decorator} {qualname} is `async def`: steps run in a worker thread where the ORM is usable, "
                f"so write `def {name}(self, ...)` (call async code from it with asgiref's async_to_sync)"
            ],
        )


@dataclass
class StepDef:
    name: str
    start: bool
    retry: Retry
    title: str | None
    visible: bool
    display: dict[str, Any] | None
    gate: Wait | None
    action: dict[str, Any] | None  # JSON part, in the spec: {"name": ...}
    params: list[str]
    action_options: dict[str, Any] | None = None  # serializer, permissions, ...: worker/web side only
    required_params: list[str] = field(default_factory=list)  # parameters without a default


@dataclass(eq=False)  # compared by identity: the Temporal side caches its compiled spec per definition
class WorkflowDefinition:
    """Everything known about one ``@workflow`` class, validated."""

    name: str
    version: str
    cls: type
    context_model: type[BaseModel]
    steps: dict[str, StepDef]
    start_step: str
    on_fail: str | None
    default_retry: Retry
    trigger: EventTrigger | None = None  # set by @event_workflow

    def create_context(self, **kwargs: Any) -> BaseModel:
        """Build the Context for a new run, by ``create_context`` if the class has one."""
        factory = getattr(self.cls, "create_context", None)
        try:
            if factory is not None:
                try:
                    inspect.signature(factory).bind(**kwargs)
                except TypeError as exc:
                    raise InvalidInputError(
                        f"workflow {self.name!r}: {self.cls.__name__}.create_context{inspect.signature(factory)} "
                        f"does not accept {sorted(kwargs)}: {exc}. Pass the arguments create_context takes.",
                        workflow=self.name,
                    ) from None
                ctx = factory(**kwargs)
            else:
                # pydantic ignores unknown keys by default: a typo would be dropped silently.
                unknown = sorted(set(kwargs) - set(self.context_model.model_fields))
                if unknown and self.context_model.model_config.get("extra") != "allow":
                    raise InvalidInputError(
                        f"workflow {self.name!r}: {unknown} are not fields of {self.cls.__name__}.Context "
                        f"(fields: {', '.join(self.context_model.model_fields)}). Pass Context fields only, "
                        "or add a create_context classmethod that takes these arguments.",
                        workflow=self.name,
                    )
                ctx = self.context_model(**kwargs)
        except ValidationError as exc:
            raise InvalidInputError(
                f"workflow {self.name!r}: the start arguments do not fit its Context: "
                f"{validation_summary(exc)}. Pass values of the Context's field types.",
                workflow=self.name,
            ) from None
        if not isinstance(ctx, self.context_model):
            raise InvalidInputError(
                f"workflow {self.name!r}: create_context returned {type(ctx).__name__}, "
                f"not an instance of {self.cls.__name__}.Context.",
                workflow=self.name,
            )
        return ctx

    def load_context(self, data: dict[str, Any]) -> BaseModel:
        return self.context_model.model_validate(data)


def _collect_members(cls: type) -> dict[str, Any]:
    members: dict[str, Any] = {}
    for klass in reversed(cls.__mro__[:-1]):
        members.update(vars(klass))
    return members


def build_definition(
    cls: type, name: Any, version: Any, default_retry: Any, *, kind: str = "workflow"
) -> WorkflowDefinition:
    problems: list[str] = []
    label = cls.__qualname__
    if not isinstance(name, str) or not name.strip():
        raise WorkflowDefinitionError(
            repr(name), [f"@{kind} needs a non-empty name string, e.g. @{kind}('user_onboarding'), on {label}"]
        )
    if default_retry is not None and not isinstance(default_retry, Retry):
        problems.append(f"default_retry must be a Retry(...), got {default_retry!r}")
        default_retry = None

    context_model = getattr(cls, "Context", None)
    if context_model is None:
        problems.append(f"{label} has no Context: add a nested `class Context(BaseModel): ...` with the run's fields")
    elif not (isinstance(context_model, type) and issubclass(context_model, BaseModel)):
        problems.append(f"{label}.Context must subclass pydantic.BaseModel")

    steps: dict[str, StepDef] = {}
    on_fail_names: list[str] = []
    for attr, member in _collect_members(cls).items():
        fn = member.__func__ if isinstance(member, (classmethod, staticmethod)) else member
        if not callable(fn):
            continue
        marker = getattr(fn, STEP_ATTR, None)
        gate = getattr(fn, GATE_ATTR, None)
        action = getattr(fn, ACTION_ATTR, None)
        if getattr(fn, ON_FAIL_ATTR, False):
            on_fail_names.append(attr)
            if marker is not None:
                problems.append(
                    f"{label}.{attr} is both @on_fail and @step: the on_fail handler is not a step, remove @step"
                )
            continue
        if marker is None:
            if gate is not None:
                problems.append(f"{label}.{attr} has @wait/@wait_for_event but no @step(): add @step()")
            if action is not None:
                problems.append(f"{label}.{attr} has @statezero_action but no @step(): add @step()")
            continue
        if marker.retry is not None and not isinstance(marker.retry, Retry):
            problems.append(f"{label}.{attr}: @step(retry=...) must be a Retry(...), got {marker.retry!r}")
        if marker.display is not None and not isinstance(marker.display, StepDisplayMetadata):
            problems.append(f"{label}.{attr}: @step(display=...) must be a StepDisplayMetadata(...)")
        if gate is not None and action is not None:
            problems.append(f"{label}.{attr} is both a wait gate and an action step: use one")
        display = marker.display
        if action is not None and action.get("display") is not None:
            display = action["display"]
        signature = list(inspect.signature(fn).parameters.values())[1:]  # after self
        params = [p.name for p in signature]
        required = [
            p.name
            for p in signature
            if p.default is inspect.Parameter.empty and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        ]
        if "request" in params and action is None and "request" in required:
            problems.append(
                f"{label}.{attr} takes `request`, which only action steps receive (who submitted the action): "
                "add @statezero_action(...) above @step(), or give it a default"
            )
        if (
            "request" in params
            and action is not None
            and "request" in getattr(action["serializer"], "_declared_fields", {})
        ):
            problems.append(
                f"{label}.{attr} takes `request` and its action's serializer has a field named 'request': the "
                "parameter receives who submitted the action, so rename the serializer field"
            )
        steps[attr] = StepDef(
            name=attr,
            start=marker.start,
            retry=marker.retry if isinstance(marker.retry, Retry) else (default_retry or DEFAULT_RETRY),
            title=marker.title,
            visible=marker.visible,
            display=display.to_dict() if isinstance(display, StepDisplayMetadata) else None,
            gate=gate,
            action={"name": action["name"]} if action else None,
            params=params,
            action_options=dict(action) if action else None,
            required_params=required,
        )

    if not steps:
        problems.append(f"{label} has no steps: decorate methods with @step(), one of them @step(start=True)")
    starts = [s.name for s in steps.values() if s.start]
    if steps and len(starts) == 0:
        problems.append(f"{label} has no start step: mark the first step @step(start=True)")
    if len(starts) > 1:
        problems.append(f"{label} has {len(starts)} start steps ({', '.join(starts)}): keep start=True on one")
    if len(on_fail_names) > 1:
        problems.append(
            f"{label} has multiple @on_fail handlers ({', '.join(on_fail_names)}): only one is allowed, merge them"
        )
    for s in steps.values():
        if s.gate and s.gate.on_timeout and s.gate.on_timeout not in steps:
            problems.append(
                f"{label}.{s.name}: on_timeout={s.gate.on_timeout!r} is not a step of this workflow "
                f"(steps: {', '.join(steps)})"
            )
    factory = getattr(cls, "create_context", None)
    if factory is not None and not callable(factory):
        problems.append(f"{label}.create_context must be a @classmethod")
    if problems:
        raise WorkflowDefinitionError(name, problems)
    return WorkflowDefinition(
        name=name,
        version=str(version),
        cls=cls,
        context_model=context_model,  # type: ignore[arg-type]
        steps=steps,
        start_step=starts[0],
        on_fail=on_fail_names[0] if on_fail_names else None,
        default_retry=default_retry or DEFAULT_RETRY,
    )

"""What a step returns: goto, sleep, wait, wait_for_event, complete, fail, run_subflow.

Each result turns into a *directive* of the protocol (``temporal_worker.protocol``), which the
interpreter workflow applies. Results validate their arguments when they are built, so a mistake surfaces in the
step that made it, with the step named (see ``StepResultError``).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporal_worker import protocol

from ._errors import StepResultError

__all__ = [
    "Complete",
    "Fail",
    "Goto",
    "Sleep",
    "StepResult",
    "Subflow",
    "SubflowResult",
    "Wait",
    "complete",
    "fail",
    "goto",
    "run_subflow",
    "sleep",
    "wait",
    "wait_for_event",
]

GATE_ATTR = "__automation_gate__"


def step_name(target: Any, what: str) -> str:
    """The step name behind a bound step method, a function or a string."""
    if isinstance(target, str) and target:
        return target
    name = getattr(target, "__name__", None)
    if callable(target) and isinstance(name, str):
        return name
    raise StepResultError(f"{what} must be a step of this workflow, given as self.<step> or its name; got {target!r}.")


def _seconds(value: Any, what: str, *, allow_zero: bool) -> float:
    if not isinstance(value, timedelta):
        raise StepResultError(f"{what} must be a datetime.timedelta, got {value!r}.")
    seconds = value.total_seconds()
    if seconds < 0 or (seconds == 0 and not allow_zero) or math.isinf(seconds):
        raise StepResultError(
            f"{what} must be {'zero or more' if allow_zero else 'positive'}, got {value}. "
            "Durations count forward from now; use a positive timedelta."
        )
    return seconds


class StepResult:
    """Base of every value a step may return."""

    def to_directive(self) -> protocol.Directive:
        raise NotImplementedError


@dataclass(frozen=True)
class Goto(StepResult):
    step: str
    progress: float | None = None

    def to_directive(self) -> protocol.Goto:
        return protocol.Goto(self.step, self.progress)


def goto(step: Any, progress: float | None = None) -> Goto:
    """Continue at ``step`` (``self.other_step`` or its name); ``progress`` is 0.0–1.0."""
    if progress is not None:
        if not isinstance(progress, (int, float)) or isinstance(progress, bool) or math.isnan(progress):
            raise StepResultError(f"goto(progress=...) must be a number from 0.0 to 1.0, got {progress!r}.")
        progress = min(1.0, max(0.0, float(progress)))
    return Goto(step_name(step, "goto() target"), progress)


@dataclass(frozen=True)
class Sleep(StepResult):
    seconds: float

    def to_directive(self) -> protocol.Sleep:
        return protocol.Sleep(self.seconds)


def sleep(duration: timedelta) -> Sleep:
    """Wait ``duration`` on a durable timer, then run the same step again."""
    return Sleep(_seconds(duration, "sleep() duration", allow_zero=True))


@dataclass(frozen=True)
class Wait(StepResult):
    """Suspend until a signal arrives.

    Returned from a step it suspends after the step; used as a decorator on a step it is a
    *gate*: entering the step suspends first and the signal runs the step's body (semantics:
    "Gate waits and return waits").
    """

    signal: str
    timeout: float | None = None
    on_timeout: str | None = None
    display: dict[str, str] = field(default_factory=dict)
    event: str | None = None
    match: dict[str, Any] | None = None

    def to_directive(self) -> protocol.Wait:
        return protocol.Wait(self.signal, self.timeout, self.on_timeout, dict(self.display), self.event, self.match)

    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        if not callable(fn):
            raise StepResultError(f"@wait(...) decorates a step method, got {fn!r}.")
        setattr(fn, GATE_ATTR, self)
        return fn


def _build_wait(
    signal: str,
    timeout: timedelta | None,
    on_timeout: Any,
    display_title: str | None,
    display_subtitle: str | None,
    display_waiting_for: str | None,
    *,
    event: str | None = None,
    match: dict[str, Any] | None = None,
) -> Wait:
    if not isinstance(signal, str) or not signal.strip():
        raise StepResultError(f"the signal name to wait for must be a non-empty string, got {signal!r}.")
    seconds = None if timeout is None else _seconds(timeout, f"timeout of the wait for {signal!r}", allow_zero=False)
    on_timeout_name = None if on_timeout is None else step_name(on_timeout, "on_timeout")
    if on_timeout_name and seconds is None:
        raise StepResultError(f"on_timeout={on_timeout_name!r} needs a timeout= for the wait on {signal!r}.")
    display = {
        k: v
        for k, v in (
            ("display_title", display_title),
            ("display_subtitle", display_subtitle),
            ("display_waiting_for", display_waiting_for),
        )
        if v is not None
    }
    return Wait(signal, seconds, on_timeout_name, display, event, match)


class _WaitFactory:
    """``wait(name, ...)``, ``wait.for_signal(name, ...)`` and ``wait.for_event(name, ...)``."""

    def __call__(
        self,
        signal: str,
        timeout: timedelta | None = None,
        on_timeout: Any = None,
        *,
        display_title: str | None = None,
        display_subtitle: str | None = None,
        display_waiting_for: str | None = None,
    ) -> Wait:
        return _build_wait(signal, timeout, on_timeout, display_title, display_subtitle, display_waiting_for)

    for_signal = __call__  # wait("x") is wait.for_signal("x")

    def for_event(
        self,
        event_name: str,
        timeout: timedelta | None = None,
        on_timeout: Any = None,
        *,
        display_title: str | None = None,
        display_subtitle: str | None = None,
        display_waiting_for: str | None = None,
        match: dict[str, Any] | None = None,
    ) -> Wait:
        if not isinstance(event_name, str) or not event_name.strip():
            raise StepResultError(f"wait_for_event needs a non-empty event name, got {event_name!r}.")
        return _build_wait(
            protocol.event_signal(event_name),
            timeout,
            on_timeout,
            display_title,
            display_subtitle,
            display_waiting_for,
            event=event_name,
            match=match,
        )


wait = _WaitFactory()
wait_for_event = wait.for_event


@dataclass(frozen=True)
class Complete(StepResult):
    merge: dict[str, Any]
    display: dict[str, str]

    def to_directive(self) -> protocol.Complete:
        return protocol.Complete(dict(self.display))


def complete(display_title: str | None = None, display_subtitle: str | None = None, **merge: Any) -> Complete:
    """Finish the run; keyword arguments that are Context fields are merged into it."""
    display = {
        k: v for k, v in (("display_title", display_title), ("display_subtitle", display_subtitle)) if v is not None
    }
    return Complete(merge, display)


@dataclass(frozen=True)
class Fail(StepResult):
    reason: str

    def to_directive(self) -> protocol.Fail:
        return protocol.Fail(self.reason)


def fail(reason: str) -> Fail:
    """End the run as failed with ``reason``; the workflow's ``@on_fail`` handler runs first."""
    return Fail(str(reason))


@dataclass(frozen=True)
class Subflow(StepResult):
    workflow: str
    on_complete: str
    kwargs: dict[str, Any]
    on_create: Callable[..., Any] | None = None
    on_create_takes_parent: bool = False  # on_create(child_run, parent_run) rather than on_create(child_run)

    def to_directive(self) -> protocol.StartSubflow:
        # The child run is created by the step activity, which adds its start input here.
        return protocol.StartSubflow(self.workflow, self.on_complete)


def run_subflow(workflow: Any, on_complete: Any, on_create: Callable[..., Any] | None = None, **kwargs: Any) -> Subflow:
    """Start ``workflow`` as a child run; this run resumes at ``on_complete`` when it ends.

    ``on_complete`` receives a ``SubflowResult``. ``on_create``, if given, is called once the
    child's ``WorkflowRun`` exists and before it starts, as ``on_create(child_run)`` or
    ``on_create(child_run, parent_run)`` (whichever its signature accepts, both preferred);
    ``get_context()`` there is this run's Context. If it raises, the child never starts (its
    row is marked failed with the error) and this run fails (semantics: "Subflows").
    """
    definition = getattr(workflow, "_automation_definition", None)
    if definition is not None:
        name = definition.name
    elif isinstance(workflow, str) and workflow:
        name = workflow
    else:
        raise StepResultError(f"run_subflow() needs a @workflow class or a workflow name, got {workflow!r}.")
    if on_create is not None and not callable(on_create):
        raise StepResultError(f"run_subflow(on_create=...) must be callable, got {on_create!r}.")
    takes_parent = on_create is not None and _hook_takes_parent(on_create)
    return Subflow(name, step_name(on_complete, "run_subflow(on_complete=...)"), kwargs, on_create, takes_parent)


def _hook_takes_parent(hook: Callable[..., Any]) -> bool:
    """Whether ``on_create`` is called with ``(child_run, parent_run)`` or just ``(child_run)``."""
    try:
        signature = inspect.signature(hook)
    except (TypeError, ValueError):  # a callable without a signature (some builtins): one argument
        return False
    for args in ((None, None), (None,)):
        try:
            signature.bind(*args)
        except TypeError:
            continue
        return len(args) == 2
    raise StepResultError(
        f"run_subflow(on_create={getattr(hook, '__qualname__', hook)!r}) must accept (child_run) or "
        f"(child_run, parent_run); its signature is {signature}."
    )


@dataclass(frozen=True)
class SubflowResult:
    """What a parent's ``on_complete`` step receives about its finished child run."""

    status: str
    context: Any
    run_id: int
    error: str | None = None

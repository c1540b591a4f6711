"""The one place where a run's state changes: entering a step, and applying a step's directive.

The interpreter workflow keeps a ``RunState`` and changes it with these functions; the projection
writes the same changes to the ``WorkflowRun`` row; the live display reads the same state. So
the three can never disagree about what a directive means.

Pure and standard library only (the interpreter imports it inside Temporal's sandbox). A change
is a dict of ``RunState`` fields; ``wake_after`` is relative (seconds), since only the caller
knows its clock (workflow time or wall time).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from temporal_worker.protocol import (
    Complete,
    Directive,
    Fail,
    Goto,
    Sleep,
    StartSubflow,
    StepStatus,
    Wait,
    WorkflowStatus,
)

__all__ = [
    "clear_wait",
    "HistoryRow",
    "RunState",
    "after_directive",
    "entering",
    "invalid_target",
    "next_in_order",
    "running",
]


def clear_wait() -> dict[str, Any]:
    """The change of a run that waits for nothing (a fresh dict each time: callers keep it)."""
    return {
        "waiting_for": "",
        "waiting_signal": "",
        "wait_seq": None,
        "on_timeout": "",
        "wake_after": None,
        "waiting_display": {},
        "waiting_match": None,
    }


@dataclass
class RunState:
    """What a run is doing now, as the workflow, the projection and UIs see it.

    ``waiting_for`` names what a suspended run waits on as people read it (a signal,
    ``action:<name>``, ``subflow:<workflow>``); ``waiting_signal`` is set only when that is a
    signal the engine may deliver, with ``wait_seq`` telling which wait of the run it is.
    """

    status: WorkflowStatus = WorkflowStatus.RUNNING
    current_step: str = ""
    progress: float = 0.0
    waiting_for: str = ""
    waiting_signal: str = ""
    wait_seq: int | None = None
    on_timeout: str = ""
    wake_after: float | None = None
    waiting_display: dict[str, Any] = field(default_factory=dict)
    waiting_match: dict[str, Any] | None = None
    completion_display: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    child_run_id: int | None = None

    def apply(self, change: dict[str, Any]) -> None:
        for key, value in change.items():
            setattr(self, key, value)

    # Continue-as-new carries these; the rest is re-derived when the step is entered again.
    CARRIED = ("status", "progress", "waiting_for", "waiting_display", "completion_display")

    def to_wire(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in self.CARRIED}

    @classmethod
    def from_wire(cls, data: dict[str, Any] | None) -> RunState:
        known = {f.name for f in fields(cls)}
        state = cls(**{k: v for k, v in (data or {}).items() if k in known})
        state.status = WorkflowStatus(state.status)
        return state


@dataclass(frozen=True)
class HistoryRow:
    """The ``StepExecution`` row a transition records (sleeps and suspensions record none)."""

    status: StepStatus
    error: str = ""


def entering(spec: dict[str, Any], step: str, seq: int) -> dict[str, Any]:
    """The change of entering ``step`` as entry ``seq``.

    A gated step suspends on its signal and an action step on its action before the body runs
    (semantics: "Gate waits and return waits"); any other step is running.
    """
    spec_step = spec["steps"][step]
    gate, action = spec_step.get("gate"), spec_step.get("action")
    change: dict[str, Any] = {"current_step": step, **clear_wait()}
    if gate:
        change.update(
            status=WorkflowStatus.SUSPENDED,
            waiting_for=gate["signal"],
            waiting_signal=gate["signal"],
            wait_seq=seq,
            on_timeout=gate.get("on_timeout") or "",
            wake_after=gate.get("timeout"),
            waiting_display=dict(gate.get("display") or {}),
            waiting_match=gate.get("match"),
        )
    elif action:
        change.update(status=WorkflowStatus.SUSPENDED, waiting_for=f"action:{action['name']}")
    else:
        change.update(status=WorkflowStatus.RUNNING)
    return change


def running(step: str) -> dict[str, Any]:
    """The change of a step's body starting to run."""
    return {"current_step": step, "status": WorkflowStatus.RUNNING, **clear_wait()}


def after_directive(
    spec: dict[str, Any], step: str, seq: int, directive: Directive
) -> tuple[dict[str, Any], HistoryRow | None]:
    """The change a step's directive makes, and the history row it records."""
    change: dict[str, Any] = {"current_step": step, **clear_wait()}
    row: HistoryRow | None = HistoryRow(StepStatus.COMPLETED)
    if isinstance(directive, Goto):
        change = entering(spec, directive.step, seq + 1)
        if directive.progress is not None:
            change["progress"] = directive.progress
    elif isinstance(directive, Sleep):
        change.update(status=WorkflowStatus.WAITING, wake_after=directive.seconds)
        row = None  # semantics: "Sleep runs the same step again"
    elif isinstance(directive, Wait):
        change.update(
            status=WorkflowStatus.SUSPENDED,
            waiting_for=directive.signal,
            waiting_signal=directive.signal,
            wait_seq=seq,
            on_timeout=directive.on_timeout or "",
            wake_after=directive.timeout,
            waiting_display=dict(directive.display),
            waiting_match=directive.match,
        )
        row = None  # suspending is not history
    elif isinstance(directive, Complete):
        change.update(status=WorkflowStatus.COMPLETED, progress=1.0, completion_display=dict(directive.display))
    elif isinstance(directive, Fail):
        change["error"] = directive.reason
        if not spec.get("on_fail"):  # otherwise the run is failed once its @on_fail handler ran
            change["status"] = WorkflowStatus.FAILED
        row = HistoryRow(StepStatus.FAILED, directive.reason)
    elif isinstance(directive, StartSubflow):
        # While the child runs, the parent shows where it will resume: its on_complete step, not
        # the step that already ran (semantics: "Subflows"). That step is entered (gate, action,
        # body) only once the child has ended.
        change.update(
            current_step=directive.on_complete,
            status=WorkflowStatus.SUSPENDED,
            waiting_for=f"subflow:{directive.workflow}",
        )
        if directive.child is not None:
            change["child_run_id"] = directive.child.run_id
    return change, row


def invalid_target(spec: dict[str, Any], step: str, directive: Directive) -> str | None:
    """Why ``directive`` cannot apply in this workflow (a step it names does not exist), or None."""
    steps = spec["steps"]
    known = ", ".join(spec.get("order") or steps)
    if isinstance(directive, Goto) and directive.step not in steps:
        return f"goto target {directive.step!r} is not a @step of this workflow (steps: {known})"
    if isinstance(directive, Wait) and directive.on_timeout and directive.on_timeout not in steps:
        return f"on_timeout={directive.on_timeout!r} is not a @step of this workflow (steps: {known})"
    if isinstance(directive, StartSubflow) and directive.on_complete not in steps:
        return f"run_subflow on_complete={directive.on_complete!r} is not a @step of this workflow (steps: {known})"
    return None


def next_in_order(spec: dict[str, Any], step: str) -> str | None:
    """The step declared after ``step``: where a run resumes after a wait the step returned."""
    order = spec["order"]
    i = order.index(step)
    return order[i + 1] if i + 1 < len(order) else None

"""``current_step_display``: one function, used by the ``WorkflowRun`` row and the workflow query.

Pure, so the interpreter workflow may import it inside the sandbox.
"""

from __future__ import annotations

from typing import Any

from temporal_worker.protocol import WorkflowStatus
from temporal_worker.transitions import RunState

__all__ = ["current_step_display", "history_display", "step_type"]

WAITING_STATUSES = {WorkflowStatus.WAITING, WorkflowStatus.SUSPENDED}
SUBFLOW_PREFIX = "subflow:"  # RunState.waiting_for of a parent whose child runs


def step_type(spec: dict[str, Any], state: RunState) -> str:
    step = (spec.get("steps") or {}).get(state.current_step) or {}
    if state.waiting_for.startswith(SUBFLOW_PREFIX):
        # A parent shows where it resumes (its on_complete step) while its child runs; that
        # step has not been entered, so it is neither an action to submit nor running.
        return "waiting"
    if step.get("action"):
        return "action"
    if state.status in WAITING_STATUSES:
        return "waiting"
    return "automated"


def history_display(spec: dict[str, Any], step: str) -> dict[str, Any]:
    """The display facts a history row keeps about ``step`` (semantics: "Step history").

    ``step_type`` is the step's kind, not the run's state: ``action`` for an action step,
    ``waiting`` for a gated step (``@wait``/``@wait_for_event``), else ``automated``.
    """
    spec_step = (spec.get("steps") or {}).get(step) or {}
    kind = "action" if spec_step.get("action") else "waiting" if spec_step.get("gate") else "automated"
    return {
        "step_title": spec_step.get("title") or step.replace("_", " "),
        "visible": bool(spec_step.get("visible", True)),
        "step_type": kind,
    }


def current_step_display(spec: dict[str, Any], state: RunState) -> dict[str, Any]:
    """All display metadata of a run's current state (semantics: "Current step display")."""
    status, current = state.status, state.current_step
    step = (spec.get("steps") or {}).get(current) or {}
    kind = step_type(spec, state)
    display: dict[str, Any] = {
        "status": status.value,
        "current_step": current,
        "step_type": kind,
        "step_title": step.get("title") or current.replace("_", " "),
        "visible": step.get("visible", True),
        "progress": float(state.progress or 0.0),
        "completion_display": dict(state.completion_display or {}) if status == WorkflowStatus.COMPLETED else {},
        "waiting_display": dict(state.waiting_display or {}) if status in WAITING_STATUSES else {},
        "step_display": step.get("display") or None,
    }
    if kind == "action":
        display["action_name"] = step["action"].get("name")
    return display

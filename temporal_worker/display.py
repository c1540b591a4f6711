"""``current_step_display``: one function, used by the Django model and the workflow query.

Standard library only, so the interpreter workflow may import it inside the sandbox.
"""

from __future__ import annotations

from typing import Any

__all__ = ["current_step_display", "step_type"]

WAITING_STATUSES = {"waiting", "suspended"}


def step_type(spec: dict[str, Any], state: dict[str, Any]) -> str:
    step = (spec.get("steps") or {}).get(state.get("current_step") or "") or {}
    if step.get("action"):
        return "action"
    if state.get("status") in WAITING_STATUSES:
        return "waiting"
    return "automated"


def current_step_display(spec: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    """All display metadata of a run's current state (DECISIONS D14)."""
    status = state.get("status") or "running"
    current = state.get("current_step") or ""
    step = (spec.get("steps") or {}).get(current) or {}
    kind = step_type(spec, state)
    display: dict[str, Any] = {
        "status": status,
        "current_step": current,
        "step_type": kind,
        "step_title": step.get("title") or current.replace("_", " "),
        "visible": step.get("visible", True),
        "progress": float(state.get("progress") or 0.0),
        "completion_display": dict(state.get("completion_display") or {}) if status == "completed" else {},
        "waiting_display": dict(state.get("waiting_display") or {}) if status in WAITING_STATUSES else {},
        "step_display": step.get("display") or None,
    }
    if kind == "action":
        display["action_name"] = step["action"].get("name")
    return display

"""The start input of a run's Temporal workflow, and its workflow id."""

from __future__ import annotations

import secrets
from typing import Any

from django_bridge.conf import automation_settings

__all__ = ["new_workflow_id", "start_input", "worker_options"]


def new_workflow_id(name: str, run_id: int) -> str:
    # The random tail keeps ids unique when a database is reset but Temporal is not.
    return f"{name}-{run_id}-{secrets.token_hex(4)}"


def worker_options(search_attributes: bool) -> dict[str, Any]:
    return {
        "step_timeout": float(automation_settings.STEP_TIMEOUT),
        "heartbeat_timeout": float(automation_settings.HEARTBEAT_TIMEOUT),
        "search_attributes": search_attributes,
    }


def start_input(
    run_id: int,
    spec: dict[str, Any],
    context: dict[str, Any],
    start_step: str,
    *,
    seq: int = 0,
    resume: bool = False,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "spec": spec,
        "context": context,
        "start_step": start_step,
        "seq": seq,
        "resume": resume,
        "options": options if options is not None else worker_options(False),
    }

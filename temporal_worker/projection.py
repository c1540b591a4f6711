"""Writes to the Django projection, one function per transition.

Each write is keyed by ``(run, seq)`` so that an activity retried by Temporal writes nothing
twice, and each transition is written in one transaction.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from django_bridge.models import StepExecution, WorkflowRun
from facade._status import StepStatus, WorkflowStatus

__all__ = [
    "entry_fields",
    "mark_running",
    "record_cancelled",
    "record_completed",
    "record_directive",
    "record_finished_failed",
    "record_step_failed",
    "save_failed_attempt",
    "update_run",
]

CLEAR_WAIT: dict[str, Any] = {
    "waiting_signal": "",
    "wait_seq": None,
    "on_timeout_step": "",
    "wake_at": None,
    "waiting_display": {},
}


def entry_fields(spec: dict[str, Any], step: str, seq: int) -> dict[str, Any]:
    """Projection fields for a run that has just entered ``step`` as entry ``seq``.

    A gated step suspends on its signal and an action step on its action before the body
    runs (D6); any other step is running.
    """
    spec_step = spec["steps"][step]
    gate, action = spec_step.get("gate"), spec_step.get("action")
    fields: dict[str, Any] = {"current_step": step, **CLEAR_WAIT}
    if gate:
        fields.update(
            status=WorkflowStatus.SUSPENDED,
            waiting_signal=gate["signal"],
            wait_seq=seq,
            on_timeout_step=gate.get("on_timeout") or "",
            wake_at=timezone.now() + timedelta(seconds=gate["timeout"]) if gate.get("timeout") else None,
            waiting_display=gate.get("display") or {},
        )
    elif action:
        fields.update(status=WorkflowStatus.SUSPENDED)
    else:
        fields.update(status=WorkflowStatus.RUNNING)
    return fields


def update_run(run_id: int, **fields: Any) -> None:
    fields["updated_at"] = timezone.now()
    if not WorkflowRun.objects.filter(pk=run_id).update(**fields):
        raise WorkflowRun.DoesNotExist(f"workflow run {run_id} no longer exists")


def _step_row(run_id: int, seq: int, step: str, status: str, error: str = "", display: Any = None) -> None:
    # One INSERT that skips an existing (run, seq, status) row (unique constraint), instead of
    # get_or_create's SELECT + SAVEPOINT + INSERT + RELEASE: a retried activity still writes
    # nothing twice, and an existing row is left as it is.
    StepExecution.objects.bulk_create(
        [StepExecution(run_id=run_id, seq=seq, status=status, step_name=step, error=error, display=display or {})],
        ignore_conflicts=True,
    )


def mark_running(run_id: int, step: str) -> None:
    update_run(run_id, status=WorkflowStatus.RUNNING, current_step=step, **CLEAR_WAIT)


def save_failed_attempt(run_id: int, data: dict[str, Any], retry_in: timedelta | None) -> None:
    """Keep the context of an attempt that raised (D2); back off as WAITING (D11)."""
    if retry_in is None:
        update_run(run_id, data=data)
    else:
        update_run(run_id, data=data, status=WorkflowStatus.WAITING, **{**CLEAR_WAIT, "wake_at": timezone.now() + retry_in})


def record_directive(
    run: dict[str, Any], spec: dict[str, Any], step: str, seq: int, data: dict[str, Any], directive: dict[str, Any]
) -> None:
    """Write the transition a step's result causes, before the workflow applies it.

    One UPDATE of the run (with the result itself in ``last_transition``, for a retried attempt
    to answer from) and, for a finished step, one history row.
    """
    kind = directive["kind"]
    now = timezone.now()
    fields: dict[str, Any] = {"current_step": step, **CLEAR_WAIT}
    row: tuple[str, str] | None = (StepStatus.COMPLETED, "")
    if kind == "goto":
        fields = entry_fields(spec, directive["step"], seq + 1)
        if directive.get("progress") is not None:
            fields["progress"] = directive["progress"]
    elif kind == "sleep":
        fields.update(status=WorkflowStatus.WAITING, wake_at=now + timedelta(seconds=directive["seconds"]))
        row = None  # D13: sleeps are not history
    elif kind == "wait":
        fields.update(
            status=WorkflowStatus.SUSPENDED,
            waiting_signal=directive["signal"],
            wait_seq=seq,
            on_timeout_step=directive.get("on_timeout") or "",
            wake_at=now + timedelta(seconds=directive["timeout"]) if directive.get("timeout") else None,
            waiting_display=directive.get("display") or {},
        )
        row = None  # D13: suspending is not history
    elif kind == "complete":
        fields.update(
            status=WorkflowStatus.COMPLETED, progress=1.0, completion_display=directive.get("display") or {},
            finished_at=now,
        )
    elif kind == "fail":
        fields["error"] = directive["reason"]
        if not spec.get("on_fail"):  # otherwise the @on_fail activity marks it failed, after running
            fields.update(status=WorkflowStatus.FAILED, finished_at=now)
        row = (StepStatus.FAILED, directive["reason"])
    elif kind == "subflow":
        fields.update(status=WorkflowStatus.SUSPENDED, active_child_id=directive["child"]["run_id"])
    with transaction.atomic():
        update_run(
            run["id"], data=data, last_transition={"seq": seq, "step": step, "directive": directive}, **fields
        )
        if row is not None:
            _step_row(run["id"], seq, step, row[0], error=row[1], display=spec["steps"][step].get("display"))


def record_step_failed(run_id: int, spec: dict[str, Any], step: str, seq: int, error: str) -> None:
    """A step failed without a result (retries exhausted, timed out, bad target)."""
    with transaction.atomic():
        _step_row(run_id, seq, step, StepStatus.FAILED, error=error)
        fields = {"status": WorkflowStatus.FAILED, "finished_at": timezone.now()} if not spec.get("on_fail") else {}
        update_run(run_id, error=error, current_step=step, **CLEAR_WAIT, **fields)


def record_finished_failed(run_id: int, data: dict[str, Any], error: str) -> None:
    update_run(run_id, data=data, error=error, status=WorkflowStatus.FAILED, finished_at=timezone.now(), **CLEAR_WAIT)


def record_completed(run_id: int, step: str, data: dict[str, Any] | None) -> None:
    fields: dict[str, Any] = {"data": data} if data is not None else {}
    update_run(
        run_id, status=WorkflowStatus.COMPLETED, progress=1.0, current_step=step,
        finished_at=timezone.now(), **CLEAR_WAIT, **fields,
    )


def record_cancelled(run_id: int, step: str, seq: int, reason: str) -> None:
    with transaction.atomic():
        _step_row(run_id, seq, step, StepStatus.CANCELLED, error=reason)
        update_run(
            run_id, status=WorkflowStatus.CANCELLED, current_step=step, error=reason,
            finished_at=timezone.now(), active_child_id=None, **CLEAR_WAIT,
        )

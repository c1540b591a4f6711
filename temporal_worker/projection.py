"""Writes to the Django projection, one function per transition.

What a transition changes comes from ``transitions`` (the same functions the interpreter
workflow applies); this module only turns a change into ``WorkflowRun`` fields and writes it.
Each write is keyed by ``(run, seq)`` so that an activity retried by Temporal writes nothing
twice, and each transition is written in one transaction. On SQLite the writes of concurrent
steps are committed together (``group_commit``); each call returns once its write committed.
Each write is timed for the ``automation_projection_write_seconds`` metric, labelled with its
kind (``write``), from the call to its commit.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.db import transaction
from django.utils import timezone

from django_bridge.models import AgentRoute, EventClaim, StepExecution, WorkflowRun
from temporal_worker import metrics
from temporal_worker.display import history_display
from temporal_worker.group_commit import group_commit, in_writer
from temporal_worker.protocol import Directive, StepStatus, WorkflowStatus
from temporal_worker.statements import delete_rows, insert_ignoring_conflicts, insert_row, update_row
from temporal_worker.transitions import after_directive, clear_wait, entering, running

__all__ = [
    "entry_fields",
    "insert_run",
    "set_temporal_run_id",
    "mark_running",
    "mark_running_soon",
    "drop_running_mark",
    "record_entered",
    "record_cancelled",
    "record_completed",
    "record_directive",
    "record_finished_failed",
    "record_reconciled",
    "record_step_failed",
    "record_signal_rejected",
    "row_fields",
    "save_failed_attempt",
    "update_run",
]

F = TypeVar("F", bound=Callable[..., Any])

logger = logging.getLogger("django_temporal_automation")


def _timed(write: str) -> Callable[[F], F]:
    """Observe each successful call as one projection write of kind ``write``."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if not metrics.enabled():
                return fn(*args, **kwargs)
            return metrics.projection_write.timed(functools.partial(fn, *args, **kwargs), write=write)

        return timed  # type: ignore[return-value]

    return decorate


# RunState field -> WorkflowRun column, where the names differ.
_COLUMNS = {"on_timeout": "on_timeout_step", "child_run_id": "active_child_id"}


def _committed(fn: F) -> F:
    """A write that returns once committed: on SQLite, with the others waiting then (see
    ``group_commit``). A function with several statements puts them in ``_atomic()``."""

    @functools.wraps(fn)
    def write(*args: Any, **kwargs: Any) -> Any:
        return group_commit.run(functools.partial(fn, *args, **kwargs))

    return write  # type: ignore[return-value]


def _atomic() -> Any:
    """One transaction for a write's statements. In the writer's batch, the batch's transaction
    is that already: an error propagates to it and rolls the batch back (then each write is
    committed alone), so nothing of Django's transaction bookkeeping is needed around them."""
    return contextlib.nullcontext() if in_writer() else transaction.atomic()


def row_fields(change: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """The ``WorkflowRun`` fields of a state change (``wake_after`` becomes ``wake_at``)."""
    now = now or timezone.now()
    out: dict[str, Any] = {}
    for key, value in change.items():
        if key == "wake_after":
            out["wake_at"] = None if value is None else now + timedelta(seconds=value)
            continue
        column = _COLUMNS.get(key, key)
        if column is not None:
            out[column] = value
    if out.get("status") in WorkflowStatus.finished():
        out["finished_at"] = now
    return out


def entry_fields(spec: dict[str, Any], step: str, seq: int) -> dict[str, Any]:
    """Projection fields for a run that has just entered ``step`` as entry ``seq``."""
    return row_fields(entering(spec, step, seq))


@_committed
def update_run(run_id: int, **fields: Any) -> None:
    fields["updated_at"] = timezone.now()
    final = fields.get("status") in WorkflowStatus.finished()
    if not final:
        if not update_row(WorkflowRun, run_id, fields):
            raise WorkflowRun.DoesNotExist(f"workflow run {run_id} no longer exists")
        return
    fields["agent_key"] = None  # an agent instance that ended frees its match for a new one
    with _atomic():
        if not update_row(WorkflowRun, run_id, fields):
            raise WorkflowRun.DoesNotExist(f"workflow run {run_id} no longer exists")
        release_ended(run_id)


def release_ended(run_id: int) -> None:
    """A run that ended releases the claims it held and, an agent instance, its routes
    (semantics: "Claims", "Agents")."""
    delete_rows(EventClaim, "holder", run_id)
    delete_rows(AgentRoute, "run", run_id)


def _step_row(run_id: int, spec: dict[str, Any], seq: int, step: str, status: str, error: str = "") -> None:
    # One INSERT that skips an existing (run, seq, status) row (unique constraint), instead of
    # get_or_create's SELECT + SAVEPOINT + INSERT + RELEASE: a retried activity still writes
    # nothing twice, and an existing row is left as it is.
    row = StepExecution(
        run_id=run_id,
        seq=seq,
        status=status,
        step_name=step,
        error=error,
        display=(spec["steps"].get(step) or {}).get("display") or {},
        # What the step looked like when it ran, so a UI renders history without the class.
        step_display=history_display(spec, step),
    )
    insert_ignoring_conflicts(row)


@_committed
def insert_run(run: WorkflowRun, workflow_id: Callable[[int], str]) -> None:
    """Create ``run``'s row (its key set on it) with its Temporal workflow id, ``workflow_id(pk)``.

    On SQLite, in the transaction of the steps' writes waiting then: a start and the steps of
    the runs already going would all queue on the one writer's lock otherwise (``group_commit``).
    """
    with _atomic():
        insert_row(run)
        run.temporal_workflow_id = workflow_id(run.pk)
        update_row(WorkflowRun, run.pk, {"temporal_workflow_id": run.temporal_workflow_id})


def set_temporal_run_id(run_id: int, temporal_run_id: str) -> None:
    """Save the id Temporal gave the run's first execution (the workflow id already ties the row
    to its workflow). Where writes are queued (SQLite) the caller does not wait for it: a start
    pays one commit, not two, and a failure is logged. Elsewhere it is written now."""
    write = functools.partial(update_row, WorkflowRun, run_id, {"temporal_run_id": temporal_run_id})
    _soon(write, f"run {run_id} started on Temporal; its temporal_run_id was not saved")


@_timed("entered")
@_committed
def record_entered(run_id: int, spec: dict[str, Any], step: str, seq: int) -> None:
    """The run entered ``step`` as entry ``seq`` without a step activity writing it (a gate, an action)."""
    update_run(run_id, **entry_fields(spec, step, seq))


@_timed("running")
@_committed
def mark_running(run_id: int, step: str) -> None:
    update_run(run_id, **row_fields(running(step)))


def mark_running_soon(run_id: int, step: str) -> Future[Any] | None:
    """``mark_running``, without waiting for it where writes commit in the order they are queued
    (SQLite's writer): a step leaving a wait starts its code at once, and its result (or a failed
    attempt) is written after this all the same. A mark that fails is only logged: the step's
    next write sets the row's status anyway, and waits out an outage. Elsewhere it is
    ``mark_running``. Returns the queued mark (None where it was written here), for
    ``drop_running_mark``.
    """
    # In the writer's batch (or inside the caller's transaction) update_run writes in place.
    write = functools.partial(update_run, run_id, **row_fields(running(step)))
    return _soon(write, f"run {run_id}: marking step {step!r} running failed (its result sets the status)", "running")


def drop_running_mark(
    mark: Future[Any] | None, spec: dict[str, Any], step: str, seq: int, directive: Directive
) -> None:
    """Withdraw a queued "running" mark the writer has not begun, if the step's transition, which
    is written next, sets every column the mark sets.

    The row ends the same: the mark would be overwritten by the transition, which commits after
    it. A step leaving a wait that returns before the writer reached its mark goes from waiting
    to its result in one write instead of two. That matters when many runs wake at once (timers
    that fire together, one signal to many runs): the marks would keep the writer, and the
    worker's interpreter, busy while the other runs' steps are starting. Every transition sets
    the status and the wait columns, except a failure handed to an ``@on_fail`` handler: then
    the mark stays.
    """
    if mark is None:
        return
    change, _ = after_directive(spec, step, seq, directive)
    if "status" in change:
        mark.cancel()  # only a mark still waiting in the queue can be withdrawn


def _soon(work: Callable[[], Any], failed: str, kind: str | None = None) -> Future[Any] | None:
    """A write nobody waits for: where writes are queued, ``work`` goes to the writer and the
    caller goes on (a later write of it still commits after this one), and ``failed`` is logged
    if it fails; the queued write is returned. Elsewhere it runs here and raises what it raises.
    Either way its commit is observed as a projection write of ``kind``."""
    if not group_commit.queues():
        if kind is None:
            work()
        else:
            metrics.projection_write.timed(work, write=kind)
        return None
    started = time.monotonic()

    def committed(future: Future[Any]) -> None:
        if future.cancelled():  # withdrawn before the writer reached it (drop_running_mark)
            return
        error = future.exception()
        if error is not None:
            logger.warning("%s: %s", failed, error)
        elif kind is not None and metrics.enabled():
            metrics.projection_write.observe(time.monotonic() - started, write=kind)

    queued = group_commit.submit(work)
    queued.add_done_callback(committed)
    return queued


@_timed("failed_attempt")
@_committed
def save_failed_attempt(run_id: int, data: dict[str, Any], retry_in: timedelta | None) -> None:
    """Keep the context of an attempt that raised; back off as WAITING (semantics: "Step retries")."""
    if retry_in is None:
        update_run(run_id, data=data)
    else:
        backoff = {**clear_wait(), "status": WorkflowStatus.WAITING, "wake_after": retry_in.total_seconds()}
        update_run(run_id, data=data, **row_fields(backoff))


@_timed("directive")
@_committed
def record_directive(
    run_id: int, spec: dict[str, Any], step: str, seq: int, data: dict[str, Any], directive: Directive
) -> None:
    """Write the transition a step's result causes, before the workflow applies it.

    One UPDATE of the run (with the result itself in ``last_transition``, for a retried attempt
    to answer from) and, for a finished step, one history row.
    """
    change, row = after_directive(spec, step, seq, directive)
    last = {"seq": seq, "step": step, "directive": directive.to_wire()}
    with _atomic():
        update_run(run_id, data=data, last_transition=last, **row_fields(change))
        if row is not None:
            _step_row(run_id, spec, seq, step, row.status, error=row.error)


@_timed("step_failed")
@_committed
def record_step_failed(run_id: int, spec: dict[str, Any], step: str, seq: int, error: str) -> None:
    """A step failed without a result (retries exhausted, timed out, bad target)."""
    change: dict[str, Any] = {"current_step": step, "error": error, **clear_wait()}
    if not spec.get("on_fail"):  # otherwise the run is failed once its @on_fail handler ran
        change["status"] = WorkflowStatus.FAILED
    with _atomic():
        _step_row(run_id, spec, seq, step, StepStatus.FAILED, error=error)
        update_run(run_id, **row_fields(change))


@_timed("failed")
@_committed
def record_finished_failed(run_id: int, data: dict[str, Any], error: str) -> None:
    update_run(run_id, data=data, **row_fields({"error": error, "status": WorkflowStatus.FAILED, **clear_wait()}))


@_timed("completed")
@_committed
def record_completed(run_id: int, step: str, data: dict[str, Any] | None) -> None:
    change = {"status": WorkflowStatus.COMPLETED, "progress": 1.0, "current_step": step, **clear_wait()}
    update_run(run_id, **({"data": data} if data is not None else {}), **row_fields(change))


@_timed("cancelled")
@_committed
def record_cancelled(run_id: int, spec: dict[str, Any], step: str, seq: int, reason: str) -> None:
    change = {
        "status": WorkflowStatus.CANCELLED,
        "current_step": step,
        "error": reason,
        "child_run_id": None,
        **clear_wait(),
    }
    with _atomic():
        _step_row(run_id, spec, seq, step, StepStatus.CANCELLED, error=reason)
        update_run(run_id, **row_fields(change))


@_timed("signal_rejected")
@_committed
def record_signal_rejected(run_id: int, rejection: dict[str, Any]) -> None:
    """Keep the last hand-sent signal the run rejected (semantics: "Signals sent by hand")."""
    WorkflowRun.objects.filter(pk=run_id).update(rejected_signal=rejection)


# The repair notes a row keeps (the newest); older ones are in the worker's log.
REPAIRS_KEPT = 20


def record_reconciled(run_id: int, seen: datetime, fields: dict[str, Any], note: dict[str, Any]) -> bool:
    """Make a row follow its Temporal workflow (the reconciler's repair); returns whether it was written.

    Written only if the row is still unfinished and unchanged since the reconciler read it
    (``updated_at == seen``): a transition, a retry or a start that landed meanwhile wins, and
    a repeated repair finds nothing to do.
    """
    with transaction.atomic():
        row = (
            WorkflowRun.objects.select_for_update()
            .filter(pk=run_id, updated_at=seen)
            .exclude(status__in=WorkflowStatus.finished())
            .values_list("pk", "repairs")
            .first()
        )
        if row is None:
            return False
        kept = [*(row[1] or []), note][-REPAIRS_KEPT:]
        final = fields.get("status") in WorkflowStatus.finished()
        extra = {"agent_key": None} if final else {}
        WorkflowRun.objects.filter(pk=run_id).update(**fields, **extra, repairs=kept, updated_at=timezone.now())
        if final:
            release_ended(run_id)
    return True

"""The reconciler: rows whose workflow Temporal ended, reset or lost follow Temporal again.

The worker writes each transition of a run before the workflow acts on it, so the projection
follows every transition the interpreter makes. What Temporal does to a workflow from outside
(an operator terminates or resets it, an execution timeout runs out, a dev server that keeps no
file forgets it) reaches no activity, and the row would stay unfinished forever. A pass compares
the unfinished rows with Temporal, which is the source of truth, and repairs them
(semantics: "The projection follows Temporal"):

- terminated: failed, ``terminated in Temporal: <reason>``;
- timed out: failed, ``timed out in Temporal (its execution timeout of N s ran out)``;
- failed, cancelled or completed (the run's own record was lost): the same, with its Context;
- reset (running again from an earlier point): the state the workflow holds (step, wait,
  Context), read once it waits or sleeps; the row stays unfinished;
- no such workflow: failed, ``its workflow ... does not exist in Temporal``.

Each repair is logged, and kept on the row (``WorkflowRun.repairs``) for the run page. A pass
checks at most ``RECONCILE_BATCH_SIZE`` rows, each unchanged for ``RECONCILE_GRACE`` seconds (a
start, a retry or a transition in flight is left alone), asking visibility which of them have a
closed or replaced execution (one list call per 100 rows) and describing only those; a server
without visibility has each row described. A database or Temporal outage stops the pass with
one log line and changes nothing more; a repair is written only if the row is still as it was
read (``projection.record_reconciled``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db.models import F
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from temporalio.client import Client, WorkflowExecution, WorkflowExecutionStatus, WorkflowHistoryEventFilterType
from temporalio.service import RPCError, RPCStatusCode

from django_bridge.conf import automation_settings
from django_bridge.models import WorkflowRun
from facade import TemporalUnavailableError
from temporal_worker import client as bridge
from temporal_worker import outages, projection
from temporal_worker.protocol import STATE_QUERY, WorkflowStatus
from temporal_worker.transitions import clear_wait

__all__ = ["PassResult", "Repair", "reconcile", "reconcile_forever", "reconcile_once", "reconcile_settings"]

logger = logging.getLogger("django_temporal_automation")

# Workflow ids per visibility query (one `WorkflowId IN (...)` list call each).
CHUNK = 100
# describe / query calls in flight at once.
CONCURRENCY = 20
# How long the state query of a reset run may take (a worker must answer it).
QUERY_TIMEOUT = timedelta(seconds=10)
# How long one chunk's calls may take in all.
CHUNK_TIMEOUT = 180.0

_CLOSED = {
    WorkflowExecutionStatus.COMPLETED,
    WorkflowExecutionStatus.FAILED,
    WorkflowExecutionStatus.CANCELED,
    WorkflowExecutionStatus.TERMINATED,
    WorkflowExecutionStatus.TIMED_OUT,
}


@dataclass(frozen=True)
class Repair:
    """One row brought in line with Temporal: what happened there, and the fields written."""

    run_id: int
    workflow: str
    what: str  # terminated, timed_out, failed, cancelled, completed, reset, missing
    detail: str  # the sentence the log, the command and the run page show
    from_status: str
    to_status: str
    fields: dict[str, Any]
    temporal_run_id: str
    seen: datetime  # the row's updated_at the decision was made on

    def __str__(self) -> str:
        return f"run {self.run_id} ({self.workflow}): {self.from_status} -> {self.to_status}: {self.detail}"

    def note(self) -> dict[str, Any]:
        """What the row keeps in ``repairs``."""
        return {
            "at": timezone.now().isoformat(),
            "what": self.what,
            "detail": self.detail,
            "from_status": self.from_status,
            "to_status": self.to_status,
            "temporal_run_id": self.temporal_run_id,
        }


@dataclass
class PassResult:
    """What a pass did: rows checked, repairs found and written, and why it stopped early if it did."""

    checked: int = 0
    found: list[Repair] = field(default_factory=list)
    applied: list[Repair] = field(default_factory=list)
    skipped: str = ""  # an outage stopped the pass: the one line that says so
    next_after: int = 0  # the next pass continues after this pk (0: from the start)


class _Misconfigured(Exception):
    """Temporal answered that the namespace does not exist: nothing can be judged from here."""


def reconcile_settings() -> tuple[float, int, float]:
    """``(RECONCILE_INTERVAL, RECONCILE_BATCH_SIZE, RECONCILE_GRACE)``, checked."""
    s = automation_settings
    try:
        interval, batch, grace = float(s.RECONCILE_INTERVAL or 0), int(s.RECONCILE_BATCH_SIZE), float(s.RECONCILE_GRACE)
    except (TypeError, ValueError) as exc:
        raise ImproperlyConfigured(f"AUTOMATION['RECONCILE_*'] settings must be numbers: {exc}") from None
    if interval < 0 or batch < 1 or grace < 0:
        raise ImproperlyConfigured(
            f"AUTOMATION: RECONCILE_INTERVAL ({interval:g}) and RECONCILE_GRACE ({grace:g}) must be >= 0 seconds "
            f"and RECONCILE_BATCH_SIZE ({batch}) >= 1."
        )
    return interval, batch, grace


# ---------------------------------------------------------------------- a pass
def reconcile_once(
    *,
    dry_run: bool = False,
    batch_size: int | None = None,
    grace: float | None = None,
    after: int = 0,
    visibility: bool | None = None,
    on_repair: Callable[[Repair, bool], None] | None = None,
    log: bool = True,
) -> PassResult:
    """Check up to ``batch_size`` unfinished rows with pk > ``after`` against Temporal; repair them.

    ``dry_run`` finds the repairs and writes none. ``visibility=False`` describes every row
    instead of asking visibility first (None: use it when the server has it). ``on_repair`` is
    called with each repair and whether it was written. An outage (database or Temporal) stops
    the pass: ``PassResult.skipped`` says why, in one line. Each repair written and a skipped
    pass are logged, unless ``log`` is false (the command prints them instead).
    """
    _, default_batch, default_grace = reconcile_settings()
    batch = int(batch_size or default_batch)
    grace = default_grace if grace is None else float(grace)
    result = PassResult(next_after=after)
    try:
        rows = _unfinished_rows(after, batch, grace)
        result.next_after = rows[-1].pk if len(rows) == batch else 0
        for start in range(0, len(rows), CHUNK):
            chunk = rows[start : start + CHUNK]
            found = bridge.call(
                "reconciling runs with Temporal",
                functools.partial(_examine_chunk, rows=chunk, visibility=visibility),
                timeout=CHUNK_TIMEOUT,
            )
            result.checked += len(chunk)
            for repair in found:
                result.found.append(repair)
                written = (
                    False
                    if dry_run
                    else projection.record_reconciled(repair.run_id, repair.seen, repair.fields, repair.note())
                )
                if written:
                    result.applied.append(repair)
                    if log:
                        logger.warning("reconciler: %s", repair)
                elif not dry_run and log:
                    logger.info("reconciler: run %s changed meanwhile; left as it is", repair.run_id)
                if on_repair is not None:
                    on_repair(repair, written)
    except TemporalUnavailableError as exc:
        result.skipped = f"the reconciler skipped this pass: {exc.message}"
    except _Misconfigured as exc:
        result.skipped = f"the reconciler skipped this pass: {exc}"
    except Exception as exc:
        if not outages.is_outage(exc):
            raise
        outages.close_connections()
        result.skipped = (
            f"the reconciler skipped this pass: the database is unavailable ({' '.join(str(exc).split())}); "
            "it changes nothing until the database is back"
        )
    if result.skipped and log:
        logger.warning("%s", result.skipped)
    return result


def reconcile(
    *, dry_run: bool = False, batch_size: int | None = None, grace: float | None = None, **kwargs: Any
) -> PassResult:
    """Passes until every unfinished row was checked once (what ``manage.py automation_reconcile`` runs)."""
    total, after = PassResult(), 0
    while True:
        one = reconcile_once(dry_run=dry_run, batch_size=batch_size, grace=grace, after=after, **kwargs)
        total.checked += one.checked
        total.found += one.found
        total.applied += one.applied
        total.skipped = one.skipped
        if one.skipped or not one.next_after:
            return total
        after = one.next_after


async def reconcile_forever(interval: float) -> None:
    """The worker's passes: one every ``interval`` seconds, each continuing where the last stopped."""
    after = 0
    while True:
        await asyncio.sleep(interval)  # not at start: a worker that starts has runs to catch up first
        try:
            after = (await asyncio.to_thread(_pass_in_thread, after)).next_after
        except Exception:
            logger.exception("the reconciler's pass failed; it runs again in %s s", interval)
            after = 0


def _pass_in_thread(after: int) -> PassResult:
    try:
        return reconcile_once(after=after)
    finally:
        # A pool thread, seldom used: keep no connection open between passes (as the outbox sweep).
        outages.close_connections()


def _unfinished_rows(after: int, batch: int, grace: float) -> list[WorkflowRun]:
    quiet_since = timezone.now() - timedelta(seconds=grace)
    return list(
        WorkflowRun.objects.exclude(status__in=WorkflowStatus.finished())
        .exclude(temporal_workflow_id__isnull=True)
        .exclude(temporal_workflow_id="")
        .filter(pk__gt=after, updated_at__lte=quiet_since)
        .annotate(parent_status=F("parent__status"))
        .order_by("pk")
        .only("id", "name", "status", "temporal_workflow_id", "temporal_run_id", "parent_id", "updated_at")[:batch]
    )


# ---------------------------------------------------------------------- asking Temporal
async def _examine_chunk(client: Client, *, rows: list[WorkflowRun], visibility: bool | None) -> list[Repair]:
    listing = await _listing(client, rows) if visibility is not False else None
    candidates = (
        rows
        if listing is None
        else [r for r in rows if _needs_describe(r, listing.get(r.temporal_workflow_id or "", []))]
    )
    outcomes = await bridge.bounded_gather([functools.partial(_examine, client, r) for r in candidates], CONCURRENCY)
    repairs: list[Repair] = []
    for row, outcome in zip(candidates, outcomes, strict=True):
        if isinstance(outcome, _Misconfigured) or (
            isinstance(outcome, BaseException) and bridge.is_unreachable(outcome)
        ):
            raise outcome  # the whole pass stops
        if isinstance(outcome, Exception):  # this row only (refused, unreadable): the others go on
            logger.warning("reconciler: run %s could not be checked: %s", row.pk, " ".join(str(outcome).split()))
        elif isinstance(outcome, BaseException):
            raise outcome
        elif outcome is not None:
            repairs.append(outcome)
    return repairs


def _quotable(workflow_id: str) -> bool:
    return "'" not in workflow_id and "\\" not in workflow_id


async def _listing(client: Client, rows: list[WorkflowRun]) -> dict[str, list[WorkflowExecution]] | None:
    """Every execution visibility knows for these rows' workflow ids; None: no usable visibility."""
    if bridge.server_features.get("visibility") is False:
        return None
    ids = [r.temporal_workflow_id or "" for r in rows if _quotable(r.temporal_workflow_id or "")]
    listing: dict[str, list[WorkflowExecution]] = {}
    if not ids:
        return listing
    query = "WorkflowId IN (" + ", ".join(f"'{i}'" for i in ids) + ")"
    try:
        async for execution in client.list_workflows(query, page_size=1000, limit=20 * len(ids)):
            listing.setdefault(execution.id, []).append(execution)
    except RPCError as err:
        if bridge.is_unreachable(err):
            raise
        # The time-skipping test server has no visibility; old servers may refuse IN.
        logger.info("reconciler: visibility is not usable here (%s); describing each run instead", err.message)
        bridge.server_features["visibility"] = False
        return None
    return listing


def _needs_describe(row: WorkflowRun, executions: list[WorkflowExecution]) -> bool:
    """Whether visibility shows something the row may not follow (describe confirms it)."""
    if not executions:
        return True  # no such workflow (or not visible yet)
    latest = max(executions, key=lambda e: e.start_time)
    if latest.status != WorkflowExecutionStatus.RUNNING:
        return True  # closed, or continued as new into a run not visible yet
    if row.temporal_run_id and latest.run_id != row.temporal_run_id:
        # Another run is current: the row's run was reset (terminated) or continued as new.
        mine = next((e for e in executions if e.run_id == row.temporal_run_id), None)
        return mine is not None and mine.status == WorkflowExecutionStatus.TERMINATED
    return False


async def _examine(client: Client, row: WorkflowRun) -> Repair | None:
    """What the row must become to follow its workflow, or None when it follows it already."""
    workflow_id = row.temporal_workflow_id or ""
    try:
        desc = await client.get_workflow_handle(workflow_id).describe()
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise
        if "namespace" in err.message.lower():
            s = automation_settings
            raise _Misconfigured(
                f"Temporal at {s.TEMPORAL_ADDRESS} has no namespace {s.TEMPORAL_NAMESPACE!r} ({err.message}); "
                "check TEMPORAL_NAMESPACE"
            ) from None
        return _missing(row)
    if desc.status in _CLOSED:
        return await _closed(client, row, desc)
    if desc.status == WorkflowExecutionStatus.RUNNING and row.temporal_run_id and desc.run_id != row.temporal_run_id:
        return await _replaced(client, row, desc)
    return None


def _repair(row: WorkflowRun, what: str, detail: str, to_status: str, fields: dict[str, Any], run_id: str) -> Repair:
    return Repair(
        run_id=row.pk,
        workflow=row.name,
        what=what,
        detail=detail,
        from_status=str(row.status),
        to_status=str(to_status),
        fields={**fields, "status": to_status},
        temporal_run_id=run_id,
        seen=row.updated_at,
    )


def _missing(row: WorkflowRun) -> Repair | None:
    if row.parent_id is not None and row.parent_status not in WorkflowStatus.finished():  # type: ignore[attr-defined]
        # A subflow's workflow is started by its parent's workflow, after the row: while the
        # parent runs it may still come (and if the parent's own workflow is gone, the parent is
        # repaired first, and this row on a later pass).
        return None
    s = automation_settings
    detail = (
        f"its workflow {row.temporal_workflow_id} does not exist in Temporal (namespace {s.TEMPORAL_NAMESPACE} at "
        f"{s.TEMPORAL_ADDRESS}): it never started, or the server lost it (a dev server started without "
        "--db-filename forgets its workflows when it stops). run.retry_current_step() starts it again"
    )
    fields = {
        **projection.row_fields({**clear_wait(), "child_run_id": None}),
        "error": detail,
        "finished_at": timezone.now(),
    }
    return _repair(row, "missing", detail, WorkflowStatus.FAILED, fields, "")


async def _closed(client: Client, row: WorkflowRun, desc: Any) -> Repair:
    """The workflow's current run is closed: the row ends the way it did."""
    event = await _close_event(client.get_workflow_handle(row.temporal_workflow_id or "", run_id=desc.run_id))
    fields: dict[str, Any] = {**projection.row_fields({**clear_wait(), "child_run_id": None})}
    fields["finished_at"] = desc.close_time or timezone.now()
    status = desc.status
    if status == WorkflowExecutionStatus.TERMINATED:
        reason = event.workflow_execution_terminated_event_attributes.reason if event is not None else ""
        detail = f"terminated in Temporal: {reason}" if reason else "terminated in Temporal"
        return _repair(row, "terminated", detail, WorkflowStatus.FAILED, {**fields, "error": detail}, desc.run_id)
    if status == WorkflowExecutionStatus.TIMED_OUT:
        detail = f"timed out in Temporal{_timeout_text(desc)}"
        return _repair(row, "timed_out", detail, WorkflowStatus.FAILED, {**fields, "error": detail}, desc.run_id)
    if status == WorkflowExecutionStatus.CANCELED:
        detail = "cancelled in Temporal"
        return _repair(row, "cancelled", detail, WorkflowStatus.CANCELLED, {**fields, "error": detail}, desc.run_id)
    if status == WorkflowExecutionStatus.FAILED:
        failure = event.workflow_execution_failed_event_attributes.failure if event is not None else None
        message = (failure.message if failure is not None else "") or "failed"
        context = await _context(
            client, failure.application_failure_info.details.payloads if failure is not None else []
        )
        if context is not None:
            fields["data"] = context
        detail = f"failed in Temporal: {message}"
        return _repair(row, "failed", detail, WorkflowStatus.FAILED, {**fields, "error": message}, desc.run_id)
    # COMPLETED
    result = event.workflow_execution_completed_event_attributes.result.payloads if event is not None else []
    context = await _context(client, result)
    if context is not None:
        fields["data"] = context
    fields.update(progress=1.0, error="")
    return _repair(row, "completed", "completed in Temporal", WorkflowStatus.COMPLETED, fields, desc.run_id)


async def _close_event(handle: Any) -> Any:
    """The event that closed the handle's run (it says why: a reason, a failure, a result)."""
    async for event in handle.fetch_history_events(event_filter_type=WorkflowHistoryEventFilterType.CLOSE_EVENT):
        return event
    return None


def _timeout_text(desc: Any) -> str:
    config = desc.raw_description.execution_config
    for name, what in (("workflow_execution_timeout", "execution"), ("workflow_run_timeout", "run")):
        seconds = getattr(config, name).ToTimedelta().total_seconds()
        if seconds:
            return f" (its {what} timeout of {seconds:g} s ran out)"
    return ""


async def _context(client: Client, payloads: Any) -> dict[str, Any] | None:
    """The Context a closed run carried (its result or its failure's details), when it has one."""
    if not payloads:
        return None
    try:
        value = (await client.data_converter.decode(list(payloads)))[0]
    except Exception:  # not ours to read: keep the row's Context
        return None
    context = value.get("context") if isinstance(value, dict) else None
    return context if isinstance(context, dict) else None


async def _replaced(client: Client, row: WorkflowRun, desc: Any) -> Repair | None:
    """Another run of the workflow is current. A reset (the row's run terminated) is followed."""
    workflow_id = row.temporal_workflow_id or ""
    old_handle = client.get_workflow_handle(workflow_id, run_id=row.temporal_run_id)
    try:
        old = await old_handle.describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:  # beyond the namespace's retention: nothing to tell
            return None
        raise
    if old.status != WorkflowExecutionStatus.TERMINATED:
        return None  # continued as new: the same run, in a fresh history
    raw = desc.raw_description
    if raw.pending_activities or raw.pending_children or raw.HasField("pending_workflow_task"):
        # Running again from an earlier point: its steps write the row as they go. Its state is
        # read once it blocks (a wait, a sleep), on a later pass.
        logger.info("reconciler: run %s was reset in Temporal and is busy; it is checked again next pass", row.pk)
        return None
    try:
        state = await client.get_workflow_handle(workflow_id, run_id=desc.run_id).query(
            STATE_QUERY, rpc_timeout=QUERY_TIMEOUT
        )
    except Exception as exc:  # no worker answering, or a worker without this query
        logger.warning("reconciler: run %s was reset in Temporal; its state could not be read (%s)", row.pk, exc)
        return None
    status = state.get("status")
    if status not in WorkflowStatus.values or status in WorkflowStatus.finished():
        return None  # about to close: the next pass sees how
    closing = await _close_event(old_handle)
    reason, identity = "", ""
    if closing is not None:
        attributes = closing.workflow_execution_terminated_event_attributes
        reason, identity = attributes.reason, attributes.identity
    if identity == "history-resetter":  # the server's identity when a reset ends the old run
        detail = f"reset in Temporal{': ' + reason if reason else ''}; now at step {state.get('current_step')!r}"
    else:
        detail = (
            f"restarted in Temporal (run {row.temporal_run_id} was terminated{': ' + reason if reason else ''}); "
            f"now at step {state.get('current_step')!r}"
        )
    wake_at = parse_datetime(state["wake_at"]) if state.get("wake_at") else None
    fields = {
        "current_step": state.get("current_step") or "",
        "progress": float(state.get("progress") or 0.0),
        "waiting_for": state.get("waiting_for") or "",
        "waiting_signal": state.get("waiting_signal") or "",
        "wait_seq": state.get("wait_seq"),
        "on_timeout_step": state.get("on_timeout") or "",
        "waiting_display": state.get("waiting_display") or {},
        "waiting_match": state.get("waiting_match"),
        "completion_display": state.get("completion_display") or {},
        "active_child_id": state.get("child_run_id"),
        "wake_at": wake_at,
        "error": "",
        "finished_at": None,
        "temporal_run_id": desc.run_id,
    }
    if isinstance(state.get("context"), dict):
        fields["data"] = state["context"]
    return _repair(row, "reset", detail, status, fields, desc.run_id)

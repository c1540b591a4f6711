"""Reading a run's timeline from Temporal (semantics: "Timeline").

The run's workflow is described (which execution is current, which activities are still
pending) and its history fetched through the library's client; executions it continued as new
from are followed back, and so are the executions before a retry (found through visibility).
Nothing is written anywhere: the timeline costs the hot path no database write.

A closed execution's history never changes, so its translation is kept in a small in-process
cache; the open execution is read again every time, so a page that refreshes sees every new
entry. When Temporal is unreachable, or has dropped the history (the namespace's retention),
the timeline is built from the run's ``StepExecution`` rows, with a note that says so.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from django_bridge.conf import automation_settings
from django_bridge.models import WorkflowRun
from facade import TemporalUnavailableError
from temporal_worker import client as bridge
from temporal_worker.timeline import (
    ExecutionTimeline,
    Timeline,
    TimelineSource,
    apply_pending,
    from_step_rows,
    translate,
)

__all__ = ["CACHE_SIZE", "MAX_ENTRIES", "MAX_EXECUTIONS", "TIMEOUT", "clear_cache", "run_timeline"]

MAX_EXECUTIONS = 10
"""At most this many Temporal executions (continued as new, or before a retry) per timeline."""
MAX_ENTRIES = 1000
"""At most this many entries, the latest ones (a run looping on a sleep has thousands)."""
CACHE_SIZE = 256
"""Closed executions kept translated in memory (they never change)."""
TIMEOUT = 10.0
"""Seconds a timeline waits for Temporal before it falls back to the step history rows."""

ROWS_ONLY = "showing the step history rows instead (completed and failed steps only)"

_closed: OrderedDict[tuple[str, str, str], ExecutionTimeline] = OrderedDict()
# The run ids that came before an execution a retry started: later retries add later ones only.
_before: OrderedDict[tuple[str, str, str], list[str]] = OrderedDict()
_lock = threading.Lock()


def clear_cache() -> None:
    with _lock:
        _closed.clear()
        _before.clear()


def _remember(cache: OrderedDict[Any, Any], key: Any, value: Any) -> None:
    with _lock:
        cache[key] = value
        while len(cache) > CACHE_SIZE:
            cache.popitem(last=False)


def run_timeline(run: WorkflowRun) -> Timeline:
    """The timeline of ``run``: from its Temporal history, else from its rows with a note why."""
    workflow_id = run.temporal_workflow_id
    if not workflow_id:
        return _from_rows(run, "the run has no Temporal workflow (it never started)")

    async def read(client: Client) -> tuple[list[ExecutionTimeline], list[str]]:
        return await _read(client, workflow_id)

    try:
        executions, notes = bridge.call(
            f"timeline of run {run.pk}", read, timeout=TIMEOUT, workflow=run.name, run_id=run.pk
        )
    except TemporalUnavailableError as exc:
        s = automation_settings
        detail = str(exc.__cause__ or exc).split("\n")[0][:300] or "no answer"
        return _from_rows(
            run, f"Temporal is unreachable at {s.TEMPORAL_ADDRESS} (namespace {s.TEMPORAL_NAMESPACE}): {detail}"
        )
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND and not run.temporal_run_id:
            return _from_rows(run, f"its workflow {workflow_id} never started on Temporal")
        if err.status == RPCStatusCode.NOT_FOUND:
            return _from_rows(
                run,
                f"Temporal has no history of workflow {workflow_id} any more (a closed workflow is kept for "
                "the namespace's retention period)",
            )
        return _from_rows(run, f"Temporal refused to read the history of workflow {workflow_id}: {err.message}")
    entries = [entry for execution in executions for entry in execution.entries]
    if len(entries) > MAX_ENTRIES:
        notes.append(f"showing the last {MAX_ENTRIES} of {len(entries)} entries")
        entries = entries[-MAX_ENTRIES:]
    return Timeline(
        run.pk,
        TimelineSource.TEMPORAL,
        tuple(entries),
        "; ".join(notes),
        tuple(e.run_id for e in executions),
    )


def _from_rows(run: WorkflowRun, why: str) -> Timeline:
    rows = run.step_executions.all()
    return Timeline(
        run.pk,
        TimelineSource.STEP_HISTORY,
        tuple(from_step_rows(rows, run.spec)),
        f"timeline unavailable: {why}; {ROWS_ONLY}",
    )


async def _read(client: Client, workflow_id: str) -> tuple[list[ExecutionTimeline], list[str]]:
    """The executions of the run's workflow, oldest first, and notes on what is left out."""
    notes: list[str] = []
    description = await client.get_workflow_handle(workflow_id).describe()
    current = await _execution(client, workflow_id, description.run_id)
    if description.status == WorkflowExecutionStatus.RUNNING:
        apply_pending(current, description.raw_description.pending_activities)
    chain = [current]
    while chain[0].continued_from:  # continued as new: the earlier histories of the same run
        if len(chain) >= MAX_EXECUTIONS:
            notes.append(
                f"showing the last {MAX_EXECUTIONS} Temporal histories of this run (it continued as new more often)"
            )
            return chain, notes
        try:
            chain.insert(0, await _execution(client, workflow_id, chain[0].continued_from))
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
            notes.append("its earlier Temporal histories are gone (past the namespace's retention period)")
            return chain, notes
    if chain[0].restarted:
        chain[:0] = await _before_retry(client, workflow_id, chain[0], MAX_EXECUTIONS - len(chain), notes)
    return chain, notes


async def _before_retry(
    client: Client, workflow_id: str, first: ExecutionTimeline, room: int, notes: list[str]
) -> list[ExecutionTimeline]:
    """The executions a retry replaced: a retry starts the workflow again under the same id, with
    no link to the execution before it, so they are found through visibility."""
    if first.started_at is None:
        return []
    key = (client.namespace, workflow_id, first.run_id)
    with _lock:
        found = _before.get(key)
    if found is None:
        try:
            listed = [
                e
                async for e in client.list_workflows(f"WorkflowId = {_quoted(workflow_id)}", page_size=100)
                if e.run_id != first.run_id and e.start_time < first.started_at
            ]
        except RPCError as err:
            notes.append(
                f"the Temporal executions before the retry are not shown: visibility cannot list them ({err.message})"
            )
            return []
        found = [e.run_id for e in sorted(listed, key=lambda e: e.start_time)]
        if found:  # none yet may be visibility lagging behind: ask again next time
            _remember(_before, key, found)
    if room <= 0 or len(found) > room:
        notes.append(f"showing the last {MAX_EXECUTIONS} Temporal histories of this run")
        found = found[-room:] if room > 0 else []
    earlier = []
    for run_id in found:
        try:
            earlier.append(await _execution(client, workflow_id, run_id))
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
            notes.append("some earlier Temporal histories are gone (past the namespace's retention period)")
    return earlier


def _quoted(value: str) -> str:
    """A string literal of Temporal's visibility query language."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


async def _execution(client: Client, workflow_id: str, run_id: str) -> ExecutionTimeline:
    key = (client.namespace, workflow_id, run_id)
    with _lock:
        cached = _closed.get(key)
        if cached is not None:
            _closed.move_to_end(key)
            return cached
    history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
    execution = translate(run_id, history.events, client.data_converter.payload_converter)
    if execution.closed:
        _remember(_closed, key, execution)
    return execution

"""The event workflow: one per ``Event`` row, from the moment it matters until it was delivered.

It loads the row (an activity, which also creates, moves or cancels the ``@event_workflow`` runs
due around the event), runs the callbacks still owed (each an activity named after its
function, with its own retry policy; one that keeps failing is recorded and blocks no other),
waits on a durable timer until a pending event is due (re-loading whenever the Django side
signals that the row changed), lets the event occur if its condition still holds then, and
wakes the runs waiting on it. No polling decides when anything happens (semantics: "Model
events").

Like the interpreter it imports only the protocol and temporalio: deterministic, sandbox-safe.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from temporal_worker.protocol import (
        EVENT_CHANGED_SIGNAL,
        EVENT_LOAD_ACTIVITY,
        EVENT_OCCUR_ACTIVITY,
        EVENT_RECORD_ACTIVITY,
        EVENT_SIGNAL_ACTIVITY,
        EVENT_WORKFLOW,
        CallbackCall,
        CallbackInput,
        EventInput,
        EventState,
    )
    from temporal_worker.workflows.timing import wait_until

__all__ = ["EventWorkflow"]

# The Django side's own work (loading rows, starting runs): retried until it goes through.
_LIBRARY_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=10))
_LIBRARY_TIMEOUT = timedelta(minutes=2)


async def _library(activity: str, wire: dict[str, Any], summary: str, heartbeat: float | None = None) -> Any:
    """One of the library's own activities (load, occur, wake, record): retried until done.

    ``heartbeat``: the activity heartbeats, so one cut short by a dead worker is retried after
    that many seconds rather than after its whole timeout (loading runs user code: an agent's
    ``create_context``).
    """
    return await workflow.execute_activity(
        activity,
        wire,
        start_to_close_timeout=_LIBRARY_TIMEOUT,
        heartbeat_timeout=timedelta(seconds=heartbeat) if heartbeat else None,
        retry_policy=_LIBRARY_RETRY,
        summary=summary,
    )


def _retry_policy(spec: dict[str, Any]) -> RetryPolicy:
    return RetryPolicy(
        maximum_attempts=int(spec["max_attempts"]),
        initial_interval=timedelta(seconds=spec["base_delay"]),
        maximum_interval=timedelta(seconds=spec["max_delay"]),
        backoff_coefficient=float(spec["backoff_factor"]),
    )


@workflow.defn(name=EVENT_WORKFLOW)
class EventWorkflow:
    def __init__(self) -> None:
        self.version = 0  # the newest row version the Django side told us about

    @workflow.signal(name=EVENT_CHANGED_SIGNAL)
    def changed(self, version: int) -> None:
        self.version = max(self.version, int(version))

    @workflow.run
    async def run(self, wire: dict[str, Any]) -> dict[str, Any]:
        inp = EventInput.from_wire(wire)
        while True:
            if workflow.info().is_continue_as_new_suggested():
                workflow.continue_as_new(inp.to_wire())
            seen = self.version
            state = EventState.from_wire(
                await _library(
                    EVENT_LOAD_ACTIVITY, inp.to_wire(), f"load {state_label(inp)}", heartbeat=inp.heartbeat_timeout
                )
            )
            if state.callbacks:
                await self._callbacks(inp, state.callbacks)
            known = max(seen, state.version)
            if state.status in ("occurred",):
                if state.signal_waits:
                    await _library(EVENT_SIGNAL_ACTIVITY, inp.to_wire(), f"wake the runs waiting for {state.label}")
                if self._changed_since(known):
                    continue
                return {"status": state.status}
            if state.status in ("cancelled", "gone") or state.at is None:
                if self._changed_since(known):
                    continue
                return {"status": state.status}
            # Pending: sleep until it is due, or until the row changes (its time moved, it was
            # cancelled), whichever comes first.
            if await wait_until(state.at, lambda known=known: self.version > known, f"{state.label} is due"):
                continue  # changed: load it again
            await _library(
                EVENT_OCCUR_ACTIVITY,
                EventInput(inp.event_id, inp.label, state.at, inp.heartbeat_timeout).to_wire(),
                f"{state.label} occurs if its condition still holds",
            )

    def _changed_since(self, known: int) -> bool:
        """Whether the Django side signalled a change newer than the row this pass loaded: the
        workflow then loads the row again instead of ending, or that change (the event pending
        again, occurring again) would have no workflow. Histories recorded before this check
        end as they did (patched)."""
        return self.version > known and workflow.patched("event-reloads-a-change-that-came-while-it-ended")

    async def _callbacks(self, inp: EventInput, calls: tuple[CallbackCall, ...]) -> None:
        """Every callback at once; one that fails for good is recorded and stops no other."""

        async def call(c: CallbackCall) -> None:
            request = CallbackInput(inp.event_id, c.phase, c.name, heartbeat_every=inp.heartbeat_timeout / 3)
            try:
                await workflow.execute_activity(
                    c.name,
                    request.to_wire(),
                    start_to_close_timeout=timedelta(hours=1),
                    heartbeat_timeout=timedelta(seconds=inp.heartbeat_timeout),
                    retry_policy=_retry_policy(c.retry),
                    summary=f"{c.phase} callback of {inp.label or inp.event_id}",
                )
            except ActivityError as err:
                cause = err.cause
                message = getattr(cause, "message", None) or str(cause or err)
                failed = CallbackInput(inp.event_id, c.phase, c.name, error=message)
                await _library(EVENT_RECORD_ACTIVITY, failed.to_wire(), f"record that {c.name} failed")

        await asyncio.gather(*(call(c) for c in calls))


def state_label(inp: EventInput) -> str:
    return inp.label or f"event {inp.event_id}"

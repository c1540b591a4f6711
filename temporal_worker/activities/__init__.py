"""Activities: where user code and Django run.

One dynamic activity serves every step (its type is ``<workflow>.<step>``, readable in the
Temporal UI), every ``@on_fail`` handler, the projection records the workflow asks for, the
event workflow's loads, deliveries and callbacks (typed by the callback's function name), and
agent handlers (typed ``<agent>.<handler>``).
It is synchronous on purpose: the Django ORM is synchronous, and the worker runs it on a
thread pool so a slow step never blocks the worker's event loop.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from django.db import close_old_connections
from temporalio import activity
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError

from django_bridge.models import WorkflowRun
from facade import UnknownWorkflowError
from temporal_worker.protocol import (
    AGENT_RECORD_ACTIVITY,
    AGENT_SYNC_ACTIVITY,
    EVENT_LOAD_ACTIVITY,
    EVENT_OCCUR_ACTIVITY,
    EVENT_RECORD_ACTIVITY,
    EVENT_SIGNAL_ACTIVITY,
    RECORD_ACTIVITY,
    RUN_DELETED,
    SIGNAL_CHECK_ACTIVITY,
    AgentHandlerInput,
    AgentRecord,
    CallbackInput,
    EventInput,
    RecordInput,
    SignalCheck,
    StepInput,
)

from . import agents, events
from .heartbeat import HeartbeatTicker, heartbeats
from .records import record
from .signals import check_signal
from .steps import run_on_fail, run_step
from .worker_info import missing_code_hint, worker_started

# The event workflow's activities, by type; callbacks are typed by their function's name.
_EVENT_ACTIVITIES = {
    EVENT_LOAD_ACTIVITY: events.load_event,
    EVENT_OCCUR_ACTIVITY: events.occur,
    EVENT_SIGNAL_ACTIVITY: events.deliver_signals,
}

__all__ = ["HeartbeatTicker", "dispatch", "heartbeats", "in_flight", "worker_started"]


class InFlight:
    """How many activities this process is running now (a test waits for none before it drops
    the database its rows live in)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0

    def __enter__(self) -> None:
        with self._lock:
            self.count += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.count -= 1


in_flight = InFlight()


@activity.defn(dynamic=True)
def dispatch(args: Sequence[RawValue]) -> dict[str, Any]:
    """Entry point of every activity of the interpreter workflow."""
    with in_flight:
        return _dispatch(args)


def _dispatch(args: Sequence[RawValue]) -> dict[str, Any]:
    wire = activity.payload_converter().from_payload(args[0].payload, dict)
    # Django's request signals never fire in a worker: close stale connections ourselves.
    close_old_connections()
    try:
        activity_type = activity.info().activity_type
        if activity_type in _EVENT_ACTIVITIES:
            event_input = EventInput.from_wire(wire)
            with heartbeats.beating(max(0.5, event_input.heartbeat_timeout / 3)):
                return _EVENT_ACTIVITIES[activity_type](event_input)
        if activity_type == EVENT_RECORD_ACTIVITY:
            return events.record_callback_failure(CallbackInput.from_wire(wire))
        if "callback" in wire:
            return events.run_callback(CallbackInput.from_wire(wire))
        if activity_type == AGENT_SYNC_ACTIVITY:
            return agents.sync(wire)
        if activity_type == AGENT_RECORD_ACTIVITY:
            return agents.record(AgentRecord.from_wire(wire))
        if "agent_handler" in wire:  # typed <agent>.<handler>
            return agents.run_handler(AgentHandlerInput.from_wire(wire))
        if activity_type == SIGNAL_CHECK_ACTIVITY:
            return check_signal(SignalCheck.from_wire(wire))
        if activity_type == RECORD_ACTIVITY:
            try:
                request = RecordInput.from_wire(wire)
            except ValueError as exc:  # an operation this version does not know
                raise ApplicationError(f"cannot record {wire!r}: {exc}", non_retryable=True) from None
            return record(request)
        inp = StepInput.from_wire(wire)
        if inp.on_fail:
            return run_on_fail(inp).to_wire()
        return run_step(inp).to_wire()
    except UnknownWorkflowError as exc:
        # The web process knows the name (it started the run), this worker does not: it runs the
        # code it loaded when it started (semantics: "Workers run the code they started with").
        # Say which worker, since when, and what to do.
        raise UnknownWorkflowError(
            f"{exc.message} {missing_code_hint(activity.info().task_queue)}",
            workflow=exc.workflow,
            run_id=exc.run_id if exc.run_id is not None else wire.get("run_id"),
            step=exc.step,
        ) from None
    except WorkflowRun.DoesNotExist:
        # The row was deleted (admin, a flushed test database): retrying cannot bring it back,
        # and retrying forever would keep the workflow open. End it.
        raise ApplicationError(
            f"workflow {wire.get('workflow')!r} run {wire.get('run_id')}: its WorkflowRun row was deleted, "
            "so the run cannot go on; start a new run.",
            type=RUN_DELETED,
            non_retryable=True,
        ) from None
    finally:
        close_old_connections()

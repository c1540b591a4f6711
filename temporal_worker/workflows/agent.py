"""An agent instance's life as one long-running workflow (semantics: "Agents").

The dynamic interpreter workflow hands a start input carrying ``"agent"`` to :class:`AgentLoop`,
so the instance's Temporal workflow type is the agent's name. The loop keeps what it has been
told about the events it listens to (``EventNotice``s, sent as signals by the Django side when an
event changes), runs each handler once per occurrence as an activity ``<agent>.<handler>`` (one
at a time: they share the Context), waits on a durable timer for timed handlers, and ends only
when completed (``AgentManager.complete``) or cancelled. It continues as new before its history
grows large, carrying its Context, the events it knows and what it has handled.

Deterministic and sandbox-safe like the interpreter: the protocol and temporalio only.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, CancelledError

with workflow.unsafe.imports_passed_through():
    from temporal_worker.protocol import (
        AGENT_RECORD_ACTIVITY,
        AGENT_SYNC_ACTIVITY,
        AgentHandlerInput,
        AgentRecord,
        AgentStart,
        EventNotice,
        HandlerCall,
        WorkflowStatus,
    )

__all__ = ["HISTORY_LIMIT", "AgentLoop"]

# Continue as new past this many history events (the server suggests it later, at about 4,000
# events or 4 MB; an agent handling an event every few seconds gets there in hours).
HISTORY_LIMIT = 2000

_LIBRARY_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=10))
_LIBRARY_TIMEOUT = timedelta(minutes=2)


def _retry_policy(spec: dict[str, Any]) -> RetryPolicy:
    return RetryPolicy(
        maximum_attempts=int(spec["max_attempts"]),
        initial_interval=timedelta(seconds=spec["base_delay"]),
        maximum_interval=timedelta(seconds=spec["max_delay"]),
        backoff_coefficient=float(spec["backoff_factor"]),
    )


def _offset_words(seconds: float) -> str:
    sign = "+" if seconds > 0 else "−"
    value = abs(seconds)
    for unit, size in (("h", 3600), ("min", 60)):
        if value >= size:
            return f"{sign}{value / size:g} {unit}"
    return f"{sign}{value:g} s"


class AgentLoop:
    """The state and loop of one agent instance."""

    def __init__(self) -> None:
        self.start: AgentStart | None = None
        self.context: dict[str, Any] = {}
        self.seq = 0
        self.notices: dict[int, EventNotice] = {}
        self.done: set[str] = set()
        self.changed = False
        self.completing = False
        self.running: str = ""  # the handler running now, for the query

    # ------------------------------------------------------------------ signals and queries
    def notify(self, notice: EventNotice) -> None:
        """An event changed: keep the newest notice of it (older or repeated ones change nothing)."""
        known = self.notices.get(notice.event_id)
        if known is not None and (known.generation, known.version) > (notice.generation, notice.version):
            return
        if known is not None and known.generation == notice.generation and known.version == notice.version:
            # The same change routed twice (a retried delivery): merge the handlers it reaches.
            names = {h.name for h in known.handlers}
            extra = tuple(h for h in notice.handlers if h.name not in names)
            if not extra:
                return
            notice = EventNotice(**{**notice.__dict__, "handlers": known.handlers + extra})
        self.notices[notice.event_id] = notice
        self.changed = True

    def request_completion(self) -> None:
        self.completing = True
        self.changed = True

    def describe(self) -> dict[str, Any]:
        """The query's answer: the live Context, the handler running, the timed handlers ahead."""
        now = workflow.now().timestamp()
        due = [
            {"event": n.label, "event_id": n.event_id, "handler": h.name, "due_at": n.base + h.offset}
            for n in self.notices.values()
            for h in n.handlers
            if h.offset is not None
            and n.base is not None
            and n.key(h.name) not in self.done
            and n.status in ("pending", "occurred")
            and n.base + h.offset > now
        ]
        return {
            "context": self.context,
            "running": self.running,
            "handled": self.seq,
            "timed_handlers": sorted(due, key=lambda d: d["due_at"]),
            "events": sorted(n.label for n in self.notices.values()),
        }

    # ------------------------------------------------------------------ the loop
    async def run(self, start: AgentStart) -> dict[str, Any]:
        self.start = start
        self.context, self.seq = dict(start.context), start.seq
        carried = {n.event_id: n for n in start.notices}
        self.done = set(start.done)
        for notice in carried.values():
            self.notify(notice)
        try:
            if not start.synced:
                # Events that mattered before this instance existed (a scheduled event of the same
                # entity, created in the same save as the spawning one).
                found = await self._library(
                    AGENT_SYNC_ACTIVITY, {"agent_sync": start.agent, "run_id": start.run_id}, "load its events"
                )
                for wire in found.get("notices") or ():
                    self.notify(EventNotice.from_wire(wire))
            while not self.completing:
                self._forget_finished()
                if self._history_is_long() and workflow.all_handlers_finished():
                    workflow.continue_as_new(self._carry().to_wire())
                job = self._next_due()
                if job is not None:
                    await self._handle(*job)
                    continue
                self.changed = False
                timeout, summary = self._next_timer()
                try:
                    await workflow.wait_condition(lambda: self.changed, timeout=timeout, timeout_summary=summary)
                except TimeoutError:
                    pass
        except asyncio.CancelledError:
            reason = workflow.cancellation_reason() or "cancelled"
            await self._record(AgentRecord(start.run_id, start.agent, WorkflowStatus.CANCELLED.value, reason=reason))
            raise
        await self._record(AgentRecord(start.run_id, start.agent, WorkflowStatus.COMPLETED.value))
        await workflow.wait_condition(workflow.all_handlers_finished)
        return {"status": WorkflowStatus.COMPLETED.value, "context": self.context, "run_id": start.run_id}

    def _history_is_long(self) -> bool:
        info = workflow.info()
        return info.is_continue_as_new_suggested() or info.get_current_history_length() > HISTORY_LIMIT

    def _carry(self) -> AgentStart:
        assert self.start is not None
        return AgentStart(
            run_id=self.start.run_id,
            agent=self.start.agent,
            context=self.context,
            seq=self.seq,
            notices=tuple(self.notices.values()),
            done=tuple(sorted(self.done)),
            synced=True,
            heartbeat_timeout=self.start.heartbeat_timeout,
        )

    def _due_at(self, notice: EventNotice, call: HandlerCall) -> float | None:
        """When ``call`` runs for ``notice``: now for an occurred event's plain handler, at the
        event's time plus the offset for a timed one; None when it never will."""
        if notice.status not in ("pending", "occurred"):
            return None
        if call.offset is None:
            return 0.0 if notice.status == "occurred" else None
        if notice.base is None:
            return None
        return notice.base + call.offset

    def _next_due(self) -> tuple[EventNotice, HandlerCall] | None:
        now = workflow.now().timestamp()
        ready = [
            (due, n.event_id, n, h)
            for n in self.notices.values()
            for h in n.handlers
            if n.key(h.name) not in self.done and (due := self._due_at(n, h)) is not None and due <= now
        ]
        if not ready:
            return None
        _, _, notice, call = min(ready, key=lambda r: (r[0], r[1], r[3].name))
        return notice, call

    def _next_timer(self) -> tuple[float | None, str | None]:
        now = workflow.now().timestamp()
        ahead = [
            (due, n, h)
            for n in self.notices.values()
            for h in n.handlers
            if n.key(h.name) not in self.done and (due := self._due_at(n, h)) is not None and due > now
        ]
        if not ahead:
            return None, None
        due, notice, call = min(ahead, key=lambda a: a[0])
        return due - now, f"{call.name} at {notice.label} {_offset_words(call.offset or 0)}"

    def _forget_finished(self) -> None:
        """Drop the events with nothing left to run (the Django side refuses a repeat anyway)."""
        for event_id, notice in list(self.notices.items()):
            owed = [h for h in notice.handlers if notice.key(h.name) not in self.done]
            if notice.status == "cancelled" or (notice.status == "occurred" and not owed):
                del self.notices[event_id]
                self.done -= {notice.key(h.name) for h in notice.handlers}

    async def _handle(self, notice: EventNotice, call: HandlerCall) -> None:
        assert self.start is not None
        self.seq += 1
        request = AgentHandlerInput(
            self.start.run_id,
            self.start.agent,
            call.name,
            notice.event_id,
            notice.generation,
            self.seq,
            heartbeat_every=self.start.heartbeat_timeout / 3,
        )
        self.running = call.name
        try:
            result = await workflow.execute_activity(
                f"{self.start.agent}.{call.name}",
                request.to_wire(),
                start_to_close_timeout=timedelta(hours=1),
                heartbeat_timeout=timedelta(seconds=self.start.heartbeat_timeout),
                retry_policy=_retry_policy(call.retry),
                summary=f"{call.name} for {notice.label}",
            )
            if isinstance(result, dict) and isinstance(result.get("context"), dict):
                self.context = result["context"]
        except ActivityError as err:
            cause = err.cause
            if isinstance(cause, CancelledError):  # the instance was cancelled while it ran
                raise asyncio.CancelledError() from err
            message = getattr(cause, "message", None) or str(cause or err)
            failed = AgentHandlerInput(**{**request.__dict__, "error": message})
            await self._record(AgentRecord(self.start.run_id, self.start.agent, handler=failed))
        finally:
            self.running = ""
        self.done.add(notice.key(call.name))

    async def _record(self, record: AgentRecord) -> None:
        what = record.status or f"{record.handler.handler if record.handler else ''} failed"
        await self._library(AGENT_RECORD_ACTIVITY, record.to_wire(), f"record: {what}")

    async def _library(self, activity: str, wire: dict[str, Any], summary: str) -> Any:
        return await workflow.execute_activity(
            activity, wire, start_to_close_timeout=_LIBRARY_TIMEOUT, retry_policy=_LIBRARY_RETRY, summary=summary
        )

"""The activities of the event workflow: load an Event row, let it occur, deliver it.

Loading also keeps the ``@event_workflow`` runs of the event in step with it: a run exists,
waiting, from the moment its due time (the event's time plus its offset) is known; it moves when
that time moves, and is cancelled with the event. Each (event, workflow, offset) gets one run per
time the event is pending (``Event.generation``), keyed by its Temporal workflow id, so a
repeated load starts nothing twice (semantics: "Model events").
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from django_bridge.conf import automation_settings
from django_bridge.event_rows import condition_holds, definitions_of, event_label
from django_bridge.models import Event, WorkflowRun
from facade import AutomationError, registry
from facade.contract import WorkflowDefinition
from temporal_worker import agents, claims, outages, projection
from temporal_worker import client as bridge
from temporal_worker.engine import engine
from temporal_worker.matching import entity_matches
from temporal_worker.protocol import (
    RESCHEDULE_SIGNAL,
    CallbackCall,
    CallbackInput,
    EventInput,
    EventState,
    WorkflowStatus,
    event_signal,
)
from temporal_worker.spec import compile_spec, retry_spec

from .heartbeat import heartbeats

__all__ = ["deliver_signals", "load_event", "occur", "record_callback_failure", "run_callback"]

logger = logging.getLogger("django_temporal_automation")


# ---------------------------------------------------------------------- load
def load_event(inp: EventInput) -> dict[str, Any]:
    event = outages.retrying(f"event {inp.event_id}: loading it", lambda: _get(inp.event_id))
    if event is None:
        return EventState("gone", 0).to_wire()
    label = event_label(event)
    # While a run holds a claim on this event, only it receives the event (semantics: "Claims").
    holder = outages.retrying(f"event {inp.event_id}: checking claims", lambda: claims.claimed_by(event))
    _sync_runs(event, label, holder)
    agents.route(event, told=inp.agents_told)
    delivered = event.delivered or {}
    owed: list[CallbackCall] = []
    phases = ["created"] + ([event.status] if event.status in ("occurred", "cancelled") else [])
    for phase in phases:
        done = delivered.get(phase) or {}
        for callback in registry.callbacks(event.event_name, phase):  # type: ignore[arg-type]
            if callback.name in done:
                continue
            if phase == "occurred" and holder is not None and not callback.ignores_claims:
                _record(event.pk, phase, callback.name, {"status": "skipped", "reason": f"claimed by run {holder}"})
                continue
            owed.append(CallbackCall(phase, callback.name, retry_spec(callback.retry)))
    at = event.at.timestamp() if event.status == Event.Status.PENDING and event.at else None
    return EventState(
        status=event.status,
        version=event.version,
        at=at,
        label=label,
        callbacks=tuple(owed),
        signal_waits=event.status == Event.Status.OCCURRED and "signals" not in delivered and _awaited(event),
    ).to_wire()


def _awaited(event: Event) -> bool:
    """Whether a run waits for this event now: most events wake none, and then the event's
    workflow ends without the activity that wakes them (an indexed lookup instead of a task)."""
    name = event_signal(event.event_name)
    return WorkflowRun.objects.filter(status=WorkflowStatus.SUSPENDED, waiting_signal=name).exists()


def _get(event_id: int) -> Event | None:
    return Event.objects.select_related("content_type").filter(pk=event_id).first()


def _sync_runs(event: Event, label: str, holder: int | None) -> None:
    """Create, move or cancel the event's ``@event_workflow`` runs to match the row (while the
    event is claimed, no new run is created for it)."""
    for definition in registry.event_workflows(event.event_name):
        assert definition.trigger is not None
        offset = definition.trigger.offset_seconds
        workflow_id = f"{definition.name}-event{event.pk}-g{event.generation}-o{int(offset)}"
        run = WorkflowRun.objects.filter(temporal_workflow_id=workflow_id).first()
        if event.status == Event.Status.CANCELLED:
            if run is not None and _not_started(run):
                engine.cancel(run.pk, reason=f"{label} was cancelled", wait=10)
            continue
        base = event.at or event.occurred_at  # the event's time: due, or when it occurred (immediate)
        if base is None:
            continue
        due = base + timedelta(seconds=offset)
        summary = f"{label}: {definition.name} at {_offset_words(offset)}"
        if run is None:
            if holder is not None:
                _record(event.pk, "runs", definition.name, {"status": "skipped", "reason": f"claimed by run {holder}"})
                continue
            _create_run(event, definition, workflow_id, due, summary)
        elif _not_started(run) and run.wake_at != due:
            _reschedule(run, due)


def _offset_words(seconds: float) -> str:
    if seconds == 0:
        return "the event's time"
    sign = "+" if seconds > 0 else "−"
    minutes = abs(seconds) / 60
    return f"{sign}{minutes:g} min"


def _not_started(run: WorkflowRun) -> bool:
    """A run still waiting for its due time: nothing has run yet, so it may move or be cancelled."""
    return run.status == WorkflowStatus.WAITING and not run.last_transition


def _create_run(event: Event, definition: WorkflowDefinition, workflow_id: str, due: Any, summary: str) -> None:
    try:
        ctx = definition.create_context(event=event)
    except Exception as exc:  # the user's create_context: retrying the load would not help
        message = exc.message if isinstance(exc, AutomationError) else f"{type(exc).__name__}: {exc}"
        _record(event.pk, "runs", definition.name, {"status": "failed", "error": f"create_context: {message}"})
        logger.error("%s: no %s run, its create_context raised: %s", event_label(event), definition.name, message)
        return
    spec = compile_spec(definition)
    with transaction.atomic():
        run, created = WorkflowRun.objects.get_or_create(
            temporal_workflow_id=workflow_id,
            defaults={
                "name": definition.name,
                "version": definition.version,
                "data": ctx.model_dump(mode="json"),
                "spec": spec,
                "task_queue": event_task_queue(),
                "event": event,
                "current_step": definition.start_step,
                "status": WorkflowStatus.WAITING,
                "wake_at": due,
            },
        )
    engine.start_created(run, due_at=due.timestamp(), due_summary=summary)


def event_task_queue() -> str:
    return str(automation_settings.TASK_QUEUE)


def _reschedule(run: WorkflowRun, due: Any) -> None:
    async def send() -> None:
        client = await bridge.get_client()
        await client.get_workflow_handle(run.temporal_workflow_id or "").signal(RESCHEDULE_SIGNAL, due.timestamp())

    bridge.run_sync(send(), timeout=60)
    projection.update_run(run.pk, wake_at=due)


# ---------------------------------------------------------------------- occur
def occur(inp: EventInput) -> dict[str, Any]:
    """A pending event is due: it occurs if its entity still exists and its condition holds.

    Due by the workflow's timer, not by this machine's clock (they differ on the time-skipping
    test server): it occurs only if the row is still due at the time the timer waited for.
    """

    def work() -> None:
        with transaction.atomic():
            event = Event.objects.select_for_update().select_related("content_type").filter(pk=inp.event_id).first()
            if event is None or event.status != Event.Status.PENDING or event.at is None:
                return
            if inp.at is None or abs(event.at.timestamp() - inp.at) > 0.001:
                return  # it moved meanwhile; the workflow loads it again
            entity = event.entity
            definition = (
                next((d for d in definitions_of(type(entity)) if d.name == event.event_name), None) if entity else None
            )
            holds = entity is not None and definition is not None and condition_holds(definition, entity)
            status = Event.Status.OCCURRED if holds else Event.Status.CANCELLED
            fields: dict[str, Any] = {"status": status}
            if holds:
                fields["occurred_at"] = timezone.now()
            Event.objects.filter(pk=event.pk).update(**fields)

    outages.retrying(f"event {inp.event_id}: letting it occur", work)
    return {}


# ---------------------------------------------------------------------- signals
def deliver_signals(inp: EventInput) -> dict[str, Any]:
    """Wake the runs waiting for this event (those whose ``match`` fits its entity)."""
    event = outages.retrying(f"event {inp.event_id}: loading it", lambda: _get(inp.event_id))
    if event is None or (event.delivered or {}).get("signals") is not None:
        return {}
    name = event_signal(event.event_name)
    payload = {
        "event_id": event.pk,
        "event_name": event.event_name,
        "entity_id": event.entity_id,
        "event_at": (event.occurred_at or event.at or timezone.now()).isoformat(),
    }
    waiting = list(
        WorkflowRun.objects.filter(status=WorkflowStatus.SUSPENDED, waiting_signal=name).only(
            "id", "name", "data", "waiting_match"
        )
    )
    reached = 0
    holder = claims.claimed_by(event)
    for run in waiting:
        if holder not in (None, run.pk):
            continue  # claimed: only the holder receives it (semantics: "Claims")
        if run.waiting_match and not entity_matches(event, run.waiting_match, run.data):
            continue
        try:
            # The event's data merges into the Context fields of those names; other keys are
            # expected, not misspelt (semantics: "Waiting for an event").
            reached += engine.send_signal(name, payload, run_id=run.pk, unknown_keys="ignore").reached
        except AutomationError as exc:  # a payload this run's Context refuses: the others still get it
            logger.warning("%s did not wake run %s: %s", event_label(event), run.pk, exc.message)
    _record(event.pk, "signals", None, reached)
    return {"reached": reached}


# ---------------------------------------------------------------------- callbacks
def run_callback(inp: CallbackInput) -> dict[str, Any]:
    """Call one callback with the Event (once: a callback that completed is not called again)."""
    callback = registry.callback(inp.phase, inp.name)  # type: ignore[arg-type]
    event = outages.retrying(f"event {inp.event_id}: loading it", lambda: _get(inp.event_id))
    if event is None:
        return {"skipped": "the event row is gone"}
    if ((event.delivered or {}).get(inp.phase) or {}).get(inp.name, {}).get("status") == "completed":
        return {"skipped": "already called"}
    with heartbeats.beating(max(0.5, inp.heartbeat_every)):
        callback.fn(event)
    _record(event.pk, inp.phase, inp.name, {"status": "completed", "at": timezone.now().isoformat()})
    return {}


def record_callback_failure(inp: CallbackInput) -> dict[str, Any]:
    _record(
        inp.event_id,
        inp.phase,
        inp.name,
        {"status": "failed", "error": inp.error or "", "at": timezone.now().isoformat()},
    )
    logger.error("callback %s of event %s failed for good: %s", inp.name, inp.event_id, inp.error)
    return {}


def _record(event_id: int, section: str, key: str | None, value: Any) -> None:
    """Write one entry of ``Event.delivered`` (read, change, write: one writer per event)."""

    def work() -> None:
        with transaction.atomic():
            event = Event.objects.select_for_update().filter(pk=event_id).first()
            if event is None:
                return
            delivered = dict(event.delivered or {})
            if key is None:
                delivered[section] = value
            else:
                delivered[section] = {**(delivered.get(section) or {}), key: value}
            Event.objects.filter(pk=event_id).update(delivered=delivered, updated_at=timezone.now())

    outages.retrying(f"event {event_id}: recording a delivery", work)

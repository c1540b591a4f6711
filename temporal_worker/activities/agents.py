"""The activities of an agent instance: its handlers, the events it already has, and its records.

A handler runs with the instance's Context bound (``def h(self, ctx)``, ``get_context()``, and an
``event`` parameter if it takes one); its changes are saved with a history row, in one
transaction, and the instance's route index follows the new Context. Before it runs it checks
again what may have changed since the event was routed (the event's entity, the match, claims, the
condition), and that this (instance, handler, occurrence) has not run already (semantics: "Agents").
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.utils import timezone
from temporalio import activity

from django_bridge.models import Event, StepExecution, WorkflowRun
from facade import registry
from facade.contract import AgentDefinition, HandlerDef, bind_context
from temporal_worker import agents, claims, outages, tracing
from temporal_worker.display import history_display
from temporal_worker.matching import entity_matches
from temporal_worker.protocol import AgentHandlerInput, AgentRecord, StepStatus, WorkflowStatus

from .heartbeat import heartbeats

__all__ = ["record", "run_handler", "sync"]

logger = logging.getLogger("django_temporal_automation")


def _key(inp: AgentHandlerInput) -> str:
    return f"{inp.run_id}:{inp.handler}:{inp.generation}"


def _load(inp: AgentHandlerInput) -> tuple[WorkflowRun, Event | None]:
    run = WorkflowRun.objects.get(pk=inp.run_id)
    event = Event.objects.select_related("content_type").filter(pk=inp.event_id).first()
    return run, event


def _skip_reason(
    definition: AgentDefinition, h: HandlerDef, run: WorkflowRun, event: Event | None, ctx: Any, key: str
) -> str | None:
    if event is None:
        return "the event row is gone"
    if ((event.delivered or {}).get("agent_handlers") or {}).get(key, {}).get("status") in (
        "completed",
        "failed",
    ):
        return "already handled"
    match = definition.match_for(h)
    if match and not entity_matches(event, match, run.data or {}):
        return "the event's entity no longer matches"
    holder = claims.claimed_by(event)
    if holder not in (None, run.pk) and not h.ignores_claims:
        return f"claimed by run {holder}"
    if h.condition is not None and not h.condition(event, ctx):
        return "its condition is false"
    return None


def run_handler(inp: AgentHandlerInput) -> dict[str, Any]:
    """One attempt of a handler; its exceptions are retried by Temporal with the handler's Retry."""
    definition = registry.agent(inp.agent)
    h = definition.handlers.get(inp.handler)
    if h is None:
        return {"skipped": f"{inp.agent} has no handler {inp.handler!r} any more"}
    run, event = outages.retrying(f"agent {inp.agent} #{inp.run_id}: loading it", lambda: _load(inp))
    if run.status != WorkflowStatus.RUNNING:
        return {"skipped": f"the instance is {run.status}"}
    ctx = definition.context_class.model_validate(run.data or {})
    reason = _skip_reason(definition, h, run, event, ctx, _key(inp))
    if reason is not None:
        if event is not None and reason != "already handled":
            _deliver(event.pk, _key(inp), {"status": "skipped", "reason": reason})
        return {"skipped": reason, "context": run.data}
    instance = definition.cls()
    instance.context = ctx
    positional = [ctx] if h.takes_ctx else []
    args = {"event": event} if h.takes_event else {}
    span = tracing.step_span(inp.agent, run.pk, h.name, seq=inp.seq, attempt=activity.info().attempt, kind="handler")
    try:
        with span, bind_context(ctx, run_id=run.pk), heartbeats.beating(max(0.5, inp.heartbeat_every)):
            h.fn(instance, *positional, **args)
    except Exception:
        # Keep what the attempt changed, as a step does, then let Temporal retry it.
        outages.retrying(f"agent {inp.agent} #{run.pk}: saving", lambda: _save_context(run.pk, ctx))
        raise
    data = ctx.model_dump(mode="json")
    outages.retrying(f"agent {inp.agent} #{run.pk}: recording {h.name}", lambda: _completed(inp, definition, data))
    return {"context": data}


def _save_context(run_id: int, ctx: Any) -> None:
    WorkflowRun.objects.filter(pk=run_id).update(data=ctx.model_dump(mode="json"), updated_at=timezone.now())


def _completed(inp: AgentHandlerInput, definition: AgentDefinition, data: dict[str, Any]) -> None:
    with transaction.atomic():
        run = WorkflowRun.objects.select_for_update().get(pk=inp.run_id)
        later = int((run.last_transition or {}).get("seq") or 0) > inp.seq
        changed = run.data != data and not later
        if not later:
            # An attempt that Temporal gave up on (timed out) may finish after the instance went
            # on to its next handler: its Context must not overwrite the newer one.
            WorkflowRun.objects.filter(pk=run.pk).update(
                data=data,
                current_step=inp.handler,
                last_transition={"seq": inp.seq, "step": inp.handler},
                updated_at=timezone.now(),
            )
        StepExecution.objects.bulk_create(
            [
                StepExecution(
                    run_id=run.pk,
                    seq=inp.seq,
                    step_name=inp.handler,
                    status=StepStatus.COMPLETED,
                    step_display=history_display({}, inp.handler),
                )
            ],
            ignore_conflicts=True,
        )
        if changed:
            agents.write_routes(run, definition, data)
        _deliver(inp.event_id, _key(inp), {"status": "completed", "at": timezone.now().isoformat()})


def _deliver(event_id: int, key: str, value: dict[str, Any]) -> None:
    """Record on the event what one instance's handler did with it (the guard against repeats)."""
    with transaction.atomic():
        event = Event.objects.select_for_update().filter(pk=event_id).first()
        if event is None:
            return
        delivered = dict(event.delivered or {})
        delivered["agent_handlers"] = {**(delivered.get("agent_handlers") or {}), key: value}
        Event.objects.filter(pk=event_id).update(delivered=delivered)


def sync(wire: dict[str, Any]) -> dict[str, Any]:
    """A new instance asks for the events that matter to it already (see notices_for_new_instance)."""
    run = outages.retrying(
        f"agent {wire.get('agent_sync')} #{wire.get('run_id')}: loading it",
        lambda: WorkflowRun.objects.select_related("event").get(pk=int(wire["run_id"])),
    )
    notices = outages.retrying(
        f"agent {run.name} #{run.pk}: finding its events", lambda: agents.notices_for_new_instance(run)
    )
    return {"notices": [n.to_wire() for n in notices]}


def record(rec: AgentRecord) -> dict[str, Any]:
    if rec.handler is not None:
        inp = rec.handler
        error = inp.error or "failed"

        def failed() -> None:
            with transaction.atomic():
                StepExecution.objects.bulk_create(
                    [
                        StepExecution(
                            run_id=inp.run_id,
                            seq=inp.seq,
                            step_name=inp.handler,
                            status=StepStatus.FAILED,
                            error=error,
                            step_display=history_display({}, inp.handler),
                        )
                    ],
                    ignore_conflicts=True,
                )
                WorkflowRun.objects.filter(pk=inp.run_id).update(
                    error=f"handler {inp.handler} failed: {error}", updated_at=timezone.now()
                )
                _deliver(
                    inp.event_id, _key(inp), {"status": "failed", "error": error, "at": timezone.now().isoformat()}
                )

        outages.retrying(f"agent {rec.agent} #{rec.run_id}: recording a failed handler", failed)
        logger.error("agent %s #%s: handler %s failed for good: %s", rec.agent, rec.run_id, inp.handler, error)
        return {}
    outages.retrying(
        f"agent {rec.agent} #{rec.run_id}: recording its end", lambda: agents.ended(rec.run_id, rec.status, rec.reason)
    )
    return {}

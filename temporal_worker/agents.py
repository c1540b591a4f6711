"""Agents on the Django side: routing events to instances, spawning them, and ``AgentManager``.

An instance is a ``WorkflowRun`` row (``kind="agent"``: its ``data`` is the Context, its
``StepExecution`` rows the handlers it ran) and one long-running Temporal workflow whose type is
the agent's name. Every change of an event an agent listens to is routed here from the event's
workflow: the instances whose rendered ``match`` selects the event's entity are found through the
``AgentRoute`` index, claims are applied, a spawn event with no instance to go to creates one, and
each instance gets an ``EventNotice`` by signal-with-start (semantics: "Agents").
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from asgiref.sync import sync_to_async
from django.db import IntegrityError, transaction
from django.db.models import Max, Q, QuerySet
from django.utils import timezone

from django_bridge.conf import automation_settings
from django_bridge.event_rows import event_label, models_defining
from django_bridge.models import AgentRoute, Event, StepExecution, WorkflowRun
from facade import InvalidInputError, RunStateError, WorkflowStatus, registry
from facade.contract import AgentDefinition, HandlerDef
from temporal_worker import claims, projection
from temporal_worker import client as bridge
from temporal_worker.matching import (
    entity_index_keys,
    entity_matches,
    index_entry,
    indexed_match_holds,
    match_hash,
    render_match,
)
from temporal_worker.protocol import (
    AGENT_COMPLETE_SIGNAL,
    AgentStart,
    EventNotice,
    HandlerCall,
    event_signal,
)
from temporal_worker.spec import retry_spec

__all__ = ["AgentManager", "concerns_agents", "notices_for_new_instance", "route", "spawn", "tell_now", "write_routes"]

logger = logging.getLogger("django_temporal_automation")

# Signal-with-start calls in flight at once when one event reaches many instances.
CONCURRENCY = 50
# A new instance looks at no more entities than this per match for the events it already has.
SYNC_LIMIT = 1000


# ---------------------------------------------------------------------- the route index
def _routes_of(definition: AgentDefinition, data: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """``(event_name, handler, rendered match)`` for every way an event reaches this instance."""
    rows: list[tuple[str, str, dict[str, Any]]] = []
    for event_name in sorted(definition.event_names()):
        handlers = [h for h in definition.handlers.values() if h.event_name == event_name]
        if event_name == definition.spawn_on or any(h.match is None for h in handlers):
            rows.append((event_name, "", render_match(definition.match or {}, data)))
        rows.extend((event_name, h.name, render_match(h.match, data)) for h in handlers if h.match is not None)
    return rows


def write_routes(run: WorkflowRun, definition: AgentDefinition, data: dict[str, Any]) -> None:
    """Index the instance's rendered matches (again, when its Context changed them)."""
    wanted = _routes_of(definition, data)
    have = sorted((r.event_name, r.handler, r.match) for r in AgentRoute.objects.filter(run=run))
    if have == sorted(wanted, key=lambda w: (w[0], w[1])) or have == sorted(wanted):
        return
    with transaction.atomic():
        AgentRoute.objects.filter(run=run).delete()
        AgentRoute.objects.bulk_create(
            [
                AgentRoute(
                    run=run,
                    agent=definition.name,
                    event_name=event_name,
                    handler=handler,
                    match=match,
                    keyset=index_entry(match)[0],
                    key=index_entry(match)[1],
                )
                for event_name, handler, match in wanted
            ]
        )


def find_instances(definition: AgentDefinition, event: Event, handler: HandlerDef | None) -> list[int]:
    """The active instances whose match (the handler's own, or the agent's) selects the entity."""
    routes = AgentRoute.objects.filter(
        agent=definition.name,
        event_name=event.event_name,
        handler=handler.name if handler is not None and handler.match is not None else "",
    )
    keysets = set(routes.values_list("keyset", flat=True).distinct())
    if not keysets:
        return []
    query = Q()
    entity_keys = entity_index_keys(event, keysets)
    for keyset, keys in entity_keys.items():
        query |= Q(keyset=keyset) if keys is None else Q(keyset=keyset, key__in=keys)
    found = []
    for run_id, match in routes.filter(query).order_by("run_id").values_list("run_id", "match"):
        if indexed_match_holds(event, match, entity_keys):
            found.append(run_id)
    return found


# ---------------------------------------------------------------------- routing
def _base(event: Event) -> float | None:
    when = event.at or event.occurred_at
    return when.timestamp() if when is not None else None


def _reaches(handler: HandlerDef, event: Event) -> bool:
    """Whether this change of the event concerns the handler: a plain handler acts when the event
    occurs, a timed one from the moment its time is known (and must hear of a cancellation)."""
    if handler.timed:
        return True
    return event.status == Event.Status.OCCURRED


def notice(event: Event, handlers: list[HandlerDef], label: str | None = None) -> EventNotice:
    return EventNotice(
        event_id=event.pk,
        event_name=event.event_name,
        status=event.status,
        version=event.version,
        generation=event.generation,
        base=_base(event),
        label=label or event_label(event),
        handlers=tuple(
            HandlerCall(h.name, h.offset_seconds if h.timed else None, retry_spec(h.retry))
            for h in sorted(handlers, key=lambda h: h.name)
        ),
    )


def _targets(event: Event, holder: int | None) -> dict[int, tuple[AgentDefinition, list[HandlerDef]]]:
    """The active instances this change of ``event`` concerns, with the handlers it reaches."""
    targets: dict[int, tuple[AgentDefinition, list[HandlerDef]]] = {}
    for definition in registry.agents(event.event_name):
        handlers = [h for h in definition.handlers.values() if h.event_name == event.event_name and _reaches(h, event)]
        for h in handlers:
            for run_id in find_instances(definition, event, h):
                if holder not in (None, run_id) and not h.ignores_claims:
                    continue  # claimed by another holder (semantics: "Claims")
                targets.setdefault(run_id, (definition, []))[1].append(h)
    return targets


def concerns_agents(event_name: str) -> bool:
    """Whether any agent spawns on or handles events of this name."""
    return bool(registry.agents(event_name))


def change_key(event: Event) -> str:
    """Names one change of an event row: what the instances were told of."""
    return f"{event.generation}/{event.version}/{event.status}"


def tell_now(events: list[Event]) -> dict[int, str]:
    """Right after the commit, from the dispatch: tell the active instances each change concerns.

    Returns ``{event id: change_key}`` of the changes that were told, which the event's workflow
    then does not tell again (it still spawns new instances: that runs ``create_context``, user
    code, which belongs in the worker). An error leaves the telling to the event's workflow.
    """
    told: dict[int, str] = {}
    sends: list[tuple[WorkflowRun, AgentDefinition, EventNotice]] = []
    for event in events:
        if not concerns_agents(event.event_name):
            continue
        sends.extend(_notices(event, _targets(event, claims.claimed_by(event)), event_label(event)))
        told[event.pk] = change_key(event)
    _send(sends)
    return told


def route(event: Event, *, told: str | None = None) -> int:
    """Send this change of ``event`` to the agent instances it concerns, spawning where due.

    ``told``: the change the dispatch already told the active instances of (see
    :func:`tell_now`); when the row is still at that change, only spawning is left. Returns how
    many instances were told. Repeating it is harmless: an instance keeps the newest notice of
    each event and runs each handler once per occurrence.
    """
    agents = registry.agents(event.event_name)
    if not agents:
        return 0
    holder = claims.claimed_by(event)
    label = event_label(event)
    targets = {} if told == change_key(event) else _targets(event, holder)
    for definition in agents:
        if (
            event.status == Event.Status.OCCURRED
            and event.event_name == definition.spawn_on
            and holder is None
            and not (definition.singleton and find_instances(definition, event, None))
        ):
            run = spawn(definition, event)
            if run is not None and not run.is_finished:
                on_spawn = [
                    h
                    for h in definition.handlers.values()
                    if h.event_name == event.event_name
                    and (h.match is None or entity_matches(event, h.match, run.data))
                ]
                known = targets.setdefault(run.pk, (definition, []))[1]
                known.extend(h for h in on_spawn if h not in known)
    return _send(_notices(event, targets, label))


def _notices(
    event: Event, targets: dict[int, tuple[AgentDefinition, list[HandlerDef]]], label: str
) -> list[tuple[WorkflowRun, AgentDefinition, EventNotice]]:
    if not targets:
        return []
    runs = {r.pk: r for r in WorkflowRun.objects.filter(pk__in=targets, status=WorkflowStatus.RUNNING)}
    return [(runs[pk], definition, notice(event, hs, label)) for pk, (definition, hs) in targets.items() if pk in runs]


def _send(sends: list[tuple[WorkflowRun, AgentDefinition, EventNotice]]) -> int:
    """Signal-with-start each instance: a running one gets the signal, a row whose workflow never
    started (its spawn was interrupted) is started now, a closed one is left closed."""
    if not sends:
        return 0
    from temporalio.common import WorkflowIDReusePolicy
    from temporalio.exceptions import WorkflowAlreadyStartedError

    starts = {run.pk: _start_input(run) for run, _, _ in sends}

    async def send_all(client: Any) -> int:
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one(run: WorkflowRun, definition: AgentDefinition, n: EventNotice) -> int:
            async with gate:
                try:
                    await client.start_workflow(
                        definition.name,
                        starts[run.pk].to_wire(),
                        id=run.temporal_workflow_id or "",
                        task_queue=run.task_queue or str(automation_settings.TASK_QUEUE),
                        start_signal=event_signal(n.event_name),
                        start_signal_args=[n.to_wire()],
                        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                        static_summary=f"agent {definition.name} #{run.pk}",
                    )
                except WorkflowAlreadyStartedError:
                    return 0  # the instance has ended: nothing to tell
                return 1

        return sum(await asyncio.gather(*(one(*s) for s in sends)))

    return int(bridge.call("delivering an event to agent instances", send_all, timeout=120))


def _start_input(run: WorkflowRun) -> AgentStart:
    """What a workflow for this row starts with, if it is not running yet."""
    last = StepExecution.objects.filter(run=run).aggregate(seq=Max("seq"))["seq"] or 0
    return AgentStart(
        run_id=run.pk,
        agent=run.name,
        context=run.data or {},
        seq=last,
        heartbeat_timeout=float(automation_settings.HEARTBEAT_TIMEOUT),
    )


# ---------------------------------------------------------------------- spawning
def spawn(definition: AgentDefinition, event: Event, *, by_hand: bool = False) -> WorkflowRun | None:
    """The instance this occurrence of the spawn event creates (or, for a singleton whose match an
    active instance already has, that one). None when ``create_context`` failed: recorded on the
    event and logged, since retrying would fail again.

    An occurrence creates one instance however often it is delivered (its workflow id names it);
    ``by_hand`` (AgentManager.spawn) creates a new one each time.
    """
    try:
        ctx = definition.create_context(event)
    except Exception as exc:
        message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        logger.error("%s: no %s agent, its create_context raised: %s", event_label(event), definition.name, message)
        _record_on_event(event, definition.name, {"status": "failed", "error": f"create_context: {message}"})
        return None
    data = ctx.model_dump(mode="json")
    key = (
        f"{definition.name}:{match_hash(render_match(definition.match or {}, data))}" if definition.singleton else None
    )
    workflow_id = f"{definition.name}-agent-event{event.pk}-g{event.generation}"
    if by_hand:
        workflow_id += f"-{uuid.uuid4().hex[:12]}"
    try:
        with transaction.atomic():
            if key is not None:
                existing = WorkflowRun.objects.filter(agent_key=key).first()
                if existing is not None and not existing.is_finished:
                    return existing
                if existing is not None:  # ended without freeing its key (closed by other means)
                    WorkflowRun.objects.filter(pk=existing.pk).update(agent_key=None)
            run, created = WorkflowRun.objects.get_or_create(
                temporal_workflow_id=workflow_id,
                defaults={
                    "name": definition.name,
                    "version": definition.version,
                    "kind": WorkflowRun.Kind.AGENT,
                    "agent_key": key,
                    "data": data,
                    "status": WorkflowStatus.RUNNING,
                    "task_queue": str(automation_settings.TASK_QUEUE),
                    "event": event,
                },
            )
            if created:
                write_routes(run, definition, data)
    except IntegrityError:  # another occurrence spawned the instance for this match meanwhile
        return WorkflowRun.objects.filter(agent_key=key).first() if key else None
    if created:
        _record_on_event(event, definition.name, {"status": "spawned", "run": run.pk})
    return run


def _record_on_event(event: Event, agent: str, value: dict[str, Any]) -> None:
    with transaction.atomic():
        row = Event.objects.select_for_update().filter(pk=event.pk).first()
        if row is None:
            return
        delivered = dict(row.delivered or {})
        delivered["agents"] = {**(delivered.get("agents") or {}), agent: value}
        Event.objects.filter(pk=row.pk).update(delivered=delivered)


def notices_for_new_instance(run: WorkflowRun) -> list[EventNotice]:
    """What a new instance must know at once: the pending events that match it (a scheduled
    event of the entity it was spawned for), and those that occurred in the save that spawned it
    or since (one save gives all its events the same occurrence time), which routing may have
    reached before the instance existed."""
    definition = registry.agent(run.name)
    spawned_by = run.event
    since = (spawned_by.occurred_at or spawned_by.updated_at) if spawned_by else run.created_at
    found: dict[int, tuple[Event, list[HandlerDef]]] = {}
    for h in definition.handlers.values():
        match = render_match(definition.match_for(h) or {}, run.data or {})
        for model in models_defining(h.event_name):
            try:
                pks = [
                    str(pk) for pk in model._default_manager.filter(**match).values_list("pk", flat=True)[:SYNC_LIMIT]
                ]
            except Exception as exc:  # a match this model cannot take: the checks report it
                logger.warning(
                    "agent %s #%s: match %s does not fit %s: %s", run.name, run.pk, match, model.__name__, exc
                )
                continue
            events = Event.objects.filter(
                event_name=h.event_name,
                content_type__model=model._meta.model_name,
                content_type__app_label=model._meta.app_label,
                entity_id__in=pks,
            ).filter(Q(status=Event.Status.PENDING) | Q(status=Event.Status.OCCURRED, occurred_at__gte=since))
            if spawned_by is not None:
                events = events.exclude(pk=spawned_by.pk)
            for event in events.select_related("content_type"):
                if not _reaches(h, event):
                    continue
                holder = claims.claimed_by(event)
                if holder not in (None, run.pk) and not h.ignores_claims:
                    continue
                found.setdefault(event.pk, (event, []))[1].append(h)
    return [notice(event, hs) for event, hs in found.values()]


# ---------------------------------------------------------------------- AgentManager
class AgentManager:
    """Spawn, list and complete agent instances by hand (the async twins start with ``a``)."""

    @staticmethod
    def spawn(name: str, event: Event) -> WorkflowRun:
        """Do what an occurrence of the agent's spawn event does: create an instance with
        ``create_context(event)`` (or, for a singleton whose match an active instance has, use
        that one) and deliver the event to it. Returns the instance's row."""
        definition = registry.agent(name)
        if not isinstance(event, Event):
            raise InvalidInputError(
                f"AgentManager.spawn({name!r}, event=...) takes an Event row (Event.objects.get(...)), got {event!r}"
            )
        existing = find_instances(definition, event, None) if definition.singleton else []
        run = WorkflowRun.objects.get(pk=existing[0]) if existing else spawn(definition, event, by_hand=True)
        if run is None:
            raise InvalidInputError(
                f"agent {name!r}: create_context(event) raised for {event_label(event)}; see the log for why."
            )
        handlers = [
            h
            for h in definition.handlers.values()
            if h.event_name == event.event_name
            and _reaches(h, event)
            and (h.match is None or entity_matches(event, h.match, run.data))
        ]
        # The spawn's own notice even when no handler takes the event: it starts the workflow.
        _send([(run, definition, notice(event, handlers))])
        run.refresh_from_db()
        return run

    @staticmethod
    def list_active(name: str) -> QuerySet[WorkflowRun]:
        """The instances of agent ``name`` still running (a queryset of their rows)."""
        registry.agent(name)
        return WorkflowRun.objects.filter(kind=WorkflowRun.Kind.AGENT, name=name, status=WorkflowStatus.RUNNING)

    @staticmethod
    def complete(agent_run: WorkflowRun | int, *, wait: float = 30.0) -> WorkflowRun:
        """End the instance after the handler it runs now (if any): it releases its claims and its
        row says completed. Waits up to ``wait`` seconds for that; returns the row."""
        run = WorkflowRun.objects.get(pk=getattr(agent_run, "pk", agent_run))
        if run.kind != WorkflowRun.Kind.AGENT:
            raise RunStateError(
                f"run {run.pk} ({run.name}) is a workflow run, not an agent instance; use engine.cancel for it.",
                workflow=run.name,
                run_id=run.pk,
            )
        if run.is_finished:
            return run

        async def do_complete(client: Any) -> None:
            handle = client.get_workflow_handle(run.temporal_workflow_id or "")
            await handle.signal(AGENT_COMPLETE_SIGNAL)
            try:
                await asyncio.wait_for(handle.result(), timeout=wait)
            except Exception:
                pass  # still finishing its handler; the row follows when it is done

        bridge.call(
            f"AgentManager.complete({run.pk})", do_complete, timeout=wait + 30, workflow=run.name, run_id=run.pk
        )
        run.refresh_from_db()
        return run

    @staticmethod
    async def aspawn(name: str, event: Event) -> WorkflowRun:
        return await sync_to_async(AgentManager.spawn)(name, event)

    @staticmethod
    async def alist_active(name: str) -> QuerySet[WorkflowRun]:
        return await sync_to_async(AgentManager.list_active)(name)

    @staticmethod
    async def acomplete(agent_run: WorkflowRun | int, *, wait: float = 30.0) -> WorkflowRun:
        return await sync_to_async(AgentManager.complete)(agent_run, wait=wait)


def ended(run_id: int, status: str, reason: str = "") -> None:
    """The instance's workflow ended: final row, no key, no routes, no claims."""
    fields: dict[str, Any] = {"status": status, "finished_at": timezone.now()}
    if status == WorkflowStatus.CANCELLED:
        fields["error"] = reason or "cancelled"
    with transaction.atomic():
        projection.update_run(run_id, **fields)

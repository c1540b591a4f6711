"""Sending changed ``Event`` rows to their workflows: after commit, and from the outbox.

Each Event row has its own workflow (``automation.event``, id ``automation-event-<pk>``), reached
with signal-with-start: the first change starts it, later ones signal it, and a repeated dispatch
starts nothing twice. ``Event.version`` counts the changes and ``dispatched_version`` the ones
Temporal acknowledged, so what a crash or a Temporal outage kept from being dispatched is sent
again by :func:`dispatch_pending`, which the worker runs when it starts and then periodically as
a safety net (semantics: "Model events").

The commit hands the changed ids to a thread of this process that sends them (``_Dispatcher``),
so a save does not wait for Temporal's round trip; ids that arrive while a batch is on its way
go out together in the next. The outbox is what makes that safe: a process that dies before its
thread sent them leaves the rows behind for the sweep. :func:`wait_dispatched` waits until the
thread has sent what it was given (the testing helpers, ``sync_events`` and process exit use it).
"""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import logging
import os
import threading
from typing import Any

from django.db import transaction
from django.db.models import F

from django_bridge.conf import automation_settings
from django_bridge.event_rows import event_label, sync_entity
from django_bridge.models import Event
from temporal_worker import agents, outages, tracing
from temporal_worker import client as bridge
from temporal_worker.protocol import EVENT_CHANGED_SIGNAL, EVENT_WORKFLOW, EventInput, event_workflow_id

__all__ = [
    "dispatch",
    "dispatch_on_commit",
    "dispatch_pending",
    "sweep_forever",
    "sync_queryset",
    "wait_dispatched",
]

logger = logging.getLogger("django_temporal_automation")

# Signal-with-start calls in flight at once: a transaction that saved thousands of entities
# must not flood the server.
CONCURRENCY = 50
# How long a process that exits waits for its dispatch thread (the rest is left to the sweep).
EXIT_WAIT = 10.0

_batch = threading.local()


def dispatch_on_commit(event_ids: list[int]) -> None:
    """Dispatch ``event_ids`` once the current transaction commits (now, outside one), from the
    dispatch thread: the commit does not wait for Temporal.

    The ids of one transaction go out together. A rolled-back change dispatches nothing: the
    dispatch reads the rows, and a rolled-back row has nothing new to send.
    """
    if not event_ids:
        return
    pending: set[int] | None = getattr(_batch, "ids", None)
    if pending is None:
        pending = _batch.ids = set()
    pending.update(event_ids)
    transaction.on_commit(_flush)


def _flush() -> None:
    ids, _batch.ids = getattr(_batch, "ids", None), None
    if ids:
        _dispatcher.submit(ids)


def wait_dispatched(timeout: float = 30.0) -> bool:
    """Wait until this process's dispatch thread has sent every id committed so far (whether
    Temporal took them or they stay in the outbox); False if it is still busy after ``timeout``."""
    return _dispatcher.wait_idle(timeout)


class _Dispatcher:
    """The thread that sends committed ids, so that a save does not wait for Temporal.

    Each commit queues its ids with its context variables. The thread takes everything queued
    and sends it in one :func:`dispatch`; with tracing on, each commit's ids are sent in that
    commit's context, so the start of an event's workflow stays in the trace of the request that
    saved it. Started on first use; a forked child (a thread does not survive a fork) starts
    its own, with nothing queued: what the parent queued, the parent sends.
    """

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._cond = threading.Condition()
        self._queued: list[tuple[contextvars.Context, set[int]]] = []
        self._busy = False
        self._thread: threading.Thread | None = None

    def submit(self, ids: set[int]) -> None:
        with self._cond:
            self._queued.append((contextvars.copy_context(), set(ids)))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="automation-event-dispatch", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: not self._queued and not self._busy, timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queued:
                    self._busy = False
                    self._cond.notify_all()
                    self._cond.wait()
                batch, self._queued = self._queued, []
                self._busy = True
            everything = sorted(set().union(*(ids for _, ids in batch)))
            try:
                if tracing.enabled():
                    for context, ids in batch:
                        context.run(dispatch, sorted(ids))
                else:
                    dispatch(everything)
            except Exception:  # dispatch logs what it could not send; this is a bug, not an outage
                logger.exception("model events %s were not dispatched; the worker sends them later", everything)
            with self._cond:
                idle = not self._queued
            if idle:
                # Seldom used between bursts: keep no connection open while idle (with
                # CONN_MAX_AGE it would outlive its use and, on Postgres, block dropping a database).
                outages.close_connections()


_dispatcher = _Dispatcher()
# The lock may have been held by the parent's thread at the fork: the child starts afresh.
os.register_at_fork(after_in_child=_dispatcher._reset)


@atexit.register
def _wait_at_exit() -> None:
    """A script or command that saved entities waits for their dispatch before it exits."""
    if not _dispatcher.wait_idle(EXIT_WAIT):
        logger.warning(
            "model events committed by this process were not all dispatched before it exited; "
            "the worker's outbox sweep sends them"
        )


def dispatch(event_ids: list[int]) -> int:
    """Send the rows among ``event_ids`` that have changes Temporal has not had; returns how many.

    Failures are logged, not raised: the user's save already committed, and the worker's outbox
    sweep sends what is left.
    """
    try:
        with outages.unavailable_as_error("dispatching model events"):
            rows = list(
                Event.objects.filter(pk__in=event_ids, dispatched_version__lt=F("version")).select_related(
                    "content_type"
                )
            )
    except Exception as exc:
        logger.warning("model events %s were not dispatched now (%s); the worker sends them later", event_ids, exc)
        return 0
    if not rows:
        return 0
    told = _tell_agents(rows)
    task_queue = str(automation_settings.TASK_QUEUE)
    heartbeat = float(automation_settings.HEARTBEAT_TIMEOUT)

    async def send_all() -> list[tuple[int, int]]:
        client = await bridge.get_client()
        gate = asyncio.Semaphore(CONCURRENCY)

        async def send(row: Event) -> tuple[int, int] | None:
            async with gate:
                label = event_label(row)
                try:
                    await client.start_workflow(
                        EVENT_WORKFLOW,
                        EventInput(row.pk, label, heartbeat_timeout=heartbeat, agents_told=told.get(row.pk)).to_wire(),
                        id=event_workflow_id(row.pk),
                        task_queue=task_queue,
                        start_signal=EVENT_CHANGED_SIGNAL,
                        start_signal_args=[row.version],
                        static_summary=label,
                    )
                except Exception as exc:  # unreachable, refused: the outbox keeps it
                    logger.warning(
                        "event %s (%s) was not dispatched (%s); the worker sends it later", row.pk, label, exc
                    )
                    return None
                return row.pk, row.version

        return [sent for sent in await asyncio.gather(*(send(r) for r in rows)) if sent is not None]

    try:
        sent = bridge.run_sync(send_all(), timeout=120)
    except Exception as exc:
        logger.warning("model events %s were not dispatched (%s); the worker sends them later", event_ids, exc)
        return 0
    try:
        with transaction.atomic():  # one write transaction for the batch, not one per row
            for pk, version in sent:
                Event.objects.filter(pk=pk, dispatched_version__lt=version).update(dispatched_version=version)
    except Exception as exc:  # sent again later, which the workflow ids make harmless
        logger.warning("events %s were dispatched but not marked so (%s)", [pk for pk, _ in sent], exc)
    return len(sent)


def _tell_agents(rows: list[Event]) -> dict[int, str]:
    """Tell the active agent instances of these changes now, before their events' workflows start:
    an agent's handler then starts one workflow task and one activity after the commit, not
    after the event's workflow has started and loaded the row. What this leaves undone (an
    error, a new instance to spawn) the event's workflow does (semantics: "Agents")."""
    if not any(agents.concerns_agents(row.event_name) for row in rows):
        return {}
    try:
        return agents.tell_now(rows)
    except Exception as exc:
        logger.info("agents not told of events %s at once (%s); their workflows tell them", [r.pk for r in rows], exc)
        return {}


def dispatch_pending(limit: int = 1000) -> int:
    """Dispatch what the outbox still holds (lost to a crash or a Temporal outage)."""
    ids = list(
        Event.objects.filter(dispatched_version__lt=F("version"))
        .order_by("updated_at")
        .values_list("pk", flat=True)[:limit]
    )
    return dispatch(ids) if ids else 0


async def sweep_forever(interval: float) -> None:
    """The worker's safety net: send the outbox now, then every ``interval`` seconds."""
    while True:
        try:
            sent = await asyncio.to_thread(_sweep_once)
            if sent:
                logger.info("dispatched %s model event changes left in the outbox", sent)
        except Exception as exc:
            if outages.is_outage(exc):  # routine during a database restart: one line, no traceback
                logger.warning("the model events outbox sweep waits for the database (%s)", str(exc).strip())
            else:
                logger.exception("the model events outbox sweep failed; it runs again in %s s", interval)
        await asyncio.sleep(interval)


def _sweep_once() -> int:
    try:
        return dispatch_pending()
    finally:
        # A pool thread, seldom used: keep no connection open between sweeps (with
        # CONN_MAX_AGE it would outlive the worker and, on Postgres, block dropping a database).
        outages.close_connections()


def sync_queryset(queryset: Any) -> int:
    """``Event.objects.sync_for(queryset)``: bring each entity's Event rows up to date, dispatch."""
    changed: list[int] = []
    for instance in queryset.iterator():
        changed.extend(sync_entity(instance))
    dispatch_on_commit(changed)
    return len(changed)

"""Sending changed ``Event`` rows to their workflows: on commit, and from the outbox.

Each Event row has its own workflow (``automation.event``, id ``automation-event-<pk>``), reached
with signal-with-start: the first change starts it, later ones signal it, and a repeated dispatch
starts nothing twice. ``Event.version`` counts the changes and ``dispatched_version`` the ones
Temporal acknowledged, so what a crash or a Temporal outage kept from being dispatched is sent
again by :func:`dispatch_pending`, which the worker runs when it starts and then periodically as
a safety net (semantics: "Model events").
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from django.db import transaction
from django.db.models import F

from django_bridge.conf import automation_settings
from django_bridge.event_rows import sync_entity
from django_bridge.models import Event
from temporal_worker import client as bridge
from temporal_worker import outages
from temporal_worker.protocol import EVENT_CHANGED_SIGNAL, EVENT_WORKFLOW, EventInput, event_workflow_id

__all__ = ["dispatch", "dispatch_on_commit", "dispatch_pending", "event_label", "sweep_forever", "sync_queryset"]

logger = logging.getLogger("django_temporal_automation")

# Signal-with-start calls in flight at once: a transaction that saved thousands of entities
# must not flood the server.
CONCURRENCY = 50

_batch = threading.local()


def event_label(event: Event) -> str:
    """``checkin_due of Reservation 42``: how timers and summaries name an event."""
    model = event.content_type.model_class()
    name = model.__name__ if model is not None else event.content_type.model
    return f"{event.event_name} of {name} {event.entity_id}"


def dispatch_on_commit(event_ids: list[int]) -> None:
    """Dispatch ``event_ids`` once the current transaction commits (now, outside one).

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
        dispatch(sorted(ids))


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
                        EventInput(row.pk, label, heartbeat_timeout=heartbeat).to_wire(),
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
    for pk, version in sent:
        try:
            Event.objects.filter(pk=pk, dispatched_version__lt=version).update(dispatched_version=version)
        except Exception as exc:  # sent twice later, which the workflow ids make harmless
            logger.warning("event %s was dispatched but not marked so (%s)", pk, exc)
    return len(sent)


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

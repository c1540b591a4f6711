"""Keeping ``Event`` rows in step with the entities whose models declare ``events``.

Called from ``post_save``/``post_delete`` inside the user's transaction: it only writes rows and
returns the ids of the events Temporal must hear about; dispatching them waits for the commit
(docs/semantics.md, "Model events").
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.apps import apps
from django.contrib.contenttypes.models import ContentType
from django.db import models, transaction
from django.db.models import F
from django.utils import timezone

from django_bridge.models import Event
from facade import EventDefinition

__all__ = ["condition_holds", "definitions_of", "event_label", "event_models", "models_defining", "sync_entity"]

logger = logging.getLogger("django_temporal_automation")


def definitions_of(model: type[models.Model]) -> list[EventDefinition]:
    """The ``EventDefinition`` list a model declares (``events = [...]``), or none."""
    declared = getattr(model, "events", None)
    if isinstance(declared, list | tuple) and all(isinstance(d, EventDefinition) for d in declared):
        return list(declared)
    return []


def event_models() -> list[type[models.Model]]:
    """Every installed model that declares events."""
    return [m for m in apps.get_models() if definitions_of(m)]


def models_defining(event_name: str) -> list[type[models.Model]]:
    """The installed models that declare an event named ``event_name``."""
    return [m for m in event_models() if any(d.name == event_name for d in definitions_of(m))]


def condition_holds(definition: EventDefinition, instance: models.Model) -> bool:
    if definition.condition is None:
        return True
    try:
        return bool(definition.condition(instance))
    except Exception:
        # A broken condition must never break the user's save: it counts as false.
        logger.exception(
            "the condition of event %r on %s pk=%s raised; it counts as false",
            definition.name,
            type(instance)._meta.label,
            instance.pk,
        )
        return False


def _when(definition: EventDefinition, instance: models.Model) -> dt.datetime | None:
    value = getattr(instance, definition.date_field or "", None)
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value if timezone.is_aware(value) else timezone.make_aware(value)
    if isinstance(value, dt.date):  # a DateField: the start of that day
        return timezone.make_aware(dt.datetime.combine(value, dt.time.min))
    return None


def sync_entity(instance: models.Model, *, deleted: bool = False) -> list[int]:
    """Update the Event rows of ``instance`` for its model's definitions; the ids that changed."""
    definitions = definitions_of(type(instance))
    if not definitions or instance.pk is None:
        return []
    content_type = ContentType.objects.get_for_model(type(instance), for_concrete_model=False)
    entity_id = str(instance.pk)
    existing = {
        e.event_name: e
        for e in Event.objects.filter(
            content_type=content_type, entity_id=entity_id, event_name__in=[d.name for d in definitions]
        )
    }
    changed: list[int] = []
    now = timezone.now()
    with transaction.atomic():
        for definition in definitions:
            row = existing.get(definition.name)
            update = _scheduled_change(definition, instance, row, deleted) if definition.scheduled else None
            if not definition.scheduled:
                update = _immediate_change(definition, instance, row, deleted, now)
            if update is None:
                continue
            if row is None:
                row = Event.objects.create(
                    event_name=definition.name, content_type=content_type, entity_id=entity_id, version=1, **update
                )
            else:
                Event.objects.filter(pk=row.pk).update(version=F("version") + 1, **update)
            changed.append(row.pk)
    return changed


def _immediate_change(
    definition: EventDefinition, instance: models.Model, row: Event | None, deleted: bool, now: dt.datetime
) -> dict[str, Any] | None:
    """An immediate event occurs on the first save in which its condition holds, once per entity."""
    if (
        deleted
        or (row is not None and row.status == Event.Status.OCCURRED)
        or not condition_holds(definition, instance)
    ):
        return None
    return {"status": Event.Status.OCCURRED, "at": now, "occurred_at": now}


def _scheduled_change(
    definition: EventDefinition, instance: models.Model, row: Event | None, deleted: bool
) -> dict[str, Any] | None:
    """A scheduled event is pending while its condition holds and its date is set."""
    if row is not None and row.status == Event.Status.OCCURRED:
        return None  # it happened; later changes of the entity do not make it happen again
    at = None if deleted else _when(definition, instance)
    if deleted or at is None or not condition_holds(definition, instance):
        if row is not None and row.status == Event.Status.PENDING:
            return {"status": Event.Status.CANCELLED}
        return None
    if row is None:
        return {"status": Event.Status.PENDING, "at": at}
    if row.status == Event.Status.CANCELLED:
        return {"status": Event.Status.PENDING, "at": at, "generation": row.generation + 1}
    if row.at != at:
        return {"at": at}
    return None


def event_label(event: Event) -> str:
    """``checkin_due of Reservation 42``: how timers and summaries name an event."""
    model = event.content_type.model_class()
    name = model.__name__ if model is not None else event.content_type.model
    return f"{event.event_name} of {name} {event.entity_id}"

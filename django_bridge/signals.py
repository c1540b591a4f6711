"""Model signal receivers: ``post_save``/``post_delete`` keep the Event rows of models with
``events`` and dispatch what changed once the transaction commits. Connected when the app
registry is ready (``DjangoBridgeConfig.ready``)."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_save

from django_bridge.event_rows import event_models, sync_entity
from temporal_worker.dispatch import dispatch_on_commit

__all__ = ["connect_event_models"]


def entity_saved(sender: Any, instance: Any, raw: bool = False, **kwargs: Any) -> None:
    if raw:  # loaddata: fixtures are not events; sync them with `manage.py sync_events`
        return
    dispatch_on_commit(sync_entity(instance))


def entity_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    dispatch_on_commit(sync_entity(instance, deleted=True))


def connect_event_models() -> None:
    for model in event_models():
        label = model._meta.label
        post_save.connect(entity_saved, sender=model, dispatch_uid=f"automation-events-saved-{label}")
        post_delete.connect(entity_deleted, sender=model, dispatch_uid=f"automation-events-deleted-{label}")

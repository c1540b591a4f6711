"""``manage.py sync_events [app_label.Model ...]``: bring Event rows up to date, dispatch changes.

Model signals do not fire for ``bulk_create``, ``QuerySet.update()`` or raw SQL, nor for rows
that existed before a model declared ``events``: run this after those, and once when you add
``events`` to a model that has rows. Safe to run any time (rows already in step do not change).
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core.management.base import CommandError
from django.db.models import F

from ._cli import AutomationCommand


class Command(AutomationCommand):
    help = "Bring the Event rows of existing entities up to date and dispatch what changed."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("models", nargs="*", help="app_label.Model to sync (default: every model with events).")

    def handle(self, *args: Any, **options: Any) -> None:
        from django_bridge.event_rows import definitions_of, event_models
        from django_bridge.models import Event
        from temporal_worker.dispatch import dispatch_pending, wait_dispatched

        if options["models"]:
            chosen = []
            for label in options["models"]:
                try:
                    model = apps.get_model(label)
                except (LookupError, ValueError):
                    raise CommandError(
                        f"{label!r} is not a model; write app_label.ModelName, e.g. shop.Order."
                    ) from None
                if not definitions_of(model):
                    raise CommandError(f"{label} declares no events (an `events = [EventDefinition(...)]` list).")
                chosen.append(model)
        else:
            chosen = event_models()
        for model in chosen:
            changed = Event.objects.sync_for(model._default_manager.all())
            self.stdout.write(f"{model._meta.label}: {changed} event row{'s' if changed != 1 else ''} changed")
        # The syncs handed their changes to the dispatch thread; then whatever the outbox holds
        # (this sync's or older) is tried once more.
        wait_dispatched()
        dispatch_pending()
        left = Event.objects.filter(dispatched_version__lt=F("version")).count()
        if left:
            self.stdout.write(
                f"{left} event change{'s' if left != 1 else ''} not dispatched (Temporal unreachable?); "
                "the worker sends them when it can reach Temporal"
            )
        else:
            self.stdout.write("every event change is dispatched to Temporal")

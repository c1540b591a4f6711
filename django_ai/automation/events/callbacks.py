"""``from django_ai.automation.events.callbacks import on_event, on_event_created, on_event_cancelled``"""

from facade import on_event, on_event_cancelled, on_event_created

__all__ = ["on_event", "on_event_cancelled", "on_event_created"]

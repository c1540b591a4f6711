"""``from django_ai.automation.events.models import Event``"""

from django_bridge.models import Event

__all__ = ["Event"]

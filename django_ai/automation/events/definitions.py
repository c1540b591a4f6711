"""``from django_ai.automation.events.definitions import EventDefinition``"""

from facade import EventDefinition

__all__ = ["EventDefinition"]

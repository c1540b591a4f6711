from django.db import models

from django_ai.automation.events.definitions import EventDefinition


class Ticket(models.Model):
    """One immediate event (with one callback) and one scheduled event (with an event workflow)."""

    opened = models.BooleanField(default=True)
    due_at = models.DateTimeField(null=True, blank=True)

    events = [
        EventDefinition("ticket_opened", condition=lambda t: t.opened),
        EventDefinition("ticket_due", date_field="due_at"),
    ]

    class Meta:
        app_label = "benchapp"


class PlainTicket(models.Model):
    """The same fields, no events: what a save costs without them."""

    opened = models.BooleanField(default=True)
    due_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        app_label = "benchapp"

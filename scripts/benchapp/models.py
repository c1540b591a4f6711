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


class Account(models.Model):
    """Each account's ``account_opened`` spawns one ``bench_account`` agent instance."""

    name = models.CharField(max_length=50, blank=True, default="")

    events = [EventDefinition("account_opened")]

    class Meta:
        app_label = "benchapp"


class Ping(models.Model):
    """Each ping's ``ping_sent`` reaches the one instance of its account (a handler ``match``)."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE)

    events = [EventDefinition("ping_sent")]

    class Meta:
        app_label = "benchapp"

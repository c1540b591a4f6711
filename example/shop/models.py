"""The example's one model with events (automations guide, section 1).

Most of the example keeps its state in the workflows' Context (runs live in
``django_bridge.WorkflowRun``); ``Reservation`` shows model events: an immediate one, a
scheduled one and one that a waiting run listens for.
"""

from django.db import models

from django_ai.automation.events.definitions import EventDefinition


class Reservation(models.Model):
    guest = models.CharField(max_length=100)
    checkin_at = models.DateTimeField()
    status = models.CharField(max_length=20, default="pending")
    docs_uploaded = models.BooleanField(default=False)
    welcome_sent = models.BooleanField(default=False)

    events = [
        # Immediate: occurs right after the commit of the save that confirms it.
        EventDefinition("reservation_confirmed", condition=lambda r: r.status == "confirmed"),
        # Scheduled: occurs at checkin_at while the reservation is confirmed.
        EventDefinition("checkin_due", date_field="checkin_at", condition=lambda r: r.status == "confirmed"),
        # What PreArrivalReminder waits for (scoped to its own reservation with match=...).
        EventDefinition("guest_docs_uploaded", condition=lambda r: r.docs_uploaded),
    ]

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.guest} ({self.status}, check-in {self.checkin_at:%H:%M:%S})"

"""The example's models with events (automations guide, sections 1 and 8).

Most of the example keeps its state in the workflows' Context (runs live in
``django_bridge.WorkflowRun``); ``Reservation`` shows model events: immediate ones, scheduled
ones and one that a waiting run listens for; ``GuestMessage`` is what the reservation journey
agent claims while it looks after the guest.
"""

from django.db import models

from django_ai.automation.events.definitions import EventDefinition


class Reservation(models.Model):
    guest = models.CharField(max_length=100)
    checkin_at = models.DateTimeField()
    checkout_at = models.DateTimeField(null=True, blank=True)
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
        # The reservation journey agent (shop/automations.py) spawns on this one...
        EventDefinition("reservation_created"),
        # ...and asks for feedback after this one.
        EventDefinition("checkout_due", date_field="checkout_at", condition=lambda r: r.status == "confirmed"),
    ]

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.guest} ({self.status}, check-in {self.checkin_at:%H:%M:%S})"


class GuestMessage(models.Model):
    """A message from a guest: answered by the automatic reply, unless the reservation's journey
    has claimed its guest's messages (then its concierge answers)."""

    reservation = models.ForeignKey(Reservation, on_delete=models.CASCADE, related_name="messages")
    text = models.CharField(max_length=200)
    answered_by = models.CharField(max_length=50, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    events = [EventDefinition("guest_message_received")]

    class Meta:
        ordering = ["-id"]

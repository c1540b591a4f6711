"""Models with events, for the model events tests (tests/test_events.py).

``Reservation`` starts as the automations guide declares it; the extra fields and events are the
ones its other examples (``CheckoutOpsWF``) and the tests need.
"""

from __future__ import annotations

import uuid

from django.db import models

from django_ai.automation.events.definitions import EventDefinition


def _broken(reservation: Reservation) -> bool:
    raise RuntimeError("this condition always raises")


class Guest(models.Model):
    name = models.CharField(max_length=100, default="")
    is_vip = models.BooleanField(default=False)


class Reservation(models.Model):
    checkin_at = models.DateTimeField()
    status = models.CharField(max_length=20, default="pending")
    checkout_at = models.DateTimeField(null=True, blank=True)
    docs_uploaded = models.BooleanField(default=False)
    guest = models.ForeignKey(Guest, null=True, blank=True, on_delete=models.SET_NULL)

    events = [
        # Immediate: occurs after commit if condition is true
        EventDefinition("reservation_confirmed", condition=lambda r: r.status == "confirmed"),
        # Scheduled: occurs at checkin_at (still gated by condition)
        EventDefinition("checkin_due", date_field="checkin_at", condition=lambda r: r.status == "confirmed"),
        EventDefinition("checkout_due", date_field="checkout_at", condition=lambda r: r.status == "confirmed"),
        EventDefinition("guest_docs_uploaded", condition=lambda r: r.docs_uploaded),
        EventDefinition("reservation_created"),
        EventDefinition("reservation_flagged", condition=_broken),
    ]


class Parcel(models.Model):
    """A UUID primary key."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    delivered = models.BooleanField(default=False)
    lost = models.BooleanField(default=False)

    events = [
        EventDefinition("parcel_delivered", condition=lambda p: p.delivered),
        EventDefinition("parcel_lost", condition=lambda p: p.lost),
    ]


class Listing(models.Model):
    """Defines the events the workflows guide's examples wait for (tests/testapp/guide_*.py)."""

    confirmed = models.BooleanField(default=False)
    ownership_verified = models.BooleanField(default=False)
    paid = models.BooleanField(default=False)

    events = [
        EventDefinition("confirmation_received", condition=lambda listing: listing.confirmed),
        EventDefinition("ownership_verified", condition=lambda listing: listing.ownership_verified),
        # tests/testapp/durability_workflows.py's replay_gate waits for it.
        EventDefinition("replay_payment", condition=lambda listing: listing.paid),
    ]


# ---------------------------------------------------------------------- agents (tests/test_agents.py)
class Booking(models.Model):
    """The guide's ``guest_support`` agent spawns on it; ``payment_due`` is scheduled."""

    guest = models.ForeignKey(Guest, on_delete=models.CASCADE)
    status = models.CharField(max_length=20, default="open")
    payment_due_at = models.DateTimeField(null=True, blank=True)

    events = [
        EventDefinition("booking_created"),
        EventDefinition("payment_due", date_field="payment_due_at"),
    ]


class Message(models.Model):
    """Another entity type than the agent's: routed by ``match={"sender_id": ...}``."""

    sender = models.ForeignKey(Guest, on_delete=models.CASCADE)
    text = models.CharField(max_length=200, default="")

    events = [EventDefinition("message_received")]


class Ticket(models.Model):
    guest = models.ForeignKey(Guest, on_delete=models.CASCADE)
    resolved = models.BooleanField(default=False)

    events = [
        EventDefinition("ticket_created"),
        EventDefinition("ticket_resolved", condition=lambda t: t.resolved),
    ]

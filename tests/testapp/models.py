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


class Reservation(models.Model):
    checkin_at = models.DateTimeField()
    status = models.CharField(max_length=20, default="pending")
    checkout_at = models.DateTimeField(null=True, blank=True)
    docs_uploaded = models.BooleanField(default=False)
    guest = models.CharField(max_length=100, blank=True, default="")

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

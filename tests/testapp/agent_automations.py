"""The automations guide's section 8 (long-running agents) as written, plus probes for the tests.

Imported by tests/test_agents.py inside ``registry.isolated()``, so these agents exist only for
those tests (other tests create reservations without spawning journeys). Handlers note what
they did in the file named by ``AGENTS_LOG`` (``O_APPEND`` lines, counted across retries).
"""

from __future__ import annotations

import os
from datetime import timedelta

from pydantic import BaseModel

from django_ai.automation.agents.core import AgentManager, agent, handler  # noqa: F401  (the guide's import)
from django_ai.automation.events import claims
from django_ai.automation.workflows.core import Retry

LOG_ENV = "AGENTS_LOG"


def note(line: str) -> None:
    path = os.environ.get(LOG_ENV)
    if not path:
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)


def send_email(name: str, text: str) -> None:
    note(f"email {name}: {text}")


def send_sms(name: str, text: str) -> None:
    note(f"sms {name}: {text}")


def send_message(name: str, text: str) -> None:
    note(f"message {name}: {text}")


# ---------------------------------------------------------------------- Basic Agent Structure, as written
@agent(
    "reservation_journey",
    spawn_on="reservation_created",
    match={"id": "{{ ctx.reservation_id }}"},  # How to find existing agent for events
    singleton=True,  # One agent per match
)
class ReservationJourney:
    class Context(BaseModel):
        reservation_id: int
        guest_name: str = ""
        reminder_sent: bool = False
        welcome_sent: bool = False

    @classmethod
    def create_context(cls, event):
        reservation = event.entity
        return cls.Context(
            reservation_id=reservation.id,
            guest_name=reservation.guest.name,
        )

    @handler("reservation_confirmed")
    def send_confirmation(self, ctx):
        """Runs immediately when reservation is confirmed"""
        send_email(ctx.guest_name, "Your booking is confirmed!")

    @handler("checkin_due", offset=timedelta(hours=-3))
    def send_pre_checkin(self, ctx):
        """Runs 3 hours BEFORE checkin time"""
        send_sms(ctx.guest_name, "Check-in opens soon!")
        ctx.reminder_sent = True

    @handler("checkin_due")
    def send_welcome(self, ctx):
        """Runs AT checkin time"""
        send_message(ctx.guest_name, "Welcome! Your room is ready.")
        ctx.welcome_sent = True

    @handler("checkout_due", offset=timedelta(hours=1))
    def send_feedback_request(self, ctx):
        """Runs 1 hour AFTER checkout"""
        send_email(ctx.guest_name, "How was your stay?")

    @handler("reservation_created")
    def on_spawn(self, ctx, event):
        """Probe: a handler on the spawn event runs once for the occurrence that spawned it."""
        note(f"spawned {ctx.reservation_id} by event {event.pk}")


# ---------------------------------------------------------------------- Match: Routing Events to Agents, as written
@agent(
    "guest_support",
    spawn_on="booking_created",
    match={"guest_id": "{{ ctx.guest_id }}"},  # Entity.guest_id == ctx.guest_id
)
class GuestSupport:
    class Context(BaseModel):
        guest_id: int
        booking_id: int

    @classmethod
    def create_context(cls, event):
        booking = event.entity
        return cls.Context(guest_id=booking.guest_id, booking_id=booking.id)

    # This handler listens to a DIFFERENT entity type (Message vs Booking)
    # The match override tells the system how to find the right agent
    @handler("message_received", match={"sender_id": "{{ ctx.guest_id }}"})
    def handle_message(self, ctx):
        """Routes messages where message.sender_id == ctx.guest_id"""
        note(f"support {ctx.guest_id} got a message")


# Match supports Django ORM syntax (traversing relationships, lookups with a list from the context).
@agent(
    "booking_watch",
    spawn_on="booking_created",
    match={"guest__id": "{{ ctx.guest_id }}", "status__in": "{{ ctx.valid_statuses }}"},
    singleton=False,
)
class BookingWatch:
    class Context(BaseModel):
        guest_id: int
        valid_statuses: list[str] = ["open", "paid"]

    @classmethod
    def create_context(cls, event):
        return cls.Context(guest_id=event.entity.guest_id)

    @handler("booking_created")
    def seen(self, ctx, event):
        note(f"watch {ctx.guest_id} saw booking {event.entity_id}")


# ---------------------------------------------------------------------- offsets, conditions, retries
def guest_is_vip(event, ctx):
    return ctx.is_vip


@agent("stay_host", spawn_on="reservation_created", match={"id": "{{ ctx.reservation_id }}"})
class StayHost:
    class Context(BaseModel):
        reservation_id: int
        is_vip: bool = False
        room_number: str = "101"

    @classmethod
    def create_context(cls, event):
        reservation = event.entity
        return cls.Context(reservation_id=reservation.id, is_vip=bool(reservation.guest and reservation.guest.is_vip))

    @handler("checkin_due", offset=timedelta(hours=-3))  # 3 hours BEFORE
    def pre_checkin(self, ctx):
        note(f"pre_checkin {ctx.reservation_id}")  # noqa: E704

    @handler("checkin_due")  # AT the event time
    def on_checkin(self, ctx):
        note(f"on_checkin {ctx.reservation_id}")  # noqa: E704

    @handler("checkin_due", offset=timedelta(hours=1))  # 1 hour AFTER
    def post_checkin(self, ctx):
        note(f"post_checkin {ctx.reservation_id}")  # noqa: E704

    @handler("checkin_due", condition=guest_is_vip)
    def vip_welcome(self, ctx):
        """Only runs if guest is VIP"""
        note(f"champagne {ctx.room_number}")


FAILS_BEFORE_SUCCESS = {"count": 0}


def charge_card(payment_id: int) -> None:
    attempts = int(os.environ.get("AGENTS_CHARGE_FAILURES", "0"))
    note(f"charge attempt {payment_id}")
    FAILS_BEFORE_SUCCESS["count"] += 1
    if FAILS_BEFORE_SUCCESS["count"] <= attempts:
        raise RuntimeError("card declined")
    note(f"charged {payment_id}")


@agent("billing", spawn_on="booking_created", match={"id": "{{ ctx.payment_id }}"})
class Billing:
    class Context(BaseModel):
        payment_id: int
        charged: bool = False

    @classmethod
    def create_context(cls, event):
        return cls.Context(payment_id=event.entity.id)

    @handler("payment_due", retry=Retry(max_attempts=3, base_delay=timedelta(seconds=30)))
    def process_payment(self, ctx):
        """Retries up to 3 times with exponential backoff"""
        charge_card(ctx.payment_id)
        ctx.charged = True


# ---------------------------------------------------------------------- Event Claims Integration, as written
@agent("ticket_desk", spawn_on="ticket_created", match={"id": "{{ ctx.ticket_id }}"})
class TicketDesk:
    class Context(BaseModel):
        ticket_id: int
        guest_id: int
        message_id: int = 0
        messages: int = 0

    @classmethod
    def create_context(cls, event):
        ticket = event.entity
        return cls.Context(ticket_id=ticket.id, guest_id=ticket.guest_id)

    @handler("ticket_created")
    def on_spawn(self, ctx):
        # Claim all messages from this guest for this agent
        claims.hold("message_received", match={"sender_id": ctx.guest_id})

    @handler("ticket_resolved")
    def cleanup(self, ctx):
        # Release the claim when done
        claims.release("message_received", match={"sender_id": ctx.guest_id})

    @handler("message_received", match={"sender_id": "{{ ctx.guest_id }}"})
    def on_message(self, ctx, event):
        ctx.message_id = int(event.entity_id)
        ctx.messages += 1
        note(f"desk {ctx.ticket_id} got message {event.entity_id}")


@agent("message_audit", spawn_on="message_received", match={"sender_id": "{{ ctx.sender_id }}"})
class MessageAudit:
    class Context(BaseModel):
        sender_id: int
        message_id: int = 0

    @classmethod
    def create_context(cls, event):
        return cls.Context(sender_id=event.entity.sender_id, message_id=event.entity.id)

    # Handlers that should ALWAYS run regardless of claims:
    @handler("message_received", ignores_claims=True)
    def audit_all_messages(self, ctx, event):
        """Runs even when another flow has claimed this event"""
        ctx.message_id = int(event.entity_id)
        note(f"audit message {ctx.message_id}")


# ---------------------------------------------------------------------- probes for the durability tests
@agent("parcel_tracker", spawn_on="parcel_delivered", match={"id": "{{ ctx.parcel_id }}"})
class ParcelTracker:
    """A UUID primary key; ``create_context`` can be held (``AGENTS_HOLD`` names a file to wait for)
    so a test can kill the worker in the middle of a spawn."""

    class Context(BaseModel):
        parcel_id: str

    @classmethod
    def create_context(cls, event):
        note(f"creating {event.entity_id}")
        hold = os.environ.get("AGENTS_HOLD")
        if hold:
            import time
            from pathlib import Path

            deadline = time.monotonic() + 60
            while not Path(hold).exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        return cls.Context(parcel_id=str(event.entity.pk))

    @handler("parcel_delivered")
    def tracked(self, ctx):
        note(f"tracked {ctx.parcel_id}")

"""The automations guide's event examples on the shop's ``Reservation`` (discovered because
this is ``shop.automations``): a callback, an event workflow that runs before the event, a wait
for another event of the same reservation, and the guide's reservation journey agent, with
minutes instead of hours so ``make dev`` shows it."""

from datetime import timedelta

from pydantic import BaseModel

from django_ai.automation.agents.core import agent, handler
from django_ai.automation.events import claims
from django_ai.automation.events.callbacks import on_event
from django_ai.automation.events.models import Event
from django_ai.automation.workflows.core import complete, event_workflow, get_context, step, wait_for_event

from .models import GuestMessage, Reservation


@on_event(event_name="reservation_confirmed")
def send_welcome_email(event: Event) -> None:
    reservation = event.entity  # fetches the Reservation instance
    # A real project sends the email here; the example records that it did.
    Reservation.objects.filter(pk=reservation.pk).update(welcome_sent=True)


@event_workflow(event_name="checkin_due", offset=timedelta(minutes=-1))  # one minute before check-in
class PreArrivalReminder:
    class Context(BaseModel):
        reservation_id: int
        guest: str
        reminded: bool = False
        event_id: int | None = None  # the documents' Event, merged from the occurrence's payload

    @classmethod
    def create_context(cls, event=None):
        reservation = event.entity
        return cls.Context(reservation_id=reservation.id, guest=reservation.guest)

    @step(start=True, title="Send the pre-arrival reminder")
    def remind(self):
        get_context().reminded = True
        # Wait for this reservation's documents (another model event), at most 10 minutes.
        return wait_for_event(
            "guest_docs_uploaded",
            timeout=timedelta(minutes=10),
            on_timeout="docs_missing",
            match={"id": "{{ ctx.reservation_id }}"},
            display_title="Waiting for the guest's documents",
        )

    @step(title="Documents received")
    def docs_received(self):
        return complete(display_title="Ready for check-in")

    @step(title="Documents missing")
    def docs_missing(self):
        return complete(display_title="Check-in without documents")


# ---------------------------------------------------------------------- the reservation journey (section 8)
@on_event(event_name="guest_message_received")
def auto_reply(event: Event) -> None:
    """Answers every guest message, except those a journey has claimed (its concierge answers)."""
    GuestMessage.objects.filter(pk=event.entity_id, answered_by="").update(answered_by="auto-reply")


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
        sent: list[str] = []  # what the journey sent, in order (the events page shows it)
        reminder_sent: bool = False
        welcome_sent: bool = False
        concierge: bool = False  # between confirmation and the feedback request

    @classmethod
    def create_context(cls, event):
        reservation = event.entity
        return cls.Context(reservation_id=reservation.id, guest_name=reservation.guest)

    @handler("reservation_confirmed")
    def send_confirmation(self, ctx):
        """Runs immediately when reservation is confirmed; from now on the concierge answers."""
        ctx.sent.append("confirmation email")
        ctx.concierge = True
        claims.hold("guest_message_received", match={"reservation_id": ctx.reservation_id})

    @handler("checkin_due", offset=timedelta(minutes=-1))
    def send_pre_checkin(self, ctx):
        """Runs 1 minute BEFORE check-in (3 hours in the guide)"""
        ctx.sent.append("pre-check-in SMS")
        ctx.reminder_sent = True

    @handler("checkin_due")
    def send_welcome(self, ctx):
        """Runs AT check-in time"""
        ctx.sent.append("welcome message")
        ctx.welcome_sent = True

    @handler(
        "guest_message_received",
        match={"reservation_id": "{{ ctx.reservation_id }}"},
        condition=lambda event, ctx: ctx.concierge,
    )
    def concierge_reply(self, ctx, event):
        """The claimed messages of this reservation's guest: answered here, not by auto_reply."""
        GuestMessage.objects.filter(pk=event.entity_id, answered_by="").update(answered_by="concierge")
        ctx.sent.append(f"concierge reply to message {event.entity_id}")

    @handler("checkout_due", offset=timedelta(minutes=1))
    def send_feedback_request(self, ctx):
        """Runs 1 minute AFTER checkout (1 hour in the guide); the concierge hands over."""
        ctx.sent.append("feedback request")
        ctx.concierge = False
        claims.release("guest_message_received", match={"reservation_id": ctx.reservation_id})

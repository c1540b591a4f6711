"""The automations guide's event examples on the shop's ``Reservation`` (discovered because
this is ``shop.automations``): a callback, an event workflow that runs before the event, and a
wait for another event of the same reservation."""

from datetime import timedelta

from pydantic import BaseModel

from django_ai.automation.events.callbacks import on_event
from django_ai.automation.events.models import Event
from django_ai.automation.workflows.core import complete, event_workflow, get_context, step, wait_for_event

from .models import Reservation


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

"""The automations guide's event examples (sections 2-4) as written, plus probes for the tests.

Callbacks and steps note what ran in the file named by ``EVENTS_LOG`` (``O_APPEND`` lines, so
a test counts executions across retries and processes). Imported by tests/test_events.py.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Optional

from pydantic import BaseModel

from django_ai.automation.events.callbacks import on_event, on_event_cancelled, on_event_created
from django_ai.automation.events.models import Event
from django_ai.automation.workflows.core import (
    Retry,
    complete,
    event_workflow,
    fail,
    get_context,
    goto,
    step,
    wait,
    wait_for_event,
    workflow,
)

LOG_ENV = "EVENTS_LOG"


def note(line: str) -> None:
    path = os.environ.get(LOG_ENV)
    if not path:
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)


# ---------------------------------------------------------------------- section 2, as written
@on_event(event_name="reservation_confirmed")
def send_welcome_email(event: Event) -> None:
    reservation = event.entity  # fetches the Reservation instance
    # do side-effect: email/webhook/etc.
    note(f"welcome {reservation.pk}")


@on_event_created(event_name="checkin_due")
def checkin_scheduled(event: Event) -> None:
    note(f"created {event.event_name} {event.entity_id}")


@on_event_cancelled(event_name="checkin_due")
def checkin_cancelled(event: Event) -> None:
    note(f"cancelled {event.event_name} {event.entity_id}")


@on_event(event_name="parcel_delivered")
def parcel_delivered(event: Event) -> None:
    note(f"parcel {event.entity_id} {event.entity.pk}")


@on_event(event_name="parcel_lost")
def report_lost_parcel(event: Event) -> None:
    """Slow on purpose: waits for the file named by EVENTS_GO (the kill test's go-ahead)."""
    import time

    note(f"lost-start {event.entity_id}")
    deadline = time.monotonic() + 60
    while not os.path.exists(os.environ.get("EVENTS_GO", "")) and time.monotonic() < deadline:
        time.sleep(0.05)
    note(f"lost-done {event.entity_id}")


@on_event(event_name="parcel_lost")
def count_lost_parcel(event: Event) -> None:
    note(f"lost-counted {event.entity_id}")


@on_event(event_name="reservation_created", retry=Retry(max_attempts=2, base_delay=timedelta(milliseconds=100)))
def always_fails(event: Event) -> None:
    note(f"failing {event.entity_id}")
    raise RuntimeError("the mail server is down")


@on_event(event_name="reservation_created")
def also_called(event: Event) -> None:
    note(f"created-callback {event.entity_id}")


# ---------------------------------------------------------------------- section 3, as written
@event_workflow(event_name="checkin_due", offset=timedelta(minutes=-60))  # run 60m before check-in
class PreArrivalReminder:
    class Context(BaseModel):
        reservation_id: int

    @classmethod
    def create_context(cls, event=None):
        reservation = event.entity
        return cls.Context(reservation_id=reservation.id)

    @step(start=True)
    def run(self):
        # send reminder
        note(f"reminder {get_context().reservation_id}")
        return complete()


@event_workflow(event_name="checkin_due", offset_minutes=30)
class CheckinFollowUp:
    class Context(BaseModel):
        reservation_id: int

    @classmethod
    def create_context(cls, event=None):
        return cls.Context(reservation_id=int(event.entity_id))

    @step(start=True)
    def run(self):
        note(f"follow-up {get_context().reservation_id}")
        return complete()


@event_workflow(event_name="checkin_due")
class CheckinAtTime:
    class Context(BaseModel):
        reservation_id: int

    @classmethod
    def create_context(cls, event=None):
        return cls.Context(reservation_id=int(event.entity_id))

    @step(start=True)
    def run(self):
        note(f"at-time {get_context().reservation_id}")
        return complete()


# ---------------------------------------------------------------------- section 4, as written
@event_workflow(
    event_name="checkout_due",
    offset=timedelta(hours=-2),  # 2h before checkout
    default_retry=Retry(max_attempts=3, base_delay=timedelta(seconds=2)),
)
class CheckoutOpsWF:
    class Context(BaseModel):
        reservation_id: int
        docs_ready: bool = False
        notified: bool = False
        attempts: int = 0
        final_state: Optional[str] = None  # noqa: UP045  (the guide's spelling)
        event_id: Optional[int] = None  # noqa: UP045  (filled by the wait_for_event payload)

    @classmethod
    def create_context(cls, event=None):
        return cls.Context(reservation_id=event.entity.id)

    # ── Correct: wait_for_event listens for our Event models (via "event:<name>" bridge)
    @step(start=True)
    def await_docs(self):
        ctx = get_context()
        if ctx.docs_ready:
            return goto(self.notify_housekeeping)
        # Wait until the Event model named "guest_docs_uploaded" OCCURS,
        # or jump to fallback after 90 minutes:
        return wait_for_event("guest_docs_uploaded", timeout=timedelta(minutes=90), on_timeout="fallback_docs")

    @step()
    def fallback_docs(self):
        # proceed with default docs
        return goto(self.notify_housekeeping)

    # ── Example: generic wait for a custom signal YOU emit (not tied to Event models)
    @step()
    def pause_until_ops_window(self):
        return wait.for_signal("ops:window_open")  # elsewhere: engine.signal("ops:window_open")

    @step(retry=Retry(max_attempts=5, base_delay=timedelta(seconds=1)))
    def notify_housekeeping(self):
        ctx = get_context()
        ctx.attempts += 1
        if ctx.attempts < 2:
            raise RuntimeError("transient failure")  # triggers per-step retry
        ctx.notified = True
        return goto(self.finalize)

    @step()
    def finalize(self):
        ctx = get_context()
        if not ctx.notified:
            return fail("Housekeeping was not notified")
        ctx.final_state = "ok"
        return complete(final_state="ok")


# ---------------------------------------------------------------------- waits for events
@workflow("docs_watch")
class DocsWatch:
    """Waits for the docs of one reservation (``match``), then notes the payload it got."""

    class Context(BaseModel):
        reservation_id: int
        event_id: Optional[int] = None  # noqa: UP045
        entity_id: Optional[str] = None  # noqa: UP045
        event_name: Optional[str] = None  # noqa: UP045

    @step(start=True)
    def begin(self):
        return wait_for_event("guest_docs_uploaded", match={"id": "{{ ctx.reservation_id }}"})

    @step()
    def done(self):
        ctx = get_context()
        note(f"docs {ctx.reservation_id} {ctx.entity_id} {ctx.event_name}")
        return complete()


@workflow("any_docs_watch")
class AnyDocsWatch:
    """The guide's broadcast form, as a gate: any reservation's docs wake it."""

    class Context(BaseModel):
        entity_id: Optional[str] = None  # noqa: UP045

    @wait_for_event("guest_docs_uploaded")
    @step(start=True)
    def gate(self):
        note(f"any-docs {get_context().entity_id}")
        return complete()

"""Model events on Temporal (docs/semantics.md, "Model events"), against real servers.

The models are in tests/testapp/models.py, the guide's subscribers in
tests/testapp/event_automations.py; what callbacks and steps did is counted in a log file.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

import pytest
from django.db import transaction
from django.utils import timezone
from temporalio.client import WorkflowExecutionStatus

from django_bridge.models import Event, WorkflowRun
from facade import engine
from facade.testing import TemporalTestEnvironment, wait_for
from temporal_worker import client as bridge
from temporal_worker.dispatch import dispatch_pending
from temporal_worker.protocol import event_workflow_id
from tests.testapp import event_automations as ea
from tests.testapp.models import Parcel, Reservation


@pytest.fixture
def log(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "events.log"
    monkeypatch.setenv(ea.LOG_ENV, str(path))
    return path


def lines(log: Path) -> Counter[str]:
    return Counter(log.read_text().splitlines() if log.exists() else [])


def wait_logged(log: Path, line: str, timeout: float = 30, times: int = 1) -> None:
    wait_for(lambda: lines(log)[line] >= times, timeout=timeout, message=f"{line!r} not logged; log: {lines(log)}")


def event_of(instance, name: str) -> Event:
    return Event.objects.get(event_name=name, entity_id=str(instance.pk))


def event_closed(env: TemporalTestEnvironment, event: Event, timeout: float = 30) -> WorkflowExecutionStatus:
    """Wait until the event's workflow has delivered everything and closed."""
    handle = env.client.get_workflow_handle(event_workflow_id(event.pk))

    def closed():
        status = bridge.run_sync(handle.describe(), timeout=30).status
        return status if status != WorkflowExecutionStatus.RUNNING else None

    return wait_for(closed, timeout=timeout, message=f"the workflow of {event} did not close")


@pytest.fixture
def fresh_ts(transactional_db):
    """A time-skipping server of its own: its clock starts now, so due times are where tests put them."""
    with TemporalTestEnvironment(time_skipping=True) as env:
        yield env


# ---------------------------------------------------------------------- immediate events
def test_an_immediate_event_runs_its_callback_once_after_commit(dev, log):
    with transaction.atomic():
        reservation = Reservation.objects.create(checkin_at=timezone.now() + dt.timedelta(days=3))
        reservation.status = "confirmed"
        reservation.save()
        # Written in the user's transaction, not dispatched before it commits.
        assert event_of(reservation, "reservation_confirmed").status == "occurred"
        assert lines(log)["welcome " + str(reservation.pk)] == 0
    wait_logged(log, f"welcome {reservation.pk}")
    event = event_of(reservation, "reservation_confirmed")
    assert event_closed(dev, event) == WorkflowExecutionStatus.COMPLETED
    reservation.guest = "someone"
    reservation.save()  # the condition still holds: it occurred already, once per entity
    assert dispatch_pending() == 0
    event.refresh_from_db()
    assert event.delivered["occurred"][ea.send_welcome_email.__module__ + ".send_welcome_email"]["status"] == "completed"
    assert lines(log)[f"welcome {reservation.pk}"] == 1


def test_a_rollback_dispatches_nothing(dev, log):
    with pytest.raises(RuntimeError), transaction.atomic():
        Reservation.objects.create(checkin_at=timezone.now(), status="confirmed")
        raise RuntimeError("roll back")
    assert not Event.objects.exists()
    assert dispatch_pending() == 0
    assert lines(log) == Counter()


def test_a_condition_that_raises_does_not_break_the_save(dev, log, caplog):
    reservation = Reservation.objects.create(checkin_at=timezone.now(), status="confirmed")
    assert Reservation.objects.filter(pk=reservation.pk).exists()
    assert not Event.objects.filter(event_name="reservation_flagged").exists()
    assert "reservation_flagged" in caplog.text and "raised" in caplog.text


def test_a_failing_callback_is_recorded_and_blocks_no_other(dev, log):
    reservation = Reservation.objects.create(checkin_at=timezone.now())
    wait_logged(log, f"created-callback {reservation.pk}")
    wait_logged(log, f"failing {reservation.pk}", times=2)  # its two attempts
    event = event_of(reservation, "reservation_created")
    event_closed(dev, event)
    event.refresh_from_db()
    failed = event.delivered["occurred"][f"{ea.__name__}.always_fails"]
    assert failed["status"] == "failed" and "mail server is down" in failed["error"]
    assert event.delivered["occurred"][f"{ea.__name__}.also_called"]["status"] == "completed"
    assert lines(log)[f"failing {reservation.pk}"] == 2


def test_uuid_primary_keys(dev, log):
    parcel = Parcel.objects.create()
    parcel.delivered = True
    parcel.save()
    wait_logged(log, f"parcel {parcel.pk} {parcel.pk}")
    assert event_of(parcel, "parcel_delivered").entity == parcel


def test_two_hundred_entities_in_one_transaction(dev, log):
    with transaction.atomic():
        for _ in range(200):
            Reservation.objects.create(checkin_at=timezone.now() + dt.timedelta(days=1), status="confirmed")
    wait_for(lambda: sum(n for k, n in lines(log).items() if k.startswith("welcome ")) >= 200, timeout=120)
    assert all(n == 1 for k, n in lines(log).items() if k.startswith("welcome "))
    assert not Event.objects.filter(dispatched_version__lt=models_F("version")).exists()


def models_F(name: str):
    from django.db.models import F

    return F(name)


# ---------------------------------------------------------------------- waiting for events
def test_wait_for_event_with_and_without_match(dev, log):
    mine = Reservation.objects.create(checkin_at=timezone.now(), guest="me")
    other = Reservation.objects.create(checkin_at=timezone.now(), guest="other")
    scoped = engine.start("docs_watch", reservation_id=mine.pk)
    broadcast = engine.start("any_docs_watch")
    dev.wait_until(scoped, lambda r: r.status == "suspended")
    dev.wait_until(broadcast, lambda r: r.status == "suspended")
    other.docs_uploaded = True
    other.save()
    wait_logged(log, f"any-docs {other.pk}")
    event_closed(dev, event_of(other, "guest_docs_uploaded"))
    assert dev.wait_until(scoped, lambda r: True).status == "suspended"  # not its reservation
    mine.docs_uploaded = True
    mine.save()
    run = dev.wait_until_finished(scoped)
    assert run.status == "completed"
    assert lines(log)[f"docs {mine.pk} {mine.pk} guest_docs_uploaded"] == 1
    assert run.data["event_id"] == event_of(mine, "guest_docs_uploaded").pk


# ---------------------------------------------------------------------- scheduled events
def test_scheduled_event_runs_offsets_and_callbacks_at_their_times(fresh_ts, log):
    """The guide's PreArrivalReminder (-60 min), a +30 min and a zero offset, and checkin_due itself."""
    env = fresh_ts
    checkin = timezone.now() + dt.timedelta(days=2)
    reservation = Reservation.objects.create(checkin_at=checkin, status="confirmed")
    event = event_of(reservation, "checkin_due")
    assert event.status == "pending" and event.at == checkin
    wait_logged(log, f"created checkin_due {reservation.pk}")
    runs = {r.name: r for r in wait_for(lambda: _runs_of(event, 3), timeout=30)}
    reminder = runs["PreArrivalReminder"]
    assert reminder.status == "waiting" and reminder.wake_at == checkin - dt.timedelta(minutes=60)
    assert runs["CheckinFollowUp"].wake_at == checkin + dt.timedelta(minutes=30)
    env.skip_time(dt.timedelta(days=2) - dt.timedelta(minutes=61))
    assert WorkflowRun.objects.get(pk=reminder.pk).status == "waiting"
    env.skip_time(dt.timedelta(minutes=2))
    assert env.wait_until_finished(reminder).status == "completed"
    assert lines(log)[f"reminder {reservation.pk}"] == 1 and lines(log)[f"at-time {reservation.pk}"] == 0
    env.skip_time(dt.timedelta(minutes=60))
    env.wait_until_finished(runs["CheckinAtTime"])
    wait_for(lambda: Event.objects.get(pk=event.pk).status == "occurred", timeout=30)
    env.skip_time(dt.timedelta(minutes=31))
    env.wait_until_finished(runs["CheckinFollowUp"])
    assert lines(log)[f"follow-up {reservation.pk}"] == 1


def _runs_of(event: Event, count: int) -> list[WorkflowRun] | None:
    runs = list(WorkflowRun.objects.filter(event=event))
    return runs if len(runs) >= count else None

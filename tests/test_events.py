"""Model events on Temporal (docs/semantics.md, "Model events"), against real servers.

The models are in tests/testapp/models.py, the guide's subscribers in
tests/testapp/event_automations.py; what callbacks and steps did is counted in a log file.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone
from temporalio import workflow
from temporalio.client import WorkflowExecutionStatus
from temporalio.worker import Interceptor, WorkflowInboundInterceptor

from django_bridge.models import Event, WorkflowRun
from facade import engine
from facade.testing import TemporalTestEnvironment, wait_for
from temporal_worker import client as bridge
from temporal_worker.dispatch import dispatch_pending
from temporal_worker.protocol import event_workflow_id
from tests.testapp import event_automations as ea
from tests.testapp.models import Guest, Parcel, Reservation


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
def test_offset_and_offset_minutes_together_are_refused():
    from django_ai.automation.workflows.core import event_workflow
    from facade import WorkflowDefinitionError

    with pytest.raises(WorkflowDefinitionError, match="not both"):

        @event_workflow(event_name="checkin_due", offset=dt.timedelta(minutes=5), offset_minutes=5)
        class Both:
            pass


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
    reservation.guest = Guest.objects.create(name="someone")
    reservation.save()  # the condition still holds: it occurred already, once per entity
    dev.wait_dispatched()
    assert dispatch_pending() == 0
    event.refresh_from_db()
    assert (
        event.delivered["occurred"][ea.send_welcome_email.__module__ + ".send_welcome_email"]["status"] == "completed"
    )
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
    dev.wait_event_delivered(event_of(parcel, "parcel_delivered"))
    assert lines(log)[f"parcel {parcel.pk} {parcel.pk}"] == 1
    assert event_of(parcel, "parcel_delivered").entity == parcel


def test_two_hundred_entities_in_one_transaction(dev, log):
    from django.db.models import F

    with transaction.atomic():
        parcels = [Parcel.objects.create(delivered=True) for _ in range(200)]
    wait_for(lambda: sum(n for k, n in lines(log).items() if k.startswith("parcel ")) >= 200, timeout=120)
    assert {k for k in lines(log) if k.startswith("parcel ")} == {f"parcel {p.pk} {p.pk}" for p in parcels}
    assert all(n == 1 for k, n in lines(log).items() if k.startswith("parcel "))
    dev.wait_dispatched()  # the dispatch thread marks the rows once Temporal has them
    assert not Event.objects.filter(dispatched_version__lt=F("version")).exists()


# ---------------------------------------------------------------------- waiting for events
def test_wait_for_event_with_and_without_match(dev, log):
    mine = Reservation.objects.create(checkin_at=timezone.now())
    other = Reservation.objects.create(checkin_at=timezone.now())
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


def server_now(env: TemporalTestEnvironment) -> dt.datetime:
    """The time-skipping server's clock (ahead of this machine's once time was skipped)."""
    return bridge.run_sync(env.env.get_current_time(), timeout=30)


class _SlowFirstTask(Interceptor):
    """Makes the first workflow task of every ``CheckinAtTime`` run take 3 s, as a task does
    that waits in a worker busy with hundreds of runs created at once."""

    def workflow_interceptor_class(self, input: Any) -> type[WorkflowInboundInterceptor] | None:
        return _SlowInbound


class _SlowInbound(WorkflowInboundInterceptor):
    async def execute_workflow(self, input: Any) -> Any:
        if workflow.info().workflow_type == "CheckinAtTime" and not workflow.unsafe.is_replaying():
            time.sleep(3)  # blocks the task, not the workflow's clock
        return await super().execute_workflow(input)


def test_a_slow_task_does_not_make_a_due_run_late(transactional_db, log):
    """A timer is late by the workflow task that set it; the run wakes early and sets its last
    timer from a task of its own, so its step starts on time all the same."""
    from temporalio.api.enums.v1 import EventType

    from temporal_worker.worker import build_worker

    with TemporalTestEnvironment(start_worker=False) as env:

        async def launch() -> Any:
            # debug_mode: no deadlock detection, which would fail a task blocked for 2 s.
            worker = build_worker(env.client, env.task_queue, interceptors=[_SlowFirstTask()], debug_mode=True)
            return worker, asyncio.get_running_loop().create_task(worker.run())

        worker, _ = bridge.run_sync(launch(), timeout=30)
        try:
            checkin = timezone.now() + dt.timedelta(seconds=12)
            reservation = Reservation.objects.create(checkin_at=checkin, status="confirmed")
            event = event_of(reservation, "checkin_due")
            run = wait_for(lambda: WorkflowRun.objects.filter(event=event, name="CheckinAtTime").first(), timeout=30)
            run = env.wait_until_finished(run, timeout=60)
            assert run.status == "completed"
            history = env.history(run)
        finally:
            bridge.run_sync(worker.shutdown(), timeout=60)
    step = next(e for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
    late = step.event_time.ToDatetime(tzinfo=dt.UTC) - checkin
    assert late < dt.timedelta(seconds=1.5), f"the step was scheduled {late} after its due time"
    timers = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED]
    assert len(timers) == 2, "an early wake-up, then the last timer"


def test_scheduled_event_moves_with_its_date_and_fires_once(fresh_ts, log):
    """Moved later, then earlier, then into the past; an offset that fired does not fire again."""
    env = fresh_ts
    start = server_now(env)
    reservation = Reservation.objects.create(checkin_at=start + dt.timedelta(days=2), status="confirmed")
    event = event_of(reservation, "checkin_due")
    reminder = {r.name: r for r in wait_for(lambda: _runs_of(event, 3), timeout=30)}["PreArrivalReminder"]
    later = start + dt.timedelta(days=3)
    reservation.checkin_at = later
    reservation.save()
    wait_for(lambda: WorkflowRun.objects.get(pk=reminder.pk).wake_at == later - dt.timedelta(minutes=60), timeout=30)
    env.skip_time(dt.timedelta(days=2, hours=1))  # past the first date: nothing fires
    assert WorkflowRun.objects.get(pk=reminder.pk).status == "waiting"
    assert Event.objects.get(pk=event.pk).status == "pending"
    earlier = server_now(env) + dt.timedelta(hours=2)
    reservation.checkin_at = earlier
    reservation.save()
    wait_for(lambda: WorkflowRun.objects.get(pk=reminder.pk).wake_at == earlier - dt.timedelta(minutes=60), timeout=30)
    env.skip_time(dt.timedelta(minutes=61))
    assert env.wait_until_finished(reminder).status == "completed"
    assert lines(log)[f"reminder {reservation.pk}"] == 1
    # Into the past now: what is still pending runs at once; the reminder that ran does not again.
    reservation.checkin_at = server_now(env) - dt.timedelta(hours=5)
    reservation.save()
    wait_for(lambda: Event.objects.get(pk=event.pk).status == "occurred", timeout=30)
    runs = {r.name: r for r in WorkflowRun.objects.filter(event=event)}
    assert env.wait_until_finished(runs["CheckinAtTime"]).status == "completed"
    assert env.wait_until_finished(runs["CheckinFollowUp"]).status == "completed"
    assert WorkflowRun.objects.filter(event=event).count() == 3
    assert lines(log)[f"reminder {reservation.pk}"] == 1


def test_condition_false_cancels_and_true_again_makes_it_pending_again(fresh_ts, log):
    env = fresh_ts
    reservation = Reservation.objects.create(checkin_at=server_now(env) + dt.timedelta(days=1), status="confirmed")
    event = event_of(reservation, "checkin_due")
    first = wait_for(lambda: _runs_of(event, 3), timeout=30)
    reservation.status = "pending"
    reservation.save()
    wait_logged(log, f"cancelled checkin_due {reservation.pk}")
    for run in first:  # without moving time (wait_until_finished may): the second round is due in a day
        assert env.wait_until(run, lambda r: r.is_finished).status == "cancelled"
    assert Event.objects.get(pk=event.pk).status == "cancelled"
    reservation.status = "confirmed"
    reservation.save()
    event.refresh_from_db()
    assert event.status == "pending" and event.generation == 2
    first_ids = {r.pk for r in first}

    def second_round() -> list[WorkflowRun] | None:
        new = [r for r in WorkflowRun.objects.filter(event=event) if r.pk not in first_ids]
        return new if len(new) >= 3 else None

    second = wait_for(second_round, timeout=30)
    assert len(second) == 3 and all(r.status == "waiting" for r in second)
    env.skip_time(dt.timedelta(days=1, minutes=31))
    for run in second:
        assert env.wait_until_finished(run).status == "completed"
    assert lines(log)[f"reminder {reservation.pk}"] == 1


def test_a_change_that_comes_while_the_events_workflow_ends_is_not_lost(fresh_ts, log, monkeypatch):
    """The event's workflow has loaded the row cancelled and is about to end when the row is
    pending again: it loads the row once more instead of ending, so the new round has its runs."""
    import threading

    from temporal_worker import activities
    from temporal_worker.protocol import EVENT_LOAD_ACTIVITY

    real = activities._EVENT_ACTIVITIES[EVENT_LOAD_ACTIVITY]
    loaded_cancelled = threading.Event()

    def slow_when_cancelled(inp):
        state = real(inp)
        if state["status"] == "cancelled" and not loaded_cancelled.is_set():
            loaded_cancelled.set()
            time.sleep(2)  # the row is made pending again meanwhile
        return state

    monkeypatch.setitem(activities._EVENT_ACTIVITIES, EVENT_LOAD_ACTIVITY, slow_when_cancelled)
    env = fresh_ts
    reservation = Reservation.objects.create(checkin_at=server_now(env) + dt.timedelta(days=1), status="confirmed")
    event = event_of(reservation, "checkin_due")
    first_ids = {r.pk for r in wait_for(lambda: _runs_of(event, 3), timeout=30)}
    reservation.status = "pending"
    reservation.save()
    assert loaded_cancelled.wait(30), "the event's workflow never loaded the cancelled row"
    reservation.status = "confirmed"
    reservation.save()  # while that load still runs
    assert Event.objects.get(pk=event.pk).generation == 2

    def second_round() -> list[WorkflowRun] | None:
        new = [r for r in WorkflowRun.objects.filter(event=event) if r.pk not in first_ids]
        return new if len(new) >= 3 else None

    second = wait_for(second_round, timeout=30, message="the event pending again got no runs: its change was lost")
    assert all(r.status == "waiting" for r in second)


def test_deleting_the_entity_cancels_its_pending_events_and_their_runs(fresh_ts, log):
    env = fresh_ts
    reservation = Reservation.objects.create(checkin_at=server_now(env) + dt.timedelta(days=1), status="confirmed")
    pk = reservation.pk
    event = event_of(reservation, "checkin_due")
    runs = wait_for(lambda: _runs_of(event, 3), timeout=30)
    reservation.delete()
    wait_logged(log, f"cancelled checkin_due {pk}")
    assert Event.objects.get(pk=event.pk).status == "cancelled"
    for run in runs:
        assert env.wait_until_finished(run).status == "cancelled"
    assert Event.objects.get(pk=event.pk).entity is None


def test_the_guides_checkout_workflow_waits_for_the_docs_event(fresh_ts, log):
    """CheckoutOpsWF as the guide writes it: due 2 h before checkout, waits for guest_docs_uploaded."""
    env = fresh_ts
    checkout = server_now(env) + dt.timedelta(days=1)
    reservation = Reservation.objects.create(
        checkin_at=server_now(env) - dt.timedelta(days=1), checkout_at=checkout, status="pending"
    )
    reservation.status = "confirmed"
    reservation.save()
    event = event_of(reservation, "checkout_due")
    run = wait_for(lambda: WorkflowRun.objects.filter(event=event, name="CheckoutOpsWF").first(), timeout=30)
    assert run.status == "waiting" and run.wake_at == checkout - dt.timedelta(hours=2)
    env.skip_time(dt.timedelta(hours=22, minutes=1))
    run = env.wait_until(run, lambda r: r.status == "suspended" and r.waiting_signal == "event:guest_docs_uploaded")
    reservation.docs_uploaded = True
    reservation.save()
    run = env.wait_until_finished(run, timeout=60)
    assert run.status == "completed", run.error
    assert run.data["final_state"] == "ok" and run.data["notified"] and run.data["attempts"] == 2
    assert run.data["event_id"] == event_of(reservation, "guest_docs_uploaded").pk


def test_an_occurrence_lost_to_a_temporal_outage_is_dispatched_once_later(dev, log):
    """Temporal unreachable at commit: the row waits in the outbox; the worker's sweep sends it."""
    from django_bridge.conf import automation_settings

    dev.activate()
    bridge.set_client(None)
    automation_settings.overrides["TEMPORAL_ADDRESS"] = "127.0.0.1:1"
    try:
        reservation = Reservation.objects.create(checkin_at=timezone.now(), status="confirmed")
        dev.wait_dispatched()  # the dispatch thread tried, while Temporal was unreachable
        event = event_of(reservation, "reservation_confirmed")
        assert event.dispatched_version < event.version  # kept in the outbox
    finally:
        del automation_settings.overrides["TEMPORAL_ADDRESS"]
        dev.activate()
    wait_logged(log, f"welcome {reservation.pk}", timeout=30)  # the sweep, within its interval
    event_closed(dev, event)
    assert dispatch_pending() == 0
    assert lines(log)[f"welcome {reservation.pk}"] == 1


def test_a_save_does_not_wait_for_temporal(dev, log):
    """The dispatch is a thread's business: a save returns at once even when Temporal does not
    answer, and what that thread could not send waits in the outbox."""
    import socket

    from django_bridge.conf import automation_settings
    from temporal_worker.dispatch import wait_dispatched

    silent = socket.socket()  # accepts connections and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    bridge.set_client(None)
    automation_settings.overrides["TEMPORAL_ADDRESS"] = f"127.0.0.1:{silent.getsockname()[1]}"
    try:
        began = time.monotonic()
        reservation = Reservation.objects.create(checkin_at=timezone.now(), status="confirmed")
        took = time.monotonic() - began
        assert not wait_dispatched(0.5)  # still trying to reach the silent server
    finally:
        silent.close()  # the connection attempt fails now
        assert wait_dispatched(60)
        del automation_settings.overrides["TEMPORAL_ADDRESS"]
        dev.activate()
    assert took < 0.5, f"the save took {took:.2f} s"
    event = event_of(reservation, "reservation_confirmed")
    assert event.dispatched_version < event.version  # kept in the outbox
    assert dispatch_pending() == Event.objects.filter(entity_id=str(reservation.pk)).count()
    wait_logged(log, f"welcome {reservation.pk}")
    event_closed(dev, event)
    assert lines(log)[f"welcome {reservation.pk}"] == 1
    # The reservation's other events (checkin_due is due now, with its runs) were sent by the
    # same dispatch: let them finish before the tables are emptied for the next test (on
    # Postgres, emptying them while an activity holds a row lock is a deadlock).
    for other in Event.objects.filter(entity_id=str(reservation.pk)).exclude(pk=event.pk):
        dev.wait_event_delivered(other)
    for run in WorkflowRun.objects.filter(event__entity_id=str(reservation.pk), wake_at__lte=timezone.now()):
        dev.wait_until(run, lambda r: r.is_finished or r.status == "waiting")
    dev.wait_idle()


def test_sync_for_brings_bulk_created_entities_up_to_date(dev, log):
    from django.core.management import call_command

    created = Reservation.objects.bulk_create(
        [Reservation(checkin_at=timezone.now(), status="confirmed") for _ in range(3)]
    )
    assert not Event.objects.exists()  # bulk_create sends no signals
    changed = Event.objects.sync_for(Reservation.objects.all())
    assert changed == 3 * 3  # reservation_confirmed, checkin_due (in the past: pending), reservation_created
    for reservation in Reservation.objects.all():
        wait_logged(log, f"welcome {reservation.pk}")
    call_command("sync_events", "testapp.Reservation")  # nothing changes the second time
    assert Event.objects.count() == 9
    assert sum(1 for k in lines(log) if k.startswith("welcome ")) == len(created)


def test_bad_declarations_are_reported_with_the_model_and_the_fix():
    from django.db import models
    from django.test.utils import isolate_apps

    from django_ai.automation.events.callbacks import on_event
    from django_ai.automation.events.definitions import EventDefinition
    from django_bridge.checks import event_definition_errors
    from facade import WorkflowDefinitionError, registry

    with pytest.raises(WorkflowDefinitionError, match="condition must be a callable"):
        EventDefinition("x", condition="status == 'confirmed'")
    with isolate_apps("tests.testapp"):

        class Booking(models.Model):
            starts = models.CharField(max_length=10)

            class Meta:
                app_label = "testapp"

            events = [
                EventDefinition("booked"),
                EventDefinition("booked"),
                EventDefinition("starts_soon", date_field="starts"),
                EventDefinition("ends_soon", date_field="ends"),
            ]

        with registry.isolated():

            @on_event(event_name="nobody_defines_this")
            def orphan(event):
                pass

            problems = [(p.id, p.msg) for p in event_definition_errors([Booking])]
    messages = "\n".join(f"{i}: {m}" for i, m in problems)
    assert "automation.E021: testapp.Booking defines the event 'booked' twice." in messages
    assert "automation.E022: testapp.Booking event 'starts_soon': date_field 'starts' is a CharField." in messages
    assert "automation.E022: testapp.Booking event 'ends_soon': date_field 'ends' is not a field." in messages
    assert "automation.W020: no model defines the event 'nobody_defines_this'" in messages


@pytest.mark.slow
def test_a_worker_killed_while_delivering_loses_nothing(transactional_db, tmp_path, monkeypatch, log):
    """The worker dies in the middle of a callback; a new worker delivers the rest, once.

    The interrupted callback runs again (an activity cut short is retried, like a step), the
    callback that had finished does not, and the event's workflow completes.
    """
    from django.db import connection

    from tests.worker_process import WorkerProcess

    go = tmp_path / "go"
    monkeypatch.setenv("EVENTS_GO", str(go))
    with TemporalTestEnvironment(start_worker=False, heartbeat_timeout=2.0) as env:
        options = {
            "address": env.client.service_client.config.target_host,
            "namespace": env.client.namespace,
            "task_queue": env.task_queue,
            "db_name": connection.settings_dict["NAME"],
        }
        first = WorkerProcess(**options, log_path=tmp_path / "worker1.log").start()
        second = WorkerProcess(**options, log_path=tmp_path / "worker2.log")
        try:
            parcel = Parcel.objects.create(lost=True)
            wait_logged(log, f"lost-start {parcel.pk}")
            wait_logged(log, f"lost-counted {parcel.pk}")
            # Finished means recorded: a callback killed between its return and its record runs
            # again (at least once), which is not what this test is about.
            counted = ea.count_lost_parcel.__module__ + ".count_lost_parcel"
            wait_for(
                lambda: (
                    ((event_of(parcel, "parcel_lost").delivered or {}).get("occurred") or {})
                    .get(counted, {})
                    .get("status")
                    == "completed"
                ),
                timeout=30,
                message="the finished callback was never recorded",
            )
            first.kill()
            second.start()
            wait_logged(log, f"lost-start {parcel.pk}", times=2, timeout=60)  # retried on the new worker
            go.touch()
            event = event_of(parcel, "parcel_lost")
            env.wait_event_delivered(event, timeout=60)
        finally:
            first.kill()
            second.kill()
    assert lines(log)[f"lost-done {parcel.pk}"] == 1
    assert lines(log)[f"lost-counted {parcel.pk}"] == 1
    event.refresh_from_db()
    assert all(r["status"] == "completed" for r in event.delivered["occurred"].values())


def test_starting_an_event_workflow_by_hand_is_a_clear_error(dev):
    from facade import InvalidInputError

    with pytest.raises(InvalidInputError, match=r"create_context\(\) raised AttributeError.*started by that event"):
        engine.start("PreArrivalReminder")
    assert not WorkflowRun.objects.filter(name="PreArrivalReminder").exists()

"""Long-running agents on Temporal (docs/semantics.md, "Agents" and "Claims"), against real servers.

The agents are the automations guide's section 8 examples as written, in
tests/testapp/agent_automations.py, declared in an isolated registry for this module only.
"""

from __future__ import annotations

import datetime as dt
import importlib
import os
import sys
from collections import Counter
from pathlib import Path

import pytest
from django.utils import timezone

from django_bridge.models import AgentRoute, Event, EventClaim, StepExecution, WorkflowRun
from facade import registry
from facade.testing import TemporalTestEnvironment, wait_for
from temporal_worker import client as bridge
from temporal_worker.protocol import AGENT_QUERY
from tests.testapp.models import Booking, Guest, Message, Reservation, Ticket

MODULE = "tests.testapp.agent_automations"


@pytest.fixture(scope="module", autouse=True)
def agents():
    """The guide's agents, for this module only (other tests create reservations too)."""
    with registry.isolated():
        module = importlib.reload(sys.modules[MODULE]) if MODULE in sys.modules else importlib.import_module(MODULE)
        yield module


@pytest.fixture(autouse=True)
def end_instances(request):
    """Agents live until ended: terminate this test's instances before its rows are flushed (a
    handler of a forgotten instance would otherwise write while the next test truncates tables)."""
    # Set up here, so torn down after this fixture: the server is still there at its teardown.
    # (fresh_ts servers stop with their test: nothing of theirs lives on.)
    env = request.getfixturevalue("dev") if "dev" in request.fixturenames else None
    yield
    if env is None:
        return

    async def terminate_all() -> None:
        async for execution in env.client.list_workflows("ExecutionStatus='Running'"):
            if execution.workflow_type in registry.agent_names():
                try:
                    await env.client.get_workflow_handle(execution.id).terminate("the test ended")
                except Exception:
                    pass

    bridge.run_sync(terminate_all(), timeout=60)
    env.wait_idle()  # a handler already running finishes before the tables are emptied


@pytest.fixture
def log(tmp_path, monkeypatch, agents) -> Path:
    path = tmp_path / "agents.log"
    monkeypatch.setenv(agents.LOG_ENV, str(path))
    agents.FAILS_BEFORE_SUCCESS["count"] = 0
    return path


def lines(log: Path) -> Counter[str]:
    return Counter(log.read_text().splitlines() if log.exists() else [])


def wait_logged(log: Path, line: str, timeout: float = 30, times: int = 1) -> None:
    wait_for(lambda: lines(log)[line] >= times, timeout=timeout, message=f"{line!r} not logged; log: {lines(log)}")


def instances(name: str, count: int = 1) -> list[WorkflowRun] | None:
    found = list(WorkflowRun.objects.filter(kind="agent", name=name).order_by("pk"))
    return found if len(found) >= count else None


def query(env: TemporalTestEnvironment, run: WorkflowRun) -> dict:
    """The instance's live state (empty until its workflow has started)."""
    from temporalio.service import RPCError

    handle = env.client.get_workflow_handle(run.temporal_workflow_id)
    try:
        return bridge.run_sync(handle.query(AGENT_QUERY), timeout=30)
    except RPCError:
        return {"timed_handlers": [], "context": {}}


def server_now(env: TemporalTestEnvironment) -> dt.datetime:
    return bridge.run_sync(env.env.get_current_time(), timeout=30)


@pytest.fixture
def fresh_ts(transactional_db):
    """A time-skipping server of its own: its clock starts now."""
    with TemporalTestEnvironment(time_skipping=True) as env:
        yield env


# ---------------------------------------------------------------------- spawning and routing
def test_the_spawn_event_creates_one_instance_and_its_handler_runs_once(dev, log):
    guest = Guest.objects.create(name="Ada")
    reservation = Reservation.objects.create(checkin_at=timezone.now() + dt.timedelta(days=10), guest=guest)
    spawn_event = Event.objects.get(event_name="reservation_created", entity_id=str(reservation.pk))
    wait_logged(log, f"spawned {reservation.pk} by event {spawn_event.pk}")
    (journey,) = wait_for(lambda: instances("reservation_journey"), timeout=30)
    assert journey.status == "running" and journey.kind == "agent"
    assert journey.data == {
        "reservation_id": reservation.pk,
        "guest_name": "Ada",
        "reminder_sent": False,
        "welcome_sent": False,
    }
    assert journey.event_id == spawn_event.pk
    # The Temporal workflow type is the agent's name.
    desc = bridge.run_sync(dev.client.get_workflow_handle(journey.temporal_workflow_id).describe(), timeout=30)
    assert desc.workflow_type == "reservation_journey"

    reservation.status = "confirmed"
    reservation.save()
    wait_logged(log, "email Ada: Your booking is confirmed!")
    # Confirmed: checkin_due is pending; the instance knows its timed handlers.
    state = wait_for(lambda: (s := query(dev, journey))["timed_handlers"] and s, timeout=30)
    assert [t["handler"] for t in state["timed_handlers"]] == ["send_pre_checkin"]
    assert state["timed_handlers"][0]["due_at"] == pytest.approx(
        (reservation.checkin_at - dt.timedelta(hours=3)).timestamp()
    )
    assert lines(log)[f"spawned {reservation.pk} by event {spawn_event.pk}"] == 1
    assert list(WorkflowRun.objects.filter(kind="agent", name="reservation_journey")) == [journey]
    # (a handler notes its line before its row is written: wait for the rows)
    wait_for(lambda: StepExecution.objects.filter(run=journey).count() == 2, timeout=30)
    handled = list(StepExecution.objects.filter(run=journey).order_by("seq").values_list("step_name", "status"))
    assert handled == [("on_spawn", "completed"), ("send_confirmation", "completed")]


def test_singleton_routing_and_handler_match_on_another_model(dev, log):
    ada, bob = Guest.objects.create(name="Ada"), Guest.objects.create(name="Bob")
    Booking.objects.create(guest=ada)
    (support,) = wait_for(lambda: instances("guest_support"), timeout=30)
    Booking.objects.create(guest=ada)  # the same guest: goes to the same instance (singleton)
    Booking.objects.create(guest=bob)
    bob_support = wait_for(lambda: instances("guest_support", 2), timeout=30)[1]
    assert bob_support.data["guest_id"] == bob.pk
    wait_for(lambda: Event.objects.filter(event_name="booking_created", status="occurred").count() == 3, timeout=10)
    # Still two: Ada's second booking found Ada's instance.
    assert WorkflowRun.objects.filter(kind="agent", name="guest_support").count() == 2
    Message.objects.create(sender=bob, text="hi")
    wait_logged(log, f"support {bob.pk} got a message")
    assert lines(log)[f"support {ada.pk} got a message"] == 0
    # singleton=False: every booking spawns its own watch; status__in gets the list, guest__id traverses.
    watches = wait_for(lambda: instances("booking_watch", 3), timeout=30)
    assert len(watches) == 3
    for booking in Booking.objects.all():
        wait_logged(log, f"watch {booking.guest_id} saw booking {booking.pk}")


def _signal_times(env, run: WorkflowRun, event: Event) -> list[float]:
    """When the instance's workflow was signalled this event (its notices), in seconds."""
    history = bridge.run_sync(env.client.get_workflow_handle(run.temporal_workflow_id).fetch_history(), timeout=30)
    times = []
    for e in history.events:
        attrs = e.workflow_execution_signaled_event_attributes
        if (
            e.HasField("workflow_execution_signaled_event_attributes")
            and attrs.signal_name == f"event:{event.event_name}"
        ):
            (payload,) = attrs.input.payloads
            if f'"event_id":{event.pk},'.encode() in payload.data.replace(b" ", b""):
                times.append(e.event_time.ToMicroseconds() / 1e6)
    return times


def _event_workflow_started(env, event: Event) -> tuple[float, dict]:
    from temporal_worker.protocol import event_workflow_id

    history = bridge.run_sync(env.client.get_workflow_handle(event_workflow_id(event.pk)).fetch_history(), timeout=30)
    started = history.events[0]
    (payload,) = started.workflow_execution_started_event_attributes.input.payloads
    import json

    return started.event_time.ToMicroseconds() / 1e6, json.loads(payload.data)


def _message_to_support(env, log: Path, name: str) -> tuple[WorkflowRun, Guest, Event]:
    """A guest's support instance, then a message from the guest, handled and delivered."""
    guest = Guest.objects.create(name=name)
    Booking.objects.create(guest=guest)
    (support,) = wait_for(lambda: instances("guest_support"), timeout=30)
    message = Message.objects.create(sender=guest, text="hi")
    wait_logged(log, f"support {guest.pk} got a message")
    event = Event.objects.get(event_name="message_received", entity_id=str(message.pk))
    env.wait_event_delivered(event)
    return support, guest, event


def test_active_instances_hear_of_an_event_from_the_dispatch(dev, log):
    """The dispatch signals the active instance before it starts the event's workflow, which
    then does not tell it again (it only spawns); the handler runs once."""
    support, guest, event = _message_to_support(dev, log, "Ada")
    started, start_input = _event_workflow_started(dev, event)
    assert start_input["agents_told"] == f"{event.generation}/{event.version}/occurred"
    signalled = _signal_times(dev, support, event)
    # (the outbox sweep may dispatch the same change too: a second notice, which changes nothing)
    assert signalled and signalled[0] <= started, (signalled, started)
    assert lines(log)[f"support {guest.pk} got a message"] == 1


def test_when_the_dispatch_cannot_tell_instances_the_events_workflow_does(dev, log, monkeypatch):
    from temporal_worker import agents as routing

    def fails(events):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(routing, "tell_now", fails)
    support, guest, event = _message_to_support(dev, log, "Bob")
    assert "agents_told" not in _event_workflow_started(dev, event)[1]
    assert _signal_times(dev, support, event)  # told by the event's workflow
    assert lines(log)[f"support {guest.pk} got a message"] == 1


def test_routing_uses_the_index_not_every_instance(dev, log):
    """Each instance's rendered match is indexed: the route rows carry the values."""
    guest = Guest.objects.create(name="Ada")
    booking = Booking.objects.create(guest=guest)
    (support,) = wait_for(lambda: instances("guest_support"), timeout=30)
    routes = {(r.event_name, r.handler): r for r in AgentRoute.objects.filter(run=support)}
    assert routes[("message_received", "handle_message")].match == {"sender_id": guest.pk}
    assert routes[("booking_created", "")].match == {"guest_id": guest.pk}
    assert routes[("message_received", "handle_message")].keyset == "sender_id"
    assert booking.pk


@pytest.mark.skipif(
    bool(os.environ.get("DATABASE_URL")), reason="reads SQLite's query plan (Postgres plans tiny tables differently)"
)
def test_routing_reads_which_keysets_a_handler_uses_from_the_index_alone(db):
    """Routing first asks which keysets the routes of (agent, event, handler) use: that must not
    read every active instance's row (with 10,000 instances it took 10-30 ms per event on SQLite,
    and twice per spawn; from the index alone, 2 ms)."""
    from django.contrib.contenttypes.models import ContentType
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from temporal_worker import agents as routing

    assert connection.vendor == "sqlite"
    definition = registry.agent("guest_support")
    run = WorkflowRun.objects.create(name="guest_support", kind="agent", status="running", data={"guest_id": 1})
    routing.write_routes(run, definition, run.data)
    event = Event(event_name="message_received", content_type=ContentType.objects.get_for_model(Message), entity_id="1")
    with CaptureQueriesContext(connection) as queries:
        routing.find_instances(definition, event, definition.handlers["handle_message"])
    (keysets,) = [q["sql"] for q in queries.captured_queries if "DISTINCT" in q["sql"]]
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN QUERY PLAN {keysets}")
        plan = " ".join(str(row) for row in cursor.fetchall())
    assert "COVERING INDEX" in plan, plan


def test_an_equality_match_is_settled_by_the_index_others_by_the_full_filter(db):
    """A candidate whose match is only equality lookups matches by its key (no query per
    candidate); a lookup the index cannot settle, or an entity that is gone, still takes the
    full filter, and a candidate that fails it is left out."""
    from django.contrib.contenttypes.models import ContentType
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from temporal_worker import agents as routing
    from temporal_worker.matching import entity_index_keys, indexed_match_holds

    ada, bob = Guest.objects.create(name="Ada"), Guest.objects.create(name="Bob")
    message = Message.objects.create(sender=ada, text="hi")
    definition = registry.agent("guest_support")
    runs = {}
    for guest in (ada, bob):
        runs[guest.pk] = WorkflowRun.objects.create(
            name="guest_support", kind="agent", status="running", data={"guest_id": guest.pk}
        )
        routing.write_routes(runs[guest.pk], definition, runs[guest.pk].data)
    message_type = ContentType.objects.get_for_model(Message)
    event = Event(event_name="message_received", content_type=message_type, entity_id=str(message.pk))
    with CaptureQueriesContext(connection) as queries:
        found = routing.find_instances(definition, event, definition.handlers["handle_message"])
    assert found == [runs[ada.pk].pk]
    assert not [q for q in queries.captured_queries if "EXISTS" in q["sql"].upper() or "LIMIT 1" in q["sql"]]

    keys = entity_index_keys(event, {"sender_id"})
    assert indexed_match_holds(event, {"sender_id": ada.pk}, keys)
    # Not settled by the index: a non-equality lookup is checked against the row.
    assert indexed_match_holds(event, {"sender_id": ada.pk, "text__startswith": "h"}, keys)
    assert not indexed_match_holds(event, {"sender_id": ada.pk, "text__startswith": "x"}, keys)
    # An empty match still needs the entity to exist.
    gone = Event(event_name="message_received", content_type=message_type, entity_id="999999")
    assert not indexed_match_holds(gone, {}, entity_index_keys(gone, {""}))
    assert indexed_match_holds(event, {}, entity_index_keys(event, {""}))


# ---------------------------------------------------------------------- claims
def test_claims_hold_release_and_ignores_claims(dev, log):
    guest = Guest.objects.create(name="Ada")
    Booking.objects.create(guest=guest)
    wait_for(lambda: instances("guest_support"), timeout=30)
    first = Message.objects.create(sender=guest, text="before the ticket")
    wait_logged(log, f"support {guest.pk} got a message")
    wait_logged(log, f"audit message {first.pk}")
    ticket = Ticket.objects.create(guest=guest)
    (desk,) = wait_for(lambda: instances("ticket_desk"), timeout=30)
    claim = wait_for(lambda: EventClaim.objects.filter(holder=desk).first(), timeout=30)
    assert claim.event_name == "message_received" and claim.match == {"sender_id": guest.pk}

    second = Message.objects.create(sender=guest, text="claimed")
    wait_logged(log, f"desk {ticket.pk} got message {second.pk}")
    wait_logged(log, f"audit message {second.pk}")  # ignores_claims=True
    Event.objects.get(event_name="message_received", entity_id=str(second.pk))
    wait_for(lambda: WorkflowRun.objects.get(pk=desk.pk).data["messages"] == 1, timeout=30)
    assert lines(log)[f"support {guest.pk} got a message"] == 1  # claimed: support did not get it

    ticket.resolved = True
    ticket.save()
    wait_for(lambda: not EventClaim.objects.filter(holder=desk).exists(), timeout=30)
    third = Message.objects.create(sender=guest, text="after release")
    wait_logged(log, f"support {guest.pk} got a message", times=2)
    wait_logged(log, f"desk {ticket.pk} got message {third.pk}")


def test_completing_an_agent_releases_its_claims(dev, log):
    from django_ai.automation.agents.core import AgentManager

    guest = Guest.objects.create(name="Ada")
    Ticket.objects.create(guest=guest)
    (desk,) = wait_for(lambda: instances("ticket_desk"), timeout=30)
    wait_for(lambda: EventClaim.objects.filter(holder=desk).exists(), timeout=30)
    assert list(AgentManager.list_active("ticket_desk")) == [desk]
    run = AgentManager.complete(desk)
    assert run.status == "completed"
    assert not EventClaim.objects.filter(holder=desk).exists()
    assert not AgentRoute.objects.filter(run=desk).exists()
    assert list(AgentManager.list_active("ticket_desk")) == []


# ---------------------------------------------------------------------- timed handlers (time-skipping)
def test_timed_handlers_run_before_at_and_after_the_event(fresh_ts, log):
    env = fresh_ts
    start = server_now(env)
    checkin, checkout = start + dt.timedelta(days=2), start + dt.timedelta(days=4)
    guest = Guest.objects.create(name="Ada", is_vip=True)
    reservation = Reservation.objects.create(checkin_at=checkin, checkout_at=checkout, status="confirmed", guest=guest)
    journey = wait_for(lambda: instances("reservation_journey"), timeout=30)[0]
    host = wait_for(lambda: instances("stay_host"), timeout=30)[0]
    wait_for(lambda: len(query(env, journey)["timed_handlers"]) == 2, timeout=30)
    assert {t["handler"]: t["due_at"] for t in query(env, journey)["timed_handlers"]} == {
        "send_pre_checkin": pytest.approx((checkin - dt.timedelta(hours=3)).timestamp()),
        "send_feedback_request": pytest.approx((checkout + dt.timedelta(hours=1)).timestamp()),
    }
    wait_for(lambda: len(query(env, host)["timed_handlers"]) == 2, timeout=30)

    env.skip_time(dt.timedelta(days=2) - dt.timedelta(hours=3, minutes=2))
    assert lines(log)["sms Ada: Check-in opens soon!"] == 0
    env.skip_time(dt.timedelta(minutes=4))
    wait_logged(log, "sms Ada: Check-in opens soon!")
    wait_logged(log, f"pre_checkin {reservation.pk}")
    assert WorkflowRun.objects.get(pk=journey.pk).data["reminder_sent"] is True
    assert lines(log)["message Ada: Welcome! Your room is ready."] == 0
    env.skip_time(dt.timedelta(hours=3))
    wait_logged(log, "message Ada: Welcome! Your room is ready.")
    wait_logged(log, f"on_checkin {reservation.pk}")
    wait_logged(log, "champagne 101")  # the VIP condition holds
    assert lines(log)[f"post_checkin {reservation.pk}"] == 0
    env.skip_time(dt.timedelta(hours=1, minutes=1))
    wait_logged(log, f"post_checkin {reservation.pk}")
    env.skip_time(dt.timedelta(days=2))
    wait_logged(log, "email Ada: How was your stay?")
    data = WorkflowRun.objects.get(pk=journey.pk).data
    assert data["reminder_sent"] is True and data["welcome_sent"] is True
    # Each (instance, handler, occurrence) once.
    assert all(n == 1 for n in lines(log).values()), lines(log)
    order = [line.split(":")[0] for line in Path(log).read_text().splitlines() if line.startswith(("sms", "message"))]
    assert order == ["sms Ada", "message Ada"]
    # The history reads as the agent's life: signals named after the events, handler activities,
    # timers named after the timed handler and its event.
    from temporalio.api.enums.v1 import EventType
    from temporalio.converter import PayloadConverter

    def summary(e) -> str:
        has = e.HasField("user_metadata") and e.user_metadata.HasField("summary")
        return PayloadConverter.default.from_payload(e.user_metadata.summary, str) if has else ""

    history = env.history(journey).events
    signals = [
        e.workflow_execution_signaled_event_attributes.signal_name
        for e in history
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    ]
    # (reservation_confirmed of the same save reaches it by signal or, routed before the instance
    # existed, through the instance's first look-up of its events)
    assert {"event:reservation_created", "event:checkin_due"} <= set(signals)
    activities = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    assert "reservation_journey.send_pre_checkin" in activities and "reservation_journey.send_welcome" in activities
    timers = [summary(e) for e in history if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED]
    assert f"send_pre_checkin at checkin_due of Reservation {reservation.pk} −3 h" in timers


def test_timed_handler_moves_with_the_event_and_is_cancelled_with_it(fresh_ts, log):
    env = fresh_ts
    start = server_now(env)
    guest = Guest.objects.create(name="Bo")
    reservation = Reservation.objects.create(checkin_at=start + dt.timedelta(days=2), status="confirmed", guest=guest)
    journey = wait_for(lambda: instances("reservation_journey"), timeout=30)[0]
    wait_for(lambda: len(query(env, journey)["timed_handlers"]) == 1, timeout=30)
    later = start + dt.timedelta(days=3)
    reservation.checkin_at = later
    reservation.save()
    wait_for(
        lambda: (
            query(env, journey)["timed_handlers"][0]["due_at"]
            == pytest.approx((later - dt.timedelta(hours=3)).timestamp())
        ),
        timeout=30,
    )
    env.skip_time(dt.timedelta(days=2, hours=1))  # past the first due time: nothing runs
    assert lines(log)["sms Bo: Check-in opens soon!"] == 0
    reservation.status = "cancelled"  # the condition turns false: checkin_due is cancelled
    reservation.save()
    wait_for(lambda: query(env, journey)["timed_handlers"] == [], timeout=30)
    env.skip_time(dt.timedelta(days=2))
    assert lines(log)["sms Bo: Check-in opens soon!"] == 0
    assert lines(log)["message Bo: Welcome! Your room is ready."] == 0
    assert WorkflowRun.objects.get(pk=journey.pk).status == "running"


def test_an_offset_already_past_runs_now_and_a_false_condition_skips(fresh_ts, log):
    env = fresh_ts
    guest = Guest.objects.create(name="Cy", is_vip=False)
    reservation = Reservation.objects.create(
        checkin_at=server_now(env) + dt.timedelta(hours=1), status="confirmed", guest=guest
    )
    wait_logged(log, "sms Cy: Check-in opens soon!")  # -3 h is already past: runs at once
    wait_logged(log, f"pre_checkin {reservation.pk}")
    env.skip_time(dt.timedelta(hours=1, minutes=1))
    wait_logged(log, f"on_checkin {reservation.pk}")
    host = instances("stay_host")[0]
    wait_for(lambda: StepExecution.objects.filter(run=host, step_name="on_checkin").exists(), timeout=30)
    assert lines(log)["champagne 101"] == 0  # not a VIP
    assert not StepExecution.objects.filter(run=host, step_name="vip_welcome").exists()


# ---------------------------------------------------------------------- retries
def test_a_handler_retries_then_succeeds(fresh_ts, log, monkeypatch):
    monkeypatch.setenv("AGENTS_CHARGE_FAILURES", "1")
    env = fresh_ts
    guest = Guest.objects.create(name="Di")
    booking = Booking.objects.create(guest=guest, payment_due_at=server_now(env) + dt.timedelta(hours=1))
    billing = wait_for(lambda: instances("billing"), timeout=30)[0]
    env.skip_time(dt.timedelta(hours=1, minutes=1))
    wait_logged(log, f"charge attempt {booking.pk}")
    env.skip_time(dt.timedelta(seconds=31))
    wait_logged(log, f"charged {booking.pk}")
    wait_for(lambda: WorkflowRun.objects.get(pk=billing.pk).data["charged"], timeout=30)
    assert lines(log)[f"charge attempt {booking.pk}"] == 2


def test_a_handler_that_exhausts_its_retries_is_recorded_failed_and_the_agent_lives_on(fresh_ts, log, monkeypatch):
    monkeypatch.setenv("AGENTS_CHARGE_FAILURES", "99")
    env = fresh_ts
    guest = Guest.objects.create(name="Ed")
    booking = Booking.objects.create(guest=guest, payment_due_at=server_now(env) + dt.timedelta(minutes=5))
    billing = wait_for(lambda: instances("billing"), timeout=30)[0]
    env.skip_time(dt.timedelta(minutes=6))
    wait_logged(log, f"charge attempt {booking.pk}")
    for _ in range(4):
        env.skip_time(dt.timedelta(minutes=2))
    failed = wait_for(
        lambda: StepExecution.objects.filter(run=billing, step_name="process_payment", status="failed").first(),
        timeout=30,
    )
    assert "card declined" in failed.error
    assert lines(log)[f"charge attempt {booking.pk}"] == 3
    run = WorkflowRun.objects.get(pk=billing.pk)
    assert run.status == "running" and "process_payment failed" in run.error
    event = Event.objects.get(event_name="payment_due", entity_id=str(booking.pk))
    assert event.delivered["agent_handlers"][f"{billing.pk}:process_payment:1"]["status"] == "failed"


# ---------------------------------------------------------------------- races, crashes, long lives
def test_two_spawn_events_for_one_new_instance_make_one(dev, log):
    from django.db import transaction

    guest = Guest.objects.create(name="Ada")
    with transaction.atomic():
        first = Booking.objects.create(guest=guest)
        second = Booking.objects.create(guest=guest)
    wait_for(lambda: instances("booking_watch", 2), timeout=30)  # singleton=False: one each
    wait_for(lambda: instances("guest_support"), timeout=30)
    for booking in (first, second):
        event = Event.objects.get(event_name="booking_created", entity_id=str(booking.pk))
        dev.wait_event_delivered(event)
    assert WorkflowRun.objects.filter(kind="agent", name="guest_support").count() == 1
    Message.objects.create(sender=guest)
    wait_logged(log, f"support {guest.pk} got a message")


def test_an_instance_continues_as_new_without_losing_or_repeating_events(dev, log, monkeypatch):
    from temporal_worker.workflows import agent as agent_workflow

    monkeypatch.setattr(agent_workflow, "HISTORY_LIMIT", 40)
    guest = Guest.objects.create(name="Ada")
    Booking.objects.create(guest=guest)
    (support,) = wait_for(lambda: instances("guest_support"), timeout=30)
    for _ in range(25):
        Message.objects.create(sender=guest)
    wait_logged(log, f"support {guest.pk} got a message", times=25, timeout=90)
    handle = dev.client.get_workflow_handle(support.temporal_workflow_id)
    desc = bridge.run_sync(handle.describe(), timeout=30)
    assert (
        desc.run_id
        != bridge.run_sync(handle.describe(), timeout=30).raw_description.workflow_execution_info.first_run_id
    )
    assert lines(log)[f"support {guest.pk} got a message"] == 25
    rows = StepExecution.objects.filter(run=support, step_name="handle_message")
    wait_for(lambda: rows.count() == 25, timeout=30, message=f"{rows.count()} handler rows")
    assert len(set(rows.values_list("seq", flat=True))) == 25


@pytest.mark.slow
def test_a_worker_killed_during_a_spawn_makes_one_instance_whose_handler_runs_once(
    transactional_db, tmp_path, monkeypatch, log
):
    from django.db import connection

    from tests.testapp.models import Parcel
    from tests.worker_process import WorkerProcess

    hold = tmp_path / "go"
    monkeypatch.setenv("AGENTS_HOLD", str(hold))
    monkeypatch.setenv("DURABILITY_AGENTS", "1")
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
            parcel = Parcel.objects.create(delivered=True)
            wait_logged(log, f"creating {parcel.pk}", timeout=60)
            first.kill()
            second.start()
            wait_logged(log, f"creating {parcel.pk}", times=2, timeout=60)  # the load is retried
            hold.touch()
            wait_logged(log, f"tracked {parcel.pk}", timeout=60)
            env.wait_event_delivered(Event.objects.get(event_name="parcel_delivered", entity_id=str(parcel.pk)))
        finally:
            first.kill()
            second.kill()
    assert lines(log)[f"tracked {parcel.pk}"] == 1
    (tracker,) = instances("parcel_tracker")
    assert tracker.data == {"parcel_id": str(parcel.pk)}


def test_cancelling_an_instance_ends_it_and_releases_its_claims(dev, log):
    guest = Guest.objects.create(name="Ada")
    Ticket.objects.create(guest=guest)
    (desk,) = wait_for(lambda: instances("ticket_desk"), timeout=30)
    wait_for(lambda: EventClaim.objects.filter(holder=desk).exists(), timeout=30)
    desk.cancel("the guest left")
    assert desk.status == "cancelled"
    assert not EventClaim.objects.filter(holder=desk).exists()
    # A message from that guest now reaches no desk, and nothing is claimed.
    Booking.objects.create(guest=guest)
    wait_for(lambda: instances("guest_support"), timeout=30)
    Message.objects.create(sender=guest)
    wait_logged(log, f"support {guest.pk} got a message")


# ---------------------------------------------------------------------- bad input
def test_bad_agent_declarations_are_refused_with_their_fix():
    from pydantic import BaseModel

    from django_ai.automation.agents.core import agent, handler
    from facade import WorkflowDefinitionError

    with pytest.raises(WorkflowDefinitionError) as no_context:

        @agent("no_context", spawn_on="booking_created")
        class NoContext:
            pass

    message = str(no_context.value)
    assert "needs a nested `class Context(BaseModel)`" in message
    assert "create_context(cls, event)" in message

    with pytest.raises(WorkflowDefinitionError, match=r"Context has no field 'guest'"):

        @agent("bad_template", spawn_on="booking_created", match={"guest_id": "{{ ctx.guest }}"})
        class BadTemplate:
            class Context(BaseModel):
                guest_id: int

            @classmethod
            def create_context(cls, event):
                return cls.Context(guest_id=1)

    with pytest.raises(WorkflowDefinitionError, match=r"write \{\{ ctx.field \}\}"):

        @agent("bad_syntax", spawn_on="booking_created", match={"guest_id": "{{ guest_id }}"})
        class BadSyntax:
            class Context(BaseModel):
                guest_id: int

            @classmethod
            def create_context(cls, event):
                return cls.Context(guest_id=1)

    with pytest.raises(WorkflowDefinitionError, match="async def"):

        class AsyncHandler:
            @handler("booking_created")
            async def h(self, ctx): ...

    with pytest.raises(WorkflowDefinitionError, match="offset must be a datetime.timedelta"):
        handler("checkin_due", offset=3)
    with pytest.raises(WorkflowDefinitionError, match=r"needs the event's name"):

        class Bare:
            @handler
            def h(self, ctx): ...

    with pytest.raises(WorkflowDefinitionError, match="already used by"):

        @agent("guest_support", spawn_on="booking_created")
        class Again:
            class Context(BaseModel):
                guest_id: int = 0

            @classmethod
            def create_context(cls, event):
                return cls.Context()


def test_system_checks_report_unknown_events_and_match_fields_the_model_lacks():
    from django.apps import apps
    from pydantic import BaseModel

    from django_ai.automation.agents.core import agent, handler
    from django_bridge.checks import event_definition_errors

    @agent("checked_agent", spawn_on="booking_created", match={"guest_idd": "{{ ctx.guest_id }}"})
    class Checked:
        class Context(BaseModel):
            guest_id: int

        @classmethod
        def create_context(cls, event):
            return cls.Context(guest_id=1)

        @handler("message_received")  # Message has no guest_idd either (no match override)
        def h(self, ctx): ...

        @handler("nobody_defines_this_one")
        def g(self, ctx): ...

    messages = [f"{e.id}: {e.msg}" for e in event_definition_errors(apps.get_models())]
    assert any(
        m.startswith(
            "automation.E041: agent 'checked_agent' spawn_on: match key 'guest_idd' does not fit testapp.Booking"
        )
        for m in messages
    ), messages
    assert any(m.startswith("automation.E041: agent 'checked_agent' handler h:") for m in messages), messages
    assert (
        "automation.E040: agent 'checked_agent' handler g: no model defines the event 'nobody_defines_this_one'."
        in messages
    )
    assert not any("guest_support" in m for m in messages)  # the guide's agents are fine


def test_claims_outside_a_run_and_releasing_what_you_do_not_hold_are_errors(dev):
    from django_ai.automation.events import claims
    from facade import ClaimError

    with pytest.raises(ClaimError, match="inside an agent @handler or a workflow @step"):
        claims.hold("message_received", match={"sender_id": 1})
    from facade.contract import bind_context
    from tests.testapp.agent_automations import GuestSupport

    guest = Guest.objects.create(name="Ada")
    Booking.objects.create(guest=guest)
    (support,) = wait_for(lambda: instances("guest_support"), timeout=30)
    ctx = GuestSupport.Context(guest_id=guest.pk, booking_id=1)
    with bind_context(ctx, run_id=support.pk):
        with pytest.raises(ClaimError, match="does not hold this claim"):
            claims.release("message_received", match={"sender_id": guest.pk})
        with pytest.raises(ClaimError, match="no model defines an event 'nope'"):
            claims.hold("nope")
        claims.hold("message_received", match={"sender_id": guest.pk})
        claims.hold("message_received", match={"sender_id": guest.pk})  # again: nothing changes
    assert EventClaim.objects.filter(holder=support).count() == 1
    other = WorkflowRun.objects.create(name="x", status="running")
    with (
        bind_context(ctx, run_id=other.pk),
        pytest.raises(ClaimError, match=f"already held by .* \\(run {support.pk}\\)"),
    ):
        claims.hold("message_received", match={"sender_id": guest.pk})


# ---------------------------------------------------------------------- in Django: API, pages, admin
def test_instances_show_in_the_runs_api_the_run_page_and_the_admin(dev, log):
    from django.contrib.auth.models import User
    from rest_framework.test import APIClient

    guest = Guest.objects.create(name="Ada")
    ticket = Ticket.objects.create(guest=guest)
    (desk,) = wait_for(lambda: instances("ticket_desk"), timeout=30)
    wait_for(lambda: EventClaim.objects.filter(holder=desk).exists(), timeout=30)
    admin = User.objects.create_superuser("root", password="pw")
    client = APIClient()
    client.force_login(admin)
    body = client.get(f"/statezero/runs/{desk.pk}/").json()
    assert body["kind"] == "agent" and body["name"] == "ticket_desk"
    assert body["data"]["ticket_id"] == ticket.pk
    assert body["claims"] == [{"event_name": "message_received", "match": {"sender_id": guest.pk}}]
    assert {"event_name": "message_received", "handler": "on_message", "match": {"sender_id": guest.pk}} in body[
        "agent_routes"
    ]
    page = client.get(f"/statezero/ui/runs/{desk.pk}/")
    assert page.status_code == 200 and b"ticket_desk" in page.content
    change = client.get(f"/admin/django_bridge/workflowrun/{desk.pk}/change/")
    assert change.status_code == 200
    assert b"message_received" in change.content  # its claim, listed inline
    claims_page = client.get("/admin/django_bridge/eventclaim/")
    assert claims_page.status_code == 200 and b"message_received" in claims_page.content
    listed = client.get("/admin/django_bridge/workflowrun/?kind__exact=agent")
    assert listed.status_code == 200 and b"ticket_desk" in listed.content


def test_agent_manager_spawns_by_hand_and_refuses_what_does_not_fit(dev, log):
    from django_ai.automation.agents.core import AgentManager
    from facade import InvalidInputError, RunStateError, UnknownWorkflowError, engine

    guest = Guest.objects.create(name="Ada")
    booking = Booking.objects.create(guest=guest)
    (support,) = wait_for(lambda: instances("guest_support"), timeout=30)
    event = Event.objects.get(event_name="booking_created", entity_id=str(booking.pk))
    assert AgentManager.spawn("guest_support", event=event) == support  # a singleton: the active one
    AgentManager.complete(support)
    again = AgentManager.spawn("guest_support", event=event)  # ended: a new instance
    assert again.pk != support.pk and again.kind == "agent"
    wait_for(
        lambda: WorkflowRun.objects.get(pk=again.pk).temporal_workflow_id and query(dev, again)["context"], timeout=30
    )
    assert list(AgentManager.list_active("guest_support")) == [WorkflowRun.objects.get(pk=again.pk)]
    with pytest.raises(UnknownWorkflowError, match="no agent is registered as 'nope'"):
        AgentManager.spawn("nope", event=event)
    with pytest.raises(InvalidInputError, match="takes an Event row"):
        AgentManager.spawn("guest_support", event=booking)
    with pytest.raises(RunStateError, match="agents have no step to retry"):
        engine.retry(again.pk)

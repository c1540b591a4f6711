"""Long-running agents on Temporal (docs/semantics.md, "Agents" and "Claims"), against real servers.

The agents are the automations guide's section 8 examples as written, in
tests/testapp/agent_automations.py, declared in an isolated registry for this module only.
"""

from __future__ import annotations

import datetime as dt
import importlib
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
    handled = list(StepExecution.objects.filter(run=journey).values_list("step_name", "status"))
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

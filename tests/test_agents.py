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
    handle = env.client.get_workflow_handle(run.temporal_workflow_id)
    return bridge.run_sync(handle.query(AGENT_QUERY), timeout=30)


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
    assert journey.data == {"reservation_id": reservation.pk, "guest_name": "Ada", "reminder_sent": False, "welcome_sent": False}
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

"""Signals sent by hand (Temporal CLI/UI, no engine marker) are checked against the Context before
the run accepts them: a bad one is rejected and the run keeps waiting where it was, with the
rejection in the Temporal history, on the run row and on the run page (semantics: "Signals sent
by hand")."""

from __future__ import annotations

from django.contrib.auth.models import User

from django_ai.automation.workflows.core import engine
from django_bridge.models import WorkflowRun
from facade import WorkflowStatus
from temporal_worker import client as bridge
from temporal_worker.protocol import SIGNAL_CHECK_ACTIVITY


def send_by_hand(run: WorkflowRun, name: str, payload) -> None:
    """What `temporal workflow signal --name <name> --input '<json>'` sends: no marker, no wait seq."""

    async def send(client) -> None:
        await client.get_workflow_handle(run.temporal_workflow_id).signal(name, payload)

    bridge.call("send by hand", send)


def checks_in_history(dev, run) -> list[str]:
    """The results of the signal checks the run's workflow made, as JSON text."""
    history = dev.history(run)
    scheduled = {
        e.event_id
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
        and e.activity_task_scheduled_event_attributes.activity_type.name == SIGNAL_CHECK_ACTIVITY
    }
    return [
        e.activity_task_completed_event_attributes.result.payloads[0].data.decode()
        for e in history.events
        if e.HasField("activity_task_completed_event_attributes")
        and e.activity_task_completed_event_attributes.scheduled_event_id in scheduled
    ]


def test_a_bad_hand_sent_signal_is_rejected_and_the_run_keeps_waiting(dev, client):
    run = dev.wait_until(engine.start("approval"), lambda r: r.waiting_signal == "manager_approval")
    before = (run.status, run.current_step, run.waiting_signal, run.wait_seq)

    send_by_hand(run, "manager_approval", {"approved": "maybe"})
    run = dev.wait_until(run, lambda r: r.rejected_signal is not None)
    assert (run.status, run.current_step, run.waiting_signal, run.wait_seq) == before
    assert not run.step_executions.exists() and run.error == ""
    rejected = run.rejected_signal
    assert rejected["signal"] == "manager_approval" and rejected["payload"] == {"approved": "maybe"}
    assert rejected["wait_seq"] == run.wait_seq and rejected["step"] == "wait_for_approval"
    assert "approved" in rejected["error"] and "still waits for 'manager_approval'" in rejected["error"]

    # Visible in Temporal's history (the check's result) ...
    [result] = checks_in_history(dev, run)
    assert '"accepted":false' in result.replace(" ", "") and "approved" in result
    # ... in the API and on the run page.
    User.objects.create_superuser("root", "root@example.com", "pw")
    client.login(username="root", password="pw")
    detail = client.get(f"/statezero/runs/{run.pk}/").json()
    assert detail["rejected_signal"]["error"] == rejected["error"] and detail["wait_seq"] == run.wait_seq
    page = client.get(f"/statezero/ui/runs/{run.pk}/").content.decode()
    assert "A signal sent by hand was rejected" in page and "approved" in page

    # Not a JSON object at all: rejected too.
    send_by_hand(run, "manager_approval", "yes")
    run = dev.wait_until(run, lambda r: "JSON object" in r.rejected_signal["error"])
    assert run.status == WorkflowStatus.SUSPENDED and run.waiting_signal == "manager_approval"

    # A good one moves the run on, to a wait with a timeout, where the same holds.
    send_by_hand(run, "manager_approval", {"approved": True})
    run = dev.wait_until(run, lambda r: r.waiting_signal == "user_response")
    assert run.data["approved"] is True
    assert "A signal sent by hand was rejected" not in client.get(f"/statezero/ui/runs/{run.pk}/").content.decode()
    wait_seq = run.wait_seq
    send_by_hand(run, "user_response", {"notes": ["not", "a", "string"]})
    run = dev.wait_until(run, lambda r: r.rejected_signal["signal"] == "user_response")
    assert run.status == WorkflowStatus.SUSPENDED and run.wait_seq == wait_seq
    send_by_hand(run, "user_response", {"notes": "fine"})
    run = dev.wait_until_finished(run)
    assert run.status == WorkflowStatus.COMPLETED and run.data["notes"] == "fine", run.error

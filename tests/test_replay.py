"""Histories replay: no nondeterminism against the current interpreter.

Two kinds of test:

- ``test_live_run_replays``: runs one workflow of each kind to its end on the dev server,
  checks that the projection and Temporal agree on how it ended, fetches its history and replays
  it with Temporal's ``Replayer``. This proves the interpreter is deterministic today.
- ``test_committed_history_replays``: replays every recorded history in ``tests/histories/``
  against the current code. These were recorded by an earlier version of the interpreter, so a
  change that would break runs already in flight (a command added, removed or reordered) fails
  here. Such a change needs ``workflow.patched()`` (or a new workflow type), not a re-recording.

Regenerate the recordings (only for a new kind, or after a deliberate, versioned change)::

    RECORD_HISTORIES=1 .venv/bin/pytest tests/test_replay.py -k live

which writes ``tests/histories/<label>.json`` (``WorkflowHistory.to_json()``) for every run.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from temporalio import workflow
from temporalio.client import WorkflowExecutionStatus, WorkflowHistory
from temporalio.common import RawValue
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner

from django_bridge.models import WorkflowRun
from facade import engine
from facade.testing import TemporalTestEnvironment, wait_for
from temporal_worker import client as bridge
from temporal_worker.protocol import event_workflow_id
from temporal_worker.workflows import EventWorkflow, InterpreterWorkflow
from tests.testapp import (
    durability_workflows,  # noqa: F401  (registers the workflows used here)
    event_automations,  # noqa: F401  (the event subscribers of event_due)
)

HISTORIES = Path(__file__).resolve().parent / "histories"
RECORD = os.environ.get("RECORD_HISTORIES") == "1"

Histories = dict[str, WorkflowHistory]


# ---------------------------------------------------------------------- helpers
def replay(history: WorkflowHistory, workflows: list[type] | None = None, **kwargs: Any) -> None:
    """Replay ``history``; raises (``NondeterminismError``) if the code would act differently."""

    async def go() -> None:
        await Replayer(workflows=workflows or [InterpreterWorkflow, EventWorkflow], **kwargs).replay_workflow(history)

    asyncio.run(go())


def temporal_status(env: TemporalTestEnvironment, workflow_id: str, run_id: str | None = None) -> Any:
    handle = env.client.get_workflow_handle(workflow_id, run_id=run_id)
    return bridge.run_sync(handle.describe(), timeout=30).status


def fetch(env: TemporalTestEnvironment, workflow_id: str, run_id: str | None = None) -> WorkflowHistory:
    handle = env.client.get_workflow_handle(workflow_id, run_id=run_id)
    return bridge.run_sync(handle.fetch_history(), timeout=60)


def finished(env: TemporalTestEnvironment, run: WorkflowRun, status: str) -> WorkflowHistory:
    """Wait for the run to end; check the projection and Temporal agree on ``status``."""
    temporal = {
        "completed": WorkflowExecutionStatus.COMPLETED,
        "failed": WorkflowExecutionStatus.FAILED,
        "cancelled": WorkflowExecutionStatus.CANCELED,
    }[status]
    run = env.wait_until_finished(run, timeout=30)
    assert run.status == status, run.error
    # The projection is written just before the workflow closes: Temporal follows within a task.
    wait_for(
        lambda: temporal_status(env, run.temporal_workflow_id) == temporal,
        timeout=30,
        interval=0.1,
        message=f"run {run.pk} is {status} in the projection but not {temporal.name} in Temporal",
    )
    return fetch(env, run.temporal_workflow_id)


def suspended_on(env: TemporalTestEnvironment, run: WorkflowRun, signal: str) -> WorkflowRun:
    return env.wait_until(run, lambda r: r.status == "suspended" and r.waiting_signal == signal)


# ---------------------------------------------------------------------- one run of each kind
def straight(env: TemporalTestEnvironment, tmp_path: Path) -> Histories:
    run = engine.start("order_fulfillment", order_id=7)
    return {"straight": finished(env, run, "completed")}


def goto_branching(env: TemporalTestEnvironment, tmp_path: Path) -> Histories:
    run = engine.start("order_routing", order_total=2500.0)
    history = finished(env, run, "completed")
    steps = list(WorkflowRun.objects.get(pk=run.pk).step_executions.values_list("step_name", flat=True))
    assert steps == ["process_order", "require_approval", "fulfill_immediately"]
    return {"goto_branching": history}


def sleep_loop(env: TemporalTestEnvironment, tmp_path: Path) -> Histories:
    run = engine.start("replay_sleep_loop")
    history = finished(env, run, "completed")
    assert WorkflowRun.objects.get(pk=run.pk).data["rounds"] == 3
    return {"sleep_loop": history}


def signal_with_payload(env: TemporalTestEnvironment, tmp_path: Path) -> Histories:
    run = suspended_on(env, engine.start("review"), "review_completed")
    assert engine.signal("review_completed", {"reviewer_name": "Jane", "approved": True}) == 1
    history = finished(env, run, "completed")
    assert WorkflowRun.objects.get(pk=run.pk).data["reviewer_name"] == "Jane"
    return {"signal_with_payload": history}


def gate_and_event(env: TemporalTestEnvironment, tmp_path: Path) -> Histories:
    run = suspended_on(env, engine.start("replay_gate"), "event:replay_payment")
    assert engine.signal("event:replay_payment", {"amount": 5}, run_id=run.pk) == 1
    suspended_on(env, run, "replay_note")
    assert engine.signal("replay_note", {"note": "thanks"}, run_id=run.pk) == 1
    history = finished(env, run, "completed")
    data = WorkflowRun.objects.get(pk=run.pk).data
    assert (data["amount"], data["note"], data["handled"]) == (5, "thanks", True)
    return {"gate_and_event": history}


def wait_timeout(env: TemporalTestEnvironment, tmp_path: Path) -> Histories:
    run = engine.start("replay_wait_timeout")
    history = finished(env, run, "completed")
    assert WorkflowRun.objects.get(pk=run.pk).data["expired"] is True
    return {"wait_timeout": history}


def retried_step(env: TemporalTestEnvironment, tmp_path: Path) -> Histories:
    run = engine.start("flaky", fail_times=2)
    history = finished(env, run, "completed")
    assert WorkflowRun.objects.get(pk=run.pk).data["attempts"] == 3
    return {"retried_step": history}


def exhausted_retries(env: TemporalTestEnvironment, tmp_path: Path) -> Histories:
    run = engine.start("replay_exhausted", counter_dir=str(tmp_path))
    history = finished(env, run, "failed")
    assert WorkflowRun.objects.get(pk=run.pk).data["compensated"] is True
    return {"exhausted_retries": history}


def fail_without_on_fail(env: TemporalTestEnvironment, tmp_path: Path) -> Histories:
    run = engine.start("final_check", all_validations_passed=False)
    return {"fail": finished(env, run, "failed")}


def fail_with_on_fail(env: TemporalTestEnvironment, tmp_path: Path) -> Histories:
    run = engine.start("replay_fail_on_fail")
    history = finished(env, run, "failed")
    assert WorkflowRun.objects.get(pk=run.pk).data["released"] is True
    return {"fail_on_fail": history}


def cancel(env: TemporalTestEnvironment, tmp_path: Path) -> Histories:
    run = suspended_on(env, engine.start("review"), "review_completed")
    engine.cancel(run.pk, reason="no longer needed")
    return {"cancel": finished(env, run, "cancelled")}


def subflow(env: TemporalTestEnvironment, tmp_path: Path) -> Histories:
    run = engine.start("replay_parent")
    history = finished(env, run, "completed")
    parent = WorkflowRun.objects.get(pk=run.pk)
    assert parent.data["result"] == 42
    child = WorkflowRun.objects.get(parent=parent)
    return {"subflow": history, "subflow_child": finished(env, child, "completed")}


def action(env: TemporalTestEnvironment, tmp_path: Path) -> Histories:
    from django_ai.automation.workflows.statezero_action import submit_action

    run = engine.start("expense_approval")
    env.wait_until(run, lambda r: r.status == "suspended" and r.current_step == "await_review")
    submit_action(run.pk, "submit_review", {"workflow_run_id": run.pk, "reviewer_notes": "ok", "priority": "high"})
    history = finished(env, run, "completed")
    assert WorkflowRun.objects.get(pk=run.pk).data["priority"] == "high"
    return {"action": history}


def continue_as_new(env: TemporalTestEnvironment, tmp_path: Path) -> Histories:
    # A server of its own that suggests continue-as-new after 20 events (default: thousands).
    args = ["--dynamic-config-value", "limit.historyCount.suggestContinueAsNew=20"]
    with TemporalTestEnvironment(dev_server_args=args) as own:
        run = engine.start("replay_sleep_loop", until=4)
        latest = finished(own, run, "completed")
        assert WorkflowRun.objects.get(pk=run.pk).data["rounds"] == 4
        first_run_id = WorkflowRun.objects.get(pk=run.pk).temporal_run_id
        first = fetch(own, run.temporal_workflow_id, first_run_id)
        assert temporal_status(own, run.temporal_workflow_id, first_run_id) == WorkflowExecutionStatus.CONTINUED_AS_NEW
        return {"continue_as_new_first": first, "continue_as_new_last": latest}


def event_due(env: TemporalTestEnvironment, tmp_path: Path) -> Histories:
    """A scheduled event due in a few seconds: its event workflow waits for it, lets it occur and
    delivers it; the run of its zero-offset ``@event_workflow`` waits for its due time, then runs."""
    import datetime as dt

    from django.utils import timezone

    from django_bridge.models import Event
    from tests.testapp.models import Reservation

    reservation = Reservation.objects.create(checkin_at=timezone.now() + dt.timedelta(seconds=3), status="confirmed")
    event = Event.objects.get(event_name="checkin_due", entity_id=str(reservation.pk))
    run = wait_for(lambda: WorkflowRun.objects.filter(event=event, name="CheckinAtTime").first(), timeout=30)
    assert run.status == "waiting"
    env.wait_event_delivered(event, timeout=30)
    assert Event.objects.get(pk=event.pk).status == "occurred"
    return {"event_due": fetch(env, event_workflow_id(event.pk)), "event_due_run": finished(env, run, "completed")}


KINDS: dict[str, Callable[[TemporalTestEnvironment, Path], Histories]] = {
    f.__name__: f
    for f in (
        straight,
        goto_branching,
        sleep_loop,
        signal_with_payload,
        gate_and_event,
        wait_timeout,
        retried_step,
        exhausted_retries,
        fail_without_on_fail,
        fail_with_on_fail,
        cancel,
        subflow,
        action,
        continue_as_new,
        event_due,
    )
}
# The recordings each kind produces; test_every_kind_is_recorded keeps tests/histories/ complete.
LABELS = {
    "straight",
    "goto_branching",
    "sleep_loop",
    "signal_with_payload",
    "gate_and_event",
    "wait_timeout",
    "retried_step",
    "exhausted_retries",
    "fail",
    "fail_on_fail",
    "cancel",
    "subflow",
    "subflow_child",
    "action",
    "continue_as_new_first",
    "continue_as_new_last",
    "event_due",
    "event_due_run",
}


@pytest.fixture
def active_dev(dev):
    dev.activate()  # in case another environment (the time-skipping one) was started since
    return dev


@pytest.mark.parametrize(
    "kind", [pytest.param(k, marks=[pytest.mark.slow] if k == "continue_as_new" else []) for k in KINDS]
)
def test_live_run_replays(active_dev, tmp_path, kind):
    histories = KINDS[kind](active_dev, tmp_path)
    for label, history in histories.items():
        assert label in LABELS
        replay(history)
        if RECORD:
            HISTORIES.mkdir(exist_ok=True)
            (HISTORIES / f"{label}.json").write_text(scrub_paths(history.to_json()) + "\n")


def scrub_paths(text: str) -> str:
    """Drop this machine's paths from stack traces in failures (data only: replay ignores it)."""
    import site
    import sys

    prefixes = [
        str(Path(p)) + "/"
        for p in [*site.getsitepackages(), sys.prefix, sys.base_prefix, Path(__file__).resolve().parents[1]]
    ]
    for prefix in sorted(prefixes, key=len, reverse=True):
        text = text.replace(prefix, "")
    return text


# ---------------------------------------------------------------------- committed recordings
def committed() -> list[Path]:
    return sorted(HISTORIES.glob("*.json"))


def load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(f"recorded-{path.stem}", path.read_text())


@pytest.mark.skipif(RECORD, reason="recording")
@pytest.mark.parametrize("path", committed(), ids=lambda p: p.stem)
def test_committed_history_replays(path):
    replay(load(path))


@pytest.mark.skipif(RECORD, reason="recording")
def test_every_kind_is_recorded():
    assert {p.stem for p in committed()} == LABELS, "record the missing histories: see the module docstring"


@workflow.defn(dynamic=True, sandboxed=False)
class ChangedInterpreter:
    """Stand-in for an interpreter changed incompatibly: it no longer runs any step."""

    @workflow.run
    async def run(self, args: Sequence[RawValue]) -> dict[str, Any]:
        return {"status": "completed"}


def test_replay_detects_an_incompatible_change():
    """The committed-history test can fail: a changed interpreter is caught as nondeterminism."""
    with pytest.raises(workflow.NondeterminismError):
        replay(load(HISTORIES / "straight.json"), [ChangedInterpreter], workflow_runner=UnsandboxedWorkflowRunner())

"""A run's timeline, read from its Temporal history (semantics: "Timeline"): steps that waited,
slept or were retried show every execution, on the API, the run page and the admin, while the
StepExecution rows keep completed and failed steps only. Temporal unreachable or the history gone:
the rows, with a note.

The first tests translate the recorded histories of ``tests/histories/`` (no server); the others
run against the dev server and its worker.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient
from temporalio.client import WorkflowHistory
from temporalio.converter import PayloadConverter

from django_ai.automation.workflows.core import engine
from django_bridge.conf import automation_settings
from django_bridge.models import WorkflowRun
from facade import WorkflowStatus
from facade.testing import wait_for
from temporal_worker import client as bridge
from temporal_worker.timeline import EntryKind, Outcome, TimelineSource, translate
from tests.test_hand_sent_signals import send_by_hand
from tests.testapp import rule_workflows  # noqa: F401  (registers rules_retry_backoff, rules_sleep_loop)

HISTORIES = Path(__file__).resolve().parent / "histories"


def recorded(name: str) -> list[tuple[str, str, str]]:
    history = WorkflowHistory.from_json(name, json.loads((HISTORIES / f"{name}.json").read_text()))
    execution = translate("r", history.events, PayloadConverter.default)
    return [(e.kind.value, e.step, e.summary) for e in execution.entries]


def steps_of(entries) -> list[tuple[str, str, int | None]]:
    return [(e.step, e.outcome.value, e.attempt) for e in entries if e.kind == EntryKind.STEP]


# ---------------------------------------------------------------------- recorded histories
def test_a_step_that_slept_appears_once_per_execution():
    assert recorded("sleep_loop") == [
        ("run", "tick", "started at step tick"),
        ("step", "tick", "slept until 2026-11-22 04:07:19 UTC"),
        ("step", "tick", "slept until 2026-11-22 04:07:20 UTC"),
        ("step", "tick", "completed the run"),
        ("run", "", "completed"),
    ]


def test_retried_attempts_are_listed_with_the_error_temporal_kept():
    assert recorded("retried_step")[1:4] == [
        ("step", "notify_housekeeping", "attempt 1 failed, retried"),
        ("step", "notify_housekeeping", "attempt 2 failed, retried: transient failure"),
        ("step", "notify_housekeeping", "completed the run"),
    ]
    assert recorded("exhausted_retries")[1:] == [
        ("step", "flaky", "attempt 1 failed, retried: the remote service is down"),
        ("step", "flaky", "failed after 2 attempts: the remote service is down"),
        ("on_fail", "flaky", "@on_fail handler compensate ran"),
        ("run", "", "failed: step 'flaky' failed after 2 attempts: the remote service is down"),
    ]


def test_waits_gates_signals_actions_timeouts_and_subflows():
    assert recorded("gate_and_event")[1:-1] == [
        ("step", "start", "went to on_payment"),
        ("gate", "on_payment", "waited for event:replay_payment before it runs"),
        ("signal", "on_payment", "signal event:replay_payment received"),
        ("step", "on_payment", "waited for replay_note"),
        ("signal", "on_payment", "signal replay_note received"),
        ("step", "handle", "completed the run"),
    ]
    assert recorded("action")[1:-1] == [
        ("step", "start_review", "went to await_review"),
        ("gate", "await_review", "waited for action submit_review before it runs"),
        ("action", "await_review", "action submit_review submitted"),
        ("step", "await_review", "completed the run"),
    ]
    assert recorded("wait_timeout")[1:3] == [
        ("step", "ask", "waited for never_sent"),
        ("timeout", "ask", "wait for never_sent timed out: went to expire"),
    ]
    assert recorded("subflow")[1:3] == [
        ("step", "launch", "started subflow replay_child"),
        ("subflow", "launch", "subflow replay_child completed"),
    ]
    assert recorded("cancel")[1:] == [
        ("step", "wait_for_review", "waited for review_completed"),
        ("run", "", "cancel requested: no longer needed"),
        ("run", "", "cancelled"),
    ]


def test_a_continued_as_new_chain_reads_as_one_run():
    first, last = recorded("continue_as_new_first"), recorded("continue_as_new_last")
    assert first[-1] == ("run", "", "continued as new: the run carries on in a fresh Temporal history")
    assert [step for _kind, step, _ in first + last if _kind == "step"] == ["tick"] * 4


# ---------------------------------------------------------------------- live runs
@pytest.fixture
def api(transactional_db):
    client = APIClient()
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    return client


def test_a_suspended_run_shows_its_waiting_step_and_new_entries_as_they_come(dev, api):
    """approval: wait_for_approval -> wait_with_timeout. No StepExecution row while it waits."""
    run = dev.wait_until(engine.start("approval"), lambda r: r.status == WorkflowStatus.SUSPENDED)
    assert not run.step_executions.exists()  # as the guide says: suspending steps are not recorded

    timeline = engine.timeline(run.pk)
    assert timeline.source == TimelineSource.TEMPORAL and timeline.note == ""
    waiting = [e for e in timeline.entries if e.kind == EntryKind.STEP]
    assert [(e.step, e.outcome, e.open, e.summary) for e in waiting] == [
        ("wait_for_approval", Outcome.WAITED, True, "waiting for manager_approval")
    ]

    # Nothing is cached that can change: a hand-sent signal that does not fit, then the real one.
    send_by_hand(run, "manager_approval", {"approved": "maybe"})
    dev.wait_until(run, lambda r: r.rejected_signal is not None)
    assert engine.signal("manager_approval", {"approved": True}) == 1
    dev.wait_until(run, lambda r: r.current_step == "wait_with_timeout" and r.status == WorkflowStatus.SUSPENDED)

    def settled():
        entries = engine.timeline(run.pk).entries
        return entries if any(e.step == "wait_with_timeout" for e in entries) else None

    entries = wait_for(settled, timeout=10)
    assert [(e.kind.value, e.step, e.outcome.value) for e in entries[1:]] == [
        ("step", "wait_for_approval", "waited"),
        ("signal", "wait_for_approval", "rejected"),
        ("signal", "wait_for_approval", "received"),
        ("step", "wait_with_timeout", "waited"),
    ]
    assert "approved: Input should be a valid boolean" in entries[2].error
    assert entries[1].ended_at is not None and entries[4].open
    assert entries[4].summary == "waiting for user_response"
    assert not run.step_executions.exists()

    body = api.get(f"/statezero/runs/{run.pk}/timeline/").json()
    assert body["source"] == "temporal" and body["run_id"] == run.pk
    assert body["entries"][-1]["summary"] == "waiting for user_response"


def test_a_step_that_slept_and_ran_again_appears_twice(dev):
    run = dev.wait_until_finished(engine.start("rules_sleep_loop", sleep_ms=50, times=2))
    assert list(run.step_executions.values_list("step_name", flat=True)) == ["tick", "done"]

    def ended():
        timeline = engine.timeline(run.pk)
        return timeline if timeline.entries[-1].kind == EntryKind.RUN else None

    timeline = wait_for(ended, timeout=10)
    assert steps_of(timeline.entries) == [
        ("tick", "slept", 1),
        ("tick", "went_to", 1),
        ("done", "completed", 1),
    ]
    slept = timeline.entries[1]
    assert slept.until is not None and slept.ended_at is not None and slept.ended_at >= slept.until
    assert timeline.entries[-1].outcome == Outcome.COMPLETED


def test_a_failed_and_retried_step_shows_its_attempts(dev):
    # While it backs off before attempt 3: the history has no event yet, describe() says it.
    run = engine.start("rules_retry_backoff")
    dev.wait_until(run, lambda r: len(r.data.get("attempt_times", [])) >= 2)

    def backing_off():
        steps = steps_of(engine.timeline(run.pk).entries)
        return steps if len(steps) == 3 else None

    assert wait_for(backing_off, timeout=10)[:2] == [("flaky", "retried", 1), ("flaky", "retried", 2)]
    entries = [e for e in engine.timeline(run.pk).entries if e.kind == EntryKind.STEP]
    assert entries[1].error == "transient failure 2"
    assert entries[2].attempt == 3 and entries[2].outcome in (Outcome.SCHEDULED, Outcome.RUNNING, Outcome.COMPLETED)

    dev.wait_until_finished(run)
    assert steps_of(engine.timeline(run.pk).entries) == [
        ("flaky", "retried", 1),
        ("flaky", "retried", 2),
        ("flaky", "completed", 3),
    ]
    assert list(run.step_executions.values_list("status", flat=True)) == ["completed"]


def test_a_retried_run_shows_the_executions_before_the_retry(dev):
    run = dev.wait_until_finished(engine.start("flaky", fail_times=10))
    assert run.status == WorkflowStatus.FAILED
    WorkflowRun.objects.filter(pk=run.pk).update(data={**run.data, "fail_times": 0})
    dev.wait_closed(run)
    engine.retry(run.pk)
    dev.wait_until_finished(run)

    def both():
        timeline = engine.timeline(run.pk)
        return timeline if len(timeline.executions) == 2 and timeline.entries[-1].kind == EntryKind.RUN else None

    timeline = wait_for(both, timeout=15)
    runs = [(e.outcome.value, e.step) for e in timeline.entries if e.kind == EntryKind.RUN]
    assert runs == [
        ("started", "notify_housekeeping"),
        ("failed", ""),
        ("restarted", "notify_housekeeping"),
        ("completed", ""),
    ]
    step = "notify_housekeeping"
    assert steps_of(timeline.entries) == [(step, "retried", n) for n in range(1, 5)] + [
        (step, "failed", 5),
        (step, "completed", 1),
    ]


def test_the_api_answers_a_documented_shape(dev, api):
    run = dev.wait_until_finished(engine.start("order_fulfillment", order_id=7))
    resp = api.get(f"/statezero/runs/{run.pk}/timeline/")
    assert resp.status_code == 200, resp.content
    body = resp.json()
    assert set(body) == {"run_id", "source", "note", "executions", "entries"}
    assert len(body["executions"]) == 1
    entry = body["entries"][1]
    assert set(entry) == {
        "kind",
        "outcome",
        "summary",
        "open",
        "step",
        "step_display",
        "seq",
        "attempt",
        "at",
        "ended_at",
        "until",
        "target",
        "signal",
        "error",
        "execution",
    }
    assert (entry["kind"], entry["step"], entry["outcome"], entry["target"]) == (
        "step",
        "confirm_payment",
        "went_to",
        "reserve_inventory",
    )
    assert entry["step_display"] == {"step_title": "confirm payment", "visible": True, "step_type": "automated"}
    assert api.get("/statezero/runs/999999/timeline/").status_code == 404
    assert APIClient().get(f"/statezero/runs/{run.pk}/timeline/").status_code in (401, 403)


# ---------------------------------------------------------------------- when Temporal cannot say
@pytest.fixture
def unreachable(dev):
    saved = dict(automation_settings.overrides)

    def go_dark() -> None:
        automation_settings.overrides["TEMPORAL_ADDRESS"] = "127.0.0.1:1"
        bridge.set_client(None)

    try:
        yield go_dark
    finally:
        automation_settings.overrides.clear()
        automation_settings.overrides.update(saved)
        dev.activate()


def test_temporal_unreachable_falls_back_to_the_step_rows_with_a_note(dev, api, unreachable):
    run = dev.wait_until_finished(engine.start("order_fulfillment", order_id=8))
    unreachable()
    timeline = engine.timeline(run.pk)
    assert timeline.source == TimelineSource.STEP_HISTORY
    assert timeline.note.startswith("timeline unavailable: Temporal is unreachable at 127.0.0.1:1 (namespace default)")
    assert "showing the step history rows instead" in timeline.note
    assert [(e.step, e.outcome.value) for e in timeline.entries] == [
        ("confirm_payment", "completed"),
        ("reserve_inventory", "completed"),
        ("ship_order", "completed"),
    ]
    body = api.get(f"/statezero/runs/{run.pk}/timeline/").json()  # 200, not 503: the page still has something
    assert body["source"] == "step_history" and body["note"].startswith("timeline unavailable:")


def test_a_history_temporal_no_longer_has_falls_back_with_a_note(dev):
    run = dev.wait_until_finished(engine.start("order_fulfillment", order_id=9))
    WorkflowRun.objects.filter(pk=run.pk).update(temporal_workflow_id="order_fulfillment-gone-00000000")
    timeline = engine.timeline(run.pk)
    assert timeline.source == TimelineSource.STEP_HISTORY
    assert "Temporal has no history of workflow order_fulfillment-gone-00000000" in timeline.note
    assert len(timeline.entries) == 3

    WorkflowRun.objects.filter(pk=run.pk).update(temporal_run_id="")  # as after a start Temporal refused
    assert "its workflow order_fulfillment-gone-00000000 never started on Temporal" in engine.timeline(run.pk).note


def test_reminders_sleeping_a_day_twice_on_the_time_skipping_server(ts):
    """The guide's reminders: send_reminder sleeps 24 hours twice, then goes to escalate."""
    run = ts.wait_until_finished(engine.start("reminders"))
    assert list(run.step_executions.values_list("step_name", flat=True)) == ["send_reminder", "escalate"]

    def ended():
        timeline = engine.timeline(run.pk)
        return timeline if timeline.entries[-1].kind == EntryKind.RUN else None

    timeline = wait_for(ended, timeout=10)
    assert steps_of(timeline.entries) == [
        ("send_reminder", "slept", 1),
        ("send_reminder", "slept", 1),
        ("send_reminder", "went_to", 1),
        ("escalate", "completed", 1),
    ]
    first = timeline.entries[1]
    assert (first.until - first.at).total_seconds() >= 24 * 3600 - 1


# ---------------------------------------------------------------------- the admin
def test_the_admin_change_page_shows_the_timeline(dev, client):
    run = dev.wait_until(engine.start("approval"), lambda r: r.status == WorkflowStatus.SUSPENDED)
    User.objects.create_superuser("admin", "admin@example.com", "pw")
    client.login(username="admin", password="pw")
    page = client.get(f"/admin/django_bridge/workflowrun/{run.pk}/change/").content.decode()
    assert ">Timeline</h2>" in page
    assert 'data-kind="step" data-outcome="waited"' in page
    assert "<td>waiting for manager_approval</td>" in page and "(goes on)" in page

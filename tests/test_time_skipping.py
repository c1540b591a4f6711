"""Long sleeps and timeouts on the time-skipping server: each run is seen waiting first, then
``env.skip_time`` moves it on. Sleeps and timeouts are durable timers
(semantics: "Sleep runs the same step again", semantics: "Wait timeouts")."""

from __future__ import annotations

from datetime import timedelta

from temporalio.api.enums.v1 import EventType

from django_ai.automation.workflows.core import engine
from django_ai.automation.workflows.models import WorkflowRun, WorkflowStatus
from temporal_worker import client as bridge


def test_time_skipping_server_has_no_search_attributes(ts):
    """The engine detects that the test server cannot take search attributes and starts without them."""
    run = ts.wait_until_finished(engine.start("user_onboarding", user_id=1))
    assert run.status == WorkflowStatus.COMPLETED, run.error
    assert bridge.server_features.get("search_attributes") is False


def test_reminder_loop_sleeps_24h_three_times_then_escalates(ts):
    run = engine.start("reminders")
    for sent in (1, 2):
        waiting = ts.wait_until(
            run, lambda r, n=sent: r.status == WorkflowStatus.WAITING and r.data["reminders_sent"] == n
        )
        assert waiting.current_step == "send_reminder"
        assert waiting.wake_at - waiting.updated_at >= timedelta(hours=23, minutes=59)
        # sleeps record no rows (semantics: "Sleep runs the same step again")
        assert waiting.step_executions.count() == 0
        ts.skip_time(timedelta(hours=24))
    run = ts.wait_until_finished(run)
    assert run.status == WorkflowStatus.COMPLETED, run.error
    assert run.data == {"reminders_sent": 3, "escalated": True}
    assert list(run.step_executions.values_list("step_name", flat=True)) == ["send_reminder", "escalate"]


def test_reminder_does_not_wake_before_its_time(ts):
    run = engine.start("reminders")
    ts.wait_until(run, lambda r: r.status == WorkflowStatus.WAITING)
    ts.skip_time(timedelta(hours=23))
    # The server applies due timers before the skip returns: none fired, so nothing will run.
    assert _timers_fired(ts, run) == 0
    still = WorkflowRun.objects.get(pk=run.pk)
    assert still.status == WorkflowStatus.WAITING and still.data["reminders_sent"] == 1
    ts.skip_time(timedelta(hours=1))
    ts.wait_until(run, lambda r: r.data["reminders_sent"] == 2)
    assert _timers_fired(ts, run) == 1
    _stop(ts, run)


def test_approval_times_out_after_7_days_to_send_final_notice(ts):
    run = engine.start("approval")
    ts.wait_until(run, lambda r: r.status == WorkflowStatus.SUSPENDED and r.waiting_signal == "manager_approval")
    assert engine.signal("manager_approval", {"approved": True, "notes": "Looks good"}) == 1
    waiting = ts.wait_until(run, lambda r: r.status == WorkflowStatus.SUSPENDED and r.waiting_signal == "user_response")
    assert waiting.on_timeout_step == "send_final_notice"
    assert waiting.wake_at - waiting.updated_at >= timedelta(days=6, hours=23)
    ts.skip_time(timedelta(days=7))
    run = ts.wait_until_finished(run)
    assert run.status == WorkflowStatus.COMPLETED, run.error
    assert run.data == {"approved": True, "notes": "Looks good", "status": "expired"}
    assert run.current_step == "send_final_notice"


def test_event_wait_times_out_after_48_hours(ts):
    run = engine.start("payment_wait")
    ts.wait_until(run, lambda r: r.status == WorkflowStatus.SUSPENDED and r.waiting_signal == "event:payment_received")
    ts.skip_time(timedelta(hours=48))
    run = ts.wait_until_finished(run)
    assert run.status == WorkflowStatus.COMPLETED, run.error
    assert run.data["cancelled"] is True and run.data["fulfilled"] is False


def _stop(env, run) -> None:
    from temporal_worker import client as bridge

    workflow_id = WorkflowRun.objects.values_list("temporal_workflow_id", flat=True).get(pk=run.pk)
    bridge.run_sync(env.client.get_workflow_handle(workflow_id).terminate(reason="test cleanup"), timeout=30)


def _timers_fired(env, run) -> int:
    return sum(1 for e in env.history(run).events if e.event_type == EventType.EVENT_TYPE_TIMER_FIRED)


# ---------------------------------------------------------------------- the testing helpers
def test_waiting_for_the_end_lets_time_skip(ts):
    """wait_until_finished awaits the workflow, so the server skips the 24-hour sleeps itself."""
    run = engine.start("reminders")
    ts.wait_until_finished(run, timeout=20)
    assert run.status == WorkflowStatus.COMPLETED, run.error  # the run passed in is refreshed
    assert run.data == {"reminders_sent": 3, "escalated": True}


def test_wait_until_refreshes_the_run_it_was_given(dev):
    run = engine.start("approval")
    returned = dev.wait_until(run, lambda r: r.status == WorkflowStatus.SUSPENDED)
    assert run.status == WorkflowStatus.SUSPENDED and run.waiting_signal == "manager_approval"
    assert (run.wait_seq, run.updated_at) == (returned.wait_seq, returned.updated_at)


def test_the_server_capability_notice_is_filtered_from_the_core_logs(ts):
    import logging

    from temporal_worker.testing import CORE_LOGGER

    logger = logging.getLogger(CORE_LOGGER)
    notice = logger.makeRecord(
        CORE_LOGGER,
        logging.WARNING,
        "worker",
        0,
        "Temporal Server 1.16.0 or newer is required ... the server did not advertise the "
        "activity_failure_include_heartbeat capability",
        (),
        None,
    )
    other = logger.makeRecord(CORE_LOGGER, logging.WARNING, "worker", 0, "something else", (), None)
    assert not logger.filter(notice) and logger.filter(other)

"""The Temporal history reads like the workflow: named activities, summaries, details."""

from temporalio.api.enums.v1 import EventType
from temporalio.converter import PayloadConverter

from django_ai.automation.workflows.core import engine
from django_ai.automation.workflows.models import WorkflowStatus
from tests.testapp import guide_display  # noqa: F401


def _summary(converter, event) -> str:
    if not event.HasField("user_metadata") or not event.user_metadata.HasField("summary"):
        return ""
    return converter.from_payload(event.user_metadata.summary, str)


def test_workflow_type_activity_types_and_summaries(dev):
    run = dev.wait_until_finished(engine.start("order_fulfillment", order_id=1))
    history = dev.history(run)
    converter = PayloadConverter.default
    started = history.events[0].workflow_execution_started_event_attributes
    assert started.workflow_type.name == "order_fulfillment"
    scheduled = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED]
    types = [e.activity_task_scheduled_event_attributes.activity_type.name for e in scheduled]
    assert types == [
        "order_fulfillment.confirm_payment",
        "order_fulfillment.reserve_inventory",
        "order_fulfillment.ship_order",
    ]
    assert [_summary(converter, e) for e in scheduled] == ["confirm payment", "reserve inventory", "ship order"]
    assert run.status == WorkflowStatus.COMPLETED


def test_timer_summaries_for_timeouts(dev):
    run = engine.start("gate_orders")
    run = dev.wait_until(run, lambda r: r.current_step == "gated_below", timeout=20)
    run.cancel()
    history = dev.history(run)
    converter = PayloadConverter.default
    timers = [_summary(converter, e) for e in history.events if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED]
    assert "timeout of wait for never_sent" in timers


def test_current_details_show_step_status_and_awaited_signal(dev):
    from temporalio.api.sdk.v1 import WorkflowMetadata

    from temporal_worker import client as bridge

    run = dev.wait_until(engine.start("approval"), lambda r: r.status == WorkflowStatus.SUSPENDED)

    async def metadata():
        handle = dev.client.get_workflow_handle(run.temporal_workflow_id)
        return await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)

    text = bridge.run_sync(metadata()).current_details
    assert "status: suspended" in text
    assert "step: wait_for_approval" in text
    assert "waiting for: manager_approval" in text
    run.cancel()


def test_sleep_timer_summary(ts):
    from datetime import timedelta

    run = engine.start("reminders")
    ts.wait_until(run, lambda r: r.status == WorkflowStatus.WAITING)
    ts.skip_time(timedelta(hours=24))
    ts.wait_until(run, lambda r: r.data["reminders_sent"] == 2)
    run.cancel()
    history = ts.history(run)
    timers = [
        _summary(PayloadConverter.default, e)
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED
    ]
    assert timers[0] == "sleep 1 day in send_reminder"

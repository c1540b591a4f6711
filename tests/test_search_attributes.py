"""Live state in Temporal: search attributes list runs by status, step and awaited signal."""

from django_ai.automation.workflows.core import engine
from django_ai.automation.workflows.models import WorkflowStatus
from django_bridge.conf import DEFAULTS, automation_settings
from facade.testing import wait_for
from temporal_worker import client as bridge


def _list(dev, query):
    async def run():
        return [w.id async for w in dev.client.list_workflows(query)]

    return bridge.run_sync(run())


def test_runs_waiting_for_a_signal_are_listed_by_search_attribute(dev):
    run = engine.start("approval")
    run = dev.wait_until(run, lambda r: r.status == WorkflowStatus.SUSPENDED)
    query = f'AutomationWaitingFor = "manager_approval" AND WorkflowId = "{run.temporal_workflow_id}"'
    assert wait_for(lambda: _list(dev, query), timeout=15) == [run.temporal_workflow_id]
    status_query = f'AutomationStatus = "suspended" AND AutomationStep = "wait_for_approval" AND WorkflowId = "{run.temporal_workflow_id}"'
    assert wait_for(lambda: _list(dev, status_query), timeout=15) == [run.temporal_workflow_id]

    engine.signal("manager_approval", {"approved": True}, run_id=run.id)
    dev.wait_until(run, lambda r: r.current_step == "wait_with_timeout" and r.status == WorkflowStatus.SUSPENDED)
    moved = f'AutomationWaitingFor = "user_response" AND WorkflowId = "{run.temporal_workflow_id}"'
    assert wait_for(lambda: _list(dev, moved), timeout=15) == [run.temporal_workflow_id]
    run.cancel()


def _published(dev, run) -> tuple[bool, int]:
    """Whether the run started with search attributes, and how many times it upserted them."""
    events = dev.history(run).events
    started = events[0].workflow_execution_started_event_attributes
    upserts = sum(e.HasField("upsert_workflow_search_attributes_event_attributes") for e in events)
    return bool(started.search_attributes.indexed_fields), upserts


def test_runs_publish_search_attributes_only_when_the_setting_asks(dev):
    assert DEFAULTS["SEARCH_ATTRIBUTES"] is False  # off unless a project turns it on (this suite does)
    published = dev.wait_until(engine.start("approval"), lambda r: r.status == WorkflowStatus.SUSPENDED)
    automation_settings.overrides["SEARCH_ATTRIBUTES"] = False
    try:
        quiet = dev.wait_until(engine.start("approval"), lambda r: r.status == WorkflowStatus.SUSPENDED)
    finally:
        del automation_settings.overrides["SEARCH_ATTRIBUTES"]
    assert _published(dev, published) == (True, 1)  # set with the start, upserted as it blocked
    assert _published(dev, quiet) == (False, 0)
    published.cancel()
    quiet.cancel()

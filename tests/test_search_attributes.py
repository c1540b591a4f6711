"""Live state in Temporal: search attributes list runs by status, step and awaited signal."""

from django_ai.automation.workflows.core import engine
from django_ai.automation.workflows.models import WorkflowStatus
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

"""Subflows where the guide is silent, as the API's original implementation behaved
(semantics: "Subflows"): on_create hooks with one or two arguments, no child row without its
workflow, and a parent that shows where it will resume while its child runs."""

import importlib
import sys

import pytest
from temporalio.service import RPCError, RPCStatusCode

from django_ai.automation.workflows.core import engine
from django_ai.automation.workflows.models import WorkflowRun, WorkflowStatus
from django_ai.automation.workflows.statezero_action import submit_action
from facade import RunStateError, registry
from facade.testing import wait_for
from temporal_worker import client as bridge


@pytest.fixture
def hooks():
    with registry.isolated():
        sys.modules.pop("tests.testapp.subflow_hooks", None)
        yield importlib.import_module("tests.testapp.subflow_hooks")
        sys.modules.pop("tests.testapp.subflow_hooks", None)


def describe(dev, workflow_id):
    async def go():
        return await dev.client.get_workflow_handle(workflow_id).describe()

    return bridge.run_sync(go(), timeout=30)


def started(dev, workflow_id):
    try:
        return describe(dev, workflow_id) is not None
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return False
        raise


def child_of(dev, run, exclude=()):
    """The child run once its workflow exists (its row is written just before the parent starts it)."""
    child = wait_for(lambda: WorkflowRun.objects.filter(parent_id=run.pk).exclude(pk__in=exclude).first())
    wait_for(lambda: started(dev, child.temporal_workflow_id), message=f"child run {child.pk} never started")
    return child


def rows(run):
    return list(run.step_executions.values_list("step_name", "status"))


def test_on_create_receives_child_and_parent_with_the_parent_context_bound(dev, hooks):
    run = engine.start("hooked_parent", hook="both")
    child = child_of(dev, run)
    run = dev.wait_until(run, lambda r: r.status == WorkflowStatus.SUSPENDED)
    assert run.data["seen"] == f"held_child#{child.pk} of hooked_parent#{run.pk}"

    one = engine.start("hooked_parent", hook="child")
    one_child = child_of(dev, one)
    one = dev.wait_until(one, lambda r: r.status == WorkflowStatus.SUSPENDED)
    assert one.data["seen"] == f"held_child#{one_child.pk}"

    assert engine.signal("event:held_child_go") == 2
    for parent in (run, one):
        parent = dev.wait_until_finished(parent)
        assert parent.status == WorkflowStatus.COMPLETED, parent.error
        assert parent.data["child_status"] == WorkflowStatus.COMPLETED
    # A gated step's history row says it was a waiting step.
    held = dev.wait_until_finished(child).step_executions.get()
    assert held.step_display == {"step_title": "hold", "visible": True, "step_type": "waiting"}


def test_parent_shows_its_on_complete_step_while_the_child_runs(dev, hooks):
    run = engine.start("hooked_parent")
    child = dev.wait_until(child_of(dev, run), lambda c: c.status == WorkflowStatus.SUSPENDED)
    run = dev.wait_until(run, lambda r: r.status == WorkflowStatus.SUSPENDED)

    # Where it resumes, not the step that already ran (the original's "next: finish").
    assert (run.current_step, run.waiting_for) == ("finish", "subflow:held_child")
    assert run.active_child_id == child.pk
    display = run.current_step_display
    assert display["current_step"] == "finish" and display["step_title"] == "Finish up"
    assert display["status"] == "suspended" and display["step_type"] == "waiting"
    live = engine.live_display(run.pk)  # the workflow's own state says the same
    assert live == display
    assert rows(run) == [("launch", "completed")]
    # The search attribute still names the step that started the child (same commands as before).
    step_attr = describe(dev, run.temporal_workflow_id).typed_search_attributes
    assert [v for k, v in step_attr if k.name == "AutomationStep"] in ([], ["launch"])

    assert engine.signal("event:held_child_go") == 1
    run = dev.wait_until_finished(run)
    assert run.status == WorkflowStatus.COMPLETED, run.error
    assert rows(run) == [("launch", "completed"), ("finish", "completed")]


def test_on_complete_action_step_is_no_action_until_the_child_ended(dev, hooks):
    run = engine.start("review_after_child")
    dev.wait_until(child_of(dev, run), lambda c: c.status == WorkflowStatus.SUSPENDED)
    run = dev.wait_until(run, lambda r: r.status == WorkflowStatus.SUSPENDED)
    assert run.current_step == "review"
    display = run.current_step_display
    assert display["step_type"] == "waiting" and "action_name" not in display
    with pytest.raises(RunStateError, match="not at action"):
        submit_action(run.pk, "review_child_result")

    assert engine.signal("event:held_child_go") == 1
    run = dev.wait_until(run, lambda r: r.waiting_for == "action:review_child_result")
    assert run.current_step_display["action_name"] == "review_child_result"
    assert submit_action(run.pk, "review_child_result").display["status"] == "completed"
    assert WorkflowRun.objects.get(pk=run.pk).data["child_status"] == WorkflowStatus.COMPLETED


def test_a_raising_on_create_hook_leaves_no_phantom_child(dev, hooks):
    run = engine.start("hooked_parent", hook="refuse")
    run = dev.wait_until_finished(run)
    assert run.status == WorkflowStatus.FAILED
    assert "on_create hook raised ValueError: no child today (held_child)" in run.error
    assert run.data["launches"] == 1  # a failure, not a retried step: the step ran once

    child = WorkflowRun.objects.get(parent=run)
    assert child.status == WorkflowStatus.FAILED and child.finished_at is not None
    assert "no child today" in child.error and "never started" in child.error
    with pytest.raises(RPCError) as err:  # no Temporal workflow exists for it
        describe(dev, child.temporal_workflow_id)
    assert err.value.status == RPCStatusCode.NOT_FOUND
    assert rows(run) == [("launch", "failed")]
    assert run.step_executions.get().step_display["step_title"] == "Launch the child"


def test_cancel_while_the_child_runs_records_the_resume_step(dev, hooks):
    run = engine.start("hooked_parent")
    child = dev.wait_until(child_of(dev, run), lambda c: c.status == WorkflowStatus.SUSPENDED)
    run = WorkflowRun.objects.get(pk=run.pk).cancel("no longer needed")
    assert run.status == WorkflowStatus.CANCELLED
    assert rows(run) == [("launch", "completed"), ("finish", "cancelled")]
    cancelled = run.step_executions.get(status="cancelled")
    assert cancelled.step_display == {"step_title": "Finish up", "visible": True, "step_type": "automated"}
    assert dev.wait_until(child, lambda c: c.status == WorkflowStatus.CANCELLED)


def test_retrying_a_parent_stuck_on_its_child_starts_the_child_again(dev, hooks):
    run = engine.start("hooked_parent")
    first = dev.wait_until(child_of(dev, run), lambda c: c.status == WorkflowStatus.SUSPENDED)
    dev.wait_until(run, lambda r: r.status == WorkflowStatus.SUSPENDED)

    async def terminate():  # the parent's workflow is gone; its row still says suspended
        await dev.client.get_workflow_handle(run.temporal_workflow_id).terminate(reason="lost")

    bridge.run_sync(terminate(), timeout=30)
    WorkflowRun.objects.get(pk=run.pk).retry_current_step()
    # It starts again at the step that started the child (its current step needs the child's result).
    second = child_of(dev, run, exclude=[first.pk])
    run = dev.wait_until(run, lambda r: r.status == WorkflowStatus.SUSPENDED and r.active_child_id == second.pk)
    assert run.current_step == "finish" and run.data["launches"] == 2
    assert engine.signal("event:held_child_go", run_id=second.pk) == 1
    run = dev.wait_until_finished(run)
    assert run.status == WorkflowStatus.COMPLETED, run.error


def test_on_create_signature_decides_its_arguments():
    from django_ai.automation.workflows.core import run_subflow
    from facade import StepResultError

    assert run_subflow("held_child", on_complete="finish", on_create=lambda child, parent: None).on_create_takes_parent
    assert not run_subflow("held_child", on_complete="finish", on_create=lambda child: None).on_create_takes_parent
    with pytest.raises(StepResultError, match=r"must accept \(child_run\) or \(child_run, parent_run\)"):
        run_subflow("held_child", on_complete="finish", on_create=lambda: None)

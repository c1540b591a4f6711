"""Subworkflows (guide "Subworkflows", semantics: "Subflows") as Temporal child workflows."""

import importlib
import sys

import pytest

from django_ai.automation.workflows.core import engine
from django_ai.automation.workflows.models import WorkflowRun, WorkflowStatus
from facade import registry
from facade.testing import wait_for


@pytest.fixture
def guide():
    """The guide's subflow module, in its own registry scope (it reuses guide names)."""
    with registry.isolated():
        sys.modules.pop("tests.testapp.guide_subflows", None)
        module = importlib.import_module("tests.testapp.guide_subflows")
        module.sent_codes.clear()
        yield module
        sys.modules.pop("tests.testapp.guide_subflows", None)


def test_basic_subflow_resumes_parent_with_typed_child_context(dev, guide):
    run = engine.start("user_registration", user_email="a@example.com")
    run = dev.wait_until_finished(run)
    assert run.status == WorkflowStatus.COMPLETED, run.error

    child = WorkflowRun.objects.get(parent=run)
    assert child.name == "send_notification" and child.status == WorkflowStatus.COMPLETED
    assert child.data == {"recipient_email": "a@example.com", "message": "Welcome to our platform!", "sent": True}
    assert run.data["active_subworkflow_run_id"] == child.id
    assert run.active_child_id == child.id
    assert run.child_run_ids == [child.id] and child.parent_run_id == run.id
    rows = list(run.step_executions.values_list("step_name", "status"))
    assert rows == [("create_user", "completed"), ("after_notification", "completed")]
    # In Temporal the child is a child workflow of the parent.
    history = dev.history(run)
    started = [e for e in history.events if e.HasField("child_workflow_execution_started_event_attributes")]
    assert len(started) == 1
    assert (
        started[0].child_workflow_execution_started_event_attributes.workflow_execution.workflow_id
        == child.temporal_workflow_id
    )


def test_nested_subflows_three_levels(dev, guide):
    run = engine.start("order_management", customer_id=9)
    run = dev.wait_until_finished(run, timeout=45)
    assert run.status == WorkflowStatus.COMPLETED, run.error
    assert run.data["order_complete"] is True
    fulfillment = WorkflowRun.objects.get(parent=run)
    payment = WorkflowRun.objects.get(parent=fulfillment)
    assert (fulfillment.name, payment.name) == ("order_fulfillment", "payment_processing")
    assert payment.data["amount"] == "99.99" and payment.data["processed"] is True
    assert fulfillment.data["payment_complete"] is True


def test_child_with_gate_suspends_and_parent_waits(dev, guide):
    run = engine.start("password_reset", email="b@example.com")
    child_id = wait_for(lambda: WorkflowRun.objects.filter(parent_id=run.id).values_list("id", flat=True).first())
    child = dev.wait_until(child_id, lambda c: c.status == WorkflowStatus.SUSPENDED)
    assert child.current_step == "wait_for_verification" and child.waiting_signal == "event:email_verified"
    assert guide.sent_codes == [("b@example.com", "123456")]
    parent = WorkflowRun.objects.get(pk=run.pk)
    assert parent.status == WorkflowStatus.SUSPENDED and parent.active_child_id == child.id

    assert engine.signal("event:email_verified") == 1  # only the child waits on it
    run = dev.wait_until_finished(run)
    assert run.status == WorkflowStatus.COMPLETED and run.data["reset"] is True


def test_child_failed_by_exhausted_retries_resumes_parent(dev, guide):
    run = engine.start("parent_of_flaky")
    run = dev.wait_until_finished(run)
    assert run.status == WorkflowStatus.COMPLETED, run.error
    assert run.data["child_status"] == WorkflowStatus.FAILED
    assert "child exploded" in run.data["child_error"]
    assert run.data["child_tries"] == 2  # the child's context as it ended, typed
    child = WorkflowRun.objects.get(parent=run)
    assert child.status == WorkflowStatus.FAILED

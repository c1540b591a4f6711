"""@on_fail compensation (guide "Compensation", semantics: "On-fail handlers and definition errors"), on a real
dev server."""

import pytest

from django_ai.automation.workflows.core import engine
from django_ai.automation.workflows.models import WorkflowStatus
from tests.testapp import guide_compensation  # noqa: F401  (registers the workflows)
from tests.testapp.services import external_service, inventory_service, payment_service, reset_all, shipping_service


@pytest.fixture(autouse=True)
def _services():
    reset_all()
    yield
    reset_all()


def test_exhausted_retries_run_on_fail_with_history_and_compensate(dev):
    run = engine.start("order_processing", order_id=7)
    run = dev.wait_until_finished(run)

    assert run.status == WorkflowStatus.FAILED
    assert "ship_order" in run.error and "name 'ctx' is not defined" in run.error
    # The guide's cleanup saw both completed steps and reversed them, once each.
    assert payment_service.calls["charge"] == 1 and payment_service.calls["refund"] == 1
    assert inventory_service.calls["reserve"] == 1 and inventory_service.calls["release"] == 1
    assert shipping_service.calls["ship"] == 0  # ctx was undefined: it never got that far
    refunded = [args for method, args in payment_service.args if method == "refund"]
    assert refunded == [(run.data["charge_id"],)]
    rows = list(run.step_executions.values_list("step_name", "status"))
    assert rows == [("charge_payment", "completed"), ("reserve_inventory", "completed"), ("ship_order", "failed")]


def test_on_fail_sees_failed_row_and_saves_context_on_fail(dev):
    run = engine.start("risky", something_wrong=True)
    run = dev.wait_until_finished(run)

    assert run.status == WorkflowStatus.FAILED
    assert run.error == "Validation failed"
    assert run.data["cleanup_performed"] is True
    assert run.data["refunded"] is True
    assert run.data["failed_step"] == "risky_step"
    assert run.data["failed_error"] == "Validation failed"
    assert run.data["seen_completed"] == ["prepare"]


def test_on_fail_runs_after_exhausted_retries_of_a_raise(dev):
    run = engine.start("risky", something_wrong=False)
    run = dev.wait_until_finished(run)

    assert run.status == WorkflowStatus.FAILED
    assert "Boom!" in run.error and "2 attempts" in run.error
    assert run.data["failed_step"] == "risky_step" and "Boom!" in run.data["failed_error"]
    assert run.data["cleanup_performed"] is True


def test_error_inside_on_fail_is_logged_and_keeps_original_error(dev, caplog):
    external_service.failing.add("notify_failure")
    run = engine.start("failing_cleanup")
    run = dev.wait_until_finished(run)

    assert run.status == WorkflowStatus.FAILED
    assert run.error == "original problem"
    assert external_service.calls["notify_failure"] == 1  # not retried: the error was swallowed
    # Changes made before the handler raised are still saved.
    assert run.data["touched"] is True


def test_failed_run_is_failed_in_temporal_too(dev):
    run = engine.start("failing_cleanup")
    run = dev.wait_until_finished(run)
    dev.wait_closed(run)
    history = dev.history(run)
    last = history.events[-1]
    assert last.HasField("workflow_execution_failed_event_attributes")
    assert "original problem" in last.workflow_execution_failed_event_attributes.failure.message

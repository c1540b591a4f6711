"""Cancel (semantics: "Cancelling a run") and retry_current_step (semantics: "Retrying a failed run") through
Temporal."""

import pytest

from django_ai.automation.workflows.core import engine
from django_ai.automation.workflows.models import WorkflowRun, WorkflowStatus
from facade import InvalidInputError, RunStateError, registry
from facade.testing import wait_for
from tests.testapp import guide_compensation  # noqa: F401
from tests.testapp.services import reset_all, shipping_service


def _temporal_status(dev, run):
    from temporal_worker import client as bridge

    async def describe():
        return await dev.client.get_workflow_handle(run.temporal_workflow_id).describe()

    return bridge.run_sync(describe()).status.name


def test_cancel_waiting_run(dev):
    run = engine.start("approval")
    run = dev.wait_until(run, lambda r: r.status == WorkflowStatus.SUSPENDED)
    engine.cancel(run.id)
    run.refresh_from_db()
    assert run.status == WorkflowStatus.CANCELLED
    assert run.waiting_signal == "" and run.finished_at is not None
    assert list(run.step_executions.values_list("step_name", "status")) == [("wait_for_approval", "cancelled")]
    assert _temporal_status(dev, run) == "CANCELED"
    # Nothing waits any more: a signal reaches no run.
    assert engine.signal("manager_approval") == 0


def test_run_cancel_with_reason_cancels_children_first(dev):
    import importlib
    import sys

    with registry.isolated():
        sys.modules.pop("tests.testapp.guide_subflows", None)
        importlib.import_module("tests.testapp.guide_subflows")
        run = engine.start("password_reset", email="c@example.com")
        child_id = wait_for(lambda: WorkflowRun.objects.filter(parent_id=run.id).values_list("id", flat=True).first())
        child = dev.wait_until(child_id, lambda c: c.status == WorkflowStatus.SUSPENDED)

        with pytest.raises(RunStateError, match="subflow"):
            engine.cancel(child.id)

        run = WorkflowRun.objects.get(pk=run.pk).cancel("customer gave up")
        assert run.status == WorkflowStatus.CANCELLED and run.error == "customer gave up"
        child = dev.wait_until(child, lambda c: c.status == WorkflowStatus.CANCELLED)
        assert child.step_executions.filter(status="cancelled").count() == 1
        assert _temporal_status(dev, child) == "CANCELED"
        assert _temporal_status(dev, run) == "CANCELED"
        sys.modules.pop("tests.testapp.guide_subflows", None)


def test_cancel_finished_run_does_nothing_and_unknown_run_is_an_error(dev):
    run = dev.wait_until_finished(engine.start("user_onboarding", user_id=1))
    engine.cancel(run.id)
    run.refresh_from_db()
    assert run.status == WorkflowStatus.COMPLETED
    with pytest.raises(InvalidInputError, match="no workflow run with id 999999"):
        engine.cancel(999999)


def test_retry_current_step_restarts_failed_run_with_saved_context(dev):
    reset_all()
    shipping_service.failing.add("ship")
    run = engine.start("flaky", fail_times=10)
    run = dev.wait_until_finished(run)
    assert run.status == WorkflowStatus.FAILED
    attempts_before = run.data["attempts"]
    assert attempts_before == 5  # every attempt's change was kept (semantics: "Failed attempts keep their context")

    # The cause is fixed (the step now succeeds after a few more tries): retry the step.
    WorkflowRun.objects.filter(pk=run.pk).update(data={**run.data, "fail_times": attempts_before + 1})
    run.refresh_from_db()
    run.retry_current_step()
    run = dev.wait_until_finished(run)
    assert run.status == WorkflowStatus.COMPLETED, run.error
    assert run.data["notified"] is True and run.data["attempts"] == attempts_before + 2
    rows = list(run.step_executions.values_list("step_name", "status"))
    assert rows == [("notify_housekeeping", "failed"), ("notify_housekeeping", "completed")]
    reset_all()


def test_retry_refuses_completed_and_cancelled_runs(dev):
    done = dev.wait_until_finished(engine.start("user_onboarding", user_id=2))
    with pytest.raises(RunStateError, match="completed"):
        done.retry_current_step()
    waiting = dev.wait_until(engine.start("approval"), lambda r: r.status == WorkflowStatus.SUSPENDED)
    waiting.cancel()
    with pytest.raises(RunStateError, match="cancelled"):
        waiting.retry_current_step()


def test_cancelling_a_run_while_its_step_runs_cancels_it(dev):
    """The step's activity is in flight when the cancel arrives: the run ends cancelled, not failed."""
    from tests.testapp import rule_workflows as rw

    rw.SLOW_STEP_STARTED.clear()
    run = engine.start("rules_slow_step", seconds=3.0)
    assert rw.SLOW_STEP_STARTED.wait(30)
    engine.cancel(run.pk, reason="changed my mind")
    run = dev.wait_until_finished(run)
    assert run.status == WorkflowStatus.CANCELLED, run.error
    assert list(run.step_executions.values_list("step_name", "status")) == [("slow", "cancelled")]

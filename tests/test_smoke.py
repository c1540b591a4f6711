from django_ai.automation.workflows.core import engine
from django_ai.automation.workflows.models import WorkflowStatus


def test_onboarding_completes(dev):
    run = engine.start("user_onboarding", user_id=123)
    run = dev.wait_until_finished(run)
    assert run.status == WorkflowStatus.COMPLETED, run.error
    assert run.data["email_sent"] is True
    assert [e.step_name for e in run.step_executions.all()] == ["send_welcome_email"]


def test_multi_step(dev):
    run = engine.start("order_fulfillment", order_id=5)
    run = dev.wait_until_finished(run)
    assert run.status == WorkflowStatus.COMPLETED, run.error
    assert list(run.step_executions.values_list("step_name", flat=True)) == [
        "confirm_payment",
        "reserve_inventory",
        "ship_order",
    ]


def test_signal(dev):
    run = engine.start("review")
    dev.wait_until(run, lambda r: r.status == "suspended")
    assert engine.signal("review_completed", {"reviewer_name": "Jane", "approved": True}) == 1
    run = dev.wait_until_finished(run)
    assert run.status == "completed", run.error
    assert run.data["reviewer_name"] == "Jane" and run.data["processed"]

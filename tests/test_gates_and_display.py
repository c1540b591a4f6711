"""Gate-form waits, display metadata and the live query, on a real dev server.

(semantics: "Gate waits and return waits", semantics: "Current step display")
"""

from django_ai.automation.workflows.core import engine
from django_ai.automation.workflows.models import WorkflowRun, WorkflowStatus
from facade.testing import wait_for
from tests.testapp import guide_display  # noqa: F401  (registers the workflows)

DISPLAY_KEYS = {
    "status",
    "current_step",
    "step_type",
    "step_title",
    "visible",
    "progress",
    "completion_display",
    "waiting_display",
    "step_display",
}


def test_completion_display(dev):
    run = engine.start("order_complete_display", order_id=123)
    run = dev.wait_until_finished(run)
    run = WorkflowRun.objects.get(id=run.id)
    assert run.status == WorkflowStatus.COMPLETED
    assert run.completion_display["display_title"] == "Order Complete! 🎉"
    assert run.completion_display["display_subtitle"] == "Order #123 has been successfully processed"
    display = run.current_step_display
    assert set(display) == DISPLAY_KEYS
    assert display["status"] == "completed" and display["progress"] == 1.0
    assert display["completion_display"]["display_title"] == "Order Complete! 🎉"


def test_gate_on_start_step_suspends_before_body_and_shows_waiting_display(dev):
    run = engine.start("oauth_connect")
    run = dev.wait_until(run, lambda r: r.status == WorkflowStatus.SUSPENDED)
    assert run.data["connected"] is False  # the body has not run
    assert run.waiting_signal == "event:oauth_completed"
    assert run.waiting_display == {
        "display_title": "Authorization Required",
        "display_subtitle": "Please complete OAuth in the popup window",
        "display_waiting_for": "OAuth authorization",
    }
    display = run.current_step_display
    assert display["step_type"] == "waiting" and display["waiting_display"]["display_title"] == "Authorization Required"
    # The live query answers the same display from the workflow itself.
    live = wait_for(lambda: engine.live_display(run.id))
    assert live == display

    assert engine.signal("event:oauth_completed", {"event_name": "oauth_completed"}) == 1
    run = dev.wait_until_finished(run)
    assert run.status == WorkflowStatus.COMPLETED and run.data["connected"] is True
    assert list(run.step_executions.values_list("step_name", flat=True)) == ["wait_for_oauth"]


def test_gate_entered_by_goto_with_step_display_and_progress(dev):
    run = engine.start("ownership")
    run = dev.wait_until(run, lambda r: r.status == WorkflowStatus.SUSPENDED)
    assert run.current_step == "verify_ownership"
    assert run.progress == 0.5
    assert run.waiting_display["display_waiting_for"] == "Email verification"
    # The completed step's row keeps the display it had.
    row = run.step_executions.get(step_name="collect_details")
    assert row.display["display_title"] == "Property Details"
    assert row.display["field_groups"][0]["field_names"] == ["property_name", "property_type"]
    assert row.display["field_display_configs"][0]["display_component"] == "AmenitiesMultiSelect"

    assert engine.signal("event:ownership_verified") == 1
    run = dev.wait_until_finished(run)
    assert run.completion_display["display_subtitle"] == "Sea View is now live and ready for bookings"


def test_step_display_metadata_on_current_step(dev):
    run = engine.start("ownership")
    # While collect_details is current, its display is the step_display (checked from the spec).
    spec_display = run.spec["steps"]["collect_details"]["display"]
    assert spec_display["display_description"] == "Tell us about your property"
    first = WorkflowRun.objects.get(id=run.id).current_step_display
    assert first["current_step"] in ("collect_details", "verify_ownership")
    dev.wait_until(run, lambda r: r.status == WorkflowStatus.SUSPENDED)


def test_gates_in_both_decorator_orders_and_entered_by_timeout(dev):
    run = engine.start("gate_orders")
    run = dev.wait_until(
        run, lambda r: r.current_step == "gated_below" and r.status == WorkflowStatus.SUSPENDED, timeout=20
    )
    assert run.data["path"] == ["begin"]
    assert run.waiting_signal == "go_below"
    assert run.waiting_display == {"display_title": "Waiting below"}
    assert engine.signal("go_below") == 1
    # gated_short_timeout has no on_timeout: the run fails when its gate times out (semantics: "Wait timeouts").
    run = dev.wait_until_finished(run, timeout=20)
    assert run.status == WorkflowStatus.FAILED
    assert run.error == "timed out waiting for 'go_short'"
    assert run.data["path"] == ["begin", "gated_below"]

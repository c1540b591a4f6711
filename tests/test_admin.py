"""Admin pages list runs and link each to its history in the Temporal UI."""

from django.contrib.auth.models import User

from django_ai.automation.workflows.core import engine


def test_admin_lists_runs_with_temporal_link_and_steps(dev, client):
    run = dev.wait_until_finished(engine.start("order_fulfillment", order_id=3))
    User.objects.create_superuser("admin", "admin@example.com", "pw")
    client.login(username="admin", password="pw")

    listing = client.get("/admin/django_bridge/workflowrun/")
    assert listing.status_code == 200
    body = listing.content.decode()
    assert "order_fulfillment" in body
    assert f"/namespaces/default/workflows/{run.temporal_workflow_id}" in body

    page = client.get(f"/admin/django_bridge/workflowrun/{run.pk}/change/")
    assert page.status_code == 200
    text = page.content.decode()
    for step_name in ("confirm_payment", "reserve_inventory", "ship_order"):
        assert step_name in text


# ---------------------------------------------------------------------- read-only, and operations
import pytest  # noqa: E402
from django.contrib.admin import helpers  # noqa: E402
from temporalio.client import WorkflowExecutionStatus  # noqa: E402

from django_bridge.conf import automation_settings  # noqa: E402
from django_bridge.models import Event, WorkflowRun  # noqa: E402
from facade import WorkflowStatus  # noqa: E402
from temporal_worker import client as bridge  # noqa: E402

RUNS = "/admin/django_bridge/workflowrun/"


@pytest.fixture
def admin_client(client, transactional_db):
    User.objects.create_superuser("admin", "admin@example.com", "pw")
    client.login(username="admin", password="pw")
    return client


def temporal_status(dev, run) -> WorkflowExecutionStatus:
    async def describe(client):
        return (await client.get_workflow_handle(run.temporal_workflow_id).describe()).status

    return bridge.call("describe", describe)


def act(admin_client, action: str, runs, **extra):
    data = {"action": action, helpers.ACTION_CHECKBOX_NAME: [r.pk for r in runs], **extra}
    return admin_client.post(RUNS, data, follow=True)


def test_the_projection_is_read_only(dev, admin_client):
    run = dev.wait_until_finished(engine.start("order_fulfillment", order_id=4))
    assert admin_client.get(f"{RUNS}add/").status_code == 403
    page = admin_client.get(f"{RUNS}{run.pk}/change/")
    text = page.content.decode()
    assert page.status_code == 200 and "View workflow run" in text
    assert 'name="_save"' not in text
    assert 'name="step_executions-MAX_NUM_FORMS" value="0"' in text  # the inline offers no "Add another"
    assert 'name="status"' not in text and 'name="data"' not in text  # nothing engine-owned is a form field
    before = WorkflowRun.objects.filter(pk=run.pk).values().get()
    assert admin_client.post(f"{RUNS}{run.pk}/change/", {"status": "failed", "error": "x"}).status_code == 403
    assert WorkflowRun.objects.filter(pk=run.pk).values().get() == before
    assert admin_client.get("/admin/django_bridge/stepexecution/add/").status_code == 403

    event_type = Event._meta
    assert admin_client.get(f"/admin/{event_type.app_label}/{event_type.model_name}/add/").status_code == 403


def test_cancel_and_retry_actions(dev, admin_client):
    run = dev.wait_until(engine.start("approval"), lambda r: r.status == WorkflowStatus.SUSPENDED)
    response = act(admin_client, "cancel_runs", [run])
    assert "Cancelled 1 run" in response.content.decode()
    run.refresh_from_db()
    assert run.status == WorkflowStatus.CANCELLED and run.error == "cancelled in the admin by admin"

    failed = dev.wait_until_finished(engine.start("final_check", all_validations_passed=False))
    assert failed.status == WorkflowStatus.FAILED
    response = act(admin_client, "retry_runs", [failed, run])
    text = response.content.decode()
    assert "Retried 1 run" in text and f"run {run.pk}" in text and "only a failed or stuck run" in text
    dev.wait_until_finished(failed)


def test_signal_action_has_a_payload_form_checked_against_the_context(dev, admin_client):
    run = dev.wait_until(engine.start("signal_demo"), lambda r: r.waiting_signal == "go")
    page = act(admin_client, "signal_runs", [run])
    text = page.content.decode()
    assert "Send a signal" in text and 'value="go"' in text  # the signal it waits on, prefilled

    bad = act(admin_client, "signal_runs", [run], apply="1", signal="go", payload='{"count": "lots"}')
    assert "does not fit the Context" in bad.content.decode()
    assert act(admin_client, "signal_runs", [run], apply="1", signal="go", payload="[1]").status_code == 200
    assert WorkflowRun.objects.get(pk=run.pk).status == WorkflowStatus.SUSPENDED

    done = act(admin_client, "signal_runs", [run], apply="1", signal="go", payload='{"who": "Ann", "cont": 1}')
    text = done.content.decode()
    assert (
        "Signal &#x27;go&#x27; reached 1 of the 1 selected runs" in text
        and "ignored payload keys (not Context fields): cont" in text
    )
    assert dev.wait_until_finished(run).data["who"] == "Ann"


def test_deleting_a_run_ends_its_workflow_first(dev, admin_client):
    run = dev.wait_until(engine.start("approval"), lambda r: r.status == WorkflowStatus.SUSPENDED)
    confirm = admin_client.get(f"{RUNS}{run.pk}/delete/")
    assert confirm.status_code == 200
    admin_client.post(f"{RUNS}{run.pk}/delete/", {"post": "yes"})
    assert not WorkflowRun.objects.filter(pk=run.pk).exists()
    assert temporal_status(dev, run) == WorkflowExecutionStatus.TERMINATED

    finished = dev.wait_until_finished(engine.start("order_fulfillment", order_id=5))
    waiting = dev.wait_until(engine.start("approval"), lambda r: r.status == WorkflowStatus.SUSPENDED)
    act(admin_client, "delete_selected", [finished, waiting], post="yes")
    assert not WorkflowRun.objects.filter(pk__in=[finished.pk, waiting.pk]).exists()
    assert temporal_status(dev, waiting) == WorkflowExecutionStatus.TERMINATED
    assert temporal_status(dev, finished) == WorkflowExecutionStatus.COMPLETED


def test_deleting_while_temporal_is_unreachable_deletes_nothing(dev, admin_client):
    run = dev.wait_until(engine.start("approval"), lambda r: r.status == WorkflowStatus.SUSPENDED)
    saved = dict(automation_settings.overrides)
    automation_settings.overrides["TEMPORAL_ADDRESS"] = "127.0.0.1:1"
    bridge.set_client(None)
    try:
        page = admin_client.post(f"{RUNS}{run.pk}/delete/", {"post": "yes"}, follow=True)
        assert "Nothing was deleted" in page.content.decode()
        act_page = act(admin_client, "delete_selected", [run], post="yes")
        assert "Nothing was deleted" in act_page.content.decode()
    finally:
        automation_settings.overrides.clear()
        automation_settings.overrides.update(saved)
        dev.activate()
    assert WorkflowRun.objects.get(pk=run.pk).status == WorkflowStatus.SUSPENDED

"""Action steps over HTTP: POST <prefix>/actions/<name>/, against the real dev server and worker.

Every status code of the endpoint: 200 (the step ran, answer = the run's new display),
400 (invalid fields, run untouched), 401/403 (authentication, permissions), 404 (unknown run
or action), 409 (the run is not waiting at that action), and the schema listing.
"""

from __future__ import annotations

import base64
import json
import threading

import pytest
from django.contrib.auth.models import User
from django.test import override_settings
from pydantic import BaseModel
from rest_framework import serializers
from rest_framework.test import APIClient

from django_ai.automation.workflows.core import engine, step, workflow
from django_ai.automation.workflows.statezero_action import statezero_action, submit_action
from facade import RunStateError, WorkflowDefinitionError, registry
from temporal_worker import client as bridge

ACTIONS = "/statezero/actions/"
REVIEW = {"reviewer_notes": "Approved", "priority": "high"}


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def user(transactional_db):
    return User.objects.create_user("alice", password="pw")


@pytest.fixture
def admin(transactional_db):
    return User.objects.create_superuser("root", password="pw")


@pytest.fixture
def api(user):
    client = APIClient()
    client.force_login(user)
    return client


@pytest.fixture
def admin_api(admin):
    client = APIClient()
    client.force_login(admin)
    return client


def start_at_action(dev, name, step, **kwargs):
    run = engine.start(name, **kwargs)
    return dev.wait_until(run, lambda r: r.status == "suspended" and r.current_step == step)


def post(client, action, **body):
    return client.post(f"{ACTIONS}{action}/", body, format="json")


# ---------------------------------------------------------------------- 200
def test_guide_statezero_example_runs_as_written(dev, api):
    run = start_at_action(dev, "expense_approval", "await_review")
    assert run.current_step_display["step_type"] == "action"
    assert run.current_step_display["action_name"] == "submit_review"

    # POST /statezero/actions/submit_review/
    # {"workflow_run_id": 123, "reviewer_notes": "Approved", "priority": "high"}
    resp = post(api, "submit_review", workflow_run_id=run.pk, **REVIEW)

    assert resp.status_code == 200, resp.content
    display = resp.json()
    assert display["status"] == "completed"
    assert display["completion_display"] == {
        "display_title": "Review Complete",
        "display_subtitle": "Expense has been reviewed",
    }
    run.refresh_from_db()
    assert run.status == "completed"
    assert run.data == {"reviewer_notes": "Approved", "priority": "high"}
    assert display == run.current_step_display
    assert list(run.step_executions.values_list("step_name", "status")) == [
        ("start_review", "completed"),
        ("await_review", "completed"),
    ]


def test_answer_is_the_display_once_the_run_blocks_again(dev, api):
    """property_onboarding: the action leads to a wait; the answer shows the waiting screen."""
    run = start_at_action(dev, "property_onboarding", "collect_details")
    resp = post(api, "property_details", workflow_run_id=run.pk, property_name="Sea View", property_type="cabin")
    assert resp.status_code == 200, resp.content
    display = resp.json()
    assert display["status"] == "suspended"
    assert display["current_step"] == "verify_ownership"
    assert display["step_type"] == "waiting"
    assert display["waiting_display"]["display_title"] == "Verifying Ownership"
    assert engine.signal("event:ownership_verified") == 1
    run = dev.wait_until_finished(run)
    assert run.completion_display["display_subtitle"] == "Sea View is now live and ready for bookings"


def test_comprehensive_example_and_progress(dev, api):
    run = start_at_action(dev, "comprehensive_workflow", "collect_info")
    resp = post(api, "collect_info", workflow_run_id=run.pk, user_name="Ann")
    assert resp.status_code == 200, resp.content
    assert resp.json()["current_step"] in ("process", "wait_for_confirmation")
    run = dev.wait_until(run, lambda r: r.status == "suspended")
    assert run.progress == pytest.approx(0.67)
    engine.signal("event:confirmation_received")
    run = dev.wait_until_finished(run)
    assert run.completion_display == {
        "display_title": "All Done, Ann!",
        "display_subtitle": "Successfully processed 42 items",
    }


def test_action_at_the_start_step_submitted_at_once(dev, api, admin_api):
    """The projection says "waiting" before the workflow does: the submission still lands."""
    run = engine.start("two_step_approval")
    resp = post(api, "add_note", workflow_run_id=run.pk, note="first")
    assert resp.status_code == 200, resp.content
    # response_serializer: the run, shaped by RunSummarySerializer
    assert resp.json() == {"id": run.pk, "status": "suspended", "note": "first"}
    resp = post(admin_api, "decide", workflow_run_id=run.pk, approved=True, amount="12.5")
    assert resp.status_code == 200, resp.content
    assert resp.json()["completion_display"] == {"display_title": "Approved"}
    run.refresh_from_db()
    # DecimalField: the step received the serializer's JSON form
    assert run.data == {"note": "first", "approved": True, "amount": "12.50"}


def test_failing_step_answers_with_the_failed_display(dev, api):
    run = start_at_action(dev, "broken_action", "explode")
    resp = post(api, "break_it", workflow_run_id=run.pk, note="x")
    assert resp.status_code == 200, resp.content
    assert resp.json()["status"] == "failed"
    run.refresh_from_db()
    assert run.status == "failed"
    assert "cannot handle 'x'" in run.error
    # A known pitfall: the update handler must not fail workflow tasks while the step fails.
    history = dev.history(run)
    assert not [e for e in history.events if "WORKFLOW_TASK_FAILED" in str(e.event_type)]


def test_submit_action_from_python(dev):
    run = start_at_action(dev, "expense_approval", "await_review")
    result = submit_action(run.pk, "submit_review", REVIEW)
    assert result.answered and result.display["status"] == "completed"
    with pytest.raises(RunStateError, match="completed"):
        submit_action(run.pk, "submit_review", REVIEW)


# ---------------------------------------------------------------------- 400
def test_invalid_fields_are_400_per_field_and_leave_the_run_untouched(dev, api):
    run = start_at_action(dev, "expense_approval", "await_review")
    before = (run.status, run.current_step, run.data, run.step_executions.count())

    resp = post(api, "submit_review", workflow_run_id=run.pk, reviewer_notes="x" * 501, priority="urgent")
    assert resp.status_code == 400
    errors = resp.json()
    assert set(errors) == {"reviewer_notes", "priority"}
    assert "500" in errors["reviewer_notes"][0]
    assert "not a valid choice" in errors["priority"][0]

    resp = post(api, "submit_review", priority="low")
    assert resp.status_code == 400
    assert set(resp.json()) == {"workflow_run_id", "reviewer_notes"}

    resp = api.post(f"{ACTIONS}submit_review/", [1, 2], format="json")
    assert resp.status_code == 400 and "non_field_errors" in resp.json()

    resp = api.post(f"{ACTIONS}submit_review/", "{not json", content_type="application/json")
    assert resp.status_code == 400

    run.refresh_from_db()
    assert (run.status, run.current_step, run.data, run.step_executions.count()) == before
    # The run still takes a valid submission.
    assert post(api, "submit_review", workflow_run_id=run.pk, **REVIEW).status_code == 200


# ---------------------------------------------------------------------- 404
def test_unknown_run_or_action_is_404(dev, api):
    assert post(api, "submit_review", workflow_run_id=987654, **REVIEW).status_code == 404
    assert post(api, "submit_review", workflow_run_id=10**30, **REVIEW).status_code == 404
    assert post(api, "submit_review", workflow_run_id=-1, **REVIEW).status_code == 404
    resp = post(api, "no_such_action", workflow_run_id=1)
    assert resp.status_code == 404
    assert "no_such_action" in resp.json()["detail"]


# ---------------------------------------------------------------------- 409
def test_not_waiting_at_that_action_is_409(dev, api, admin_api):
    run = start_at_action(dev, "two_step_approval", "take_note")
    # the wrong step of the right workflow
    resp = post(admin_api, "decide", workflow_run_id=run.pk, approved=True)
    assert resp.status_code == 409, resp.content
    body = resp.json()
    assert body["error"] == "RunStateError" and "add_note" in body["detail"]
    assert body["display"]["action_name"] == "add_note"
    # an action of another workflow
    resp = post(api, "submit_review", workflow_run_id=run.pk, **REVIEW)
    assert resp.status_code == 409 and "expense_approval" in resp.json()["detail"]
    run.refresh_from_db()
    assert run.status == "suspended" and run.current_step == "take_note"


def test_finished_and_cancelled_runs_are_409(dev, api):
    done = start_at_action(dev, "expense_approval", "await_review")
    assert post(api, "submit_review", workflow_run_id=done.pk, **REVIEW).status_code == 200
    resp = post(api, "submit_review", workflow_run_id=done.pk, **REVIEW)
    assert resp.status_code == 409 and "completed" in resp.json()["detail"]

    cancelled = start_at_action(dev, "expense_approval", "await_review")
    engine.cancel(cancelled.pk, "changed my mind")
    resp = post(api, "submit_review", workflow_run_id=cancelled.pk, **REVIEW)
    assert resp.status_code == 409 and "cancelled" in resp.json()["detail"]


def test_workflow_closed_behind_the_projection_is_409(dev, api):
    """Temporal is the authority: a terminated workflow refuses the update though the row says waiting."""
    run = start_at_action(dev, "expense_approval", "await_review")
    bridge.run_sync(dev.client.get_workflow_handle(run.temporal_workflow_id).terminate(reason="test"), timeout=30)
    run.refresh_from_db()
    assert run.status == "suspended"  # the projection does not know
    resp = post(api, "submit_review", workflow_run_id=run.pk, **REVIEW)
    assert resp.status_code == 409, resp.content
    assert "no longer running" in resp.json()["detail"]


def test_two_submissions_at_once_one_wins(dev, user):
    run = start_at_action(dev, "expense_approval", "await_review")
    barrier = threading.Barrier(2)
    codes: list[int] = []

    def submit(notes: str) -> None:
        client = APIClient()
        client.force_login(user)
        barrier.wait()
        codes.append(
            post(client, "submit_review", workflow_run_id=run.pk, reviewer_notes=notes, priority="low").status_code
        )

    threads = [threading.Thread(target=submit, args=(n,)) for n in ("one", "two")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(codes) == [200, 409]
    run.refresh_from_db()
    assert run.status == "completed" and run.step_executions.filter(step_name="await_review").count() == 1


# ---------------------------------------------------------------------- 401 / 403
def test_anonymous_is_refused(dev):
    run = start_at_action(dev, "expense_approval", "await_review")
    anonymous = APIClient()
    # Session authentication first (DRF's default): 403.
    assert post(anonymous, "submit_review", workflow_run_id=run.pk, **REVIEW).status_code == 403
    with override_settings(
        AUTOMATION_API={"AUTHENTICATION_CLASSES": ["rest_framework.authentication.BasicAuthentication"]}
    ):
        resp = post(anonymous, "submit_review", workflow_run_id=run.pk, **REVIEW)
        assert resp.status_code == 401
        assert resp["WWW-Authenticate"].startswith("Basic")
        anonymous.credentials(HTTP_AUTHORIZATION="Basic " + base64.b64encode(b"alice:wrong").decode())
        assert post(anonymous, "submit_review", workflow_run_id=run.pk, **REVIEW).status_code == 401
    run.refresh_from_db()
    assert run.status == "suspended"


def test_action_permissions_are_403(dev, api, admin_api, user):
    run = engine.start("two_step_approval")
    assert post(api, "add_note", workflow_run_id=run.pk, note="n").status_code == 200
    # decide has permissions=[IsAdminUser]
    resp = post(api, "decide", workflow_run_id=run.pk, approved=False)
    assert resp.status_code == 403
    run.refresh_from_db()
    assert run.status == "suspended" and run.current_step == "decide"
    resp = post(admin_api, "decide", workflow_run_id=run.pk, approved=False)
    assert resp.status_code == 200 and resp.json()["completion_display"]["display_title"] == "Rejected"


# ---------------------------------------------------------------------- schema
def test_actions_schema_lists_fields_and_display(dev, api):
    resp = api.get("/statezero/actions-schema/")
    assert resp.status_code == 200
    actions = {a["name"]: a for a in resp.json()["actions"]}
    assert {"submit_review", "collect_property_info", "property_details", "collect_info"} <= set(actions)

    review = actions["submit_review"]
    assert (review["workflow"], review["step"], review["url"]) == (
        "expense_approval",
        "await_review",
        "/statezero/actions/submit_review/",
    )
    assert review["run_field"] == "workflow_run_id"
    fields = {f["name"]: f for f in review["fields"]}
    assert list(fields) == ["reviewer_notes", "priority"]  # workflow_run_id is the run, not a form field
    assert (
        fields["reviewer_notes"].items()
        >= {"type": "string", "required": True, "max_length": 500, "group": "Review Details"}.items()
    )
    assert fields["priority"]["type"] == "choice"
    assert [c["value"] for c in fields["priority"]["choices"]] == ["low", "medium", "high"]
    assert review["display"]["display_title"] == "Review Expense"
    assert review["display"]["field_groups"][0]["field_names"] == ["reviewer_notes", "priority"]

    prop = {f["name"]: f for f in actions["collect_property_info"]["fields"]}
    assert prop["email"]["type"] == "email" and prop["email"]["group"] == "Contact Details"
    assert prop["bedrooms"]["type"] == "integer" and prop["bedrooms"]["group"] == "Property Information"
    amenities = prop["amenities"]
    assert amenities["type"] == "list" and amenities["group"] is None
    assert amenities["display_config"] == {
        "field_name": "amenities",
        "display_component": "AmenitiesMultiSelect",
        "filter_queryset": {"is_active": True, "category": "essential"},
        "display_help_text": "Select all amenities that apply",
    }
    assert amenities["help_text"] == "Select all amenities that apply"
    assert {f["name"]: f for f in actions["collect_info"]["fields"]}["user_name"][
        "help_text"
    ] == "How we should greet you"

    one = api.get("/statezero/actions-schema/submit_review/")
    assert one.status_code == 200 and one.json() == review
    assert api.get("/statezero/actions-schema/nope/").status_code == 404
    only = api.get("/statezero/actions-schema/?workflow=expense_approval").json()["actions"]
    assert [a["name"] for a in only] == ["submit_review"]
    assert APIClient().get("/statezero/actions-schema/").status_code == 403


# ---------------------------------------------------------------------- decoration time
class _S(serializers.Serializer):
    workflow_run_id = serializers.IntegerField()


def test_action_names_are_unique_across_workflows():
    with registry.isolated():

        @workflow("dup_action_one")
        class One:
            class Context(BaseModel):
                pass

            @statezero_action(name="dup_action_test", serializer=_S)
            @step(start=True)
            def first(self):
                pass

        with pytest.raises(WorkflowDefinitionError) as err:

            class Two:
                @statezero_action(name="dup_action_test", serializer=_S)
                @step(start=True)
                def second(self):
                    pass

        message = str(err.value)
        assert "dup_action_test" in message
        assert "One.first" in message and "Two.second" in message


def test_decorator_misuse_is_reported_at_decoration_time():
    with pytest.raises(WorkflowDefinitionError, match="Serializer class"):
        statezero_action(name="bad_serializer", serializer=_S())(step()(lambda self: None))
    with pytest.raises(WorkflowDefinitionError, match=r"above @step"):
        statezero_action(name="not_a_step", serializer=_S)(lambda self: None)
    with pytest.raises(WorkflowDefinitionError, match="permission classes"):
        statezero_action(name="bad_perms", serializer=_S, permissions="admin")(step()(lambda self: None))


def test_action_with_atomic_requests(dev, api):
    """The endpoint must not hold a transaction while the worker writes the projection."""
    from django.db import connections

    run = start_at_action(dev, "expense_approval", "await_review")
    settings_dict = connections["default"].settings_dict
    settings_dict["ATOMIC_REQUESTS"] = True
    try:
        resp = post(api, "submit_review", workflow_run_id=run.pk, **REVIEW)
    finally:
        settings_dict["ATOMIC_REQUESTS"] = False
    assert resp.status_code == 200 and resp.json()["status"] == "completed"


# ---------------------------------------------------------------------- no serializer; the request parameter
def test_action_without_serializer_is_a_confirm_button_and_its_step_gets_the_request(dev, api, user):
    schema = api.get("/statezero/actions-schema/confirm_order/")
    assert schema.status_code == 200
    assert (schema.json()["fields"], schema.json()["step_title"]) == ([], "Confirm the order")
    openapi = api.get("/statezero/schema/?format=json").json()
    body = openapi["paths"]["/statezero/actions/confirm_order/"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/NoFieldsActionRequest"}
    assert list(openapi["components"]["schemas"]["NoFieldsActionRequest"]["properties"]) == ["workflow_run_id"]

    run = start_at_action(dev, "order_confirmation", "confirm")
    assert post(api, "confirm_order").json() == {"workflow_run_id": ["This field is required."]}
    resp = post(api, "confirm_order", workflow_run_id=run.pk)
    assert resp.status_code == 200, resp.content
    run = dev.wait_until_finished(run)
    assert run.status == "completed", run.error
    assert run.data == {
        "had_request": True,
        "confirmed_by": "alice",
        "user_id": user.pk,
        "method": "POST",
        "request_data": {},
    }
    # Only the user's key entered Temporal, beside the action's fields.
    updates = [
        e.workflow_execution_update_accepted_event_attributes.accepted_request.input.args.payloads[0].data
        for e in dev.history(run).events
        if e.HasField("workflow_execution_update_accepted_event_attributes")
    ]
    assert [json.loads(u) for u in updates] == [
        {"action": "confirm_order", "args": {}, "submitter": {"user_pk": user.pk}}
    ]

    # History rows carry how each step showed when it ran (the runs API and the run page use it).
    steps = api.get(f"/statezero/runs/{run.pk}/").json()["steps"]
    assert [(s["step_name"], s["step_display"]) for s in steps] == [
        ("confirm", {"step_title": "Confirm the order", "visible": True, "step_type": "action"}),
        ("bookkeeping", {"step_title": "bookkeeping", "visible": False, "step_type": "automated"}),
    ]


def test_request_parameter_without_a_request_or_anonymous(dev):
    from django.contrib.auth.models import AnonymousUser

    from facade import InvalidInputError

    run = start_at_action(dev, "order_confirmation", "confirm")
    with pytest.raises(InvalidInputError, match="takes a user"):
        submit_action(run.pk, "confirm_order", user=7)
    submit_action(run.pk, "confirm_order")
    run = dev.wait_until_finished(run)
    assert run.data["had_request"] is False and run.data["confirmed_by"] == ""

    anonymous = start_at_action(dev, "order_confirmation", "confirm")
    submit_action(anonymous.pk, "confirm_order", {}, user=AnonymousUser())
    anonymous = dev.wait_until_finished(anonymous)
    assert (anonymous.data["confirmed_by"], anonymous.data["user_id"]) == ("anonymous", None)


def test_request_parameter_misuse_is_reported_at_decoration_time():
    class RequestField(serializers.Serializer):
        workflow_run_id = serializers.IntegerField()
        request = serializers.CharField()

    with registry.isolated():
        with pytest.raises(WorkflowDefinitionError, match="only action steps receive"):

            @workflow("request_without_action")
            class NoAction:
                class Context(BaseModel):
                    pass

                @step(start=True)
                def begin(self, request):
                    pass

        with pytest.raises(WorkflowDefinitionError, match="rename the serializer field"):

            @workflow("request_field_clash")
            class Clash:
                class Context(BaseModel):
                    pass

                @statezero_action(name="request_field_clash", serializer=RequestField)
                @step(start=True)
                def begin(self, request=None):
                    pass

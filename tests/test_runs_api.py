"""The runs API (list, filter, detail, start, signal, cancel, retry), its permission hooks and
its OpenAPI document, against the real dev server and worker."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import override_settings
from rest_framework.test import APIClient

from django_ai.automation.workflows.core import engine
from django_bridge.api.permissions import IsRunOwner

RUNS = "/statezero/runs/"
OWNER_HOOKS = {
    "RUN_QUERYSET": "django_bridge.api.permissions.owner_runs",
    "START_KWARGS": "django_bridge.api.permissions.owner_start_kwargs",
}


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def login(user):
    client = APIClient()
    client.force_login(user)
    return client


@pytest.fixture
def alice(transactional_db):
    return User.objects.create_user("alice", password="pw")


@pytest.fixture
def bob(transactional_db):
    return User.objects.create_user("bob", password="pw")


@pytest.fixture
def api(alice):
    return login(alice)


# ---------------------------------------------------------------------- start, detail, list
def test_start_then_detail_with_display_and_history(dev, api):
    resp = api.post(RUNS, {"name": "expense_approval"}, format="json")
    assert resp.status_code == 201, resp.content
    body = resp.json()
    run_id = body["id"]
    assert body["name"] == "expense_approval"
    assert body["page_url"] == f"/statezero/ui/runs/{run_id}/"
    dev.wait_until(run_id, lambda r: r.current_step == "await_review")

    detail = api.get(f"{RUNS}{run_id}/").json()
    assert detail["status"] == "suspended"
    assert detail["current_step_display"]["action_name"] == "submit_review"
    assert detail["current_step_display"]["step_display"]["display_title"] == "Review Expense"
    assert [s["step_name"] for s in detail["steps"]] == ["start_review"]
    assert detail["temporal_workflow_id"].startswith("expense_approval-")
    assert api.get(f"{RUNS}{run_id}/display/").json() == detail["current_step_display"]


def test_start_errors_are_400_with_the_library_message(dev, api):
    resp = api.post(RUNS, {"name": "no_such_workflow"}, format="json")
    assert resp.status_code == 400 and "name" in resp.json()
    resp = api.post(RUNS, {"name": "signal_demo", "kwargs": {"count": "many"}}, format="json")
    assert resp.status_code == 400
    body = resp.json()
    assert body["error"] == "InvalidInputError" and "count" in body["detail"] and body["workflow"] == "signal_demo"
    resp = api.post(RUNS, {"name": "signal_demo", "kwargs": [1]}, format="json")
    assert resp.status_code == 400 and "kwargs" in resp.json()
    resp = api.post(RUNS, {"name": "signal_demo", "kwargs": {"who": "a\x00b"}}, format="json")
    assert resp.status_code == 400


def test_list_and_filters(dev, api):
    waiting = engine.start("signal_demo", who="x")
    review = engine.start("expense_approval")
    dev.wait_until(waiting, lambda r: r.waiting_signal == "go")
    dev.wait_until(review, lambda r: r.current_step == "await_review")

    def ids(query=""):
        resp = api.get(f"{RUNS}{query}")
        assert resp.status_code == 200, resp.content
        return {r["id"] for r in resp.json()["results"]}

    assert {waiting.pk, review.pk} <= ids()
    assert ids("?waiting_signal=go") == {waiting.pk}
    assert ids("?name=expense_approval") == {review.pk}
    assert ids("?status=suspended,waiting") >= {waiting.pk, review.pk}
    assert ids("?status=completed") & {waiting.pk, review.pk} == set()
    assert ids("?parent=none") >= {waiting.pk, review.pk}
    assert api.get(f"{RUNS}?status=sleeping").status_code == 400
    assert api.get(f"{RUNS}?parent=abc").status_code == 400
    page = api.get(f"{RUNS}?page_size=1").json()
    assert page["count"] >= 2 and len(page["results"]) == 1 and page["next"]


def test_unknown_runs_are_404(dev, api):
    assert api.get(f"{RUNS}424242/").status_code == 404
    assert api.get(f"{RUNS}{10**30}/").status_code == 404
    assert api.post(f"{RUNS}424242/cancel/", {}, format="json").status_code == 404
    assert api.post(f"{RUNS}424242/retry/", {}, format="json").status_code == 404
    assert api.post(f"{RUNS}424242/signal/", {"signal": "go"}, format="json").status_code == 404


def test_authentication_is_required(dev):
    anonymous = APIClient()
    assert anonymous.get(RUNS).status_code == 403
    assert anonymous.post(RUNS, {"name": "signal_demo"}, format="json").status_code == 403
    with override_settings(
        AUTOMATION_API={"AUTHENTICATION_CLASSES": ["rest_framework.authentication.BasicAuthentication"]}
    ):
        assert anonymous.get(RUNS).status_code == 401


# ---------------------------------------------------------------------- signal, cancel, retry
def test_signal_one_run_and_bad_payloads(dev, api):
    run = engine.start("signal_demo")
    dev.wait_until(run, lambda r: r.waiting_signal == "go")
    resp = api.post(f"{RUNS}{run.pk}/signal/", {"signal": "go", "payload": {"count": "lots"}}, format="json")
    assert resp.status_code == 400 and resp.json()["error"] == "SignalPayloadError"
    assert api.post(f"{RUNS}{run.pk}/signal/", {"payload": {}}, format="json").status_code == 400
    assert api.post(f"{RUNS}{run.pk}/signal/", {"signal": "other"}, format="json").json() == {
        "reached": 0,
        "ignored_keys": [],
    }

    resp = api.post(f"{RUNS}{run.pk}/signal/", {"signal": "go", "payload": {"who": "Jane", "count": 2}}, format="json")
    assert resp.status_code == 200 and resp.json() == {"reached": 1, "ignored_keys": []}
    run = dev.wait_until_finished(run)
    assert run.data == {"who": "Jane", "count": 2}
    assert run.completion_display["display_title"] == "Went with Jane"


def test_broadcast_signal(dev, api):
    runs = [engine.start("signal_demo") for _ in range(2)]
    for run in runs:
        dev.wait_until(run, lambda r: r.waiting_signal == "go")
    resp = api.post(f"{RUNS}signal/", {"signal": "go", "payload": {"who": "all"}}, format="json")
    assert resp.status_code == 200 and resp.json()["reached"] >= 2
    for run in runs:
        assert dev.wait_until_finished(run).data["who"] == "all"


def test_cancel_and_retry(dev, api):
    run = engine.start("expense_approval")
    dev.wait_until(run, lambda r: r.current_step == "await_review")
    resp = api.post(f"{RUNS}{run.pk}/cancel/", {"reason": "duplicate"}, format="json")
    assert resp.status_code == 200, resp.content
    assert resp.json()["status"] == "cancelled" and resp.json()["error"] == "duplicate"
    assert api.post(f"{RUNS}{run.pk}/cancel/", {}, format="json").status_code == 200  # no-op on a finished run
    resp = api.post(f"{RUNS}{run.pk}/retry/", {}, format="json")
    assert resp.status_code == 409 and resp.json()["error"] == "RunStateError"

    broken = engine.start("broken_action")
    dev.wait_until(broken, lambda r: r.status == "suspended")
    assert (
        api.post("/statezero/actions/break_it/", {"workflow_run_id": broken.pk, "note": "n"}, format="json").json()[
            "status"
        ]
        == "failed"
    )
    resp = api.post(f"{RUNS}{broken.pk}/retry/", {}, format="json")
    assert resp.status_code == 200, resp.content
    assert resp.json()["status"] == "suspended" and resp.json()["current_step"] == "explode"


# ---------------------------------------------------------------------- permission hooks
@override_settings(AUTOMATION_API=OWNER_HOOKS)
def test_runs_scoped_to_their_owner(dev, alice, bob):
    as_alice, as_bob = login(alice), login(bob)
    resp = as_alice.post(RUNS, {"name": "owned_task", "kwargs": {"owner_id": bob.pk}}, format="json")
    assert resp.status_code == 201, resp.content
    run_id = resp.json()["id"]
    assert resp.json()["data"]["owner_id"] == alice.pk  # START_KWARGS: the caller owns it
    dev.wait_until(run_id, lambda r: r.status == "suspended")

    assert run_id in {r["id"] for r in as_alice.get(RUNS).json()["results"]}
    assert run_id not in {r["id"] for r in as_bob.get(RUNS).json()["results"]}
    assert as_bob.get(f"{RUNS}{run_id}/").status_code == 404
    assert as_bob.post(f"{RUNS}{run_id}/cancel/", {}, format="json").status_code == 404
    assert (
        as_bob.post(
            "/statezero/actions/finish_owned_task/", {"workflow_run_id": run_id, "note": "mine"}, format="json"
        ).status_code
        == 404
    )
    assert as_bob.get(f"/statezero/ui/runs/{run_id}/").status_code == 404

    staff = User.objects.create_user("staff", password="pw", is_staff=True)
    assert login(staff).get(f"{RUNS}{run_id}/").status_code == 200
    resp = as_alice.post(
        "/statezero/actions/finish_owned_task/", {"workflow_run_id": run_id, "note": "mine"}, format="json"
    )
    assert resp.status_code == 200 and resp.json()["status"] == "completed"


def test_object_permission_class_answers_403(dev, alice, bob):
    hooks = {
        "PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated", IsRunOwner],
        "START_KWARGS": OWNER_HOOKS["START_KWARGS"],
    }
    with override_settings(AUTOMATION_API=hooks):
        run_id = login(alice).post(RUNS, {"name": "owned_task"}, format="json").json()["id"]
        dev.wait_until(run_id, lambda r: r.status == "suspended")
        as_bob = login(bob)
        assert as_bob.get(f"{RUNS}{run_id}/").status_code == 403
        assert (
            as_bob.post(
                "/statezero/actions/finish_owned_task/", {"workflow_run_id": run_id, "note": "x"}, format="json"
            ).status_code
            == 403
        )
        assert login(alice).get(f"{RUNS}{run_id}/").status_code == 200


def test_unknown_api_setting_is_reported(api):
    from django.core.exceptions import ImproperlyConfigured

    with (
        override_settings(AUTOMATION_API={"PERMISSION_CLASS": []}),
        pytest.raises(ImproperlyConfigured, match="PERMISSION_CLASSES"),
    ):
        api.get(RUNS)


# ---------------------------------------------------------------------- OpenAPI
def test_openapi_document(dev, api):
    resp = api.get("/statezero/schema/", {"format": "json"})
    assert resp.status_code == 200, resp.content
    doc = resp.json()
    assert doc["openapi"].startswith("3.")
    paths = doc["paths"]
    for p in [
        "/statezero/runs/",
        "/statezero/runs/{id}/",
        "/statezero/runs/{id}/signal/",
        "/statezero/runs/{id}/cancel/",
        "/statezero/runs/{id}/retry/",
        "/statezero/runs/signal/",
        "/statezero/actions-schema/",
        "/statezero/actions/submit_review/",
    ]:
        assert p in paths, p
    review = paths["/statezero/actions/submit_review/"]["post"]
    body = review["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    props = doc["components"]["schemas"][body]["properties"]
    assert set(props) == {"workflow_run_id", "reviewer_notes", "priority"}
    assert {"200", "400", "404", "409"} <= set(review["responses"])
    # Status enums under their own names (not drf-spectacular's collision fallback "Status015Enum").
    enums = {name for name in doc["components"]["schemas"] if name.endswith("Enum")}
    assert {"WorkflowStatusEnum", "StepStatusEnum", "EventStatusEnum"} <= enums
    assert not [name for name in enums if any(ch.isdigit() for ch in name)]
    assert APIClient().get("/statezero/schema/").status_code == 403


def test_api_docs_page_shows_the_document_in_swagger_ui(api):
    page = api.get("/statezero/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    # Swagger UI's own files, served by Django (drf-spectacular-sidecar): no network needed.
    assert 'src="/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js"' in html
    assert '"schema_url": "/statezero/schema/?format=json"' in html
    assert 'href="/statezero/schema/?format=json"' in html  # and the raw document, one link away
    assert '"csrf_header": "X-CSRFTOKEN"' in html

    with override_settings(INSTALLED_APPS=[app for app in settings.INSTALLED_APPS if app != "drf_spectacular_sidecar"]):
        html = api.get("/statezero/docs/").content.decode()
    assert 'src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@latest/swagger-ui-bundle.js"' in html
    assert 'id="docs-unavailable"' in html  # what the page says when those cannot load

    anonymous = APIClient().get("/statezero/docs/")
    assert anonymous.status_code == 302 and anonymous["Location"].endswith("?next=/statezero/docs/")


# ---------------------------------------------------------------------- the run page (HTML)
def test_run_page_and_runs_page(dev, api, alice):
    run = engine.start("expense_approval")
    page = api.get(f"/statezero/ui/runs/{run.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="run-config"' in html and f'"run_url": "/statezero/runs/{run.pk}/"' in html
    assert "django_bridge/run.js" in html and "csrf" in html.lower()
    assert api.get("/statezero/ui/runs/999999/").status_code == 404
    listing = api.get("/statezero/ui/")
    assert listing.status_code == 200 and f"/statezero/ui/runs/{run.pk}/" in listing.content.decode()
    assert api.get("/statezero/ui/?status=bogus").status_code == 200

    anonymous = APIClient().get(f"/statezero/ui/runs/{run.pk}/")
    assert anonymous.status_code == 302 and "next=" in anonymous["Location"]
    with override_settings(AUTOMATION_API={"PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"]}):
        assert api.get(f"/statezero/ui/runs/{run.pk}/").status_code == 403

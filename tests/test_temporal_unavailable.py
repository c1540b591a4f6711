"""Temporal unreachable: every engine call raises the one TemporalUnavailableError and changes nothing.

The HTTP API answers 503 with the library's error body, ``manage.py send_signal`` prints one line
and exits non-zero, and the run row stays as it was (a failed cancel writes nothing).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from django_ai.automation.workflows.core import engine
from django_bridge.conf import automation_settings
from django_bridge.models import StepExecution, WorkflowRun
from facade import TemporalUnavailableError, WorkflowStatus
from temporal_worker import client as bridge
from temporal_worker.actions import submit_action

ROOT = Path(__file__).resolve().parent.parent
UNREACHABLE = "127.0.0.1:1"
ROW_FIELDS = ("status", "error", "current_step", "waiting_signal", "wait_seq", "data", "updated_at", "finished_at")


@pytest.fixture
def unreachable(dev):
    """Point the engine (not the test's worker) at a closed port; restore the test server after."""
    saved = dict(automation_settings.overrides)

    def go_dark() -> None:
        automation_settings.overrides["TEMPORAL_ADDRESS"] = UNREACHABLE
        bridge.set_client(None)

    try:
        yield go_dark
    finally:
        automation_settings.overrides.clear()
        automation_settings.overrides.update(saved)
        dev.activate()


def row(run: WorkflowRun) -> dict:
    return WorkflowRun.objects.filter(pk=run.pk).values(*ROW_FIELDS).get()


def assert_unavailable_body(resp) -> None:
    assert resp.status_code == 503, resp.content
    body = resp.json()
    assert body["error"] == "TemporalUnavailableError"
    assert set(body) >= {"detail", "error", "workflow", "run_id", "step"}
    assert UNREACHABLE in body["detail"] and "temporal server start-dev" in body["detail"], body["detail"]
    assert "\n" not in body["detail"]


def test_every_endpoint_answers_503_and_changes_nothing(dev, unreachable):
    run = dev.wait_until(engine.start("approval"), lambda r: r.status == WorkflowStatus.SUSPENDED)
    action_run = dev.wait_until(engine.start("two_step_approval"), lambda r: r.status == WorkflowStatus.SUSPENDED)
    api = APIClient()
    api.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    before = row(run), row(action_run)

    unreachable()
    assert_unavailable_body(api.post("/statezero/runs/signal/", {"signal": "manager_approval"}, format="json"))
    assert_unavailable_body(
        api.post(f"/statezero/runs/{run.pk}/signal/", {"signal": "manager_approval"}, format="json")
    )
    assert_unavailable_body(api.post(f"/statezero/runs/{run.pk}/cancel/", {"reason": "no"}, format="json"))
    assert_unavailable_body(api.post(f"/statezero/runs/{run.pk}/retry/", {}, format="json"))
    assert_unavailable_body(
        api.post("/statezero/actions/add_note/", {"workflow_run_id": action_run.pk, "note": "hi"}, format="json")
    )
    with pytest.raises(TemporalUnavailableError, match=UNREACHABLE):
        engine.live_display(run.pk)
    with pytest.raises(TemporalUnavailableError, match="nothing was changed"):
        submit_action(action_run.pk, "add_note", {"note": "hi"})

    # Nothing changed: in particular the failed cancel wrote no error onto the run.
    assert (row(run), row(action_run)) == before
    assert not StepExecution.objects.filter(run=run).exists()


def test_send_signal_prints_one_line_and_exits_non_zero(dev):
    dev.wait_until(engine.start("approval"), lambda r: r.status == WorkflowStatus.SUSPENDED)
    from django.db import connection

    # The test's database (on Postgres the test database has its own name): what
    # tests/durability_settings.py reads from DURABILITY_DB_NAME.
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.durability_settings",
        "DURABILITY_DB_NAME": connection.settings_dict["NAME"],
        "PYTHONPATH": str(ROOT),
    }
    env["TEMPORAL_ADDRESS"] = UNREACHABLE
    proc = subprocess.run(
        [sys.executable, "-m", "django", "send_signal", "manager_approval", "--payload", '{"approved": true}'],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "TemporalUnavailableError" not in lines[0] and "Traceback" not in proc.stderr
    assert UNREACHABLE in lines[0] and "temporal server start-dev" in lines[0]


def test_the_cancel_reason_is_recorded_once_temporal_accepted_it(dev, unreachable):
    run = dev.wait_until(engine.start("approval"), lambda r: r.status == WorkflowStatus.SUSPENDED)
    unreachable()
    with pytest.raises(TemporalUnavailableError):
        engine.cancel(run.pk, "customer left")
    dev.activate()
    # The failed cancel left no reason behind: the run moves on and completes without an error.
    assert engine.signal("manager_approval", {"approved": True}, run_id=run.pk) == 1
    run = dev.wait_until(run, lambda r: r.waiting_signal == "user_response")
    assert run.error == ""

    run.cancel("customer left")
    assert run.status == WorkflowStatus.CANCELLED and run.error == "customer left"
    cancelled = run.step_executions.get(status="cancelled")
    assert cancelled.error == "customer left"

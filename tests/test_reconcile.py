"""The reconciler (semantics: "The projection follows Temporal"): runs terminated, reset or timed
out from the Temporal side, or missing there, are repaired by one pass; outages change nothing."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import threading
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, connections
from django.test import Client
from temporalio.api.common.v1 import WorkflowExecution as ExecutionRef
from temporalio.api.enums.v1 import EventType, ResetReapplyExcludeType
from temporalio.api.workflowservice.v1 import ResetWorkflowExecutionRequest

from django_bridge.conf import automation_settings
from django_bridge.models import StepExecution, WorkflowRun
from facade import WorkflowStatus, engine, registry
from facade.testing import wait_for
from temporal_worker import client as bridge
from temporal_worker import outages, projection
from temporal_worker.engine import run_options
from temporal_worker.protocol import StartInput
from temporal_worker.reconcile import reconcile_once
from temporal_worker.spec import compile_spec
from tests.testapp import workflows  # noqa: F401  (registers "approval")

ROW_FIELDS = (
    "status",
    "error",
    "current_step",
    "waiting_signal",
    "wait_seq",
    "data",
    "updated_at",
    "finished_at",
    "repairs",
    "temporal_run_id",
)


# ---------------------------------------------------------------------- helpers
def temporal(dev, work) -> Any:
    """Run ``work(client)`` against the test server."""

    async def go() -> Any:
        return await work(dev.client)

    return bridge.run_sync(go(), timeout=60)


def row(run: WorkflowRun) -> dict:
    return WorkflowRun.objects.filter(pk=run.pk).values(*ROW_FIELDS).get()


def suspended_approval(dev) -> WorkflowRun:
    return dev.wait_until(engine.start("approval"), lambda r: r.status == WorkflowStatus.SUSPENDED)


def terminate(dev, run: WorkflowRun, reason: str) -> None:
    temporal(dev, lambda c: c.get_workflow_handle(run.temporal_workflow_id).terminate(reason=reason))


def wait_visible(dev, run: WorkflowRun, status: str, run_id: str | None = None, timeout: float = 30) -> None:
    """Wait until visibility lists the run's workflow (or that run of it) with ``status`` (it lags a little)."""
    query = f"WorkflowId = '{run.temporal_workflow_id}' AND ExecutionStatus = '{status}'"
    if run_id:
        query += f" AND RunId = '{run_id}'"

    async def listed(client) -> bool:
        return bool([w async for w in client.list_workflows(query)])

    wait_for(lambda: temporal(dev, listed), timeout, 0.2, f"visibility never listed {query}")


def mine(caplog) -> list[logging.LogRecord]:
    """The reconciler's log records of this test's own passes (not the environment's background ones)."""
    return [
        r
        for r in caplog.records
        if r.name == "django_temporal_automation"
        and "reconciler" in r.getMessage()
        and r.thread == threading.get_ident()
    ]


def current_run_id(dev, run: WorkflowRun) -> str:
    async def describe(client) -> str:
        return (await client.get_workflow_handle(run.temporal_workflow_id).describe()).run_id

    return temporal(dev, describe)


def reset(dev, run: WorkflowRun, *, after_first_step: bool) -> str:
    """Reset the run's workflow, as an operator would, to its first completed workflow task (or the
    first after its first step's activity); signals after that point are not re-applied. Returns
    the run it replaced."""

    async def go(client) -> str:
        handle = client.get_workflow_handle(run.temporal_workflow_id)
        base = (await handle.describe()).run_id
        target, seen_step = None, not after_first_step
        async for event in handle.fetch_history_events():
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
                seen_step = True
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED and seen_step:
                target = event.event_id
                break
        assert target is not None
        await client.workflow_service.reset_workflow_execution(
            ResetWorkflowExecutionRequest(
                namespace=client.namespace,
                workflow_execution=ExecutionRef(workflow_id=run.temporal_workflow_id, run_id=base),
                reason="operator: back to the approval",
                workflow_task_finish_event_id=target,
                request_id=uuid.uuid4().hex,
                reset_reapply_exclude_types=[ResetReapplyExcludeType.RESET_REAPPLY_EXCLUDE_TYPE_SIGNAL],
            )
        )
        return base

    return temporal(dev, go)


def wait_idle(dev, run: WorkflowRun, timeout: float = 30) -> None:
    """Wait until the run's current workflow has nothing in flight (it waits on a signal)."""

    async def idle(client) -> bool:
        raw = (await client.get_workflow_handle(run.temporal_workflow_id).describe()).raw_description
        return not (raw.pending_activities or raw.pending_children or raw.HasField("pending_workflow_task"))

    wait_for(lambda: temporal(dev, idle), timeout, 0.1, f"run {run.pk}: its workflow never became idle")


def start_with_execution_timeout(dev, seconds: float) -> WorkflowRun:
    """An approval run whose Temporal workflow has an execution timeout (the engine sets none)."""
    definition = registry.get("approval")
    spec = compile_spec(definition)
    run = WorkflowRun.objects.create(
        name="approval",
        data=definition.create_context().model_dump(mode="json"),
        spec=spec,
        task_queue=dev.task_queue,
        temporal_workflow_id=f"approval-timeout-{uuid.uuid4().hex[:8]}",
        **projection.entry_fields(spec, definition.start_step, 0),
    )
    start = StartInput(run.pk, spec, run.data, definition.start_step, options=run_options(False))

    async def go(client) -> str:
        handle = await client.start_workflow(
            "approval",
            start.to_wire(),
            id=run.temporal_workflow_id,
            task_queue=dev.task_queue,
            execution_timeout=timedelta(seconds=seconds),
        )
        return handle.result_run_id

    WorkflowRun.objects.filter(pk=run.pk).update(temporal_run_id=temporal(dev, go))
    return run


# ---------------------------------------------------------------------- one pass repairs them
def test_terminated_reset_and_timed_out_runs_follow_temporal_in_one_pass(dev, caplog):
    terminated = suspended_approval(dev)
    terminate(dev, terminated, "ops: duplicate order")

    # Reset to the start: the run runs its first step again, which writes the row itself.
    restarted = suspended_approval(dev)
    assert engine.signal("manager_approval", {"approved": True}, run_id=restarted.pk) == 1
    restarted = dev.wait_until(restarted, lambda r: r.current_step == "wait_with_timeout")
    restarted_old = reset(dev, restarted, after_first_step=False)

    # Reset to just after its first step: no step runs again, only the reconciler can bring the
    # row back to the approval it waits for again.
    rewound = suspended_approval(dev)
    wait_idle(dev, rewound)  # its workflow waits (else the signal lands in the same workflow task)
    assert engine.signal("manager_approval", {"approved": True}, run_id=rewound.pk) == 1
    rewound = dev.wait_until(rewound, lambda r: r.current_step == "wait_with_timeout" and r.wait_seq == 1)
    assert rewound.wake_at is not None  # user_response waits 7 days
    rewound_old = reset(dev, rewound, after_first_step=True)

    timed_out = start_with_execution_timeout(dev, 2)
    dev.wait_until(timed_out, lambda r: r.status == WorkflowStatus.SUSPENDED)
    healthy = suspended_approval(dev)

    wait_visible(dev, terminated, "Terminated")
    wait_visible(dev, timed_out, "TimedOut", timeout=60)
    wait_visible(dev, restarted, "Terminated", run_id=restarted_old)
    wait_visible(dev, rewound, "Terminated", run_id=rewound_old)
    dev.wait_until(restarted, lambda r: r.current_step == "wait_for_approval" and r.wait_seq == 0)
    wait_idle(dev, restarted)
    wait_idle(dev, rewound)
    healthy_before = row(healthy)
    assert row(rewound)["current_step"] == "wait_with_timeout"  # the drift the pass must repair

    caplog.set_level(logging.INFO, logger="django_temporal_automation")
    result = reconcile_once(grace=0)

    assert not result.skipped
    assert result.checked == 5
    assert sorted((r.run_id, r.what) for r in result.applied) == sorted(
        [(terminated.pk, "terminated"), (timed_out.pk, "timed_out"), (restarted.pk, "reset"), (rewound.pk, "reset")]
    )
    terminated.refresh_from_db()
    assert terminated.status == WorkflowStatus.FAILED
    assert terminated.error == "terminated in Temporal: ops: duplicate order"
    assert terminated.finished_at is not None and terminated.waiting_signal == "" and terminated.wait_seq is None
    assert [(n["what"], n["from_status"], n["to_status"]) for n in terminated.repairs] == [
        ("terminated", "suspended", "failed")
    ]
    timed_out.refresh_from_db()
    assert timed_out.status == WorkflowStatus.FAILED
    assert timed_out.error == "timed out in Temporal (its execution timeout of 2 s ran out)"

    for run, old in ((restarted, restarted_old), (rewound, rewound_old)):
        run.refresh_from_db()
        assert run.status == WorkflowStatus.SUSPENDED and run.finished_at is None, run.status
        assert (run.current_step, run.waiting_signal, run.wait_seq) == ("wait_for_approval", "manager_approval", 0)
        assert run.data["approved"] is False  # the Context the workflow holds at that point
        assert run.wake_at is None
        assert run.temporal_run_id == current_run_id(dev, run) != old
        assert [n["what"] for n in run.repairs] == ["reset"]
        assert run.repairs[0]["detail"] == (
            "reset in Temporal: operator: back to the approval; now at step 'wait_for_approval'"
        )
    assert row(healthy) == healthy_before
    # No history row invented: StepExecution keeps the steps that ran.
    assert not StepExecution.objects.filter(run__in=[terminated, timed_out]).exclude(status="completed").exists()
    # Every repair is logged.
    logged = [r.getMessage() for r in mine(caplog) if r.getMessage().startswith("reconciler: run ")]
    assert sorted(logged) == sorted(f"reconciler: {r}" for r in result.applied)

    # Idempotent: the next pass finds nothing to do.
    again = reconcile_once(grace=0)
    assert (again.checked, again.found) == (3, [])

    # The reset runs carry on from where Temporal put them, and their rows follow.
    for run in (restarted, rewound):
        assert engine.signal("manager_approval", {"approved": True}, run_id=run.pk) == 1
        run = dev.wait_until(run, lambda r: r.current_step == "wait_with_timeout" and r.wait_seq == 1)
        assert run.data["approved"] is True


def test_dry_run_prints_the_repairs_and_changes_nothing(dev):
    run = suspended_approval(dev)
    terminate(dev, run, "stuck")
    wait_visible(dev, run, "Terminated")
    before = row(run)

    out = io.StringIO()
    call_command("automation_reconcile", "--dry-run", "--grace", "0", stdout=out)
    line = f"run {run.pk} (approval): suspended -> failed: terminated in Temporal: stuck"
    assert out.getvalue().splitlines() == [
        f"would repair {line}",
        "checked 1 unfinished run: would repair 1 (dry run: nothing was changed)",
    ]
    assert row(run) == before

    out = io.StringIO()
    call_command("automation_reconcile", "--grace", "0", stdout=out)
    assert out.getvalue().splitlines() == [f"repaired {line}", "checked 1 unfinished run: repaired 1"]
    run.refresh_from_db()
    assert (run.status, run.error) == (WorkflowStatus.FAILED, "terminated in Temporal: stuck")

    # The API and the run page say what happened.
    User.objects.create_superuser("root", "root@example.com", "pw")
    client = Client()
    client.login(username="root", password="pw")
    [repair] = client.get(f"/statezero/runs/{run.pk}/").json()["repairs"]
    assert {k: repair[k] for k in ("what", "detail", "from_status", "to_status")} == {
        "what": "terminated",
        "detail": "terminated in Temporal: stuck",
        "from_status": "suspended",
        "to_status": "failed",
    }
    assert (
        "Changed to follow Temporal: terminated in Temporal: stuck"
        in client.get(f"/statezero/ui/runs/{run.pk}/").content.decode()
    )


def test_rows_changed_recently_are_left_alone(dev):
    """The grace: a start, a retry or a transition in flight is never judged half-way."""
    run = suspended_approval(dev)
    terminate(dev, run, "stuck")
    wait_visible(dev, run, "Terminated")
    before = row(run)
    assert reconcile_once(grace=300).checked == 0
    out = io.StringIO()
    call_command("automation_reconcile", stdout=out)  # RECONCILE_GRACE: 300 s
    assert out.getvalue() == "checked 0 unfinished runs: repaired 0\n"
    assert row(run) == before


def test_describing_each_run_without_visibility(dev):
    run = suspended_approval(dev)
    terminate(dev, run, "by hand")
    result = reconcile_once(grace=0, visibility=False)  # no wait for visibility: describe is current
    assert [str(r) for r in result.applied] == [
        f"run {run.pk} (approval): suspended -> failed: terminated in Temporal: by hand"
    ]


def test_the_time_skipping_server_has_no_visibility_and_is_described(ts):
    run = ts.wait_until(engine.start("approval"), lambda r: r.status == WorkflowStatus.SUSPENDED)
    terminate(ts, run, "by hand")
    result = reconcile_once(grace=0)
    assert [(r.run_id, r.what) for r in result.applied] == [(run.pk, "terminated")]
    assert bridge.server_features.get("visibility") is False


def test_runs_whose_own_record_was_lost_end_as_temporal_says(dev):
    """Completed, failed and cancelled in Temporal while the row says running (a lost write)."""
    completed = dev.wait_until_finished(engine.start("user_onboarding", user_id=7))
    failed = dev.wait_until_finished(engine.start("final_check", all_validations_passed=False))
    cancelled = suspended_approval(dev)
    engine.cancel(cancelled.pk)
    for run in (completed, failed, cancelled):
        dev.wait_closed(run)
    lost = {"status": WorkflowStatus.RUNNING, "error": "", "finished_at": None, "data": {}}
    WorkflowRun.objects.filter(pk__in=[completed.pk, failed.pk, cancelled.pk]).update(**lost)

    result = reconcile_once(grace=0, visibility=False)

    assert sorted((r.run_id, r.what, r.to_status) for r in result.applied) == sorted(
        [
            (completed.pk, "completed", "completed"),
            (failed.pk, "failed", "failed"),
            (cancelled.pk, "cancelled", "cancelled"),
        ]
    )
    completed.refresh_from_db()
    assert completed.status == WorkflowStatus.COMPLETED and completed.progress == 1.0
    assert completed.data == {"user_id": 7, "email_sent": True, "profile_completed": False}  # the result's Context
    failed.refresh_from_db()
    assert (failed.status, failed.error) == (WorkflowStatus.FAILED, "Validation failed: missing required documents")
    assert failed.data["all_validations_passed"] is False  # the failure's Context
    cancelled.refresh_from_db()
    assert (cancelled.status, cancelled.error) == (WorkflowStatus.CANCELLED, "cancelled in Temporal")
    assert all(r.finished_at is not None for r in (completed, failed, cancelled))


def test_a_row_whose_workflow_does_not_exist(dev):
    definition = registry.get("approval")
    spec = compile_spec(definition)
    fields = dict(
        name="approval", spec=spec, task_queue=dev.task_queue, **projection.entry_fields(spec, "wait_for_approval", 0)
    )
    lost = WorkflowRun.objects.create(temporal_workflow_id=f"approval-lost-{uuid.uuid4().hex[:8]}", **fields)
    # A subflow's row exists before its parent's workflow starts it: left alone while the parent runs.
    parent = WorkflowRun.objects.create(temporal_workflow_id=f"approval-parent-{uuid.uuid4().hex[:8]}", **fields)
    child = WorkflowRun.objects.create(
        temporal_workflow_id=f"{parent.temporal_workflow_id}/1-approval", parent=parent, **fields
    )

    assert reconcile_once().checked == 0  # within the grace: its start may be in flight

    result = reconcile_once(grace=0)
    assert sorted(r.run_id for r in result.applied) == [lost.pk, parent.pk]
    lost.refresh_from_db()
    assert lost.status == WorkflowStatus.FAILED
    assert lost.error.startswith(f"its workflow {lost.temporal_workflow_id} does not exist in Temporal (namespace ")
    assert "run.retry_current_step()" in lost.error
    assert WorkflowRun.objects.get(pk=child.pk).status == WorkflowStatus.RUNNING

    # Its parent is failed now: the next pass repairs the child too.
    assert [r.run_id for r in reconcile_once(grace=0).applied] == [child.pk]


def test_a_repair_never_overwrites_a_row_that_changed_meanwhile(dev):
    run = suspended_approval(dev)
    seen = WorkflowRun.objects.get(pk=run.pk).updated_at
    projection.update_run(run.pk, progress=0.5)  # a transition landed after the pass read the row
    assert not projection.record_reconciled(run.pk, seen, {"status": "failed"}, {"what": "terminated"})
    assert WorkflowRun.objects.get(pk=run.pk).status == WorkflowStatus.SUSPENDED


# ---------------------------------------------------------------------- the worker's passes
def test_the_worker_reconciles_periodically(dev):
    """The test environment runs the passes as the worker command does (RECONCILE_INTERVAL: 1 s here)."""
    run = suspended_approval(dev)
    terminate(dev, run, "from the worker")
    wait_visible(dev, run, "Terminated")
    automation_settings.overrides["RECONCILE_GRACE"] = 0
    try:
        run = dev.wait_until(run, lambda r: r.status == WorkflowStatus.FAILED, timeout=30)
    finally:
        automation_settings.overrides.pop("RECONCILE_GRACE", None)
    assert run.error == "terminated in Temporal: from the worker"


# ---------------------------------------------------------------------- outages
def test_a_temporal_outage_skips_the_pass(dev, caplog):
    run = suspended_approval(dev)
    terminate(dev, run, "stuck")
    wait_visible(dev, run, "Terminated")
    before = row(run)
    saved = dict(automation_settings.overrides)
    caplog.set_level(logging.INFO, logger="django_temporal_automation")
    try:
        automation_settings.overrides["TEMPORAL_ADDRESS"] = "127.0.0.1:1"
        bridge.set_client(None)
        result = reconcile_once(grace=0)
        with pytest.raises(
            CommandError, match="the reconciler skipped this pass: .*Temporal is unreachable at 127.0.0.1:1"
        ):
            call_command("automation_reconcile", "--grace", "0", stdout=io.StringIO())
    finally:
        automation_settings.overrides.clear()
        automation_settings.overrides.update(saved)
        dev.activate()
    assert result.skipped.startswith(
        "the reconciler skipped this pass: reconciling runs with Temporal: Temporal is unreachable"
    )
    assert (result.found, result.applied) == ([], [])
    assert row(run) == before
    lines = mine(caplog)
    # One line for the pass, no traceback; the command printed its line instead.
    assert [r.getMessage() for r in lines] == [result.skipped]
    assert all(r.exc_info is None for r in lines)

    assert [r.run_id for r in reconcile_once(grace=0).applied] == [run.pk]  # Temporal is back


@pytest.mark.skipif(connection.vendor != "sqlite", reason="locks a SQLite database file")
def test_a_locked_sqlite_database_skips_the_pass(dev, caplog):
    """Another process holds the write lock longer than the busy timeout: no repair, one line."""
    import sqlite3

    run = suspended_approval(dev)
    terminate(dev, run, "stuck")
    wait_visible(dev, run, "Terminated")
    before = row(run)
    options = connection.settings_dict["OPTIONS"]
    saved_timeout = options.get("timeout")
    other = sqlite3.connect(connection.settings_dict["NAME"], timeout=30, isolation_level=None)
    caplog.set_level(logging.WARNING, logger="django_temporal_automation")
    try:
        other.execute("BEGIN EXCLUSIVE")
        connections.close_all()
        options["timeout"] = 0.5  # this test's connection gives up on the lock quickly
        result = reconcile_once(grace=0)
    finally:
        other.execute("ROLLBACK")
        other.close()
        connections.close_all()
        options["timeout"] = saved_timeout
    assert result.skipped.startswith(
        "the reconciler skipped this pass: the database is unavailable (database is locked)"
    )
    assert result.applied == [] and [r.run_id for r in result.found] == [run.pk]
    assert row(run) == before
    assert [r.getMessage() for r in mine(caplog)] == [result.skipped]
    assert [r.run_id for r in reconcile_once(grace=0).applied] == [run.pk]


POSTGRES_CTL = os.environ.get("POSTGRES_CTL")


@pytest.mark.slow
@pytest.mark.db_outage
@pytest.mark.skipif(
    connection.vendor != "postgresql" or not POSTGRES_CTL,
    reason="needs the Postgres server of `make test-postgres` (POSTGRES_CTL stops and starts it)",
)
def test_a_postgres_outage_skips_the_pass(dev, caplog):
    run = suspended_approval(dev)
    terminate(dev, run, "stuck")
    wait_visible(dev, run, "Terminated")
    before = row(run)
    caplog.set_level(logging.WARNING, logger="django_temporal_automation")
    assert POSTGRES_CTL
    outages.close_connections()
    subprocess.run([POSTGRES_CTL, "stop"], check=True, timeout=90)
    try:
        result = reconcile_once(grace=0)
    finally:
        subprocess.run([POSTGRES_CTL, "start"], check=True, timeout=90)
    assert result.skipped.startswith("the reconciler skipped this pass: the database is unavailable")
    assert (result.checked, result.applied) == (0, [])
    assert [r.getMessage() for r in mine(caplog)] == [result.skipped]
    outages.wait_for_database("the test", allowance=60)
    assert row(run) == before
    assert [r.run_id for r in reconcile_once(grace=0).applied] == [run.pk]

"""Nothing is lost: a killed worker or a restarted server delays runs.

- A worker process SIGKILLed in the middle of a step: Temporal notices the missing heartbeats,
  retries the step on a new worker process, and the run completes with one projection row per
  step; the steps before it are not run again.
- The dev server stopped while a run sleeps on a durable timer (and kept down past the timer's
  due time), then started again on the same port and database file: the timer fires, the
  in-process worker (never restarted: its client reconnects) finishes the run.
- A step attempt that raises is retried by Temporal without duplicating projection rows; retries
  that run out fail the run in Temporal and in the projection alike.
- A step attempt whose completion reaches Temporal after the heartbeat timeout (server down at
  that moment, or a slow projection write) is retried without running the step again: the retry
  answers with the recorded result, so a sleep it returned still happens.

Side effects are counted in files (``durability_workflows.count``) to prove how often each step
body really ran. Timings are printed (``pytest -s`` shows them).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from datetime import UTC, timedelta

import pytest
from django.db import connection
from django.utils import timezone
from temporalio.api.enums.v1 import EventType, TimeoutType
from temporalio.client import WorkflowExecutionStatus

from django_bridge.models import StepExecution, WorkflowRun
from facade import engine
from facade.testing import TemporalTestEnvironment, wait_for
from temporal_worker import activities, projection
from temporal_worker import client as bridge
from tests.testapp import durability_workflows as dw
from tests.worker_process import WorkerProcess


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def temporal_status(env: TemporalTestEnvironment, run: WorkflowRun) -> WorkflowExecutionStatus | None:
    handle = env.client.get_workflow_handle(run.temporal_workflow_id)
    return bridge.run_sync(handle.describe(), timeout=30).status


def wait_for_temporal_status(
    env: TemporalTestEnvironment, run: WorkflowRun, expected: WorkflowExecutionStatus
) -> float:
    """Wait until Temporal reports ``expected`` for the run; returns how long that took.

    The projection is written by the step activity *before* the workflow applies the step's
    result, so Temporal closes the run a workflow task after the row says it finished.
    """
    began = time.monotonic()
    wait_for(
        lambda: temporal_status(env, run) == expected,
        timeout=30,
        interval=0.1,
        message=f"Temporal never reported {expected.name} for run {run.pk}; it is {getattr(temporal_status(env, run), 'name', None)}",
    )
    return time.monotonic() - began


def step_rows(run: WorkflowRun) -> list[tuple[str, str]]:
    return list(StepExecution.objects.filter(run=run).order_by("seq").values_list("step_name", "status"))


def started_events(history, activity_type: str) -> list:
    """The ActivityTaskStarted events of ``activity_type`` in ``history``."""
    scheduled = {
        e.event_id
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == activity_type
    }
    return [
        e.activity_task_started_event_attributes
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
        and e.activity_task_started_event_attributes.scheduled_event_id in scheduled
    ]


@pytest.fixture
def active_dev(dev):
    dev.activate()  # in case another environment (the time-skipping one) was started since
    return dev


# ---------------------------------------------------------------------- worker killed mid-step
def wait_for_worker(worker: WorkerProcess, predicate, what: str, timeout: float = 30.0) -> None:
    try:
        wait_for(predicate, timeout=timeout)
    except AssertionError:
        state = "running" if worker.alive() else f"exited with {worker.process.returncode}"
        raise AssertionError(
            f"{what} within {timeout}s; worker pid {worker.pid} is {state}, output:\n{worker.output()}"
        ) from None


@pytest.fixture
def server_without_worker(transactional_db):
    """A dev server of its own with no in-process worker: only worker subprocesses run steps."""
    with TemporalTestEnvironment(start_worker=False, heartbeat_timeout=2.0) as env:
        yield env


@pytest.mark.slow
def test_worker_killed_mid_step_is_retried_on_a_new_worker(server_without_worker, tmp_path):
    env = server_without_worker
    counters = tmp_path / "counters"
    counters.mkdir()
    address = env.client.service_client.config.target_host
    workers = [
        WorkerProcess(
            address=address,
            namespace=env.client.namespace,
            task_queue=env.task_queue,
            db_name=connection.settings_dict["NAME"],
            log_path=tmp_path / f"worker-{n}.log",
        )
        for n in (1, 2)
    ]
    first, second = workers
    try:
        first.start()
        run = engine.start("durable_three_steps", counter_dir=str(counters))
        wait_for_worker(
            first, lambda: dw.executions(counters, "process") == 1, "the first worker never ran the middle step"
        )
        # The worker subprocess saw the test's rows and wrote its own: the first step's row.
        assert step_rows(run) == [("prepare", "completed")]
        assert WorkflowRun.objects.get(pk=run.pk).current_step == "process"
        assert dw.executing_pids(counters, "process") == [first.pid]

        first.kill()
        killed_at = time.monotonic()
        second.start()
        wait_for_worker(second, lambda: dw.executions(counters, "process") == 2, "the middle step was never retried")
        retried_at = time.monotonic()
        assert dw.executing_pids(counters, "process") == [first.pid, second.pid]

        (counters / "proceed").touch()
        released_at = time.monotonic()
        try:
            run = env.wait_until_finished(run, timeout=30)
        except AssertionError as exc:  # e.g. a nondeterminism error while the new worker replays
            raise AssertionError(f"{exc}\nthe new worker's output:\n{second.output()}") from None
        # ~10 s of that: the first workflow task after the kill goes to the dead worker's sticky
        # queue and waits out its schedule-to-start timeout before the shared queue gets it.
        finished_at = time.monotonic()
        # Temporal closes the run a workflow task later, on the new worker.
        lag = wait_for_temporal_status(env, run, WorkflowExecutionStatus.COMPLETED)
        print(
            f"\nworker killed mid-step: retried {retried_at - killed_at:.1f}s after the kill, "
            f"{retried_at - second.started_at:.1f}s after the new worker was started "
            f"(heartbeat timeout {env.heartbeat_timeout}s); the projection said completed "
            f"{finished_at - released_at:.1f}s after the step was let through, Temporal {lag:.1f}s later"
        )
    finally:
        for worker in workers:
            worker.kill()

    assert run.status == "completed", run.error
    assert run.data["prepared"] and run.data["finished"] and run.data["processed_by"] == second.pid
    # One completed row per step although the middle step's body ran twice.
    assert step_rows(run) == [("prepare", "completed"), ("process", "completed"), ("finish", "completed")]
    assert dw.executions(counters, "prepare") == 1
    assert dw.executions(counters, "finish") == 1

    # Temporal retried the step because the killed worker stopped heartbeating.
    attempts = started_events(env.history(run), "durable_three_steps.process")
    assert [a.attempt for a in attempts] == [2]  # history keeps the last attempt of an activity
    assert attempts[0].last_failure.timeout_failure_info.timeout_type == TimeoutType.TIMEOUT_TYPE_HEARTBEAT


# ---------------------------------------------------------------------- server restarted
@pytest.fixture
def restartable_server(transactional_db, tmp_path):
    """A dev server persisting to a SQLite file on a fixed port, with an in-process worker."""
    with TemporalTestEnvironment(port=free_port(), db_filename=str(tmp_path / "temporal.db")) as env:
        yield env


def timer_started(env: TemporalTestEnvironment, run: WorkflowRun):
    """The run's TimerStarted event, once Temporal has recorded it (else None)."""
    for event in env.history(run).events:
        if event.event_type == EventType.EVENT_TYPE_TIMER_STARTED:
            return event
    return None


@pytest.mark.slow
def test_server_restarted_during_a_sleep_loses_nothing(restartable_server, tmp_path):
    env = restartable_server
    run = engine.start("durable_sleeper", counter_dir=str(tmp_path), sleep_seconds=2.0)
    env.wait_until(run, lambda r: r.status == "waiting")
    # The projection says WAITING as soon as the step returned sleep(), before Temporal has the
    # step's result; stop the server once Temporal holds the timer. (Stopping it in between, for
    # longer than the heartbeat timeout, loses the step's completion: see the xfail test below.)
    timer = wait_for(lambda: timer_started(env, run), timeout=30)
    due = (
        timer.event_time.ToDatetime(tzinfo=UTC)
        + timer.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta()
    )

    def while_down() -> None:
        with pytest.raises(OSError):  # the server really is gone
            socket.create_connection(("127.0.0.1", env.port), timeout=1).close()
        # Keep it down until the timer is overdue, so it must fire from the persisted state.
        wait_for(lambda: timezone.now() > due + timedelta(seconds=0.5), timeout=30)

    env.restart_server(while_down=while_down)
    restarted_at = time.monotonic()
    run = env.wait_until_finished(run, timeout=30)
    print(
        f"\nserver restarted during a sleep: the run finished {time.monotonic() - restarted_at:.1f}s after the restart"
    )

    assert run.status == "completed", run.error
    assert run.data["slept"] and run.data["done"]
    assert step_rows(run) == [("before", "completed"), ("after", "completed")]
    # ``before`` runs once to sleep and once after the timer (a sleep re-enters its step).
    assert dw.executions(tmp_path, "before") == 2
    assert dw.executions(tmp_path, "after") == 1
    # The in-process worker survived the restart: no other worker ran any step.
    assert set(dw.executing_pids(tmp_path, "before") + dw.executing_pids(tmp_path, "after")) == {os.getpid()}
    lag = wait_for_temporal_status(env, run, WorkflowExecutionStatus.COMPLETED)
    print(f"Temporal closed the run {lag:.1f}s after the projection said completed")
    history = env.history(run)
    assert sum(e.event_type == EventType.EVENT_TYPE_TIMER_FIRED for e in history.events) == 1
    assert all(a.attempt == 1 for a in started_events(history, "durable_sleeper.before"))


@pytest.mark.slow
def test_step_whose_completion_came_too_late_is_answered_from_the_record(active_dev, tmp_path, monkeypatch):
    """The first attempt of ``before`` records its transition (sleep) and then cannot report it
    in time: Temporal times the attempt out and retries it. The retry must not run the step
    again (it would start from its own output and skip the sleep): it answers with the
    recorded result, and the run sleeps once.

    The stall is a stand-in for the server being down when the step finishes (reproduced with
    ``restart_server`` too, but only when the restart hits that moment).
    """
    dev = active_dev
    recorded, release = threading.Event(), threading.Event()
    original = projection.record_directive

    def record_then_stall(run_id, spec, step, seq, data, directive):
        original(run_id, spec, step, seq, data, directive)
        if spec["name"] == "durable_sleeper" and directive.kind == "sleep" and not recorded.is_set():
            recorded.set()
            release.wait(30)  # no answer now: Temporal gives up on this attempt

    monkeypatch.setattr(projection, "record_directive", record_then_stall)
    # Heartbeats would keep the stalled attempt alive; this stand-in stalls them too.
    monkeypatch.setattr(activities.heartbeats, "paused", True)
    run = engine.start("durable_sleeper", counter_dir=str(tmp_path), sleep_seconds=0.5)
    try:
        assert recorded.wait(30)
        run = dev.wait_until_finished(run, timeout=40)
    finally:
        release.set()
    assert run.status == "completed", run.error
    history = dev.history(run)
    assert [a.attempt for a in started_events(history, "durable_sleeper.before")][0] == 2  # it was retried
    timers = sum(e.event_type == EventType.EVENT_TYPE_TIMER_FIRED for e in history.events)
    assert timers == 1, f"the retried step skipped its sleep: {timers} timers fired, the context was {run.data}"
    # The body ran once to sleep and once after the timer, never for the retry.
    assert dw.executions(tmp_path, "before") == 2


# ---------------------------------------------------------------------- retried attempts
def test_retried_attempts_write_no_duplicate_rows(active_dev):
    """Two attempts raise, the third succeeds: one row, and the context of the attempts kept.

    (semantics: "Failed attempts keep their context")
    """
    run = engine.start("flaky", fail_times=2)
    run = active_dev.wait_until_finished(run)
    assert run.status == "completed", run.error
    assert run.data["attempts"] == 3 and run.data["notified"]
    assert step_rows(run) == [("notify_housekeeping", "completed")]
    # The row is written before the attempt's completion reaches Temporal (which records a
    # retried activity's start only then): read the history once the workflow closed.
    wait_for_temporal_status(active_dev, run, WorkflowExecutionStatus.COMPLETED)
    attempts = started_events(active_dev.history(run), "flaky.notify_housekeeping")
    assert [a.attempt for a in attempts] == [3]


def test_exhausted_retries_fail_in_temporal_and_in_the_projection(active_dev, tmp_path):
    run = engine.start("replay_exhausted", counter_dir=str(tmp_path))
    run = active_dev.wait_until_finished(run)
    assert run.status == "failed"
    assert "failed after 2 attempts" in run.error and "the remote service is down" in run.error
    assert run.data["compensated"] is True
    assert dw.executions(tmp_path, "flaky") == 2
    assert step_rows(run) == [("flaky", "failed")]
    wait_for_temporal_status(active_dev, run, WorkflowExecutionStatus.FAILED)


def test_run_whose_row_was_deleted_ends_instead_of_retrying_forever(active_dev):
    """A deleted row cannot come back: the workflow ends (failed) rather than retry forever."""
    run = active_dev.wait_until(engine.start("approval"), lambda r: r.status == "suspended")
    workflow_id = run.temporal_workflow_id
    WorkflowRun.objects.filter(pk=run.pk).delete()

    async def signal_and_wait():
        handle = active_dev.client.get_workflow_handle(workflow_id)
        await handle.signal("manager_approval", {"approved": True})  # by hand: the row is gone
        try:
            await handle.result()
        except Exception as exc:
            return exc
        return None

    error = bridge.run_sync(signal_and_wait(), timeout=60)
    messages = []
    while error is not None:  # WorkflowFailureError -> ActivityError -> ApplicationError
        messages.append(str(error))
        error = error.__cause__ or getattr(error, "cause", None)
    assert any("row was deleted" in m for m in messages), messages

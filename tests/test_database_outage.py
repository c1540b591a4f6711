"""A database outage delays runs, never fails them, and never runs a step's code twice.

On Postgres (``make test-postgres``, which gives ``POSTGRES_CTL`` to stop and start the server)
100 runs of 5 one-second steps go through a 10 s and a 60 s outage, and through an outage in
which the worker is SIGKILLed; each step's code counts itself in a file outside the database.
On SQLite the database file is locked by another process for longer than the busy timeout.
The engine's calls in the web process answer ``DatabaseUnavailableError`` while it is down.

Each outage test prints runs failed, steps run again and the time to drain once the database
is back (the figures quoted in the docs).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from django_bridge.conf import automation_settings
from django_bridge.models import StepExecution, WorkflowRun
from facade import DatabaseUnavailableError, engine
from facade.testing import TemporalTestEnvironment
from temporal_worker import client as bridge
from temporal_worker import outages
from tests.testapp import outage_workflows as ow
from tests.worker_process import WorkerProcess

POSTGRES_CTL = os.environ.get("POSTGRES_CTL")
on_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql" or not POSTGRES_CTL,
    reason="needs the Postgres server of `make test-postgres` (POSTGRES_CTL stops and starts it)",
)
on_sqlite = pytest.mark.skipif(connection.vendor != "sqlite", reason="locks a SQLite database file")

RUNS = 100

pytestmark = [pytest.mark.slow, pytest.mark.db_outage]


# ---------------------------------------------------------------------- helpers
def postgres(action: str) -> None:
    assert POSTGRES_CTL
    subprocess.run([POSTGRES_CTL, action], check=True, timeout=90)


def db(work: Callable[[], Any]) -> Any:
    """The test's own queries: wait out the outage it caused (the test process shares the database)."""
    return outages.retrying("the test", work, allowance=120)


def start_runs(counter_file: Path, n: int = RUNS) -> list[int]:
    return [engine.start("outage_five", tag=i, counter_file=str(counter_file)).pk for i in range(n)]


def wait_all_finished(run_ids: list[int], timeout: float) -> float:
    """Wait until every run is finished in the projection; returns when (monotonic)."""
    deadline = time.monotonic() + timeout
    while True:
        left = db(lambda: WorkflowRun.objects.filter(pk__in=run_ids, finished_at__isnull=True).count())
        if left == 0:
            return time.monotonic()
        if time.monotonic() > deadline:
            stuck = db(lambda: list(WorkflowRun.objects.filter(pk__in=run_ids, finished_at__isnull=True)[:5]))
            raise AssertionError(
                f"{left} runs still unfinished after {timeout}s, e.g. {[(r.pk, r.status, r.current_step, r.error) for r in stuck]}"
            )
        time.sleep(0.25)


def temporal_statuses(env: TemporalTestEnvironment, run_ids: list[int]) -> Counter[str]:
    ids = db(lambda: list(WorkflowRun.objects.filter(pk__in=run_ids).values_list("temporal_workflow_id", flat=True)))

    async def describe_all() -> list[Any]:
        import asyncio

        return await asyncio.gather(*(env.client.get_workflow_handle(i).describe() for i in ids))

    return Counter(d.status.name for d in bridge.run_sync(describe_all(), timeout=120))


def resumed_after(run_ids: list[int], back_wall: float) -> float:
    """Seconds from the database's return to the first history row written after it."""
    from datetime import UTC, datetime

    since = datetime.fromtimestamp(back_wall, tz=UTC)
    first = db(
        lambda: (
            StepExecution.objects.filter(run_id__in=run_ids, created_at__gte=since)
            .order_by("created_at")
            .values_list("created_at", flat=True)
            .first()
        )
    )
    return (first.timestamp() - back_wall) if first else float("nan")


def drain(env: TemporalTestEnvironment, run_ids: list[int], counter_file: Path, what: str) -> None:
    """From the database's return: wait for every run, check them all, print the figures."""
    back, back_wall = time.monotonic(), time.time()
    done = wait_all_finished(run_ids, timeout=240)
    figures = check_every_run(env, run_ids, counter_file)
    print(
        f"\n{what}, {len(run_ids)} runs x 5 steps: {figures}; first step recorded "
        f"{resumed_after(run_ids, back_wall):.1f} s and all runs done {done - back:.1f} s after the database was back"
    )


def check_every_run(env: TemporalTestEnvironment, run_ids: list[int], counter_file: Path) -> dict[str, int]:
    """Every run completed, 5 history rows each, Temporal agrees, each step's code ran once."""
    runs = db(lambda: list(WorkflowRun.objects.filter(pk__in=run_ids)))
    failed = [(r.pk, r.error) for r in runs if r.status != "completed"]
    rows = db(
        lambda: Counter(
            StepExecution.objects.filter(run_id__in=run_ids, status="completed").values_list("run_id", flat=True)
        )
    )
    executions = Counter(ow.notes(counter_file))
    reruns = sum(n - 1 for n in executions.values() if n > 1)
    missing = [(tag, name) for tag in range(len(run_ids)) for name in ow.STEPS if executions[f"{tag} {name}"] == 0]
    wanted = {"runs_failed": len(failed), "steps_rerun": reruns}
    assert not failed, f"{len(failed)} runs failed, e.g. {failed[:3]}"
    assert all(rows[pk] == 5 for pk in run_ids), f"history rows per run: {Counter(rows.values())}"
    assert not missing, f"steps that never ran: {missing[:5]}"
    assert reruns == 0, f"{reruns} step executions repeated: {[k for k, n in executions.items() if n > 1][:10]}"
    deadline = time.monotonic() + 60
    while (statuses := temporal_statuses(env, run_ids)) != Counter({"COMPLETED": len(run_ids)}):
        assert time.monotonic() < deadline, f"Temporal says {statuses}"
        time.sleep(0.5)
    return wanted


@pytest.fixture
def outage_env(transactional_db):
    """A dev server of its own and an in-process worker with room for every run's step."""
    with TemporalTestEnvironment(max_concurrent_steps=25, heartbeat_timeout=2.0) as env:
        yield env
    outages.close_connections()


def outage_run(env: TemporalTestEnvironment, tmp_path: Path, down_for: float) -> None:
    counter_file = tmp_path / "steps.log"
    run_ids = start_runs(counter_file)
    time.sleep(3)  # the runs are under way: every run has started a step or two
    postgres("stop")
    try:
        time.sleep(down_for)
    finally:
        postgres("start")
    drain(env, run_ids, counter_file, f"{down_for:.0f} s Postgres outage (25 step threads)")


# ---------------------------------------------------------------------- Postgres stopped mid-run
@on_postgres
def test_a_10s_outage_delays_runs_and_reruns_no_step(outage_env, tmp_path):
    outage_run(outage_env, tmp_path, 10)


@on_postgres
def test_a_60s_outage_delays_runs_and_reruns_no_step(outage_env, tmp_path):
    outage_run(outage_env, tmp_path, 60)


@on_postgres
def test_a_worker_killed_during_the_outage_loses_nothing(transactional_db, tmp_path):
    """The worker dies while its steps wait for the database; a new one finishes their work.

    A step whose code finished is not run again: its outcome travels in its heartbeat details
    to the next attempt, which only writes it.
    """
    counter_file = tmp_path / "steps.log"
    with TemporalTestEnvironment(start_worker=False, heartbeat_timeout=2.0) as env:
        address = env.client.service_client.config.target_host
        options = {
            "address": address,
            "namespace": env.client.namespace,
            "task_queue": env.task_queue,
            "db_name": connection.settings_dict["NAME"],
        }
        first = WorkerProcess(**options, log_path=tmp_path / "worker1.log").start()
        second = WorkerProcess(**options, log_path=tmp_path / "worker2.log")
        try:
            run_ids = start_runs(counter_file)
            time.sleep(4)
            postgres("stop")
            try:
                time.sleep(4)  # steps finish their code and wait to record it
                first.kill()
                time.sleep(6)
            finally:
                postgres("start")
            second.start()
            drain(env, run_ids, counter_file, "worker SIGKILLed in a 10 s Postgres outage, a new one started after it")
        except BaseException:
            print(first.output()[-3000:], second.output()[-3000:])
            raise
        finally:
            first.kill()
            second.kill()


@on_postgres
def test_step_database_errors_fail_the_step_unless_they_are_outages(outage_env, tmp_path, monkeypatch):
    """A step's own database error follows its Retry (here: one attempt, so the run fails)
    unless STEP_DATABASE_ERRORS_ARE_OUTAGES makes it wait for the database and run again."""
    for as_outage, expected in ((False, "failed"), (True, "completed")):
        monkeypatch.setitem(automation_settings.overrides, "STEP_DATABASE_ERRORS_ARE_OUTAGES", as_outage)
        counter_file, go_file = tmp_path / f"query-{as_outage}.log", tmp_path / f"go-{as_outage}"
        run = engine.start("outage_db_step", counter_file=str(counter_file), go_file=str(go_file))
        deadline = time.monotonic() + 30
        while not ow.notes(counter_file):
            assert time.monotonic() < deadline, "the step never started"
            time.sleep(0.05)
        postgres("stop")
        try:
            go_file.touch()  # the step queries now, into the outage
            time.sleep(3)
        finally:
            postgres("start")
        run_id = run.pk
        wait_all_finished([run_id], timeout=60)
        run = db(lambda: WorkflowRun.objects.get(pk=run_id))  # noqa: B023  (called at once)
        assert run.status == expected, (as_outage, run.error)
        if as_outage:
            assert run.data["rows"] >= 1 and len(ow.notes(counter_file)) == 2  # ran again once the database was back
        else:
            assert "connection" in run.error.lower() or "server" in run.error.lower(), run.error


# ---------------------------------------------------------------------- the web process
@on_postgres
def test_engine_calls_during_an_outage_raise_and_start_nothing(outage_env, tmp_path, django_user_model):
    from rest_framework.test import APIClient

    counter_file = tmp_path / "steps.log"
    api = APIClient()
    api.force_authenticate(django_user_model.objects.create_user("outage", password="x"))
    before = outage_env_workflow_count(outage_env)
    postgres("stop")
    try:
        with pytest.raises(DatabaseUnavailableError, match="database is unavailable"):
            engine.start("outage_five", tag=1, counter_file=str(counter_file))
        with pytest.raises(DatabaseUnavailableError, match="nothing was changed"):
            engine.signal("anything", {"x": 1})
        with pytest.raises(DatabaseUnavailableError):
            engine.cancel(1)
        response = api.post("/statezero/runs/signal/", {"signal": "anything"}, format="json")
        assert response.status_code == 503, response.content[:300]
        assert response.json()["error"] == "DatabaseUnavailableError"
        response = api.get("/statezero/runs/")
        assert response.status_code == 503, response.content[:300]
    finally:
        postgres("start")
    outages.close_connections()
    time.sleep(1)
    assert outage_env_workflow_count(outage_env) == before  # nothing reached Temporal without its row
    assert ow.notes(counter_file) == []


def outage_env_workflow_count(env: TemporalTestEnvironment) -> int:
    async def count() -> int:
        return (await env.client.count_workflows('WorkflowType="outage_five"')).count

    return bridge.run_sync(count(), timeout=30)


# ---------------------------------------------------------------------- SQLite locked
@on_sqlite
def test_a_locked_sqlite_file_delays_runs_and_reruns_no_step(outage_env, tmp_path):
    """Another process holds the write lock longer than the busy timeout ("database is locked")."""
    runs = 30
    counter_file = tmp_path / "steps.log"
    run_ids = start_runs(counter_file, runs)
    busy_timeout = float(connection.settings_dict["OPTIONS"].get("timeout", 5))
    hold = busy_timeout + 8
    locked, release = threading.Event(), threading.Event()

    def hold_lock() -> None:
        other = sqlite3.connect(connection.settings_dict["NAME"], timeout=30, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        locked.set()
        release.wait(hold)
        other.execute("ROLLBACK")
        other.close()

    time.sleep(2)
    locker = threading.Thread(target=hold_lock, daemon=True)
    locker.start()
    assert locked.wait(30)
    release.wait(hold)
    locker.join(10)
    drain(outage_env, run_ids, counter_file, f"SQLite file locked {hold:.0f} s")

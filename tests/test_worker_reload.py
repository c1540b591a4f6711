"""A worker runs the code it loaded when it started (semantics: "Workers run the code they started with").

A workflow added while a worker runs fails there with "no workflow is registered", and the message
names the worker (identity, pid, start time) and says to restart it. ``temporal_worker --reload``
restarts the worker when a file changes, as ``runserver`` does: the old worker stops before the
new one starts (never two polling at once), with no traceback, and the new one runs the workflow.
Worker subprocesses on the dev server, each on a task queue of its own.
"""

from __future__ import annotations

import os
import re
import signal
import textwrap
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.db import connection

from django_ai.automation.workflows.core import engine
from django_bridge.conf import automation_settings
from facade import WorkflowStatus, registry
from facade.testing import wait_for
from tests.worker_process import WorkerProcess

STARTED = re.compile(r"worker started: (\S+) \(pid (\d+)\) polls task queue (\S+)")

# The workflow "added while the worker runs": the test process has it (it starts the runs); the
# worker gets it only from the module written into its path, after it started.
ADDED_LATER = textwrap.dedent(
    """
    from datetime import timedelta

    from pydantic import BaseModel

    from django_ai.automation.workflows.core import Retry, complete, get_context, step, workflow


    @workflow("added_later", default_retry=Retry(max_attempts=2, base_delay=timedelta(milliseconds=100)))
    class AddedLater:
        class Context(BaseModel):
            greeted: bool = False

        @step(start=True)
        def greet(self):
            get_context().greeted = True
            return complete()
    """
)

SETTINGS = textwrap.dedent(
    """
    from tests.durability_settings import *  # noqa: F403
    from tests.durability_settings import AUTOMATION

    AUTOMATION = {**AUTOMATION, "WORKFLOW_MODULES": [*AUTOMATION["WORKFLOW_MODULES"], "later_flows"]}
    """
)


@pytest.fixture
def project(tmp_path):
    """A settings module and a workflows module the worker imports, in a directory of their own."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "reload_settings.py").write_text(SETTINGS)
    (code / "later_flows.py").write_text('"""No workflows yet."""\n')
    return code


@pytest.fixture
def added_later():
    """The test process knows ``added_later`` (as a web process with the new code would)."""
    with registry.isolated():
        exec(compile(ADDED_LATER, "added_later_in_the_web_process.py", "exec"), {"__name__": "web_later_flows"})
        yield


@contextmanager
def on_queue(queue: str):
    saved = automation_settings.overrides.get("TASK_QUEUE")
    automation_settings.overrides["TASK_QUEUE"] = queue
    try:
        yield
    finally:
        automation_settings.overrides["TASK_QUEUE"] = saved


def worker_process(dev, project: Path, log: Path, queue: str, *args: str) -> WorkerProcess:
    return WorkerProcess(
        address=dev.client.service_client.config.target_host,
        namespace=dev.client.namespace,
        task_queue=queue,
        db_name=connection.settings_dict["NAME"],
        log_path=log,
        args=args,
        settings="reload_settings",
        pythonpath=(str(project),),
    )


def starts(worker: WorkerProcess) -> list[tuple[str, int]]:
    """The "worker started" lines so far: (identity, pid)."""
    return [(m.group(1), int(m.group(2))) for m in STARTED.finditer(worker.output())]


def wait_for_output(worker: WorkerProcess, predicate, what: str, timeout: float = 60.0):
    try:
        return wait_for(lambda: predicate(worker.output()), timeout=timeout, interval=0.1)
    except AssertionError:
        raise AssertionError(f"{what} within {timeout}s; the worker's output:\n{worker.output()}") from None


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_workflow_the_worker_lacks_fails_naming_the_worker_and_saying_restart_it(dev, project, added_later, tmp_path):
    queue = f"code-{uuid.uuid4().hex[:8]}"
    with worker_process(dev, project, tmp_path / "worker.log", queue) as worker:
        wait_for_output(worker, lambda out: starts(worker), "the worker never started")
        (identity, pid), *_ = starts(worker)
        with on_queue(queue):
            run = engine.start("added_later")
        run = dev.wait_until_finished(run, timeout=60)
    assert run.status == WorkflowStatus.FAILED
    assert "step 'greet' failed after 2 attempts: no workflow is registered as 'added_later'" in run.error
    assert f"The worker that picked this task, {identity} (pid {pid} on " in run.error
    assert re.search(r"started at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", run.error), run.error
    assert "restart the worker to load new code" in run.error and "--reload" in run.error


@pytest.mark.slow
def test_reload_restarts_the_worker_on_a_code_change_and_stops_the_old_one_first(dev, project, added_later, tmp_path):
    queue = f"reload-{uuid.uuid4().hex[:8]}"
    worker = worker_process(dev, project, tmp_path / "worker.log", queue, "--reload")
    try:
        worker.start()
        wait_for_output(worker, lambda out: starts(worker), "the worker never started")
        (_, first_pid), *_ = starts(worker)
        assert first_pid != worker.pid  # the worker runs in a child; this process only supervises

        # The workflow is added to the code while the worker runs: it restarts and runs it.
        flows = project / "later_flows.py"
        flows.write_text(ADDED_LATER)
        deadline = time.monotonic() + 60
        bump = time.time()
        while "changed: stopping the worker" not in worker.output():
            # The reloader compares modification times with those it saw at its first scan, which
            # may come just after "worker started": make the change newer until it is seen.
            assert time.monotonic() < deadline, f"the change was never seen; output:\n{worker.output()}"
            bump += 1
            os.utime(flows, (bump, bump))
            try:
                wait_for(lambda: "changed: stopping the worker" in worker.output(), timeout=3, interval=0.1)
            except AssertionError:
                pass
        wait_for_output(worker, lambda out: len(starts(worker)) >= 2, "the worker never started again")
        pids = [pid for _, pid in starts(worker)]
        assert len(set(pids)) == len(pids)  # each start is a new process
        assert all(gone(pid) for pid in pids[:-1])  # the old workers exited: no two poll at once
        assert worker.alive() and not gone(pids[-1])

        with on_queue(queue):
            run = engine.start("added_later")
        run = dev.wait_until_finished(run, timeout=60)
        assert run.status == WorkflowStatus.COMPLETED, run.error
        assert run.data == {"greeted": True}

        # SIGTERM (what `make dev` sends) stops the worker, then the supervisor, cleanly.
        worker.process.send_signal(signal.SIGTERM)
        assert worker.process.wait(timeout=30) == 0
        assert gone(pids[-1])
        out = worker.output()
        assert out.count("worker stopped") == len(pids)
        assert "Traceback" not in out, out
    finally:
        worker.kill()


@pytest.mark.slow
def test_reload_survives_a_broken_change_and_starts_again_once_it_is_fixed(dev, project, tmp_path):
    queue = f"reload-{uuid.uuid4().hex[:8]}"
    worker = worker_process(dev, project, tmp_path / "worker.log", queue, "--reload")
    flows = project / "later_flows.py"
    try:
        worker.start()
        wait_for_output(worker, lambda out: starts(worker), "the worker never started")
        flows.write_text("def broken(:\n")  # what an editor saves halfway through a change
        bump = time.time()
        deadline = time.monotonic() + 60
        while "starts again when a file changes" not in worker.output():
            assert time.monotonic() < deadline, f"the broken change never stopped the worker:\n{worker.output()}"
            bump += 1
            os.utime(flows, (bump, bump))
            try:
                wait_for(lambda: "starts again when a file changes" in worker.output(), timeout=5, interval=0.1)
            except AssertionError:
                pass
        assert "SyntaxError" in worker.output()  # the child's error, as the developer needs to see it
        assert worker.alive() and len(starts(worker)) == 1

        flows.write_text(ADDED_LATER)
        os.utime(flows, (bump + 1, bump + 1))
        wait_for_output(worker, lambda out: len(starts(worker)) == 2, "the fixed code never started a worker")
        assert "added_later" in worker.output().rsplit("worker on ", 1)[1]  # the new worker has the new workflow
        worker.process.send_signal(signal.SIGTERM)
        assert worker.process.wait(timeout=30) == 0
        assert all(gone(pid) for _, pid in starts(worker))
    finally:
        worker.kill()

"""Workflows for the durability and replay tests (tests/test_durability.py, tests/test_replay.py).

Steps with side effects count them by appending a line to ``<counter_dir>/<step>.count``
(``O_APPEND`` writes are atomic, and files are visible to worker subprocesses), so a test can
prove how often a step's body really ran across kills, restarts, retries and replays.

The module is registered in the test process by importing it, and in worker subprocesses by
``tests/durability_settings.py`` (``AUTOMATION["WORKFLOW_MODULES"]``).
"""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

from pydantic import BaseModel

from django_ai.automation.workflows.core import (
    Retry,
    SubflowResult,
    WorkflowStatus,
    complete,
    fail,
    get_context,
    goto,
    on_fail,
    run_subflow,
    sleep,
    step,
    wait,
    wait_for_event,
    workflow,
)

# How long a blocked step waits for the test's go-ahead before giving up (a safety net, so a
# broken test cannot leave a worker thread spinning forever).
BLOCK_LIMIT_SECONDS = 60.0


def count(counter_dir: str, name: str) -> int:
    """Record one execution of ``name``; returns how many there have been so far."""
    path = Path(counter_dir) / f"{name}.count"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{os.getpid()}\n".encode())
    finally:
        os.close(fd)
    return executions(counter_dir, name)


def executions(counter_dir: str, name: str) -> int:
    """How often ``name`` ran, as recorded by ``count``."""
    path = Path(counter_dir) / f"{name}.count"
    return len(path.read_text().splitlines()) if path.exists() else 0


def executing_pids(counter_dir: str, name: str) -> list[int]:
    path = Path(counter_dir) / f"{name}.count"
    return [int(line) for line in path.read_text().splitlines()] if path.exists() else []


@workflow("durable_three_steps", default_retry=Retry(max_attempts=5, base_delay=timedelta(milliseconds=200)))
class DurableThreeSteps:
    """Three steps; the middle one blocks until the file ``<counter_dir>/proceed`` exists."""

    class Context(BaseModel):
        counter_dir: str
        prepared: bool = False
        processed_by: int = 0
        finished: bool = False

    @step(start=True)
    def prepare(self):
        ctx = get_context()
        count(ctx.counter_dir, "prepare")
        ctx.prepared = True
        return goto(self.process)

    @step()
    def process(self):
        ctx = get_context()
        count(ctx.counter_dir, "process")
        go_ahead = Path(ctx.counter_dir) / "proceed"
        deadline = time.monotonic() + BLOCK_LIMIT_SECONDS
        while not go_ahead.exists():  # a long-running side effect the test controls
            if time.monotonic() > deadline:
                raise TimeoutError(f"{go_ahead} did not appear within {BLOCK_LIMIT_SECONDS}s")
            time.sleep(0.05)
        ctx.processed_by = os.getpid()
        return goto(self.finish)

    @step()
    def finish(self):
        ctx = get_context()
        count(ctx.counter_dir, "finish")
        ctx.finished = True
        return complete()


@workflow("durable_sleeper")
class DurableSleeper:
    """``before`` sleeps once (a durable timer), then runs again and moves on to ``after``."""

    class Context(BaseModel):
        counter_dir: str
        sleep_seconds: float = 3.0
        slept: bool = False
        done: bool = False

    @step(start=True)
    def before(self):
        ctx = get_context()
        count(ctx.counter_dir, "before")
        if not ctx.slept:
            ctx.slept = True
            return sleep(timedelta(seconds=ctx.sleep_seconds))
        return goto(self.after)

    @step()
    def after(self):
        ctx = get_context()
        count(ctx.counter_dir, "after")
        ctx.done = True
        return complete()


# ---------------------------------------------------------------------- replay kinds
@workflow("replay_sleep_loop")
class ReplaySleepLoop:
    class Context(BaseModel):
        rounds: int = 0
        until: int = 3

    @step(start=True)
    def tick(self):
        ctx = get_context()
        ctx.rounds += 1
        if ctx.rounds < ctx.until:
            return sleep(timedelta(milliseconds=50))
        return complete()


@workflow("replay_wait_timeout")
class ReplayWaitTimeout:
    class Context(BaseModel):
        expired: bool = False

    @step(start=True)
    def ask(self):
        return wait.for_signal("never_sent", timeout=timedelta(milliseconds=300), on_timeout=self.expire)

    @step()
    def expire(self):
        get_context().expired = True
        return complete()


@workflow("replay_gate")
class ReplayGate:
    """A gated step (``@wait_for_event`` as a decorator) and a returned wait with a payload."""

    class Context(BaseModel):
        amount: int = 0
        note: str = ""
        handled: bool = False

    @step(start=True)
    def start(self):
        return goto(self.on_payment)

    @wait_for_event("replay_payment")
    @step()
    def on_payment(self):
        return wait.for_signal("replay_note")

    @step()
    def handle(self):
        get_context().handled = True
        return complete()


@workflow("replay_exhausted", default_retry=Retry(max_attempts=2, base_delay=timedelta(milliseconds=100)))
class ReplayExhausted:
    """A step that always raises: its retries run out, @on_fail compensates, the run fails."""

    class Context(BaseModel):
        counter_dir: str
        compensated: bool = False

    @step(start=True)
    def flaky(self):
        count(get_context().counter_dir, "flaky")
        raise RuntimeError("the remote service is down")

    @on_fail
    def compensate(self, run):
        get_context().compensated = True


@workflow("replay_fail_on_fail")
class ReplayFailOnFail:
    class Context(BaseModel):
        reserved: bool = False
        released: bool = False

    @step(start=True)
    def reserve(self):
        get_context().reserved = True
        return goto(self.check)

    @step()
    def check(self):
        return fail("the order is invalid")

    @on_fail
    def release(self, run):
        ctx = get_context()
        completed = set(run.step_executions.filter(status="completed").values_list("step_name", flat=True))
        ctx.released = "reserve" in completed


@workflow("replay_child")
class ReplayChild:
    class Context(BaseModel):
        value: int
        doubled: int = 0

    @step(start=True)
    def double(self):
        ctx = get_context()
        ctx.doubled = ctx.value * 2
        return complete()


@workflow("replay_parent")
class ReplayParent:
    class Context(BaseModel):
        value: int = 21
        result: int = 0
        active_subworkflow_run_id: int | None = None

    @step(start=True)
    def launch(self):
        return run_subflow(ReplayChild, on_complete=self.collect, value=get_context().value)

    @step()
    def collect(self, subflow_result: SubflowResult):
        if subflow_result.status != WorkflowStatus.COMPLETED:
            return fail(f"child failed: {subflow_result.error}")
        get_context().result = subflow_result.context.doubled
        return complete()

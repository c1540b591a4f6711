"""A sleep counts from when the step returned (semantics: "Sleep runs the same step again").

Recording the transition that puts the run to sleep is made slow on purpose (2 s of a 4 s
sleep): the step still runs again about ``sleep`` after it returned, as its row's ``wake_at``
says, not ``sleep`` after the write landed. The margins leave a loaded machine over a second
for the timer to fire and the step's next activity to start.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from pydantic import BaseModel

from django_ai.automation.workflows.core import complete, get_context, sleep, step, workflow
from django_ai.automation.workflows.models import WorkflowStatus
from facade import engine
from temporal_worker import projection
from temporal_worker.protocol import Sleep

SLEEP_SECONDS = 4.0
SLOW_WRITE = 2.0
MARKS: dict[str, float] = {}


@workflow("sleep_timing")
class SleepTiming:
    class Context(BaseModel):
        key: str
        woke: bool = False

    @step(start=True)
    def nap(self):
        ctx = get_context()
        if not ctx.woke:
            ctx.woke = True
            MARKS[f"{ctx.key}:returned"] = time.monotonic()
            return sleep(timedelta(seconds=SLEEP_SECONDS))
        MARKS[f"{ctx.key}:woke"] = time.monotonic()
        return complete()


@pytest.fixture
def slow_sleep_writes(monkeypatch):
    real = projection.record_directive

    def slow(run_id, spec, step, seq, data, directive):
        if isinstance(directive, Sleep):
            time.sleep(SLOW_WRITE)
        return real(run_id, spec, step, seq, data, directive)

    monkeypatch.setattr(projection, "record_directive", slow)


def test_a_sleep_counts_from_the_steps_return_not_from_the_write(dev, slow_sleep_writes):
    run = engine.start("sleep_timing", key="a")
    run = dev.wait_until_finished(run, timeout=30)
    assert run.status == WorkflowStatus.COMPLETED, run.error
    slept = MARKS["a:woke"] - MARKS["a:returned"]
    # Without counting from the return it is at least SLEEP_SECONDS + SLOW_WRITE.
    assert SLEEP_SECONDS - 0.05 <= slept < SLEEP_SECONDS + SLOW_WRITE - 0.7, slept

"""Workflows for the database outage tests (tests/test_database_outage.py).

Their steps touch no database themselves: each sleeps a moment and appends one line to a file
(``O_APPEND`` writes are atomic and survive the worker process), so a test can count how often
each step's code really ran while the database was down.

Registered in the test process by importing this module, and in worker subprocesses by
``tests/durability_settings.py``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from pydantic import BaseModel

from django_ai.automation.workflows.core import Retry, complete, get_context, goto, step, workflow

STEPS = ("s1", "s2", "s3", "s4", "s5")


def note(path: str, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)


def notes(path: str | Path) -> list[str]:
    path = Path(path)
    return path.read_text().splitlines() if path.exists() else []


@workflow("outage_five")
class OutageFive:
    """Five steps of ``step_seconds`` each, with the default retry policy (3 attempts)."""

    class Context(BaseModel):
        tag: int
        counter_file: str
        step_seconds: float = 1.0

    def _work(self, name: str) -> None:
        ctx = get_context()
        time.sleep(ctx.step_seconds)
        note(ctx.counter_file, f"{ctx.tag} {name}")

    @step(start=True)
    def s1(self):
        self._work("s1")
        return goto(self.s2)

    @step()
    def s2(self):
        self._work("s2")
        return goto(self.s3)

    @step()
    def s3(self):
        self._work("s3")
        return goto(self.s4)

    @step()
    def s4(self):
        self._work("s4")
        return goto(self.s5)

    @step()
    def s5(self):
        self._work("s5")
        return complete()


@workflow("outage_db_step", default_retry=Retry(max_attempts=1))
class OutageDbStep:
    """One step whose own code queries the database once the test lets it (one attempt only)."""

    class Context(BaseModel):
        counter_file: str
        go_file: str
        rows: int = -1

    @step(start=True)
    def query(self):
        from django_bridge.models import WorkflowRun

        ctx = get_context()
        note(ctx.counter_file, "query")
        deadline = time.monotonic() + 60
        while not Path(ctx.go_file).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        ctx.rows = WorkflowRun.objects.count()
        return complete()

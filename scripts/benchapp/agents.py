"""The agent of ``scripts/bench_agents.py``: one instance per ``Account``, handling its pings.

Not discovered on its own (the module is not named ``automations``): ``bench_agents.py`` lists it
in ``AUTOMATION["WORKFLOW_MODULES"]``, so the other benches do not route events to it.

The handlers note when they started, the first thing they do, in the file named by
``BENCH_AGENTS_LOG`` (one ``O_APPEND`` write per line, so the worker's threads and processes
never interleave a line). The bench reads it to time routing and to count executions; the
attempt number tells a Temporal retry from a second delivery.
"""

from __future__ import annotations

import os
import time

from pydantic import BaseModel
from temporalio import activity

from django_ai.automation.agents.core import agent, handler

LOG_ENV = "BENCH_AGENTS_LOG"


def note(kind: str, key: object, started: float) -> None:
    path = os.environ.get(LOG_ENV)
    if not path:
        return
    attempt = activity.info().attempt if activity.in_activity() else 0
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{kind} {key} {started:.6f} {attempt}\n".encode())
    finally:
        os.close(fd)


@agent("bench_account", spawn_on="account_opened", match={"id": "{{ ctx.account_id }}"})
class AccountAgent:
    class Context(BaseModel):
        account_id: int
        pings: int = 0

    @classmethod
    def create_context(cls, event):
        return cls.Context(account_id=int(event.entity_id))

    @handler("account_opened")
    def opened(self, ctx):
        """Runs once, on the occurrence that spawned the instance: the instance is live."""
        note("opened", ctx.account_id, time.time())

    @handler("ping_sent", match={"account_id": "{{ ctx.account_id }}"})
    def pinged(self, ctx, event):
        started = time.time()
        ctx.pings += 1  # the Context changes with every event, as an agent's state does
        note("ping", event.entity_id, started)

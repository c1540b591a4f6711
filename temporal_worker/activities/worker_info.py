"""Which worker of this process picked an activity, and since when it runs: for the message of a
task that names code this worker does not have (a workflow or callback added since it started)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = ["WorkerInfo", "missing_code_hint", "worker_started"]


@dataclass(frozen=True)
class WorkerInfo:
    identity: str  # what Temporal lists as the poller (``pid@host`` by default)
    task_queue: str
    pid: int
    host: str
    started_at: datetime


# By task queue: a process may run more than one worker (the tests do).
_workers: dict[str, WorkerInfo] = {}


def worker_started(identity: str, task_queue: str) -> WorkerInfo:
    """Note that this process now runs a worker on ``task_queue`` (``build_worker`` calls it)."""
    info = WorkerInfo(identity, task_queue, os.getpid(), socket.gethostname(), datetime.now(UTC))
    _workers[task_queue] = info
    return info


def missing_code_hint(task_queue: str) -> str:
    """What to add to "no workflow is registered": which worker looked, since when, what to run.

    A worker runs the code it imported when it started; a workflow added or renamed since then
    is unknown to it until it restarts.
    """
    info = _workers.get(task_queue)
    if info is None:  # an activity run outside a worker built by build_worker
        who = f"The worker that picked this task (pid {os.getpid()} on {socket.gethostname()});"
    else:
        who = (
            f"The worker that picked this task, {info.identity} (pid {info.pid} on {info.host}), "
            f"started at {info.started_at:%Y-%m-%d %H:%M:%S} UTC;"
        )
    return (
        f"{who} it runs the code it loaded when it started: restart the worker to load new code "
        "(python manage.py temporal_worker; in development, --reload restarts it on code changes)."
    )

"""Worker bootstrap: the interpreter workflow and the step activity on one task queue."""

from __future__ import annotations

import concurrent.futures
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from temporal_worker.activities import dispatch
from temporal_worker.interpreter import InterpreterWorkflow

__all__ = ["build_worker"]


def build_worker(client: Client, task_queue: str | None = None, *, max_concurrent_steps: int | None = None, **kwargs: Any) -> Worker:
    """A worker for every registered workflow.

    Steps are synchronous activities on a thread pool: the ORM is synchronous, and a slow
    step must never block the event loop that answers queries and heartbeats.
    """
    from django_bridge.conf import automation_settings as s

    threads = int(max_concurrent_steps or s.MAX_CONCURRENT_STEPS)
    return Worker(
        client,
        task_queue=task_queue or str(s.TASK_QUEUE),
        workflows=[InterpreterWorkflow],
        activities=[dispatch],
        activity_executor=concurrent.futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="step"),
        max_concurrent_activities=threads,
        **kwargs,
    )

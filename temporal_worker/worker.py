"""Worker bootstrap: the interpreter workflow and the step activity on one task queue."""

from __future__ import annotations

import concurrent.futures
import threading
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from temporal_worker import metrics
from temporal_worker.activities import dispatch, worker_started
from temporal_worker.workflows import EventWorkflow, InterpreterWorkflow

__all__ = ["StepExecutor", "build_worker"]


class StepExecutor(concurrent.futures.ThreadPoolExecutor):
    """The thread pool that runs steps; shutting it down closes its threads' DB connections.

    Django connections belong to the thread that opened them. With persistent connections
    (``CONN_MAX_AGE``) an idle step thread would keep its connection open after the worker
    stopped, which for example blocks dropping a test database on Postgres.
    """

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        threads = len(self._threads)
        if threads and not self._shutdown:
            # One task per thread: the barrier keeps a thread from taking two.
            barrier = threading.Barrier(threads)
            futures = [self.submit(_close_connections, barrier) for _ in range(threads)]
            concurrent.futures.wait(futures, timeout=10)
        super().shutdown(wait, cancel_futures=cancel_futures)


def _close_connections(barrier: threading.Barrier) -> None:
    from django.db import connections

    connections.close_all()
    try:
        barrier.wait(timeout=5)
    except threading.BrokenBarrierError:
        pass


def build_worker(
    client: Client, task_queue: str | None = None, *, max_concurrent_steps: int | None = None, **kwargs: Any
) -> Worker:
    """A worker for every registered workflow.

    Steps are synchronous activities on a thread pool: the ORM is synchronous, and a slow
    step must never block the event loop that answers queries and heartbeats. With metrics
    served, the worker counts runs and signals (``metrics.MetricsInterceptor``); tracing comes
    with the client's interceptors.

    The worker hosts only the library's own workflows, which run no user code and import the
    standard library, temporalio and the pure protocol modules only (import contracts and
    ``tests/test_architecture.py`` hold them to that). They are deterministic by
    construction, so they run outside temporalio's sandbox: the sandbox re-imports a
    workflow's modules for every run and proxies every call, which cost about half of the
    worker's CPU per run. The replay tests still run them in the sandbox, where a
    non-deterministic call would fail.

    A workflow task waits ``STICKY_QUEUE_TIMEOUT`` seconds on this worker's own queue (the
    worker has the run in memory) before Temporal gives it to any worker with the whole
    history. Temporal's 10 seconds is the default: a worker killed mid-run has its runs taken
    over that soon. A worker still working through one signal to thousands of runs after
    that long has part of its backlog handed back to it to replay from the start; raising
    the setting avoids that, at the price of a killed worker's runs waiting as long.
    """
    from django_bridge.conf import automation_settings as s

    threads = int(max_concurrent_steps or s.MAX_CONCURRENT_STEPS)
    kwargs["interceptors"] = [*kwargs.get("interceptors", ()), *metrics.worker_interceptors()]
    queue = task_queue or str(s.TASK_QUEUE)
    # Which worker picked a task, and since when, for tasks naming code it lacks (restart it).
    worker_started(kwargs.get("identity") or client.identity, queue)
    kwargs.setdefault("workflow_runner", UnsandboxedWorkflowRunner())
    kwargs.setdefault("sticky_queue_schedule_to_start_timeout", timedelta(seconds=float(s.STICKY_QUEUE_TIMEOUT)))
    return Worker(
        client,
        task_queue=queue,
        workflows=[InterpreterWorkflow, EventWorkflow],
        activities=[dispatch],
        activity_executor=StepExecutor(max_workers=threads, thread_name_prefix="step"),
        max_concurrent_activities=threads,
        **kwargs,
    )

"""What ``build_worker`` asks of temporalio's worker: steps on a thread pool of the configured
size, the library's workflows outside the sandbox, and the sticky queue timeout."""

from __future__ import annotations

import uuid
from datetime import timedelta

from temporalio.worker import UnsandboxedWorkflowRunner

from django_bridge.conf import automation_settings
from temporal_worker.worker import build_worker


def _config(temporal_dev, **kwargs):
    # A queue of its own: the client refuses a second worker on one queue, even one never run.
    worker = build_worker(temporal_dev.client, f"worker-config-{uuid.uuid4().hex[:8]}", **kwargs)
    try:
        return worker.config()
    finally:
        worker.config()["activity_executor"].shutdown()


def test_the_worker_runs_steps_on_a_pool_of_the_configured_size_outside_the_sandbox(temporal_dev):
    config = _config(temporal_dev, max_concurrent_steps=3)
    assert config["max_concurrent_activities"] == 3
    assert config["activity_executor"]._max_workers == 3
    assert isinstance(config["workflow_runner"], UnsandboxedWorkflowRunner)


def test_workflow_tasks_wait_for_the_worker_that_has_the_run_for_sticky_queue_timeout(temporal_dev):
    # Temporal's default, so the runs of a killed worker are taken over as soon as they were.
    assert _config(temporal_dev)["sticky_queue_schedule_to_start_timeout"] == timedelta(seconds=10)
    automation_settings.overrides["STICKY_QUEUE_TIMEOUT"] = 25
    try:
        assert _config(temporal_dev)["sticky_queue_schedule_to_start_timeout"] == timedelta(seconds=25)
    finally:
        automation_settings.overrides.pop("STICKY_QUEUE_TIMEOUT")

"""Prometheus metrics: ``manage.py temporal_worker --metrics-port`` serves the SDK's and the library's.

The worker runs as a real process (a Temporal runtime serves metrics once per process), on its
own task queue of the session's dev server; the test starts runs there and scrapes
``http://127.0.0.1:<port>/metrics``.
"""

from __future__ import annotations

import io
import re
import socket
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest
from django.core.checks import Error
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings

from django_bridge.checks import check_settings
from django_bridge.conf import automation_settings
from facade import engine
from facade.testing import wait_for
from temporal_worker import metrics
from tests.test_cli import ROOT, command_env

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int) -> dict[tuple[str, frozenset], float]:
    """The samples of the endpoint: (name, labels) -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        assert response.status == 200
        text = response.read().decode()
    samples = {}
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if match and not line.startswith("#"):
            name, labels, value = match.groups()
            samples[(name, frozenset(LABEL.findall(labels or "")))] = float(value)
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels`` (0 when none)."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


class MetricsWorker:
    """One ``temporal_worker --metrics-port`` process on ``queue``; its output goes to ``log``."""

    def __init__(self, address: str, queue: str, log: Path) -> None:
        self.address, self.queue, self.log = address, queue, log
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def start(self) -> MetricsWorker:
        argv = ["temporal_worker", "--task-queue", self.queue, "--metrics-port", str(self.port)]
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "django", *argv],
                cwd=ROOT,
                env={
                    **command_env(self.address),
                    "PYTHONUNBUFFERED": "1",
                    # The test's own database (on Postgres the test database is not the settings' one).
                    "DJANGO_SETTINGS_MODULE": "tests.durability_settings",
                    "DURABILITY_DB_NAME": connection.settings_dict["NAME"],
                },
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_for(lambda: "metrics at" in self.output() or self.proc.poll() is not None, 60, message="worker silent")
        assert self.proc.poll() is None, self.output()
        assert f"metrics at http://0.0.0.0:{self.port}/metrics" in self.output()
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def scrape(self) -> dict[tuple[str, frozenset], float]:
        return scrape(self.port)

    def stop(self) -> None:
        """SIGTERM: the worker finishes what it runs and exits."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def metrics_workers(temporal_dev, transactional_db, tmp_path):
    """Makes ``temporal_worker`` processes serving metrics on one queue, where ``engine`` starts runs."""
    queue = f"metrics-{uuid.uuid4().hex[:8]}"
    address = temporal_dev.client.service_client.config.target_host
    workers: list[MetricsWorker] = []

    def make() -> MetricsWorker:
        workers.append(MetricsWorker(address, queue, tmp_path / f"worker-{len(workers) + 1}.log").start())
        return workers[-1]

    temporal_dev.activate()
    automation_settings.overrides["TASK_QUEUE"] = queue
    try:
        yield temporal_dev, make
    finally:
        automation_settings.overrides["TASK_QUEUE"] = temporal_dev.task_queue
        for worker in workers:
            worker.stop()


def test_the_worker_serves_sdk_and_library_metrics(metrics_workers):
    env, make_worker = metrics_workers
    worker = make_worker()
    done = [engine.start("order_fulfillment", order_id=n) for n in (1, 2)]
    failed = engine.start("final_check", all_validations_passed=False)
    waiting = engine.start("signal_demo")
    env.wait_until(waiting, lambda r: r.waiting_signal == "go")
    assert engine.signal("go", {"who": "metrics"}, run_id=waiting.pk) == 1
    for run in [*done, failed, waiting]:
        env.wait_until_finished(run)
    assert failed.status == "failed" and waiting.status == "completed"

    def counted() -> dict | None:
        # The row is written before the workflow closes: the run counters (and the SDK's, which
        # count the workflow task that closed it) follow a moment later.
        samples = worker.scrape()
        closed = value(samples, "automation_runs_completed_total") + value(samples, "automation_runs_failed_total")
        sdk_closed = value(samples, "temporal_workflow_completed", workflow_type="order_fulfillment")
        return samples if closed >= 4 and sdk_closed >= 2 else None

    samples = wait_for(counted, timeout=30, message="the run counters never reached 4 closed runs")
    # The library's: exact, since a replay of history counts nothing again.
    assert value(samples, "automation_runs_started_total", workflow="order_fulfillment") == 2
    assert value(samples, "automation_runs_started_total", workflow="signal_demo") == 1
    assert value(samples, "automation_runs_completed_total", workflow="order_fulfillment") == 2
    assert value(samples, "automation_runs_completed_total", workflow="signal_demo") == 1
    assert value(samples, "automation_runs_failed_total", workflow="final_check") == 1
    assert value(samples, "automation_runs_failed_total", workflow="order_fulfillment") == 0
    assert value(samples, "automation_signals_delivered_total", workflow="signal_demo", signal="go") == 1
    for step in ("confirm_payment", "reserve_inventory", "ship_order"):
        labels = {"workflow": "order_fulfillment", "step": step}
        assert value(samples, "automation_step_duration_seconds_count", **labels) == 2
        assert value(samples, "automation_step_duration_seconds_sum", **labels) > 0
        assert value(samples, "automation_step_duration_seconds_bucket", le="3600", **labels) == 2
    assert value(samples, "automation_projection_write_seconds_count", write="directive") >= 9
    assert value(samples, "automation_projection_write_seconds_sum", write="directive") > 0
    # The SDK's, on the same endpoint.
    assert value(samples, "temporal_workflow_task_execution_latency_count") > 0
    assert (
        value(samples, "temporal_activity_execution_latency_count", activity_type="order_fulfillment.ship_order") == 2
    )
    assert value(samples, "temporal_workflow_completed", workflow_type="order_fulfillment") == 2


@pytest.mark.slow
def test_a_replayed_history_counts_nothing_twice(metrics_workers):
    """A run begun on one worker and finished on another: the second replays its history first."""
    env, make_worker = metrics_workers
    first = make_worker()
    run = engine.start("signal_demo")
    env.wait_until(run, lambda r: r.waiting_signal == "go")
    assert value(first.scrape(), "automation_runs_started_total", workflow="signal_demo") == 1
    first.stop()

    second = make_worker()
    assert engine.signal("go", {"who": "second"}, run_id=run.pk) == 1
    assert env.wait_until_finished(run).data["who"] == "second"

    def closed() -> dict | None:
        samples = second.scrape()
        return samples if value(samples, "automation_runs_completed_total", workflow="signal_demo") else None

    samples = wait_for(closed, timeout=30, message="the second worker never counted the run completed")
    # It re-executed the run's start while replaying (uncounted), then handled the signal live.
    assert value(samples, "temporal_workflow_task_replay_latency_count", workflow_type="signal_demo") >= 1
    assert value(samples, "automation_runs_started_total", workflow="signal_demo") == 0
    assert value(samples, "automation_signals_delivered_total", workflow="signal_demo", signal="go") == 1
    assert value(samples, "automation_runs_completed_total", workflow="signal_demo") == 1
    assert value(samples, "automation_step_duration_seconds_count", workflow="signal_demo", step="wait_for_go") == 0


# ---------------------------------------------------------------------------- bad ports


def test_a_busy_metrics_port_is_one_clear_error():
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(CommandError, match=rf"cannot serve metrics at 0\.0\.0\.0:{port}: .*in use.*--metrics-port"):
            call_command("temporal_worker", "--metrics-port", str(port), stdout=io.StringIO())
    with pytest.raises(CommandError, match=r"--metrics-port 70000 is not a port number \(1-65535\)"):
        call_command("temporal_worker", "--metrics-port", "70000", stdout=io.StringIO())
    assert not metrics.enabled()  # nothing was served, nothing recorded


def test_metrics_port_setting_is_checked():
    with override_settings(AUTOMATION={"METRICS_PORT": "9464"}):
        errors = [e for e in check_settings() if isinstance(e, Error)]
    assert [e.id for e in errors] == ["automation.E030"]
    assert "'9464' is not a port number" in errors[0].msg
    with override_settings(AUTOMATION={"METRICS_PORT": 9464}):
        assert [e for e in check_settings() if isinstance(e, Error)] == []


def test_recording_is_a_no_op_while_metrics_are_off():
    assert not metrics.enabled()
    metrics.runs_started.inc(workflow="x")
    metrics.step_duration.observe(1.0, workflow="x", step="y")
    with metrics.projection_write.time(write="directive"):
        pass
    assert metrics.worker_interceptors() == []
    assert all(i._metric is None for i in metrics.INSTRUMENTS)


def test_labels_are_checked_once_enabled():
    from temporalio.common import MetricMeter

    metrics.enable(MetricMeter.noop)
    try:
        metrics.runs_started.inc(workflow="x")
        with pytest.raises(ValueError, match=r"takes the labels \['workflow'\], got \['step'\]"):
            metrics.runs_started.inc(step="x")
        with pytest.raises(ValueError, match=r"takes the labels \['workflow', 'step'\]"):
            metrics.step_duration.observe(1.0, workflow="x")
        metrics.reconciler_repairs.inc()
    finally:
        metrics.disable()

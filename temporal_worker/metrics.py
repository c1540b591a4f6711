"""The library's own Prometheus metrics, served with the Temporal SDK's on the worker's metrics port.

They are instruments of the Temporal runtime's metric meter (``Runtime.metric_meter``), so they
appear on the endpoint the SDK serves for its own metrics (``PrometheusConfig``): one port per
worker, no second exporter. ``telemetry.serve_metrics`` (what ``manage.py temporal_worker
--metrics-port`` calls) builds that runtime and calls ``enable``; until then every recording
here is a no-op that returns at once, so a process without metrics pays one attribute check.

Where each is recorded:

- runs started / completed / failed / cancelled and signals delivered: in the worker, by
  ``MetricsInterceptor`` around each run's workflow (the only place that sees every run, whether
  a web request, a step, an event or the Temporal UI started or signalled it). It records
  nothing while the workflow replays its history, so a worker restart or a cache eviction
  counts nothing twice.
- step duration: the step activity, around the step's method (``activities/steps.py``).
- projection write latency: each projection write (``projection.py``), by kind of write.
- reconciler repairs: ``reconciler_repairs.inc()``, by the code that repairs a run.

The names, types and labels are listed in docs/operations.md (keep the two in step).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, TypeVar

import temporalio.worker
from temporalio import workflow
from temporalio.common import MetricMeter
from temporalio.exceptions import CancelledError, FailureError

from temporal_worker.protocol import EVENT_WORKFLOW, RESCHEDULE_SIGNAL

__all__ = [
    "BUCKETS",
    "INSTRUMENTS",
    "Counter",
    "Histogram",
    "MetricsInterceptor",
    "disable",
    "enable",
    "enabled",
    "projection_write",
    "reconciler_repairs",
    "runs_cancelled",
    "runs_completed",
    "runs_failed",
    "runs_started",
    "signals_delivered",
    "step_duration",
    "worker_interceptors",
]

T = TypeVar("T")

# The meter of the runtime that serves metrics; None: metrics are off in this process.
_meter: MetricMeter | None = None
_NOTHING = nullcontext()  # reusable: what Histogram.time answers while metrics are off


def enabled() -> bool:
    return _meter is not None


class _Instrument:
    """A named metric with fixed label names; recordings bind label values once and reuse them."""

    kind = ""

    def __init__(self, name: str, description: str, labels: Sequence[str] = ()) -> None:
        self.name = name
        self.description = description
        self.labels = tuple(labels)
        self._metric: Any = None
        self._bound: dict[tuple[str, ...], Any] = {}

    def _create(self, meter: MetricMeter) -> Any:
        raise NotImplementedError

    def _reset(self) -> None:
        self._metric = None
        self._bound = {}

    def _series(self, labels: Mapping[str, Any]) -> Any:
        """The metric bound to these label values (created on first use, then cached)."""
        try:
            key = tuple(str(labels[name]) for name in self.labels)
        except KeyError:
            key = None
        if key is None or len(labels) != len(self.labels):
            raise ValueError(f"metric {self.name} takes the labels {list(self.labels)}, got {sorted(labels)}")
        series = self._bound.get(key)
        if series is None:
            if self._metric is None:
                assert _meter is not None
                self._metric = self._create(_meter)
            series = self._metric.with_additional_attributes(dict(zip(self.labels, key, strict=True)))
            self._bound[key] = series  # a race only binds the same series twice
        return series


class Counter(_Instrument):
    kind = "counter"

    def _create(self, meter: MetricMeter) -> Any:
        return meter.create_counter(self.name, self.description)

    def inc(self, amount: int = 1, **labels: Any) -> None:
        """Add ``amount`` to the series of these label values (a no-op while metrics are off)."""
        if _meter is None:
            return
        self._series(labels).add(amount)


class Histogram(_Instrument):
    kind = "histogram"

    def __init__(self, name: str, description: str, labels: Sequence[str], buckets: Sequence[float]) -> None:
        super().__init__(name, description, labels)
        self.buckets = tuple(buckets)

    def _create(self, meter: MetricMeter) -> Any:
        return meter.create_histogram_float(self.name, self.description, "s")

    def observe(self, seconds: float, **labels: Any) -> None:
        """Record one duration in seconds (a no-op while metrics are off)."""
        if _meter is None:
            return
        self._series(labels).record(seconds)

    def time(self, **labels: Any) -> AbstractContextManager[Any]:
        """Observe how long the block took, whether it returned or raised."""
        if _meter is None:
            return _NOTHING
        return self._timing(labels)

    @contextmanager
    def _timing(self, labels: dict[str, Any]) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.observe(time.perf_counter() - started, **labels)

    def timed(self, fn: Callable[[], T], **labels: Any) -> T:
        """``fn()``, observed when it returns (a write that raised is not a latency)."""
        if _meter is None:
            return fn()
        started = time.perf_counter()
        result = fn()
        self.observe(time.perf_counter() - started, **labels)
        return result


# Seconds. A step is user code (an API call, an email, a report): milliseconds to an hour
# (the default STEP_TIMEOUT). A projection write is one transaction of one or two statements.
STEP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
WRITE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)

runs_started = Counter(
    "automation_runs_started_total",
    "Runs whose workflow began on this worker (a run retried with retry_current_step begins again).",
    ("workflow",),
)
runs_completed = Counter("automation_runs_completed_total", "Runs that completed.", ("workflow",))
runs_failed = Counter("automation_runs_failed_total", "Runs that ended failed.", ("workflow",))
runs_cancelled = Counter("automation_runs_cancelled_total", "Runs that ended cancelled.", ("workflow",))
signals_delivered = Counter(
    "automation_signals_delivered_total",
    "Signals delivered to a run's workflow (engine.signal, the HTTP API, the CLI, the Temporal UI, model events).",
    ("workflow", "signal"),
)
step_duration = Histogram(
    "automation_step_duration_seconds",
    "How long a step's method ran, per attempt (an attempt that raised included).",
    ("workflow", "step"),
    STEP_BUCKETS,
)
projection_write = Histogram(
    "automation_projection_write_seconds",
    "How long one projection write took to commit (WorkflowRun / StepExecution rows), by kind of write.",
    ("write",),
    WRITE_BUCKETS,
)
reconciler_repairs = Counter(
    "automation_reconciler_repairs_total",
    "Runs whose projection the reconciler found out of step with Temporal and repaired.",
)

INSTRUMENTS: tuple[_Instrument, ...] = (
    runs_started,
    runs_completed,
    runs_failed,
    runs_cancelled,
    signals_delivered,
    step_duration,
    projection_write,
    reconciler_repairs,
)

# What PrometheusConfig.histogram_bucket_overrides needs: the core's default buckets are for
# milliseconds, ours record seconds.
BUCKETS: dict[str, list[float]] = {i.name: list(i.buckets) for i in INSTRUMENTS if isinstance(i, Histogram)}


def enable(meter: MetricMeter) -> None:
    """Record into ``meter`` from now on (the meter of the runtime that serves the endpoint)."""
    global _meter
    for instrument in INSTRUMENTS:
        instrument._reset()
    _meter = meter


def disable() -> None:
    global _meter
    _meter = None
    for instrument in INSTRUMENTS:
        instrument._reset()


# ---------------------------------------------------------------------------- the run metrics


class MetricsInterceptor(temporalio.worker.Interceptor):
    """Counts runs and signals in the worker, around each run's workflow (not the event workflows)."""

    def workflow_interceptor_class(
        self, input: temporalio.worker.WorkflowInterceptorClassInput
    ) -> type[temporalio.worker.WorkflowInboundInterceptor]:
        return _RunMetrics


def _live() -> bool:
    # Replaying history (a worker restarted, a run evicted from the cache) re-executes what was
    # already counted; queries and update validators are not history and count nothing anyway.
    return not workflow.unsafe.is_replaying_history_events()


class _RunMetrics(temporalio.worker.WorkflowInboundInterceptor):
    """Runs in the workflow's sandbox: only temporalio calls and the runtime's meter, no I/O."""

    async def execute_workflow(self, input: temporalio.worker.ExecuteWorkflowInput) -> Any:
        info = workflow.info()
        name = info.workflow_type
        if name == EVENT_WORKFLOW:
            return await super().execute_workflow(input)
        # A run that continued as new goes on; it did not start again.
        if info.continued_run_id is None and _live():
            runs_started.inc(workflow=name)
        try:
            result = await super().execute_workflow(input)
        except (asyncio.CancelledError, CancelledError):
            if _live():
                runs_cancelled.inc(workflow=name)
            raise
        except FailureError:
            # What fails a workflow (the interpreter's WorkflowFailed, or an error it let through);
            # other exceptions fail only the workflow task, which Temporal retries.
            if _live():
                runs_failed.inc(workflow=name)
            raise
        if _live():
            runs_completed.inc(workflow=name)
        return result

    async def handle_signal(self, input: temporalio.worker.HandleSignalInput) -> None:
        name = workflow.info().workflow_type
        if name != EVENT_WORKFLOW and input.signal != RESCHEDULE_SIGNAL and _live():
            signals_delivered.inc(workflow=name, signal=input.signal)
        await super().handle_signal(input)


def worker_interceptors() -> list[temporalio.worker.Interceptor]:
    """The worker's interceptors for metrics: none while metrics are off."""
    return [MetricsInterceptor()] if enabled() else []

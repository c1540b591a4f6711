"""``manage.py temporal_worker``: run the worker for every registered workflow.

A worker runs the code it imported when it started. ``--reload`` (development) restarts it when
a Python file changes, as ``runserver`` does: this process supervises a child process that runs
the worker under ``django.utils.autoreload.run_with_reloader``. On a change the child stops its
worker (the polls end, running steps finish) and exits with status 3; only then does this process
start the next child, so two workers of one ``--reload`` never poll at once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

from django.core.checks import run_checks
from django.core.management.base import CommandError

from django_bridge.checks import TEMPORAL_TAG, WORKER_CHECK_ID, metrics_port_problem

from ._cli import AutomationCommand

# The exit status that asks for a restart (Django's autoreloader uses the same).
RELOAD_STATUS = 3
# How long a stopping worker may take to finish its running steps before the process exits
# anyway (Temporal retries a step cut short, after its heartbeat timeout).
STOP_DEADLINE = 30.0


class Command(AutomationCommand):
    help = "Run a Temporal worker that executes the workflows of this project."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--task-queue", help="Task queue to poll (default: AUTOMATION['TASK_QUEUE']).")
        parser.add_argument("--max-concurrent-steps", type=int, help="Steps run at once (threads).")
        parser.add_argument(
            "--metrics-port",
            type=int,
            help="Serve Prometheus metrics (Temporal's and the library's) on this port at /metrics "
            "(default: AUTOMATION['METRICS_PORT']; none when unset).",
        )
        parser.add_argument(
            "--reload",
            action="store_true",
            help="Development: restart the worker when a Python file changes (as runserver does). "
            "Without it, restart the worker yourself to load new code.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from django.utils import autoreload

        if options["reload"] and os.environ.get(autoreload.DJANGO_AUTORELOAD_ENV) != "true":
            raise SystemExit(self.supervise())

        # A port that cannot be served is a mistake in the command line: said before anything else.
        options["metrics_url"] = self.serve_metrics(options.get("metrics_port"))
        # "No worker polls the task queue" is what starting this worker answers.
        problems = [
            p for p in run_checks(tags=[TEMPORAL_TAG], include_deployment_checks=True) if p.id != WORKER_CHECK_ID
        ]
        if problems:
            raise CommandError("\n".join(f"{p.msg}\nHINT: {p.hint}" for p in problems))
        runner = WorkerRunner(self, options)
        code = runner.run_reloading() if options["reload"] else runner.run_until_signalled()
        self.stdout.write("worker stopped")
        if code:
            raise SystemExit(code)

    # ------------------------------------------------------------------ --reload: the supervisor
    def supervise(self) -> int:
        """Run the worker in a child process, again each time it exits to reload; returns its last status.

        SIGINT and SIGTERM are passed on to the child as SIGTERM (it stops its worker cleanly, then
        exits, and so do we). A child that fails after a reload (a syntax error in the new code)
        is started again at the next change of a file this process watches.
        """
        from django.utils import autoreload

        argv = autoreload.get_child_arguments()
        env = {**os.environ, autoreload.DJANGO_AUTORELOAD_ENV: "true"}
        child: subprocess.Popen[bytes] | None = None
        stopping = False  # a flag, not a threading.Event: a signal handler must take no lock

        def stop(signum: int, frame: Any) -> None:
            nonlocal stopping
            stopping = True
            if child is not None:
                child.send_signal(signal.SIGTERM)  # nothing if it has exited

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        self.stdout.write("watching for file changes: the worker restarts when code changes (--reload)")
        self.stdout.flush()
        reloaded = False
        while True:
            # Files as they were when this child started: a fix saved while it was failing counts.
            baseline = snapshot()
            child = subprocess.Popen(argv, env=env, close_fds=False)
            if stopping:  # a signal that came before `child` was set
                child.send_signal(signal.SIGTERM)
            code = child.wait()
            if stopping:
                return code
            if code == RELOAD_STATUS:
                reloaded = True
                continue
            if code == 0 or not reloaded:
                return code
            self.stderr.write(
                f"the worker exited with status {code} after a reload; it starts again when a file changes "
                "(Ctrl-C to stop)"
            )
            self.stderr.flush()
            if not wait_for_change(baseline, lambda: stopping):
                return code

    def serve_metrics(self, port: int | None) -> str | None:
        """Serve /metrics on ``port`` (or ``METRICS_PORT``); the URL, or None when metrics are off."""
        from django_bridge.conf import automation_settings as s
        from temporal_worker import client as bridge
        from temporal_worker import telemetry

        source = "--metrics-port" if port is not None else "AUTOMATION['METRICS_PORT']"
        port = s.METRICS_PORT if port is None else port
        if port is None:
            return None
        problem = metrics_port_problem(port)
        if problem:
            raise CommandError(f"{source} {problem}.")
        address = telemetry.metrics_address(str(s.METRICS_HOST), port)
        try:
            telemetry.serve_metrics(address)
        except (ValueError, RuntimeError) as exc:
            raise CommandError(f"{exc}. Choose a free port with {source}, or stop what listens there.") from None
        # The worker's client must be created on the runtime that serves the metrics.
        bridge.reset_client()
        return f"http://{address}/metrics"


def snapshot() -> dict[Any, float]:
    """The modification times of this process's Python files (what Django's StatReloader watches)."""
    from django.utils import autoreload

    return dict(autoreload.StatReloader().snapshot_files())


def wait_for_change(baseline: dict[Any, float], stopping: Callable[[], bool], interval: float = 1.0) -> bool:
    """Wait until a file differs from ``baseline``; False if asked to stop first."""
    while snapshot() == baseline:
        time.sleep(interval)
        if stopping():
            return False
    return True


class WorkerRunner:
    """The worker of one process: built on the process's Temporal loop, stopped on request."""

    def __init__(self, command: Command, options: dict[str, Any]) -> None:
        from django_bridge.conf import automation_settings as s
        from temporal_worker import client as bridge

        self.command = command
        self.stdout = command.stdout
        self.queue = options.get("task_queue") or str(s.TASK_QUEUE)
        self.max_concurrent_steps = options.get("max_concurrent_steps")
        self.metrics_url = options.get("metrics_url")
        self.loop = bridge.loop()
        self.stop_event = asyncio.Event()
        self.stopped = threading.Event()

    def serve(self) -> None:
        """Run the worker until ``stop()`` (blocks the calling thread)."""
        from django_bridge.conf import automation_settings as s
        from facade import registry
        from temporal_worker import client as bridge
        from temporal_worker.dispatch import sweep_forever
        from temporal_worker.reconcile import reconcile_forever, reconcile_settings
        from temporal_worker.worker import build_worker

        reconcile_interval = reconcile_settings()[0]
        self.stdout.write(
            f"worker on {s.TEMPORAL_ADDRESS} namespace={s.TEMPORAL_NAMESPACE} task_queue={self.queue}; "
            f"workflows: {', '.join(registry.names()) or 'none'}"
            + (f"; metrics at {self.metrics_url}" if self.metrics_url else "")
        )
        self.stdout.flush()

        async def serve() -> None:
            client = await bridge.get_client()
            worker = build_worker(client, self.queue, max_concurrent_steps=self.max_concurrent_steps)
            async with worker:
                self.stdout.write(
                    f"worker started: {client.identity} (pid {os.getpid()}) polls task queue {self.queue}"
                )
                self.stdout.flush()
                # Model event changes whose dispatch was lost (Temporal down at commit, a crash):
                # sent now, then periodically, as a safety net.
                background = [asyncio.get_running_loop().create_task(sweep_forever(float(s.EVENT_SWEEP_INTERVAL)))]
                if reconcile_interval:
                    # Rows whose workflow was terminated, timed out, reset or lost in Temporal
                    # follow it (semantics: "The projection follows Temporal").
                    background.append(asyncio.get_running_loop().create_task(reconcile_forever(reconcile_interval)))
                try:
                    await self.stop_event.wait()  # leaving the block shuts down: running steps finish first
                finally:
                    for task in background:
                        task.cancel()

        try:
            bridge.run_sync(serve())
        finally:
            self.stopped.set()

    def stop(self) -> None:
        """Ask the worker to stop (from any thread)."""
        self.loop.call_soon_threadsafe(self.stop_event.set)

    def run_until_signalled(self) -> int:
        # Signals reach the main thread; the worker lives on the background loop.
        def request_stop(signum: int, frame: Any) -> None:
            self.stop()

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        self.serve()
        return 0

    def run_reloading(self) -> int:
        """The child of ``--reload``: the worker on Django's autoreloader; returns the exit status.

        ``run_with_reloader`` runs the worker on a thread and watches files on this one; a change
        raises ``SystemExit(3)`` here, and SIGINT / SIGTERM stop it (a terminal's Ctrl-C reaches
        this process and the supervisor, which passes it on: the second one is ignored). Either way
        the worker is stopped before the process exits, so its polls end first.
        """
        from django.utils import autoreload

        changed: list[str] = []
        leaving = False

        def note_change(sender: Any, file_path: Any, **kwargs: Any) -> None:
            changed.append(str(file_path))  # answers None: the reloader goes on to reload

        def on_signal(signum: int, frame: Any) -> None:
            nonlocal leaving
            if leaving:
                return
            leaving = True
            raise _Stop(signum)

        def take_signals(sender: Any, **kwargs: Any) -> None:
            # Sent on this (the main) thread once the reloader runs, after run_with_reloader set
            # its own SIGTERM handler (sys.exit), which a second signal would run mid-shutdown.
            signal.signal(signal.SIGINT, on_signal)
            signal.signal(signal.SIGTERM, on_signal)

        autoreload.file_changed.connect(note_change, weak=False)
        autoreload.autoreload_started.connect(take_signals, weak=False)
        try:
            autoreload.run_with_reloader(self.serve)
            code = 0  # Ctrl-C before the reloader ran: it swallowed the KeyboardInterrupt
        except _Stop:
            code = 0
        except SystemExit as exc:  # 3: a file changed; 0: SIGTERM before the reloader ran
            code = exc.code if isinstance(exc.code, int) else 0
        leaving = True
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if code == RELOAD_STATUS:
            self.stdout.write(f"{changed[-1] if changed else 'code'} changed: stopping the worker to load the new code")
        self.stop()
        if not self.stopped.wait(STOP_DEADLINE):
            self.command.stderr.write(
                f"the worker did not stop within {STOP_DEADLINE:g}s (a step still running); exiting anyway: "
                "Temporal runs that step again after its heartbeat timeout"
            )
        return code


class _Stop(Exception):
    """SIGINT or SIGTERM in the reloading child: leave the reloader's loop and stop the worker."""

"""``manage.py temporal_worker``: run the worker for every registered workflow."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from django.core.checks import run_checks
from django.core.management.base import CommandError

from django_bridge.checks import TEMPORAL_TAG, metrics_port_problem

from ._cli import AutomationCommand


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

    def handle(self, *args: Any, **options: Any) -> None:
        from django_bridge.conf import automation_settings as s
        from facade import registry
        from temporal_worker import client as bridge
        from temporal_worker.dispatch import sweep_forever
        from temporal_worker.reconcile import reconcile_forever, reconcile_settings
        from temporal_worker.worker import build_worker

        # A port that cannot be served is a mistake in the command line: said before anything else.
        metrics_url = self.serve_metrics(options.get("metrics_port"))
        reconcile_interval = reconcile_settings()[0]
        problems = run_checks(tags=[TEMPORAL_TAG], include_deployment_checks=True)
        if problems:
            raise CommandError("\n".join(f"{p.msg}\nHINT: {p.hint}" for p in problems))
        queue = options.get("task_queue") or s.TASK_QUEUE
        self.stdout.write(
            f"worker on {s.TEMPORAL_ADDRESS} namespace={s.TEMPORAL_NAMESPACE} task_queue={queue}; "
            f"workflows: {', '.join(registry.names()) or 'none'}"
            + (f"; metrics at {metrics_url}" if metrics_url else "")
        )
        self.stdout.flush()

        loop = bridge.loop()
        stop = asyncio.Event()

        async def serve() -> None:
            client = await bridge.get_client()
            async with build_worker(client, queue, max_concurrent_steps=options.get("max_concurrent_steps")):
                # Model event changes whose dispatch was lost (Temporal down at commit, a crash):
                # sent now, then periodically, as a safety net.
                background = [asyncio.get_running_loop().create_task(sweep_forever(float(s.EVENT_SWEEP_INTERVAL)))]
                if reconcile_interval:
                    # Rows whose workflow was terminated, timed out, reset or lost in Temporal
                    # follow it (semantics: "The projection follows Temporal").
                    background.append(asyncio.get_running_loop().create_task(reconcile_forever(reconcile_interval)))
                try:
                    await stop.wait()  # leaving the block shuts down: running steps finish first
                finally:
                    for task in background:
                        task.cancel()

        # Signals reach the main thread; the worker lives on the background loop.
        def request_stop(signum: int, frame: Any) -> None:
            loop.call_soon_threadsafe(stop.set)

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        bridge.run_sync(serve())
        self.stdout.write("worker stopped")

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

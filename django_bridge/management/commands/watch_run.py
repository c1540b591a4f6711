"""``manage.py watch_run <id>``: a live progress bar until the run finishes.

Exit code 0 when the run completed, 1 when it failed or was cancelled, 2 on ``--timeout``.
Prints the run page first (absolute when ``AUTOMATION["SITE_URL"]`` is set).
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import CommandError

from facade import WorkflowStatus

from ._cli import AutomationCommand, run_page_link

BAR_WIDTH = 30


def describe(run: Any) -> str:
    display = run.current_step_display
    pct = max(0.0, min(1.0, float(run.progress or 0)))
    filled = round(pct * BAR_WIDTH)
    bar = "#" * filled + "-" * (BAR_WIDTH - filled)
    line = f"[{bar}] {pct * 100:3.0f}%  {run.status:<9}  {run.current_step}"
    if display.get("action_name") and run.status == WorkflowStatus.SUSPENDED:
        line += f"  (action: {display['action_name']})"
    elif run.waiting_signal:
        line += f"  (waiting for: {run.waiting_signal})"
    return line


def outcome(run: Any) -> str:
    if run.status == WorkflowStatus.COMPLETED:
        c = run.completion_display or {}
        text = " - ".join(x for x in (c.get("display_title"), c.get("display_subtitle")) if x)
        return f"run {run.pk} ({run.name}) completed" + (f": {text}" if text else "")
    return f"run {run.pk} ({run.name}) {run.status}" + (f": {run.error}" if run.error else "")


def watch(command: AutomationCommand, run_id: int, *, interval: float = 0.5, timeout: float | None = None) -> Any:
    """Redraw the progress line (``\\r``) until the run finishes; returns the finished run.

    While no worker polls the run's task queue (or Temporal is unreachable) it says so on a line
    of its own, with the command to run, and again in the ``--timeout`` error.
    """
    from django_bridge.models import WorkflowRun
    from temporal_worker import pollers

    out = command.stdout
    tty = out.isatty()
    started = time.monotonic()
    last, width = "", 0
    told = pollers.POLLING  # the worker state last reported
    while True:
        try:
            run = WorkflowRun.objects.get(pk=run_id)
        except WorkflowRun.DoesNotExist:
            raise CommandError(f"there is no workflow run with id {run_id}.") from None
        line = describe(run)
        if tty:
            line += f"  {time.monotonic() - started:5.1f}s"
        if line != last:
            out.write("\r" + line.ljust(width), ending="")
            out.flush()
            last, width = line, max(width, len(line))
        if run.is_finished:
            out.write("")
            return run
        worker = pollers.run_queue_status(run.task_queue)  # cached: a describe every few seconds
        if worker.state != told and (worker.needs_attention or told != pollers.POLLING):
            out.write("")  # end the progress line
            if worker.needs_attention:
                out.write(f"run {run_id}: {worker.message}")
            else:
                out.write(f"run {run_id}: a worker polls task queue {worker.task_queue!r} again")
            told, last = worker.state, ""
        if timeout is not None and time.monotonic() - started > timeout:
            out.write("")
            why = f": {worker.message}" if worker.needs_attention else "."
            raise CommandError(f"run {run_id} is still {run.status} after {timeout:g}s{why}", returncode=2)
        time.sleep(interval)


def finish(run: Any) -> str:
    if run.status != WorkflowStatus.COMPLETED:
        raise CommandError(outcome(run), returncode=1)
    return outcome(run)


class Command(AutomationCommand):
    help = "Show a live progress bar of a workflow run until it finishes (exit 0 completed, 1 failed/cancelled)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("run_id", type=int, help="The WorkflowRun id.")
        parser.add_argument("--interval", type=float, default=0.5, help="Seconds between refreshes (default 0.5).")
        parser.add_argument("--timeout", type=float, default=None, help="Give up after this many seconds (exit 2).")

    def handle(self, *args: Any, **options: Any) -> None:
        page = run_page_link(options["run_id"])
        if page:
            self.stdout.write(f"run page: {page}")
        run = watch(self, options["run_id"], interval=options["interval"], timeout=options["timeout"])
        self.stdout.write(finish(run))

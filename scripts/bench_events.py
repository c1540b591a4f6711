"""Model events: how fast an occurrence reaches its callback, how exactly a scheduled event
fires, and what events cost a save.

- ``event_to_callback_p50_ms``: the commit of a save whose immediate event occurs, to the start
  of its ``@on_event`` callback (``--n`` saves, one at a time). Target: 100 ms or less; the
  implementation this API comes from polled every 1-5 minutes.
- ``scheduled_fire_error_p50_ms``: for ``--scheduled`` events due within a minute, the start of
  their ``@event_workflow`` run's first step (offset zero) minus its due time. Target: 100 ms or
  less. The events are all saved, and their runs created and waiting, before the first is due
  (the script says so if saving took longer), so the figure is about firing, not about a
  backlog of saves. ``fire_breakdown_ms`` splits it along the run's Temporal history (medians
  over ``--histories`` runs; see ``fire_breakdown``): how late the timer fired and how much of
  that the workflow task that set it cost, the workflow task the timer scheduled (queued, run),
  the step's activity reaching the worker, and the library's work before the step's own code.
  ``fire_worker_cpu_ms_per_event``: the worker process's CPU while they came due, per event
  (its event workflow and its run).
- ``events_dispatch_per_s`` / ``plain_saves_per_s``: entities saved per second, each save in
  its own transaction (as in a web request), with one immediate event and one callback, and the
  same model without events; ``events_save_ratio`` is their ratio.

Layout: this process plays the Django application (it saves, and dispatches on commit); the
library's worker runs in a second process (``manage.py temporal_worker``, with this script's
settings), as in production, so the saves and dispatches measured here do not compete with the
worker for one interpreter lock. Both use one SQLite database (``django_bridge.sqlite.SQLITE_OPTIONS``)
in a temporary directory and the Temporal dev server from the virtualenv, which this process
starts. ``--in-process-worker`` runs the worker in this process instead (the former layout).
The callbacks and steps note when they started in a file both processes append to (one clock:
one machine). The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from typing import Any

import bench_common
from bench_common import AppendedLines, cpu_seconds, percentile, setup_paths

MARKS_ENV = "BENCH_EVENTS_MARKS"


def configure(db_path: str, address: str | None = None, task_queue: str | None = None) -> None:
    automation: dict[str, Any] = {"EVENT_SWEEP_INTERVAL": 3600.0}
    if address:
        automation["TEMPORAL_ADDRESS"] = address
    if task_queue:
        automation["TASK_QUEUE"] = task_queue
    bench_common.configure(
        db_path,
        secret_key="bench-events-not-secret",
        installed_apps=["django.contrib.contenttypes", "django.contrib.auth", "django_bridge", "benchapp"],
        automation=automation,
    )


def mark(kind: str, key: int) -> None:
    """Note that ``kind`` code for ticket ``key`` started now (one line, appended atomically)."""
    line = f"{kind} {key} {time.time():.6f}\n".encode()
    fd = os.open(os.environ[MARKS_ENV], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def declare() -> None:
    """The subscribers, declared once Django is set up (in the worker's process, and in this one,
    where the registry must know them too)."""
    from pydantic import BaseModel

    from django_ai.automation.events.callbacks import on_event
    from django_ai.automation.workflows.core import complete, event_workflow, get_context, step

    @on_event(event_name="ticket_opened")
    def ticket_opened(event: Any) -> None:
        mark("opened", int(event.entity_id))

    @event_workflow(event_name="ticket_due", name="bench_ticket_due")
    class TicketDue:
        class Context(BaseModel):
            ticket_id: int

        @classmethod
        def create_context(cls, event=None):
            return cls.Context(ticket_id=int(event.entity_id))

        @step(start=True)
        def fire(self):
            mark("fired", get_context().ticket_id)
            return complete()


class Marks(AppendedLines):
    """Reads the marks as they are appended: kind -> ticket pk -> first start (epoch s)."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.seen: dict[str, dict[int, float]] = {"opened": {}, "fired": {}}

    def read(self) -> dict[str, dict[int, float]]:
        for line in self.new_lines():
            kind, key, at = line.split()
            self.seen[kind].setdefault(int(key), float(at))
        return self.seen

    def has(self, kind: str, key: int) -> bool:
        return key in self.read()[kind]


def state() -> str:
    """What the database says, for a message about something that did not happen."""
    from django.db.models import Count, F

    from django_bridge.models import Event, WorkflowRun

    events = dict(Event.objects.values_list("status").annotate(n=Count("id")))
    undispatched = Event.objects.filter(dispatched_version__lt=F("version")).count()
    runs = dict(WorkflowRun.objects.values_list("status").annotate(n=Count("id")))
    return f"events by status {events} ({undispatched} not dispatched), runs by status {runs}"


# The marks carry the times: polling faster only burns the CPU the worker needs.
wait_until = functools.partial(bench_common.wait_until, script="bench_events", interval=0.02, detail=state)


# ---------------------------------------------------------------------- the worker process
def run_worker(args: argparse.Namespace) -> int:
    """``--worker``: this script's settings and subscribers, then ``manage.py temporal_worker``
    until SIGTERM."""
    setup_paths()
    os.environ[MARKS_ENV] = args.marks
    configure(args.db, args.address, args.task_queue)
    import django
    from django.core.management import call_command

    django.setup()
    declare()
    call_command("temporal_worker", task_queue=args.task_queue, max_concurrent_steps=args.steps)
    return 0


# ---------------------------------------------------------------------- the fire breakdown
def fire_breakdown(client: Any, samples: list[tuple[str, float, float]]) -> dict[str, float]:
    """Medians, in ms, of where the time between a run's due time and its step's code went.

    ``samples``: (workflow id, due time, step code start) in epoch seconds. Read from each
    run's history, around the step's ActivityTaskScheduled:

    - ``timer``: how late after the due time the last timer before it fired. A timer is set for
      ``due - workflow.now()``, the time its workflow task started, but the server starts it when
      that task completes: ``timer_set_late`` is how long the task that set it took, which the
      timer inherits;
    - ``task_queued`` / ``task_run``: the workflow task the fired timer scheduled, from scheduled
      to started (dispatch to the worker) and from started to completed (the worker's work);
    - ``activity_queued``: the step's activity from scheduled to started (zero when the worker
      got it eagerly, in the answer to its completed workflow task);
    - ``step_prelude``: from the activity's start to the step's own code (the library loads the
      run and writes the projection).

    Runs whose due time had passed when they started have no timer; they are left out.
    """
    from temporalio.api.enums.v1 import EventType

    from temporal_worker import client as bridge

    async def histories() -> list[Any]:
        return [await client.get_workflow_handle(wid).fetch_history() for wid, _, _ in samples]

    names = ("timer_set_late", "timer", "task_queued", "task_run", "activity_queued", "step_prelude", "total")
    parts: dict[str, list[float]] = {k: [] for k in names}
    for history, (_, due, step_at) in zip(bridge.run_sync(histories(), timeout=120), samples, strict=True):
        events = {e.event_id: e for e in history.events}

        def at(e: Any) -> float:
            return e.event_time.ToMicroseconds() / 1e6

        activity = next(
            e
            for e in events.values()
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
            and e.activity_task_scheduled_event_attributes.activity_type.name.endswith(".fire")
        )
        fired = next(
            (
                e
                for i, e in sorted(events.items(), reverse=True)
                if i < activity.event_id and e.event_type == EventType.EVENT_TYPE_TIMER_FIRED
            ),
            None,
        )
        if fired is None:
            continue
        timer = events[fired.timer_fired_event_attributes.started_event_id]
        set_by = events[timer.timer_started_event_attributes.workflow_task_completed_event_id]
        set_started = events[set_by.workflow_task_completed_event_attributes.started_event_id]
        completed = events[activity.activity_task_scheduled_event_attributes.workflow_task_completed_event_id]
        started = events[completed.workflow_task_completed_event_attributes.started_event_id]
        act_started = next(
            e
            for e in events.values()
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
            and e.activity_task_started_event_attributes.scheduled_event_id == activity.event_id
        )
        spans = {
            "timer_set_late": (at(set_started), at(set_by)),
            "timer": (due, at(fired)),
            "task_queued": (at(fired), at(started)),
            "task_run": (at(started), at(completed)),
            "activity_queued": (at(activity), at(act_started)),
            "step_prelude": (at(act_started), step_at),
            "total": (due, step_at),
        }
        for name, (a, b) in spans.items():
            parts[name].append((b - a) * 1000)
    result = {k: round(statistics.median(v), 1) for k, v in parts.items() if v}
    result["runs"] = len(parts["total"])
    return result


# ---------------------------------------------------------------------- the bench
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100, help="saves whose callback latency is measured (default 100)")
    parser.add_argument("--scheduled", type=int, default=200, help="scheduled events due within a minute (default 200)")
    parser.add_argument("--saves", type=int, default=300, help="saves per kind for the save-rate figures (default 300)")
    parser.add_argument(
        "--histories", type=int, default=20, help="runs whose history splits the fire error (default 20)"
    )
    parser.add_argument(
        "--lead",
        type=float,
        default=20.0,
        help="seconds from the first scheduled save to the first due time (default 20)",
    )
    parser.add_argument("--steps", type=int, default=32, help="the worker's concurrent steps (default 32)")
    parser.add_argument(
        "--server-arg",
        action="append",
        default=[],
        help="an extra argument for the dev server, e.g. --server-arg=--dynamic-config-value --server-arg=KEY=VALUE",
    )
    parser.add_argument(
        "--in-process-worker", action="store_true", help="run the worker in this process (shares its interpreter lock)"
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--address", help=argparse.SUPPRESS)
    parser.add_argument("--task-queue", help=argparse.SUPPRESS)
    parser.add_argument("--marks", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return run_worker(args)

    setup_paths()
    # Stopped by SIGTERM: still stop the worker and the dev server on the way out.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    tmp = tempfile.TemporaryDirectory(prefix="automation-bench-events-")
    db_path = os.path.join(tmp.name, "bench.sqlite3")
    marks_path = os.environ[MARKS_ENV] = os.path.join(tmp.name, "marks")
    task_queue = f"bench-events-{uuid.uuid4().hex[:8]}"
    configure(db_path, task_queue=task_queue)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", run_syncdb=True, verbosity=0)
    declare()

    from benchapp.models import PlainTicket, Ticket
    from django.db import transaction
    from django.utils import timezone

    from django_bridge.models import WorkflowRun
    from facade.testing import TemporalTestEnvironment

    marks = Marks(marks_path)
    worker: subprocess.Popen[str] | None = None
    with TemporalTestEnvironment(
        start_worker=args.in_process_worker,
        task_queue=task_queue,
        max_concurrent_steps=args.steps,
        heartbeat_timeout=10.0,  # the library's default, as the worker process has it
        dev_server_args=args.server_arg,
    ) as env:
        try:  # the worker stops before the server does
            if args.in_process_worker:
                layout = "worker in this process"
            else:
                address = env.client.service_client.config.target_host
                worker = bench_common.start_worker(
                    [sys.executable, os.path.abspath(__file__), "--worker", "--db", db_path, "--address", address]
                    + ["--task-queue", task_queue, "--marks", marks_path, "--steps", str(args.steps)],
                    script="bench_events",
                )
                layout = f"worker in process {worker.pid}"
            print(f"bench_events: dev server up, {layout}, task queue {task_queue}", flush=True)
            # Warm up: the first dispatch connects, the first workflows load code.
            warm = [Ticket.objects.create().pk for _ in range(5)]
            wait_until(lambda: all(marks.has("opened", pk) for pk in warm), 60, "the warm-up callbacks")

            # 1. commit -> callback start, one save at a time.
            latencies = []
            for _ in range(args.n):
                with transaction.atomic():
                    # Registered before the save's own: on_commit callbacks run in order, so this
                    # one notes the commit before the dispatch is handed over (or, synchronous,
                    # made).
                    committed: list[float] = []
                    transaction.on_commit(lambda c=committed: c.append(time.time()))
                    ticket = Ticket.objects.create()
                pk = ticket.pk
                wait_until(lambda pk=pk: marks.has("opened", pk), 30, f"the callback of ticket {pk}")
                latencies.append((marks.seen["opened"][pk] - committed[0]) * 1000)
            p50 = statistics.median(latencies)
            print(
                f"commit -> @on_event callback start, {args.n} saves: p50 {p50:.1f} ms, "
                f"p95 {percentile(latencies, 0.95):.1f} ms",
                flush=True,
            )

            # 2. Scheduled events due within a minute: the start of each run's step vs its due time.
            lead = args.lead
            now = timezone.now()
            due: dict[int, float] = {}
            for i in range(args.scheduled):
                at = now + timedelta(seconds=lead + 40 * i / max(1, args.scheduled - 1))
                t = Ticket.objects.create(opened=False, due_at=at)
                due[t.pk] = at.timestamp()
            saved = time.time()

            def runs_waiting() -> bool:
                return WorkflowRun.objects.filter(name="bench_ticket_due", status="waiting").count() >= args.scheduled

            wait_until(lambda: runs_waiting() or any(pk in marks.read()["fired"] for pk in due), 120, "the runs")
            ready = time.time()
            worker_pid = worker.pid if worker is not None else os.getpid()
            cpu_before = cpu_seconds(worker_pid)
            first_due = min(due.values())
            if ready > first_due:
                print(
                    f"bench_events: saving the scheduled events and creating their runs took "
                    f"{ready - now.timestamp():.1f} s, past the first due time: the fire error includes that backlog"
                )
            wait_until(lambda: all(pk in marks.read()["fired"] for pk in due), 180, "the scheduled events")
            fired = marks.seen["fired"]
            # What the worker spent while the events came due: each one's event workflow (occur,
            # load, deliver) and its run (timer, step).
            fire_cpu_ms = (cpu_seconds(worker_pid) - cpu_before) * 1000 / args.scheduled
            errors = [(fired[pk] - due[pk]) * 1000 for pk in due]
            fire_p50 = statistics.median(errors)
            print(
                f"scheduled fire error, {args.scheduled} events due within a minute "
                f"(saved in {saved - now.timestamp():.1f} s, runs ready {first_due - ready:.1f} s before the first was due): "
                f"p50 {fire_p50:.1f} ms, p95 {percentile(errors, 0.95):.1f} ms, min {min(errors):.1f} ms",
                flush=True,
            )
            step = max(1, args.scheduled // max(1, args.histories))
            sampled = sorted(due)[::step][: args.histories]
            ids = dict(
                WorkflowRun.objects.filter(
                    name="bench_ticket_due", event__entity_id__in=[str(pk) for pk in sampled]
                ).values_list("event__entity_id", "temporal_workflow_id")
            )
            breakdown = fire_breakdown(env.client, [(ids[str(pk)], due[pk], fired[pk]) for pk in sampled])
            print(f"fire error by stage, median of {len(sampled)} runs (ms): {json.dumps(breakdown)}", flush=True)
            print(f"worker CPU while they came due: {fire_cpu_ms:.1f} ms per scheduled event", flush=True)

            # 3. saves per second with and without events (each save its own transaction).
            def rate(model: Any) -> tuple[float, list[int]]:
                pks = []
                began = time.perf_counter()
                for _ in range(args.saves):
                    pks.append(model.objects.create().pk)
                return args.saves / (time.perf_counter() - began), pks

            plain, _ = rate(PlainTicket)
            with_events, pks = rate(Ticket)
            plain = (plain + rate(PlainTicket)[0]) / 2  # again, after: the same conditions on both sides
            ratio = with_events / plain
            print(
                f"saves/s: {with_events:.0f} with an immediate event and a callback, {plain:.0f} without; "
                f"ratio {ratio:.3f}",
                flush=True,
            )
            wait_until(lambda: all(marks.has("opened", pk) for pk in pks), 120, "the save-rate callbacks")
        finally:
            bench_common.stop_worker(worker)

    result = {
        "event_to_callback_p50_ms": round(p50, 1),
        "event_to_callback_p95_ms": round(percentile(latencies, 0.95), 1),
        "scheduled_fire_error_p50_ms": round(fire_p50, 1),
        "scheduled_fire_error_p95_ms": round(percentile(errors, 0.95), 1),
        "fire_breakdown_ms": breakdown,
        "fire_worker_cpu_ms_per_event": round(fire_cpu_ms, 1),
        "events_dispatch_per_s": round(with_events, 1),
        "plain_saves_per_s": round(plain, 1),
        "events_save_ratio": round(ratio, 3),
        "layout": "in-process" if args.in_process_worker else "worker-process",
        "n": args.n,
        "scheduled": args.scheduled,
        "saves": args.saves,
    }
    print(json.dumps(result))
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())

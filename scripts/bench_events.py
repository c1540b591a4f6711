"""Model events: how fast an occurrence reaches its callback, how exactly a scheduled event
fires, and what events cost a save.

- ``event_to_callback_p50_ms``: the commit of a save whose immediate event occurs, to the start
  of its ``@on_event`` callback (``--n`` saves, one at a time). Target: 100 ms or less; the
  implementation this API comes from polled every 1-5 minutes.
- ``scheduled_fire_error_p50_ms``: for ``--scheduled`` events due within a minute, the start of
  their ``@event_workflow`` run (offset zero) minus its due time. Target: 100 ms or less.
- ``events_dispatch_per_s`` / ``plain_saves_per_s``: entities saved per second, each save in
  its own transaction (as in a web request), with one immediate event and one callback, and the
  same model without events; ``events_save_ratio`` is their ratio.

Behind it: the Temporal dev server from the virtualenv, the library's worker in this process,
SQLite with ``django_bridge.sqlite.SQLITE_OPTIONS`` in a temporary directory. The last line
printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from datetime import timedelta
from typing import Any

STARTED: dict[int, float] = {}  # ticket pk -> when its callback started
FIRED: dict[int, float] = {}  # ticket pk -> when its event workflow's first step started
LOCK = threading.Lock()


def configure(db_path: str) -> None:
    from django.conf import settings

    from django_bridge.sqlite import SQLITE_OPTIONS

    settings.configure(
        SECRET_KEY="bench-events-not-secret",
        DEBUG=False,
        USE_TZ=True,
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "django_bridge", "benchapp"],
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": db_path,
                "OPTIONS": SQLITE_OPTIONS,
                "CONN_MAX_AGE": 600,
            }
        },
        AUTOMATION={"EVENT_SWEEP_INTERVAL": 3600.0},
        LOGGING={
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {"console": {"class": "logging.StreamHandler"}},
            "loggers": {"django_temporal_automation": {"handlers": ["console"], "level": "WARNING"}},
        },
    )


def declare() -> None:
    """The subscribers, declared once Django is set up."""
    from pydantic import BaseModel

    from django_ai.automation.events.callbacks import on_event
    from django_ai.automation.workflows.core import complete, event_workflow, get_context, step

    @on_event(event_name="ticket_opened")
    def ticket_opened(event: Any) -> None:
        with LOCK:
            STARTED.setdefault(int(event.entity_id), time.time())

    @event_workflow(event_name="ticket_due", name="bench_ticket_due")
    class TicketDue:
        class Context(BaseModel):
            ticket_id: int

        @classmethod
        def create_context(cls, event=None):
            return cls.Context(ticket_id=int(event.entity_id))

        @step(start=True)
        def fire(self):
            with LOCK:
                FIRED.setdefault(get_context().ticket_id, time.time())
            return complete()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench_events: {what} did not happen within {timeout}s")
        time.sleep(0.01)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100, help="saves whose callback latency is measured (default 100)")
    parser.add_argument("--scheduled", type=int, default=200, help="scheduled events due within a minute (default 200)")
    parser.add_argument("--saves", type=int, default=300, help="saves per kind for the save-rate figures (default 300)")
    args = parser.parse_args(argv)

    here = os.path.dirname(os.path.abspath(__file__))
    for path in (here, os.path.dirname(here)):
        if path not in sys.path:
            sys.path.insert(0, path)
    tmp = tempfile.TemporaryDirectory(prefix="automation-bench-events-")
    configure(os.path.join(tmp.name, "bench.sqlite3"))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", run_syncdb=True, verbosity=0)
    declare()

    from benchapp.models import PlainTicket, Ticket
    from django.db import transaction
    from django.utils import timezone

    from facade.testing import TemporalTestEnvironment

    with TemporalTestEnvironment(max_concurrent_steps=32) as env:
        print(f"bench_events: dev server and worker up (task queue {env.task_queue})", flush=True)
        # Warm up: the first dispatch connects, the first workflows load code.
        for _ in range(5):
            Ticket.objects.create()
        wait_until(lambda: len(STARTED) >= 5, 60, "the warm-up callbacks")

        # 1. commit -> callback start, one save at a time.
        latencies = []
        for _ in range(args.n):
            with transaction.atomic():
                ticket = Ticket.objects.create()
                committed: list[float] = []
                transaction.on_commit(lambda c=committed: c.append(time.time()))
            pk = ticket.pk
            wait_until(lambda pk=pk: pk in STARTED, 30, f"the callback of ticket {pk}")
            # on_commit callbacks run in order: ours ran right after the commit, before the dispatch.
            latencies.append((STARTED[pk] - committed[0]) * 1000)
        p50 = statistics.median(latencies)
        print(f"commit -> @on_event callback start, {args.n} saves: p50 {p50:.1f} ms, p95 {percentile(latencies, 0.95):.1f} ms")

        # 2. scheduled events due within a minute: start of the event workflow's step vs its due time.
        now = timezone.now()
        due = {}
        for i in range(args.scheduled):
            at = now + timedelta(seconds=15 + 40 * i / max(1, args.scheduled - 1))
            t = Ticket.objects.create(opened=False, due_at=at)
            due[t.pk] = at.timestamp()
        wait_until(lambda: all(pk in FIRED for pk in due), 180, "the scheduled events")
        errors = [(FIRED[pk] - due[pk]) * 1000 for pk in due]
        fire_p50 = statistics.median(errors)
        print(
            f"scheduled fire error, {args.scheduled} events due within a minute: p50 {fire_p50:.1f} ms, "
            f"p95 {percentile(errors, 0.95):.1f} ms, min {min(errors):.1f} ms"
        )

        # 3. saves per second with and without events (each save its own transaction).
        def rate(model: Any) -> float:
            began = time.perf_counter()
            for _ in range(args.saves):
                model.objects.create()
            return args.saves / (time.perf_counter() - began)

        plain = rate(PlainTicket)
        with_events = rate(Ticket)
        plain = (plain + rate(PlainTicket)) / 2  # again, after: the same conditions on both sides
        ratio = with_events / plain
        print(f"saves/s: {with_events:.0f} with an immediate event and a callback, {plain:.0f} without; ratio {ratio:.2f}")
        wait_until(lambda: len(STARTED) >= 5 + args.n + args.saves, 120, "the save-rate callbacks")

    result = {
        "event_to_callback_p50_ms": round(p50, 1),
        "event_to_callback_p95_ms": round(percentile(latencies, 0.95), 1),
        "scheduled_fire_error_p50_ms": round(fire_p50, 1),
        "scheduled_fire_error_p95_ms": round(percentile(errors, 0.95), 1),
        "events_dispatch_per_s": round(with_events, 1),
        "plain_saves_per_s": round(plain, 1),
        "events_save_ratio": round(ratio, 3),
        "n": args.n,
        "scheduled": args.scheduled,
        "saves": args.saves,
    }
    print(json.dumps(result))
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())

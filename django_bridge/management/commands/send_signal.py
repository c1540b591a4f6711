"""``manage.py send_signal <name> [--payload JSON] [--run-id N]``: wake runs waiting on a signal.

Prints how many runs it reached and where to see them: the run page with ``--run-id``, the runs
page otherwise (absolute links when ``AUTOMATION["SITE_URL"]`` is set).
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import CommandError

from ._cli import AutomationCommand, page_link, run_page_link


class Command(AutomationCommand):
    help = (
        "Send a signal to every run waiting on it (or one run with --run-id); prints how many it reached, "
        "and the signals runs wait on when it reached none."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("name", help="The signal name, e.g. review_completed (events: event:<name>).")
        parser.add_argument(
            "--payload", default=None, help="Context fields to merge, as a JSON object: '{\"approved\": true}'."
        )
        parser.add_argument("--run-id", type=int, default=None, help="Only this run.")

    def handle(self, *args: Any, **options: Any) -> None:
        from facade import engine

        payload = None
        if options["payload"] is not None:
            try:
                payload = json.loads(options["payload"])
            except ValueError as exc:
                raise CommandError(
                    f"--payload is not valid JSON ({exc}); pass an object like '{{\"approved\": true}}'."
                ) from None
        result = engine.send_signal(options["name"], payload, run_id=options["run_id"])
        reached = result.reached
        self.stdout.write(f"signal {options['name']!r} reached {reached} run{'s' if reached != 1 else ''}")
        if result.ignored_keys:
            self.stdout.write(f"ignored payload keys (not Context fields): {', '.join(result.ignored_keys)}")
        if reached == 0:
            self.stdout.write(self._waiting_on())
        elif options["run_id"] is not None:
            page = run_page_link(options["run_id"])
            if page:
                self.stdout.write(f"run page: {page}")
        else:
            page = page_link(self._runs_page())
            if page:
                self.stdout.write(f"run pages: {page}")

    @staticmethod
    def _runs_page() -> str | None:
        from django.urls import NoReverseMatch, reverse

        try:
            return reverse("django_bridge:runs-page")
        except NoReverseMatch:  # the app's URLs are mounted without their namespace
            return None

    def _waiting_on(self) -> str:
        """Which signals runs are waiting on now: a name nobody waits on is often a typo."""
        from django.db.models import Count

        from django_bridge.models import WorkflowRun
        from facade import WorkflowStatus

        waiting = (
            WorkflowRun.objects.filter(status=WorkflowStatus.SUSPENDED)
            .exclude(waiting_signal="")
            .values("waiting_signal")
            .annotate(n=Count("id"))
            .order_by("waiting_signal")
        )
        names = [f"{w['waiting_signal']} ({w['n']} run{'s' if w['n'] != 1 else ''})" for w in waiting]
        if not names:
            return "no run is waiting on a signal"
        return "runs are waiting on: " + ", ".join(names)

"""``manage.py start_run <name> --kw key=value ...``: start a workflow run.

Values are parsed as JSON when they parse (``--kw user_id=123 --kw tags='["a"]'``), else
taken as strings. ``--watch`` then follows the run like ``watch_run``.
"""

from __future__ import annotations

from typing import Any

from ._cli import AutomationCommand, parse_kwargs


class Command(AutomationCommand):
    help = "Start a workflow run: start_run <name> --kw key=value ... [--watch]."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("name", help="The workflow name, as in @workflow('name').")
        parser.add_argument("--kw", action="append", metavar="KEY=VALUE", help="A start argument (repeatable).")
        parser.add_argument(
            "--watch", action="store_true", help="Follow the run with a progress bar until it finishes."
        )
        parser.add_argument("--interval", type=float, default=0.5, help="Refresh interval of --watch (seconds).")

    def handle(self, *args: Any, **options: Any) -> None:
        from django_bridge.api.serializers import run_page_url
        from facade import engine

        from .watch_run import finish, watch

        kwargs = parse_kwargs(options.get("kw"))
        run = engine.start(options["name"], **kwargs)
        run.refresh_from_db()
        self.stdout.write(f"started {run.name} run {run.pk}: {run.status} at {run.current_step}")
        page = run_page_url(run.pk)
        if page:
            self.stdout.write(f"run page: {page}")
        if options["watch"]:
            self.stdout.write(finish(watch(self, run.pk, interval=options["interval"])))

"""``manage.py start_run <name> --kw key=value ...``: start a workflow run.

Values are parsed as JSON when they parse (``--kw user_id=123 --kw tags='["a"]'``), else
taken as strings. ``--watch`` then follows the run like ``watch_run`` (exit 0 completed, 1
failed or cancelled, 2 when ``--timeout`` passes first). The run page link is absolute when
``AUTOMATION["SITE_URL"]`` is set.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError

from ._cli import AutomationCommand, parse_kwargs, run_page_link


class Command(AutomationCommand):
    help = "Start a workflow run: start_run <name> --kw key=value ... [--watch]."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("name", help="The workflow name, as in @workflow('name').")
        parser.add_argument("--kw", action="append", metavar="KEY=VALUE", help="A start argument (repeatable).")
        parser.add_argument(
            "--watch", action="store_true", help="Follow the run with a progress bar until it finishes."
        )
        parser.add_argument("--interval", type=float, default=0.5, help="Refresh interval of --watch (seconds).")
        parser.add_argument(
            "--timeout", type=float, default=None, help="With --watch: give up after this many seconds (exit 2)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from facade import engine

        from .watch_run import finish, watch

        if options["timeout"] is not None and not options["watch"]:
            raise CommandError("--timeout limits --watch: add --watch, or drop --timeout.")
        kwargs = parse_kwargs(options.get("kw"))
        run = engine.start(options["name"], **kwargs)
        run.refresh_from_db()
        self.stdout.write(f"started {run.name} run {run.pk}: {run.status} at {run.current_step}")
        page = run_page_link(run.pk)
        if page:
            self.stdout.write(f"run page: {page}")
        if options["watch"]:
            self.stdout.write(finish(watch(self, run.pk, interval=options["interval"], timeout=options["timeout"])))

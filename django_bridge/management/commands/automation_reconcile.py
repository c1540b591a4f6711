"""``manage.py automation_reconcile [--dry-run]``: make unfinished rows follow Temporal now.

The worker does the same every ``AUTOMATION["RECONCILE_INTERVAL"]`` seconds, a batch at a time;
this command checks every unfinished run once and prints each repair (semantics: "The
projection follows Temporal").
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError

from ._cli import AutomationCommand


class Command(AutomationCommand):
    help = (
        "Compare unfinished workflow runs with Temporal and repair the rows whose workflow was terminated, "
        "timed out, reset or lost there."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Print the repairs it would make; change nothing.")
        parser.add_argument(
            "--grace",
            type=float,
            help="Leave rows changed within this many seconds (default: AUTOMATION['RECONCILE_GRACE']).",
        )
        parser.add_argument(
            "--batch-size", type=int, help="Rows per pass (default: AUTOMATION['RECONCILE_BATCH_SIZE'])."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from temporal_worker.reconcile import reconcile

        dry_run = bool(options["dry_run"])
        grace, batch = options.get("grace"), options.get("batch_size")
        if grace is not None and grace < 0:
            raise CommandError(f"--grace {grace:g}: give a number of seconds >= 0.")
        if batch is not None and batch < 1:
            raise CommandError(f"--batch-size {batch}: give a number of rows >= 1.")

        def report(repair: Any, written: bool) -> None:
            if dry_run:
                self.stdout.write(f"would repair {repair}")
            elif written:
                self.stdout.write(f"repaired {repair}")
            else:
                self.stdout.write(f"left run {repair.run_id} ({repair.workflow}) as it is: it changed meanwhile")

        # What it does is printed here (each repair, or the one line of a skipped pass), not logged too.
        result = reconcile(dry_run=dry_run, grace=grace, batch_size=batch, on_repair=report, log=False)
        if result.skipped:
            raise CommandError(result.skipped)
        done = len(result.found) if dry_run else len(result.applied)
        verb = "would repair" if dry_run else "repaired"
        self.stdout.write(
            f"checked {result.checked} unfinished run{'s' if result.checked != 1 else ''}: {verb} {done}"
            + (" (dry run: nothing was changed)" if dry_run else "")
        )

"""Waiting until a moment with a timer that is not late by the workflow task that set it.

A workflow computes a timer's duration from ``workflow.now()``, the time its workflow task
started, but the server starts the timer when that task completes. The timer is therefore late
by however long the task took, and a task that waits in a busy worker behind hundreds of others
(runs created together, by a bulk ``sync_events`` or a burst of saves) takes seconds. So a wait
for a moment more than ``EARLY_MIN`` seconds away wakes once before it, in a short task of its
own, and sets the last timer from there: what is left of the error is what that one task costs.
(semantics: "Model events").

Imports only temporalio: deterministic, sandbox-safe.
"""

from __future__ import annotations

from collections.abc import Callable

from temporalio import workflow

__all__ = ["EARLY_PATCH", "wait_until"]

# The patch that guards the early wake-up: runs recorded before it wait on one timer.
EARLY_PATCH = "due-wait-wakes-early"
EARLY_MIN = 1.0  # nearer than this, one timer: the task that sets it is the one that would wake
EARLY_LEAD_MAX = 60.0  # wake at most this long before the moment, and at most halfway there


async def wait_until(moment: float, condition: Callable[[], bool], summary: str) -> bool:
    """Wait until ``moment`` (epoch seconds, workflow time) or until ``condition()`` holds.

    True if the condition held first, False once the moment has come (at once if it has
    passed). ``summary`` names the timer in the history; the early one says it is early.
    """
    woke_early = False
    while True:
        remaining = moment - workflow.now().timestamp()
        if remaining <= 0:
            return False
        timeout, early = remaining, False
        if not woke_early and remaining > EARLY_MIN and workflow.patched(EARLY_PATCH):
            timeout, early = remaining - min(EARLY_LEAD_MAX, remaining / 2), True
        try:
            await workflow.wait_condition(
                condition, timeout=timeout, timeout_summary=f"{summary} (early wake-up)" if early else summary
            )
            return True
        except TimeoutError:
            if not early:
                return False
            woke_early = True  # once: the next timer is the last

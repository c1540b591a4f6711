"""A run's timeline: what its Temporal history says happened, as typed entries (semantics: "Timeline").

The ``StepExecution`` rows keep completed and failed steps only (semantics: "Step history"); a
step that waited, slept or was retried leaves no row, or one. The timeline is read from the
workflow's own history instead, so it cannot drift from what Temporal executed: every attempt
of a step's body with its outcome (went to X, waited for Y, slept until Z, completed, failed,
retried), the waits before gated and action steps, signals received, rejected or ignored,
actions submitted, wait timeouts, subflows, and how the run began and ended.

``translate`` turns the events of one execution into entries (``_translate.py``); the entries
and their one-line summaries are in ``_entries.py``. ``temporal_worker.histories`` fetches the
histories and falls back to the rows when Temporal cannot answer.
"""

from ._entries import EntryKind, ExecutionTimeline, Outcome, Timeline, TimelineEntry, TimelineSource, from_step_rows
from ._translate import apply_pending, translate

__all__ = [
    "EntryKind",
    "ExecutionTimeline",
    "Outcome",
    "Timeline",
    "TimelineEntry",
    "TimelineSource",
    "apply_pending",
    "from_step_rows",
    "translate",
]

"""The timeline's typed entries, and how each reads (semantics: "Timeline").

An entry is one thing that happened to a run: an attempt of a step's body with its outcome, a
wait before a gated or action step, a signal, an action, a timeout, a subflow's end, the run's
start and end. ``TimelineEntry.summary`` says it in one line for pages and the admin.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from temporal_worker.display import history_display
from temporal_worker.protocol import RESCHEDULE_SIGNAL, StepStatus

__all__ = [
    "LASTING",
    "EntryKind",
    "ExecutionTimeline",
    "Outcome",
    "Timeline",
    "TimelineEntry",
    "TimelineSource",
    "from_step_rows",
]


class EntryKind(StrEnum):
    RUN = "run"  # the run began, continued as new, was asked to cancel, ended
    STEP = "step"  # one attempt of a step's body
    ON_FAIL = "on_fail"  # the workflow's @on_fail handler
    GATE = "gate"  # waiting before a gated or action step's body runs
    SIGNAL = "signal"  # a signal the workflow got
    ACTION = "action"  # an action (human step) submitted
    TIMEOUT = "timeout"  # a wait that timed out
    SUBFLOW = "subflow"  # a child run that ended


class Outcome(StrEnum):
    RUNNING = "running"
    SCHEDULED = "scheduled"  # the next attempt waits out its retry delay
    WENT_TO = "went_to"
    WAITED = "waited"
    SLEPT = "slept"
    COMPLETED = "completed"
    FAILED = "failed"
    RETRIED = "retried"
    STARTED_SUBFLOW = "started_subflow"
    CANCELLED = "cancelled"
    RECEIVED = "received"
    CHECKING = "checking"
    REJECTED = "rejected"
    IGNORED = "ignored"
    SUBMITTED = "submitted"
    TIMED_OUT = "timed_out"
    STARTED = "started"
    RESTARTED = "restarted"
    DUE = "due"
    CONTINUED = "continued"
    CANCEL_REQUESTED = "cancel_requested"
    TERMINATED = "terminated"


class TimelineSource(StrEnum):
    TEMPORAL = "temporal"  # the workflow's history
    STEP_HISTORY = "step_history"  # the StepExecution rows (Temporal unreachable, history gone)


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "?"


@dataclass(slots=True)
class TimelineEntry:
    """One thing that happened to a run. ``ended_at`` is None while it still goes on.

    ``target`` is what the entry points at: the step a goto went to, the signal or action a wait
    is for, the subflow's workflow, the @on_fail handler, the step a timeout went to. ``at`` is
    None for a retried attempt whose start Temporal did not keep.
    """

    kind: EntryKind
    outcome: Outcome
    at: datetime | None
    ended_at: datetime | None = None
    step: str = ""
    seq: int | None = None
    attempt: int | None = None
    target: str = ""
    signal: str = ""
    until: datetime | None = None
    error: str = ""
    by_hand: bool = False
    execution: str = ""
    step_display: dict[str, Any] | None = None

    @property
    def open(self) -> bool:
        return self.ended_at is None and self.outcome in LASTING

    @property
    def summary(self) -> str:
        """What happened, in one line."""
        return _summary(self)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "outcome": self.outcome.value,
            "summary": self.summary,
            "open": self.open,
            "step": self.step,
            "step_display": self.step_display,
            "seq": self.seq,
            "attempt": self.attempt,
            "at": self.at,
            "ended_at": self.ended_at,
            "until": self.until,
            "target": self.target,
            "signal": self.signal,
            "error": self.error,
            "execution": self.execution,
        }


# Outcomes that last a while: the entry is open until ended_at is set.
LASTING = {
    Outcome.RUNNING,
    Outcome.SCHEDULED,
    Outcome.WAITED,
    Outcome.SLEPT,
    Outcome.STARTED_SUBFLOW,
    Outcome.DUE,
    Outcome.CHECKING,
}


def _summary(e: TimelineEntry) -> str:
    still = e.ended_at is None
    o = e.outcome
    if e.kind in (EntryKind.STEP, EntryKind.ON_FAIL):
        prefix = f"@on_fail handler {e.target} " if e.kind == EntryKind.ON_FAIL else ""
        attempt = f" (attempt {e.attempt})" if e.attempt and e.attempt > 1 else ""
        if o == Outcome.RUNNING:
            return f"{prefix}running{attempt}" if still else f"{prefix}stopped when the run ended{attempt}"
        if o == Outcome.SCHEDULED:
            return f"{prefix}attempt {e.attempt} due at {_when(e.until)}, after the retry delay"
        if o == Outcome.RETRIED:
            return f"{prefix}attempt {e.attempt} failed, retried" + (f": {e.error}" if e.error else "")
        if o == Outcome.FAILED:
            after = f" after {e.attempt} attempts" if e.attempt and e.attempt > 1 else ""
            return f"{prefix}failed{after}: {e.error}"
        if o == Outcome.COMPLETED:
            return f"{prefix}ran" if e.kind == EntryKind.ON_FAIL else "completed the run"
        if o == Outcome.WENT_TO:
            return f"went to {e.target}"
        if o == Outcome.WAITED:
            return f"{'waiting' if still else 'waited'} for {e.target}"
        if o == Outcome.SLEPT:
            return f"{'sleeping' if still else 'slept'} until {_when(e.until)}"
        if o == Outcome.STARTED_SUBFLOW:
            return f"started subflow {e.target}" + (" (running)" if still else "")
        if o == Outcome.CANCELLED:
            return f"{prefix}cancelled with the run"
    if e.kind == EntryKind.GATE:
        what = f"action {e.target}" if e.signal == "" else e.target
        return f"{'waiting' if still else 'waited'} for {what} before it runs"
    if e.kind == EntryKind.SIGNAL:
        hand = " (sent by hand)" if e.by_hand else ""
        if e.signal == RESCHEDULE_SIGNAL:
            return f"due time moved to {_when(e.until)}"
        return {
            Outcome.RECEIVED: f"signal {e.signal} received{hand}",
            Outcome.CHECKING: f"signal {e.signal}{hand} being checked against the Context",
            Outcome.REJECTED: f"signal {e.signal}{hand} rejected: {e.error}",
            Outcome.IGNORED: f"signal {e.signal}{hand} ignored: the run was not waiting for it",
        }.get(o, f"signal {e.signal}: {o.value}")
    if e.kind == EntryKind.ACTION:
        return f"action {e.target} submitted"
    if e.kind == EntryKind.TIMEOUT:
        return f"wait for {e.signal} timed out: " + (f"went to {e.target}" if e.target else "the run failed")
    if e.kind == EntryKind.SUBFLOW:
        return f"subflow {e.target} {o.value}" + (f": {e.error}" if e.error else "")
    if e.kind == EntryKind.RUN:
        return {
            Outcome.STARTED: f"started at step {e.step}",
            Outcome.RESTARTED: f"restarted at step {e.step} (retry)",
            Outcome.DUE: f"{'waiting' if still else 'waited'} until {_when(e.until)} before its first step",
            Outcome.CONTINUED: "continued as new: the run carries on in a fresh Temporal history",
            Outcome.CANCEL_REQUESTED: "cancel requested" + (f": {e.error}" if e.error else ""),
            Outcome.CANCELLED: "cancelled",
            Outcome.COMPLETED: "completed",
            Outcome.FAILED: f"failed: {e.error}",
            Outcome.TERMINATED: "terminated in Temporal" + (f": {e.error}" if e.error else ""),
            Outcome.TIMED_OUT: "timed out in Temporal",
        }.get(o, o.value)
    return o.value


@dataclass(frozen=True)
class Timeline:
    """A run's timeline, from its Temporal history or, failing that, from its step history rows.

    ``note`` says what is missing and why ("timeline unavailable: ...", earlier histories gone);
    ``executions`` are the Temporal run ids read, oldest first.
    """

    run_id: int
    source: TimelineSource
    entries: tuple[TimelineEntry, ...]
    note: str = ""
    executions: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "source": self.source.value,
            "note": self.note,
            "executions": list(self.executions),
            "entries": [e.to_dict() for e in self.entries],
        }


@dataclass
class ExecutionTimeline:
    """The entries of one Temporal execution (one run id of the workflow), and how it links."""

    run_id: str
    entries: list[TimelineEntry]
    started_at: datetime | None
    closed: bool
    continued_from: str = ""  # the run id it continued as new from
    restarted: bool = False  # started by a retry, not linked to the execution before it
    # Step activities still open, by activity id: describe() tells how their attempts go.
    pending: dict[str, TimelineEntry] = field(default_factory=dict)


def from_step_rows(rows: Iterable[Any], spec: dict[str, Any]) -> list[TimelineEntry]:
    """Entries from ``StepExecution`` rows (completed, failed, cancelled steps only)."""
    outcome = {StepStatus.COMPLETED: Outcome.COMPLETED, StepStatus.FAILED: Outcome.FAILED}
    return [
        TimelineEntry(
            EntryKind.STEP,
            outcome.get(row.status, Outcome.CANCELLED),
            row.created_at,
            ended_at=row.created_at,
            step=row.step_name,
            seq=row.seq,
            error=row.error,
            step_display=row.step_display or history_display(spec, row.step_name),
        )
        for row in rows
    ]

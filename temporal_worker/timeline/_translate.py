"""Translating one Temporal execution's history into timeline entries (semantics: "Timeline").

Step activities have the type ``<workflow>.<step>`` and answer ``StepOutcome`` wire dicts; the
start input carries the compiled spec; timers, signals, the signal check activity, the action
Update and child workflows are in the history too. The translator reads the events in order and
keeps what the interpreter kept (its seq, the wait it is at, a sleep about to start) so each
event can be told apart. Nothing here talks to Temporal or to the database.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.api.enums.v1 import PendingActivityState
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.workflow.v1 import PendingActivityInfo
from temporalio.converter import PayloadConverter

from temporal_worker.display import history_display
from temporal_worker.protocol import (
    ACTION_UPDATE,
    RECORD_ACTIVITY,
    RESCHEDULE_SIGNAL,
    SIGNAL_CHECK_ACTIVITY,
    SIGNAL_MARKER,
    ActionSubmission,
    SignalVerdict,
    StartInput,
    StepOutcome,
)
from temporal_worker.transitions import next_in_order

from ._entries import LASTING, EntryKind, ExecutionTimeline, Outcome, TimelineEntry

__all__ = ["apply_pending", "translate"]


def _insert_attempts(
    entries: list[TimelineEntry], entry: TimelineEntry, attempt: int, last_failure: str, at: datetime | None
) -> None:
    """``entry`` is attempt ``attempt``: list the failed attempts before it, each retried.

    Temporal keeps only the last failure of a retried activity, so only the attempt just before
    this one has its error; the first keeps the time the step was scheduled.
    """
    known = entry.attempt or 1
    if attempt <= known:
        return
    earlier = [
        TimelineEntry(
            entry.kind,
            Outcome.RETRIED,
            entry.at if n == 1 else None,
            step=entry.step,
            seq=entry.seq,
            attempt=n,
            target=entry.target,
            error=last_failure if n == attempt - 1 else "",
            execution=entry.execution,
            step_display=entry.step_display,
        )
        for n in range(known, attempt)
    ]
    index = next((i for i, e in enumerate(entries) if e is entry), len(entries))
    entries[index:index] = earlier
    entry.attempt = attempt
    if at is not None:
        entry.at = at


@dataclass
class _Wait:
    """The wait the run is at: for ``signal`` as wait ``seq``, shown by ``entry``."""

    signal: str
    seq: int
    entry: TimelineEntry
    on_timeout: str | None
    gate: bool = False  # before a gated step's body (else a wait the step returned)


def _time(event: HistoryEvent) -> datetime:
    return event.event_time.ToDatetime(tzinfo=UTC)


class _Translator:
    """Reads one execution's events in order, keeping what the interpreter kept (its step, seq
    and the wait it is at) so each event can be told apart: a timer is a sleep, a wait's
    timeout or a due time; a signal is for the current wait, early, or ignored."""

    def __init__(self, run_id: str, converter: PayloadConverter) -> None:
        self.run_id = run_id
        self.converter = converter
        self.entries: list[TimelineEntry] = []
        self.spec: dict[str, Any] = {"steps": {}, "order": []}
        self.workflow = ""
        self.seq = 0
        self.activities: dict[int, tuple[str, Any, TimelineEntry | None]] = {}  # scheduled id -> (role, input, entry)
        self.by_activity_id: dict[str, TimelineEntry] = {}
        self.timers: dict[str, tuple[str, TimelineEntry | None]] = {}
        self.wait: _Wait | None = None
        self.sleeping: TimelineEntry | None = None
        self.due: TimelineEntry | None = None
        self.child: tuple[TimelineEntry, str] | None = None  # the subflow step's entry, on_complete
        self.checking: list[TimelineEntry] = []
        self.early: set[tuple[str, int]] = set()
        self.result = ExecutionTimeline(run_id, self.entries, None, False)

    # ------------------------------------------------------------------ helpers
    def _decode(self, payloads: Any) -> Any:
        items = list(getattr(payloads, "payloads", ()) or ())
        if not items:
            return None
        try:
            return self.converter.from_payload(items[0])
        except Exception:  # not ours (a payload codec, a foreign converter): say what we can
            return None

    def _add(self, kind: EntryKind, outcome: Outcome, at: datetime | None, **fields: Any) -> TimelineEntry:
        step = fields.get("step", "")
        if "ended_at" not in fields and outcome not in LASTING:  # a moment, not a span
            fields["ended_at"] = at
        if step and "step_display" not in fields and step in self.spec["steps"]:
            fields["step_display"] = history_display(self.spec, step)
        entry = TimelineEntry(kind, outcome, at, execution=self.run_id, **fields)
        self.entries.append(entry)
        return entry

    def _enter(self, step: str, at: datetime) -> None:
        """The run moves into ``step``: a gated or action step waits before its body runs."""
        spec_step = self.spec["steps"].get(step) or {}
        gate, action = spec_step.get("gate"), spec_step.get("action")
        if gate:
            signal = gate.get("signal") or ""
            entry = self._add(EntryKind.GATE, Outcome.WAITED, at, step=step, seq=self.seq, target=signal, signal=signal)
            self.wait = _Wait(signal, self.seq, entry, gate.get("on_timeout"), gate=True)
            if (signal, self.seq) in self.early:  # its signal came first and was kept for it
                self._wait_answered(at)
        elif action:
            name = action.get("name") or ""
            self._add(EntryKind.GATE, Outcome.WAITED, at, step=step, seq=self.seq, target=name)

    def _open_gate(self) -> TimelineEntry | None:
        last = next((e for e in reversed(self.entries) if e.kind == EntryKind.GATE), None)
        return last if last is not None and last.ended_at is None else None

    def _wait_answered(self, at: datetime) -> None:
        assert self.wait is not None
        entry, gate = self.wait.entry, self.wait.gate
        entry.ended_at = at
        self.wait = None
        if not gate:  # a wait the step returned: the run resumes at the next step in class order
            following = next_in_order(self.spec, entry.step) if entry.step in self.spec["steps"] else None
            if following is not None:
                self.seq += 1
                self._enter(following, at)

    # ------------------------------------------------------------------ events
    def feed(self, event: HistoryEvent) -> None:
        name = event.WhichOneof("attributes") or ""
        handler = getattr(self, "_on_" + name.removesuffix("_event_attributes"), None)
        if handler is not None:
            handler(event, getattr(event, name), _time(event))

    def _on_workflow_execution_started(self, event: HistoryEvent, a: Any, at: datetime) -> None:
        self.result.started_at = at
        self.result.continued_from = a.continued_execution_run_id
        self.workflow = a.workflow_type.name
        raw = self._decode(a.input)
        try:
            inp = StartInput.from_wire(raw)
        except (TypeError, KeyError, ValueError):
            return
        self.spec = inp.spec if isinstance(inp.spec, dict) and "steps" in inp.spec else self.spec
        self.spec.setdefault("order", list(self.spec["steps"]))
        self.seq = inp.seq
        self.early = {(str(key[0]), int(key[1])) for key, _payload in inp.early_signals or ()}
        step = inp.start_step
        if a.continued_execution_run_id:
            pass  # the execution before says "continued as new"
        elif inp.resume:
            self.result.restarted = True
            self._add(EntryKind.RUN, Outcome.RESTARTED, at, step=step, seq=self.seq)
        else:
            self._add(EntryKind.RUN, Outcome.STARTED, at, step=step, seq=self.seq)
        if inp.due_at is not None and inp.entry is None:
            until = datetime.fromtimestamp(inp.due_at, UTC)
            self.due = self._add(EntryKind.RUN, Outcome.DUE, at, step=step, until=until)
            return
        entry = inp.entry or {}
        if "signal" not in entry and "action_args" not in entry:
            self._enter(step, at)

    def _on_activity_task_scheduled(self, event: HistoryEvent, a: Any, at: datetime) -> None:
        kind = a.activity_type.name
        data = self._decode(a.input)
        data = data if isinstance(data, dict) else {}
        if kind == SIGNAL_CHECK_ACTIVITY:
            self.activities[event.event_id] = ("check", data, None)
            return
        if kind == RECORD_ACTIVITY or not kind.startswith(f"{self.workflow}."):
            return
        method = kind[len(self.workflow) + 1 :]
        if self.due is not None and self.due.ended_at is None:
            self.due.ended_at = at
        step = str(data.get("step") or method)
        seq = data.get("seq") if isinstance(data.get("seq"), int) else self.seq
        if data.get("on_fail"):
            entry = self._add(EntryKind.ON_FAIL, Outcome.RUNNING, at, step=step, seq=seq, attempt=1, target=method)
            self.activities[event.event_id] = ("on_fail", data, entry)
        else:
            self.seq = seq
            gate = self._open_gate()
            if gate is not None and gate.step == step:  # its action was submitted (or signal received)
                gate.ended_at = at
            entry = self._add(EntryKind.STEP, Outcome.RUNNING, at, step=step, seq=seq, attempt=1)
            self.activities[event.event_id] = ("step", data, entry)
        self.by_activity_id[a.activity_id] = entry

    def _on_activity_task_started(self, event: HistoryEvent, a: Any, at: datetime) -> None:
        role, _data, entry = self.activities.get(a.scheduled_event_id, ("", None, None))
        if entry is None:
            return
        _insert_attempts(
            self.entries, entry, a.attempt, a.last_failure.message if a.HasField("last_failure") else "", at
        )

    def _on_activity_task_completed(self, event: HistoryEvent, a: Any, at: datetime) -> None:
        role, data, entry = self.activities.pop(a.scheduled_event_id, ("", None, None))
        result = self._decode(a.result)
        if role == "check":
            self._checked(data, result, at)
            return
        if entry is None:
            return
        self._drop_pending(entry)
        entry.ended_at = at
        if role == "on_fail":
            entry.outcome = Outcome.COMPLETED
            return
        try:
            directive = StepOutcome.from_wire(result).directive
        except (TypeError, KeyError, ValueError, AttributeError) as exc:
            entry.outcome, entry.error = Outcome.FAILED, f"an answer this version cannot read: {exc}"
            return
        kind = getattr(directive, "kind", "")
        if kind == "goto":
            entry.outcome, entry.target = Outcome.WENT_TO, directive.step
            self.seq += 1
            self._enter(directive.step, at)
        elif kind == "sleep":
            entry.outcome, entry.until, entry.ended_at = Outcome.SLEPT, at + timedelta(seconds=directive.seconds), None
            self.sleeping = entry
        elif kind == "wait":
            entry.outcome, entry.target, entry.signal, entry.ended_at = (
                Outcome.WAITED,
                directive.signal,
                directive.signal,
                None,
            )
            self.wait = _Wait(directive.signal, entry.seq, entry, directive.on_timeout)
            if (directive.signal, entry.seq) in self.early:
                self._wait_answered(at)
        elif kind == "complete":
            entry.outcome = Outcome.COMPLETED
        elif kind == "fail":
            entry.outcome, entry.error = Outcome.FAILED, directive.reason
        elif kind == "subflow":
            entry.outcome, entry.target, entry.ended_at = Outcome.STARTED_SUBFLOW, directive.workflow, None
            self.child = (entry, directive.on_complete)

    def _ended_badly(self, a: Any, at: datetime, outcome: Outcome, message: str) -> None:
        role, data, entry = self.activities.pop(a.scheduled_event_id, ("", None, None))
        if entry is None:
            return
        self._drop_pending(entry)
        entry.ended_at, entry.outcome = at, outcome
        entry.error = message if outcome != Outcome.CANCELLED else ""

    def _on_activity_task_failed(self, event: HistoryEvent, a: Any, at: datetime) -> None:
        self._ended_badly(a, at, Outcome.FAILED, a.failure.message)

    def _on_activity_task_timed_out(self, event: HistoryEvent, a: Any, at: datetime) -> None:
        self._ended_badly(a, at, Outcome.FAILED, a.failure.message or "timed out")

    def _on_activity_task_canceled(self, event: HistoryEvent, a: Any, at: datetime) -> None:
        self._ended_badly(a, at, Outcome.CANCELLED, "")

    def _drop_pending(self, entry: TimelineEntry) -> None:
        self.by_activity_id = {k: v for k, v in self.by_activity_id.items() if v is not entry}

    def _checked(self, data: Any, result: Any, at: datetime) -> None:
        """``automation.check_signal`` answered for the oldest hand-sent signal being checked."""
        entry = self.checking.pop(0) if self.checking else None
        verdict = SignalVerdict.from_wire(result)
        if entry is not None:
            entry.outcome = Outcome.RECEIVED if verdict.accepted else Outcome.REJECTED
            entry.error = "" if verdict.accepted else verdict.error
            entry.ended_at = at
        if verdict.accepted and self.wait is not None:
            self._wait_answered(at)

    def _on_timer_started(self, event: HistoryEvent, a: Any, at: datetime) -> None:
        fires = at + a.start_to_fire_timeout.ToTimedelta()
        if self.sleeping is not None:
            self.sleeping.until = fires
            self.timers[a.timer_id] = ("sleep", self.sleeping)
            self.sleeping = None
        elif self.due is not None and self.due.ended_at is None:
            self.timers[a.timer_id] = ("due", self.due)
        elif self.wait is not None:
            self.timers[a.timer_id] = ("timeout", self.wait.entry)

    def _on_timer_fired(self, event: HistoryEvent, a: Any, at: datetime) -> None:
        role, entry = self.timers.pop(a.timer_id, ("", None))
        if entry is None:
            return
        if role == "sleep":
            entry.ended_at = at
            self.seq += 1
            self._enter(entry.step, at)
        elif role == "due":
            entry.ended_at = at
            self._enter(entry.step, at)
        elif role == "timeout" and self.wait is not None and self.wait.entry is entry:
            signal, waiting, on_timeout = self.wait.signal, self.wait.entry, self.wait.on_timeout
            waiting.ended_at = at
            self.wait = None
            self._add(
                EntryKind.TIMEOUT,
                Outcome.TIMED_OUT,
                at,
                step=waiting.step,
                seq=waiting.seq,
                target=on_timeout or "",
                signal=signal,
                ended_at=at,
            )
            if on_timeout:
                self.seq += 1
                self._enter(on_timeout, at)

    def _on_workflow_execution_signaled(self, event: HistoryEvent, a: Any, at: datetime) -> None:
        name, arg = a.signal_name, self._decode(a.input)
        step, at_seq = (self.wait.entry.step, self.wait.seq) if self.wait else ("", None)
        if name == RESCHEDULE_SIGNAL:
            due = self.due is not None and self.due.ended_at is None
            until = datetime.fromtimestamp(float(arg), UTC) if isinstance(arg, (int, float)) and due else None
            if due and until is not None and self.due is not None:
                self.due.until = until
            self._add(
                EntryKind.SIGNAL,
                Outcome.RECEIVED if due else Outcome.IGNORED,
                at,
                signal=name,
                until=until,
                ended_at=at,
            )
            return
        marked = isinstance(arg, dict) and bool(arg.get(SIGNAL_MARKER))
        seq = arg.get("wait_seq") if marked else None
        payload = arg.get("payload") if marked else arg
        waiting = self.wait is not None and self.wait.signal == name and seq in (None, self.wait.seq)
        if waiting and not marked and payload not in (None, {}):
            # Checked against the Context by automation.check_signal before the run takes it.
            self.checking.append(
                self._add(EntryKind.SIGNAL, Outcome.CHECKING, at, step=step, seq=at_seq, signal=name, by_hand=True)
            )
            return
        if waiting:
            self._add(EntryKind.SIGNAL, Outcome.RECEIVED, at, step=step, seq=at_seq, signal=name, by_hand=not marked)
            self._wait_answered(at)
        elif isinstance(seq, int) and seq >= self.seq:
            # For a wait about to begin (semantics: "Waits are race-free"): kept until it does.
            self.early.add((name, seq))
            self._add(EntryKind.SIGNAL, Outcome.RECEIVED, at, signal=name, seq=seq)
        else:
            self._add(EntryKind.SIGNAL, Outcome.IGNORED, at, step=step, seq=at_seq, signal=name, by_hand=not marked)

    def _on_workflow_execution_update_accepted(self, event: HistoryEvent, a: Any, at: datetime) -> None:
        request = a.accepted_request
        if request.input.name != ACTION_UPDATE:
            return
        submission = ActionSubmission.from_wire(self._decode(request.input.args) or {})
        gate = self._open_gate()
        self._add(
            EntryKind.ACTION,
            Outcome.SUBMITTED,
            at,
            step=gate.step if gate else "",
            seq=gate.seq if gate else None,
            target=submission.action,
            ended_at=at,
        )
        if gate is not None:
            gate.ended_at = at

    def _child_ended(self, at: datetime, outcome: Outcome, error: str = "") -> None:
        if self.child is None:
            return
        entry, on_complete = self.child
        self.child = None
        entry.ended_at = at
        self._add(
            EntryKind.SUBFLOW,
            outcome,
            at,
            step=entry.step,
            seq=entry.seq,
            target=entry.target,
            error=error,
            ended_at=at,
        )
        self.seq += 1
        self._enter(on_complete, at)

    def _on_child_workflow_execution_completed(self, event: HistoryEvent, a: Any, at: datetime) -> None:
        self._child_ended(at, Outcome.COMPLETED)

    def _on_child_workflow_execution_failed(self, event: HistoryEvent, a: Any, at: datetime) -> None:
        self._child_ended(at, Outcome.FAILED, a.failure.message)

    def _on_child_workflow_execution_canceled(self, event: HistoryEvent, a: Any, at: datetime) -> None:
        self._child_ended(at, Outcome.CANCELLED)

    def _on_child_workflow_execution_terminated(self, event: HistoryEvent, a: Any, at: datetime) -> None:
        self._child_ended(at, Outcome.TERMINATED)

    def _on_child_workflow_execution_timed_out(self, event: HistoryEvent, a: Any, at: datetime) -> None:
        self._child_ended(at, Outcome.TIMED_OUT)

    def _on_start_child_workflow_execution_failed(self, event: HistoryEvent, a: Any, at: datetime) -> None:
        self._child_ended(at, Outcome.FAILED, "it could not start (a workflow with its id exists)")

    def _on_workflow_execution_cancel_requested(self, event: HistoryEvent, a: Any, at: datetime) -> None:
        self._add(EntryKind.RUN, Outcome.CANCEL_REQUESTED, at, error=a.cause, ended_at=at)

    def _close(self, at: datetime, outcome: Outcome, error: str = "") -> None:
        self.result.closed = True
        for entry in self.entries:
            if entry.ended_at is None and entry.outcome in LASTING:
                entry.ended_at = at
        self._add(EntryKind.RUN, outcome, at, error=error, ended_at=at)

    def _on_workflow_execution_completed(self, event: HistoryEvent, a: Any, at: datetime) -> None:
        self._close(at, Outcome.COMPLETED)

    def _on_workflow_execution_failed(self, event: HistoryEvent, a: Any, at: datetime) -> None:
        self._close(at, Outcome.FAILED, a.failure.message)

    def _on_workflow_execution_canceled(self, event: HistoryEvent, a: Any, at: datetime) -> None:
        self._close(at, Outcome.CANCELLED)

    def _on_workflow_execution_terminated(self, event: HistoryEvent, a: Any, at: datetime) -> None:
        self._close(at, Outcome.TERMINATED, a.reason)

    def _on_workflow_execution_timed_out(self, event: HistoryEvent, a: Any, at: datetime) -> None:
        self._close(at, Outcome.TIMED_OUT)

    def _on_workflow_execution_continued_as_new(self, event: HistoryEvent, a: Any, at: datetime) -> None:
        gate = self._open_gate()
        if gate is not None and gate is self.entries[-1]:
            # The interpreter continues as new before it enters a step, so before its gate: the
            # next execution enters it, first thing.
            self.entries.pop()
        self._close(at, Outcome.CONTINUED)


def translate(run_id: str, events: Iterable[HistoryEvent], converter: PayloadConverter) -> ExecutionTimeline:
    """The entries of one execution's history (``run_id`` is its Temporal run id)."""
    translator = _Translator(run_id, converter)
    for event in events:
        translator.feed(event)
    translator.result.pending = dict(translator.by_activity_id) if not translator.result.closed else {}
    return translator.result


def apply_pending(execution: ExecutionTimeline, pending: Iterable[PendingActivityInfo]) -> None:
    """Bring the open execution's running steps up to date with ``describe()``'s pending activities.

    The history records a retried activity once it ends; meanwhile only the description says
    which attempt it is at, the last failure and when the next attempt is due.
    """
    for info in pending:
        entry = execution.pending.get(info.activity_id)
        if entry is None:
            continue
        last_failure = info.last_failure.message if info.HasField("last_failure") else ""
        _insert_attempts(execution.entries, entry, info.attempt, last_failure, None)
        if info.attempt <= 1:
            continue
        if info.state == PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED and info.HasField(
            "next_attempt_schedule_time"
        ):
            entry.outcome = Outcome.SCHEDULED
            entry.until = info.next_attempt_schedule_time.ToDatetime(tzinfo=UTC)
            entry.at = (
                info.last_attempt_complete_time.ToDatetime(tzinfo=UTC)
                if info.HasField("last_attempt_complete_time")
                else None
            )
        elif info.HasField("last_started_time"):
            entry.at = info.last_started_time.ToDatetime(tzinfo=UTC)

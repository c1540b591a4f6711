"""The typed protocol between the engine, the interpreter workflow, the activities and the projection.

Everything that crosses a layer is declared here: the run and step status vocabulary, the wire
names Temporal sees (signal marker, update, query, record activity, failure types, search
attribute names), the start input of a run's workflow, the input and outcome of a step
activity, the directives a step's result turns into, and the record operations the workflow
asks the projection for.

Standard library only: the interpreter workflow imports this module inside Temporal's sandbox,
and the declaration layer (``facade``) imports it without pulling in Django or temporalio.

Each message converts to and from the JSON dict that travels in Temporal payloads
(``to_wire`` / ``from_wire``). The wire shapes are what recorded histories contain, so they only
change together with a ``workflow.patched()`` gate in the interpreter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import EnumType, StrEnum
from typing import Any, ClassVar

__all__ = [
    "ACTION_UPDATE",
    "ActionSubmission",
    "ActionSubmitter",
    "DISPLAY_QUERY",
    "FAILURE_TYPE",
    "NOT_WAITING_FOR_ACTION",
    "RECORD_ACTIVITY",
    "SIGNAL_CHECK_ACTIVITY",
    "SignalCheck",
    "SignalVerdict",
    "RUN_DELETED",
    "SEARCH_ATTRIBUTE_NAMES",
    "SIGNAL_MARKER",
    "STATE_QUERY",
    "ChildOutcome",
    "ChildStart",
    "Complete",
    "Directive",
    "Fail",
    "Goto",
    "RecordInput",
    "RecordOp",
    "RunOptions",
    "Sleep",
    "StartInput",
    "StartSubflow",
    "StepInput",
    "StepOutcome",
    "StepStatus",
    "Wait",
    "WorkflowStatus",
    "directive_from_wire",
    "event_signal",
    "event_workflow_id",
    "EVENT_ACTIVITIES",
    "EVENT_CHANGED_SIGNAL",
    "EVENT_LOAD_ACTIVITY",
    "EVENT_OCCUR_ACTIVITY",
    "EVENT_RECORD_ACTIVITY",
    "EVENT_SIGNAL_ACTIVITY",
    "EVENT_WORKFLOW",
    "RESCHEDULE_SIGNAL",
    "CallbackCall",
    "CallbackInput",
    "EventInput",
    "EventState",
    "AGENT_COMPLETE_SIGNAL",
    "AGENT_NOTICE_MARKER",
    "AGENT_QUERY",
    "AGENT_RECORD_ACTIVITY",
    "AGENT_SYNC_ACTIVITY",
    "AgentHandlerInput",
    "AgentRecord",
    "AgentStart",
    "EventNotice",
    "HandlerCall",
]

# ---------------------------------------------------------------------- wire names
RECORD_ACTIVITY = "automation.record"
"""The activity type of projection records that no step activity writes (timeouts, cancel, ...)."""
SIGNAL_CHECK_ACTIVITY = "automation.check_signal"
"""The activity that validates a signal sent by hand (no marker) against the run's Context."""
ACTION_UPDATE = "automation.action"
"""The Temporal Update that submits a human step (an action)."""
DISPLAY_QUERY = "current_step_display"
"""The Temporal query answering a run's live display."""
STATE_QUERY = "automation.state"
"""The Temporal query answering a run's state as the workflow holds it: its ``RunState`` fields, the
entry ``seq`` and the Context (what the reconciler writes to a row whose run was reset)."""
SIGNAL_MARKER = "__automation_signal__"
"""Key that marks a signal sent by the engine (with its wait sequence) from one sent by hand."""
FAILURE_TYPE = "WorkflowFailed"
"""ApplicationError type of a run that ended failed; its details hold ``{"context": ...}``."""
NOT_WAITING_FOR_ACTION = "NotWaitingForAction"
"""ApplicationError type of an action Update the run is not waiting for."""
RUN_DELETED = "RunDeleted"
"""ApplicationError type of an activity whose run row was deleted."""
SEARCH_ATTRIBUTE_NAMES = ("AutomationStatus", "AutomationStep", "AutomationWaitingFor")
"""Keyword search attributes a run publishes: status, step, and what it waits for."""
RESCHEDULE_SIGNAL = "automation.reschedule"
"""Moves the due time of a run that waits to start (an ``@event_workflow`` run whose event moved)."""
EVENT_WORKFLOW = "automation.event"
"""The workflow type that follows one ``Event`` row and delivers it to its subscribers."""
EVENT_CHANGED_SIGNAL = "automation.event_changed"
"""Tells an event's workflow that its row changed (carries the row's version)."""
EVENT_LOAD_ACTIVITY = "automation.event.load"
EVENT_OCCUR_ACTIVITY = "automation.event.occur"
EVENT_SIGNAL_ACTIVITY = "automation.event.signal"
EVENT_RECORD_ACTIVITY = "automation.event.record"
EVENT_ACTIVITIES = (EVENT_LOAD_ACTIVITY, EVENT_OCCUR_ACTIVITY, EVENT_SIGNAL_ACTIVITY, EVENT_RECORD_ACTIVITY)


def event_workflow_id(event_id: int) -> str:
    """The id of the workflow that follows Event row ``event_id``: one at a time per event."""
    return f"automation-event-{event_id}"


def event_signal(event_name: str) -> str:
    """The signal a wait for the model event ``event_name`` listens on."""
    return f"event:{event_name}"


# ---------------------------------------------------------------------- statuses
class _ChoicesType(EnumType):
    """Gives a str enum Django's ``choices``/``values``/``labels`` without importing Django."""

    @property
    def choices(cls) -> list[tuple[str, str]]:
        return [(member.value, member.label) for member in cls]  # type: ignore[attr-defined]

    @property
    def values(cls) -> list[str]:
        return [member.value for member in cls]  # type: ignore[attr-defined]

    @property
    def labels(cls) -> list[str]:
        return [member.label for member in cls]  # type: ignore[attr-defined]


class _Status(StrEnum, metaclass=_ChoicesType):
    @property
    def label(self) -> str:
        return self.value.capitalize()


class WorkflowStatus(_Status):
    """Where a run is. Finished runs are completed, failed or cancelled."""

    RUNNING = "running"
    WAITING = "waiting"  # on a timer: a sleep or a retry's backoff
    SUSPENDED = "suspended"  # on a signal, an event, an action or a child run
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @classmethod
    def finished(cls) -> set[WorkflowStatus]:
        return {cls.COMPLETED, cls.FAILED, cls.CANCELLED}


class StepStatus(_Status):
    """How one entry into a step ended, as its history row records it."""

    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


# ---------------------------------------------------------------------- directives
@dataclass(frozen=True)
class Goto:
    kind: ClassVar[str] = "goto"
    step: str
    progress: float | None = None

    def to_wire(self) -> dict[str, Any]:
        return {"kind": self.kind, "step": self.step, "progress": self.progress}


@dataclass(frozen=True)
class Sleep:
    kind: ClassVar[str] = "sleep"
    seconds: float

    def to_wire(self) -> dict[str, Any]:
        return {"kind": self.kind, "seconds": self.seconds}


@dataclass(frozen=True)
class Wait:
    """Suspend until ``signal`` arrives (after the step, or before it when it is a gate)."""

    kind: ClassVar[str] = "wait"
    signal: str
    timeout: float | None = None
    on_timeout: str | None = None
    display: dict[str, str] = field(default_factory=dict)
    event: str | None = None
    match: dict[str, Any] | None = None

    def to_wire(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "signal": self.signal,
            "timeout": self.timeout,
            "on_timeout": self.on_timeout,
            "display": dict(self.display),
            "event": self.event,
            "match": self.match,
        }


@dataclass(frozen=True)
class Complete:
    kind: ClassVar[str] = "complete"
    display: dict[str, str] = field(default_factory=dict)

    def to_wire(self) -> dict[str, Any]:
        return {"kind": self.kind, "display": dict(self.display)}


@dataclass(frozen=True)
class Fail:
    kind: ClassVar[str] = "fail"
    reason: str

    def to_wire(self) -> dict[str, Any]:
        return {"kind": self.kind, "reason": self.reason}


@dataclass(frozen=True)
class ChildStart:
    """The child run the step activity created, and how the workflow starts it."""

    run_id: int
    workflow_id: str
    input: StartInput

    def to_wire(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "workflow_id": self.workflow_id, "input": self.input.to_wire()}

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> ChildStart:
        return cls(int(data["run_id"]), data["workflow_id"], StartInput.from_wire(data["input"]))


@dataclass(frozen=True)
class StartSubflow:
    kind: ClassVar[str] = "subflow"
    workflow: str
    on_complete: str
    child: ChildStart | None = None  # set by the step activity once the child's row exists

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"kind": self.kind, "workflow": self.workflow, "on_complete": self.on_complete}
        if self.child is not None:
            wire["child"] = self.child.to_wire()
        return wire


Directive = Goto | Sleep | Wait | Complete | Fail | StartSubflow
"""What a step's result tells the workflow to do next; ``kind`` names it on the wire."""


def directive_from_wire(data: dict[str, Any]) -> Directive:
    """The directive a wire dict describes; an unknown kind is a ``ValueError``."""
    kind = data.get("kind")
    if kind == "goto":
        return Goto(data["step"], data.get("progress"))
    if kind == "sleep":
        return Sleep(float(data["seconds"]))
    if kind == "wait":
        return Wait(
            data["signal"],
            data.get("timeout"),
            data.get("on_timeout"),
            dict(data.get("display") or {}),
            data.get("event"),
            data.get("match"),
        )
    if kind == "complete":
        return Complete(dict(data.get("display") or {}))
    if kind == "fail":
        return Fail(data["reason"])
    if kind == "subflow":
        child = data.get("child")
        return StartSubflow(data["workflow"], data["on_complete"], ChildStart.from_wire(child) if child else None)
    raise ValueError(f"unknown step result kind {kind!r}")


# ---------------------------------------------------------------------- the start input
@dataclass(frozen=True)
class RunOptions:
    """Worker-side options fixed when a run starts (from the AUTOMATION settings)."""

    step_timeout: float = 3600.0
    heartbeat_timeout: float = 10.0
    search_attributes: bool = False

    def to_wire(self) -> dict[str, Any]:
        return {
            "step_timeout": self.step_timeout,
            "heartbeat_timeout": self.heartbeat_timeout,
            "search_attributes": self.search_attributes,
        }

    @classmethod
    def from_wire(cls, data: dict[str, Any] | None) -> RunOptions:
        data = data or {}
        return cls(
            float(data.get("step_timeout", 3600.0)),
            float(data.get("heartbeat_timeout", 10.0)),
            bool(data.get("search_attributes", False)),
        )


@dataclass(frozen=True)
class StartInput:
    """The input of a run's workflow: a new run, a retried one, or one continued as new.

    ``spec`` is the compiled workflow (plain JSON data). A fresh start has ``resume``; a run that
    continued as new carries its ``entry`` (how the current step is entered), its live
    ``state`` and the signals that arrived early.
    """

    run_id: int
    spec: dict[str, Any]
    context: dict[str, Any]
    start_step: str
    seq: int = 0
    resume: bool = False
    options: RunOptions = field(default_factory=RunOptions)
    entry: dict[str, Any] | None = None
    state: dict[str, Any] | None = None
    early_signals: list[Any] | None = None
    due_at: float | None = None  # epoch seconds: wait until then before the first step
    due_summary: str | None = None  # what that timer is for, as the Temporal UI shows it

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {
            "run_id": self.run_id,
            "spec": self.spec,
            "context": self.context,
            "start_step": self.start_step,
            "seq": self.seq,
        }
        if self.entry is None:
            wire["resume"] = self.resume
        wire["options"] = self.options.to_wire()
        if self.entry is not None:
            wire.update(entry=self.entry, state=self.state or {}, early_signals=self.early_signals or [])
        if self.due_at is not None:
            wire.update(due_at=self.due_at, due_summary=self.due_summary)
        return wire

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> StartInput:
        return cls(
            run_id=int(data["run_id"]),
            spec=data["spec"],
            context=data["context"],
            start_step=data["start_step"],
            seq=int(data.get("seq", 0)),
            resume=bool(data.get("resume")),
            options=RunOptions.from_wire(data.get("options")),
            entry=data.get("entry"),
            state=data.get("state"),
            early_signals=data.get("early_signals"),
            due_at=data.get("due_at"),
            due_summary=data.get("due_summary"),
        )


# ---------------------------------------------------------------------- actions
@dataclass(frozen=True)
class ActionSubmitter:
    """Who submitted an action through a request: the user's primary key (None: anonymous).

    Nothing else of the HTTP request crosses into Temporal: the request object cannot, and its
    headers and body do not belong in a workflow's history. The step activity loads the user.
    """

    user_pk: Any = None

    def to_wire(self) -> dict[str, Any]:
        return {"user_pk": self.user_pk}

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> ActionSubmitter:
        return cls(data.get("user_pk"))


@dataclass(frozen=True)
class ActionSubmission:
    """The argument of the Update ``automation.action``: which action, its fields, and who sent it.

    ``submitter`` is None when the action was submitted without a request (tests, a shell).
    """

    action: str
    args: dict[str, Any] = field(default_factory=dict)
    submitter: ActionSubmitter | None = None

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"action": self.action, "args": self.args}
        if self.submitter is not None:
            wire["submitter"] = self.submitter.to_wire()
        return wire

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> ActionSubmission:
        submitter, args = data.get("submitter"), data.get("args")
        return cls(  # lenient: the workflow reads it, and workflow code must not raise on input
            str(data.get("action") or ""),
            dict(args) if isinstance(args, dict) else {},
            ActionSubmitter.from_wire(submitter) if isinstance(submitter, dict) else None,
        )


# ---------------------------------------------------------------------- step activities
@dataclass(frozen=True)
class ChildOutcome:
    """How a child run ended, as its parent's ``on_complete`` step receives it."""

    status: str
    context: dict[str, Any] | None
    run_id: int
    error: str | None = None

    def to_wire(self) -> dict[str, Any]:
        return {"status": self.status, "context": self.context, "run_id": self.run_id, "error": self.error}

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> ChildOutcome:
        return cls(data["status"], data.get("context"), int(data["run_id"]), data.get("error"))


@dataclass(frozen=True)
class StepInput:
    """The input of the activity ``<workflow>.<step>`` (and of the ``@on_fail`` handler's).

    ``resume``: the projection must be set back to running first. The step's inputs, at most
    one of them: ``signal`` (the payload that opened its gate), ``merge`` (the payload of the wait
    before it), ``subflow_result``, ``action_args`` (with ``submitter``, wire name
    ``"submitter"``, when the action came with a request: what the step's ``request``
    parameter is built from). ``on_fail`` with ``error``: run the workflow's ``@on_fail``
    handler for a run failing at ``step``.
    """

    run_id: int
    workflow: str
    step: str
    seq: int
    context: dict[str, Any]
    resume: bool = False
    signal: dict[str, Any] | None = None
    merge: dict[str, Any] | None = None
    subflow_result: ChildOutcome | None = None
    action_args: dict[str, Any] | None = None
    submitter: ActionSubmitter | None = None
    on_fail: bool = False
    error: str | None = None

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {
            "run_id": self.run_id,
            "workflow": self.workflow,
            "step": self.step,
            "seq": self.seq,
            "context": self.context,
        }
        if self.on_fail:
            wire.update(error=self.error, on_fail=True)
            return wire
        if self.resume:
            wire["resume"] = True
        for key in ("signal", "merge", "action_args"):
            if getattr(self, key) is not None:
                wire[key] = getattr(self, key)
        if self.subflow_result is not None:
            wire["subflow_result"] = self.subflow_result.to_wire()
        if self.submitter is not None:
            wire["submitter"] = self.submitter.to_wire()
        return wire

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> StepInput:
        child = data.get("subflow_result")
        submitter = data.get("submitter")
        return cls(
            run_id=int(data["run_id"]),
            workflow=data["workflow"],
            step=data["step"],
            seq=int(data["seq"]),
            context=data.get("context") or {},
            resume=bool(data.get("resume")),
            signal=data.get("signal"),
            merge=data.get("merge"),
            subflow_result=ChildOutcome.from_wire(child) if child else None,
            action_args=data.get("action_args"),
            submitter=ActionSubmitter.from_wire(submitter) if submitter else None,
            on_fail=bool(data.get("on_fail")),
            error=data.get("error"),
        )


@dataclass(frozen=True)
class StepOutcome:
    """What a step activity answers: the new Context, and the directive (none for ``@on_fail``).

    ``recorded_in``: for a ``Sleep``, the seconds the activity spent after the step's method
    returned (writing the transition), which the sleep's timer subtracts: a step sleeps from
    when it returned, as the row's ``wake_at`` says.
    """

    context: dict[str, Any]
    directive: Directive | None = None
    recorded_in: float | None = None

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"context": self.context}
        if self.directive is not None:
            wire["directive"] = self.directive.to_wire()
        if self.recorded_in is not None:
            wire["recorded_in"] = self.recorded_in
        return wire

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> StepOutcome:
        directive = data.get("directive")
        recorded_in = data.get("recorded_in")
        return cls(
            data["context"],
            directive_from_wire(directive) if directive else None,
            None if recorded_in is None else float(recorded_in),
        )


# ---------------------------------------------------------------------- records
class RecordOp(StrEnum):
    """Projection writes the workflow asks for when no step activity makes them."""

    ENTER = "enter"  # a gated or action step was entered by a jump (timeout, wait, subflow)
    STEP_FAILED = "step_failed"  # a step failed without a result (retries exhausted, timeout)
    COMPLETE = "complete"  # a wait returned by the last step was answered
    CANCELLED = "cancelled"  # the run was cancelled


@dataclass(frozen=True)
class RecordInput:
    """The input of the ``automation.record`` activity."""

    op: RecordOp
    run_id: int
    workflow: str
    seq: int
    step: str
    error: str | None = None
    signal: dict[str, Any] | None = None

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"run_id": self.run_id, "workflow": self.workflow, "seq": self.seq}
        wire.update(op=self.op.value, step=self.step)
        if self.error is not None:
            wire["error"] = self.error
        if self.op is RecordOp.COMPLETE:
            wire["signal"] = self.signal
        return wire

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> RecordInput:
        return cls(
            op=RecordOp(data["op"]),
            run_id=int(data["run_id"]),
            workflow=data["workflow"],
            seq=int(data["seq"]),
            step=data["step"],
            error=data.get("error"),
            signal=data.get("signal"),
        )


# ---------------------------------------------------------------------- hand-sent signals
@dataclass(frozen=True)
class SignalCheck:
    """The input of ``automation.check_signal``: a signal sent by hand to the wait the run is at.

    ``engine.signal`` validates its payloads before sending them (and marks them); one sent by
    hand (Temporal CLI or UI) is validated by this activity before the workflow accepts it,
    since the workflow itself cannot load the Context model. ``payload`` is the signal's input as
    it came, whatever its JSON type.
    """

    run_id: int
    workflow: str
    seq: int
    step: str
    signal: str
    payload: Any = None

    def to_wire(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "workflow": self.workflow,
            "seq": self.seq,
            "step": self.step,
            "signal": self.signal,
            "payload": self.payload,
        }

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> SignalCheck:
        return cls(
            int(data["run_id"]), data["workflow"], int(data["seq"]), data["step"], data["signal"], data.get("payload")
        )


@dataclass(frozen=True)
class SignalVerdict:
    """What ``automation.check_signal`` answers: accept the payload, or why it was rejected."""

    accepted: bool
    error: str = ""

    def to_wire(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "error": self.error}

    @classmethod
    def from_wire(cls, data: Any) -> SignalVerdict:
        # Lenient: the workflow reads it, and workflow code must not raise on input.
        if not isinstance(data, dict):
            return cls(True)
        return cls(bool(data.get("accepted", True)), str(data.get("error") or ""))


# ---------------------------------------------------------------------- model events
@dataclass(frozen=True)
class EventInput:
    """The input of an event's workflow, and of the activities that load and deliver it."""

    event_id: int
    label: str = ""  # "checkin_due of Reservation 42", for summaries
    at: float | None = None  # for the occur activity: the due time the workflow's timer waited for
    heartbeat_timeout: float = 10.0  # for callbacks: a callback on a dead worker is retried after this
    # The change of the row (its version, status and round, as one key) that the dispatch already
    # told the active agent instances of: the load does not tell them of it again (it still
    # spawns). A change the row goes through later (it comes due and occurs) has another key.
    agents_told: str | None = None

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {
            "event_id": self.event_id,
            "label": self.label,
            "heartbeat_timeout": self.heartbeat_timeout,
        }
        if self.at is not None:
            wire["at"] = self.at
        if self.agents_told is not None:
            wire["agents_told"] = self.agents_told
        return wire

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> EventInput:
        told = data.get("agents_told")
        return cls(
            int(data["event_id"]),
            data.get("label") or "",
            data.get("at"),
            float(data.get("heartbeat_timeout") or 10.0),
            None if told is None else str(told),
        )


@dataclass(frozen=True)
class CallbackCall:
    """A callback still owed this event: its activity type (``name``), phase and retry policy."""

    phase: str
    name: str
    retry: dict[str, Any]

    def to_wire(self) -> dict[str, Any]:
        return {"phase": self.phase, "name": self.name, "retry": self.retry}

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> CallbackCall:
        return cls(data["phase"], data["name"], dict(data["retry"]))


@dataclass(frozen=True)
class EventState:
    """What the event's row says now, and what its subscribers are still owed.

    ``status`` is the row's (``pending``, ``occurred``, ``cancelled``) or ``gone`` when the row
    was deleted; ``at`` is when a pending event is due, in epoch seconds.
    """

    status: str
    version: int
    at: float | None = None
    label: str = ""
    callbacks: tuple[CallbackCall, ...] = ()
    signal_waits: bool = False  # runs waiting on ``event:<name>`` are still to be woken

    def to_wire(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "version": self.version,
            "at": self.at,
            "label": self.label,
            "callbacks": [c.to_wire() for c in self.callbacks],
            "signal_waits": self.signal_waits,
        }

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> EventState:
        return cls(
            status=data["status"],
            version=int(data["version"]),
            at=data.get("at"),
            label=data.get("label") or "",
            callbacks=tuple(CallbackCall.from_wire(c) for c in data.get("callbacks") or ()),
            signal_waits=bool(data.get("signal_waits")),
        )


@dataclass(frozen=True)
class CallbackInput:
    """The input of a callback's activity: which event, which phase, and how it ended last."""

    event_id: int
    phase: str
    name: str
    error: str | None = None  # set for EVENT_RECORD_ACTIVITY: the callback failed for good
    heartbeat_every: float = 3.0

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {
            "event_id": self.event_id,
            "phase": self.phase,
            "callback": self.name,
            "heartbeat_every": self.heartbeat_every,
        }
        if self.error is not None:
            wire["error"] = self.error
        return wire

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> CallbackInput:
        return cls(
            int(data["event_id"]),
            data["phase"],
            data["callback"],
            data.get("error"),
            float(data.get("heartbeat_every") or 3.0),
        )


# ---------------------------------------------------------------------- agents
# An agent instance is one long-running workflow whose type is the agent's name, run by the
# same dynamic workflow as every @workflow: its start input carries ``"agent"``.
# An EventNotice travels as the signal ``event:<name>`` (the history reads as the agent's life),
# marked so the workflow tells it from a hand-sent signal of that name.
AGENT_NOTICE_MARKER = "__agent_notice__"
AGENT_COMPLETE_SIGNAL = "automation.agent.complete"  # AgentManager.complete: end after the handler running now
AGENT_QUERY = "automation.agent.state"  # the live Context, the events it knows and the timed handlers due
AGENT_SYNC_ACTIVITY = "automation.agent.sync"  # a new instance: the events that matter to it already
AGENT_RECORD_ACTIVITY = "automation.agent.record"  # a handler failed for good; the instance ended


@dataclass(frozen=True)
class HandlerCall:
    """One handler an event reaches in one instance: when it runs and how it is retried.

    ``offset`` is None for a handler that runs when the event occurs, else seconds from the
    event's time (negative: before it) on a durable timer.
    """

    name: str
    offset: float | None
    retry: dict[str, Any]

    def to_wire(self) -> dict[str, Any]:
        return {"name": self.name, "offset": self.offset, "retry": self.retry}

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> HandlerCall:
        offset = data.get("offset")
        return cls(data["name"], float(offset) if offset is not None else None, dict(data["retry"]))


@dataclass(frozen=True)
class EventNotice:
    """What an agent instance is told about one event: its state now and the handlers it reaches.

    ``base`` is the event's time in epoch seconds (when it is due, or when it occurred), from
    which offsets count. A newer ``version`` of the same event replaces an older notice.
    """

    event_id: int
    event_name: str
    status: str  # pending, occurred, cancelled
    version: int
    generation: int
    base: float | None
    label: str
    handlers: tuple[HandlerCall, ...] = ()

    def key(self, handler: str) -> str:
        """Identifies one (occurrence, handler): each runs at most once per instance."""
        return f"{self.event_id}:{self.generation}:{handler}"

    def to_wire(self) -> dict[str, Any]:
        return {
            AGENT_NOTICE_MARKER: True,
            "event_id": self.event_id,
            "event_name": self.event_name,
            "status": self.status,
            "version": self.version,
            "generation": self.generation,
            "base": self.base,
            "label": self.label,
            "handlers": [h.to_wire() for h in self.handlers],
        }

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> EventNotice:
        return cls(
            int(data["event_id"]),
            data["event_name"],
            data["status"],
            int(data["version"]),
            int(data.get("generation") or 1),
            data.get("base"),
            data.get("label") or "",
            tuple(HandlerCall.from_wire(h) for h in data.get("handlers") or ()),
        )


@dataclass(frozen=True)
class AgentStart:
    """The start input of an agent instance's workflow (also what continue-as-new carries)."""

    run_id: int
    agent: str
    context: dict[str, Any]
    seq: int = 0  # handler executions so far: each gets the next one (StepExecution.seq)
    notices: tuple[EventNotice, ...] = ()
    done: tuple[str, ...] = ()  # EventNotice.key()s already handled
    synced: bool = False  # the instance has asked for the events that mattered before it existed
    heartbeat_timeout: float = 10.0

    def to_wire(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "run_id": self.run_id,
            "context": self.context,
            "seq": self.seq,
            "notices": [n.to_wire() for n in self.notices],
            "done": list(self.done),
            "synced": self.synced,
            "heartbeat_timeout": self.heartbeat_timeout,
        }

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> AgentStart:
        return cls(
            int(data["run_id"]),
            data["agent"],
            dict(data.get("context") or {}),
            int(data.get("seq") or 0),
            tuple(EventNotice.from_wire(n) for n in data.get("notices") or ()),
            tuple(data.get("done") or ()),
            bool(data.get("synced")),
            float(data.get("heartbeat_timeout") or 10.0),
        )


@dataclass(frozen=True)
class AgentHandlerInput:
    """The input of a handler's activity (type ``<agent>.<handler>``), and of recording its failure."""

    run_id: int
    agent: str
    handler: str
    event_id: int
    generation: int
    seq: int
    heartbeat_every: float = 3.0
    error: str | None = None  # AGENT_RECORD_ACTIVITY: the handler failed for good

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {
            "agent_handler": self.handler,
            "agent": self.agent,
            "run_id": self.run_id,
            "event_id": self.event_id,
            "generation": self.generation,
            "seq": self.seq,
            "heartbeat_every": self.heartbeat_every,
        }
        if self.error is not None:
            wire["error"] = self.error
        return wire

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> AgentHandlerInput:
        return cls(
            int(data["run_id"]),
            data["agent"],
            data["agent_handler"],
            int(data["event_id"]),
            int(data.get("generation") or 1),
            int(data["seq"]),
            float(data.get("heartbeat_every") or 3.0),
            data.get("error"),
        )


@dataclass(frozen=True)
class AgentRecord:
    """AGENT_RECORD_ACTIVITY: a handler failed for good (``handler`` set), or the instance ended
    (``status`` completed or cancelled: its claims are released, its routes dropped)."""

    run_id: int
    agent: str
    status: str = ""
    handler: AgentHandlerInput | None = None
    reason: str = ""

    def to_wire(self) -> dict[str, Any]:
        return {
            "agent_record": self.status or "handler_failed",
            "agent": self.agent,
            "run_id": self.run_id,
            "handler": self.handler.to_wire() if self.handler else None,
            "reason": self.reason,
        }

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> AgentRecord:
        handler = data.get("handler")
        status = data.get("agent_record") or ""
        return cls(
            int(data["run_id"]),
            data["agent"],
            "" if status == "handler_failed" else status,
            AgentHandlerInput.from_wire(handler) if handler else None,
            data.get("reason") or "",
        )

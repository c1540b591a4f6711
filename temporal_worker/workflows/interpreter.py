"""The interpreter workflow: one Temporal workflow definition that runs every @workflow.

It is registered as the *dynamic* workflow, so the Temporal workflow type of each run is the
user's workflow name. Its input (``StartInput``) carries the compiled spec of that workflow as
data recorded in history, and every step runs as an activity named ``<workflow>.<step>``. User
code and Django only ever run inside activities; this module imports the protocol, the pure
state transitions and temporalio, nothing else, so it is deterministic and sandbox-safe.

Each entry into a step gets the next ``seq``. Waits are identified by ``(signal, seq)`` so a
late signal meant for an earlier wait can never wake a later one (semantics: "Waits are
race-free").
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RawValue, RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, ChildWorkflowError

# Pure, deterministic modules with no state of their own: imported once and shared with the
# sandbox instead of being re-executed for every workflow run (the sandbox re-imports other
# modules per run, and building their dataclasses and enums each time costs milliseconds).
with workflow.unsafe.imports_passed_through():
    from temporal_worker.display import current_step_display
    from temporal_worker.protocol import (
        ACTION_UPDATE,
        AGENT_COMPLETE_SIGNAL,
        AGENT_NOTICE_MARKER,
        AGENT_QUERY,
        DISPLAY_QUERY,
        FAILURE_TYPE,
        NOT_WAITING_FOR_ACTION,
        RECORD_ACTIVITY,
        RESCHEDULE_SIGNAL,
        SEARCH_ATTRIBUTE_NAMES,
        SIGNAL_CHECK_ACTIVITY,
        SIGNAL_MARKER,
        STATE_QUERY,
        ActionSubmission,
        ActionSubmitter,
        AgentStart,
        ChildOutcome,
        Complete,
        Directive,
        EventNotice,
        Fail,
        Goto,
        RecordInput,
        RecordOp,
        SignalCheck,
        SignalVerdict,
        Sleep,
        StartInput,
        StartSubflow,
        StepInput,
        StepOutcome,
        Wait,
        WorkflowStatus,
    )
    from temporal_worker.transitions import RunState, after_directive, entering, invalid_target, next_in_order, running

    # An agent instance's loop: the same kind of module (deterministic, no state of its own).
    from temporal_worker.workflows.agent import AgentLoop
    from temporal_worker.workflows.timing import wait_until

__all__ = ["SEARCH_ATTRIBUTE_KEYS", "InterpreterWorkflow"]

STATUS_KEY, STEP_KEY, WAITING_KEY = (SearchAttributeKey.for_keyword(name) for name in SEARCH_ATTRIBUTE_NAMES)
SEARCH_ATTRIBUTE_KEYS = (STATUS_KEY, STEP_KEY, WAITING_KEY)

_NOT_RECEIVED = object()

# The RunState fields the state query answers (wake_after is answered as the absolute wake_at).
STATE_FIELDS = (
    "status",
    "current_step",
    "progress",
    "waiting_for",
    "waiting_signal",
    "wait_seq",
    "on_timeout",
    "waiting_display",
    "waiting_match",
    "completion_display",
    "child_run_id",
)


class RunFailed(Exception):
    """Internal: the run must end as failed with ``reason`` (on_fail already handled)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def human_duration(seconds: float) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds:g} seconds"


@workflow.defn(dynamic=True)
class InterpreterWorkflow:
    def __init__(self) -> None:
        self.inp: StartInput | None = None
        self.run_id = 0
        self.name = ""
        self.spec: dict[str, Any] = {}
        self.context: dict[str, Any] = {}
        self.seq = 0
        self.state = RunState()
        self._waiting: tuple[str, int] | None = None
        self._received: Any = _NOT_RECEIVED
        # Payloads sent by hand to the current wait, not yet checked against the Context.
        self._hand_sent: list[Any] = []
        self._rejection = ""  # the last hand-sent signal the current wait rejected, for the UI
        self._early: dict[tuple[str, int], Any] = {}
        self._action_step: str | None = None
        self._action_request: dict[str, Any] | None = None
        self._action_done: int = -1
        self._published: tuple[str, str, str] | None = None
        self._due: float | None = None  # set while the run waits to start (see _wait_until_due)
        # The step that started the child this run waits on: what the search attribute names.
        self._subflow_step: str | None = None
        # Set when this workflow is an agent instance (its start input carries "agent"); created
        # by the first event signal when that arrives with the start.
        self._agent: AgentLoop | None = None
        self._wake_from: datetime | None = None
        self._recorded_in: float | None = None  # how long the last step's activity took to record it

    # ------------------------------------------------------------------ entry point
    @workflow.run
    async def run(self, args: Sequence[RawValue]) -> dict[str, Any]:
        wire = workflow.payload_converter().from_payload(args[0].payload, dict)
        if "agent" in wire:  # an agent instance: the same workflow type namespace, another loop
            self._agent = self._agent or AgentLoop()
            return await self._agent.run(AgentStart.from_wire(wire))
        inp = StartInput.from_wire(wire)
        self.inp = inp
        self.run_id, self.spec, self.context, self.seq = inp.run_id, inp.spec, inp.context, inp.seq
        self.name = self.spec["name"]
        self.state = RunState.from_wire(inp.state)
        self.state.current_step = inp.start_step
        # The engine sets the search attributes at start: publish only what changes from there.
        sa = workflow.info().typed_search_attributes
        if inp.options.search_attributes and sa.get(STATUS_KEY) is not None:
            self._published = (sa.get(STATUS_KEY) or "", sa.get(STEP_KEY) or "", sa.get(WAITING_KEY) or "")
        # Keep what the signal handler buffered already: a signal that arrived with the start
        # (before the first workflow task) is handled before this method runs.
        carried = {(k[0], int(k[1])): v for k, v in inp.early_signals or []}
        self._early = {**carried, **self._early}
        # "entry" is set when this run continued as new in the middle of a run.
        entry = dict(inp.entry) if inp.entry is not None else {"resume": inp.resume}
        try:
            if inp.due_at is not None and inp.entry is None:
                await self._wait_until_due(inp.due_at, inp.due_summary or "due")
                # Entered by a timer: the projection says waiting, and a gated or action start
                # step must record its suspension.
                entry = {"resume": True, "enter": True}
            await self._interpret(inp.start_step, entry)
        except RunFailed as failed:
            self._publish()
            await workflow.wait_condition(workflow.all_handlers_finished)
            raise ApplicationError(failed.reason, {"context": self.context}, type=FAILURE_TYPE, non_retryable=True)
        except asyncio.CancelledError:
            # Cancellation reached us (engine.cancel): record it, then end as Canceled.
            self._set(status=WorkflowStatus.CANCELLED)
            self._publish()
            # The caller's reason comes with the cancel request (engine.cancel writes nothing
            # before Temporal accepts it); a cancel from the UI or CLI may have none.
            reason = workflow.cancellation_reason() or "cancelled"
            await self._record(RecordOp.CANCELLED, self.state.current_step, error=reason)
            raise
        self._publish()
        # An action answered by the last step returns its answer before the run closes.
        await workflow.wait_condition(workflow.all_handlers_finished)
        return {"status": WorkflowStatus.COMPLETED.value, "context": self.context, "run_id": self.run_id}

    # ------------------------------------------------------------------ the loop
    async def _interpret(self, step: str, entry: dict[str, Any]) -> None:
        """Run steps until the run completes; failures raise RunFailed.

        ``entry`` says how the current step is entered: ``resume`` (the projection must be
        set back to running), ``enter`` (no step activity wrote the entry, so a gated or
        action step must record its suspension), and inputs for the step: ``signal``,
        ``merge`` (an earlier payload), ``subflow_result``, ``action_args``.
        """
        while True:
            if workflow.info().is_continue_as_new_suggested() and workflow.all_handlers_finished():
                self._continue_as_new(step, entry)
            self._set(current_step=step)
            spec_step = self.spec["steps"][step]
            gate, action = spec_step.get("gate"), spec_step.get("action")
            if (gate or action) and entry.pop("enter", False):
                await self._record(RecordOp.ENTER, step)
            if action and "action_args" not in entry:
                submission = await self._await_action(step)
                entry = {**entry, "resume": True, "action_args": submission.args}
                if submission.submitter is not None:
                    entry["submitter"] = submission.submitter.to_wire()
            elif gate and "signal" not in entry:
                self._set(**entering(self.spec, step, self.seq))
                payload = await self._wait(gate["signal"], gate.get("timeout"))
                if payload is _NOT_RECEIVED:
                    step, entry = (
                        await self._after_timeout(gate["signal"], gate.get("on_timeout"), step),
                        {"resume": True, "enter": True},
                    )
                    continue
                entry = {**entry, "resume": True, "signal": payload}

            directive = await self._run_step(step, entry)
            if action:
                # The update handler answers once this loop blocks again, with the new state.
                self._action_done = self.seq
            problem = invalid_target(self.spec, step, directive)
            if problem is not None:  # the activity checks this too; a directive it never saw may not
                await self._fail(step, f"workflow {self.name!r} step {step!r}: {problem}", recorded=False)
            if isinstance(directive, Goto):
                if directive.progress is not None:
                    self._set(progress=directive.progress)
                step, entry = directive.step, {}
                self.seq += 1
            elif isinstance(directive, Sleep):
                self._apply(step, directive)
                self._publish()
                seconds = directive.seconds
                if self._recorded_in and workflow.patched("sleep-counts-from-the-step"):
                    # The step sleeps from when it returned (its row's wake_at says so), not from
                    # when its transition was written.
                    seconds = max(0.0, seconds - self._recorded_in)
                await workflow.sleep(seconds, summary=f"sleep {human_duration(directive.seconds)} in {step}")
                self.seq += 1
                entry = {"resume": True}
            elif isinstance(directive, Wait):
                self._apply(step, directive)
                payload = await self._wait(directive.signal, directive.timeout)
                if payload is _NOT_RECEIVED:
                    step, entry = (
                        await self._after_timeout(directive.signal, directive.on_timeout, step),
                        {"resume": True, "enter": True},
                    )
                    continue
                following = next_in_order(self.spec, step)
                if following is None:
                    await self._record(RecordOp.COMPLETE, step, signal=payload)
                    self._set(status=WorkflowStatus.COMPLETED, progress=1.0)
                    return
                self.seq += 1
                step, entry = following, {"resume": True, "enter": True, "merge": payload}
            elif isinstance(directive, Complete):
                self._apply(step, directive)
                return
            elif isinstance(directive, Fail):
                await self._fail(step, directive.reason, recorded=True)
            elif isinstance(directive, StartSubflow):
                self._apply(step, directive)
                result = await self._run_child(step, directive)
                self._subflow_step = None
                self.seq += 1
                step = directive.on_complete
                entry = {"resume": True, "enter": True, "subflow_result": result}

    async def _wait_until_due(self, due_at: float, summary: str) -> None:
        """Wait for the run's due time (an ``@event_workflow`` offset from its event), which the
        reschedule signal may move while it waits; once due, the run starts and never waits again."""
        self._due = due_at
        while True:
            remaining = self._due - workflow.now().timestamp()
            self._set(status=WorkflowStatus.WAITING, wake_after=max(0.0, remaining))
            if remaining <= 0:
                break
            due = self._due
            # Woken by the timer or by a move: either way the loop looks at the due time again.
            await wait_until(due, lambda due=due: self._due != due, summary)
        self._due = None

    @workflow.signal(name=RESCHEDULE_SIGNAL)
    def reschedule(self, due_at: float) -> None:
        if self._due is not None:  # a run that started is not moved any more
            self._due = float(due_at)

    def _continue_as_new(self, step: str, entry: dict[str, Any]) -> None:
        """Carry on in a fresh history (long sleep loops): same workflow id, same run row."""
        assert self.inp is not None
        carried = replace(
            self.inp,
            context=self.context,
            start_step=step,
            seq=self.seq,
            entry=entry,
            state=self.state.to_wire(),
            early_signals=[[list(k), v] for k, v in self._early.items()],
            due_at=None,
            due_summary=None,
        )
        workflow.continue_as_new(carried.to_wire())

    # ------------------------------------------------------------------ steps
    def _activity_options(self) -> dict[str, Any]:
        assert self.inp is not None
        return {
            "start_to_close_timeout": timedelta(seconds=self.inp.options.step_timeout),
            "heartbeat_timeout": timedelta(seconds=self.inp.options.heartbeat_timeout),
        }

    async def _run_step(self, step: str, entry: dict[str, Any]) -> Directive:
        spec_step = self.spec["steps"][step]
        retry = spec_step["retry"]
        self._set(**running(step))
        if self._published is not None and self._published[0] != WorkflowStatus.RUNNING:
            # Leaving a wait: say so. Step-to-step moves are not published, since each upsert is a
            # history event; the step attribute names where the run last started or blocked.
            self._publish()
        child = entry.get("subflow_result")
        step_input = StepInput(
            run_id=self.run_id,
            workflow=self.name,
            step=step,
            seq=self.seq,
            context=self.context,
            resume=bool(entry.get("resume")),
            signal=entry.get("signal"),
            merge=entry.get("merge"),
            subflow_result=child,
            action_args=entry.get("action_args"),
            submitter=ActionSubmitter.from_wire(entry["submitter"]) if entry.get("submitter") else None,
        )
        try:
            result = await workflow.execute_activity(
                f"{self.name}.{step}",
                step_input.to_wire(),
                **self._activity_options(),
                retry_policy=RetryPolicy(
                    maximum_attempts=retry["max_attempts"],
                    initial_interval=timedelta(seconds=retry["base_delay"]),
                    maximum_interval=timedelta(seconds=retry["max_delay"]),
                    backoff_coefficient=retry["backoff_factor"],
                ),
                summary=spec_step.get("title") or step,
            )
        except ActivityError as err:
            cause = err.cause
            if isinstance(cause, CancelledError) and workflow.patched("a-cancelled-step-cancels-the-run"):
                # The run was cancelled while this step's activity was in flight (it may even
                # have finished): that is a cancellation of the run, not a failure of the step.
                raise asyncio.CancelledError() from err
            message = getattr(cause, "message", None) or str(cause or err)
            attempts = retry["max_attempts"]
            await self._fail(
                step,
                f"step {step!r} failed after {attempts} attempt{'s' if attempts != 1 else ''}: {message}",
                recorded=False,
            )
        try:
            outcome = StepOutcome.from_wire(result)
        except ValueError as err:  # a directive this version does not know: never loop silently
            await self._fail(step, str(err), recorded=False)
        self.context = outcome.context
        self._recorded_in = outcome.recorded_in
        assert outcome.directive is not None
        return outcome.directive

    async def _fail(self, step: str, reason: str, *, recorded: bool) -> None:
        """Record the failure, run @on_fail, and end the run as failed (semantics: "On-fail handlers and definition errors")."""
        if not recorded:
            await self._record(RecordOp.STEP_FAILED, step, error=reason)
        on_fail = self.spec.get("on_fail")
        if on_fail:
            step_input = StepInput(
                run_id=self.run_id,
                workflow=self.name,
                step=step,
                seq=self.seq,
                context=self.context,
                on_fail=True,
                error=reason,
            )
            result = await workflow.execute_activity(
                f"{self.name}.{on_fail}",
                step_input.to_wire(),
                **self._activity_options(),
                retry_policy=RetryPolicy(maximum_attempts=3),
                summary=f"on_fail: {on_fail}",
            )
            self.context = StepOutcome.from_wire(result).context
        self._set(status=WorkflowStatus.FAILED)
        raise RunFailed(reason)

    async def _after_timeout(self, signal: str, on_timeout: str | None, step: str) -> str:
        """A wait timed out: jump to on_timeout, or fail the run (semantics: "Wait timeouts")."""
        if not on_timeout:
            await self._fail(step, f"timed out waiting for {signal!r}", recorded=False)
        assert on_timeout is not None
        self.seq += 1
        return on_timeout

    async def _record(self, op: RecordOp, step: str, *, error: str | None = None, signal: Any = None) -> None:
        record = RecordInput(
            op=op, run_id=self.run_id, workflow=self.name, seq=self.seq, step=step, error=error, signal=signal
        )
        result = await workflow.execute_activity(
            RECORD_ACTIVITY,
            record.to_wire(),
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=10)),
            summary=f"record {op.value}",
        )
        if isinstance(result, dict) and "context" in result:
            self.context = result["context"]

    # ------------------------------------------------------------------ waits and signals
    async def _wait(self, signal: str, timeout: float | None) -> Any:
        key = (signal, self.seq)
        self._waiting = key
        self._received = self._early.pop(key, _NOT_RECEIVED)
        # Signals buffered for earlier waits can never be delivered any more.
        self._early = {k: v for k, v in self._early.items() if k[1] > self.seq}
        self._publish()
        deadline = None if timeout is None else workflow.now() + timedelta(seconds=timeout)
        remaining = timeout
        try:
            while True:
                try:
                    await workflow.wait_condition(
                        lambda: self._received is not _NOT_RECEIVED or bool(self._hand_sent),
                        timeout=remaining,
                        timeout_summary=f"timeout of wait for {signal}" if timeout else None,
                    )
                except TimeoutError:
                    return _NOT_RECEIVED
                if self._received is not _NOT_RECEIVED:
                    return self._received
                # Only on the hand-sent path (no recorded history takes it): check the payload
                # first; a rejected one leaves the run waiting right here.
                payload = self._hand_sent.pop(0)
                accepted = await self._check_hand_sent(signal, payload)
                if self._received is not _NOT_RECEIVED:  # engine.signal got there meanwhile
                    return self._received
                if accepted:
                    return payload
                if deadline is not None:
                    remaining = (deadline - workflow.now()).total_seconds()
                    if remaining <= 0:
                        return _NOT_RECEIVED
        finally:
            self._waiting = None
            self._hand_sent = []
            if self._rejection:
                self._rejection = ""
                self._set()

    async def _check_hand_sent(self, signal: str, payload: Any) -> bool:
        """Validate a hand-sent payload against the Context (an activity: the workflow cannot)."""
        check = SignalCheck(self.run_id, self.name, self.seq, self.state.current_step, signal, payload)
        result = await workflow.execute_activity(
            SIGNAL_CHECK_ACTIVITY,
            check.to_wire(),
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=10)),
            summary=f"check hand-sent signal {signal}",
        )
        verdict = SignalVerdict.from_wire(result)
        if not verdict.accepted:
            self._rejection = f"rejected a hand-sent {signal!r}: {verdict.error}"
            self._set()
        return verdict.accepted

    # ------------------------------------------------------------------ agents
    @workflow.signal(name=AGENT_COMPLETE_SIGNAL)
    def on_agent_complete(self) -> None:
        self._agent = self._agent or AgentLoop()
        self._agent.request_completion()

    @workflow.query(name=AGENT_QUERY)
    def agent_state(self) -> dict[str, Any]:
        return self._agent.describe() if self._agent is not None else {}

    @workflow.signal(dynamic=True)
    def on_signal(self, name: str, args: Sequence[RawValue]) -> None:
        arg = workflow.payload_converter().from_payload(args[0].payload) if args else None
        if isinstance(arg, dict) and arg.get(AGENT_NOTICE_MARKER):  # an agent instance hears of an event
            self._agent = self._agent or AgentLoop()
            self._agent.notify(EventNotice.from_wire(arg))
            return
        if isinstance(arg, dict) and arg.get(SIGNAL_MARKER):
            payload, seq = arg.get("payload") or {}, arg.get("wait_seq")
        else:  # sent by hand, e.g. from the Temporal CLI or UI: meant for the current wait
            payload, seq = arg, None
        if self._waiting and self._waiting[0] == name and seq in (None, self._waiting[1]):
            if seq is None and payload not in (None, {}):
                # engine.signal validated its payload before sending it; this one is checked
                # before the run accepts it (semantics: "Signals sent by hand").
                self._hand_sent.append(payload)
            elif self._received is _NOT_RECEIVED:
                self._received = payload or {}
        elif seq is not None and seq >= self.seq:
            # The run is about to wait on this: the step that returned wait() has written the
            # projection but this workflow has not applied its result yet (semantics: "Waits are
            # race-free").
            self._early.setdefault((name, seq), payload)

    # ------------------------------------------------------------------ actions (Temporal Updates)
    async def _await_action(self, step: str) -> ActionSubmission:
        self._set(**entering(self.spec, step, self.seq))
        self._action_step = step
        self._action_request = None
        self._publish()
        try:
            await workflow.wait_condition(lambda: self._action_request is not None)
        finally:
            self._action_step = None
        return ActionSubmission.from_wire(self._action_request or {})

    @workflow.update(name=ACTION_UPDATE)
    async def submit_action(self, request: dict[str, Any]) -> dict[str, Any]:
        seq = self.seq
        self._action_request = request
        await workflow.wait_condition(
            lambda: self._action_done >= seq or self.state.status in (WorkflowStatus.FAILED, WorkflowStatus.CANCELLED)
        )
        return {"display": self.display(), "run_id": self.run_id}

    @submit_action.validator
    def validate_action(self, request: dict[str, Any]) -> None:
        step = self._action_step
        wanted = request.get("action") if isinstance(request, dict) else None
        if step is None or self._action_request is not None:
            raise ApplicationError(
                f"run {self.run_id} is not waiting at an action (status {self.state.status.value}, step {self.state.current_step!r})",
                type=NOT_WAITING_FOR_ACTION,
            )
        name = self.spec["steps"][step]["action"]["name"]
        if wanted != name:
            raise ApplicationError(
                f"run {self.run_id} is waiting at action {name!r}, not {wanted!r}", type=NOT_WAITING_FOR_ACTION
            )

    # ------------------------------------------------------------------ subflows
    async def _run_child(self, step: str, directive: StartSubflow) -> ChildOutcome:
        """Start the child ``step`` asked for and wait for its end.

        The run's state now names the on_complete step; the commands emitted here keep naming
        ``step`` (the search attribute and the child's summary), as recorded histories hold them.
        """
        child = directive.child
        assert child is not None and self.inp is not None
        self._subflow_step = step
        self._publish()
        try:
            handle = await workflow.start_child_workflow(
                directive.workflow,
                replace(child.input, options=self.inp.options).to_wire(),
                id=child.workflow_id,
                task_queue=workflow.info().task_queue,
                parent_close_policy=workflow.ParentClosePolicy.REQUEST_CANCEL,
                static_summary=f"subflow of {self.name} step {step}",
            )
            result = await handle
            return ChildOutcome(WorkflowStatus.COMPLETED.value, result.get("context"), child.run_id)
        except ChildWorkflowError as err:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                # This run is being cancelled: the child was cancelled first (depth-first); now
                # cancel this run rather than resuming at on_complete (semantics: "Cancelling a run").
                raise asyncio.CancelledError() from err
            cause = err.cause
            details = list(getattr(cause, "details", ()) or ())
            context = details[0].get("context") if details and isinstance(details[0], dict) else None
            status = WorkflowStatus.CANCELLED if "cancel" in type(cause).__name__.lower() else WorkflowStatus.FAILED
            return ChildOutcome(status.value, context, child.run_id, getattr(cause, "message", None) or str(err))

    # ------------------------------------------------------------------ live state
    @workflow.query(name=DISPLAY_QUERY)
    def display(self) -> dict[str, Any]:
        return current_step_display(self.spec, self.state)

    @workflow.query(name=STATE_QUERY)
    def current_state(self) -> dict[str, Any]:
        # A query is recorded in no history: adding one changes nothing for runs in flight.
        state = {f: getattr(self.state, f) for f in STATE_FIELDS}
        wake_after, wake_at = self.state.wake_after, None
        if wake_after is not None and self._wake_from is not None:
            wake_at = (self._wake_from + timedelta(seconds=wake_after)).isoformat()
        return {
            **state,
            "status": self.state.status.value,
            "wake_at": wake_at,
            "seq": self.seq,
            "context": self.context,
        }

    def _apply(self, step: str, directive: Directive) -> None:
        change, _ = after_directive(self.spec, step, self.seq, directive)
        self._set(**change)

    def _set(self, **change: Any) -> None:
        if change.get("wake_after") is not None:
            self._wake_from = workflow.now()  # wake_after counts from here (for the state query)
        self.state.apply(change)
        state = self.state
        details = [f"**{self.name}** run {self.run_id}", f"status: {state.status.value}", f"step: {state.current_step}"]
        if state.waiting_for:
            details.append(f"waiting for: {state.waiting_for}")
        details.append(f"progress: {round(float(state.progress or 0) * 100)}%")
        if self._rejection:
            details.append(self._rejection)
        workflow.set_current_details("\n\n".join(details))

    def _publish(self) -> None:
        """Upsert the search attributes, once per blocking point and only when they changed.

        Each upsert is a history event, so intermediate states of one workflow task are not
        published. While a child runs, the step attribute names the step that started it (as
        it always did: the upserts are commands that recorded histories hold), whereas the
        state names the on_complete step.
        """
        assert self.inp is not None
        if not self.inp.options.search_attributes:
            return
        current = self._subflow_step or self.state.current_step
        values = (self.state.status.value, current or "", self.state.waiting_for or "")
        if values == self._published:
            return
        self._published = values
        workflow.upsert_search_attributes(
            [STATUS_KEY.value_set(values[0]), STEP_KEY.value_set(values[1]), WAITING_KEY.value_set(values[2])]
        )

"""The interpreter workflow: one Temporal workflow definition that runs every @workflow.

It is registered as the *dynamic* workflow, so the Temporal workflow type of each run is the
user's workflow name. Its input carries the compiled spec of that workflow as data (recorded
in history), and every step runs as an activity named ``<workflow>.<step>``. User code and
Django only ever run inside activities; this module imports neither, so it is deterministic
and safe in the workflow sandbox.

Input (a JSON dict)::

    {"run_id": int, "spec": {...}, "context": {...}, "start_step": str, "seq": int,
     "options": {"step_timeout": s, "heartbeat_timeout": s, "search_attributes": bool}}

Each entry into a step gets the next ``seq``. Waits are identified by ``(signal, seq)`` so a
late signal meant for an earlier wait can never wake a later one (D9).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RawValue, RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError

from temporal_worker.display import current_step_display

RECORD_ACTIVITY = "automation.record"
ACTION_UPDATE = "automation.action"
DISPLAY_QUERY = "current_step_display"
SIGNAL_MARKER = "__automation_signal__"
FAILURE_TYPE = "WorkflowFailed"

STATUS_KEY = SearchAttributeKey.for_keyword("AutomationStatus")
STEP_KEY = SearchAttributeKey.for_keyword("AutomationStep")
WAITING_KEY = SearchAttributeKey.for_keyword("AutomationWaitingFor")
SEARCH_ATTRIBUTE_KEYS = (STATUS_KEY, STEP_KEY, WAITING_KEY)

_NOT_RECEIVED = object()


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
        self.run_id = 0
        self.name = ""
        self.spec: dict[str, Any] = {}
        self.options: dict[str, Any] = {}
        self.context: dict[str, Any] = {}
        self.seq = 0
        self.state: dict[str, Any] = {"status": "running", "current_step": "", "progress": 0.0}
        self._waiting: tuple[str, int] | None = None
        self._received: Any = _NOT_RECEIVED
        self._early: dict[tuple[str, int], Any] = {}
        self._action_step: str | None = None
        self._action_request: dict[str, Any] | None = None
        self._action_done: int = -1
        self._action_error: str | None = None
        self._published: tuple[str, str, str] | None = None

    # ------------------------------------------------------------------ entry point
    @workflow.run
    async def run(self, args: Sequence[RawValue]) -> dict[str, Any]:
        inp = workflow.payload_converter().from_payload(args[0].payload, dict)
        self.run_id = inp["run_id"]
        self.spec = inp["spec"]
        self.name = self.spec["name"]
        self.options = inp.get("options") or {}
        self.context = inp["context"]
        self.seq = int(inp.get("seq", 0))
        self.state.update(inp.get("state") or {})
        self.state["current_step"] = inp["start_step"]
        # The engine sets the search attributes at start: publish only what changes from there.
        sa = workflow.info().typed_search_attributes
        if self.options.get("search_attributes") and sa.get(STATUS_KEY) is not None:
            self._published = (sa.get(STATUS_KEY) or "", sa.get(STEP_KEY) or "", sa.get(WAITING_KEY) or "")
        self._early = {(k[0], int(k[1])): v for k, v in inp.get("early_signals") or []}
        # "entry" is set when this run continued as new in the middle of a run.
        entry = inp.get("entry") or {"resume": bool(inp.get("resume"))}
        try:
            await self._interpret(inp["start_step"], entry)
        except RunFailed as failed:
            self._publish()
            await workflow.wait_condition(workflow.all_handlers_finished)
            raise ApplicationError(failed.reason, {"context": self.context}, type=FAILURE_TYPE, non_retryable=True)
        except asyncio.CancelledError:
            # Cancellation reached us (engine.cancel): record it, then end as Canceled.
            self._set(status="cancelled")
            self._publish()
            await self._record({"op": "cancelled", "step": self.state["current_step"]})
            raise
        self._publish()
        # An action answered by the last step returns its answer before the run closes.
        await workflow.wait_condition(workflow.all_handlers_finished)
        return {"status": "completed", "context": self.context, "run_id": self.run_id}

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
                await self._record({"op": "enter", "step": step})
            if action and "action_args" not in entry:
                entry = {**entry, "resume": True, "action_args": await self._await_action(step)}
            elif gate and "signal" not in entry:
                self._set(status="suspended", waiting_for=gate["signal"], waiting_display=gate.get("display") or {})
                payload = await self._wait(gate["signal"], gate.get("timeout"))
                if payload is _NOT_RECEIVED:
                    step, entry = await self._after_timeout(gate, step), {"resume": True, "enter": True}
                    continue
                entry = {**entry, "resume": True, "signal": payload}

            directive = await self._run_step(step, entry)
            if action:
                # The update handler answers once this loop blocks again, with the new state.
                self._action_done = self.seq
            kind = directive["kind"]
            if kind == "goto":
                if directive["step"] not in self.spec["steps"]:
                    await self._fail(step, f"workflow {self.name!r} step {step!r}: goto target {directive['step']!r} is not a step of this workflow", recorded=False)
                if directive.get("progress") is not None:
                    self._set(progress=directive["progress"])
                step, entry = directive["step"], {}
                self.seq += 1
            elif kind == "sleep":
                self._set(status="waiting")
                self._publish()
                await workflow.sleep(directive["seconds"], summary=f"sleep {human_duration(directive['seconds'])} in {step}")
                self.seq += 1
                entry = {"resume": True}
            elif kind == "wait":
                self._set(status="suspended", waiting_for=directive["signal"], waiting_display=directive.get("display") or {})
                payload = await self._wait(directive["signal"], directive.get("timeout"))
                if payload is _NOT_RECEIVED:
                    step, entry = await self._after_timeout(directive, step), {"resume": True, "enter": True}
                    continue
                following = self._next_in_order(step)
                if following is None:
                    await self._record({"op": "complete", "step": step, "signal": payload})
                    self._set(status="completed", progress=1.0)
                    return
                self.seq += 1
                step, entry = following, {"resume": True, "enter": True, "merge": payload}
            elif kind == "complete":
                self._set(status="completed", progress=1.0, completion_display=directive.get("display") or {})
                return
            elif kind == "fail":
                await self._fail(step, directive["reason"], recorded=True)
            elif kind == "subflow":
                self._set(status="suspended", waiting_for=f"subflow:{directive['workflow']}")
                result = await self._run_child(directive)
                self.seq += 1
                step = directive["on_complete"]
                entry = {"resume": True, "enter": True, "subflow_result": result}
            else:  # a directive this version does not know: never loop silently
                await self._fail(step, f"unknown step result kind {kind!r}", recorded=False)

    def _continue_as_new(self, step: str, entry: dict[str, Any]) -> None:
        """Carry on in a fresh history (long sleep loops): same workflow id, same run row."""
        workflow.continue_as_new(
            {
                "run_id": self.run_id,
                "spec": self.spec,
                "context": self.context,
                "start_step": step,
                "seq": self.seq,
                "options": self.options,
                "entry": entry,
                "state": {k: v for k, v in self.state.items() if k != "current_step"},
                "early_signals": [[list(k), v] for k, v in self._early.items()],
            }
        )

    def _next_in_order(self, step: str) -> str | None:
        order = self.spec["order"]
        i = order.index(step)
        return order[i + 1] if i + 1 < len(order) else None

    # ------------------------------------------------------------------ steps
    async def _run_step(self, step: str, entry: dict[str, Any]) -> dict[str, Any]:
        spec_step = self.spec["steps"][step]
        retry = spec_step["retry"]
        self._set(status="running", waiting_for="")
        if self._published is not None and self._published[0] != "running":
            # Leaving a wait: say so. Step-to-step moves are not published, since each upsert is a
            # history event; the step attribute names where the run last started or blocked.
            self._publish()
        try:
            result = await workflow.execute_activity(
                f"{self.name}.{step}",
                {"run_id": self.run_id, "workflow": self.name, "step": step, "seq": self.seq, "context": self.context, **entry},
                start_to_close_timeout=timedelta(seconds=self.options.get("step_timeout", 3600)),
                heartbeat_timeout=timedelta(seconds=self.options.get("heartbeat_timeout", 10)),
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
            message = getattr(cause, "message", None) or str(cause or err)
            attempts = retry["max_attempts"]
            await self._fail(step, f"step {step!r} failed after {attempts} attempt{'s' if attempts != 1 else ''}: {message}", recorded=False)
        self.context = result["context"]
        return result["directive"]

    async def _fail(self, step: str, reason: str, *, recorded: bool) -> None:
        """Record the failure, run @on_fail, and end the run as failed (D15)."""
        if not recorded:
            await self._record({"op": "step_failed", "step": step, "error": reason})
        on_fail = self.spec.get("on_fail")
        if on_fail:
            result = await workflow.execute_activity(
                f"{self.name}.{on_fail}",
                {"run_id": self.run_id, "workflow": self.name, "step": step, "seq": self.seq, "context": self.context, "error": reason, "on_fail": True},
                start_to_close_timeout=timedelta(seconds=self.options.get("step_timeout", 3600)),
                heartbeat_timeout=timedelta(seconds=self.options.get("heartbeat_timeout", 10)),
                retry_policy=RetryPolicy(maximum_attempts=3),
                summary=f"on_fail: {on_fail}",
            )
            self.context = result["context"]
        self._set(status="failed")
        raise RunFailed(reason)

    async def _after_timeout(self, wait: dict[str, Any], step: str) -> str:
        """A wait timed out: jump to on_timeout (D7), or fail the run."""
        target = wait.get("on_timeout")
        if not target:
            await self._fail(step, f"timed out waiting for {wait['signal']!r}", recorded=False)
        if target not in self.spec["steps"]:
            await self._fail(step, f"on_timeout target {target!r} of step {step!r} is not a step of workflow {self.name!r}", recorded=False)
        self.seq += 1
        return target

    async def _record(self, change: dict[str, Any]) -> None:
        result = await workflow.execute_activity(
            RECORD_ACTIVITY,
            {"run_id": self.run_id, "workflow": self.name, "seq": self.seq, **change},
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=10)),
            summary=f"record {change['op']}",
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
        try:
            await workflow.wait_condition(
                lambda: self._received is not _NOT_RECEIVED,
                timeout=timeout,
                timeout_summary=f"timeout of wait for {signal}" if timeout else None,
            )
        except TimeoutError:
            return _NOT_RECEIVED
        finally:
            self._waiting = None
        return self._received

    @workflow.signal(dynamic=True)
    def on_signal(self, name: str, args: Sequence[RawValue]) -> None:
        arg = workflow.payload_converter().from_payload(args[0].payload) if args else None
        if isinstance(arg, dict) and arg.get(SIGNAL_MARKER):
            payload, seq = arg.get("payload") or {}, arg.get("wait_seq")
        else:  # sent by hand, e.g. from the Temporal CLI or UI: meant for the current wait
            payload, seq = (arg if isinstance(arg, dict) else {}), None
        if self._waiting and self._waiting[0] == name and seq in (None, self._waiting[1]):
            if self._received is _NOT_RECEIVED:
                self._received = payload
        elif seq is not None and seq >= self.seq:
            # The run is about to wait on this (D9): the step that returned wait() has written
            # the projection but this workflow has not applied its result yet.
            self._early.setdefault((name, seq), payload)

    # ------------------------------------------------------------------ actions (Temporal Updates)
    async def _await_action(self, step: str) -> dict[str, Any]:
        action = self.spec["steps"][step]["action"]
        self._set(status="suspended", waiting_for=f"action:{action['name']}")
        self._action_step = step
        self._action_request = None
        self._publish()
        try:
            await workflow.wait_condition(lambda: self._action_request is not None)
        finally:
            self._action_step = None
        request = self._action_request or {}
        return request.get("args") or {}

    @workflow.update(name=ACTION_UPDATE)
    async def submit_action(self, request: dict[str, Any]) -> dict[str, Any]:
        seq = self.seq
        self._action_request = request
        await workflow.wait_condition(lambda: self._action_done >= seq or self.state["status"] in ("failed", "cancelled"))
        return {"display": self.display(), "run_id": self.run_id}

    @submit_action.validator
    def validate_action(self, request: dict[str, Any]) -> None:
        step = self._action_step
        wanted = request.get("action") if isinstance(request, dict) else None
        if step is None or self._action_request is not None:
            raise ApplicationError(f"run {self.run_id} is not waiting at an action (status {self.state['status']}, step {self.state['current_step']!r})", type="NotWaitingForAction")
        name = self.spec["steps"][step]["action"]["name"]
        if wanted != name:
            raise ApplicationError(f"run {self.run_id} is waiting at action {name!r}, not {wanted!r}", type="NotWaitingForAction")

    # ------------------------------------------------------------------ subflows
    async def _run_child(self, directive: dict[str, Any]) -> dict[str, Any]:
        child = directive["child"]
        self._publish()
        try:
            handle = await workflow.start_child_workflow(
                directive["workflow"],
                {**child["input"], "options": self.options},
                id=child["workflow_id"],
                task_queue=workflow.info().task_queue,
                parent_close_policy=workflow.ParentClosePolicy.REQUEST_CANCEL,
                static_summary=f"subflow of {self.name} step {self.state['current_step']}",
            )
            result = await handle
            return {"status": "completed", "context": result.get("context"), "run_id": child["run_id"], "error": None}
        except ChildWorkflowError as err:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                # This run is being cancelled: the child was cancelled first (depth-first,
                # D17); now cancel this run rather than resuming at on_complete.
                raise asyncio.CancelledError() from err
            cause = err.cause
            details = list(getattr(cause, "details", ()) or ())
            context = details[0].get("context") if details and isinstance(details[0], dict) else None
            status = "cancelled" if "cancel" in type(cause).__name__.lower() else "failed"
            return {"status": status, "context": context, "run_id": child["run_id"], "error": getattr(cause, "message", None) or str(err)}

    # ------------------------------------------------------------------ live state
    @workflow.query(name=DISPLAY_QUERY)
    def display(self) -> dict[str, Any]:
        return current_step_display(self.spec, self.state)

    def _set(self, **changes: Any) -> None:
        waiting_for = changes.pop("waiting_for", None)
        if waiting_for is not None:
            self.state["waiting_for"] = waiting_for
        self.state.update(changes)
        if changes.get("status") in ("running", "completed", "failed", "cancelled"):
            self.state["waiting_display"] = {}
        details = [f"**{self.name}** run {self.run_id}", f"status: {self.state['status']}", f"step: {self.state['current_step']}"]
        if self.state.get("waiting_for"):
            details.append(f"waiting for: {self.state['waiting_for']}")
        details.append(f"progress: {round(float(self.state.get('progress') or 0) * 100)}%")
        workflow.set_current_details("\n\n".join(details))

    def _publish(self) -> None:
        """Upsert the search attributes, once per blocking point and only when they changed.

        Each upsert is a history event, so intermediate states of one workflow task are not
        published.
        """
        if not self.options.get("search_attributes"):
            return
        values = (self.state["status"], self.state["current_step"] or "", self.state.get("waiting_for") or "")
        if values == self._published:
            return
        self._published = values
        workflow.upsert_search_attributes(
            [STATUS_KEY.value_set(values[0]), STEP_KEY.value_set(values[1]), WAITING_KEY.value_set(values[2])]
        )


__all__ = [
    "ACTION_UPDATE",
    "DISPLAY_QUERY",
    "FAILURE_TYPE",
    "InterpreterWorkflow",
    "RECORD_ACTIVITY",
    "SEARCH_ATTRIBUTE_KEYS",
    "SIGNAL_MARKER",
]

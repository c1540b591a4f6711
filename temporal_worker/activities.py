"""Activities: where user code and Django run.

One dynamic activity serves every step (its type is ``<workflow>.<step>``, readable in the
Temporal UI), every ``@on_fail`` handler and the projection records the workflow asks for.
It is synchronous on purpose: the Django ORM is synchronous, and the worker runs it on a
thread pool so a slow step never blocks the worker's event loop.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from django.db import close_old_connections
from pydantic import BaseModel, ValidationError
from temporalio import activity
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError

from django_bridge.models import WorkflowRun
from facade._context import bind_context
from facade._definition import StepDef, WorkflowDefinition, _validation_summary
from facade._errors import AutomationError, StepResultError, TemporalUnavailableError
from facade._registry import registry
from facade._results import (
    Complete,
    Fail,
    Goto,
    StepResult,
    Subflow,
    SubflowResult,
    Wait,
)
from temporal_worker import projection
from temporal_worker.interpreter import RECORD_ACTIVITY
from temporal_worker.run_input import start_input

__all__ = ["HeartbeatTicker", "dispatch", "heartbeats", "merge_into"]

logger = logging.getLogger("django_ai.automation")


@activity.defn(dynamic=True)
def dispatch(args: Sequence[RawValue]) -> dict[str, Any]:
    """Entry point of every activity of the interpreter workflow."""
    inp = activity.payload_converter().from_payload(args[0].payload, dict)
    # Django's request signals never fire in a worker: close stale connections ourselves.
    close_old_connections()
    try:
        if activity.info().activity_type == RECORD_ACTIVITY:
            return _record(inp)
        if inp.get("on_fail"):
            return _run_on_fail(inp)
        return _run_step(inp)
    except WorkflowRun.DoesNotExist:
        # The row was deleted (admin, a flushed test database): retrying cannot bring it back,
        # and retrying forever would keep the workflow open. End it.
        raise ApplicationError(
            f"workflow {inp.get('workflow')!r} run {inp.get('run_id')}: its WorkflowRun row was deleted, "
            "so the run cannot go on; start a new run.",
            type="RunDeleted",
            non_retryable=True,
        ) from None
    finally:
        close_old_connections()


# ---------------------------------------------------------------------- context merging
def merge_into(ctx: BaseModel, payload: Any) -> BaseModel:
    """Merge the keys of ``payload`` that are Context fields, validated (D3)."""
    if not isinstance(payload, dict) or not payload:
        return ctx
    known = {k: v for k, v in payload.items() if k in type(ctx).model_fields}
    if not known:
        return ctx
    merged = type(ctx).model_validate({**ctx.model_dump(), **known})
    for key in known:
        setattr(ctx, key, getattr(merged, key))
    return ctx


def _dump(ctx: BaseModel) -> dict[str, Any]:
    return ctx.model_dump(mode="json")


class HeartbeatTicker:
    """One daemon thread that heartbeats every running step of this worker.

    Steps are plain synchronous methods that never heartbeat themselves; without heartbeats a
    step on a dead worker is only retried after its whole start-to-close timeout. One shared
    thread costs less than a thread per step. ``paused`` exists for tests that stand in for a
    stalled worker.
    """

    TICK = 0.2

    def __init__(self) -> None:
        self.paused = False
        self._beats: dict[object, list[Any]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def beating(self, interval: float) -> Iterator[None]:
        token = object()
        with self._lock:
            self._beats[token] = [contextvars.copy_context(), interval, time.monotonic() + interval]
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="step-heartbeats", daemon=True)
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                self._beats.pop(token, None)

    def _run(self) -> None:
        while True:
            time.sleep(self.TICK)
            if self.paused:
                continue
            now = time.monotonic()
            with self._lock:
                due = [beat for beat in self._beats.values() if beat[2] <= now]
                for beat in due:
                    beat[2] = now + beat[1]
            for ctx, _, _ in due:
                try:
                    ctx.run(activity.heartbeat)
                except Exception:  # the step finished meanwhile
                    pass


heartbeats = HeartbeatTicker()


# ---------------------------------------------------------------------- steps
def _run_step(inp: dict[str, Any]) -> dict[str, Any]:
    definition = registry.get(inp["workflow"])
    step_name, run_id, seq = inp["step"], inp["run_id"], inp["seq"]
    step = definition.steps[step_name]
    info = activity.info()
    spec = definition.spec

    # A failed attempt saved its context (D2); later attempts continue from it.
    data = inp["context"]
    if info.attempt > 1:
        data, last = WorkflowRun.objects.values_list("data", "last_transition").get(pk=run_id)
        if last and last.get("seq") == seq and last.get("step") == step_name:
            # An earlier attempt finished and recorded its result, but Temporal never got the
            # answer (server down, or a write slower than the heartbeat timeout). Running the
            # step again would start from its own output: answer with what was recorded.
            return {"context": data, "directive": last["directive"]}
    ctx = definition.load_context(data)
    try:
        merge_into(ctx, inp.get("merge"))
        merge_into(ctx, inp.get("signal"))
    except ValidationError as exc:
        return _finish(run_id, spec, step_name, seq, ctx, Fail(
            f"workflow {definition.name!r} run {run_id} step {step_name!r}: the signal payload does not fit "
            f"the Context: {_validation_summary(exc)}"
        ))
    if inp.get("resume") or info.attempt > 1:
        projection.mark_running(run_id, step_name)

    instance = definition.cls()
    instance.context = ctx
    try:
        kwargs = _step_kwargs(definition, step, inp)
    except AutomationError as exc:
        return _finish(run_id, spec, step_name, seq, ctx, Fail(exc.message))
    heartbeat_every = max(0.5, float(info.heartbeat_timeout.total_seconds() if info.heartbeat_timeout else 30) / 3)
    with bind_context(ctx), heartbeats.beating(heartbeat_every):
        try:
            result = getattr(instance, step_name)(**kwargs)
        except Exception as exc:
            # AutomationError is a programming error (retrying cannot help), so the run fails now;
            # TemporalUnavailableError (an engine call while the server is down) is transient.
            if isinstance(exc, AutomationError) and not isinstance(exc, TemporalUnavailableError):
                result = Fail(f"workflow {definition.name!r} run {run_id} step {step_name!r}: {exc.message}")
            else:
                attempts = step.retry.max_attempts
                retry_in = step.retry.delay_before(info.attempt + 1) if info.attempt < attempts else None
                projection.save_failed_attempt(run_id, _dump(ctx), retry_in)
                logger.warning(
                    "workflow %r run %s step %r attempt %s/%s raised %s: %s",
                    definition.name, run_id, step_name, info.attempt, attempts, type(exc).__name__, exc,
                )
                raise
        # Still heartbeating: a slow projection write must not look like a dead worker. Still
        # bound: an on_create hook of run_subflow sees this run's Context (D1).
        return _finish(run_id, spec, step_name, seq, ctx, result, definition=definition)


def _step_kwargs(definition: WorkflowDefinition, step: StepDef, inp: dict[str, Any]) -> dict[str, Any]:
    step_name, params = step.name, step.params
    kwargs: dict[str, Any] = {}
    if inp.get("action_args") is not None:
        kwargs.update({k: v for k, v in inp["action_args"].items() if k in params})
    if "subflow_result" in inp and "subflow_result" in params:
        raw = inp["subflow_result"]
        child_context: Any = raw.get("context")
        child_run = WorkflowRun.objects.filter(pk=raw["run_id"]).values("name", "data").first()
        if child_run is not None:
            # The child's row holds its final context, including what failed attempts and its
            # @on_fail handler changed.
            child_context = child_run["data"] or child_context
            if child_run["name"] in registry:
                child_context = registry.get(child_run["name"]).load_context(child_context or {})
        kwargs["subflow_result"] = SubflowResult(
            status=raw["status"], context=child_context, run_id=raw["run_id"], error=raw.get("error")
        )
    missing = [p for p in step.required_params if p not in kwargs]
    if missing:
        raise StepResultError(
            f"workflow {definition.name!r} step {step_name!r} takes {missing} but the run entered it without them; "
            "only action steps receive fields and on_complete steps receive subflow_result.",
            workflow=definition.name, step=step_name,
        )
    return kwargs


def _finish(
    run_id: int,
    spec: dict[str, Any],
    step_name: str,
    seq: int,
    ctx: BaseModel,
    result: Any,
    *,
    definition: WorkflowDefinition | None = None,
) -> dict[str, Any]:
    """Turn a step's result into a directive, write the projection, answer the workflow."""
    name = spec["name"]
    prefix = f"workflow {name!r} run {run_id} step {step_name!r}"
    directive: dict[str, Any]
    if not isinstance(result, StepResult):
        result = Fail(
            f"{prefix} returned {result!r}, which is not a step result: return goto(...), complete(...), "
            "fail(...), sleep(...), wait(...), wait_for_event(...) or run_subflow(...)"
        )
    if isinstance(result, Goto) and result.step not in spec["steps"]:
        result = Fail(f"{prefix}: goto target {result.step!r} is not a @step of this workflow (steps: {', '.join(spec['order'])})")
    if isinstance(result, Wait) and result.on_timeout and result.on_timeout not in spec["steps"]:
        result = Fail(f"{prefix}: on_timeout={result.on_timeout!r} is not a @step of this workflow (steps: {', '.join(spec['order'])})")
    if isinstance(result, Complete):
        try:
            merge_into(ctx, result.merge)
        except ValidationError as exc:
            result = Fail(f"{prefix}: complete(...) values do not fit the Context: {_validation_summary(exc)}")
    if isinstance(result, Subflow) and result.on_complete not in spec["steps"]:
        result = Fail(f"{prefix}: run_subflow on_complete={result.on_complete!r} is not a @step of this workflow")
    if isinstance(result, Subflow):
        try:
            directive = _start_subflow(run_id, step_name, seq, ctx, result)
        except AutomationError as exc:
            result = Fail(f"{prefix}: run_subflow failed: {exc.message}")
    if not isinstance(result, Subflow):
        directive = result.to_directive()
    data = _dump(ctx)
    projection.record_directive({"id": run_id}, spec, step_name, seq, data, directive)
    return {"context": data, "directive": directive}


def _start_subflow(run_id: int, step_name: str, seq: int, ctx: BaseModel, result: Subflow) -> dict[str, Any]:
    """Create (once) the child run row; the workflow starts it as a Temporal child workflow."""
    child_def = registry.get(result.workflow)
    child_ctx = child_def.create_context(**result.kwargs)
    parent = WorkflowRun.objects.only("temporal_workflow_id", "task_queue").get(pk=run_id)
    child_wf_id = f"{parent.temporal_workflow_id}/{seq}-{child_def.name}"
    spec = child_def.spec
    child, _ = WorkflowRun.objects.get_or_create(
        temporal_workflow_id=child_wf_id,
        defaults={
            "name": child_def.name,
            "version": child_def.version,
            "parent_id": run_id,
            "data": _dump(child_ctx),
            "spec": spec,
            "task_queue": parent.task_queue,
            **projection.entry_fields(spec, child_def.start_step, 0),
        },
    )
    if "active_subworkflow_run_id" in type(ctx).model_fields:
        ctx.active_subworkflow_run_id = child.pk  # type: ignore[attr-defined]
    if result.on_create is not None:
        result.on_create(child)
    directive = result.to_directive()
    directive["child"] = {
        "run_id": child.pk,
        "workflow_id": child_wf_id,
        "input": start_input(child.pk, spec, child.data, child_def.start_step),
    }
    return directive


# ---------------------------------------------------------------------- on_fail
def _run_on_fail(inp: dict[str, Any]) -> dict[str, Any]:
    definition = registry.get(inp["workflow"])
    run = WorkflowRun.objects.get(pk=inp["run_id"])
    ctx = definition.load_context(run.data or inp["context"])
    instance = definition.cls()
    instance.context = ctx
    handler = getattr(instance, definition.on_fail or "")
    with bind_context(ctx):
        try:
            handler(run)
        except Exception:
            # D15: compensation errors are logged; the run keeps its original failure.
            logger.exception(
                "workflow %r run %s: the @on_fail handler %r raised; the run stays failed with: %s",
                definition.name, run.pk, definition.on_fail, inp["error"],
            )
    data = _dump(ctx)
    projection.record_finished_failed(run.pk, data, inp["error"])
    return {"context": data}


# ---------------------------------------------------------------------- records
def _record(inp: dict[str, Any]) -> dict[str, Any]:
    op, run_id, seq = inp["op"], inp["run_id"], inp["seq"]
    spec = WorkflowRun.objects.values_list("spec", flat=True).get(pk=run_id)
    if op == "enter":
        projection.update_run(run_id, **projection.entry_fields(spec, inp["step"], seq))
    elif op == "step_failed":
        projection.record_step_failed(run_id, spec, inp["step"], seq, inp["error"])
        # Failed attempts saved their context here (D2): hand it back to the workflow.
        return {"context": WorkflowRun.objects.values_list("data", flat=True).get(pk=run_id)}
    elif op == "complete":
        data = None
        if inp.get("signal") and inp["workflow"] in registry:
            definition = registry.get(inp["workflow"])
            run_data = WorkflowRun.objects.values_list("data", flat=True).get(pk=run_id)
            try:
                data = _dump(merge_into(definition.load_context(run_data), inp["signal"]))
            except ValidationError:
                data = None
        projection.record_completed(run_id, inp["step"], data)
    elif op == "cancelled":
        # engine.cancel stores the caller's reason on the row before asking Temporal to cancel.
        reason = WorkflowRun.objects.values_list("error", flat=True).get(pk=run_id) or "cancelled"
        projection.record_cancelled(run_id, inp["step"], seq, reason)
    else:
        raise ApplicationError(f"unknown record operation {op!r}", non_retryable=True)
    return {}

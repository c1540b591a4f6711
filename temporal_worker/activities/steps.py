"""The step activity: run a user's step (or its ``@on_fail`` handler) and write its transition."""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel, ValidationError
from temporalio import activity

from django_bridge.models import WorkflowRun
from facade import AutomationError, StepResultError, SubflowResult, TemporalUnavailableError, registry
from facade.contract import (
    Complete,
    Fail,
    StepDef,
    StepResult,
    Subflow,
    WorkflowDefinition,
    bind_context,
    merge_into,
    validation_summary,
)
from temporal_worker import projection
from temporal_worker.protocol import (
    ChildStart,
    Directive,
    RunOptions,
    StartInput,
    StartSubflow,
    StepInput,
    StepOutcome,
    directive_from_wire,
)
from temporal_worker.spec import compile_spec
from temporal_worker.transitions import invalid_target

from .heartbeat import heartbeats

__all__ = ["run_on_fail", "run_step"]

logger = logging.getLogger("django_temporal_automation")


def _dump(ctx: BaseModel) -> dict[str, Any]:
    return ctx.model_dump(mode="json")


def run_step(inp: StepInput) -> StepOutcome:
    definition = registry.get(inp.workflow)
    step_name, run_id, seq = inp.step, inp.run_id, inp.seq
    step = definition.steps[step_name]
    info = activity.info()
    spec = compile_spec(definition)

    # A failed attempt saved its context (semantics: "Failed attempts keep their context");
    # later attempts continue from it.
    data = inp.context
    if info.attempt > 1:
        data, last = WorkflowRun.objects.values_list("data", "last_transition").get(pk=run_id)
        if last and last.get("seq") == seq and last.get("step") == step_name:
            # An earlier attempt finished and recorded its result, but Temporal never got the
            # answer (server down, or a write slower than the heartbeat timeout). Running the
            # step again would start from its own output: answer with what was recorded.
            return StepOutcome(data, directive_from_wire(last["directive"]))
    ctx = definition.load_context(data)
    try:
        merge_into(ctx, inp.merge)
        merge_into(ctx, inp.signal)
    except ValidationError as exc:
        return _finish(run_id, spec, step_name, seq, ctx, Fail(
            f"workflow {definition.name!r} run {run_id} step {step_name!r}: the signal payload does not fit "
            f"the Context: {validation_summary(exc)}"
        ))
    if inp.resume or info.attempt > 1:
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
        # bound: an on_create hook of run_subflow sees this run's Context.
        return _finish(run_id, spec, step_name, seq, ctx, result)


def _step_kwargs(definition: WorkflowDefinition, step: StepDef, inp: StepInput) -> dict[str, Any]:
    params = step.params
    kwargs: dict[str, Any] = {}
    if inp.action_args is not None:
        kwargs.update({k: v for k, v in inp.action_args.items() if k in params})
    if inp.subflow_result is not None and "subflow_result" in params:
        raw = inp.subflow_result
        child_context: Any = raw.context
        child_run = WorkflowRun.objects.filter(pk=raw.run_id).values("name", "data").first()
        if child_run is not None:
            # The child's row holds its final context, including what failed attempts and its
            # @on_fail handler changed.
            child_context = child_run["data"] or child_context
            if child_run["name"] in registry:
                child_context = registry.get(child_run["name"]).load_context(child_context or {})
        kwargs["subflow_result"] = SubflowResult(
            status=raw.status, context=child_context, run_id=raw.run_id, error=raw.error
        )
    missing = [p for p in step.required_params if p not in kwargs]
    if missing:
        raise StepResultError(
            f"workflow {definition.name!r} step {step.name!r} takes {missing} but the run entered it without them; "
            "only action steps receive fields and on_complete steps receive subflow_result.",
            workflow=definition.name, step=step.name,
        )
    return kwargs


def _finish(run_id: int, spec: dict[str, Any], step_name: str, seq: int, ctx: BaseModel, result: Any) -> StepOutcome:
    """Turn a step's result into a directive, write the projection, answer the workflow."""
    prefix = f"workflow {spec['name']!r} run {run_id} step {step_name!r}"
    if not isinstance(result, StepResult):
        result = Fail(
            f"{prefix} returned {result!r}, which is not a step result: return goto(...), complete(...), "
            "fail(...), sleep(...), wait(...), wait_for_event(...) or run_subflow(...)"
        )
    problem = invalid_target(spec, step_name, result.to_directive())
    if problem is not None:
        result = Fail(f"{prefix}: {problem}")
    if isinstance(result, Complete):
        try:
            merge_into(ctx, result.merge)
        except ValidationError as exc:
            result = Fail(f"{prefix}: complete(...) values do not fit the Context: {validation_summary(exc)}")
    directive: Directive = result.to_directive()
    if isinstance(result, Subflow):
        try:
            directive = _start_subflow(run_id, seq, ctx, result)
        except AutomationError as exc:
            directive = Fail(f"{prefix}: run_subflow failed: {exc.message}").to_directive()
    data = _dump(ctx)
    projection.record_directive(run_id, spec, step_name, seq, data, directive)
    return StepOutcome(data, directive)


def _start_subflow(run_id: int, seq: int, ctx: BaseModel, result: Subflow) -> StartSubflow:
    """Create (once) the child run row; the workflow starts it as a Temporal child workflow."""
    child_def = registry.get(result.workflow)
    child_ctx = child_def.create_context(**result.kwargs)
    parent = WorkflowRun.objects.only("temporal_workflow_id", "task_queue").get(pk=run_id)
    child_wf_id = f"{parent.temporal_workflow_id}/{seq}-{child_def.name}"
    spec = compile_spec(child_def)
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
    # The parent's workflow gives the child its own options when it starts it.
    child_input = StartInput(child.pk, spec, child.data, child_def.start_step, options=RunOptions())
    return StartSubflow(result.workflow, result.on_complete, ChildStart(child.pk, child_wf_id, child_input))


def run_on_fail(inp: StepInput) -> StepOutcome:
    """Run the workflow's ``@on_fail`` handler (semantics: "On-fail handlers and definition errors")."""
    definition = registry.get(inp.workflow)
    run = WorkflowRun.objects.get(pk=inp.run_id)
    ctx = definition.load_context(run.data or inp.context)
    instance = definition.cls()
    instance.context = ctx
    handler = getattr(instance, definition.on_fail or "")
    with bind_context(ctx):
        try:
            handler(run)
        except Exception:
            # Compensation errors are logged; the run keeps its original failure.
            logger.exception(
                "workflow %r run %s: the @on_fail handler %r raised; the run stays failed with: %s",
                definition.name, run.pk, definition.on_fail, inp.error,
            )
    data = _dump(ctx)
    projection.record_finished_failed(run.pk, data, inp.error or "")
    return StepOutcome(data)

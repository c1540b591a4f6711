"""The step activity: run a user's step (or its ``@on_fail`` handler) and write its transition."""

from __future__ import annotations

import functools
import logging
import time
from concurrent.futures import Future
from dataclasses import dataclass, replace
from typing import Any

from pydantic import BaseModel, ValidationError
from temporalio import activity

from django_bridge.conf import automation_settings
from django_bridge.models import WorkflowRun
from facade import (
    ActionRequest,
    AutomationError,
    StepResultError,
    SubflowResult,
    TemporalUnavailableError,
    WorkflowStatus,
    registry,
)
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
from temporal_worker import metrics, outages, projection, tracing
from temporal_worker.protocol import (
    ChildStart,
    Directive,
    RunOptions,
    Sleep,
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
    """Run one attempt of a step; the library's own database work waits out outages.

    Only the step's own exceptions count against its ``Retry`` (semantics: "Database outages").
    Once the step's method has returned, its outcome is kept: in memory while the transition is
    written, and in the heartbeat details, so an attempt that dies before the write lands is
    followed by one that only writes it.
    """
    definition = registry.get(inp.workflow)
    info = activity.info()
    heartbeat_every = max(0.5, float(info.heartbeat_timeout.total_seconds() if info.heartbeat_timeout else 30) / 3)
    span = tracing.step_span(inp.workflow, inp.run_id, inp.step, seq=inp.seq, attempt=info.attempt)
    with span, heartbeats.beating(heartbeat_every) as beat:
        spec = compile_spec(definition)
        kept = _kept_outcome(inp, info.heartbeat_details)
        if kept is not None:
            # An earlier attempt ran the step and died before its transition was written.
            beat.send_now(*info.heartbeat_details)
            return _write(inp, spec, kept)
        ready = outages.retrying(f"{_label(inp)}: loading the run", lambda: _prepare(definition, inp))
        if isinstance(ready, Recorded):
            return ready.outcome
        if isinstance(ready, StepOutcome):  # ends before the step's method runs
            return _write(inp, spec, ready)
        ctx, kwargs, mark = ready
        with metrics.step_duration.time(workflow=inp.workflow, step=inp.step):
            result = _call_step(definition, inp, ctx, kwargs)
        returned = time.monotonic()
        outcome = _decide(inp, spec, ctx, result)
        assert outcome.directive is not None
        projection.drop_running_mark(mark, spec, inp.step, inp.seq, outcome.directive)
        try:
            return _since_return(_write(inp, spec, outcome, allowance=0), returned)
        except Exception as exc:
            if not outages.is_outage(exc):
                raise
            # Keep the outcome where the next attempt finds it should this worker die before
            # the database is back; only then (a heartbeat is a round trip to the server).
            beat.send_now({KEPT_OUTCOME: {"seq": inp.seq, "step": inp.step, "outcome": outcome.to_wire()}})
            return _since_return(_write(inp, spec, outcome), returned)


def _since_return(outcome: StepOutcome, returned: float) -> StepOutcome:
    """A sleep counts from the step's return: say how long recording it took (semantics: "Sleep runs the same step again")."""
    if not isinstance(outcome.directive, Sleep):
        return outcome
    return replace(outcome, recorded_in=round(time.monotonic() - returned, 3))


KEPT_OUTCOME = "automation_outcome"


def _label(inp: StepInput) -> str:
    return f"workflow {inp.workflow!r} run {inp.run_id} step {inp.step!r}"


def _kept_outcome(inp: StepInput, details: Any) -> StepOutcome | None:
    """The outcome an earlier attempt of this very entry kept in its heartbeat details."""
    for detail in details or ():
        kept = detail.get(KEPT_OUTCOME) if isinstance(detail, dict) else None
        if kept and kept.get("seq") == inp.seq and kept.get("step") == inp.step:
            return StepOutcome.from_wire(kept["outcome"])
    return None


@dataclass(frozen=True)
class Recorded:
    """An outcome already written by an earlier attempt of this entry."""

    outcome: StepOutcome


def _prepare(
    definition: WorkflowDefinition, inp: StepInput
) -> Recorded | StepOutcome | tuple[BaseModel, dict[str, Any], Future[Any] | None]:
    """Load what the step needs: its Context, its arguments and the "running" mark it queued
    (a step leaving a wait, or a retried attempt); or an outcome that ends it early.

    Safe to run again after a database error: it reads, and its one write is idempotent.
    """
    run_id, step_name, seq = inp.run_id, inp.step, inp.seq
    attempt = activity.info().attempt
    outages.check_connection()
    # A failed attempt saved its context (semantics: "Failed attempts keep their context");
    # later attempts continue from it.
    data = inp.context
    if attempt > 1:
        data, last = WorkflowRun.objects.values_list("data", "last_transition").get(pk=run_id)
        if last and last.get("seq") == seq and last.get("step") == step_name:
            # An earlier attempt finished and recorded its result, but Temporal never got the
            # answer (server down, or a write slower than the heartbeat timeout). Running the
            # step again would start from its own output: answer with what was recorded.
            return Recorded(StepOutcome(data, directive_from_wire(last["directive"])))
    ctx = definition.load_context(data)
    try:
        merge_into(ctx, inp.merge)
        merge_into(ctx, inp.signal)
    except ValidationError as exc:
        reason = f"{_label(inp)}: the signal payload does not fit the Context: {validation_summary(exc)}"
        return StepOutcome(_dump(ctx), Fail(reason).to_directive())
    mark = projection.mark_running_soon(run_id, step_name) if inp.resume or attempt > 1 else None
    try:
        kwargs = _step_kwargs(definition, definition.steps[step_name], inp)
    except AutomationError as exc:
        return StepOutcome(_dump(ctx), Fail(exc.message).to_directive())
    return ctx, kwargs, mark


def _call_step(definition: WorkflowDefinition, inp: StepInput, ctx: BaseModel, kwargs: dict[str, Any]) -> Any:
    """Call the user's method with ``get_context()`` bound; what it returns, or a ``Fail``.

    The step's own exceptions follow its ``Retry``: the attempt's context is saved and the
    exception re-raised for Temporal to retry. With ``STEP_DATABASE_ERRORS_ARE_OUTAGES``, a
    connection-level database error from the step waits for the database and runs it again
    instead, within the outage allowance.
    """
    step = definition.steps[inp.step]
    info = activity.info()
    instance = definition.cls()
    instance.context = ctx
    deadline = time.monotonic() + float(automation_settings.DATABASE_OUTAGE_ALLOWANCE)
    with bind_context(ctx, run_id=inp.run_id):
        while True:
            try:
                return getattr(instance, inp.step)(**kwargs)
            except Exception as exc:
                # AutomationError is a programming error (retrying cannot help), so the run fails now;
                # TemporalUnavailableError (an engine call while the server is down) is transient.
                if isinstance(exc, AutomationError) and not isinstance(exc, TemporalUnavailableError):
                    return Fail(f"{_label(inp)}: {exc.message}")
                if (
                    automation_settings.STEP_DATABASE_ERRORS_ARE_OUTAGES
                    and outages.is_outage(exc)
                    and time.monotonic() < deadline
                ):
                    logger.warning(
                        "%s: the database is unavailable (%s); running it again once it is back", _label(inp), exc
                    )
                    outages.close_connections()
                    outages.wait_for_database(_label(inp), allowance=max(0.0, deadline - time.monotonic()))
                    continue
                attempts = step.retry.max_attempts
                retry_in = step.retry.delay_before(info.attempt + 1) if info.attempt < attempts else None
                data = _dump(ctx)
                outages.retrying(
                    f"{_label(inp)}: saving a failed attempt",
                    functools.partial(projection.save_failed_attempt, inp.run_id, data, retry_in),
                )
                logger.warning(
                    "%s attempt %s/%s raised %s: %s", _label(inp), info.attempt, attempts, type(exc).__name__, exc
                )
                raise


def _step_kwargs(definition: WorkflowDefinition, step: StepDef, inp: StepInput) -> dict[str, Any]:
    params = step.params
    kwargs: dict[str, Any] = {}
    if inp.action_args is not None:
        kwargs.update({k: v for k, v in inp.action_args.items() if k in params})
        if "request" in params:
            # Who submitted it, rebuilt from the user's key; None without a request (tests, shell).
            kwargs["request"] = (
                None
                if inp.submitter is None
                else ActionRequest(_load_user(inp.submitter.user_pk), step.action["name"], dict(inp.action_args))
            )
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
            workflow=definition.name,
            step=step.name,
        )
    return kwargs


def _load_user(pk: Any) -> Any:
    """The user with primary key ``pk``; ``AnonymousUser`` for None or a user deleted since."""
    from django.apps import apps

    if not apps.is_installed("django.contrib.auth"):
        return None
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import AnonymousUser

    user = None if pk is None else get_user_model()._default_manager.filter(pk=pk).first()
    return user or AnonymousUser()


def _decide(inp: StepInput, spec: dict[str, Any], ctx: BaseModel, result: Any) -> StepOutcome:
    """Turn a step's result into its outcome: the new Context and a directive."""
    prefix = _label(inp)
    if not isinstance(result, StepResult):
        result = Fail(
            f"{prefix} returned {result!r}, which is not a step result: return goto(...), complete(...), "
            "fail(...), sleep(...), wait(...), wait_for_event(...) or run_subflow(...)"
        )
    problem = invalid_target(spec, inp.step, result.to_directive())
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
            # Still bound: an on_create hook of run_subflow sees this run's Context.
            with bind_context(ctx):
                directive = _start_subflow(inp.run_id, inp.seq, ctx, result)
        except OnCreateFailed as exc:
            directive = Fail(f"{prefix}: {exc}").to_directive()
        except AutomationError as exc:
            directive = Fail(f"{prefix}: run_subflow failed: {exc.message}").to_directive()
    return StepOutcome(_dump(ctx), directive)


def _write(
    inp: StepInput, spec: dict[str, Any], outcome: StepOutcome, *, allowance: float | None = None
) -> StepOutcome:
    """Write the transition of ``outcome`` before the workflow applies it, through outages."""
    assert outcome.directive is not None
    directive = outcome.directive
    outages.retrying(
        f"{_label(inp)}: recording its result",
        lambda: projection.record_directive(inp.run_id, spec, inp.step, inp.seq, outcome.context, directive),
        allowance=allowance,
    )
    return outcome


class OnCreateFailed(Exception):
    """The ``on_create`` hook of ``run_subflow`` raised: the child is marked failed, never started."""


def _start_subflow(run_id: int, seq: int, ctx: BaseModel, result: Subflow) -> StartSubflow:
    """Create (once) the child run row; the workflow starts it as a Temporal child workflow.

    A child row never exists without its workflow: if the ``on_create`` hook raises, the row is
    marked failed with the hook's error here, and the parent fails (semantics: "Subflows").
    """
    child_def = registry.get(result.workflow)
    child_ctx = child_def.create_context(**result.kwargs)
    spec = compile_spec(child_def)

    def create_child() -> tuple[WorkflowRun, WorkflowRun, str]:
        parent = WorkflowRun.objects.get(pk=run_id)
        workflow_id = f"{parent.temporal_workflow_id}/{seq}-{child_def.name}"
        fresh = {"data": _dump(child_ctx), **projection.entry_fields(spec, child_def.start_step, 0)}
        row, created = WorkflowRun.objects.get_or_create(  # keyed by the workflow id: safe to run again
            temporal_workflow_id=workflow_id,
            defaults={
                "name": child_def.name,
                "version": child_def.version,
                "parent_id": run_id,
                "spec": spec,
                "task_queue": parent.task_queue,
                **fresh,
            },
        )
        if not created and row.status == WorkflowStatus.FAILED:
            # An earlier attempt of this step failed in on_create and marked the row failed; its
            # workflow never started (the workflow starts a child only from the one attempt whose
            # outcome it receives). This attempt gets a fresh child.
            projection.update_run(row.pk, error="", finished_at=None, **fresh)
            row.refresh_from_db()
        return parent, row, workflow_id

    parent, child, child_wf_id = outages.retrying(
        f"run {run_id}: creating its {child_def.name!r} subflow", create_child
    )
    if "active_subworkflow_run_id" in type(ctx).model_fields:
        ctx.active_subworkflow_run_id = child.pk  # type: ignore[attr-defined]
    if result.on_create is not None:
        try:
            if result.on_create_takes_parent:
                result.on_create(child, parent)
            else:
                result.on_create(child)
        except Exception as exc:
            error = f"run_subflow on_create hook raised {type(exc).__name__}: {exc}"
            logger.warning("run %s: %s; the %r child run %s is not started", run_id, error, child_def.name, child.pk)
            data = child.data
            outages.retrying(
                f"run {run_id}: marking its {child_def.name!r} subflow failed",
                lambda: projection.record_finished_failed(child.pk, data, f"{error}; the run was never started"),
            )
            raise OnCreateFailed(error) from exc
    # The parent's workflow gives the child its own options when it starts it.
    child_input = StartInput(child.pk, spec, child.data, child_def.start_step, options=RunOptions())
    return StartSubflow(result.workflow, result.on_complete, ChildStart(child.pk, child_wf_id, child_input))


def run_on_fail(inp: StepInput) -> StepOutcome:
    """Run the workflow's ``@on_fail`` handler (semantics: "On-fail handlers and definition errors")."""
    definition = registry.get(inp.workflow)
    run = outages.retrying(f"{_label(inp)}: loading the run", lambda: WorkflowRun.objects.get(pk=inp.run_id))
    ctx = definition.load_context(run.data or inp.context)
    instance = definition.cls()
    instance.context = ctx
    handler = getattr(instance, definition.on_fail or "")
    span = tracing.step_span(
        inp.workflow, inp.run_id, definition.on_fail or "", seq=inp.seq, attempt=activity.info().attempt, kind="on_fail"
    )
    with span, bind_context(ctx, run_id=inp.run_id):
        try:
            handler(run)
        except Exception:
            # Compensation errors are logged; the run keeps its original failure.
            logger.exception(
                "workflow %r run %s: the @on_fail handler %r raised; the run stays failed with: %s",
                definition.name,
                run.pk,
                definition.on_fail,
                inp.error,
            )
    data = _dump(ctx)
    outages.retrying(
        f"{_label(inp)}: recording the failure",
        lambda: projection.record_finished_failed(run.pk, data, inp.error or ""),
    )
    return StepOutcome(data)

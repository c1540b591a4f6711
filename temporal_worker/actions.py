"""Submitting a human step: the Temporal Update ``automation.action`` sent to the run's workflow.

The workflow validates the Update (the run must be waiting at that action), runs the step with
the submitted fields as keyword arguments, and answers with the run's new
``current_step_display`` once the run blocks again. The HTTP endpoint
``POST <prefix>/actions/<name>/`` validates the request with the action's serializer, then
calls :func:`submit_action`.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from django_bridge.models import WorkflowRun
from facade import InvalidInputError, RunStateError, TemporalUnavailableError
from facade.contract import ActionInfo, action_for_run, find_action
from temporal_worker import client as bridge
from temporal_worker.protocol import (
    ACTION_UPDATE,
    NOT_WAITING_FOR_ACTION,
    ActionSubmission,
    ActionSubmitter,
    WorkflowStatus,
)

__all__ = ["ActionResult", "asubmit_action", "submit_action"]

# The projection can say "waiting at the action" a moment before the workflow does (the
# step that led there has written it, the workflow has not applied it yet). A rejection
# inside that window is retried for up to this long.
SETTLE_SECONDS = 5.0


@dataclass(frozen=True)
class ActionResult:
    """What a submitted action led to.

    ``answered`` is False when the step was still running after ``timeout``: the action was
    delivered and the run goes on, and ``display`` is the projection's at that moment.
    """

    run_id: int
    display: dict[str, Any]
    answered: bool = True


def submit_action(
    run_id: int, action_name: str, data: dict[str, Any] | None = None, *, timeout: float = 60.0, user: Any = None
) -> ActionResult:
    """Submit action ``action_name`` to run ``run_id`` with ``data`` (already validated fields).

    Sends the Temporal Update ``automation.action``; the run's workflow checks that it waits
    at that action, runs the step with ``data`` as keyword arguments and answers with its new
    ``current_step_display``. If the step fails for good, the answer's status is ``failed``.

    ``user`` is who submits it (``request.user``, also ``AnonymousUser``): a step with a
    ``request`` parameter then receives an ``ActionRequest`` with that user; without ``user``
    it receives ``None``. Only the user's primary key travels to the worker.

    Raises:
        InvalidInputError: unknown action or run, or ``data`` is not a JSON object.
        RunStateError: the run is not waiting at that action (another step, finished,
            cancelled, or another submission got there first).
        TemporalUnavailableError: the Temporal server could not be reached.
    """
    info = find_action(action_name)
    submitter = None if user is None else ActionSubmitter(_user_pk(action_name, user))
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InvalidInputError(f"action {action_name!r}: data must be a dict of fields, got {type(data).__name__}.")
    try:
        args = json.loads(json.dumps(data))
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"action {action_name!r}: data must be JSON-serialisable ({exc}); pass the serializer's "
            "representation of dates, decimals and model instances."
        ) from None
    try:
        run = WorkflowRun.objects.only(
            "id", "name", "status", "current_step", "waiting_for", "spec", "temporal_workflow_id"
        ).get(pk=run_id)
    except (WorkflowRun.DoesNotExist, ValueError, TypeError):
        raise InvalidInputError(
            f"submit_action({action_name!r}): there is no workflow run with id {run_id!r}."
        ) from None
    _check_projection(run, info)

    settle_until = time.monotonic() + SETTLE_SECONDS
    while True:
        try:
            return _send(run, ActionSubmission(info.name, args, submitter), info, timeout)
        except _Rejected as rejected:
            fresh = WorkflowRun.objects.only("id", "name", "status", "current_step", "waiting_for", "spec").get(
                pk=run.pk
            )
            waiting_here = action_for_run(fresh.spec, fresh.status, fresh.current_step, fresh.waiting_for) == info.name
            if waiting_here and time.monotonic() < settle_until:
                time.sleep(0.02)
                continue
            _check_projection(fresh, info)
            raise RunStateError(
                f"action {info.name!r}: {rejected.message}. Reload the run and submit the action it waits for.",
                workflow=fresh.name,
                run_id=fresh.pk,
                step=fresh.current_step,
            ) from None


async def asubmit_action(
    run_id: int, action_name: str, data: dict[str, Any] | None = None, *, timeout: float = 60.0, user: Any = None
) -> ActionResult:
    return await sync_to_async(submit_action)(run_id, action_name, data, timeout=timeout, user=user)


def _user_pk(action_name: str, user: Any) -> Any:
    """The primary key of ``user`` as JSON (None for an anonymous user)."""
    if not hasattr(user, "is_authenticated"):
        raise InvalidInputError(
            f"submit_action({action_name!r}, user=...) takes a user (request.user, or AnonymousUser), got {user!r}."
        )
    if not user.is_authenticated:
        return None
    pk = user.pk
    return pk if isinstance(pk, (int, str)) else str(pk)  # a UUID key travels as its string


class _Rejected(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _check_projection(run: Any, info: ActionInfo) -> None:
    """Refuse quickly what the projection already shows cannot succeed."""
    if run.name != info.workflow:
        raise RunStateError(
            f"run {run.pk} is a {run.name!r} run; action {info.name!r} belongs to workflow {info.workflow!r}.",
            workflow=run.name,
            run_id=run.pk,
            step=run.current_step,
        )
    if run.status in WorkflowStatus.finished():
        raise RunStateError(
            f"run {run.pk} ({run.name}) is {run.status}; action {info.name!r} can no longer be submitted.",
            workflow=run.name,
            run_id=run.pk,
            step=run.current_step,
        )
    waiting = action_for_run(run.spec, run.status, run.current_step, run.waiting_for)
    if waiting != info.name:
        where = f"waits for action {waiting!r}" if waiting else f"is {run.status} at step {run.current_step!r}"
        raise RunStateError(
            f"run {run.pk} ({run.name}) {where}, not at action {info.name!r} (step {info.step!r}).",
            workflow=run.name,
            run_id=run.pk,
            step=run.current_step,
        )
    if not run.temporal_workflow_id:
        raise RunStateError(f"run {run.pk} ({run.name}) has not started on Temporal.", workflow=run.name, run_id=run.pk)


def _send(run: Any, submission: ActionSubmission, info: ActionInfo, timeout: float) -> ActionResult:
    async def update(client: Any) -> dict[str, Any] | None:
        handle = client.get_workflow_handle(run.temporal_workflow_id)
        try:
            return await asyncio.wait_for(handle.execute_update(ACTION_UPDATE, submission.to_wire()), timeout)
        except TimeoutError:
            return None  # delivered, the step still runs: answered from the projection (202)

    try:
        # Temporal unreachable: TemporalUnavailableError from bridge.call, like every engine call.
        answer = bridge.call(
            f"action {info.name!r} on run {run.pk}",
            update,
            timeout=timeout + 30,
            workflow=run.name,
            run_id=run.pk,
            step=info.step,
        )
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        if isinstance(cause, ApplicationError) and cause.type == NOT_WAITING_FOR_ACTION:
            raise _Rejected(cause.message) from None
        raise RunStateError(
            f"action {info.name!r} on run {run.pk} ({run.name}) failed: {getattr(cause, 'message', None) or cause}",
            workflow=run.name,
            run_id=run.pk,
            step=info.step,
        ) from None
    except RPCError as err:
        if err.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
            # The workflow has closed (completed, failed, cancelled, terminated) or is gone.
            raise RunStateError(
                f"action {info.name!r}: run {run.pk} ({run.name}) is no longer running in Temporal ({err.message}).",
                workflow=run.name,
                run_id=run.pk,
                step=info.step,
            ) from None
        raise TemporalUnavailableError(
            f"action {info.name!r} on run {run.pk} ({run.name}): Temporal refused the update: {err}",
            workflow=run.name,
            run_id=run.pk,
            step=info.step,
        ) from err
    if answer is None:
        fresh = WorkflowRun.objects.get(pk=run.pk)
        return ActionResult(run_id=run.pk, display=fresh.current_step_display, answered=False)
    return ActionResult(run_id=int(answer.get("run_id") or run.pk), display=answer["display"])

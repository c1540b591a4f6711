"""``@statezero_action``: human steps answered over HTTP, and ``submit_action`` to answer them.

An action step suspends its run until someone submits the action (workflows guide,
"StateZero Integration"). The submission is a Temporal Update ``automation.action`` sent to
the run's workflow: the workflow validates it (the run must be waiting at that action), runs
the step with the submitted fields as keyword arguments, and answers with the run's new
``current_step_display`` once the run blocks again. The HTTP endpoint
``POST <prefix>/actions/<name>/`` (``django_bridge.api``) validates the request with the
action's serializer and then calls :func:`submit_action`.

Django REST framework is imported lazily: declaring a workflow needs only this module.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from ._definition import ACTION_ATTR, STEP_ATTR
from ._errors import InvalidInputError, RunStateError, TemporalUnavailableError, WorkflowDefinitionError
from ._metadata import StepDisplayMetadata
from ._registry import registry
from ._status import WorkflowStatus

if TYPE_CHECKING:
    from ._definition import WorkflowDefinition

__all__ = [
    "ActionInfo",
    "ActionResult",
    "action_for_run",
    "asubmit_action",
    "find_action",
    "list_actions",
    "statezero_action",
    "submit_action",
]

F = TypeVar("F", bound=Callable[..., Any])

NOT_WAITING = "NotWaitingForAction"
# The projection can say "waiting at the action" a moment before the workflow does (the
# step that led there has written it, the workflow has not applied it yet). A rejection
# inside that window is retried for up to this long.
SETTLE_SECONDS = 5.0

# action name -> "module.Class.method" that declared it, to keep names unique across workflows.
_declared: dict[str, str] = {}


def statezero_action(
    name: str,
    serializer: Any,
    response_serializer: Any = None,
    permissions: Sequence[Any] | None = None,
    display: StepDisplayMetadata | None = None,
) -> Callable[[F], F]:
    """Make a ``@step`` an action step, answered over HTTP (``POST <prefix>/actions/<name>/``).

    Entering the step suspends the run until the action is submitted; the step then runs
    with the serializer's validated fields (except ``workflow_run_id``) as keyword arguments.

    Args:
        name: the action's name, unique across all workflows (it is the URL).
        serializer: a DRF ``Serializer`` class validating the request: ``workflow_run_id``
            plus the step's fields.
        response_serializer: optional serializer class; the response is then this serializer
            applied to the run (``WorkflowRun``) instead of its ``current_step_display``.
        permissions: DRF permission classes checked for this action, after the API's default.
        display: form metadata (``StepDisplayMetadata``); overrides ``@step(display=...)``.
    """
    problems: list[str] = []
    if not isinstance(name, str) or not name.strip() or "/" in name:
        problems.append(f"name must be a non-empty string without '/', e.g. name='submit_review', got {name!r}")
    if not _is_serializer_class(serializer):
        problems.append(f"serializer must be a rest_framework Serializer class (not an instance), got {serializer!r}")
    if response_serializer is not None and not _is_serializer_class(response_serializer):
        problems.append(f"response_serializer must be a Serializer class or None, got {response_serializer!r}")
    perms = list(permissions or [])
    if permissions is not None and (
        isinstance(permissions, (str, bytes)) or not all(isinstance(p, type) for p in perms)
    ):
        problems.append(f"permissions must be a list of DRF permission classes, got {permissions!r}")
    if display is not None and not isinstance(display, StepDisplayMetadata):
        problems.append(f"display must be a StepDisplayMetadata(...) or None, got {display!r}")

    def decorate(fn: F) -> F:
        origin = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"
        label = origin.rsplit(".", 1)[0]
        if problems:
            raise WorkflowDefinitionError(label, [f"@statezero_action on {origin}: {p}" for p in problems])
        if getattr(fn, STEP_ATTR, None) is None:
            raise WorkflowDefinitionError(
                label,
                [
                    f"@statezero_action(name={name!r}) on {origin} must be placed above @step(): "
                    "write @statezero_action(...) then @step(...) on the next line"
                ],
            )
        existing = _declared.get(name)
        if existing is not None and existing != origin:
            raise WorkflowDefinitionError(
                label,
                [
                    f"@statezero_action name {name!r} on {origin} is already used by {existing}; "
                    "action names are unique across workflows (they are the URL), pick another name"
                ],
            )
        _declared[name] = origin
        setattr(
            fn,
            ACTION_ATTR,
            {
                "name": name,
                "serializer": serializer,
                "response_serializer": response_serializer,
                "permissions": tuple(perms),
                "display": display,
            },
        )
        return fn

    return decorate


def _is_serializer_class(obj: Any) -> bool:
    if not isinstance(obj, type):
        return False
    try:
        from rest_framework.serializers import BaseSerializer
    except Exception:  # Django not configured: fall back to the serializer protocol
        return all(hasattr(obj, a) for a in ("is_valid", "validated_data", "errors"))
    return issubclass(obj, BaseSerializer)


# ---------------------------------------------------------------------- lookup
@dataclass(frozen=True)
class ActionInfo:
    """One action: where it lives and how it is validated and displayed."""

    name: str
    workflow: str
    step: str
    step_title: str
    serializer: Any
    response_serializer: Any
    permissions: tuple[Any, ...]
    display: dict[str, Any] | None
    definition: WorkflowDefinition


def list_actions() -> list[ActionInfo]:
    """Every action of every registered workflow, sorted by workflow then declaration order."""
    found: list[ActionInfo] = []
    for workflow_name in registry.names():
        definition = registry.get(workflow_name)
        for step in definition.steps.values():
            if not step.action:
                continue
            options = step.action_options or {}
            found.append(
                ActionInfo(
                    name=step.action["name"],
                    workflow=definition.name,
                    step=step.name,
                    step_title=step.title or step.name.replace("_", " "),
                    serializer=options.get("serializer"),
                    response_serializer=options.get("response_serializer"),
                    permissions=tuple(options.get("permissions") or ()),
                    display=step.display,
                    definition=definition,
                )
            )
    return found


def find_action(name: str) -> ActionInfo:
    """The action called ``name``; ``InvalidInputError`` if no registered workflow has it."""
    for info in list_actions():
        if info.name == name:
            return info
    known = ", ".join(sorted(i.name for i in list_actions())) or "none"
    raise InvalidInputError(
        f"there is no action named {name!r} (actions: {known}). Check the name given to @statezero_action."
    )


def action_for_run(spec: dict[str, Any], status: str, current_step: str) -> str | None:
    """The action a run waits at, judged from its projection (the workflow has the last word)."""
    if status != WorkflowStatus.SUSPENDED:
        return None
    step = (spec.get("steps") or {}).get(current_step) or {}
    return (step.get("action") or {}).get("name")


# ---------------------------------------------------------------------- submitting
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
    run_id: int, action_name: str, data: dict[str, Any] | None = None, *, timeout: float = 60.0
) -> ActionResult:
    """Submit action ``action_name`` to run ``run_id`` with ``data`` (already validated fields).

    Sends the Temporal Update ``automation.action``; the run's workflow checks that it waits
    at that action, runs the step with ``data`` as keyword arguments and answers with its new
    ``current_step_display``. If the step fails for good, the answer's status is ``failed``.

    Raises:
        InvalidInputError: unknown action or run, or ``data`` is not a JSON object.
        RunStateError: the run is not waiting at that action (another step, finished,
            cancelled, or another submission got there first).
        TemporalUnavailableError: the Temporal server could not be reached.
    """
    from django_bridge.models import WorkflowRun

    info = find_action(action_name)
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
        run = WorkflowRun.objects.only("id", "name", "status", "current_step", "spec", "temporal_workflow_id").get(
            pk=run_id
        )
    except (WorkflowRun.DoesNotExist, ValueError, TypeError):
        raise InvalidInputError(
            f"submit_action({action_name!r}): there is no workflow run with id {run_id!r}."
        ) from None
    _check_projection(run, info)

    settle_until = time.monotonic() + SETTLE_SECONDS
    while True:
        try:
            return _send(run, info, args, timeout)
        except _Rejected as rejected:
            fresh = WorkflowRun.objects.only("id", "name", "status", "current_step", "spec").get(pk=run.pk)
            waiting_here = action_for_run(fresh.spec, fresh.status, fresh.current_step) == info.name
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
    run_id: int, action_name: str, data: dict[str, Any] | None = None, *, timeout: float = 60.0
) -> ActionResult:
    from asgiref.sync import sync_to_async

    return await sync_to_async(submit_action)(run_id, action_name, data, timeout=timeout)


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
    waiting = action_for_run(run.spec, run.status, run.current_step)
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


def _send(run: Any, info: ActionInfo, args: dict[str, Any], timeout: float) -> ActionResult:
    from temporalio.client import WorkflowUpdateFailedError
    from temporalio.exceptions import ApplicationError
    from temporalio.service import RPCError, RPCStatusCode

    from temporal_worker import client as bridge
    from temporal_worker.interpreter import ACTION_UPDATE

    async def update() -> dict[str, Any] | None:
        client = await bridge.get_client()
        handle = client.get_workflow_handle(run.temporal_workflow_id)
        try:
            return await asyncio.wait_for(
                handle.execute_update(ACTION_UPDATE, {"action": info.name, "args": args}), timeout
            )
        except TimeoutError:
            return None

    try:
        answer = bridge.run_sync(update(), timeout=timeout + 30)
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        if isinstance(cause, ApplicationError) and cause.type == NOT_WAITING:
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
        from django_bridge.models import WorkflowRun

        fresh = WorkflowRun.objects.get(pk=run.pk)
        return ActionResult(run_id=run.pk, display=fresh.current_step_display, answered=False)
    return ActionResult(run_id=int(answer.get("run_id") or run.pk), display=answer["display"])

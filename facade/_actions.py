"""``@statezero_action``: declaring human steps, and finding them by name.

An action step suspends its run until someone submits the action (workflows guide,
"StateZero Integration"). Submitting is the Temporal side's job (``submit_action``, a
Temporal Update); the HTTP endpoint ``POST <prefix>/actions/<name>/`` validates the request
with the action's serializer first.

Django REST framework is imported lazily: declaring a workflow needs only this module.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from ._definition import ACTION_ATTR, STEP_ATTR, WorkflowDefinition
from ._errors import InvalidInputError, WorkflowDefinitionError
from ._metadata import StepDisplayMetadata
from ._registry import registry
from ._status import WorkflowStatus

__all__ = ["ActionInfo", "ActionRequest", "action_for_run", "find_action", "list_actions", "statezero_action"]

F = TypeVar("F", bound=Callable[..., Any])

# action name -> "module.Class.method" that declared it, to keep names unique across workflows.
_declared: dict[str, str] = {}


def statezero_action(
    name: str,
    serializer: Any = None,
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
            plus the step's fields. ``None`` (the default) declares an action without fields,
            a "confirm" button: the request holds only ``workflow_run_id``.
        response_serializer: optional serializer class; the response is then this serializer
            applied to the run (``WorkflowRun``) instead of its ``current_step_display``.
        permissions: DRF permission classes checked for this action, after the API's default.
        display: form metadata (``StepDisplayMetadata``); overrides ``@step(display=...)``.
    """
    problems: list[str] = []
    if not isinstance(name, str) or not name.strip() or "/" in name:
        problems.append(f"name must be a non-empty string without '/', e.g. name='submit_review', got {name!r}")
    if serializer is not None and not _is_serializer_class(serializer):
        problems.append(
            f"serializer must be a rest_framework Serializer class (not an instance), or None for an action "
            f"without fields, got {serializer!r}"
        )
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


@dataclass(frozen=True)
class ActionRequest:
    """What an action step's ``request`` parameter receives when the action came with a user.

    Not the ``HttpRequest``: the step runs in the worker (a Temporal activity, maybe on another
    machine), and a request object cannot travel there, nor belongs in a workflow's history.
    Only the submitting user's primary key travels; the worker loads the user again.

    Attributes:
        user: the auth user model instance, or ``AnonymousUser`` (submitted anonymously, or
            the user no longer exists).
        action: the action's name.
        data: the validated fields, in their JSON form (what the step receives as keyword
            arguments).
        method: always ``"POST"``.
    """

    user: Any
    action: str
    data: dict[str, Any]
    method: str = "POST"


# ---------------------------------------------------------------------- lookup
@dataclass(frozen=True)
class ActionInfo:
    """One action: where it lives and how it is validated and displayed."""

    name: str
    workflow: str
    step: str
    step_title: str
    serializer: Any  # None: an action without fields (the API validates only workflow_run_id)
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


def action_for_run(spec: dict[str, Any], status: str, current_step: str, waiting_for: str = "") -> str | None:
    """The action a run waits at, judged from its projection (the workflow has the last word)."""
    if status != WorkflowStatus.SUSPENDED or waiting_for.startswith("subflow:"):
        # A parent waiting on its child shows its on_complete step, not yet entered.
        return None
    step = (spec.get("steps") or {}).get(current_step) or {}
    return (step.get("action") or {}).get("name")

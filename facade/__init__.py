"""The public API: everything a user imports, declared in one place.

The documented import paths (``django_ai.automation.workflows.core`` and friends) re-export
these names; ``tests/test_public_api.py`` pins them.

This package is the declaration layer: it imports the standard library, pydantic and the
typed protocol only. ``engine`` and ``submit_action`` talk to Temporal and Django, which live
in the layers above; they reach users through this face lazily (``__getattr__`` below), the
one place where this package looks upward.
"""

from typing import Any

from ._actions import ActionRequest, statezero_action
from ._agents import agent, handler
from ._context import get_context
from ._declare import event_workflow, on_event, on_event_cancelled, on_event_created, workflow
from ._definition import on_fail, step
from ._errors import (
    AutomationError,
    ClaimError,
    ContextUnavailableError,
    DatabaseUnavailableError,
    InvalidInputError,
    RunStateError,
    SignalPayloadError,
    StepResultError,
    TemporalUnavailableError,
    UnknownWorkflowError,
    WorkflowDefinitionError,
)
from ._events import EventDefinition
from ._metadata import FieldDisplayConfig, FieldGroup, StepDisplayMetadata
from ._registry import registry
from ._results import (
    StepResult,
    SubflowResult,
    complete,
    fail,
    goto,
    run_subflow,
    sleep,
    wait,
    wait_for_event,
)
from ._retry import Retry
from ._status import StepStatus, WorkflowStatus

__all__ = [
    "ActionRequest",
    "AgentManager",
    "AutomationError",
    "ClaimError",
    "ContextUnavailableError",
    "DatabaseUnavailableError",
    "Engine",
    "EventDefinition",
    "FieldDisplayConfig",
    "FieldGroup",
    "InvalidInputError",
    "Retry",
    "RunStateError",
    "SignalPayloadError",
    "StepDisplayMetadata",
    "StepResult",
    "StepResultError",
    "StepStatus",
    "SubflowResult",
    "TemporalUnavailableError",
    "UnknownWorkflowError",
    "WorkflowDefinitionError",
    "WorkflowStatus",
    "agent",
    "claims",
    "complete",
    "engine",
    "event_workflow",
    "fail",
    "get_context",
    "goto",
    "handler",
    "on_event",
    "on_event_cancelled",
    "on_event_created",
    "on_fail",
    "registry",
    "run_subflow",
    "sleep",
    "statezero_action",
    "step",
    "wait",
    "wait_for_event",
    "workflow",
]


# Upward, lazily: these live on the Temporal side, which imports this package. Resolving them
# on first use keeps declaring workflows free of Django and temporalio, and import cycles out.
_FROM_ENGINE = ("Engine", "engine")
_FROM_ACTIONS = ("ActionResult", "asubmit_action", "submit_action")
_FROM_AGENTS = ("AgentManager",)


def __getattr__(name: str) -> Any:
    if name in _FROM_ENGINE:
        from temporal_worker import engine as module
    elif name in _FROM_ACTIONS:
        from temporal_worker import actions as module  # type: ignore[no-redef]
    elif name in _FROM_AGENTS:
        from temporal_worker import agents as module  # type: ignore[no-redef]
    elif name == "claims":  # the module itself: claims.hold(...), claims.release(...)
        from temporal_worker import claims

        globals()[name] = claims
        return claims
    else:
        raise AttributeError(f"module 'facade' has no attribute {name!r}")
    value = getattr(module, name)
    globals()[name] = value
    return value

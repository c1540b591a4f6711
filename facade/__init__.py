"""The public API: everything a user imports, declared in one place.

The documented import paths (``django_ai.automation.workflows.core`` and friends) re-export
these names; ``tests/test_public_api.py`` pins them.
"""

from ._actions import statezero_action
from ._context import get_context
from ._definition import on_fail, step, workflow
from ._engine import Engine, engine
from ._errors import (
    AutomationError,
    ContextUnavailableError,
    InvalidInputError,
    RunStateError,
    SignalPayloadError,
    StepResultError,
    TemporalUnavailableError,
    UnknownWorkflowError,
    WorkflowDefinitionError,
)
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
    "AutomationError",
    "ContextUnavailableError",
    "Engine",
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
    "complete",
    "engine",
    "fail",
    "get_context",
    "goto",
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

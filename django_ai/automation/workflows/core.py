"""``from django_ai.automation.workflows.core import workflow, step, goto, ...``"""

from facade import (
    Retry,
    SubflowResult,
    WorkflowStatus,
    complete,
    engine,
    event_workflow,
    fail,
    get_context,
    goto,
    on_fail,
    run_subflow,
    sleep,
    step,
    wait,
    wait_for_event,
    workflow,
)

__all__ = [
    "Retry",
    "SubflowResult",
    "WorkflowStatus",
    "complete",
    "engine",
    "event_workflow",
    "fail",
    "get_context",
    "goto",
    "on_fail",
    "run_subflow",
    "sleep",
    "step",
    "wait",
    "wait_for_event",
    "workflow",
]

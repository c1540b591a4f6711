"""What the other layers of this library read from declarations: the definition model, action
lookup, context binding and merging, and the result types a step returns.

Users import from ``facade`` (or the documented ``django_ai...`` paths); the Temporal side
(``temporal_worker``) and the Django app (``django_bridge``) import these names from here, never
from the private modules behind them.
"""

from ._actions import ActionInfo, action_for_run, find_action, list_actions
from ._agent_definition import AgentDefinition, HandlerDef, template_fields
from ._context import bind_context, current_run_id
from ._definition import StepDef, WorkflowDefinition
from ._payloads import merge_into, unknown_payload_keys, validation_summary
from ._registry import discover_workflow_modules
from ._results import Complete, Fail, Goto, Sleep, StepResult, Subflow, Wait

__all__ = [
    "ActionInfo",
    "AgentDefinition",
    "Complete",
    "Fail",
    "Goto",
    "HandlerDef",
    "Sleep",
    "StepDef",
    "StepResult",
    "Subflow",
    "Wait",
    "WorkflowDefinition",
    "action_for_run",
    "bind_context",
    "current_run_id",
    "discover_workflow_modules",
    "find_action",
    "list_actions",
    "merge_into",
    "template_fields",
    "unknown_payload_keys",
    "validation_summary",
]

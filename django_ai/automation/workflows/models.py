"""``from django_ai.automation.workflows.models import WorkflowRun, StepExecution``"""

from django_bridge.models import StepExecution, WorkflowRun
from facade import StepStatus, WorkflowStatus

__all__ = ["StepExecution", "StepStatus", "WorkflowRun", "WorkflowStatus"]

"""``from django_ai.automation.workflows.statezero_action import statezero_action``"""

from facade import ActionRequest, ActionResult, asubmit_action, statezero_action, submit_action

__all__ = ["ActionRequest", "ActionResult", "asubmit_action", "statezero_action", "submit_action"]

"""Subflows where the guide is silent (semantics: "Subflows"): on_create hooks, the parent's
current step while its child runs, a hook that raises.

Imported inside ``registry.isolated()`` by ``tests/test_subflow_hooks.py``.
"""

from pydantic import BaseModel

from django_ai.automation.workflows.core import (
    SubflowResult,
    complete,
    get_context,
    run_subflow,
    step,
    wait_for_event,
    workflow,
)
from django_ai.automation.workflows.statezero_action import statezero_action


@workflow("held_child")
class HeldChildWorkflow:
    """Waits for the event ``held_child_go`` at its start, so its parent waits meanwhile."""

    class Context(BaseModel):
        label: str = ""

    @wait_for_event("held_child_go")
    @step(start=True)
    def hold(self):
        return complete()


def note_both(child_run, parent_run):
    # The original passed both runs; the parent's live Context is bound here.
    get_context().seen = f"{child_run.name}#{child_run.pk} of {parent_run.name}#{parent_run.pk}"
    assert child_run.parent_id == parent_run.pk


def note_child(child_run):
    get_context().seen = f"{child_run.name}#{child_run.pk}"


def refuse(child_run, parent_run):
    raise ValueError(f"no child today ({child_run.name})")


HOOKS = {"both": note_both, "child": note_child, "refuse": refuse}


@workflow("hooked_parent")
class HookedParentWorkflow:
    class Context(BaseModel):
        hook: str = "both"
        seen: str = ""
        launches: int = 0
        child_status: str = ""
        active_subworkflow_run_id: int | None = None

    @step(start=True, title="Launch the child")
    def launch(self):
        ctx = get_context()
        ctx.launches += 1
        return run_subflow(HeldChildWorkflow, on_complete=self.finish, on_create=HOOKS[ctx.hook], label="held")

    @step(title="Finish up")
    def finish(self, subflow_result: SubflowResult):
        get_context().child_status = subflow_result.status
        return complete()


@workflow("review_after_child")
class ReviewAfterChildWorkflow:
    """on_complete is an action step: it is not an action to submit until the child has ended."""

    class Context(BaseModel):
        child_status: str = ""

    @step(start=True)
    def launch(self):
        return run_subflow(HeldChildWorkflow, on_complete=self.review)

    @statezero_action(name="review_child_result")
    @step(title="Review the child's result")
    def review(self, subflow_result: SubflowResult):
        get_context().child_status = subflow_result.status
        return complete()

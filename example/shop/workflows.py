"""The workflows guide's examples, as written there, discovered because this is ``shop.workflows``.

Names are unique per project, so the guide's branching snippet runs as ``order_routing``.
"""

from datetime import timedelta

from pydantic import BaseModel
from rest_framework import serializers

from django_ai.automation.workflows.core import (
    SubflowResult,
    WorkflowStatus,
    complete,
    get_context,
    goto,
    run_subflow,
    sleep,
    step,
    wait,
    workflow,
)
from django_ai.automation.workflows.metadata import FieldGroup, StepDisplayMetadata
from django_ai.automation.workflows.statezero_action import statezero_action


# Quick Start 1: a single step.
@workflow("user_onboarding")
class UserOnboardingWorkflow:
    class Context(BaseModel):
        user_id: int
        email_sent: bool = False
        profile_completed: bool = False

    @classmethod
    def create_context(cls, user_id: int):
        return cls.Context(user_id=user_id)

    @step(start=True)
    def send_welcome_email(self):
        ctx = get_context()
        # Send email logic here
        ctx.email_sent = True
        return complete()


# Quick Start 2: steps chained with goto.
@workflow("order_fulfillment")
class OrderFulfillmentWorkflow:
    class Context(BaseModel):
        order_id: int
        payment_confirmed: bool = False
        items_reserved: bool = False
        shipped: bool = False

    @step(start=True)
    def confirm_payment(self):
        ctx = get_context()
        # Payment processing logic
        ctx.payment_confirmed = True
        return goto(self.reserve_inventory)

    @step()
    def reserve_inventory(self):
        ctx = get_context()
        # Inventory logic
        ctx.items_reserved = True
        return goto(self.ship_order)

    @step()
    def ship_order(self):
        ctx = get_context()
        # Shipping logic
        ctx.shipped = True
        return complete()


# "Navigation Between Steps": the next step depends on the Context.
@workflow("order_routing")
class OrderRoutingWorkflow:
    class Context(BaseModel):
        order_total: float
        approval_required: bool = False
        fulfilled: bool = False

    @step(start=True)
    def process_order(self):
        ctx = get_context()

        if ctx.order_total > 1000:
            return goto(self.require_approval)
        else:
            return goto(self.fulfill_immediately)

    @step()
    def require_approval(self):
        # Approval logic
        get_context().approval_required = True
        return goto(self.fulfill_immediately, progress=0.5)

    @step()
    def fulfill_immediately(self):
        # Fulfillment logic
        get_context().fulfilled = True
        return complete(
            display_title="Order fulfilled",
            display_subtitle=f"Total {get_context().order_total:.2f}",
        )


# "Sleep/Delays": a reminder every 24 hours (a durable Temporal timer), then escalation.
@workflow("reminders")
class ReminderWorkflow:
    class Context(BaseModel):
        reminders_sent: int = 0
        escalated: bool = False

    @step(start=True)
    def send_reminder(self):
        # Send initial reminder
        ctx = get_context()
        ctx.reminders_sent += 1

        if ctx.reminders_sent < 3:
            # Wait 24 hours before next reminder
            return sleep(timedelta(hours=24))
        else:
            return goto(self.escalate)

    @step()
    def escalate(self):
        get_context().escalated = True
        return complete(display_title="Escalated", display_subtitle="No answer after 3 reminders")


# "Waiting for Signals": a manager's approval, then the user's answer within 7 days.
# A run resumes at the next step in class order once its signal arrives.
@workflow("approval")
class ApprovalWorkflow:
    class Context(BaseModel):
        approved: bool = False
        notes: str = ""
        answer: str = ""
        status: str = ""

    @step(start=True)
    def wait_for_approval(self):
        # Wait indefinitely for approval signal
        return wait.for_signal("manager_approval")

    @step()
    def wait_with_timeout(self):
        # Wait for signal with timeout fallback
        return wait.for_signal("user_response", timeout=timedelta(days=7), on_timeout="send_final_notice")

    @step()
    def record_response(self):
        # Reached when user_response arrived in time; its payload is merged into the Context.
        return complete(status="answered")

    @step()
    def send_final_notice(self):
        # Timeout handler
        return complete(status="expired")


# Beyond the guide, as the original implementation behaved: a subflow whose on_create hook
# takes (child_run, parent_run), and a "confirm" button (an action without a serializer) whose
# step asks who pressed it.
@workflow("gift_wrapping")
class GiftWrappingWorkflow:
    class Context(BaseModel):
        order_id: int
        wrapped: bool = False

    @step(start=True, title="Wrap the gift")
    def wrap(self):
        get_context().wrapped = True
        return complete()


def link_wrapping(child_run, parent_run):
    # get_context() is the parent's Context here; both rows exist, the child has not started.
    get_context().wrapping = f"{child_run.name} run {child_run.pk} for {parent_run.name} run {parent_run.pk}"


@workflow("gift_order")
class GiftOrderWorkflow:
    class Context(BaseModel):
        order_id: int
        wrapping: str = ""
        wrapped: bool = False
        confirmed_by: str = ""
        active_subworkflow_run_id: int | None = None

    @step(start=True, title="Send to gift wrapping")
    def send_to_wrapping(self):
        ctx = get_context()
        return run_subflow(
            GiftWrappingWorkflow, on_complete=self.after_wrapping, on_create=link_wrapping, order_id=ctx.order_id
        )

    @step(visible=False)
    def after_wrapping(self, subflow_result: SubflowResult):
        get_context().wrapped = subflow_result.status == WorkflowStatus.COMPLETED
        return goto(self.confirm_shipment, progress=0.5)

    @statezero_action(name="confirm_gift_shipment")  # no serializer: a confirm button
    @step(title="Confirm the shipment")
    def confirm_shipment(self, request=None):
        # `request` holds who pressed the button over HTTP (None when submitted from code).
        if request is not None and request.user.is_authenticated:
            get_context().confirmed_by = request.user.get_username()
        return complete(display_title="Gift shipped")


# "StateZero Integration": a human step exposed over HTTP. The run waits at await_review; the
# run page (statezero/ui/runs/<id>/) shows its form from actions-schema/, and submitting it
# POSTs statezero/actions/submit_review/ {"workflow_run_id": ..., "reviewer_notes": ..., "priority": ...}.
class ReviewSerializer(serializers.Serializer):
    workflow_run_id = serializers.IntegerField()
    reviewer_notes = serializers.CharField(max_length=500)
    priority = serializers.ChoiceField(choices=["low", "medium", "high"])


@workflow("expense_approval")
class ExpenseApprovalWorkflow:
    class Context(BaseModel):
        reviewer_notes: str = ""
        priority: str = "medium"

    @step(start=True)
    def start_review(self):
        return goto(self.await_review)

    @statezero_action(name="submit_review", serializer=ReviewSerializer)
    @step(
        display=StepDisplayMetadata(
            display_title="Review Expense",
            display_description="Please review and approve or reject",
            field_groups=[FieldGroup(display_title="Review Details", field_names=["reviewer_notes", "priority"])],
        )
    )
    def await_review(self, reviewer_notes: str, priority: str):
        ctx = get_context()
        ctx.reviewer_notes = reviewer_notes
        ctx.priority = priority
        return complete(display_title="Review Complete", display_subtitle="Expense has been reviewed")

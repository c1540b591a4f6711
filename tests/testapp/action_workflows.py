"""Action workflows: the guide's StateZero examples as written, plus a few for the HTTP tests.

Listed in ``AUTOMATION['WORKFLOW_MODULES']`` of the test settings, so the worker, the live
server and the management commands started by the tests all know them.
"""

from datetime import timedelta

from pydantic import BaseModel
from rest_framework import serializers
from rest_framework.permissions import IsAdminUser

from django_ai.automation.workflows.core import (
    Retry,
    complete,
    get_context,
    goto,
    sleep,
    step,
    wait,
    wait_for_event,
    workflow,
)
from django_ai.automation.workflows.metadata import FieldDisplayConfig, FieldGroup, StepDisplayMetadata
from django_ai.automation.workflows.statezero_action import statezero_action

# The guide's code is kept as the guide writes it.
# fmt: off
# ---------------------------------------------------------------- workflows guide, "StateZero Integration"


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
            field_groups=[
                FieldGroup(
                    display_title="Review Details",
                    field_names=["reviewer_notes", "priority"]
                )
            ]
        )
    )
    def await_review(self, reviewer_notes: str, priority: str):
        ctx = get_context()
        ctx.reviewer_notes = reviewer_notes
        ctx.priority = priority
        return complete(
            display_title="Review Complete",
            display_subtitle="Expense has been reviewed"
        )


# ---------------------------------------------------------------- workflows guide, "Step Display Metadata"


class PropertySerializer(serializers.Serializer):
    workflow_run_id = serializers.IntegerField()
    property_name = serializers.CharField()
    property_type = serializers.CharField()
    bedrooms = serializers.IntegerField()
    email = serializers.EmailField()
    amenities = serializers.ListField()


@workflow("property_listing")
class PropertyListingWorkflow:
    """The section's step, in a class of its own (the guide shows the step alone)."""

    class Context(BaseModel):
        property_name: str = ""

    @statezero_action(name="collect_property_info", serializer=PropertySerializer)
    @step(
        start=True,
        display=StepDisplayMetadata(
            display_title="Set Up Your Property",
            display_description="Enter property details to get started with your listing",

            # Group related fields together
            field_groups=[
                FieldGroup(
                    display_title="Property Information",
                    display_description="Basic details about your listing",
                    field_names=["property_name", "property_type", "bedrooms"]
                ),
                FieldGroup(
                    display_title="Contact Details",
                    display_description="How guests can reach you",
                    field_names=["email"]
                )
            ],

            # Customize individual field display
            field_display_configs=[
                FieldDisplayConfig(
                    field_name="amenities",
                    display_component="AmenitiesMultiSelect",
                    filter_queryset={"is_active": True, "category": "essential"},
                    display_help_text="Select all amenities that apply"
                )
            ]
        )
    )
    def collect_property_info(self, property_name: str, property_type: str,
                             bedrooms: int, email: str, amenities: list):
        ctx = get_context()
        ctx.property_name = property_name
        return goto(self.next_step)

    @step()
    def next_step(self):
        return complete(display_title="Listing created")


class PropertyDetailsSerializer(serializers.Serializer):
    workflow_run_id = serializers.IntegerField()
    property_name = serializers.CharField(max_length=200)
    property_type = serializers.ChoiceField(choices=["house", "apartment", "cabin"])


@workflow("property_onboarding")
class PropertyOnboardingWorkflow:
    class Context(BaseModel):
        property_id: int = 0
        property_name: str = ""
        owner_name: str = ""

    @statezero_action(name="property_details", serializer=PropertyDetailsSerializer)
    @step(
        start=True,
        display=StepDisplayMetadata(
            display_title="Property Details",
            display_description="Tell us about your property",
            field_groups=[
                FieldGroup(
                    display_title="Basic Information",
                    field_names=["property_name", "property_type"]
                )
            ]
        )
    )
    def collect_details(self, property_name: str, property_type: str):
        ctx = get_context()
        ctx.property_name = property_name
        return goto(self.verify_ownership)

    @wait_for_event(
        "ownership_verified",
        timeout=timedelta(minutes=30),
        display_title="Verifying Ownership",
        display_subtitle="Please complete verification in your email",
        display_waiting_for="Email verification"
    )
    @step()
    def verify_ownership(self):
        return goto(self.finalize)

    @step()
    def finalize(self):
        ctx = get_context()
        return complete(
            display_title="Welcome to the Platform! 🎉",
            display_subtitle=f"{ctx.property_name} is now live and ready for bookings"
        )


# ---------------------------------------------------------------- workflows guide, "Summary"


class InfoSerializer(serializers.Serializer):
    workflow_run_id = serializers.IntegerField()
    user_name = serializers.CharField(max_length=100, help_text="How we should greet you")


@workflow("comprehensive_workflow")
class ComprehensiveWorkflow:
    class Context(BaseModel):
        user_name: str = ""
        items_count: int = 0

    @statezero_action(name="collect_info", serializer=InfoSerializer)
    @step(
        start=True,
        display=StepDisplayMetadata(
            display_title="Welcome!",
            display_description="Let's get started",
            field_groups=[
                FieldGroup(
                    display_title="Your Information",
                    field_names=["user_name"]
                )
            ]
        )
    )
    def collect_info(self, user_name: str):
        ctx = get_context()
        ctx.user_name = user_name
        return goto(self.process, progress=0.33)

    @step()
    def process(self):
        ctx = get_context()
        ctx.items_count = 42
        return goto(self.wait_for_confirmation, progress=0.67)

    @wait_for_event(
        "confirmation_received",
        display_title="Waiting for Confirmation",
        display_subtitle="Please check your email",
        display_waiting_for="Email confirmation"
    )
    @step()
    def wait_for_confirmation(self):
        return goto(self.finish)

    @step()
    def finish(self):
        ctx = get_context()
        return complete(
            display_title=f"All Done, {ctx.user_name}!",
            display_subtitle=f"Successfully processed {ctx.items_count} items"
        )


# fmt: on
# ---------------------------------------------------------------- for the HTTP API tests


class NoteSerializer(serializers.Serializer):
    workflow_run_id = serializers.IntegerField()
    note = serializers.CharField(max_length=50)


class ApprovalSerializer(serializers.Serializer):
    workflow_run_id = serializers.IntegerField()
    approved = serializers.BooleanField()
    amount = serializers.DecimalField(max_digits=8, decimal_places=2, required=False)


class RunSummarySerializer(serializers.Serializer):
    """A response_serializer: applied to the WorkflowRun after the action."""

    id = serializers.IntegerField()
    status = serializers.CharField()
    note = serializers.CharField(source="data.note")


@workflow("two_step_approval")
class TwoStepApprovalWorkflow:
    """Two actions in a row: submitting the second while the run waits at the first is a 409."""

    class Context(BaseModel):
        note: str = ""
        approved: bool = False
        amount: str = ""

    @statezero_action(name="add_note", serializer=NoteSerializer, response_serializer=RunSummarySerializer)
    @step(start=True)
    def take_note(self, note: str):
        get_context().note = note
        return goto(self.decide, progress=0.5)

    @statezero_action(name="decide", serializer=ApprovalSerializer, permissions=[IsAdminUser])
    @step(title="Decide")
    def decide(self, approved: bool, amount: str = "0"):
        ctx = get_context()
        ctx.approved, ctx.amount = approved, amount
        return complete(display_title="Approved" if approved else "Rejected")


@workflow("broken_action", default_retry=Retry(max_attempts=1))
class BrokenActionWorkflow:
    """The action's step raises: the action answers once the run has failed."""

    class Context(BaseModel):
        note: str = ""

    @statezero_action(name="break_it", serializer=NoteSerializer)
    @step(start=True)
    def explode(self, note: str):
        raise RuntimeError(f"cannot handle {note!r}")


@workflow("owned_task")
class OwnedTaskWorkflow:
    """Runs owned by a user: the Context stores ``owner_id`` (see docs/http-api.md)."""

    class Context(BaseModel):
        owner_id: int | None = None
        note: str = ""

    @statezero_action(name="finish_owned_task", serializer=NoteSerializer)
    @step(start=True)
    def finish(self, note: str):
        get_context().note = note
        return complete(display_title="Done")


@workflow("progress_demo")
class ProgressDemoWorkflow:
    """Moves through rounds with progress and short sleeps, for the CLI's progress bar."""

    class Context(BaseModel):
        rounds: int = 3
        done: int = 0
        rested: bool = False
        pause_ms: int = 200

    @step(start=True)
    def work(self):
        ctx = get_context()
        ctx.done += 1
        if ctx.done >= ctx.rounds:
            return complete(display_title="Worked", display_subtitle=f"{ctx.done} rounds")
        return goto(self.rest, progress=ctx.done / ctx.rounds)

    @step()
    def rest(self):
        ctx = get_context()
        if not ctx.rested:
            ctx.rested = True
            return sleep(timedelta(milliseconds=ctx.pause_ms))
        ctx.rested = False
        return goto(self.work)


@workflow("signal_demo")
class SignalDemoWorkflow:
    """Waits for the signal ``go``; the payload's Context fields are merged
    (semantics: "Merging data into the Context")."""

    class Context(BaseModel):
        who: str = ""
        count: int = 0

    @step(start=True)
    def wait_for_go(self):
        return wait.for_signal("go")

    @step()
    def finish(self):
        return complete(display_title=f"Went with {get_context().who}")


@workflow("order_confirmation")
class OrderConfirmationWorkflow:
    """A confirm button: an action without a serializer, whose step asks who submitted it."""

    class Context(BaseModel):
        had_request: bool = False
        confirmed_by: str = ""
        user_id: int | None = None
        method: str = ""
        request_data: dict = {}

    @statezero_action(name="confirm_order")
    @step(start=True, title="Confirm the order")
    def confirm(self, request=None):
        ctx = get_context()
        ctx.had_request = request is not None
        if request is not None:
            user = request.user
            ctx.confirmed_by = user.get_username() if user.is_authenticated else "anonymous"
            ctx.user_id = user.pk
            ctx.method, ctx.request_data = request.method, request.data
        return goto(self.bookkeeping, progress=0.5)

    @step(visible=False)
    def bookkeeping(self):
        return complete(display_title="Order confirmed")

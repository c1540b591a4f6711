"""The guide's display metadata and gate-form wait examples, as written."""

from datetime import timedelta

from pydantic import BaseModel

from django_ai.automation.workflows.core import complete, get_context, goto, step, wait, wait_for_event, workflow
from django_ai.automation.workflows.metadata import FieldDisplayConfig, FieldGroup, StepDisplayMetadata


@workflow("order_complete_display")
class OrderCompleteDisplayWorkflow:
    class Context(BaseModel):
        order_id: int = 123

    @step(start=True)
    def finalize_order(self):
        ctx = get_context()

        return complete(
            display_title="Order Complete! 🎉",
            display_subtitle=f"Order #{ctx.order_id} has been successfully processed",
        )


@workflow("oauth_connect")
class OAuthConnectWorkflow:
    class Context(BaseModel):
        connected: bool = False

    @wait_for_event(
        "oauth_completed",
        timeout=timedelta(minutes=10),
        display_title="Authorization Required",
        display_subtitle="Please complete OAuth in the popup window",
        display_waiting_for="OAuth authorization",
    )
    @step(start=True)
    def wait_for_oauth(self):
        get_context().connected = True
        return complete()


@workflow("ownership")
class OwnershipWorkflow:
    """The verify_ownership part of the guide's property onboarding (gate entered by goto)."""

    class Context(BaseModel):
        property_name: str = ""
        entity_id: str | None = None
        fallback_used: bool = False

    @step(
        start=True,
        display=StepDisplayMetadata(
            display_title="Property Details",
            display_description="Tell us about your property",
            field_groups=[
                FieldGroup(display_title="Basic Information", field_names=["property_name", "property_type"])
            ],
            field_display_configs=[
                FieldDisplayConfig(
                    field_name="amenities",
                    display_component="AmenitiesMultiSelect",
                    filter_queryset={"is_active": True, "category": "essential"},
                    display_help_text="Select all amenities that apply",
                )
            ],
        ),
    )
    def collect_details(self):
        ctx = get_context()
        ctx.property_name = ctx.property_name or "Sea View"
        return goto(self.verify_ownership, progress=0.5)

    @wait_for_event(
        "ownership_verified",
        timeout=timedelta(minutes=30),
        display_title="Verifying Ownership",
        display_subtitle="Please complete verification in your email",
        display_waiting_for="Email verification",
    )
    @step()
    def verify_ownership(self):
        return goto(self.finalize)

    @step()
    def finalize(self):
        ctx = get_context()
        return complete(
            display_title="Welcome to the Platform! 🎉",
            display_subtitle=f"{ctx.property_name} is now live and ready for bookings",
        )


@workflow("gate_orders")
class GateOrdersWorkflow:
    """Gates in both decorator orders, entered by a timeout jump."""

    class Context(BaseModel):
        path: list[str] = []
        note: str = ""

    @step(start=True)
    def begin(self):
        get_context().path.append("begin")
        return wait.for_signal("never_sent", timeout=timedelta(seconds=1), on_timeout="gated_below")

    @step()
    @wait("go_below", display_title="Waiting below")
    def gated_below(self):
        get_context().path.append("gated_below")
        return goto(self.gated_short_timeout)

    @wait("go_short", timeout=timedelta(seconds=1))
    @step()
    def gated_short_timeout(self):
        get_context().path.append("never")
        return complete()

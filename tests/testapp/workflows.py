"""Workflows of the workflows guide, as written there, for the test suite."""

from datetime import timedelta

from django.utils import timezone
from pydantic import BaseModel

from django_ai.automation.workflows.core import (
    Retry,
    complete,
    engine,  # noqa: F401  (the guide imports it here)
    fail,
    get_context,
    goto,
    sleep,
    step,
    wait,
    wait_for_event,
    workflow,
)


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
        ctx.payment_confirmed = True
        return goto(self.reserve_inventory)

    @step()
    def reserve_inventory(self):
        ctx = get_context()
        ctx.items_reserved = True
        return goto(self.ship_order)

    @step()
    def ship_order(self):
        ctx = get_context()
        ctx.shipped = True
        return complete()


@workflow("order_routing")
class OrderRoutingWorkflow:
    class Context(BaseModel):
        order_total: float
        approved_by: str = ""
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
        get_context().approved_by = "auto"
        return goto(self.fulfill_immediately)

    @step()
    def fulfill_immediately(self):
        get_context().fulfilled = True
        return complete()


@workflow("final_check")
class FinalCheckWorkflow:
    class Context(BaseModel):
        all_validations_passed: bool
        final_status: str = ""
        completion_date: str = ""

    @step(start=True)
    def final_step(self):
        ctx = get_context()

        if ctx.all_validations_passed:
            return complete(final_status="approved", completion_date=timezone.now().isoformat())
        else:
            return fail("Validation failed: missing required documents")


@workflow("reminders")
class ReminderWorkflow:
    class Context(BaseModel):
        reminders_sent: int = 0
        escalated: bool = False

    @step(start=True)
    def send_reminder(self):
        ctx = get_context()
        ctx.reminders_sent += 1

        if ctx.reminders_sent < 3:
            return sleep(timedelta(hours=24))
        else:
            return goto(self.escalate)

    @step()
    def escalate(self):
        get_context().escalated = True
        return complete()


@workflow("approval")
class ApprovalWorkflow:
    class Context(BaseModel):
        approved: bool = False
        notes: str = ""
        status: str = ""

    @step(start=True)
    def wait_for_approval(self):
        return wait.for_signal("manager_approval")

    @step()
    def wait_with_timeout(self):
        return wait.for_signal("user_response", timeout=timedelta(days=7), on_timeout="send_final_notice")

    @step()
    def send_final_notice(self):
        return complete(status="expired")


@workflow("review")
class ReviewWorkflow:
    class Context(BaseModel):
        reviewer_name: str = ""
        review_notes: str = ""
        approved: bool = False
        processed: bool = False

    @step(start=True)
    def wait_for_review(self):
        return wait.for_signal("review_completed")

    @step()
    def process_review(self):
        ctx = get_context()
        print(f"Reviewed by: {ctx.reviewer_name}")
        ctx.processed = True
        return goto(self.next_step)

    @step()
    def next_step(self):
        return complete()


@workflow("payment_wait")
class PaymentWaitWorkflow:
    class Context(BaseModel):
        event_id: int | None = None
        event_name: str = ""
        entity_id: str | None = None
        cancelled: bool = False
        fulfilled: bool = False

    @step(start=True)
    def wait_for_payment(self):
        return wait_for_event("payment_received", timeout=timedelta(hours=48), on_timeout="cancel_order")

    @step()
    def process_payment(self):
        return goto(self.fulfill_order)

    @step()
    def fulfill_order(self):
        get_context().fulfilled = True
        return complete()

    @step()
    def cancel_order(self):
        get_context().cancelled = True
        return complete()


@workflow("flaky", default_retry=Retry(max_attempts=3, base_delay=timedelta(milliseconds=100)))
class FlakyWorkflow:
    class Context(BaseModel):
        attempts: int = 0
        fail_times: int = 1
        notified: bool = False

    @step(start=True, retry=Retry(max_attempts=5, base_delay=timedelta(milliseconds=100)))
    def notify_housekeeping(self):
        ctx = get_context()
        ctx.attempts += 1
        if ctx.attempts <= ctx.fail_times:
            raise RuntimeError("transient failure")
        ctx.notified = True
        return complete()

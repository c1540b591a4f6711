"""The guide's "Subworkflows" examples, as written.

Imported inside ``registry.isolated()`` by the tests: the guide reuses the names
``order_fulfillment`` and ``user_registration``.
"""

from datetime import timedelta
from decimal import Decimal
from typing import Optional

from pydantic import BaseModel

from django_ai.automation.workflows.core import (
    Retry,
    SubflowResult,
    WorkflowStatus,
    complete,
    fail,
    get_context,
    goto,
    run_subflow,
    step,
    wait_for_event,
    workflow,
)

sent_codes: list[tuple[str, str]] = []


def generate_code():
    return "123456"


def send_email(email, code):
    sent_codes.append((email, code))


# Reusable subworkflow
@workflow("send_notification")
class SendNotificationWorkflow:
    class Context(BaseModel):
        recipient_email: str
        message: str
        sent: bool = False

    @step(start=True)
    def send_email(self):
        ctx = get_context()
        # Email sending logic
        ctx.sent = True
        return complete()


# Parent workflow that uses the subworkflow
@workflow("user_registration")
class UserRegistrationWorkflow:
    class Context(BaseModel):
        user_email: str
        user_id: int = 0
        active_subworkflow_run_id: Optional[int] = None

    @step(start=True)
    def create_user(self):
        ctx = get_context()
        # User creation logic
        ctx.user_id = 123

        # Launch subworkflow
        return run_subflow(
            SendNotificationWorkflow,
            on_complete=self.after_notification,
            recipient_email=ctx.user_email,
            message="Welcome to our platform!",
        )

    @step()
    def after_notification(self, subflow_result: SubflowResult):
        ctx = get_context()  # noqa: F841

        # Access the subworkflow's result
        if subflow_result.status == WorkflowStatus.COMPLETED:
            notification_ctx = subflow_result.context
            print(f"Email sent: {notification_ctx.sent}")
            return complete()
        else:
            # Handle failure
            return fail(f"Notification failed: {subflow_result.error}")


@workflow("payment_processing")
class PaymentWorkflow:
    class Context(BaseModel):
        amount: Decimal
        processed: bool = False

    @step(start=True)
    def process(self):
        ctx = get_context()
        ctx.processed = True
        return complete()


@workflow("order_fulfillment")
class FulfillmentWorkflow:
    class Context(BaseModel):
        order_id: int
        payment_complete: bool = False
        active_subworkflow_run_id: Optional[int] = None

    @step(start=True)
    def start_payment(self):
        ctx = get_context()  # noqa: F841
        return run_subflow(PaymentWorkflow, on_complete=self.after_payment, amount=Decimal("99.99"))

    @step()
    def after_payment(self, subflow_result: SubflowResult):
        ctx = get_context()
        ctx.payment_complete = subflow_result.context.processed
        return complete()


@workflow("order_management")
class OrderWorkflow:
    class Context(BaseModel):
        customer_id: int
        order_complete: bool = False
        active_subworkflow_run_id: Optional[int] = None

    @step(start=True)
    def start_fulfillment(self):
        return run_subflow(FulfillmentWorkflow, on_complete=self.finalize, order_id=456)

    @step()
    def finalize(self, subflow_result: SubflowResult):
        ctx = get_context()
        ctx.order_complete = subflow_result.context.payment_complete
        return complete()


@workflow("email_verification")
class EmailVerificationWorkflow:
    """Reusable email verification - can be used by multiple parent workflows"""

    class Context(BaseModel):
        email: str
        verification_code: str = ""
        verified: bool = False

    @step(start=True)
    def send_code(self):
        ctx = get_context()
        ctx.verification_code = generate_code()
        send_email(ctx.email, ctx.verification_code)
        return goto(self.wait_for_verification)

    @wait_for_event("email_verified", timeout=timedelta(hours=24))
    @step()
    def wait_for_verification(self):
        ctx = get_context()
        ctx.verified = True
        return complete()


# The guide's password_reset shows only two steps; Context and a start step are added here
# because a workflow needs both (semantics: "On-fail handlers and definition errors").
@workflow("password_reset")
class PasswordResetWorkflow:
    class Context(BaseModel):
        email: str
        reset: bool = False
        active_subworkflow_run_id: Optional[int] = None

    @step(start=True)
    def verify_email(self):
        ctx = get_context()
        return run_subflow(EmailVerificationWorkflow, on_complete=self.after_verification, email=ctx.email)

    @step()
    def after_verification(self, subflow_result: SubflowResult):
        if subflow_result.context.verified:
            return goto(self.reset_password)
        return fail("Verification failed")

    @step()
    def reset_password(self):
        get_context().reset = True
        return complete()


@workflow("flaky_child")
class FlakyChildWorkflow:
    class Context(BaseModel):
        tries: int = 0

    @step(start=True, retry=Retry(max_attempts=2, base_delay=timedelta(milliseconds=50)))
    def explode(self):
        get_context().tries += 1
        raise RuntimeError("child exploded")


@workflow("parent_of_flaky")
class ParentOfFlakyWorkflow:
    class Context(BaseModel):
        child_status: str = ""
        child_error: str = ""
        child_tries: int = 0
        active_subworkflow_run_id: Optional[int] = None

    @step(start=True)
    def launch(self):
        return run_subflow("flaky_child", on_complete=self.after)

    @step()
    def after(self, subflow_result: SubflowResult):
        ctx = get_context()
        ctx.child_status = subflow_result.status
        ctx.child_error = subflow_result.error or ""
        ctx.child_tries = subflow_result.context.tries
        return complete()

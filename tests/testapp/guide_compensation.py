"""The guide's "Compensation (on_fail Handler)" examples, as written."""

import logging
from datetime import timedelta
from typing import Optional

from pydantic import BaseModel

from django_ai.automation.workflows.core import Retry, complete, fail, get_context, goto, on_fail, step, workflow
from django_ai.automation.workflows.models import WorkflowRun
from tests.testapp.services import (
    PaymentServiceError,
    external_service,
    inventory_service,
    payment_service,
    shipping_service,
)

logger = logging.getLogger(__name__)

FAST = Retry(max_attempts=2, base_delay=timedelta(milliseconds=50))


@workflow("order_processing", default_retry=FAST)
class OrderProcessingWorkflow:
    class Context(BaseModel):
        order_id: int
        charge_id: Optional[str] = None
        reservation_id: Optional[str] = None

    @step(start=True)
    def charge_payment(self):
        ctx = get_context()
        ctx.charge_id = payment_service.charge(ctx.order_id)
        return goto(self.reserve_inventory)

    @step()
    def reserve_inventory(self):
        ctx = get_context()
        ctx.reservation_id = inventory_service.reserve(ctx.order_id)
        return goto(self.ship_order)

    @step()
    def ship_order(self):
        # This might fail!  (As in the guide, `ctx` is not defined here: a NameError.)
        shipping_service.ship(ctx.order_id)  # noqa: F821
        return complete()

    @on_fail
    def cleanup(self, run: WorkflowRun):
        """Called when workflow fails - inspect history and compensate."""
        # See which steps completed
        completed_steps = set(run.step_executions.filter(status="completed").values_list("step_name", flat=True))

        # Access context for IDs we need to reverse
        ctx = get_context()

        # Reverse completed actions
        if "charge_payment" in completed_steps and ctx.charge_id:
            payment_service.refund(ctx.charge_id)

        if "reserve_inventory" in completed_steps and ctx.reservation_id:
            inventory_service.release(ctx.reservation_id)


@workflow("risky", default_retry=FAST)
class RiskyWorkflow:
    class Context(BaseModel):
        something_wrong: bool = False
        cleanup_performed: bool = False
        refunded: bool = False
        charge_id: Optional[str] = None
        manual_refund_needed: bool = False
        failed_step: str = ""
        failed_error: str = ""
        seen_completed: list[str] = []

    @step(start=True)
    def prepare(self):
        ctx = get_context()
        ctx.charge_id = "ch_1"
        return goto(self.risky_step)

    @step()
    def risky_step(self):
        something_wrong = get_context().something_wrong
        if something_wrong:
            return fail("Validation failed")  # Triggers on_fail

        raise ValueError("Boom!")  # Also triggers on_fail (after retries exhausted)

    @on_fail
    def cleanup(self, run: WorkflowRun):
        ctx = get_context()
        # Get all completed steps
        completed = run.step_executions.filter(status="completed")
        for execution in completed:
            print(f"Step: {execution.step_name}")
            print(f"Completed at: {execution.created_at}")
        ctx.seen_completed = [e.step_name for e in completed]

        # Get the failed step
        failed = run.step_executions.filter(status="failed").first()
        if failed:
            print(f"Failed step: {failed.step_name}")
            print(f"Error: {failed.error}")
            ctx.failed_step = failed.step_name
            ctx.failed_error = failed.error

        # Track what we cleaned up
        ctx.cleanup_performed = True
        ctx.refunded = False

        try:
            if ctx.charge_id:
                payment_service.refund(ctx.charge_id)
                ctx.refunded = True
        except PaymentServiceError as e:
            logger.error(f"Failed to refund {ctx.charge_id}: {e}")
            ctx.manual_refund_needed = True


@workflow("failing_cleanup", default_retry=FAST)
class FailingCleanupWorkflow:
    class Context(BaseModel):
        touched: bool = False

    @step(start=True)
    def only(self):
        return fail("original problem")

    @on_fail
    def cleanup(self, run: WorkflowRun):
        get_context().touched = True
        # If this raises, it's logged but workflow still shows original error
        external_service.notify_failure(run.id)

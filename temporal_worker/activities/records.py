"""The ``automation.record`` activity: projection writes that no step activity makes."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from django_bridge.conf import automation_settings
from django_bridge.models import WorkflowRun
from facade import registry
from facade.contract import merge_into
from temporal_worker import outages, projection
from temporal_worker.protocol import RecordInput, RecordOp

__all__ = ["record"]

# A record attempt may run 60 s (the interpreter's start-to-close timeout) and is retried by
# Temporal without limit; wait out an outage inside the attempt for most of that.
RECORD_OUTAGE_ALLOWANCE = 45.0


def record(inp: RecordInput) -> dict[str, Any]:
    """Write what the workflow asks for; every write is idempotent, so an outage just delays it."""
    allowance = min(RECORD_OUTAGE_ALLOWANCE, float(automation_settings.DATABASE_OUTAGE_ALLOWANCE))
    return outages.retrying(
        f"workflow {inp.workflow!r} run {inp.run_id}: recording {inp.op.value}",
        lambda: _record(inp),
        allowance=allowance,
    )


def _record(inp: RecordInput) -> dict[str, Any]:
    run_id, seq, step = inp.run_id, inp.seq, inp.step
    if inp.op is RecordOp.ENTER:
        spec = WorkflowRun.objects.values_list("spec", flat=True).get(pk=run_id)
        projection.record_entered(run_id, spec, step, seq)
    elif inp.op is RecordOp.STEP_FAILED:
        spec = WorkflowRun.objects.values_list("spec", flat=True).get(pk=run_id)
        projection.record_step_failed(run_id, spec, step, seq, inp.error or "")
        # Failed attempts saved their context here: hand it back to the workflow.
        return {"context": WorkflowRun.objects.values_list("data", flat=True).get(pk=run_id)}
    elif inp.op is RecordOp.COMPLETE:
        data = None
        if inp.signal and inp.workflow in registry:
            definition = registry.get(inp.workflow)
            run_data = WorkflowRun.objects.values_list("data", flat=True).get(pk=run_id)
            try:
                data = merge_into(definition.load_context(run_data), inp.signal).model_dump(mode="json")
            except ValidationError:
                data = None
        projection.record_completed(run_id, step, data)
    elif inp.op is RecordOp.CANCELLED:
        # The workflow passes the reason of the cancel request. Histories recorded before it did
        # (engine.cancel then wrote the reason on the row first) carry none: read the row.
        spec, row_error = WorkflowRun.objects.values_list("spec", "error").get(pk=run_id)
        reason = inp.error if inp.error is not None else row_error
        projection.record_cancelled(run_id, spec, step, seq, reason or "cancelled")
    return {}

"""The ``automation.record`` activity: projection writes that no step activity makes."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from django_bridge.models import WorkflowRun
from facade import registry
from facade.contract import merge_into
from temporal_worker import projection
from temporal_worker.protocol import RecordInput, RecordOp

__all__ = ["record"]


def record(inp: RecordInput) -> dict[str, Any]:
    run_id, seq, step = inp.run_id, inp.seq, inp.step
    if inp.op is RecordOp.ENTER:
        spec = WorkflowRun.objects.values_list("spec", flat=True).get(pk=run_id)
        projection.update_run(run_id, **projection.entry_fields(spec, step, seq))
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
        # engine.cancel stores the caller's reason on the row before asking Temporal to cancel.
        reason = WorkflowRun.objects.values_list("error", flat=True).get(pk=run_id) or "cancelled"
        projection.record_cancelled(run_id, step, seq, reason)
    return {}

"""The ``automation.check_signal`` activity: validate a signal sent by hand before the run takes it.

``engine.signal`` checks its payload against each run's Context before sending it. A signal sent
by hand (``temporal workflow signal``, the Temporal UI) carries no such check, and the
interpreter workflow cannot load the Context model; so it asks this activity first. A payload
that does not fit is rejected: the run keeps waiting where it was, the rejection is written on
the run row (``WorkflowRun.rejected_signal``) and stays in the Temporal history as this
activity's result (semantics: "Signals sent by hand").
"""

from __future__ import annotations

import logging
from typing import Any

from django.utils import timezone
from pydantic import ValidationError

from django_bridge.models import WorkflowRun
from facade import registry
from facade.contract import merge_into, unknown_payload_keys, validation_summary
from temporal_worker import outages, projection
from temporal_worker.engine import unknown_keys_mode
from temporal_worker.protocol import SignalCheck, SignalVerdict

__all__ = ["check_signal"]

logger = logging.getLogger("django_temporal_automation")

# As for automation.record: an attempt may run 60 s and is retried; wait out most of that.
CHECK_OUTAGE_ALLOWANCE = 45.0


def check_signal(inp: SignalCheck) -> dict[str, Any]:
    return outages.retrying(
        f"workflow {inp.workflow!r} run {inp.run_id}: checking a hand-sent {inp.signal!r}",
        lambda: _check(inp),
        allowance=CHECK_OUTAGE_ALLOWANCE,
    ).to_wire()


def _check(inp: SignalCheck) -> SignalVerdict:
    problem = _problem(inp)
    if problem is None:
        return SignalVerdict(True)
    error = (
        f"{problem}. The run still waits for {inp.signal!r} at step {inp.step!r}; send a JSON object of its "
        "Context fields with values of their types."
    )
    logger.warning(
        "workflow %r run %s: rejected a hand-sent signal %r: %s", inp.workflow, inp.run_id, inp.signal, error
    )
    projection.record_signal_rejected(
        inp.run_id,
        {
            "signal": inp.signal,
            "payload": inp.payload,
            "error": error,
            "step": inp.step,
            "wait_seq": inp.seq,
            "at": timezone.now().isoformat(),
        },
    )
    return SignalVerdict(False, error)


def _problem(inp: SignalCheck) -> str | None:
    """Why the payload cannot be merged into the run's Context, or None when it can."""
    if not isinstance(inp.payload, dict):
        return f"the signal's input must be a JSON object of Context fields, got {type(inp.payload).__name__} {inp.payload!r}"
    if inp.workflow not in registry:
        return None  # a workflow this worker does not know: its steps would not run here either
    definition = registry.get(inp.workflow)
    data = WorkflowRun.objects.values_list("data", flat=True).get(pk=inp.run_id)
    unknown = unknown_payload_keys(definition.context_model, inp.payload)
    if unknown and unknown_keys_mode() == "error":
        fields = ", ".join(definition.context_model.model_fields) or "none"
        return f"the keys {', '.join(unknown)} are not Context fields (fields: {fields})"
    try:
        merge_into(definition.load_context(data), inp.payload)
    except ValidationError as exc:
        return f"the payload does not fit the Context of workflow {inp.workflow!r}: {validation_summary(exc)}"
    return None

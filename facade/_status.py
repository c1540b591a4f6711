"""Run and step statuses: the protocol's vocabulary, which the public API re-exports."""

from __future__ import annotations

from temporal_worker.protocol import StepStatus, WorkflowStatus

__all__ = ["StepStatus", "WorkflowStatus"]

"""Temporal workflow definitions. Sandbox-safe: only the protocol and pure modules are imported."""

from temporal_worker.workflows.events import EventWorkflow
from temporal_worker.workflows.interpreter import SEARCH_ATTRIBUTE_KEYS, InterpreterWorkflow

__all__ = ["SEARCH_ATTRIBUTE_KEYS", "EventWorkflow", "InterpreterWorkflow"]

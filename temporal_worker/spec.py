"""Compiling a workflow definition into its spec: the data the interpreter workflow runs.

The spec is plain JSON (steps in declaration order, start step, retries, gates, actions,
displays). It travels in each run's start input, is recorded in its history and stored on its
row, so the interpreter never imports user code and a run keeps the shape it started with
whatever the code looks like later.
"""

from __future__ import annotations

import weakref
from typing import Any

from facade import Retry
from facade.contract import StepDef, WorkflowDefinition

__all__ = ["compile_spec", "retry_spec"]

# Definitions are immutable once decorated: compile each once. Weak keys let a definition
# declared in a test's isolated registry go away with it.
_compiled: weakref.WeakKeyDictionary[WorkflowDefinition, dict[str, Any]] = weakref.WeakKeyDictionary()


def compile_spec(definition: WorkflowDefinition) -> dict[str, Any]:
    """The spec of ``definition`` (computed once, then shared: do not mutate it)."""
    spec = _compiled.get(definition)
    if spec is None:
        spec = {
            "name": definition.name,
            "version": definition.version,
            "start": definition.start_step,
            "order": list(definition.steps),
            "on_fail": definition.on_fail,
            "steps": {name: _step_spec(step) for name, step in definition.steps.items()},
        }
        _compiled[definition] = spec
    return spec


def _step_spec(step: StepDef) -> dict[str, Any]:
    return {
        "name": step.name,
        "retry": retry_spec(step.retry),
        "title": step.title or step.name.replace("_", " "),
        "visible": step.visible,
        "display": step.display,
        "gate": step.gate.to_directive().to_wire() if step.gate else None,
        "action": step.action,
    }


def retry_spec(retry: Retry) -> dict[str, Any]:
    """A ``Retry`` as the wire dict the workflows turn into Temporal retry policies."""
    return {
        "max_attempts": retry.max_attempts,
        "base_delay": retry.base_delay.total_seconds(),
        "max_delay": retry.max_delay.total_seconds(),
        "backoff_factor": float(retry.backoff_factor),
    }

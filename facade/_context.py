"""The live workflow Context bound while user code runs (semantics: "Where the Context is available")."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

from ._errors import ContextUnavailableError

__all__ = ["bind_context", "current_run_id", "get_context"]

_current: contextvars.ContextVar[BaseModel | None] = contextvars.ContextVar("automation_context", default=None)
# The run (workflow run or agent instance) whose code is running: who holds a claim it takes.
_current_run: contextvars.ContextVar[int | None] = contextvars.ContextVar("automation_run", default=None)


def get_context() -> Any:
    """Return the live Context of the running step, ``@on_fail`` handler, hook or handler.

    Changes made to the returned object are saved when the step ends, also when it raises.
    """
    ctx = _current.get()
    if ctx is None:
        raise ContextUnavailableError(
            "get_context() was called outside a workflow step. It works inside a @step method, "
            "an @on_fail handler, an on_create hook, an action step or an agent handler; "
            "elsewhere, load the run (WorkflowRun.objects.get(...)) and read run.data."
        )
    return ctx


def current_run_id() -> int | None:
    """The ``WorkflowRun`` whose step or handler is running, or None outside one."""
    return _current_run.get()


@contextlib.contextmanager
def bind_context(ctx: BaseModel, run_id: int | None = None) -> Iterator[BaseModel]:
    """Make ``ctx`` what ``get_context()`` returns (and ``run_id`` the running run) in the block."""
    token = _current.set(ctx)
    run_token = _current_run.set(run_id)
    try:
        yield ctx
    finally:
        _current_run.reset(run_token)
        _current.reset(token)

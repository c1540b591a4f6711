"""The live workflow Context bound while user code runs (semantics: "Where the Context is available")."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

from ._errors import ContextUnavailableError

__all__ = ["bind_context", "get_context"]

_current: contextvars.ContextVar[BaseModel | None] = contextvars.ContextVar("automation_context", default=None)


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


@contextlib.contextmanager
def bind_context(ctx: BaseModel) -> Iterator[BaseModel]:
    """Make ``ctx`` what ``get_context()`` returns for the duration of the block."""
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)

"""Errors raised by the automation API.

Every error a user can see derives from ``AutomationError``::

    AutomationError
    ├── WorkflowDefinitionError   a @workflow class is wrong (raised when it is decorated)
    ├── UnknownWorkflowError      engine.start / run_subflow with a name nobody registered
    ├── InvalidInputError         kwargs, payloads or arguments that fail validation
    │   └── SignalPayloadError    engine.signal payload refused by a waiting run's Context
    ├── StepResultError           a step returned something that is not a step result
    ├── ContextUnavailableError   get_context() outside a step, hook or handler
    ├── RunStateError             an operation that the run's state does not allow
    ├── ClaimError                claims.hold / release refused (held by another, not held, outside a run)
    ├── TemporalUnavailableError  the Temporal server could not be reached
    └── DatabaseUnavailableError  the database could not be reached; nothing was changed

Errors carry the workflow name, run id and step as attributes where they apply, and their
message says what happened and how to fix it.
"""

from __future__ import annotations

__all__ = [
    "AutomationError",
    "ClaimError",
    "ContextUnavailableError",
    "DatabaseUnavailableError",
    "InvalidInputError",
    "RunStateError",
    "SignalPayloadError",
    "StepResultError",
    "TemporalUnavailableError",
    "UnknownWorkflowError",
    "WorkflowDefinitionError",
]


class AutomationError(Exception):
    """Root of every error raised by this library."""

    def __init__(
        self,
        message: str,
        *,
        workflow: str | None = None,
        run_id: int | None = None,
        step: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.workflow = workflow
        self.run_id = run_id
        self.step = step


class WorkflowDefinitionError(AutomationError):
    """A decorated workflow class has one or more problems; all are listed at once."""

    def __init__(self, workflow: str, problems: list[str]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"workflow {workflow!r} is not valid:\n{lines}", workflow=workflow)


class UnknownWorkflowError(AutomationError):
    """No workflow is registered under the requested name."""


class InvalidInputError(AutomationError):
    """Input given at a boundary failed validation; nothing was changed."""


class SignalPayloadError(InvalidInputError):
    """A signal payload does not fit the Context of a run waiting on that signal."""


class StepResultError(AutomationError):
    """A step returned a value that is not a step result, or a result that cannot apply."""


class ContextUnavailableError(AutomationError):
    """``get_context()`` was called where no workflow context is bound."""


class RunStateError(AutomationError):
    """The run is in a state that does not allow the requested operation."""


class TemporalUnavailableError(AutomationError):
    """The Temporal server could not be reached or refused the request."""


class DatabaseUnavailableError(AutomationError):
    """The database could not be reached (down, restarting, locked); nothing was changed.

    Raised by ``engine`` calls in the web process; try again once the database is back.
    """


class ClaimError(AutomationError):
    """``claims.hold`` or ``claims.release`` was refused: the claim is held by another run, is not
    held by this one, or the call was made outside an agent handler or workflow step."""

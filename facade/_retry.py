"""Retry policy for steps, mapped onto Temporal activity retry policies."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from ._errors import InvalidInputError

__all__ = ["DEFAULT_RETRY", "Retry"]


@dataclass(frozen=True)
class Retry:
    """How often a failing step is attempted, and how long to wait between attempts.

    ``max_attempts`` counts all attempts of one step (1 means no retry). The delay before
    retry ``k`` is ``min(base_delay * backoff_factor ** (k - 1), max_delay)``, which is exactly
    Temporal's retry policy with ``initial_interval=base_delay``.
    """

    max_attempts: int = 3
    base_delay: timedelta = timedelta(seconds=1)
    max_delay: timedelta = timedelta(minutes=5)
    backoff_factor: float = 2.0

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.max_attempts, int) or isinstance(self.max_attempts, bool):
            problems.append(f"max_attempts must be an int, got {self.max_attempts!r}")
        elif self.max_attempts < 1:
            problems.append(f"max_attempts must be at least 1, got {self.max_attempts}")
        for field in ("base_delay", "max_delay"):
            value = getattr(self, field)
            if not isinstance(value, timedelta):
                problems.append(f"{field} must be a timedelta, got {value!r}")
            elif value <= timedelta(0):
                problems.append(f"{field} must be positive, got {value}")
        if not isinstance(self.backoff_factor, (int, float)) or isinstance(self.backoff_factor, bool):
            problems.append(f"backoff_factor must be a number, got {self.backoff_factor!r}")
        elif self.backoff_factor < 1:
            problems.append(f"backoff_factor must be at least 1.0, got {self.backoff_factor}")
        if not problems and self.max_delay < self.base_delay:
            problems.append(f"max_delay ({self.max_delay}) must not be below base_delay ({self.base_delay})")
        if problems:
            raise InvalidInputError("invalid Retry: " + "; ".join(problems) + ".")

    def delay_before(self, attempt: int) -> timedelta:
        """The wait before attempt number ``attempt`` (2 for the first retry)."""
        seconds = self.base_delay.total_seconds() * self.backoff_factor ** (attempt - 2)
        return min(timedelta(seconds=seconds), self.max_delay)


DEFAULT_RETRY = Retry()

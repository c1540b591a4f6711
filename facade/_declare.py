"""``@workflow``: validate a class into a definition and register it under its name."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from ._definition import build_definition
from ._registry import registry
from ._retry import Retry

__all__ = ["workflow"]

C = TypeVar("C", bound=type)


def workflow(name: str, version: str = "1", default_retry: Retry | None = None) -> Callable[[C], C]:
    """Declare a workflow class under ``name`` (its Temporal workflow type).

    The class is validated here; every problem is reported at once with its fix.
    """

    def decorate(cls: C) -> C:
        definition = build_definition(cls, name, version, default_retry)
        registry.register(definition)
        cls._automation_definition = definition  # type: ignore[attr-defined]
        return cls

    return decorate

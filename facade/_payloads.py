"""Merging data into a Context: signal payloads, ``complete(**kw)`` values, event data.

Only keys that are Context fields are merged, validated by the Context model; other keys are
ignored (semantics: "Merging data into the Context").
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

__all__ = ["merge_into", "unknown_payload_keys", "validation_summary"]


def merge_into(ctx: BaseModel, payload: Any) -> BaseModel:
    """Merge the keys of ``payload`` that are fields of ``ctx`` into it, validated.

    Raises pydantic's ``ValidationError`` and leaves ``ctx`` unchanged when a value does not fit.
    """
    if not isinstance(payload, dict) or not payload:
        return ctx
    known = {k: v for k, v in payload.items() if k in type(ctx).model_fields}
    if not known:
        return ctx
    merged = type(ctx).model_validate({**ctx.model_dump(), **known})
    for key in known:
        setattr(ctx, key, getattr(merged, key))
    return ctx


def unknown_payload_keys(model: type[BaseModel], payload: Any) -> list[str]:
    """The keys of ``payload`` that are not fields of the Context ``model``: what a merge ignores."""
    if not isinstance(payload, dict):
        return []
    return sorted(str(k) for k in payload if k not in model.model_fields)


def validation_summary(exc: ValidationError) -> str:
    """A pydantic error as one line: ``field: message; other: message``."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ())) or "(value)"
        parts.append(f"{loc}: {err.get('msg')}")
    return "; ".join(parts)

"""``match={"field": "{{ ctx.x }}"}``: which entities' events reach a run waiting for them.

A template names a Context field as ``{{ ctx.x }}`` or ``{{ context.x }}`` (dotted paths go
deeper). A value that is a single expression keeps the field's raw value, so ``status__in`` can
get a list; an expression inside other text is rendered into the string. The entity matches when
``Model.objects.filter(pk=entity_pk, **rendered).exists()`` (semantics: "Waiting for an event").
"""

from __future__ import annotations

import re
from typing import Any

from django.core.exceptions import FieldError, ValidationError

from django_bridge.models import Event

__all__ = ["entity_matches", "render_match"]

_EXPRESSION = re.compile(r"\{\{\s*(?:ctx|context)\.([A-Za-z_][\w.]*)\s*\}\}")


def _lookup(context: dict[str, Any], path: str) -> Any:
    value: Any = context
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else getattr(value, part, None)
    return value


def render_match(match: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """The filter a ``match`` stands for, with the Context's values put in."""
    rendered: dict[str, Any] = {}
    for key, template in match.items():
        if not isinstance(template, str):
            rendered[key] = template
            continue
        whole = _EXPRESSION.fullmatch(template.strip())
        if whole:
            rendered[key] = _lookup(context, whole.group(1))
        else:
            rendered[key] = _EXPRESSION.sub(lambda m: str(_lookup(context, m.group(1))), template)
    return rendered


def entity_matches(event: Event, match: dict[str, Any], context: dict[str, Any]) -> bool:
    """Whether ``event``'s entity passes the run's ``match`` (a bad filter matches nothing)."""
    model = event.content_type.model_class()
    if model is None:
        return False
    try:
        pk = model._meta.pk.to_python(event.entity_id)
        return model._default_manager.filter(pk=pk, **render_match(match, context)).exists()
    except (FieldError, ValidationError, ValueError, TypeError):
        return False

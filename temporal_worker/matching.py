"""``match={"field": "{{ ctx.x }}"}``: which entities' events reach a run waiting for them.

A template names a Context field as ``{{ ctx.x }}`` or ``{{ context.x }}`` (dotted paths go
deeper). A value that is a single expression keeps the field's raw value, so ``status__in`` can
get a list; an expression inside other text is rendered into the string. The entity matches when
``Model.objects.filter(pk=entity_pk, **rendered).exists()`` (semantics: "Waiting for an event").
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from typing import Any

from django.core.exceptions import FieldError, ValidationError

from django_bridge.models import Event

__all__ = ["entity_index_keys", "entity_matches", "index_entry", "indexed_match_holds", "match_hash", "render_match"]

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


# ---------------------------------------------------------------------- the match index
# Routing an event to agent instances (and finding the claims on it) must not render and test
# every instance's match. Each rendered match is stored with an index entry: ``keyset`` names its
# equality lookups and ``key`` hashes their values. For an event, one query reads the entity's
# values for those paths, and only the instances with the same key are tested with the full
# filter. Lookups other than equality (``status__in``, ``__gt``...) are not indexed: they are
# tested on the candidates the equality lookups leave.

_NOT_EQUALITY = {
    "in",
    "gt",
    "gte",
    "lt",
    "lte",
    "contains",
    "icontains",
    "startswith",
    "istartswith",
    "endswith",
    "iendswith",
    "range",
    "isnull",
    "regex",
    "iregex",
    "iexact",
    "year",
    "month",
    "day",
    "week_day",
    "week",
    "quarter",
    "date",
    "time",
    "hour",
    "minute",
    "second",
    "iso_year",
    "iso_week_day",
    "search",
    "overlap",
    "contained_by",
    "has_key",
    "has_keys",
    "has_any_keys",
}
_INDEXABLE = (str, int)  # bool is an int; other types compare too loosely as text


def _equality_path(lookup: str) -> str | None:
    parts = lookup.split("__")
    if parts[-1] == "exact":
        parts = parts[:-1]
    elif parts[-1] in _NOT_EQUALITY:
        return None
    return "__".join(parts) or None


def _hash(values: list[str]) -> str:
    return hashlib.sha1(json.dumps(values).encode()).hexdigest()


def match_hash(match: dict[str, Any]) -> str:
    """Identifies a whole rendered match (claims: one holder per event and match)."""
    return _hash([json.dumps(match, sort_keys=True, default=str)])


def index_entry(rendered: dict[str, Any]) -> tuple[str, str]:
    """``(keyset, key)`` for a rendered match: its equality lookups and their values, hashed."""
    paths = sorted(
        (path, value)
        for lookup, value in rendered.items()
        if (path := _equality_path(lookup)) is not None and isinstance(value, _INDEXABLE)
    )
    return ",".join(p for p, _ in paths), _hash([str(v) for _, v in paths])


def indexed_match_holds(event: Event, rendered: dict[str, Any], keys: dict[str, set[str] | None]) -> bool:
    """Whether a candidate found through the index matches ``event``'s entity.

    A match made only of equality lookups with indexable values is settled by the index: the
    entity's values for its paths (read once for all candidates) hash to the same key. Any other
    lookup, an entity whose values could not be indexed, or an empty match (the entity must still
    exist) takes the full filter, one query.
    """
    keyset, _ = index_entry(rendered)
    if keyset and keys.get(keyset) is not None and len(keyset.split(",")) == len(rendered):
        return True
    return entity_matches(event, rendered, {})


def entity_index_keys(event: Event, keysets: set[str]) -> dict[str, set[str] | None]:
    """For each keyset, the keys the event's entity has (None: its values cannot be indexed, so
    every entry with that keyset is a candidate). A missing entity has no keys."""
    model = event.content_type.model_class()
    found: dict[str, set[str] | None] = {}
    if model is None:
        return {keyset: set() for keyset in keysets}
    try:
        pk = model._meta.pk.to_python(event.entity_id)
    except (ValidationError, ValueError, TypeError):
        return {keyset: set() for keyset in keysets}
    for keyset in keysets:
        if not keyset:
            found[keyset] = {_hash([])}
            continue
        paths = keyset.split(",")
        try:
            rows = list(model._default_manager.filter(pk=pk).values_list(*paths))
        except (FieldError, ValueError, TypeError):
            found[keyset] = set()  # a path this model lacks: nothing of this keyset matches
            continue
        keys: set[str] | None = set()
        for row in rows:
            if any(not isinstance(v, _INDEXABLE) and v is not None and not _uuid_like(v) for v in row):
                keys = None
                break
            assert keys is not None
            keys.add(_hash([str(v) for v in row]))
        found[keyset] = keys
    return found


def _uuid_like(value: Any) -> bool:
    return isinstance(value, uuid.UUID)

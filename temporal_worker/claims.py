"""Event claims: ``claims.hold(event_name, match={...})`` inside an agent handler or a workflow step.

While a run holds a claim on (event, match), the events of that name whose entity matches reach
only the holder: other agent instances' handlers, ``@on_event`` callbacks, ``@event_workflow``
starts and other runs' ``wait_for_event`` do not get them, except handlers and callbacks declared
with ``ignores_claims=True``. One holder at a time per (event, match): a second holder is refused.
Completing, failing or cancelling the holder releases its claims (semantics: "Claims").
"""

from __future__ import annotations

import json
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q

from django_bridge.event_rows import models_defining
from django_bridge.models import Event, EventClaim
from facade import ClaimError, WorkflowStatus
from facade.contract import current_run_id
from temporal_worker.matching import entity_index_keys, index_entry, indexed_match_holds, match_hash

__all__ = ["claimed_by", "hold", "release", "release_all"]


def _holder(call: str) -> int:
    run_id = current_run_id()
    if run_id is None:
        raise ClaimError(
            f"claims.{call}() holds and releases claims for the agent or workflow run whose code is running; "
            "call it inside an agent @handler or a workflow @step."
        )
    return run_id


def _checked(event_name: Any, match: Any, call: str) -> tuple[str, dict[str, Any]]:
    if not isinstance(event_name, str) or not event_name.strip():
        raise ClaimError(
            f"claims.{call}(event_name, match=...): event_name must be an event's name, got {event_name!r}"
        )
    if not models_defining(event_name):
        raise ClaimError(
            f"claims.{call}({event_name!r}): no model defines an event {event_name!r}; "
            "add EventDefinition({event_name!r}, ...) to a model's events or fix the name."
        )
    if match is None:
        match = {}
    if not isinstance(match, dict):
        raise ClaimError(
            f"claims.{call}({event_name!r}, match=...): match must be a dict of entity lookups, got {match!r}"
        )
    try:  # stored as JSON: the values a filter gets back are the ones held
        return event_name, json.loads(json.dumps(match, default=str))
    except (TypeError, ValueError) as exc:
        raise ClaimError(f"claims.{call}({event_name!r}): match values must be plain values ({exc})") from None


def hold(event_name: str, match: dict[str, Any] | None = None) -> EventClaim:
    """Claim the events ``event_name`` whose entity matches ``match`` for the running run.

    Holding a claim the run already holds changes nothing; a claim held by another run raises
    ``ClaimError`` naming it.
    """
    holder = _holder("hold")
    event_name, match = _checked(event_name, match, "hold")
    digest = match_hash(match)
    keyset, key = index_entry(match)
    existing = EventClaim.objects.filter(event_name=event_name, match_hash=digest).select_related("holder").first()
    if existing is not None:
        if existing.holder_id == holder:
            return existing
        if existing.holder.status not in WorkflowStatus.finished():
            raise ClaimError(
                f"claims.hold({event_name!r}, match={match}): already held by {existing.holder} "
                f"(run {existing.holder_id}); it is released when that run releases it or ends."
            )
        existing.delete()  # its holder ended without releasing it: take it over
    try:
        with transaction.atomic():
            return EventClaim.objects.create(
                event_name=event_name, match=match, match_hash=digest, keyset=keyset, key=key, holder_id=holder
            )
    except IntegrityError:  # another run took it in the meantime
        other = EventClaim.objects.filter(event_name=event_name, match_hash=digest).first()
        raise ClaimError(
            f"claims.hold({event_name!r}, match={match}): already held by run {other.holder_id if other else '?'}."
        ) from None


def release(event_name: str, match: dict[str, Any] | None = None) -> None:
    """Release a claim the running run holds; releasing one it does not hold raises ``ClaimError``."""
    holder = _holder("release")
    event_name, match = _checked(event_name, match, "release")
    deleted, _ = EventClaim.objects.filter(
        event_name=event_name, match_hash=match_hash(match), holder_id=holder
    ).delete()
    if not deleted:
        held = list(EventClaim.objects.filter(holder_id=holder).values_list("event_name", "match"))
        raise ClaimError(
            f"claims.release({event_name!r}, match={match}): run {holder} does not hold this claim "
            f"(it holds: {held or 'none'})."
        )


def release_all(run_id: int) -> int:
    """Release every claim of ``run_id`` (it completed, failed or was cancelled)."""
    deleted, _ = EventClaim.objects.filter(holder_id=run_id).delete()
    return deleted


def claimed_by(event: Event) -> int | None:
    """The run holding a claim that covers ``event``'s entity, or None.

    Found through the claims' index entries (their equality lookups), then confirmed with the
    full filter, so many claims on one event name stay cheap to check.
    """
    claims = EventClaim.objects.filter(event_name=event.event_name)
    keysets = set(claims.values_list("keyset", flat=True).distinct())
    if not keysets:
        return None
    keys = entity_index_keys(event, keysets)
    query = Q()
    for keyset, found in keys.items():
        query |= Q(keyset=keyset) if found is None else Q(keyset=keyset, key__in=found)
    for holder, match in claims.filter(query).order_by("created_at", "id").values_list("holder_id", "match"):
        if indexed_match_holds(event, match, keys):
            return holder
    return None

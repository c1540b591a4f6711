"""Who may see and act on which runs.

Three hooks, all in ``settings.AUTOMATION_API``:

- ``PERMISSION_CLASSES``: DRF permission classes checked on every endpoint (default:
  ``IsAuthenticated``). Their ``has_object_permission`` is checked on the run for the detail,
  signal, cancel, retry and action endpoints. An action's ``@statezero_action(permissions=...)``
  are checked after them, for that action only.
- ``RUN_QUERYSET``: ``f(request, queryset) -> queryset`` narrows the runs a request may see;
  a run outside it answers 404 everywhere (list, detail, actions, run page).
- ``START_KWARGS``: ``f(request, workflow_name, kwargs) -> kwargs`` adjusts the arguments of
  ``POST runs/`` before ``engine.start``.

``WorkflowRun`` has no owner column. To scope runs to their owner, keep the owner in the
Context and use the two helpers below::

    class Context(BaseModel):
        owner_id: int | None = None

    AUTOMATION_API = {
        "RUN_QUERYSET": "django_bridge.api.permissions.owner_runs",
        "START_KWARGS": "django_bridge.api.permissions.owner_start_kwargs",
    }
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet
from rest_framework.permissions import BasePermission

from facade import registry

from .conf import api_settings

__all__ = [
    "OWNER_FIELD",
    "IsRunOwner",
    "action_permissions",
    "default_permissions",
    "owner_runs",
    "owner_start_kwargs",
    "scoped_runs",
]

OWNER_FIELD = "owner_id"


def default_permissions() -> list[BasePermission]:
    return [cls() for cls in api_settings.permission_classes()]


def action_permissions(extra: tuple[type, ...]) -> list[BasePermission]:
    return default_permissions() + [cls() for cls in extra]


def scoped_runs(request: Any, queryset: QuerySet) -> QuerySet:
    """Apply the ``RUN_QUERYSET`` hook."""
    hook = api_settings.hook("RUN_QUERYSET")
    return queryset if hook is None else hook(request, queryset)


def owner_runs(request: Any, queryset: QuerySet) -> QuerySet:
    """``RUN_QUERYSET`` hook: the runs whose Context (or whose parent's) has ``owner_id`` = the user.

    Staff users see every run; anonymous users none.
    """
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return queryset.none()
    if user.is_staff:
        return queryset
    return queryset.filter(Q(**{f"data__{OWNER_FIELD}": user.pk}) | Q(**{f"parent__data__{OWNER_FIELD}": user.pk}))


def owner_start_kwargs(request: Any, workflow_name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``START_KWARGS`` hook: start runs with ``owner_id`` = the user, if the Context has that field.

    A caller cannot start a run on someone else's behalf: a given ``owner_id`` is replaced.
    """
    user = getattr(request, "user", None)
    if workflow_name in registry and user is not None and user.is_authenticated:
        if OWNER_FIELD in registry.get(workflow_name).context_model.model_fields:
            return {**kwargs, OWNER_FIELD: user.pk}
    return kwargs


class IsRunOwner(BasePermission):
    """Object permission: the run's Context ``owner_id`` is the user (staff always pass).

    An alternative to ``owner_runs`` that answers 403 instead of 404 for others' runs.
    """

    message = "This run belongs to another user."

    def has_object_permission(self, request: Any, view: Any, obj: Any) -> bool:
        user = request.user
        if user.is_staff:
            return True
        data = getattr(obj, "data", None) or {}
        return bool(user.is_authenticated and data.get(OWNER_FIELD) == user.pk)

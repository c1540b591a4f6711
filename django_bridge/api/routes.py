"""URL patterns of the API, shared by ``django_bridge.urls`` and the OpenAPI document."""

from __future__ import annotations

from typing import Any

from django.urls import path
from rest_framework.routers import SimpleRouter

__all__ = ["api_urlpatterns"]


def api_urlpatterns(*, include_generic_action: bool = True) -> list[Any]:
    from .views import ActionSchemaView, ActionsSchemaView, ActionView, RunViewSet

    router = SimpleRouter()
    router.register("runs", RunViewSet, basename="run")
    patterns = [
        *router.urls,
        path("actions-schema/", ActionsSchemaView.as_view(), name="actions-schema"),
        path("actions-schema/<str:name>/", ActionSchemaView.as_view(), name="action-schema"),
    ]
    if include_generic_action:
        patterns.append(path("actions/<str:name>/", ActionView.as_view(), name="action"))
    return patterns

"""Describing actions for form UIs (``GET actions-schema/``), and the OpenAPI document.

An action's description comes from its serializer (types, required, choices, help text,
limits, the format DRF answers ``OPTIONS`` with) and from its ``StepDisplayMetadata``
(field groups and field display configs)::

    {"name": "submit_review", "workflow": "expense_approval", "step": "await_review",
     "step_title": "await review", "url": "/statezero/actions/submit_review/",
     "run_field": "workflow_run_id", "response": "current_step_display",
     "display": {"display_title": "Review Expense", "field_groups": [...], ...},
     "fields": [{"name": "reviewer_notes", "type": "string", "required": true,
                 "max_length": 500, "label": "Reviewer notes", "allow_null": false,
                 "group": "Review Details", "display_config": null}, ...]}
"""

from __future__ import annotations

import json
import re
from typing import Any

from django.urls import NoReverseMatch, include, path, reverse
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from drf_spectacular.views import SpectacularAPIView
from rest_framework import serializers
from rest_framework.fields import empty
from rest_framework.metadata import SimpleMetadata
from rest_framework.utils.encoders import JSONEncoder

from facade._actions import ActionInfo, list_actions

__all__ = ["RUN_FIELD", "OpenAPISchemaView", "describe_action", "describe_field", "document"]

RUN_FIELD = "workflow_run_id"
EMPTY_DISPLAY: dict[str, Any] = {
    "display_title": "",
    "display_description": "",
    "field_groups": [],
    "field_display_configs": [],
}


def document(**kwargs: Any) -> Any:
    """``extend_schema`` that works whatever ``REST_FRAMEWORK['DEFAULT_SCHEMA_CLASS']`` says.

    drf-spectacular builds an operation's schema class on top of the method's ``schema``
    attribute, else on DEFAULT_SCHEMA_CLASS (DRF's own inspector unless the project points it
    at drf-spectacular); setting the attribute keeps this API documented in every project.
    """

    def decorate(fn: Any) -> Any:
        fn.schema = AutoSchema
        return extend_schema(**kwargs)(fn)

    return decorate


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, cls=JSONEncoder))


def describe_field(
    name: str, field: serializers.Field, *, group: str | None = None, config: dict[str, Any] | None = None
) -> dict[str, Any]:
    info: dict[str, Any] = {"name": name, **SimpleMetadata().get_field_info(field)}
    info["allow_null"] = bool(getattr(field, "allow_null", False))
    if getattr(field, "allow_blank", None) is not None:
        info["allow_blank"] = bool(field.allow_blank)
    default = getattr(field, "default", empty)
    if default is not empty and not callable(default):
        try:
            info["default"] = _jsonable(default)
        except (TypeError, ValueError):
            pass
    if isinstance(field, serializers.ListField) or getattr(field, "many", False):
        info["many"] = True
    info["group"] = group
    info["display_config"] = config
    if config and config.get("display_help_text") and not info.get("help_text"):
        info["help_text"] = config["display_help_text"]
    return _jsonable(info)


def describe_action(info: ActionInfo, request: Any = None) -> dict[str, Any]:
    display = {**EMPTY_DISPLAY, **(info.display or {})}
    groups = {n: g.get("display_title") or "" for g in display["field_groups"] for n in g.get("field_names") or []}
    configs = {c["field_name"]: c for c in display["field_display_configs"] if c.get("field_name")}
    serializer = info.serializer(context={"request": request})
    fields = [
        describe_field(name, field, group=groups.get(name), config=configs.get(name))
        for name, field in serializer.fields.items()
        if name != RUN_FIELD and not field.read_only and not isinstance(field, serializers.HiddenField)
    ]
    try:
        url = reverse("django_bridge:action", args=[info.name])
    except NoReverseMatch:
        url = None
    return {
        "name": info.name,
        "workflow": info.workflow,
        "step": info.step,
        "step_title": info.step_title,
        "url": url,
        "run_field": RUN_FIELD,
        "fields": fields,
        "display": display,
        "response": info.response_serializer.__name__ if info.response_serializer else "current_step_display",
    }


# ---------------------------------------------------------------------- OpenAPI
def _action_schema_view(info: ActionInfo) -> Any:
    """A subclass of ActionView for one action, so the schema shows its own request body."""
    from .serializers import DisplaySerializer, ErrorSerializer
    from .views import ActionView

    ok = info.response_serializer or DisplaySerializer

    @document(
        operation_id=f"action_{info.name}",
        summary=f"Submit action {info.name} ({info.workflow}.{info.step})",
        description=(
            f"Validates the body with {info.serializer.__name__}, submits it to the run as a Temporal "
            "Update and answers once the run blocks again. 200 also when the step failed for good "
            "(the display then says status 'failed')."
        ),
        tags=["actions"],
        request=info.serializer,
        responses={
            200: ok,
            202: OpenApiResponse(DisplaySerializer, description="The step still runs after ACTION_TIMEOUT."),
            400: OpenApiResponse(OpenApiTypes.OBJECT, description="Invalid fields: {field: [messages]}."),
            401: ErrorSerializer,
            403: ErrorSerializer,
            404: OpenApiResponse(ErrorSerializer, description="Unknown run (or outside RUN_QUERYSET)."),
            409: OpenApiResponse(ErrorSerializer, description="The run is not waiting at this action."),
            503: OpenApiResponse(ErrorSerializer, description="Temporal unreachable."),
        },
    )
    def post(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        return ActionView.post(self, request, *args, **kwargs)

    return type(
        f"Action_{info.name}", (ActionView,), {"action_name": info.name, "__doc__": ActionView.__doc__, "post": post}
    )


def schema_patterns() -> list[Any]:
    """The API's URL patterns as the OpenAPI document shows them: one path per action."""
    from .routes import api_urlpatterns

    per_action = [path(f"actions/{info.name}/", _action_schema_view(info).as_view()) for info in list_actions()]
    return api_urlpatterns(include_generic_action=False) + per_action


_LOOSE_DECIMAL = re.compile(r"^\^-\?\\d\{0,(\d+)\}\(\?:\\\.\\d\{0,(\d+)\}\)\?\$$")


def strict_decimal_patterns(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular's decimal pattern also matches "", "-" and "."; DRF refuses those.

    Rewrite it to require a digit, so the document describes what the API accepts.
    """

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            pattern = node.get("pattern")
            match = (
                _LOOSE_DECIMAL.match(pattern) if node.get("format") == "decimal" and isinstance(pattern, str) else None
            )
            if match:
                whole, frac = match.groups()
                if int(whole) == 0:
                    node["pattern"] = rf"^-?(?:0?\.\d{{1,{frac}}}|0)$"
                elif int(frac) == 0:
                    node["pattern"] = rf"^-?\d{{1,{whole}}}$"
                else:
                    node["pattern"] = rf"^-?(?:\d{{1,{whole}}}(?:\.\d{{0,{frac}}})?|\.\d{{1,{frac}}})$"
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(result)
    return result


class OpenAPISchemaView(SpectacularAPIView):
    """The OpenAPI 3 document of this API (runs, actions, actions-schema)."""

    custom_settings = {
        "TITLE": "Workflow runs and actions",
        "DESCRIPTION": "Runs of durable workflows and their human (action) steps. See docs/http-api.md.",
        "VERSION": "1",
        "COMPONENT_SPLIT_REQUEST": True,
        "POSTPROCESSING_HOOKS": [
            "drf_spectacular.hooks.postprocess_schema_enums",
            "django_bridge.api.schema.strict_decimal_patterns",
        ],
        "ENUM_NAME_OVERRIDES": {
            "WorkflowStatusEnum": "facade._status.WorkflowStatus",
            "StepStatusEnum": "facade._status.StepStatus",
        },
    }

    def get_permissions(self) -> list[Any]:
        from .permissions import default_permissions

        return default_permissions()

    def get_authenticators(self) -> list[Any]:
        from .views import authenticators

        return authenticators(super().get_authenticators)

    def get(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        # Mounted anywhere: the document's paths carry the prefix this view is served under.
        here = request.path_info
        suffix = kwargs.pop("suffix", "schema/")
        prefix = here[: -len(suffix)] if here.endswith(suffix) else "/"
        self.patterns = [path(prefix.lstrip("/"), include(schema_patterns()))]
        return super().get(request, *args, **kwargs)

"""The OpenAPI 3 document of the API: every route, and one operation per action.

Each action gets its own ``POST actions/<name>/`` operation whose request body is the
action's serializer, so clients can be generated from the document.
"""

from __future__ import annotations

import re
from typing import Any

from django.urls import include, path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse
from drf_spectacular.views import SpectacularAPIView

from facade.contract import ActionInfo, list_actions
from temporal_worker.timeline import EntryKind, Outcome, TimelineSource

from .describe import document
from .permissions import default_permissions
from .routes import api_urlpatterns
from .serializers import DisplaySerializer, ErrorSerializer, action_serializer
from .views import ActionView, authenticators

__all__ = ["OpenAPISchemaView", "schema_patterns", "strict_decimal_patterns"]


# ---------------------------------------------------------------------- OpenAPI
def _action_schema_view(info: ActionInfo) -> Any:
    """A subclass of ActionView for one action, so the schema shows its own request body."""
    ok = info.response_serializer or DisplaySerializer
    body = action_serializer(info)

    @document(
        operation_id=f"action_{info.name}",
        summary=f"Submit action {info.name} ({info.workflow}.{info.step})",
        description=(
            f"Validates the body with {body.__name__}, submits it to the run as a Temporal "
            "Update and answers once the run blocks again. 200 also when the step failed for good "
            "(the display then says status 'failed')."
        ),
        tags=["actions"],
        request=body,
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
        "DESCRIPTION": (
            "Runs of durable workflows and their human (action) steps. A run is the Django projection of a "
            "Temporal workflow: list and filter runs, start one by workflow name, signal, cancel or retry it, "
            "read its current_step_display and its timeline (from its Temporal history). An action step waits for a person: POST its fields with "
            "workflow_run_id to actions/{name}/; actions-schema/ describes each action's form. Errors answer "
            "{detail, error, workflow, run_id, step}: 400 invalid input, 404 unknown run or action, 409 the run's "
            "state does not allow the request, 503 Temporal unreachable."
        ),
        "VERSION": "1",
        "COMPONENT_SPLIT_REQUEST": True,
        "POSTPROCESSING_HOOKS": [
            "drf_spectacular.hooks.postprocess_schema_enums",
            "django_bridge.api.schema.strict_decimal_patterns",
        ],
        "ENUM_NAME_OVERRIDES": {
            # (value, label) pairs, as the serializers have them: drf-spectacular matches both.
            "WorkflowStatusEnum": "facade.WorkflowStatus.choices",
            "StepStatusEnum": "facade.StepStatus.choices",
            "EventStatusEnum": "django_bridge.models.Event.Status",
            "RunKindEnum": "django_bridge.models.WorkflowRun.Kind",
            # Value lists, as the serializers' choices are (an Enum class would compare its names too).
            "TimelineEntryKindEnum": [k.value for k in EntryKind],
            "TimelineOutcomeEnum": [o.value for o in Outcome],
            "TimelineSourceEnum": [s.value for s in TimelineSource],
        },
    }

    def get_permissions(self) -> list[Any]:
        return default_permissions()

    def get_authenticators(self) -> list[Any]:
        return authenticators(super().get_authenticators)

    def get(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        # Mounted anywhere: the document's paths carry the prefix this view is served under.
        here = request.path_info
        suffix = kwargs.pop("suffix", "schema/")
        prefix = here[: -len(suffix)] if here.endswith(suffix) else "/"
        self.patterns = [path(prefix.lstrip("/"), include(schema_patterns()))]
        return super().get(request, *args, **kwargs)

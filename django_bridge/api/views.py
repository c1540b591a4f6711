"""The HTTP API: runs (list, detail, start, signal, cancel, retry) and actions.

Status codes: 400 invalid input (per-field messages), 401/403 from DRF authentication and
permissions, 404 unknown run or action (or a run outside ``RUN_QUERYSET``), 409 a run whose
state does not allow the request (``RunStateError``), 503 Temporal or the database unreachable.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.utils.decorators import method_decorator
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.fields import empty
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.encoders import JSONEncoder
from rest_framework.views import APIView

from django_bridge.models import WorkflowRun
from facade import (
    AutomationError,
    DatabaseUnavailableError,
    InvalidInputError,
    RunStateError,
    TemporalUnavailableError,
    WorkflowStatus,
)
from facade.contract import ActionInfo, find_action, list_actions
from temporal_worker import outages, pollers
from temporal_worker.actions import submit_action
from temporal_worker.engine import engine
from temporal_worker.histories import run_timeline

from .conf import api_settings
from .describe import RUN_FIELD, describe_action, document
from .permissions import action_permissions, default_permissions, scoped_runs
from .serializers import (
    ActionSchemaListSerializer,
    ActionSchemaSerializer,
    CancelRequestedSerializer,
    CancelSerializer,
    DisplaySerializer,
    ErrorSerializer,
    ReachedSerializer,
    RunDetailSerializer,
    RunSerializer,
    SignalSerializer,
    StartRunSerializer,
    TimelineSerializer,
    action_serializer,
)

__all__ = ["ActionSchemaView", "ActionView", "ActionsSchemaView", "RunViewSet", "error_response"]

MAX_PK = 2**63 - 1
# How long a cancel request waits for Temporal to close the run before answering 202.
CANCEL_WAIT = 30.0


def authenticators(default: Callable[[], list[Any]]) -> list[Any]:
    classes = api_settings.authentication_classes()
    return default() if classes is None else [cls() for cls in classes]


def error_response(exc: AutomationError, *, display: dict[str, Any] | None = None) -> Response:
    if isinstance(exc, RunStateError):
        code = status.HTTP_409_CONFLICT
    elif isinstance(exc, (TemporalUnavailableError, DatabaseUnavailableError)):
        code = status.HTTP_503_SERVICE_UNAVAILABLE
    else:
        code = status.HTTP_400_BAD_REQUEST
    body: dict[str, Any] = {
        "detail": exc.message,
        "error": type(exc).__name__,
        "workflow": exc.workflow,
        "run_id": exc.run_id,
        "step": exc.step,
    }
    if display is not None:
        body["display"] = display
    return Response(body, status=code)


def as_pk(value: Any) -> int | None:
    """A primary key from user input, or None (SQLite overflows on huge integers)."""
    try:
        pk = int(value)
    except (TypeError, ValueError):
        return None
    return pk if 0 < pk <= MAX_PK else None


def reject_nul(value: Any, field: str) -> None:
    """JSON with NUL characters cannot be stored by every database (Postgres jsonb)."""
    if "\\u0000" in json.dumps(value, cls=JSONEncoder):
        raise ValidationError({field: ["NUL characters (\\u0000) are not allowed."]})


class AutomationAPIMixin:
    """Settings-driven authentication and permissions, and library errors as HTTP answers."""

    schema = AutoSchema()
    # JSON only: list and nested fields mean the same in every request, and the OpenAPI
    # document describes exactly that one body format.
    parser_classes = [JSONParser]

    def get_permissions(self) -> list[Any]:
        return default_permissions()

    def get_authenticators(self) -> list[Any]:
        return authenticators(super().get_authenticators)  # type: ignore[misc]

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, AutomationError):
            return error_response(exc)
        if outages.is_outage(exc):  # the API's own queries (listing runs, loading the session)
            outages.close_connections()
            return error_response(
                DatabaseUnavailableError(f"the database is unavailable ({str(exc).strip()}); nothing was changed.")
            )
        return super().handle_exception(exc)  # type: ignore[misc]


ERRORS = {401: ErrorSerializer, 403: ErrorSerializer}
INVALID = OpenApiResponse(
    OpenApiTypes.OBJECT,
    description="Invalid input: {field: [messages]} from validation, or {detail, error, ...} from the library.",
)
NOT_FOUND = {404: OpenApiResponse(ErrorSerializer, description="No such run (or not visible to you).")}
UNAVAILABLE = {503: OpenApiResponse(ErrorSerializer, description="Temporal unreachable.")}


# ---------------------------------------------------------------------- runs
class RunPagination(PageNumberPagination):
    page_size_query_param = "page_size"

    def get_page_size(self, request: Any) -> int:
        self.page_size = int(api_settings.PAGE_SIZE)
        self.max_page_size = int(api_settings.MAX_PAGE_SIZE)
        raw = request.query_params.get(self.page_size_query_param)
        if raw is not None and not (raw.isascii() and raw.isdigit() and int(raw) > 0):
            raise ValidationError({self.page_size_query_param: ["a positive integer."]})
        return super().get_page_size(request)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            parameter["schema"]["minimum"] = 1
        return parameters


_STATUS = "(?:" + "|".join(WorkflowStatus.values) + ")"
LIST_FILTERS = [
    OpenApiParameter(
        "status",
        str,
        description="Comma-separated statuses, e.g. suspended,waiting.",
        pattern=f"^(?:{_STATUS}(?:,{_STATUS})*)?$",
    ),
    OpenApiParameter("name", str, description="Workflow name."),
    OpenApiParameter("waiting_signal", str, description="Signal the run waits on."),
    OpenApiParameter("current_step", str, description="Step the run is at."),
    OpenApiParameter(
        "parent",
        str,
        description="Parent run id, or 'none' for top-level runs.",
        pattern="^(?:[0-9]{1,18}|none|null)?$",
    ),
]


@method_decorator(transaction.non_atomic_requests, name="dispatch")
class RunViewSet(AutomationAPIMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Workflow runs: the Django projection of what Temporal executes."""

    serializer_class = RunSerializer
    pagination_class = RunPagination
    lookup_value_regex = r"[^/]+"  # anything: a non-number answers a JSON 404, not Django's HTML one

    @document(
        summary="List runs",
        parameters=LIST_FILTERS,
        responses={200: RunSerializer(many=True), 400: INVALID, 404: ErrorSerializer, **ERRORS},
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @document(
        summary="One run, with its display and step history",
        responses={200: RunDetailSerializer, **ERRORS, **NOT_FOUND},
    )
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().retrieve(request, *args, **kwargs)

    def get_queryset(self) -> Any:
        queryset = scoped_runs(self.request, WorkflowRun.objects.select_related("event__content_type"))
        if getattr(self, "action", None) == "list":
            return self._filter(queryset)
        if getattr(self, "action", None) == "retrieve":
            return queryset.prefetch_related("step_executions", "children")
        return queryset

    def get_serializer_class(self) -> Any:
        return RunDetailSerializer if getattr(self, "action", None) == "retrieve" else RunSerializer

    def get_object(self) -> WorkflowRun:
        if as_pk(self.kwargs.get("pk")) is None:
            raise NotFound("No workflow run with this id.")
        return super().get_object()

    def _filter(self, queryset: Any) -> Any:
        params = self.request.query_params
        if any("\x00" in value for value in params.values()):
            return queryset.none()  # no name, step or signal holds a NUL (Postgres cannot even store one)
        if params.get("status"):
            wanted = [s.strip() for s in params["status"].split(",") if s.strip()]
            unknown = [s for s in wanted if s not in WorkflowStatus.values]
            if unknown:
                raise ValidationError(
                    {"status": [f"unknown status {', '.join(unknown)}; use {', '.join(WorkflowStatus.values)}."]}
                )
            queryset = queryset.filter(status__in=wanted)
        for key in ("name", "waiting_signal", "current_step"):
            if params.get(key):
                queryset = queryset.filter(**{key: params[key]})
        if params.get("parent"):
            if params["parent"].lower() in ("none", "null"):
                queryset = queryset.filter(parent__isnull=True)
            elif params["parent"].isascii() and params["parent"].isdigit():
                parent = as_pk(params["parent"])
                queryset = queryset.filter(parent_id=parent) if parent is not None else queryset.none()
            else:
                raise ValidationError({"parent": ["a run id or 'none'."]})
        return queryset

    def _detail(self, run: WorkflowRun, code: int = status.HTTP_200_OK) -> Response:
        fresh = WorkflowRun.objects.prefetch_related("step_executions", "children").get(pk=run.pk)
        return Response(RunDetailSerializer(fresh, context=self.get_serializer_context()).data, status=code)

    @document(
        summary="Start a workflow by name",
        request=StartRunSerializer,
        responses={201: RunDetailSerializer, 400: INVALID, **ERRORS, **UNAVAILABLE},
    )
    def create(self, request: Request) -> Response:
        s = StartRunSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        name, kwargs = s.validated_data["name"], dict(s.validated_data.get("kwargs") or {})
        reject_nul(kwargs, "kwargs")
        hook = api_settings.hook("START_KWARGS")
        if hook is not None:
            kwargs = hook(request, name, kwargs)
        run = engine.start(name, **kwargs)
        return self._detail(run, status.HTTP_201_CREATED)

    @document(
        summary="Signal this run",
        request=SignalSerializer,
        responses={200: ReachedSerializer, 400: INVALID, **ERRORS, **NOT_FOUND, **UNAVAILABLE},
    )
    @action(detail=True, methods=["post"])
    def signal(self, request: Request, pk: str | None = None) -> Response:
        run = self.get_object()
        s = SignalSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        reject_nul(s.validated_data.get("payload"), "payload")
        result = engine.send_signal(s.validated_data["signal"], s.validated_data.get("payload"), run_id=run.pk)
        return Response({"reached": result.reached, "ignored_keys": result.ignored_keys})

    @document(
        summary="Signal every run (visible to you) waiting on a signal",
        operation_id="runs_signal_all",
        request=SignalSerializer,
        responses={200: ReachedSerializer, 400: INVALID, **ERRORS, **UNAVAILABLE},
    )
    @action(detail=False, methods=["post"], url_path="signal", url_name="broadcast")
    def broadcast(self, request: Request) -> Response:
        s = SignalSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        name, payload = s.validated_data["signal"], s.validated_data.get("payload")
        reject_nul(payload, "payload")
        # Scoped by RUN_QUERYSET: only the runs this request may see, the payload checked against
        # all of them first, so a bad payload wakes none (semantics: "Merging data into the Context").
        scoped = None if api_settings.hook("RUN_QUERYSET") is None else self.get_queryset()
        result = engine.send_signal(name, payload, among=scoped)
        return Response({"reached": result.reached, "ignored_keys": result.ignored_keys})

    @document(
        summary="Cancel this run (and its active children)",
        request=CancelSerializer,
        responses={
            200: RunDetailSerializer,
            202: OpenApiResponse(
                CancelRequestedSerializer,
                description="Cancel requested: Temporal accepted it but has not closed the run yet (no worker polls its "
                "task queue, or it did not close within 30 s); `detail` says why.",
            ),
            409: ErrorSerializer,
            400: INVALID,
            **ERRORS,
            **NOT_FOUND,
            **UNAVAILABLE,
        },
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        run = self.get_object()
        s = CancelSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        wait = CANCEL_WAIT
        if engine.cancel(run.pk, s.validated_data.get("reason") or "", wait=wait):
            return self._detail(run)
        fresh = WorkflowRun.objects.prefetch_related("step_executions", "children").get(pk=run.pk)
        worker = pollers.run_queue_status(fresh.task_queue)
        why = worker.message if worker.no_worker else f"it did not close within {wait:g} s"
        data = dict(RunDetailSerializer(fresh, context=self.get_serializer_context()).data)
        data["detail"] = f"cancel requested; Temporal has not closed run {run.pk} yet: {why}"
        return Response(data, status=status.HTTP_202_ACCEPTED)

    @document(
        summary="Retry a failed or stuck run at its current step",
        request=None,
        responses={200: RunDetailSerializer, 409: ErrorSerializer, 400: INVALID, **ERRORS, **NOT_FOUND, **UNAVAILABLE},
    )
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, pk: str | None = None) -> Response:
        run = self.get_object()
        engine.retry(run.pk)
        return self._detail(run)

    @document(summary="The run's current_step_display", responses={200: DisplaySerializer, **ERRORS, **NOT_FOUND})
    @action(detail=True, methods=["get"])
    def display(self, request: Request, pk: str | None = None) -> Response:
        return Response(self.get_object().current_step_display)

    @document(
        summary="The run's timeline: every execution of a step with its outcome, from its Temporal history",
        description=(
            "Read from the workflow's Temporal history at each request (nothing cached that can change). "
            "With Temporal unreachable or the history gone it still answers 200: source 'step_history', the "
            "StepExecution rows, and a note saying why."
        ),
        responses={200: TimelineSerializer, **ERRORS, **NOT_FOUND},
    )
    @action(detail=True, methods=["get"])
    def timeline(self, request: Request, pk: str | None = None) -> Response:
        return Response(TimelineSerializer(run_timeline(self.get_object()).to_dict()).data)


# ---------------------------------------------------------------------- actions
def action_args(serializer: serializers.Serializer) -> dict[str, Any]:
    """The validated fields, minus the run id, in their JSON form (the step's keyword args)."""
    by_source = {f.source: f for f in serializer.fields.values() if f.source != "*"}
    args: dict[str, Any] = {}
    for key, value in serializer.validated_data.items():
        if key == RUN_FIELD:
            continue
        field = by_source.get(key)
        args[key] = field.to_representation(value) if field is not None and value is not None else value
    return json.loads(json.dumps(args, cls=JSONEncoder))


@method_decorator(transaction.non_atomic_requests, name="dispatch")
class ActionView(AutomationAPIMixin, APIView):
    """Submit an action: ``{"workflow_run_id": ..., <the serializer's fields>}``.

    The run must be waiting at this action. Answers with the run's new current_step_display
    (or the action's response_serializer applied to the run).
    """

    action_name: str | None = None  # set on the per-action classes of the OpenAPI document
    _info: ActionInfo | None

    def get_action(self) -> ActionInfo | None:
        if not hasattr(self, "_info"):
            try:
                self._info = find_action(self.kwargs.get("name") or self.action_name or "")
            except InvalidInputError:
                self._info = None
        return self._info

    def get_permissions(self) -> list[Any]:
        info = self.get_action()
        return action_permissions(info.permissions if info else ())

    def post(self, request: Request, name: str | None = None) -> Response:
        info = self.get_action()
        if info is None:
            raise NotFound(f"There is no action named {name or self.action_name!r}.")
        serializer = action_serializer(info)(data=request.data, context={"request": request, "view": self})
        valid = serializer.is_valid()
        errors: dict[str, Any] = {} if valid else dict(serializer.errors)
        if RUN_FIELD in serializer.fields:
            raw_run_id = serializer.validated_data.get(RUN_FIELD) if valid else None
        else:  # a serializer without workflow_run_id: the request still names the run
            raw = request.data.get(RUN_FIELD, empty) if hasattr(request.data, "get") else empty
            try:
                raw_run_id = serializers.IntegerField().run_validation(raw)
            except serializers.ValidationError as exc:
                errors[RUN_FIELD] = exc.detail
        if errors:
            return Response(errors, status=status.HTTP_400_BAD_REQUEST)
        run_id = as_pk(raw_run_id)
        run = scoped_runs(request, WorkflowRun.objects.all()).filter(pk=run_id).first() if run_id else None
        if run is None:
            raise NotFound(f"There is no workflow run with id {raw_run_id!r}.")
        self.check_object_permissions(request, run)
        try:
            result = submit_action(
                run.pk,
                info.name,
                action_args(serializer),
                timeout=float(api_settings.ACTION_TIMEOUT),
                user=request.user,  # a step's `request` parameter gets this user (its pk travels)
            )
        except RunStateError as exc:
            run.refresh_from_db()
            return error_response(exc, display=run.current_step_display)
        if not result.answered:
            return Response(result.display, status=status.HTTP_202_ACCEPTED)
        if info.response_serializer is not None:
            run.refresh_from_db()
            return Response(info.response_serializer(run, context={"request": request, "view": self}).data)
        return Response(result.display)


class ActionsSchemaView(AutomationAPIMixin, APIView):
    """The actions and how to render their forms."""

    @document(
        summary="Every action: its workflow, step, fields and display metadata",
        operation_id="actions_schema_list",
        parameters=[OpenApiParameter("workflow", str, description="Only this workflow's actions.")],
        responses={200: ActionSchemaListSerializer, **ERRORS},
        tags=["actions"],
    )
    def get(self, request: Request) -> Response:
        workflow = request.query_params.get("workflow")
        actions = [describe_action(i, request) for i in list_actions() if not workflow or i.workflow == workflow]
        return Response({"actions": actions})


class ActionSchemaView(AutomationAPIMixin, APIView):
    """One action and how to render its form."""

    @document(
        summary="One action: fields and display metadata",
        operation_id="action_schema_retrieve",
        responses={200: ActionSchemaSerializer, 404: ErrorSerializer, **ERRORS},
        tags=["actions"],
    )
    def get(self, request: Request, name: str) -> Response:
        try:
            info = find_action(name)
        except InvalidInputError as exc:
            raise NotFound(exc.message) from None
        return Response(describe_action(info, request))

"""The run page (``ui/runs/<id>/``), the runs page (``ui/``) and the API docs (``docs/``): HTML
shells around the API.

The pages render server-side only what they need to boot; ``static/django_bridge/run.js``
then reads the run from the API and refreshes itself while the run moves. Access follows the
API exactly: the same authentication, permission classes and ``RUN_QUERYSET`` scoping.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.templatetags.static import static
from django.urls import reverse
from rest_framework import exceptions

from facade import WorkflowStatus, registry
from temporal_worker import pollers

from .api.conf import api_settings
from .api.permissions import scoped_runs
from .api.views import RunViewSet
from .models import WorkflowRun

__all__ = ["api_docs", "run_page", "runs_page"]


def _api_view(request: HttpRequest, action: str, **kwargs: Any) -> RunViewSet:
    """A RunViewSet bound to this request, to reuse the API's access rules."""
    view = RunViewSet(action=action, action_map={"get": action}, kwargs=kwargs, format_kwarg=None, args=())
    view.request = view.initialize_request(request, **kwargs)
    view.headers = {}
    try:
        view.perform_authentication(view.request)
        view.check_permissions(view.request)
    except (exceptions.NotAuthenticated, exceptions.AuthenticationFailed, exceptions.PermissionDenied) as exc:
        if not view.request.user.is_authenticated:
            raise _LoginRequired() from exc
        raise PermissionDenied(str(exc.detail)) from exc
    return view


class _LoginRequired(Exception):
    pass


def _guard(request: HttpRequest, action: str, **kwargs: Any) -> RunViewSet | HttpResponse:
    try:
        return _api_view(request, action, **kwargs)
    except _LoginRequired:
        return redirect_to_login(request.get_full_path())


def run_page(request: HttpRequest, pk: int) -> HttpResponse:
    """One run: progress, the action form, waiting and completion screens, timeline, step history."""
    view = _guard(request, "retrieve", pk=str(pk))
    if isinstance(view, HttpResponse):
        return view
    try:
        run = view.get_object()
    except exceptions.NotFound:
        raise Http404(f"No workflow run {pk}.") from None
    except exceptions.PermissionDenied as exc:
        raise PermissionDenied(str(exc.detail)) from None
    config = {
        "run_id": run.pk,
        "run_url": reverse("django_bridge:run-detail", args=[run.pk]),
        "timeline_url": reverse("django_bridge:run-timeline", args=[run.pk]),
        "actions_schema_url": reverse("django_bridge:actions-schema"),
        "runs_page_url": reverse("django_bridge:runs-page"),
        "poll_ms": int(api_settings.PAGE_POLL_MS),
    }
    # Whether a worker polls the run's task queue: shown at once, then kept current by run.js.
    worker = None if run.is_finished else pollers.run_queue_status(run.task_queue)
    return render(request, "django_bridge/run.html", {"run": run, "config": config, "worker": worker})


def runs_page(request: HttpRequest) -> HttpResponse:
    """Recent runs with links to their pages, and a form to start a workflow."""
    view = _guard(request, "list")
    if isinstance(view, HttpResponse):
        return view
    try:
        runs = view.get_queryset()  # the API's filters: ?status=, ?name=, ...
    except exceptions.ValidationError:
        runs = scoped_runs(view.request, WorkflowRun.objects.all())
    runs = runs.order_by("-created_at", "-id")
    status = request.GET.get("status") or ""
    config = {
        "runs_url": reverse("django_bridge:run-list"),
        "run_page_url": reverse("django_bridge:run-page", args=[0]),
    }
    return render(
        request,
        "django_bridge/runs.html",
        {
            "runs": runs[:100],
            "workflows": registry.names(),
            "status": status,
            "statuses": WorkflowStatus.values,
            "config": config,
            # Runs started here go to AUTOMATION["TASK_QUEUE"]: say so when no worker polls it.
            "worker": pollers.safe_queue_status(pollers.configured_queue()),
        },
    )


# Swagger UI's files, from drf-spectacular-sidecar when it is an installed app (no network
# needed: the page works offline), else from drf-spectacular's SWAGGER_UI_DIST (a CDN by default).
SWAGGER_FILES = ("swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js")


def _swagger_assets() -> dict[str, str]:
    from drf_spectacular.settings import spectacular_settings

    dist = spectacular_settings.SWAGGER_UI_DIST
    if dist == "SIDECAR" or apps.is_installed("drf_spectacular_sidecar"):
        base = static("drf_spectacular_sidecar/swagger-ui-dist").rstrip("/")
    else:
        base = str(dist).rstrip("/")
    return {name.split(".")[0].replace("-", "_"): f"{base}/{name}" for name in SWAGGER_FILES}


def _csrf_header() -> str:
    """The header Django reads the CSRF token from (``HTTP_X_CSRFTOKEN`` is sent as ``X-CSRFToken``)."""
    name = settings.CSRF_HEADER_NAME
    return name.removeprefix("HTTP_").replace("_", "-")


def api_docs(request: HttpRequest) -> HttpResponse:
    """The OpenAPI document (``schema/``) in Swagger UI, with links to the raw document.

    Who may read it is who may read the schema: the API's authentication and permissions.
    Without Swagger UI's files (offline, and drf-spectacular-sidecar not installed) the page
    still answers, saying so, and the raw document stays one link away.
    """
    view = _guard(request, "list")
    if isinstance(view, HttpResponse):
        return view
    schema_url = reverse("django_bridge:schema")
    return render(
        request,
        "django_bridge/api_docs.html",
        {
            "assets": _swagger_assets(),
            "schema_url": schema_url,
            "config": {"schema_url": f"{schema_url}?format=json", "csrf_header": _csrf_header()},
        },
    )

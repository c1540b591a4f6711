"""OpenTelemetry tracing with ``AUTOMATION["TRACING"] = True``, through ``temporalio.contrib.opentelemetry``.

The SDK's ``TracingInterceptor`` on the client makes spans for what the client does (start a
workflow, signal it) and carries the current span in the Temporal headers; the worker, built
from that client, continues the trace in the workflow and each activity (``RunActivity:...``).
This module adds what the library knows: a span per step with the workflow, the run and the
step as attributes. The engine's calls run on the background event loop with the caller's
context variables (``client.run_sync``), so the span of a Django request that starts or
signals a run is the parent of the start (the root of the run's trace) or of the signal.

Spans go to the global tracer provider: the project configures OpenTelemetry (its SDK and an
exporter) as usual. With tracing off nothing here imports OpenTelemetry.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from django_bridge.conf import automation_settings

__all__ = ["INSTALL_HINT", "client_interceptors", "enabled", "missing", "step_span"]

INSTALL_HINT = "pip install 'django-temporal-automation[tracing]' (opentelemetry-api and opentelemetry-sdk)"

TRACER_NAME = "django_temporal_automation"

_NO_SPAN = nullcontext()  # reusable: what step_span answers with tracing off


def enabled() -> bool:
    return bool(automation_settings.TRACING)


def missing() -> str | None:
    """Why tracing cannot run here (OpenTelemetry is not installed), or None."""
    try:
        import opentelemetry.trace  # noqa: F401
        from temporalio.contrib.opentelemetry import TracingInterceptor  # noqa: F401
    except ImportError as exc:
        return f"AUTOMATION['TRACING'] is on but OpenTelemetry cannot be imported ({exc})"
    return None


def client_interceptors() -> list[Any]:
    """The interceptors every client of this process gets: the SDK's ``TracingInterceptor`` when tracing is on."""
    if not enabled():
        return []
    problem = missing()
    if problem:
        raise ImproperlyConfigured(f"{problem}: {INSTALL_HINT}, or set AUTOMATION['TRACING'] = False.")
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor()]


def step_span(
    workflow: str, run_id: int, step: str, *, seq: int, attempt: int, kind: str = "step"
) -> AbstractContextManager[Any]:
    """A span around one attempt of a step (a child of the SDK's ``RunActivity`` span)."""
    if not enabled():
        return _NO_SPAN
    from opentelemetry import trace

    attributes = {
        "automation.workflow": workflow,
        "automation.run_id": run_id,
        "automation.step": step,
        "automation.seq": seq,
        "automation.attempt": attempt,
    }
    return trace.get_tracer(TRACER_NAME).start_as_current_span(f"{kind} {workflow}.{step}", attributes=attributes)

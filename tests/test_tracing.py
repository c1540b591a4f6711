"""OpenTelemetry tracing (``AUTOMATION["TRACING"]``): a span per step, joined to the trace of the caller.

A span around ``engine.start`` stands for the Django request (what opentelemetry-instrumentation-
django makes); the run's steps must be spans of its trace, below it, carrying the workflow, the
run and the step. A signal sent inside another request span is linked from the run's
``HandleSignal`` span. Spans are collected in memory from the global tracer provider.
"""

from __future__ import annotations

import pytest
from django.core.checks import Error
from django.test import override_settings

pytest.importorskip("opentelemetry.sdk", reason="the tracing extra: pip install 'django-temporal-automation[tracing]'")

from opentelemetry import trace  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

from django_bridge.checks import check_settings  # noqa: E402
from django_bridge.conf import automation_settings  # noqa: E402
from facade import engine  # noqa: E402
from facade.testing import TemporalTestEnvironment, wait_for  # noqa: E402
from temporal_worker import tracing  # noqa: E402

_exporter: InMemorySpanExporter | None = None


def span_exporter() -> InMemorySpanExporter:
    """The process's tracer provider, exporting to memory (a provider can be set once per process)."""
    global _exporter
    if _exporter is None:
        _exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_exporter))
        trace.set_tracer_provider(provider)
    return _exporter


@pytest.fixture
def traced(django_db_setup, transactional_db):
    """A server and worker whose client (engine's) carries the tracing interceptor."""
    exporter = span_exporter()
    exporter.clear()
    saved = automation_settings.overrides.get("TRACING")
    automation_settings.overrides["TRACING"] = True
    try:
        with TemporalTestEnvironment() as env:
            yield env, exporter
    finally:
        automation_settings.overrides.pop("TRACING", None)
        if saved is not None:
            automation_settings.overrides["TRACING"] = saved


def ancestors(span, spans) -> list[str]:
    """The names of the spans above ``span``, nearest first."""
    by_id = {s.context.span_id: s for s in spans}
    names = []
    parent = span.parent
    while parent is not None and parent.span_id in by_id:
        above = by_id[parent.span_id]
        names.append(above.name)
        parent = above.parent
    return names


def test_a_span_per_step_below_the_request_that_started_the_run(traced):
    env, exporter = traced
    tracer = trace.get_tracer("tests")
    with tracer.start_as_current_span("POST /runs/") as request:
        run = engine.start("order_fulfillment", order_id=7)
    env.wait_until_finished(run)
    assert run.status == "completed"

    def step_spans() -> list:
        found = [s for s in exporter.get_finished_spans() if (s.attributes or {}).get("automation.run_id") == run.pk]
        return found if len(found) == 3 else []

    steps = wait_for(step_spans, timeout=10, message="three step spans were never exported")
    spans = exporter.get_finished_spans()
    assert sorted(s.attributes["automation.step"] for s in steps) == [
        "confirm_payment",
        "reserve_inventory",
        "ship_order",
    ]
    for span in steps:
        assert span.name == f"step order_fulfillment.{span.attributes['automation.step']}"
        assert span.attributes["automation.workflow"] == "order_fulfillment"
        assert span.attributes["automation.attempt"] == 1
        assert span.context.trace_id == request.get_span_context().trace_id
        activity = f"order_fulfillment.{span.attributes['automation.step']}"
        # step <- the SDK's activity span <- the workflow scheduling it <- the client's start <- the request
        assert ancestors(span, spans) == [
            f"RunActivity:{activity}",
            f"StartActivity:{activity}",
            "StartWorkflow:order_fulfillment",
            "POST /runs/",
        ]


def test_a_run_started_outside_any_span_is_the_root_of_its_own_trace(traced):
    env, exporter = traced
    run = engine.start("user_onboarding", user_id=3)  # a script, the CLI: no current span
    env.wait_until_finished(run)
    found = wait_for(
        lambda: [s for s in exporter.get_finished_spans() if (s.attributes or {}).get("automation.run_id") == run.pk],
        timeout=10,
        message="the step span was never exported",
    )
    spans = exporter.get_finished_spans()
    assert [s.name for s in found] == ["step user_onboarding.send_welcome_email"]
    assert ancestors(found[0], spans) == [
        "RunActivity:user_onboarding.send_welcome_email",
        "StartActivity:user_onboarding.send_welcome_email",
        "StartWorkflow:user_onboarding",
    ]
    start = next(s for s in spans if s.name == "StartWorkflow:user_onboarding")
    assert start.parent is None


def test_a_signal_sent_in_a_request_is_linked_from_the_run(traced):
    env, exporter = traced
    tracer = trace.get_tracer("tests")
    with tracer.start_as_current_span("POST /runs/"):
        run = engine.start("signal_demo")
    env.wait_until(run, lambda r: r.waiting_signal == "go")
    with tracer.start_as_current_span("POST /signals/go/") as request:
        assert engine.signal("go", {"who": "traced"}, run_id=run.pk) == 1
    env.wait_until_finished(run)

    spans = exporter.get_finished_spans()
    sent = next(s for s in spans if s.name == "SignalWorkflow:go")
    assert sent.parent.span_id == request.get_span_context().span_id
    handled = wait_for(
        lambda: [s for s in exporter.get_finished_spans() if s.name == "HandleSignal:go"],
        timeout=10,
        message="the run never handled the signal in a span",
    )
    assert [link.context.span_id for link in handled[0].links] == [sent.context.span_id]
    finish = wait_for(
        lambda: [s for s in exporter.get_finished_spans() if s.name == "step signal_demo.finish"],
        timeout=10,
        message="the step after the signal has no span",
    )
    assert finish[0].attributes["automation.run_id"] == run.pk


def test_tracing_off_adds_no_interceptor_and_no_span():
    assert not tracing.enabled()
    assert tracing.client_interceptors() == []
    with tracing.step_span("w", 1, "s", seq=1, attempt=1):
        assert not trace.get_current_span().get_span_context().is_valid


def test_tracing_without_opentelemetry_is_a_check_error(monkeypatch):
    monkeypatch.setattr(tracing, "missing", lambda: "AUTOMATION['TRACING'] is on but OpenTelemetry cannot be imported")
    with override_settings(AUTOMATION={"TRACING": True}):
        errors = [e for e in check_settings() if isinstance(e, Error)]
        with pytest.raises(Exception, match=r"pip install 'django-temporal-automation\[tracing\]'"):
            tracing.client_interceptors()
    assert [e.id for e in errors] == ["automation.E031"]
    assert "pip install 'django-temporal-automation[tracing]'" in errors[0].hint


def test_a_run_an_event_starts_joins_the_events_trace(traced, tmp_path, monkeypatch):
    """The event's workflow is started by the dispatch thread after the commit (no request span
    there); the run it creates is started from its load activity, so the run's steps are spans of
    the event's trace, below that activity."""
    import datetime as dt

    from django.utils import timezone

    from django_bridge.models import WorkflowRun
    from tests.testapp import event_automations
    from tests.testapp.models import Reservation

    monkeypatch.setenv(event_automations.LOG_ENV, str(tmp_path / "events.log"))
    env, exporter = traced
    reservation = Reservation.objects.create(checkin_at=timezone.now() - dt.timedelta(minutes=1), status="confirmed")
    run = wait_for(
        lambda: WorkflowRun.objects.filter(event__entity_id=str(reservation.pk), name="CheckinAtTime").first(),
        timeout=30,
        message="the event's workflow created no CheckinAtTime run",
    )
    assert env.wait_until_finished(run).status == "completed"

    def chain() -> tuple | None:
        # The spans above the step end after it (the activity's once it returned, the event's
        # load once the run was started): wait for the whole chain to be exported.
        spans = exporter.get_finished_spans()
        steps = [s for s in spans if (s.attributes or {}).get("automation.run_id") == run.pk]
        if len(steps) != 1 or not ancestors(steps[0], spans)[-1:] == ["SignalWithStartWorkflow:automation.event"]:
            return None
        return steps, spans

    steps, spans = wait_for(chain, timeout=10, message="the step's span and the spans above it were never exported")
    assert [s.name for s in steps] == ["step CheckinAtTime.run"]
    assert ancestors(steps[0], spans)[:3] == [
        "RunActivity:CheckinAtTime.run",
        "StartActivity:CheckinAtTime.run",
        "StartWorkflow:CheckinAtTime",
    ]
    # ...and above the run's start, the event workflow's load activity and the event's own (signal-with-)start.
    above = ancestors(steps[0], spans)[3:]
    assert above[:2] == ["RunActivity:automation.event.load", "StartActivity:automation.event.load"]
    assert above[-1] == "SignalWithStartWorkflow:automation.event"
    event_start = next(
        s
        for s in spans
        if s.name == "SignalWithStartWorkflow:automation.event" and s.context.trace_id == steps[0].context.trace_id
    )
    assert event_start.parent is None

"""A page to start the example workflows, send their signals, and watch the runs."""

from __future__ import annotations

import random

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from django_ai.automation.workflows.core import engine
from django_ai.automation.workflows.models import WorkflowRun
from facade import AutomationError

# What the start buttons pass to engine.start (each workflow's create_context arguments).
EXAMPLES: dict[str, tuple[str, dict]] = {
    "user_onboarding": ("Quick Start 1: one step", {"user_id": 1}),
    "order_fulfillment": ("Quick Start 2: three steps with goto", {"order_id": 1}),
    "order_routing": ("Branching: orders over 1000 need approval", {"order_total": 1500.0}),
    "reminders": ("Sleep: a reminder every 24 hours, then escalate", {}),
    "approval": ("Signals: waits for manager_approval, then user_response (7 days)", {}),
    "gift_order": ("Subflow + confirm button: gift wrapping, then confirm on the run page", {"order_id": 1}),
}

SIGNALS = ("manager_approval", "user_response")


def home(request: HttpRequest) -> HttpResponse:
    runs = list(WorkflowRun.objects.filter(parent__isnull=True)[:50])
    return render(
        request,
        "shop/home.html",
        {
            "runs": runs,
            "examples": [(name, label, kwargs) for name, (label, kwargs) in EXAMPLES.items()],
            "signals": SIGNALS,
        },
    )


@require_POST
def start_run(request: HttpRequest) -> HttpResponse:
    name = request.POST.get("workflow", "")
    if name not in EXAMPLES:
        messages.error(request, f"Unknown example workflow {name!r}.")
        return redirect("home")
    kwargs = dict(EXAMPLES[name][1])
    if "order_id" in kwargs or "user_id" in kwargs:
        kwargs = {key: random.randint(1, 9999) for key in kwargs}
    try:
        run = engine.start(name, **kwargs)
    except AutomationError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Started {name} run {run.pk} with {kwargs or 'no arguments'}.")
    return redirect("home")


@require_POST
def send_signal(request: HttpRequest) -> HttpResponse:
    name = request.POST.get("signal", "")
    if name not in SIGNALS:
        messages.error(request, f"Unknown signal {name!r}.")
        return redirect("home")
    if name == "manager_approval":
        payload = {"approved": request.POST.get("approved") == "on", "notes": request.POST.get("notes", "")}
    else:
        payload = {"answer": request.POST.get("answer", "")}
    try:
        reached = engine.signal(name, payload)
    except AutomationError as exc:
        messages.error(request, str(exc))
    else:
        messages.info(request, f"Signal {name} reached {reached} waiting run{'s' if reached != 1 else ''}.")
    return redirect("home")

"""A page to start the example workflows, send their signals, and watch the runs.

The runs table is a partial (``runs/table/``) that the page fetches again every two seconds,
so runs move on screen without a reload.
"""

from __future__ import annotations

import json
import random
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from django_ai.automation.workflows.core import engine
from django_ai.automation.workflows.models import WorkflowRun, WorkflowStatus
from facade import AutomationError

# What the start buttons pass to engine.start (each workflow's create_context arguments).
EXAMPLES: dict[str, tuple[str, dict]] = {
    "user_onboarding": ("Quick Start 1: one step", {"user_id": 1}),
    "order_fulfillment": ("Quick Start 2: three steps with goto", {"order_id": 1}),
    "order_routing": ("Branching: orders over 1000 need approval", {"order_total": 1500.0}),
    "reminders": ("Sleep: a reminder every 24 hours, then escalate", {}),
    "approval": ("Signals: waits for manager_approval, then user_response (7 days)", {}),
    "gift_order": ("Subflow + confirm button: gift wrapping, then confirm on the run page", {"order_id": 1}),
    "expense_approval": ("Human step: a review form (the HTTP action submit_review) on the run page", {}),
}

SIGNALS = ("manager_approval", "user_response")


REFRESH_MS = 2000


def run_rows() -> list[dict[str, Any]]:
    """The runs table: top-level runs, newest first, each with its Context."""
    rows = []
    for run in WorkflowRun.objects.filter(parent__isnull=True)[:50]:
        display = run.current_step_display
        waiting_for = run.waiting_signal
        action = display.get("action_name") if run.status == WorkflowStatus.SUSPENDED else None
        rows.append(
            {
                "run": run,
                "context": json.dumps(run.data, ensure_ascii=False),
                # A failed run's error; a cancelled run's reason (not an error: someone asked for it).
                "error": run.error if run.status == WorkflowStatus.FAILED else "",
                "reason": run.error if run.status == WorkflowStatus.CANCELLED and run.error != "cancelled" else "",
                "waiting_for": waiting_for,
                "action": action,
                "page": reverse("django_bridge:run-page", args=[run.pk]),
            }
        )
    return rows


def home(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "shop/home.html",
        {
            "rows": run_rows(),
            "refresh_ms": REFRESH_MS,
            "examples": [(name, label, kwargs) for name, (label, kwargs) in EXAMPLES.items()],
            "signals": SIGNALS,
        },
    )


def runs_table(request: HttpRequest) -> HttpResponse:
    """The rows of the runs table alone: what the home page fetches to refresh itself."""
    return render(request, "shop/_runs.html", {"rows": run_rows()})


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
        return redirect("home")
    messages.success(request, f"Started {name} run {run.pk} with {kwargs or 'no arguments'}.")
    if name == "expense_approval":
        # Its first screen is a form: open the run page, where the person fills it in.
        return redirect("django_bridge:run-page", pk=run.pk)
    return redirect("home")


@require_POST
def cancel_run(request: HttpRequest) -> HttpResponse:
    try:
        run_id = int(request.POST.get("run", ""))
        # Wait a little for Temporal to close it; the live table shows the rest.
        engine.cancel(run_id, reason="cancelled from the example's home page", wait=5)
    except ValueError:
        messages.error(request, "Which run? The form sent no run id.")
    except AutomationError as exc:
        messages.error(request, str(exc))
    else:
        messages.info(request, f"Run {run_id}: cancel requested.")
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

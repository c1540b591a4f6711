"""The model events page: reservations, their Event rows, and the runs their events started."""

from __future__ import annotations

import datetime as dt

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from django_ai.automation.events.models import Event
from django_ai.automation.workflows.models import WorkflowRun

from .models import GuestMessage, Reservation


def events_page(request: HttpRequest) -> HttpResponse:
    reservations = list(Reservation.objects.all()[:20])
    rows = []
    for reservation in reservations:
        events = Event.objects.filter(entity_id=str(reservation.pk), content_type__model="reservation")
        runs = WorkflowRun.objects.filter(event__in=events).prefetch_related("claims")
        messages_ = list(GuestMessage.objects.filter(reservation=reservation)[:5])
        rows.append((reservation, list(events), list(runs), messages_))
    return render(request, "shop/events.html", {"rows": rows, "now": timezone.now()})


@require_POST
def reservation_create(request: HttpRequest) -> HttpResponse:
    minutes = int(request.POST.get("minutes") or 2)
    checkin = timezone.now() + dt.timedelta(minutes=minutes)
    reservation = Reservation.objects.create(
        guest=request.POST.get("guest") or "Ada", checkin_at=checkin, checkout_at=checkin + dt.timedelta(minutes=2)
    )
    messages.success(request, f"Reservation {reservation.pk} created, check-in in {minutes} minutes (pending).")
    return redirect("events")


@require_POST
def reservation_change(request: HttpRequest, pk: int) -> HttpResponse:
    """confirm / unconfirm / upload docs / move check-in / delete: each a plain model save."""
    reservation = get_object_or_404(Reservation, pk=pk)
    action = request.POST.get("action")
    if action == "confirm":
        reservation.status = "confirmed"
    elif action == "unconfirm":
        reservation.status = "pending"
    elif action == "docs":
        reservation.docs_uploaded = True
    elif action == "later":
        reservation.checkin_at += dt.timedelta(minutes=2)
        if reservation.checkout_at:
            reservation.checkout_at += dt.timedelta(minutes=2)
    elif action == "message":
        GuestMessage.objects.create(reservation=reservation, text=request.POST.get("text") or "Is there parking?")
        messages.info(request, f"Reservation {pk}: the guest sent a message.")
        return redirect("events")
    elif action == "delete":
        reservation.delete()
        messages.info(request, f"Reservation {pk} deleted: its pending events are cancelled.")
        return redirect("events")
    else:
        messages.error(request, f"Unknown action {action!r}.")
        return redirect("events")
    reservation.save()
    messages.info(request, f"Reservation {pk}: {action}.")
    return redirect("events")

"""The admin: a read-only view of the projection, with operations that go through the engine.

The rows mirror what Temporal executes, so nothing engine-owned is edited here: runs are
cancelled, retried and signalled through ``engine`` (admin actions), and deleting a run ends its
Temporal workflow first.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.actions import delete_selected as django_delete_selected
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html, format_html_join

from facade import AutomationError, TemporalUnavailableError
from temporal_worker import pollers
from temporal_worker.engine import engine
from temporal_worker.histories import run_timeline

from .models import AgentRoute, Event, EventClaim, StepExecution, WorkflowRun, WorkflowStatus

# How long the cancel action waits for each run to close before saying "cancel requested".
CANCEL_WAIT = 10.0
# The task queues the run list checks for a worker (each is a describe call every few seconds).
MAX_QUEUES = 5


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows the engine and the worker own: viewable, never added or edited by hand."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class StepExecutionInline(admin.TabularInline):
    model = StepExecution
    extra = 0
    can_delete = False
    fields = ("seq", "step_name", "status", "error", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # no "Add another": history rows are written by the worker

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class EventClaimInline(admin.TabularInline):
    """The claims a run holds (released when it ends)."""

    model = EventClaim
    extra = 0
    can_delete = False
    fields = ("event_name", "match", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class AgentRouteInline(EventClaimInline):
    """An agent instance: which events reach it, with its Context's values put in."""

    model = AgentRoute  # type: ignore[assignment]
    fields = ("event_name", "handler", "match")  # type: ignore[assignment]
    readonly_fields = fields  # type: ignore[assignment]
    verbose_name = "event that reaches it"
    verbose_name_plural = "events that reach it (agent instance)"


class SignalForm(forms.Form):
    signal = forms.CharField(max_length=255, help_text="The signal name, e.g. manager_approval (events: event:<name>).")
    payload = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 6, "cols": 60}),
        help_text='Context fields to merge, as a JSON object: {"approved": true}. Empty: none.',
    )

    def clean_payload(self) -> dict[str, Any] | None:
        raw = (self.cleaned_data.get("payload") or "").strip()
        if not raw:
            return None
        try:
            payload = json.loads(raw)
        except ValueError as exc:
            raise forms.ValidationError(f'Not valid JSON ({exc}); write an object like {{"approved": true}}.') from None
        if not isinstance(payload, dict):
            raise forms.ValidationError(f"Write a JSON object of Context fields, not {type(payload).__name__}.")
        return payload


@admin.register(WorkflowRun)
class WorkflowRunAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "name",
        "kind",
        "status",
        "current_step",
        "progress_percent",
        "waiting_signal",
        "created_at",
        "temporal_link",
    )
    list_filter = ("kind", "status", "name")
    search_fields = ("name", "temporal_workflow_id", "current_step", "waiting_signal")
    readonly_fields = ("worker", "temporal_link", "event_link", "created_at", "updated_at", "finished_at", "timeline")
    inlines = [StepExecutionInline, EventClaimInline, AgentRouteInline]
    actions = ["cancel_runs", "retry_runs", "signal_runs", "delete_selected"]

    # Running the engine's operations needs the change permission on runs (there is nothing to
    # edit by hand, so that is what "change" means here).
    def has_operate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.change_{self.opts.model_name}")

    @admin.action(description="Cancel the selected runs", permissions=["operate"])
    def cancel_runs(self, request: HttpRequest, queryset: Any) -> None:
        reason = f"cancelled in the admin by {request.user.get_username()}"

        def cancel(run: WorkflowRun) -> bool:
            if run.is_finished:
                return False
            if not engine.cancel(run.pk, reason, wait=CANCEL_WAIT):
                # Temporal has the request; the run is cancelled when a worker carries it out.
                worker = pollers.run_queue_status(run.task_queue)
                why = worker.message if worker.no_worker else f"it did not close within {CANCEL_WAIT:g} s"
                self.message_user(
                    request, f"run {run.pk}: cancel requested; Temporal has not closed it yet: {why}", messages.WARNING
                )
                return False
            return True

        self._each(request, queryset, "Cancelled", cancel)

    @admin.action(description="Retry the selected runs at their current step", permissions=["operate"])
    def retry_runs(self, request: HttpRequest, queryset: Any) -> None:
        self._each(request, queryset, "Retried", lambda run: engine.retry(run.pk))
        self._warn_about_workers(request, queryset)

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        if request.method == "GET":
            self._warn_about_workers(request, self.get_queryset(request))
        return super().changelist_view(request, extra_context)

    def _warn_about_workers(self, request: HttpRequest, runs: Any) -> None:
        """A warning for each task queue that unfinished ``runs`` are on and no worker polls."""
        unfinished = runs.exclude(status__in=WorkflowStatus.finished()).order_by()
        queues = unfinished.values_list("task_queue", flat=True).distinct()[:MAX_QUEUES]
        for queue in sorted({q or pollers.configured_queue() for q in queues}):
            worker = pollers.safe_queue_status(queue)
            if worker.needs_attention:
                text = f"Runs on task queue {queue!r} do not move: {worker.message}"
                self.message_user(request, text, messages.WARNING)

    def _each(self, request: HttpRequest, queryset: Any, done: str, operate: Any) -> None:
        count = 0
        for run in queryset:
            try:
                if operate(run) is not False:
                    count += 1
            except AutomationError as exc:
                self.message_user(request, f"run {run.pk}: {exc.message}", messages.ERROR)
                if isinstance(exc, TemporalUnavailableError):
                    break  # the next ones would fail the same way
        if count:
            self.message_user(request, f"{done} {count} run{'s' if count != 1 else ''}.", messages.SUCCESS)

    @admin.action(description="Send a signal to the selected runs…", permissions=["operate"])
    def signal_runs(self, request: HttpRequest, queryset: Any) -> HttpResponse | None:
        """An intermediate page: the signal and its JSON payload, checked against each run's Context."""
        waiting = sorted({s for s in queryset.values_list("waiting_signal", flat=True) if s})
        applying = "apply" in request.POST
        form = SignalForm(
            request.POST if applying else None, initial={"signal": waiting[0] if len(waiting) == 1 else ""}
        )
        if applying and form.is_valid():
            try:
                # The engine's own checks: the name, the payload against every reached run's
                # Context (all or none), unknown keys as AUTOMATION["UNKNOWN_SIGNAL_KEYS"] says.
                result = engine.send_signal(form.cleaned_data["signal"], form.cleaned_data["payload"], among=queryset)
            except AutomationError as exc:
                form.add_error(None, exc.message)
            else:
                selected = queryset.count()
                text = (
                    f"Signal {form.cleaned_data['signal']!r} reached {result.reached} of the {selected} selected runs"
                )
                if result.ignored_keys:
                    text += f"; ignored payload keys (not Context fields): {', '.join(result.ignored_keys)}"
                level = messages.SUCCESS if result.reached else messages.WARNING
                self.message_user(request, text, level)
                return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Send a signal",
            "opts": self.opts,
            "form": form,
            "runs": queryset,
            "waiting": waiting,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "django_bridge/admin/signal_runs.html", context)

    # ------------------------------------------------------------------ deleting ends the workflow
    @admin.action(description="Delete the selected runs (ends their Temporal workflows)", permissions=["delete"])
    def delete_selected(self, request: HttpRequest, queryset: Any) -> HttpResponse | None:
        try:
            return django_delete_selected(self, request, queryset)
        except TemporalUnavailableError as exc:
            self.message_user(request, f"Nothing was deleted: {exc.message}", messages.ERROR)
            return None

    def delete_view(self, request: HttpRequest, object_id: str, extra_context: Any = None) -> HttpResponse:
        try:
            return super().delete_view(request, object_id, extra_context)
        except TemporalUnavailableError as exc:  # raised before the row went (the transaction rolled back)
            self.message_user(request, f"Nothing was deleted: {exc.message}", messages.ERROR)
            return HttpResponseRedirect(request.path)

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        # History rows cannot be deleted on their own, but they go with their run.
        perms_needed.discard(StepExecution._meta.verbose_name)
        return deleted, counts, perms_needed, protected

    def delete_model(self, request: HttpRequest, obj: WorkflowRun) -> None:
        self._end_workflows(request, [obj])
        super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        self._end_workflows(request, list(queryset))
        super().delete_queryset(request, queryset)

    def _end_workflows(self, request: HttpRequest, runs: list[WorkflowRun]) -> None:
        """Ask Temporal to end each run's workflow (and its subflows') before its row goes."""
        reason = f"run deleted in the Django admin by {request.user.get_username()}"
        for run in runs:
            engine.terminate(run.pk, reason)  # leaves closed workflows as they are

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        """The run's fields, then its timeline in a section of its own (read from Temporal)."""
        fields = [f for f in self.get_fields(request, obj) if f != "timeline"]
        if obj is None:
            return [(None, {"fields": fields})]
        return [
            (None, {"fields": fields}),
            (
                "Timeline",
                {
                    "fields": ["timeline"],
                    "description": "Every execution of a step and what came of it, from the run's Temporal "
                    "history (the step history below keeps completed and failed steps only).",
                },
            ),
        ]

    # ------------------------------------------------------------------ columns
    @admin.display(description="timeline")
    def timeline(self, run: WorkflowRun) -> str:
        timeline = run_timeline(run)
        note = format_html('<p class="timeline-note"><strong>{}</strong></p>', timeline.note) if timeline.note else ""
        rows = format_html_join(
            "",
            '<tr class="timeline-entry" data-kind="{}" data-outcome="{}"><td>{}</td><td>{}</td><td>{}</td>'
            "<td>{}</td><td>{}</td></tr>",
            (
                (
                    e.kind.value,
                    e.outcome.value,
                    "" if e.seq is None else e.seq,
                    e.step,
                    e.summary,
                    e.at.strftime("%Y-%m-%d %H:%M:%S") if e.at else "",
                    "(goes on)" if e.open else "" if e.ended_at in (None, e.at) else e.ended_at.strftime("%H:%M:%S"),
                )
                for e in timeline.entries
            ),
        )
        return format_html(
            '{}<table class="run-timeline"><thead><tr><th>#</th><th>step</th><th>what happened</th>'
            "<th>at (UTC)</th><th>ended</th></tr></thead><tbody>{}</tbody></table>",
            note,
            rows or format_html('<tr><td colspan="5">{}</td></tr>', "Nothing has happened yet."),
        )

    @admin.display(description="worker")
    def worker(self, run: WorkflowRun) -> str:
        if run.is_finished:
            return "-"
        status = pollers.run_queue_status(run.task_queue)
        if status.state == pollers.POLLING:
            return f"a worker polls task queue {status.task_queue!r} (last poll by {status.last_poller})"
        return status.message

    @admin.display(description="started by event")
    def event_link(self, run: WorkflowRun) -> str:
        if run.event_id is None:
            return "-"
        url = reverse("admin:django_bridge_event_change", args=[run.event_id])
        return format_html('<a href="{}">{}</a>', url, run.event)

    @admin.display(description="progress")
    def progress_percent(self, run: WorkflowRun) -> str:
        return f"{round(run.progress * 100)}%"

    @admin.display(description="Temporal")
    def temporal_link(self, run: WorkflowRun) -> str:
        if not run.temporal_ui_url:
            return "-"
        return format_html(
            '<a href="{}" target="_blank" rel="noopener">history in Temporal UI</a>', run.temporal_ui_url
        )


@admin.register(StepExecution)
class StepExecutionAdmin(ReadOnlyAdmin):
    list_display = ("id", "run", "seq", "step_name", "status", "created_at")
    list_filter = ("status",)
    search_fields = ("step_name", "error")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # the history of a run goes with the run


@admin.register(EventClaim)
class EventClaimAdmin(ReadOnlyAdmin):
    """Claims held now. Read-only: a claim is released by its holder or when the holder ends."""

    list_display = ("id", "event_name", "match", "holder", "created_at")
    list_filter = ("event_name",)
    search_fields = ("event_name",)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    """Model events: what is pending, what occurred, who had it, and the runs it started.

    Read-only: the rows are kept by model saves and their workflows (deleting one would leave
    its workflow without a row; delete the entity instead).
    """

    list_display = ("id", "event_name", "entity_link", "status", "at", "occurred_at", "delivered_summary", "updated_at")
    list_filter = ("status", "event_name", "content_type")
    search_fields = ("event_name", "entity_id")
    readonly_fields = ("entity_link", "runs_links", "temporal_link")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="entity")
    def entity_link(self, event: Event) -> str:
        model = event.content_type.model_class()
        label = f"{model.__name__ if model else event.content_type.model} {event.entity_id}"
        try:
            url = reverse(
                f"admin:{event.content_type.app_label}_{event.content_type.model}_change", args=[event.entity_id]
            )
        except NoReverseMatch:
            return label
        return format_html('<a href="{}">{}</a>', url, label)

    @admin.display(description="delivered to")
    def delivered_summary(self, event: Event) -> str:
        delivered = event.delivered or {}
        failed = [
            name
            for phase in ("created", "occurred", "cancelled")
            for name, r in (delivered.get(phase) or {}).items()
            if r.get("status") == "failed"
        ]
        done = sum(
            1
            for phase in ("created", "occurred", "cancelled")
            for r in (delivered.get(phase) or {}).values()
            if r.get("status") == "completed"
        )
        text = f"{done} callback{'s' if done != 1 else ''}"
        if failed:
            text += f", FAILED: {', '.join(failed)}"
        if delivered.get("signals") is not None:
            text += f", woke {delivered['signals']} waiting run{'s' if delivered['signals'] != 1 else ''}"
        return text

    @admin.display(description="runs it started")
    def runs_links(self, event: Event) -> str:
        runs = list(event.runs.all())
        if not runs:
            return "-"
        return format_html_join(
            ", ",
            '<a href="{}">{}</a>',
            ((reverse("admin:django_bridge_workflowrun_change", args=[r.pk]), str(r)) for r in runs),
        )

    @admin.display(description="Temporal")
    def temporal_link(self, event: Event) -> str:
        from .conf import automation_settings as s

        base = str(s.TEMPORAL_UI_URL).rstrip("/")
        return format_html(
            '<a href="{}/namespaces/{}/workflows/automation-event-{}" target="_blank" rel="noopener">its workflow in Temporal UI</a>',
            base,
            s.TEMPORAL_NAMESPACE,
            event.pk,
        )

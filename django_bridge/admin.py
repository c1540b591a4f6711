from __future__ import annotations

from django.contrib import admin
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html, format_html_join

from .models import Event, StepExecution, WorkflowRun


class StepExecutionInline(admin.TabularInline):
    model = StepExecution
    extra = 0
    can_delete = False
    fields = ("seq", "step_name", "status", "error", "created_at")
    readonly_fields = fields


@admin.register(WorkflowRun)
class WorkflowRunAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "name",
        "status",
        "current_step",
        "progress_percent",
        "waiting_signal",
        "created_at",
        "temporal_link",
    )
    list_filter = ("status", "name")
    search_fields = ("name", "temporal_workflow_id", "current_step", "waiting_signal")
    readonly_fields = ("temporal_link", "event_link", "created_at", "updated_at", "finished_at")
    inlines = [StepExecutionInline]

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
class StepExecutionAdmin(admin.ModelAdmin):
    list_display = ("id", "run", "seq", "step_name", "status", "created_at")
    list_filter = ("status",)
    search_fields = ("step_name", "error")


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    """Model events: what is pending, what occurred, who had it, and the runs it started."""

    list_display = ("id", "event_name", "entity_link", "status", "at", "occurred_at", "delivered_summary", "updated_at")
    list_filter = ("status", "event_name", "content_type")
    search_fields = ("event_name", "entity_id")
    readonly_fields = ("entity_link", "runs_links", "temporal_link")

    @admin.display(description="entity")
    def entity_link(self, event: Event) -> str:
        model = event.content_type.model_class()
        label = f"{model.__name__ if model else event.content_type.model} {event.entity_id}"
        try:
            url = reverse(f"admin:{event.content_type.app_label}_{event.content_type.model}_change", args=[event.entity_id])
        except NoReverseMatch:
            return label
        return format_html('<a href="{}">{}</a>', url, label)

    @admin.display(description="delivered to")
    def delivered_summary(self, event: Event) -> str:
        delivered = event.delivered or {}
        failed = [name for phase in ("created", "occurred", "cancelled") for name, r in (delivered.get(phase) or {}).items() if r.get("status") == "failed"]
        done = sum(1 for phase in ("created", "occurred", "cancelled") for r in (delivered.get(phase) or {}).values() if r.get("status") == "completed")
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
            ", ", '<a href="{}">{}</a>', ((reverse("admin:django_bridge_workflowrun_change", args=[r.pk]), str(r)) for r in runs)
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

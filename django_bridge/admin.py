from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html

from .models import StepExecution, WorkflowRun


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
    readonly_fields = ("temporal_link", "created_at", "updated_at", "finished_at")
    inlines = [StepExecutionInline]

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

"""Serializers of the runs API, and of the bodies it answers with (also the OpenAPI schema)."""

from __future__ import annotations

from typing import Any

from django.urls import NoReverseMatch, reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from django_bridge.models import Event, StepExecution, WorkflowRun
from facade import WorkflowStatus, registry
from temporal_worker import pollers
from temporal_worker.timeline import EntryKind, Outcome, TimelineSource

__all__ = [
    "ActionSchemaListSerializer",
    "ActionSchemaSerializer",
    "CancelRequestedSerializer",
    "CancelSerializer",
    "DisplaySerializer",
    "ErrorSerializer",
    "NoFieldsActionSerializer",
    "ReachedSerializer",
    "RunDetailSerializer",
    "RunSerializer",
    "SignalSerializer",
    "StartRunSerializer",
    "StepExecutionSerializer",
    "TimelineEntrySerializer",
    "TimelineSerializer",
    "WorkerSerializer",
    "action_serializer",
]


class DisplaySerializer(serializers.Serializer):
    """``current_step_display`` (semantics: "Current step display")."""

    status = serializers.ChoiceField(choices=WorkflowStatus.choices)
    current_step = serializers.CharField(allow_blank=True)
    step_type = serializers.ChoiceField(choices=["action", "automated", "waiting"])
    step_title = serializers.CharField(allow_blank=True)
    visible = serializers.BooleanField()
    progress = serializers.FloatField()
    completion_display = serializers.DictField(help_text="display_title/display_subtitle once completed, else {}.")
    waiting_display = serializers.DictField(
        help_text="display_title/display_subtitle/display_waiting_for while suspended, else {}."
    )
    step_display = serializers.DictField(allow_null=True, help_text="The step's StepDisplayMetadata, or null.")
    action_name = serializers.CharField(required=False, help_text="Present when the current step is an action step.")


class NoFieldsActionSerializer(serializers.Serializer):
    """The request of an action declared without a serializer (a "confirm" button): the run only."""

    workflow_run_id = serializers.IntegerField()


def action_serializer(info: Any) -> type[serializers.Serializer]:
    """The serializer validating requests of action ``info`` (an ``ActionInfo``)."""
    return info.serializer or NoFieldsActionSerializer


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    error = serializers.CharField(required=False, help_text="The library's error type, e.g. RunStateError.")
    workflow = serializers.CharField(required=False, allow_null=True)
    run_id = serializers.IntegerField(required=False, allow_null=True)
    step = serializers.CharField(required=False, allow_null=True)
    display = DisplaySerializer(required=False, help_text="The run's display, when the run exists.")


class HistoryDisplaySerializer(serializers.Serializer):
    """How a step showed when it ran (semantics: "Step history")."""

    step_title = serializers.CharField(allow_blank=True)
    visible = serializers.BooleanField(help_text="False for @step(visible=False): UIs may hide the row.")
    step_type = serializers.ChoiceField(choices=["action", "automated", "waiting"])


class StepExecutionSerializer(serializers.ModelSerializer):
    step_display = HistoryDisplaySerializer(read_only=True)

    class Meta:
        model = StepExecution
        fields = ["seq", "step_name", "status", "error", "display", "step_display", "created_at"]


class RepairSerializer(serializers.Serializer):
    """A change the reconciler made so the row follows Temporal (semantics: "The projection follows Temporal")."""

    at = serializers.CharField(help_text="When it was made (ISO 8601).")
    what = serializers.ChoiceField(
        choices=["terminated", "timed_out", "failed", "cancelled", "completed", "reset", "missing"],
        help_text="What Temporal did that the row had not followed.",
    )
    detail = serializers.CharField(help_text='As people read it, e.g. "terminated in Temporal: <reason>".')
    from_status = serializers.CharField()
    to_status = serializers.CharField()
    temporal_run_id = serializers.CharField(allow_blank=True, help_text="The Temporal run it followed.")


class TimelineEntrySerializer(serializers.Serializer):
    """One thing that happened to a run, from its Temporal history (semantics: "Timeline")."""

    kind = serializers.ChoiceField(
        choices=[k.value for k in EntryKind],
        help_text="run, step (one attempt of a step's body), on_fail, gate (waiting before a gated or action "
        "step runs), signal, action, timeout or subflow.",
    )
    outcome = serializers.ChoiceField(
        choices=[o.value for o in Outcome], help_text="How it ended (or goes on: see ended_at)."
    )
    summary = serializers.CharField(help_text="What happened, in one line: 'went to ship_order', 'waiting for x'.")
    step = serializers.CharField(allow_blank=True)
    step_display = HistoryDisplaySerializer(allow_null=True, help_text="How the step shows: title, visible, type.")
    seq = serializers.IntegerField(allow_null=True, help_text="Which entry into a step of the run.")
    attempt = serializers.IntegerField(allow_null=True, help_text="Which attempt of the step's body.")
    at = serializers.DateTimeField(allow_null=True, help_text="When it began (null: an attempt with no time kept).")
    open = serializers.BooleanField(help_text="True while it goes on: a step running, a wait, a sleep, a subflow.")
    ended_at = serializers.DateTimeField(allow_null=True, help_text="When it ended (null while open, or not kept).")
    until = serializers.DateTimeField(allow_null=True, help_text="A sleep's wake-up, a retry's or a due time.")
    target = serializers.CharField(
        allow_blank=True, help_text="The step a goto or timeout went to, the signal or action waited for, the subflow."
    )
    signal = serializers.CharField(allow_blank=True)
    error = serializers.CharField(allow_blank=True)
    execution = serializers.CharField(allow_blank=True, help_text="The Temporal run id of the history it comes from.")


class TimelineSerializer(serializers.Serializer):
    run_id = serializers.IntegerField()
    source = serializers.ChoiceField(
        choices=[s.value for s in TimelineSource],
        help_text="temporal: the workflow's history; step_history: the StepExecution rows (see note).",
    )
    note = serializers.CharField(allow_blank=True, help_text="What is missing and why ('timeline unavailable: ...').")
    executions = serializers.ListField(child=serializers.CharField(), help_text="Temporal run ids read, oldest first.")
    entries = TimelineEntrySerializer(many=True)


def run_page_url(run_id: int) -> str | None:
    try:
        return reverse("django_bridge:run-page", args=[run_id])
    except NoReverseMatch:  # the app's URLs are mounted without their namespace
        return None


class EventSummarySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    event_name = serializers.CharField()
    entity = serializers.CharField(help_text="app_label.model of the entity")
    entity_id = serializers.CharField()
    status = serializers.ChoiceField(choices=Event.Status.choices)
    at = serializers.DateTimeField(allow_null=True)


class WorkerSerializer(serializers.Serializer):
    """Whether a worker polls the run's task queue (semantics: "No worker polling")."""

    task_queue = serializers.CharField()
    state = serializers.ChoiceField(
        choices=[pollers.POLLING, pollers.NO_WORKER, pollers.UNKNOWN, pollers.UNREACHABLE],
        help_text="polling: a worker polled the queue in the last 90 s; no_worker: none did, the run does not move; "
        "unknown: the server does not say; unreachable: Temporal could not be reached.",
    )
    last_poll_at = serializers.DateTimeField(allow_null=True, help_text="The latest poll Temporal lists for the queue.")
    last_poller = serializers.CharField(allow_blank=True, help_text="The worker that polled last (pid@host).")
    message = serializers.CharField(
        allow_blank=True, help_text="Empty while a worker polls; otherwise what is wrong and the command that fixes it."
    )


class RunSerializer(serializers.ModelSerializer):
    parent = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    event = serializers.SerializerMethodField(
        help_text="The model event that started this run (@event_workflow), if one did."
    )
    page_url = serializers.SerializerMethodField(help_text="The run page (HTML), if the app's URLs are mounted.")
    worker = serializers.SerializerMethodField(
        help_text="For a run that has not finished: whether a worker polls its task queue (null once finished)."
    )

    class Meta:
        model = WorkflowRun
        fields = [
            "id",
            "name",
            "kind",
            "version",
            "status",
            "current_step",
            "progress",
            "waiting_signal",
            "error",
            "parent",
            "event",
            "created_at",
            "updated_at",
            "finished_at",
            "page_url",
            "worker",
        ]
        read_only_fields = fields

    def get_page_url(self, run: WorkflowRun) -> str | None:
        return run_page_url(run.pk)

    @extend_schema_field(WorkerSerializer(allow_null=True))
    def get_worker(self, run: WorkflowRun) -> dict[str, Any] | None:
        if run.is_finished:
            return None
        return pollers.run_queue_status(run.task_queue).to_json()

    @extend_schema_field(EventSummarySerializer(allow_null=True))
    def get_event(self, run: WorkflowRun) -> dict[str, Any] | None:
        event = run.event
        if event is None:
            return None
        return {
            "id": event.pk,
            "event_name": event.event_name,
            "entity": f"{event.content_type.app_label}.{event.content_type.model}",
            "entity_id": event.entity_id,
            "status": event.status,
            "at": event.at,
        }


class ClaimSerializer(serializers.Serializer):
    event_name = serializers.CharField()
    match = serializers.DictField(help_text="The lookups on the event's entity the claim covers.")


class AgentRouteSerializer(serializers.Serializer):
    event_name = serializers.CharField()
    handler = serializers.CharField(help_text="The handler with its own match, or empty for the agent's match.")
    match = serializers.DictField(help_text="The match rendered with the instance's Context.")


class RunDetailSerializer(RunSerializer):
    current_step_display = serializers.SerializerMethodField()
    claims = serializers.SerializerMethodField(help_text="The event claims this run holds.")
    agent_routes = serializers.SerializerMethodField(
        help_text="An agent instance: which events reach it (empty for a workflow run, or once it ended)."
    )
    steps = StepExecutionSerializer(source="step_executions", many=True, read_only=True)
    children = serializers.PrimaryKeyRelatedField(many=True, read_only=True)
    temporal_ui_url = serializers.CharField(read_only=True)
    repairs = RepairSerializer(many=True, read_only=True)

    class Meta(RunSerializer.Meta):
        fields = RunSerializer.Meta.fields + [
            "data",
            "current_step_display",
            "completion_display",
            "waiting_display",
            "wake_at",
            "wait_seq",
            "rejected_signal",
            "repairs",
            "steps",
            "children",
            "temporal_workflow_id",
            "temporal_ui_url",
            "claims",
            "agent_routes",
        ]
        read_only_fields = fields

    @extend_schema_field(DisplaySerializer)
    def get_current_step_display(self, run: WorkflowRun) -> dict[str, Any]:
        return run.current_step_display

    @extend_schema_field(ClaimSerializer(many=True))
    def get_claims(self, run: WorkflowRun) -> list[dict[str, Any]]:
        return [{"event_name": c.event_name, "match": c.match} for c in run.claims.all()]

    @extend_schema_field(AgentRouteSerializer(many=True))
    def get_agent_routes(self, run: WorkflowRun) -> list[dict[str, Any]]:
        return [
            {"event_name": r.event_name, "handler": r.handler, "match": r.match}
            for r in run.agent_routes.order_by("event_name", "handler")
        ]


class CancelRequestedSerializer(RunDetailSerializer):
    """The answer of a cancel that Temporal accepted but has not carried out yet (202)."""

    detail = serializers.CharField(help_text="Why the run is not cancelled yet, e.g. no worker polls its task queue.")

    class Meta(RunDetailSerializer.Meta):
        fields = RunDetailSerializer.Meta.fields + ["detail"]
        read_only_fields = fields


class StartRunSerializer(serializers.Serializer):
    name = serializers.ChoiceField(choices=[], help_text="A registered workflow name.")
    kwargs = serializers.DictField(
        required=False,
        default=dict,
        help_text="Arguments of the workflow's create_context (or its Context fields). Strings may not hold NUL (\\u0000).",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["name"].choices = registry.names()


class StrictCharField(serializers.CharField):
    """A CharField that refuses numbers and booleans instead of turning them into strings."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class SignalSerializer(serializers.Serializer):
    signal = StrictCharField(max_length=255, help_text="The signal name, e.g. review_completed or event:X.")
    payload = serializers.DictField(
        required=False,
        allow_null=True,
        default=None,
        help_text="Context fields to merge into the run; other keys are ignored and listed in ignored_keys (refused when AUTOMATION['UNKNOWN_SIGNAL_KEYS'] is 'error'). Strings may not hold NUL (\\u0000).",
    )


class CancelSerializer(serializers.Serializer):
    reason = StrictCharField(required=False, allow_blank=True, default="", max_length=2000)


class ReachedSerializer(serializers.Serializer):
    reached = serializers.IntegerField(help_text="How many runs the signal reached.")
    ignored_keys = serializers.ListField(
        child=serializers.CharField(),
        help_text="Payload keys that are not fields of the reached runs' Context: not merged (a misspelling?).",
    )


class FieldSchemaSerializer(serializers.Serializer):
    name = serializers.CharField()
    type = serializers.CharField(help_text="DRF metadata type: string, integer, choice, email, list, ...")
    required = serializers.BooleanField()
    label = serializers.CharField(required=False)
    help_text = serializers.CharField(required=False)
    choices = serializers.ListField(child=serializers.DictField(), required=False)
    default = serializers.JSONField(required=False)
    allow_null = serializers.BooleanField()
    group = serializers.CharField(allow_null=True, help_text="Title of the field group it belongs to.")
    display_config = serializers.DictField(allow_null=True, help_text="Its FieldDisplayConfig, or null.")


class ActionSchemaSerializer(serializers.Serializer):
    name = serializers.CharField()
    workflow = serializers.CharField()
    step = serializers.CharField()
    step_title = serializers.CharField()
    url = serializers.CharField(allow_null=True)
    run_field = serializers.CharField(help_text="The request field naming the run: workflow_run_id.")
    fields = FieldSchemaSerializer(many=True)
    display = serializers.DictField(help_text="StepDisplayMetadata: titles, field_groups, field_display_configs.")
    response = serializers.CharField(help_text="'current_step_display' or the response serializer's name.")


class ActionSchemaListSerializer(serializers.Serializer):
    actions = ActionSchemaSerializer(many=True)

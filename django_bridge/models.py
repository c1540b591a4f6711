"""The projection: Django rows that mirror what Temporal executes, for querying and UIs.

Temporal is the source of truth. Every transition of a run is written here by the worker
before the workflow blocks on it, keyed so that a retried activity never writes twice.
"""

from __future__ import annotations

from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import models

from temporal_worker.display import current_step_display
from temporal_worker.protocol import StepStatus, WorkflowStatus
from temporal_worker.transitions import RunState

__all__ = ["AgentRoute", "Event", "EventClaim", "StepExecution", "WorkflowRun", "WorkflowStatus"]


class EventManager(models.Manager["Event"]):
    def sync_for(self, queryset: Any) -> int:
        """Bring the Event rows of existing entities up to date, and dispatch what changed.

        Saves through ``bulk_create``, ``QuerySet.update()`` or raw SQL send no model signals, so
        their events are not maintained; call this afterwards (or ``manage.py sync_events``), and
        when an app first adds an ``events`` list to a model with rows. Returns how many Event
        rows changed.
        """
        # Upward, lazily: syncing rows also dispatches what changed to Temporal.
        from temporal_worker.dispatch import sync_queryset

        return sync_queryset(queryset)


class WorkflowRun(models.Model):
    class Kind(models.TextChoices):
        WORKFLOW = "workflow", "Workflow run"
        AGENT = "agent", "Agent instance"

    name = models.CharField(max_length=200, db_index=True)
    kind = models.CharField(
        max_length=10,
        choices=Kind.choices,
        default=Kind.WORKFLOW,
        db_index=True,
        help_text="A run of a @workflow, or an instance of an @agent (data is its Context, steps are its handlers).",
    )
    agent_key = models.CharField(
        max_length=255,
        unique=True,
        null=True,
        blank=True,
        help_text="A singleton agent instance's match while it is active (unique: one instance per match); "
        "cleared when it ends.",
    )
    version = models.CharField(max_length=50, default="1")
    status = models.CharField(
        max_length=20, choices=WorkflowStatus.choices, default=WorkflowStatus.RUNNING, db_index=True
    )
    current_step = models.CharField(max_length=200, blank=True, default="")
    data = models.JSONField(default=dict, blank=True, help_text="The run's Context, as JSON.")
    progress = models.FloatField(default=0.0)
    error = models.TextField(blank=True, default="")

    # What the run waits for, while SUSPENDED or WAITING.
    waiting_for = models.CharField(
        max_length=255,
        blank=True,
        default="",
        help_text="What a suspended run waits on, as people read it: a signal, action:<name> or subflow:<workflow>.",
    )
    waiting_signal = models.CharField(max_length=255, blank=True, default="", db_index=True)
    wait_seq = models.IntegerField(null=True, blank=True, help_text="Which wait of the run is current.")
    on_timeout_step = models.CharField(max_length=200, blank=True, default="")
    wake_at = models.DateTimeField(null=True, blank=True)
    waiting_match = models.JSONField(
        null=True, blank=True, help_text="wait_for_event(match=...): which entities' events wake the run."
    )

    rejected_signal = models.JSONField(
        null=True,
        blank=True,
        help_text="The last signal sent by hand that the run rejected (its payload did not fit the Context): "
        "{signal, payload, error, step, wait_seq, at}. The run kept waiting.",
    )

    repairs = models.JSONField(
        default=list,
        blank=True,
        help_text="What the reconciler changed so the row follows its Temporal workflow (terminated, timed out, "
        "reset or missing there), oldest first: [{at, what, detail, from_status, to_status, temporal_run_id}].",
    )

    completion_display = models.JSONField(default=dict, blank=True)
    waiting_display = models.JSONField(default=dict, blank=True)

    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="children")
    active_child = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    event = models.ForeignKey(
        "Event",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="runs",
        help_text="The model event whose occurrence started this run (@event_workflow).",
    )

    temporal_workflow_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    temporal_run_id = models.CharField(max_length=64, blank=True, default="")
    task_queue = models.CharField(max_length=200, blank=True, default="")
    spec = models.JSONField(default=dict, blank=True, help_text="The compiled workflow this run executes.")
    last_transition = models.JSONField(
        default=dict,
        blank=True,
        help_text="The last step result recorded ({seq, step, directive}): a retried attempt of a step "
        "whose result was recorded but never reached Temporal answers with it instead of running again.",
    )

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "waiting_signal"])]

    def __str__(self) -> str:
        return f"{self.name} #{self.pk} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in WorkflowStatus.finished()

    @property
    def parent_run_id(self) -> int | None:
        return self.parent_id

    @property
    def child_run_ids(self) -> list[int]:
        return list(self.children.values_list("id", flat=True))

    @property
    def current_step_display(self) -> dict[str, Any]:
        return current_step_display(self.spec, self.run_state())

    def run_state(self) -> RunState:
        """This row as the state the workflow keeps (what the display is computed from)."""
        return RunState(
            status=WorkflowStatus(self.status),
            current_step=self.current_step,
            progress=self.progress,
            waiting_for=self.waiting_for or self.waiting_signal,
            waiting_signal=self.waiting_signal,
            wait_seq=self.wait_seq,
            waiting_match=self.waiting_match,
            on_timeout=self.on_timeout_step,
            waiting_display=self.waiting_display or {},
            completion_display=self.completion_display or {},
            error=self.error,
            child_run_id=self.active_child_id,
        )

    @property
    def current_rejected_signal(self) -> dict[str, Any] | None:
        """``rejected_signal`` while the run still waits at the wait that rejected it, else None."""
        rejected = self.rejected_signal
        if not rejected or self.status != WorkflowStatus.SUSPENDED or rejected.get("wait_seq") != self.wait_seq:
            return None
        return rejected

    @property
    def temporal_ui_url(self) -> str:
        from django_bridge.conf import automation_settings as s

        if not self.temporal_workflow_id:
            return ""
        base = str(s.TEMPORAL_UI_URL).rstrip("/")
        return f"{base}/namespaces/{s.TEMPORAL_NAMESPACE}/workflows/{self.temporal_workflow_id}"

    def cancel(self, reason: str = "") -> WorkflowRun:
        """Cancel this run and its active children (semantics: "Cancelling a run"); returns it refreshed."""
        # Upward, lazily: the engine writes these rows, so it cannot be imported at module level.
        from temporal_worker.engine import engine

        engine.cancel(self.pk, reason=reason)
        self.refresh_from_db()
        return self

    def retry_current_step(self) -> WorkflowRun:
        """Restart a failed or stuck run at its current step with its saved context (semantics: "Retrying a failed run")."""
        # Upward, lazily: as in cancel().
        from temporal_worker.engine import engine

        engine.retry(self.pk)
        self.refresh_from_db()
        return self


class AgentRoute(models.Model):
    """Which events reach an active agent instance: its rendered ``match`` per event, indexed.

    ``keyset`` names the equality lookups of the match and ``key`` hashes their values, so routing
    an event finds its few candidate instances by index instead of loading every instance's
    Context (docs/semantics.md, "Agents"). Rewritten whenever the instance's Context changes.
    """

    run = models.ForeignKey(WorkflowRun, on_delete=models.CASCADE, related_name="agent_routes")
    agent = models.CharField(max_length=200)
    event_name = models.CharField(max_length=200)
    handler = models.CharField(max_length=200, blank=True, default="", help_text="Empty: the agent's own match.")
    match = models.JSONField(default=dict, blank=True, help_text="The rendered match: a filter on the event's entity.")
    keyset = models.CharField(max_length=255, blank=True, default="")
    key = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        # With ``handler``, routing reads which keysets a handler's routes use from the index
        # alone, however many instances are active.
        indexes = [models.Index(fields=["agent", "event_name", "handler", "keyset", "key"])]

    def __str__(self) -> str:
        return f"{self.agent} #{self.run_id} <- {self.event_name} {self.match}"


class EventClaim(models.Model):
    """A claim on the events named ``event_name`` whose entity matches ``match``: while it is held
    only its holder's handlers receive them (docs/semantics.md, "Claims")."""

    event_name = models.CharField(max_length=200)
    match = models.JSONField(default=dict, blank=True)
    match_hash = models.CharField(max_length=64, help_text="Identifies (event, match): one holder at a time.")
    keyset = models.CharField(max_length=255, blank=True, default="")
    key = models.CharField(max_length=64, blank=True, default="")
    holder = models.ForeignKey(WorkflowRun, on_delete=models.CASCADE, related_name="claims")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [models.UniqueConstraint(fields=["event_name", "match_hash"], name="one_holder_per_claim")]
        indexes = [models.Index(fields=["event_name", "keyset", "key"])]

    def __str__(self) -> str:
        return f"{self.event_name} {self.match} held by run {self.holder_id}"


class StepExecution(models.Model):
    run = models.ForeignKey(WorkflowRun, on_delete=models.CASCADE, related_name="step_executions")
    seq = models.IntegerField(help_text="Which entry into a step of the run this row records.")
    step_name = models.CharField(max_length=200)
    status = models.CharField(max_length=20, choices=StepStatus.choices)
    error = models.TextField(blank=True, default="")
    display = models.JSONField(default=dict, blank=True, help_text="The step's StepDisplayMetadata, if any.")
    step_display = models.JSONField(
        default=dict,
        blank=True,
        help_text='How the step showed when it ran: {"step_title", "visible", "step_type"}.',
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "seq"]
        constraints = [models.UniqueConstraint(fields=["run", "seq", "status"], name="unique_step_execution_per_entry")]

    def __str__(self) -> str:
        return f"{self.step_name} ({self.status})"


class Event(models.Model):
    """One event of one entity: the row ``post_save``/``post_delete`` keep for each
    ``EventDefinition`` of a model (docs/semantics.md, "Model events").

    ``version`` counts the changes Temporal must hear about and ``dispatched_version`` the ones it
    has: together they are the outbox, so an occurrence whose dispatch was lost (Temporal down
    at commit, a process killed) is dispatched again. ``delivered`` records which subscribers
    have had it.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        OCCURRED = "occurred", "Occurred"
        CANCELLED = "cancelled", "Cancelled"

    event_name = models.CharField(max_length=200, db_index=True)
    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE)
    entity_id = models.CharField(max_length=255, help_text="The entity's primary key, as text (any key type).")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING, db_index=True)
    at = models.DateTimeField(null=True, blank=True, help_text="When it occurs (scheduled) or occurred (immediate).")
    occurred_at = models.DateTimeField(null=True, blank=True)
    generation = models.IntegerField(default=1, help_text="Bumped when a cancelled event is pending again.")
    version = models.IntegerField(default=0)
    dispatched_version = models.IntegerField(default=0)
    delivered = models.JSONField(default=dict, blank=True, help_text="Which subscribers have had it, and how it went.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["event_name", "content_type", "entity_id"], name="unique_event_per_entity")
        ]
        indexes = [models.Index(fields=["dispatched_version", "version"])]

    objects = EventManager()

    def __str__(self) -> str:
        return f"{self.event_name} of {self.content_type.model} {self.entity_id} ({self.status})"

    @property
    def entity(self) -> Any:
        """The model instance this event is about, or None when it was deleted."""
        model = self.content_type.model_class()
        if model is None:
            return None
        return model._default_manager.filter(pk=model._meta.pk.to_python(self.entity_id)).first()

    @property
    def model_label(self) -> str:
        return (
            self.content_type.model_class()._meta.label if self.content_type.model_class() else self.content_type.model
        )

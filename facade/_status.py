"""Run and step statuses, shared by the projection and the public API."""

from __future__ import annotations

from django.db import models

__all__ = ["StepStatus", "WorkflowStatus"]


class WorkflowStatus(models.TextChoices):
    RUNNING = "running", "Running"
    WAITING = "waiting", "Waiting"  # on a timer: sleep or retry backoff
    SUSPENDED = "suspended", "Suspended"  # on a signal, an event, an action or a child run
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"

    @classmethod
    def finished(cls) -> set[str]:
        return {cls.COMPLETED, cls.FAILED, cls.CANCELLED}


class StepStatus(models.TextChoices):
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"

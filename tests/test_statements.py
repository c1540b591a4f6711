"""The projection's precompiled statements write what the ORM would have written."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db.models import F
from django.utils import timezone

from django_bridge.models import StepExecution, WorkflowRun
from temporal_worker.statements import insert_ignoring_conflicts, update_row

pytestmark = pytest.mark.django_db


def new_run(**fields) -> WorkflowRun:
    return WorkflowRun.objects.create(name="st", version="1", data={}, spec={}, task_queue="q", **fields)


def test_update_row_writes_json_dates_foreign_keys_and_text_like_the_orm():
    run, child = new_run(), new_run()
    wake = timezone.now() + timedelta(minutes=5)
    fields = {
        "data": {"amount": 1.5, "tags": ["a", "é"], "nested": {"ok": True}, "none": None},
        "status": "suspended",
        "wake_at": wake,
        "active_child_id": child.pk,
        "waiting_match": None,
        "wait_seq": 3,
        "progress": 0.5,
    }
    assert update_row(WorkflowRun, run.pk, fields) == 1
    via_orm = new_run()
    WorkflowRun.objects.filter(pk=via_orm.pk).update(**fields)
    mine, theirs = WorkflowRun.objects.get(pk=run.pk), WorkflowRun.objects.get(pk=via_orm.pk)
    for name in fields:
        assert getattr(mine, name) == getattr(theirs, name), name
    assert mine.wake_at == wake and mine.active_child == child and mine.data["tags"] == ["a", "é"]


def test_update_row_of_a_missing_row_updates_nothing():
    assert update_row(WorkflowRun, 10**9, {"status": "failed"}) == 0


def test_an_expression_goes_through_the_orm():
    run = new_run(wait_seq=1)
    assert update_row(WorkflowRun, run.pk, {"wait_seq": F("wait_seq") + 1}) == 1
    assert WorkflowRun.objects.get(pk=run.pk).wait_seq == 2


def test_insert_ignoring_conflicts_inserts_once_and_leaves_an_existing_row_as_it_is():
    run = new_run()

    def row(error: str) -> StepExecution:
        return StepExecution(
            run_id=run.pk, seq=0, status="completed", step_name="a", error=error, display={"t": 1}, step_display={}
        )

    insert_ignoring_conflicts(row("first"))
    insert_ignoring_conflicts(row("second"))  # same (run, seq, status): skipped
    rows = list(StepExecution.objects.filter(run=run))
    assert [(r.error, r.display, r.step_name) for r in rows] == [("first", {"t": 1}, "a")]
    assert rows[0].created_at is not None

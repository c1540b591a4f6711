"""The projection's precompiled statements write what the ORM would have written."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import F
from django.db.models.signals import post_delete, post_save
from django.utils import timezone

from django_bridge.models import AgentRoute, EventClaim, StepExecution, WorkflowRun
from temporal_worker.statements import delete_rows, insert_ignoring_conflicts, insert_row, update_row

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
        "waiting_display": {},
        "repairs": [],
    }
    assert update_row(WorkflowRun, run.pk, fields) == 1
    via_orm = new_run()
    WorkflowRun.objects.filter(pk=via_orm.pk).update(**fields)
    mine, theirs = WorkflowRun.objects.get(pk=run.pk), WorkflowRun.objects.get(pk=via_orm.pk)
    for name in fields:
        assert getattr(mine, name) == getattr(theirs, name), name
    assert mine.wake_at == wake and mine.active_child == child and mine.data["tags"] == ["a", "é"]
    # The JSON columns hold the very text the ORM wrote (an empty dict or list included).
    table, columns = WorkflowRun._meta.db_table, ("data", "waiting_display", "repairs")
    with connection.cursor() as cursor:
        stored = []
        for pk in (run.pk, via_orm.pk):
            cursor.execute(f"SELECT {', '.join(columns)} FROM {table} WHERE id = %s", [pk])
            stored.append(tuple(str(text) for text in cursor.fetchone()))
    assert stored[0] == stored[1]


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


def test_insert_row_writes_what_create_writes_and_sets_the_key():
    fields = {"name": "st", "version": "1", "data": {"é": [1, 2.5]}, "spec": {"steps": {}}, "task_queue": "q"}
    mine = WorkflowRun(**fields, status="suspended", wait_seq=2)
    insert_row(mine)
    theirs = WorkflowRun.objects.create(**fields, status="suspended", wait_seq=2)
    assert mine.pk is not None and mine.pk != theirs.pk and not mine._state.adding
    stored = WorkflowRun.objects.get(pk=mine.pk)
    for field in WorkflowRun._meta.concrete_fields:
        if field.name not in ("id", "created_at", "updated_at"):
            assert getattr(stored, field.attname) == getattr(theirs, field.attname), field.name
    assert stored.created_at is not None and stored.updated_at is not None


def test_insert_row_of_a_model_with_save_receivers_saves_through_the_orm():
    heard = []

    def receiver(sender, instance, created, **kwargs):
        heard.append((instance.pk, created))

    post_save.connect(receiver, sender=WorkflowRun, dispatch_uid="test-insert-row")
    try:
        run = WorkflowRun(name="st", version="1", data={}, spec={}, task_queue="q")
        insert_row(run)
    finally:
        post_save.disconnect(dispatch_uid="test-insert-row", sender=WorkflowRun)
    assert heard == [(run.pk, True)]


def _claims_and_routes(holder: WorkflowRun, other: WorkflowRun) -> None:
    for run, name in ((holder, "a"), (other, "b")):
        EventClaim.objects.create(event_name="e", match={"k": name}, match_hash=name, holder=run)
        AgentRoute.objects.create(run=run, event_name="e", handler="on_e", match={"k": name})


def test_delete_rows_deletes_only_the_rows_with_that_value():
    holder, other = new_run(), new_run()
    _claims_and_routes(holder, other)
    delete_rows(EventClaim, "holder", holder.pk)
    delete_rows(AgentRoute, "run", holder.pk)
    assert list(EventClaim.objects.values_list("holder_id", flat=True)) == [other.pk]
    assert list(AgentRoute.objects.values_list("run_id", flat=True)) == [other.pk]


def test_delete_rows_of_a_model_with_delete_receivers_deletes_through_the_orm():
    holder, other = new_run(), new_run()
    _claims_and_routes(holder, other)
    heard = []
    post_delete.connect(
        lambda sender, instance, **kw: heard.append(instance.holder_id), sender=EventClaim, weak=False, dispatch_uid="t"
    )
    try:
        delete_rows(EventClaim, "holder", holder.pk)
    finally:
        post_delete.disconnect(sender=EventClaim, dispatch_uid="t")
    assert heard == [holder.pk]
    assert list(EventClaim.objects.values_list("holder_id", flat=True)) == [other.pk]


def test_values_of_other_types_convert_as_the_orm_converts_them():
    """Only values a field returns unchanged skip its conversion: an enum member of a text field
    is stored as its value, an IntEnum and a bool in an integer field as plain ints, an int in a
    float field as a float, and a string in an integer field as the ORM would convert it."""
    import enum

    from facade import WorkflowStatus

    class Seq(enum.IntEnum):
        THIRD = 3

    run, via_orm = new_run(), new_run()
    fields = {"status": WorkflowStatus.WAITING, "wait_seq": Seq.THIRD, "progress": 1, "current_step": "a"}
    assert update_row(WorkflowRun, run.pk, fields) == 1
    WorkflowRun.objects.filter(pk=via_orm.pk).update(**fields)
    assert update_row(WorkflowRun, new_run().pk, {"wait_seq": "7"}) == 1
    mine, theirs = (WorkflowRun.objects.values(*fields).get(pk=pk) for pk in (run.pk, via_orm.pk))
    assert mine == theirs == {"status": "waiting", "wait_seq": 3, "progress": 1.0, "current_step": "a"}
    assert type(mine["wait_seq"]) is int and type(mine["progress"]) is float
    assert WorkflowRun.objects.filter(wait_seq=7).count() == 1


def test_datetimes_are_stored_as_the_orm_stores_them():
    """An aware datetime takes the backend's adaptation directly; the text in the column is the
    ORM's, whatever its time zone. A naive one still goes through the field (its warning included)."""
    import datetime as dt
    import warnings

    from django.db import connection

    def stored(pk: int) -> str:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT wake_at FROM {WorkflowRun._meta.db_table} WHERE id = %s", [pk])
            return cursor.fetchone()[0]

    values = [
        dt.datetime(2026, 3, 1, 10, 30, 5, 123456, tzinfo=dt.UTC),
        dt.datetime(2026, 3, 1, 12, 30, 5, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        dt.datetime(2026, 3, 1, 10, 30, 5),  # naive: the field warns and makes it aware
    ]
    for value in values:
        run, via_orm = new_run(), new_run()
        with warnings.catch_warnings(record=True) as mine_warned:
            warnings.simplefilter("always")
            assert update_row(WorkflowRun, run.pk, {"wake_at": value}) == 1
        with warnings.catch_warnings(record=True) as orm_warned:
            warnings.simplefilter("always")
            WorkflowRun.objects.filter(pk=via_orm.pk).update(wake_at=value)
        assert stored(run.pk) == stored(via_orm.pk), value
        assert [str(w.message) for w in mine_warned] == [str(w.message) for w in orm_warned], value
        assert WorkflowRun.objects.get(pk=run.pk).wake_at == WorkflowRun.objects.get(pk=via_orm.pk).wake_at


def test_statements_are_seen_by_execute_wrappers_and_logged_with_debug(settings):
    """Whatever watches Django's cursors (an execute_wrapper, DEBUG's query log) sees these
    statements: they go through Django's cursor then, and straight to the driver otherwise."""
    from django.db import connection, reset_queries

    run = new_run()
    seen: list[str] = []

    def watch(execute, sql, params, many, context):
        seen.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(watch):
        update_row(WorkflowRun, run.pk, {"current_step": "watched"})
        delete_rows(EventClaim, "holder", run.pk)
    assert len(seen) == 2 and seen[0].startswith("UPDATE") and seen[1].startswith("DELETE"), seen

    settings.DEBUG = True
    reset_queries()
    update_row(WorkflowRun, run.pk, {"current_step": "logged"})
    assert any("UPDATE" in q["sql"] for q in connection.queries), connection.queries
    settings.DEBUG = False
    reset_queries()
    seen.clear()
    update_row(WorkflowRun, run.pk, {"current_step": "quiet"})
    assert connection.queries == [] and seen == []
    assert WorkflowRun.objects.get(pk=run.pk).current_step == "quiet"

"""Group commit (SQLite): concurrent projection writes commit together, each caller after its own.

The writer is held busy by a first write while ten step threads hand it theirs; released, it
commits the ten in one transaction. Each thread then reads its row back on its own connection,
which shows the write had committed when the call returned. A write whose run row is gone
fails in its own caller only. Inside a transaction the caller holds, a write runs in place.
"""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, transaction

from django_bridge.models import StepExecution, WorkflowRun
from facade import WorkflowStatus
from temporal_worker import projection
from temporal_worker.group_commit import group_commit
from temporal_worker.protocol import Complete, Fail

pytestmark = pytest.mark.skipif(connection.vendor != "sqlite", reason="group commit is for SQLite only")

SPEC = {
    "name": "gc",
    "version": "1",
    "start": "only",
    "order": ["only"],
    "on_fail": None,
    "steps": {"only": {"name": "only", "retry": {}, "title": "Only", "visible": True, "display": {}}},
}


def new_run() -> int:
    return WorkflowRun.objects.create(name="gc", version="1", data={}, spec=SPEC, task_queue="q").pk


def wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def hold_the_writer() -> tuple[threading.Thread, threading.Event]:
    """A write that keeps the writer busy until the event is set; returns once it does."""
    started, release = threading.Event(), threading.Event()

    def hold() -> None:
        started.set()
        release.wait(10)

    blocker = threading.Thread(target=group_commit.run, args=(hold,))
    blocker.start()
    assert started.wait(10)
    return blocker, release


def write_result_then_release(run_id: int, blocker: threading.Thread, release: threading.Event) -> None:
    """From another thread, record the step's result (queued behind the held writer and the
    mark queued before it), then let the writer go; returns once the result has committed."""
    done = threading.Event()

    def result() -> None:
        projection.record_directive(run_id, SPEC, "only", 0, {"n": 1}, Complete())
        connection.close()
        done.set()

    writer = threading.Thread(target=result)
    writer.start()
    wait_until(lambda: group_commit._queue.qsize() == 2)  # the mark (withdrawn or not) and the result
    release.set()
    for t in [blocker, writer]:
        t.join(timeout=30)
    assert done.is_set()


def test_concurrent_writes_commit_together_and_each_caller_returns_after_its_own(transactional_db):
    runs = [new_run() for _ in range(10)]
    gone = new_run()
    WorkflowRun.objects.filter(pk=gone).delete()
    blocker, release = hold_the_writer()
    before = (group_commit.transactions, group_commit.writes)
    seen: dict[int, object] = {}

    def step(run_id: int) -> None:
        try:
            projection.record_directive(run_id, SPEC, "only", 0, {"n": run_id}, Complete())
            # On this thread's own connection, right after the call returned.
            seen[run_id] = WorkflowRun.objects.get(pk=run_id).status
        except Exception as exc:
            seen[run_id] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=step, args=(run_id,)) for run_id in [*runs, gone]]
    for t in threads:
        t.start()
    wait_until(lambda: group_commit._queue.qsize() == 11)
    release.set()
    for t in [blocker, *threads]:
        t.join(timeout=30)

    assert all(seen[run_id] == WorkflowStatus.COMPLETED for run_id in runs), seen
    assert isinstance(seen[gone], WorkflowRun.DoesNotExist)
    assert StepExecution.objects.filter(run__in=runs).count() == 10
    assert WorkflowRun.objects.filter(pk__in=runs, data__n__gt=0).count() == 10
    # The blocker's transaction, then the eleven in one that failed on the deleted row and
    # were committed one by one: ten more transactions, not eleven.
    transactions, writes = group_commit.transactions - before[0], group_commit.writes - before[1]
    assert (transactions, writes) == (1 + 10, 1 + 10)


def test_writes_of_one_batch_share_one_transaction(transactional_db):
    runs = [new_run() for _ in range(10)]
    blocker, release = hold_the_writer()
    before = group_commit.transactions
    threads = [threading.Thread(target=projection.mark_running, args=(run_id, "only"), daemon=True) for run_id in runs]
    for t in threads:
        t.start()
    wait_until(lambda: group_commit._queue.qsize() == 10)
    release.set()
    for t in [blocker, *threads]:
        t.join(timeout=30)
    assert group_commit.transactions - before == 2  # the blocker's, and one for the ten
    assert WorkflowRun.objects.filter(pk__in=runs, status=WorkflowStatus.RUNNING).count() == 10


def test_inside_a_transaction_a_write_runs_in_the_callers_thread(transactional_db):
    run_id = new_run()
    where = []
    with transaction.atomic():
        group_commit.run(lambda: where.append(threading.current_thread()))
        projection.mark_running(run_id, "only")
        assert WorkflowRun.objects.get(pk=run_id).status == WorkflowStatus.RUNNING
    assert where == [threading.current_thread()]


def test_a_mark_not_waited_for_still_commits_before_the_callers_next_write(transactional_db):
    """A step leaving a wait queues its "running" mark and starts its code at once; its result,
    written next, is committed after the mark, so the mark never overwrites it."""
    run_id = new_run()
    WorkflowRun.objects.filter(pk=run_id).update(status=WorkflowStatus.SUSPENDED)
    blocker, release = hold_the_writer()
    projection.mark_running_soon(run_id, "only")  # returns although the writer is held
    assert WorkflowRun.objects.get(pk=run_id).status == WorkflowStatus.SUSPENDED
    write_result_then_release(run_id, blocker, release)
    assert WorkflowRun.objects.get(pk=run_id).status == WorkflowStatus.COMPLETED


def test_a_running_mark_the_result_overwrites_is_withdrawn_while_queued(transactional_db):
    """Many runs waking at once each queue a "running" mark; a step that returns before the
    writer reached its mark has the mark withdrawn, since its result sets every column the mark
    would: one write instead of two, and the row ends the same."""
    run_id = new_run()
    WorkflowRun.objects.filter(pk=run_id).update(status=WorkflowStatus.SUSPENDED, waiting_for="go", waiting_signal="go")
    blocker, release = hold_the_writer()
    mark = projection.mark_running_soon(run_id, "only")
    assert mark is not None and not mark.done()
    projection.drop_running_mark(mark, SPEC, "only", 0, Complete())
    assert mark.cancelled()
    before = group_commit.writes
    write_result_then_release(run_id, blocker, release)
    assert group_commit.writes - before == 2  # the blocker's and the result: the mark never ran
    row = WorkflowRun.objects.get(pk=run_id)
    assert (row.status, row.waiting_for, row.waiting_signal) == (WorkflowStatus.COMPLETED, "", "")


def test_a_running_mark_stays_when_the_result_leaves_the_status_or_the_writer_began_it(transactional_db):
    """A failure handed to an @on_fail handler does not set the status: the mark is written.
    A mark the writer has begun cannot be withdrawn; it commits before the result."""
    run_id = new_run()
    WorkflowRun.objects.filter(pk=run_id).update(status=WorkflowStatus.SUSPENDED)
    with_on_fail = {**SPEC, "on_fail": "only"}
    blocker, release = hold_the_writer()
    mark = projection.mark_running_soon(run_id, "only")
    projection.drop_running_mark(mark, with_on_fail, "only", 0, Fail("no"))
    assert mark is not None and not mark.cancelled()
    release.set()
    blocker.join(timeout=30)
    mark.result(timeout=10)
    assert WorkflowRun.objects.get(pk=run_id).status == WorkflowStatus.RUNNING

    WorkflowRun.objects.filter(pk=run_id).update(status=WorkflowStatus.SUSPENDED)
    started, resume = threading.Event(), threading.Event()
    group_commit.submit(lambda: (started.set(), resume.wait(10)))  # the writer is busy with this write
    assert started.wait(10)
    # Queued behind it, and taken by the writer at once once it is free: poll until it has begun.
    mark = projection.mark_running_soon(run_id, "only")
    assert mark is not None
    resume.set()
    wait_until(lambda: mark.running() or mark.done())
    projection.drop_running_mark(mark, SPEC, "only", 0, Complete())
    assert not mark.cancelled()
    mark.result(timeout=10)


def test_a_write_nobody_waits_for_is_committed_at_exit(tmp_path):
    """A process that starts a run and exits at once still saves the run's Temporal run id: the
    queued write is committed before the process ends (the writer is a daemon thread)."""
    import subprocess
    import sys
    import textwrap
    from pathlib import Path

    db = tmp_path / "exit.sqlite3"
    script = textwrap.dedent(
        f"""
        import os, django
        os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
        os.environ["AUTOMATION_TEST_DB"] = {str(db)!r}
        django.setup()
        from django.core.management import call_command
        call_command("migrate", verbosity=0)
        from django_bridge.models import WorkflowRun
        from temporal_worker import projection
        from temporal_worker.group_commit import group_commit
        run = WorkflowRun.objects.create(name="gc", version="1", data={{}}, spec={{}}, task_queue="q")
        import time
        group_commit.submit(lambda: time.sleep(1))  # the writer is busy for a second: the write queues
        projection.set_temporal_run_id(run.pk, "queued-at-exit")
        print(run.pk)  # and the process ends while it waits
        """
    )
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    import sqlite3

    with sqlite3.connect(db) as conn:
        (value,) = conn.execute(
            "SELECT temporal_run_id FROM django_bridge_workflowrun WHERE id = ?", (int(done.stdout.split()[-1]),)
        ).fetchone()
    assert value == "queued-at-exit"

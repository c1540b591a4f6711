"""No worker polling a run's task queue is said everywhere a user looks (semantics: "No worker polling").

Against the real dev server: runs started on a task queue nobody polls, and a worker started and
stopped so that its last poll grows old. The runs API, the run pages, ``watch_run``, the admin and
the system check say "no worker is polling task queue X" with the command to run; a cancel answers
202 at once instead of blocking; a retry restarts the run where a worker polls.
"""

from __future__ import annotations

import asyncio
import io
import time
import uuid
from contextlib import contextmanager

import pytest
from django.contrib.auth.models import User
from django.core.checks import run_checks
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from django_ai.automation.workflows.core import engine
from django_bridge.conf import automation_settings
from django_bridge.models import WorkflowRun
from facade import WorkflowStatus
from facade.testing import wait_for
from temporal_worker import client as bridge
from temporal_worker import pollers
from temporal_worker.worker import build_worker

RUNS = "/statezero/runs/"


@pytest.fixture(autouse=True)
def fresh_answers():
    """Each test sees Temporal's answer of now, not one cached by the test before."""
    pollers.clear_cache()
    yield
    pollers.clear_cache()


@pytest.fixture
def staff(transactional_db, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return User.objects.create_superuser("admin", "admin@example.com", "pw")


@pytest.fixture
def api(staff):
    client = APIClient()
    client.force_login(staff)
    return client


def nobody_queue() -> str:
    return f"nobody-{uuid.uuid4().hex[:8]}"


@contextmanager
def task_queue(queue: str):
    """Start runs on ``queue`` (AUTOMATION["TASK_QUEUE"]) inside the block."""
    saved = automation_settings.overrides.get("TASK_QUEUE")
    automation_settings.overrides["TASK_QUEUE"] = queue
    try:
        yield queue
    finally:
        automation_settings.overrides["TASK_QUEUE"] = saved


def start_on(queue: str, name: str = "user_onboarding", **kwargs) -> WorkflowRun:
    with task_queue(queue):
        return engine.start(name, **kwargs)


class InProcessWorker:
    """A worker of this process on ``queue`` (the dev fixture's own worker polls another)."""

    def __init__(self, dev, queue: str) -> None:
        self.dev, self.queue = dev, queue

    def __enter__(self) -> InProcessWorker:
        async def launch() -> None:
            self.worker = build_worker(self.dev.client, self.queue, max_concurrent_steps=2)
            self.task = asyncio.get_running_loop().create_task(self.worker.run())

        bridge.run_sync(launch(), timeout=30)
        return self

    def __exit__(self, *exc) -> None:
        async def shutdown() -> None:
            await self.worker.shutdown()
            try:
                await self.task
            except Exception:
                pass

        bridge.run_sync(shutdown(), timeout=60)
        self.worker.config()["activity_executor"].shutdown(wait=True)


def fresh_status(queue: str) -> pollers.QueueStatus:
    pollers.clear_cache()
    return pollers.safe_queue_status(queue)


# ---------------------------------------------------------------------- a queue nobody polls
def test_a_run_on_a_queue_nobody_polls_says_so_in_the_api_pages_and_admin(dev, api):
    queue = nobody_queue()
    run = start_on(queue, user_id=1)
    command = f"python manage.py temporal_worker --task-queue {queue}"

    detail = api.get(f"{RUNS}{run.pk}/").json()
    worker = detail["worker"]
    assert worker["state"] == "no_worker" and worker["task_queue"] == queue
    assert f"no worker is polling task queue '{queue}'" in worker["message"]
    assert command in worker["message"]
    # A worker polls the configured queue (the test's): retrying would move the run there.
    assert f"a worker polls task queue '{dev.task_queue}'" in worker["message"]
    assert "retry the run" in worker["message"]
    listed = {r["id"]: r for r in api.get(f"{RUNS}?name=user_onboarding&page_size=500").json()["results"]}
    assert listed[run.pk]["worker"]["state"] == "no_worker"

    page = api.get(f"/statezero/ui/runs/{run.pk}/").content.decode()
    assert f"no worker is polling task queue &#x27;{queue}&#x27;" in page and command in page

    admin_list = api.get("/admin/django_bridge/workflowrun/").content.decode()
    assert f"Runs on task queue &#x27;{queue}&#x27; do not move" in admin_list and command in admin_list
    admin_page = api.get(f"/admin/django_bridge/workflowrun/{run.pk}/change/").content.decode()
    assert command in admin_page

    # Runs on the test's own queue, which its worker polls: nothing to say.
    done = dev.wait_until_finished(engine.start("user_onboarding", user_id=2))
    assert api.get(f"{RUNS}{done.pk}/").json()["worker"] is None  # finished: no probe
    waiting = dev.wait_until(engine.start("approval"), lambda r: r.status == WorkflowStatus.SUSPENDED)
    assert api.get(f"{RUNS}{waiting.pk}/").json()["worker"]["state"] == "polling"
    assert "no worker is polling" not in api.get(f"/statezero/ui/runs/{waiting.pk}/").content.decode()


def test_watch_run_says_no_worker_polls_and_its_timeout_says_what_to_run(dev):
    queue = nobody_queue()
    run = start_on(queue, user_id=3)
    out = io.StringIO()
    with pytest.raises(CommandError) as err:
        call_command("watch_run", str(run.pk), "--timeout", "1", "--interval", "0.1", stdout=out)
    assert err.value.returncode == 2
    assert f"still running after 1s: no worker is polling task queue '{queue}'" in str(err.value)
    assert f"python manage.py temporal_worker --task-queue {queue}" in str(err.value)
    assert f"run {run.pk}: no worker is polling task queue '{queue}'" in out.getvalue()


def test_cancel_without_a_worker_answers_202_at_once_and_the_run_is_cancelled_when_one_polls(dev, api):
    queue = nobody_queue()
    run = start_on(queue, user_id=4)
    began = time.monotonic()
    resp = api.post(f"{RUNS}{run.pk}/cancel/", {"reason": "no longer needed"}, format="json")
    took = time.monotonic() - began
    assert resp.status_code == 202, resp.content
    body = resp.json()
    assert body["detail"].startswith(
        f"cancel requested; Temporal has not closed run {run.pk} yet: no worker is polling"
    )
    assert f"python manage.py temporal_worker --task-queue {queue}" in body["detail"]
    assert body["status"] == "running" and body["worker"]["state"] == "no_worker"
    assert took < 10, f"the cancel blocked {took:.1f}s"
    assert engine.cancel(run.pk) is False  # the engine says the same: requested, not done

    # Temporal kept the request: the first worker to poll the queue carries it out.
    with InProcessWorker(dev, queue):
        run = dev.wait_until_finished(run)
    assert run.status == WorkflowStatus.CANCELLED and run.error == "no longer needed"
    assert engine.cancel(run.pk) is True  # finished: nothing to do


def test_retry_restarts_a_run_stuck_on_a_dead_queue_where_a_worker_polls(dev, api):
    queue = nobody_queue()
    run = start_on(queue, user_id=5)
    resp = api.post(f"{RUNS}{run.pk}/retry/", {}, format="json")
    assert resp.status_code == 200, resp.content
    assert resp.json()["worker"]["state"] == "polling"  # the configured queue: the test's worker polls it
    run = dev.wait_until_finished(run)
    assert run.status == WorkflowStatus.COMPLETED, run.error
    assert run.task_queue == dev.task_queue


# ---------------------------------------------------------------------- a worker that stopped
def test_a_worker_that_stopped_is_named_with_its_last_poll(dev, monkeypatch):
    queue = nobody_queue()
    assert fresh_status(queue).state == "no_worker"
    assert "none has polled it in the last 5 minutes" in fresh_status(queue).message

    with InProcessWorker(dev, queue):
        polling = wait_for(lambda: (s := fresh_status(queue)).state == "polling" and s, timeout=15)
    assert polling.last_poller == dev.client.identity and polling.message == ""

    # A live worker's last poll can be a minute old (long polls); ours is gone, so once its last
    # poll is older than the threshold (shortened here, 90 s by default) it is reported.
    monkeypatch.setattr(pollers, "STALE_AFTER", 2.0)
    stopped = wait_for(lambda: (s := fresh_status(queue)).state == "no_worker" and s, timeout=30)
    assert stopped.last_poller == dev.client.identity and stopped.last_poll_at is not None
    assert f"no worker is polling task queue '{queue}' since {stopped.last_poll_at:%Y-%m-%d %H:%M:%S} UTC" in (
        stopped.message
    )
    assert f"by {dev.client.identity}" in stopped.message
    assert stopped.message.endswith(f"start one: python manage.py temporal_worker --task-queue {queue}")


def test_answers_are_cached_briefly(dev):
    queue = nobody_queue()
    first = pollers.safe_queue_status(queue)
    assert pollers.safe_queue_status(queue) is first  # a page refreshing every 700 ms asks Temporal once
    assert pollers.CACHE_SECONDS <= 10


def test_the_system_check_warns_when_no_worker_polls_the_configured_queue(dev):
    def worker_warnings():
        pollers.clear_cache()
        problems = run_checks(tags=["temporal"], include_deployment_checks=True)
        return [p for p in problems if p.id == "automation.W011"]

    assert worker_warnings() == []  # the test's worker polls its queue
    with task_queue(nobody_queue()) as queue:
        (warning,) = worker_warnings()
    assert f"no worker is polling task queue '{queue}'" in warning.msg
    assert f"python manage.py temporal_worker --task-queue {queue}" in warning.hint
    assert worker_warnings() == []  # only a deployment check: plain `check` does not ask Temporal
    with task_queue(nobody_queue()):
        assert [p for p in run_checks() if p.id == "automation.W011"] == []


# ---------------------------------------------------------------------- Temporal unreachable
def test_with_temporal_unreachable_the_run_still_reads_and_says_why(dev, api):
    run = start_on(nobody_queue(), user_id=6)
    saved = dict(automation_settings.overrides)
    try:
        automation_settings.overrides["TEMPORAL_ADDRESS"] = "127.0.0.1:1"
        bridge.set_client(None)
        pollers.clear_cache()
        resp = api.get(f"{RUNS}{run.pk}/")
        assert resp.status_code == 200
        worker = resp.json()["worker"]
        assert worker["state"] == "unreachable" and "Temporal is unreachable at 127.0.0.1:1" in worker["message"]
        assert "no worker" not in worker["message"]
        # The cancel itself is the documented 503, as before.
        assert api.post(f"{RUNS}{run.pk}/cancel/", {}, format="json").status_code == 503
        check = run_checks(tags=["temporal"], include_deployment_checks=True)
        assert [p.id for p in check if p.id.startswith("automation.")] == ["automation.E010"]  # not W011 too
    finally:
        automation_settings.overrides.clear()
        automation_settings.overrides.update(saved)
        dev.activate()

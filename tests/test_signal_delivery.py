"""Signal delivery: unknown payload keys (ignored, warned about, or refused), broadcasts to many
runs with bounded concurrency and retries, and repeats that are safe (semantics: "Signal delivery",
"Merging data into the Context", "Waits are race-free")."""

from __future__ import annotations

import asyncio
import io
import logging
import time

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from rest_framework.test import APIClient
from temporalio.service import RPCError, RPCStatusCode

from django_ai.automation.workflows.core import engine
from django_bridge.conf import automation_settings
from django_bridge.models import WorkflowRun
from facade import SignalPayloadError, TemporalUnavailableError, WorkflowStatus
from facade.testing import wait_for
from temporal_worker import client as bridge
from temporal_worker.protocol import SIGNAL_MARKER
from tests.testapp import rule_workflows  # noqa: F401  (registers rules_go_twice)


@pytest.fixture
def unknown_keys_mode():
    saved = dict(automation_settings.overrides)

    def use(mode: str) -> None:
        automation_settings.overrides["UNKNOWN_SIGNAL_KEYS"] = mode

    yield use
    automation_settings.overrides.clear()
    automation_settings.overrides.update(saved)


def waiting(dev, name: str, **kwargs) -> WorkflowRun:
    return dev.wait_until(engine.start(name, **kwargs), lambda r: r.status == WorkflowStatus.SUSPENDED)


# ---------------------------------------------------------------------- unknown keys
def test_a_misspelt_key_is_warned_about_and_listed(dev, caplog):
    run = waiting(dev, "signal_demo")
    with caplog.at_level(logging.WARNING, logger="django_temporal_automation"):
        result = engine.send_signal("go", {"whoo": "Jane", "count": 2}, run_id=run.pk)
    assert result.reached == 1 and result.ignored_keys == ["whoo"]
    warning = next(r.getMessage() for r in caplog.records if "ignored the payload keys" in r.getMessage())
    assert "whoo" in warning and "'signal_demo' has count, who" in warning
    run = dev.wait_until_finished(run)
    assert run.data == {"who": "", "count": 2}  # the rule stands: only Context fields merge

    other = waiting(dev, "signal_demo")
    api = APIClient()
    api.force_login(User.objects.create_user("alice", password="pw"))
    resp = api.post(f"/statezero/runs/{other.pk}/signal/", {"signal": "go", "payload": {"cout": 1}}, format="json")
    assert resp.status_code == 200 and resp.json() == {"reached": 1, "ignored_keys": ["cout"]}


def test_unknown_keys_can_be_an_error(dev, unknown_keys_mode):
    run = waiting(dev, "signal_demo")
    unknown_keys_mode("error")
    with pytest.raises(SignalPayloadError) as err:
        engine.signal("go", {"whoo": "Jane"})
    for part in ("whoo", "signal_demo", "count, who", "spelling", "no run was signalled"):
        assert part in err.value.message, part
    api = APIClient()
    api.force_login(User.objects.create_user("alice", password="pw"))
    resp = api.post("/statezero/runs/signal/", {"signal": "go", "payload": {"whoo": 1}}, format="json")
    assert resp.status_code == 400 and resp.json()["error"] == "SignalPayloadError"
    assert WorkflowRun.objects.get(pk=run.pk).status == WorkflowStatus.SUSPENDED

    unknown_keys_mode("ignore")
    assert engine.send_signal("go", {"whoo": "Jane"}).reached == 1


def test_a_bad_setting_is_reported(dev, unknown_keys_mode):
    from django.core.checks import run_checks
    from django.core.exceptions import ImproperlyConfigured

    unknown_keys_mode("shout")
    assert "automation.E005" in [e.id for e in run_checks()]
    with pytest.raises(ImproperlyConfigured, match="UNKNOWN_SIGNAL_KEYS"):
        engine.signal("go", {"who": "x"})


def test_send_signal_to_a_name_nobody_waits_on_lists_what_runs_wait_on(dev):
    waiting(dev, "signal_demo")
    waiting(dev, "signal_demo")
    waiting(dev, "approval")
    out = io.StringIO()
    call_command("send_signal", "manager_aproval", stdout=out)
    text = out.getvalue()
    assert "reached 0 runs" in text
    assert "runs are waiting on: go (2 runs), manager_approval (1 run)" in text

    call_command("send_signal", "manager_approval", "--payload", '{"aproved": true}', stdout=out)
    assert "ignored payload keys (not Context fields): aproved" in out.getvalue()


# ---------------------------------------------------------------------- broadcasts
def test_bounded_gather_keeps_at_most_limit_in_flight():
    in_flight = peak = 0

    async def call(i: int) -> int:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.001)
        in_flight -= 1
        if i == 7:
            raise ValueError("one fails")
        return i

    results = asyncio.run(bridge.bounded_gather([lambda i=i: call(i) for i in range(250)], 20))
    assert peak == 20
    assert isinstance(results[7], ValueError)  # the others went on
    assert [r for r in results if not isinstance(r, BaseException)] == [i for i in range(250) if i != 7]


def test_overload_is_retried_with_backoff():
    calls = []

    async def overloaded() -> str:
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise RPCError("too many requests", RPCStatusCode.RESOURCE_EXHAUSTED, b"")
        return "sent"

    assert asyncio.run(bridge.with_backoff(overloaded, first_delay=0.01)) == "sent"
    assert len(calls) == 3 and calls[2] - calls[1] >= calls[1] - calls[0]

    async def refused() -> str:
        calls.append(time.monotonic())
        raise RPCError("no", RPCStatusCode.PERMISSION_DENIED, b"")

    calls.clear()
    with pytest.raises(RPCError):
        asyncio.run(bridge.with_backoff(refused, first_delay=0.01))
    assert len(calls) == 1  # a refusal is not retried


def test_a_broadcast_that_fails_part_way_says_how_far_it_got_and_a_repeat_is_safe(dev):
    runs = [waiting(dev, "signal_demo") for _ in range(3)]
    # One run's workflow id is one Temporal refuses (an empty id): its signal fails for good.
    broken = runs[1]
    workflow_id = broken.temporal_workflow_id
    WorkflowRun.objects.filter(pk=broken.pk).update(temporal_workflow_id="")
    with pytest.raises(TemporalUnavailableError) as err:
        engine.signal("go", {"who": "all"})
    assert "it reached 2 of the 3 runs" in err.value.message and "again is safe" in err.value.message
    for run in (runs[0], runs[2]):
        dev.wait_until_finished(run)

    WorkflowRun.objects.filter(pk=broken.pk).update(temporal_workflow_id=workflow_id)
    assert engine.signal("go", {"who": "all"}) == 1  # only the run still waiting
    assert dev.wait_until_finished(broken).data["who"] == "all"


def test_a_repeat_aimed_at_an_earlier_wait_is_ignored(dev):
    run = waiting(dev, "rules_go_twice")
    first_wait = run.wait_seq
    assert engine.signal("rules_go", {"who": "first"}, run_id=run.pk) == 1
    run = dev.wait_until(run, lambda r: r.status == WorkflowStatus.SUSPENDED and r.wait_seq != first_wait)

    async def repeat(client) -> None:
        handle = client.get_workflow_handle(run.temporal_workflow_id)
        # What a repeated engine.signal call sends to a run whose projection lagged behind.
        await handle.signal("rules_go", {SIGNAL_MARKER: True, "payload": {"who": "stale"}, "wait_seq": first_wait})

    bridge.call("repeat", repeat)
    assert engine.signal("rules_go", {"who": "second"}, run_id=run.pk) == 1
    assert dev.wait_until_finished(run).data["seen"] == ["first", "second"]


@pytest.mark.slow
def test_one_broadcast_reaches_hundreds_of_runs(dev):
    count = 300
    started = [engine.start("signal_demo") for _ in range(count)]
    ids = [r.pk for r in started]
    wait_for(
        lambda: WorkflowRun.objects.filter(pk__in=ids, status=WorkflowStatus.SUSPENDED).count() == count,
        timeout=180,
        message=f"{count} runs did not all reach their wait",
    )
    assert engine.signal("go", {"who": "everyone"}) == count
    wait_for(
        lambda: WorkflowRun.objects.filter(pk__in=ids, status=WorkflowStatus.COMPLETED).count() == count,
        timeout=180,
        message="not every run completed after the broadcast",
    )
    assert not WorkflowRun.objects.filter(pk__in=ids).exclude(data__who="everyone").exists()

"""The behaviour rules of docs/semantics.md (context, control flow, history) and the guide examples of the
core sections, on the dev server.

Each test names the rule it proves. Runs are observed through their projection rows
(``WorkflowRun``/``StepExecution``) and, where "nothing happened" must be shown, through the
Temporal history of the run's workflow.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from decimal import Decimal

import pytest
from django.db import transaction
from temporalio.api.enums.v1 import EventType
from temporalio.service import RPCError, RPCStatusCode

from django_ai.automation.workflows.core import (
    Retry,
    engine,
    get_context,
    goto,
    wait,
    wait_for_event,
)
from django_ai.automation.workflows.models import StepExecution, WorkflowRun, WorkflowStatus
from django_bridge.conf import automation_settings
from facade import ContextUnavailableError, SignalPayloadError, TemporalUnavailableError, registry
from temporal_worker import client as bridge
from tests.testapp import rule_workflows as rw

# ---------------------------------------------------------------------------- helpers


def signals_in_history(env, run) -> int:
    """How many signals the run's Temporal workflow has received."""
    history = env.history(run)
    return sum(1 for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)


def rows(run) -> list[tuple[str, str]]:
    return [(e.step_name, e.status) for e in StepExecution.objects.filter(run_id=run.pk).order_by("seq", "created_at")]


def describe(env, workflow_id: str):
    return bridge.run_sync(env.client.get_workflow_handle(workflow_id).describe(), timeout=30)


def terminate(env, run) -> None:
    """End a run the test leaves waiting, so it does not linger on the session's server."""
    workflow_id = WorkflowRun.objects.values_list("temporal_workflow_id", flat=True).get(pk=run.pk)

    async def stop() -> None:
        try:
            await env.client.get_workflow_handle(workflow_id).terminate(reason="test cleanup")
        except RPCError:
            pass

    bridge.run_sync(stop(), timeout=30)


def suspended_on(signal: str):
    return lambda r: r.status == WorkflowStatus.SUSPENDED and r.waiting_signal == signal


# ---------------------------------------------------------------------------- guide examples


def test_guide_navigation_takes_both_branches(dev):
    big = engine.start("order_routing", order_total=1500)
    small = engine.start("order_routing", order_total=10)
    big, small = dev.wait_until_finished(big), dev.wait_until_finished(small)
    assert big.status == small.status == WorkflowStatus.COMPLETED, (big.error, small.error)
    assert [s for s, _ in rows(big)] == ["process_order", "require_approval", "fulfill_immediately"]
    assert [s for s, _ in rows(small)] == ["process_order", "fulfill_immediately"]
    assert big.data["approved_by"] == "auto" and small.data["approved_by"] == ""


def test_guide_completion_and_failure(dev):
    ok = engine.start("final_check", all_validations_passed=True)
    bad = engine.start("final_check", all_validations_passed=False)
    ok, bad = dev.wait_until_finished(ok), dev.wait_until_finished(bad)
    assert ok.status == WorkflowStatus.COMPLETED, ok.error
    assert ok.data["final_status"] == "approved"
    datetime.fromisoformat(ok.data["completion_date"])
    assert bad.status == WorkflowStatus.FAILED
    assert bad.error == "Validation failed: missing required documents"


def test_guide_wait_for_approval_signal_then_next_step(dev):
    """The "Waiting for Signals" example: manager_approval, then user_response.

    Return form (semantics: "Gate waits and return waits").
    """
    run = engine.start("approval")
    dev.wait_until(run, suspended_on("manager_approval"))
    assert engine.signal("manager_approval", {"approved": True, "notes": "Looks good"}) == 1
    run = dev.wait_until(run, suspended_on("user_response"))
    assert run.current_step == "wait_with_timeout"
    assert run.data["approved"] is True and run.data["notes"] == "Looks good"
    assert run.on_timeout_step == "send_final_notice" and run.wake_at is not None
    assert engine.signal("user_response") == 1
    run = dev.wait_until_finished(run)
    # Resumed at the next step in declaration order, which is the timeout handler here.
    assert run.status == WorkflowStatus.COMPLETED, run.error
    assert run.data["status"] == "expired"


def test_guide_wait_for_event_merges_event_fields(dev):
    """wait_for_event("X") waits on signal "event:X" (semantics: "Gate waits and return waits");
    event_id/event_name/entity_id merge (semantics: "Merging data into the Context")."""
    run = engine.start("payment_wait")
    run = dev.wait_until(run, suspended_on("event:payment_received"))
    assert engine.signal("payment_received", {"event_id": 1}) == 0  # the bare name is another signal
    payload = {"event_id": 7, "event_name": "payment_received", "entity_id": "42", "not_a_field": 1}
    assert engine.signal("event:payment_received", payload) == 1
    run = dev.wait_until_finished(run)
    assert run.status == WorkflowStatus.COMPLETED, run.error
    assert run.data["event_id"] == 7 and run.data["event_name"] == "payment_received"
    assert run.data["entity_id"] == "42" and run.data["fulfilled"] is True and not run.data["cancelled"]
    assert "not_a_field" not in run.data
    assert [s for s, _ in rows(run)] == ["process_payment", "fulfill_order"]


def test_guide_complete_merges_decimal_and_str_not_display_fields(dev):
    """Data Merging, complete(): Context fields merge; display_title/subtitle go to completion_display."""
    run = engine.start("rules_finalize_order", calculated_total=Decimal("123.45"))
    run = dev.wait_until_finished(run)
    assert run.status == WorkflowStatus.COMPLETED, run.error
    assert Decimal(run.data["final_total"]) == Decimal("123.45")
    assert run.data["order_status"] == "completed"
    assert datetime.fromisoformat(run.data["completion_timestamp"]).tzinfo is not None
    assert "display_title" not in run.data and "display_subtitle" not in run.data
    assert run.completion_display == {"display_title": "Order Complete!", "display_subtitle": "Total: $123.45"}
    assert run.current_step_display["completion_display"]["display_title"] == "Order Complete!"


def test_guide_signal_payload_merges_into_review_context(dev, capsys):
    """Data Merging, signals: the "review" example's three fields merge; unknown keys are ignored."""
    run = engine.start("review")
    dev.wait_until(run, suspended_on("review_completed"))
    sent = engine.signal(
        "review_completed",
        {"reviewer_name": "Jane Smith", "review_notes": "Looks good!", "approved": True, "unknown": "x"},
    )
    assert sent == 1
    run = dev.wait_until_finished(run)
    assert run.status == WorkflowStatus.COMPLETED, run.error
    assert run.data == {
        "reviewer_name": "Jane Smith",
        "review_notes": "Looks good!",
        "approved": True,
        "processed": True,
    }
    assert "Reviewed by: Jane Smith" in capsys.readouterr().out


def test_guide_progress_example(dev):
    """Progress Tracking: 0.25/0.5/0.75 after each goto, complete() sets 1.0 (semantics: "Progress")."""
    token = uuid.uuid4().hex
    run = engine.start("rules_progress_guide", token=token)
    run = dev.wait_until_finished(run)
    assert run.status == WorkflowStatus.COMPLETED, run.error
    # Each step read the projected progress of its own run when it was entered.
    assert run.data["seen"] == [0.0, 0.25, 0.5, 0.75]
    assert run.progress == 1.0
    percentage = run.progress * 100
    assert f"Workflow is {percentage:.0f}% complete" == "Workflow is 100% complete"
    display = run.current_step_display
    assert display["progress"] == 1.0 and display["status"] == "completed"
    assert display.get("waiting_display", {}).get("display_title", "Processing...") == "Processing..."


def test_guide_step_execution_history_and_fail_row(dev, capsys):
    """Step Execution History, as written: completed and failed rows with errors."""
    run = engine.start("rules_history", end="fail", signal=f"rules:history:{uuid.uuid4().hex}")
    dev.wait_until(run, lambda r: r.status == WorkflowStatus.SUSPENDED)
    assert engine.signal(run.data["signal"], run_id=run.pk) == 1
    run = dev.wait_until_finished(run)
    executions = run.step_executions.all()
    for execution in executions:
        status_emoji = "✅" if execution.status == "completed" else "❌"
        print(f"{status_emoji} {execution.step_name} - {execution.created_at}")
        if execution.error:
            print(f"   Error: {execution.error}")
    out = capsys.readouterr().out
    assert "✅ first" in out and "❌ last" in out and "Error: the reviewer said no" in out
    # fail() records a failed row with the reason, after the completed ones (semantics: "Step history").
    assert run.status == WorkflowStatus.FAILED and run.error == "the reviewer said no"
    assert rows(run) == [("first", "completed"), ("sleeper", "completed"), ("last", "failed")]
    assert run.step_executions.get(status="failed").error == "the reviewer said no"


def test_guide_retry_policies(dev):
    """Workflow-level default_retry and the step-level override of the guide's api_integration."""
    definition = registry.get("rules_api_integration")
    assert definition.steps["next_step"].retry == Retry(
        max_attempts=5, base_delay=rw.timedelta(seconds=2), max_delay=rw.timedelta(minutes=5), backoff_factor=2.0
    )
    assert definition.steps["call_external_api"].retry == Retry(max_attempts=10, base_delay=rw.timedelta(seconds=1))
    endpoint = f"https://api.example.test/{uuid.uuid4().hex}"
    rw.API_RESPONSES[endpoint] = [503]
    run = engine.start("rules_api_integration", endpoint=endpoint)
    # While backing off after the 503 the run is WAITING with its wake-up time (semantics: "Step retries").
    waiting = dev.wait_until(run, lambda r: r.status == WorkflowStatus.WAITING)
    assert waiting.current_step == "call_external_api" and waiting.wake_at is not None
    run = dev.wait_until_finished(run)
    assert run.status == WorkflowStatus.COMPLETED, run.error
    assert rw.API_CALLS[endpoint] == 2 and run.data["finished"] is True
    # The failed attempt is not a history row (semantics: "Step history"): one completed row per step.
    assert rows(run) == [("begin", "completed"), ("call_external_api", "completed"), ("next_step", "completed")]


# ------------------------------------------------------ semantics: "Where the Context is available"


def test_get_context_is_self_context_in_step_and_on_fail(dev):
    ok = engine.start("rules_context_identity")
    failed = engine.start("rules_context_identity", fail_it=True)
    ok, failed = dev.wait_until_finished(ok), dev.wait_until_finished(failed)
    assert ok.status == WorkflowStatus.COMPLETED, ok.error
    assert ok.data["in_step_same"] is True
    assert failed.status == WorkflowStatus.FAILED
    assert failed.data["in_step_same"] is True and failed.data["in_on_fail_same"] is True


def test_get_context_outside_a_step_says_where_it_works():
    with pytest.raises(ContextUnavailableError) as err:
        get_context()
    message = str(err.value)
    assert "outside a workflow step" in message
    for place in ("@step", "@on_fail", "on_create", "action step", "agent handler"):
        assert place in message
    assert "run.data" in message  # and what to do instead


# -------------------------------------------------- semantics: "Failed attempts keep their context"


def test_changes_before_an_exception_reach_the_next_attempt(dev):
    """The guide's ``ctx.attempts += 1; raise``: if failed attempts lost their context, attempts would stay 1
    and never pass 2 (semantics: "Failed attempts keep their context")."""
    run = engine.start("rules_checkout_ops", reservation_id=1, fail_times=2)
    run = dev.wait_until_finished(run)
    assert run.status == WorkflowStatus.COMPLETED, run.error
    assert run.data["attempts"] == 3 and run.data["notified"] is True and run.data["final_state"] == "ok"
    assert rows(run) == [("notify_housekeeping", "completed"), ("finalize", "completed")]


def test_checkout_ops_notify_housekeeping_as_in_the_guide(dev):
    run = engine.start("rules_checkout_ops", reservation_id=9)  # fails once, like the guide
    run = dev.wait_until_finished(run)
    assert run.status == WorkflowStatus.COMPLETED, run.error
    assert run.data["attempts"] == 2 and run.data["final_state"] == "ok"


# ------------------------------------------------------- semantics: "Merging data into the Context"


def test_complete_merges_only_context_fields(dev):
    run = dev.wait_until_finished(engine.start("rules_complete_merge"))
    assert run.status == WorkflowStatus.COMPLETED, run.error
    assert run.data == {"count": 3, "kind": "unknown_keys"}
    assert run.completion_display == {"display_title": "Done"}


def test_complete_with_values_that_fail_the_context_fails_the_run(dev):
    run = dev.wait_until_finished(engine.start("rules_complete_merge", kind="bad_value"))
    assert run.status == WorkflowStatus.FAILED
    assert "rules_complete_merge" in run.error and "'produce'" in run.error and "count" in run.error
    assert run.data["count"] == 0


def test_refused_payload_changes_and_wakes_no_run(dev):
    """A payload one waiting Context refuses raises at the sender; no run is signalled at all."""
    as_int = engine.start("rules_shared_int")
    as_str = engine.start("rules_shared_str")
    as_int = dev.wait_until(as_int, suspended_on("rules:shared"))
    as_str = dev.wait_until(as_str, suspended_on("rules:shared"))
    with pytest.raises(SignalPayloadError) as err:
        engine.signal("rules:shared", {"count": "not a number"})
    assert err.value.workflow == "rules_shared_int" and err.value.run_id == as_int.pk
    assert "count" in str(err.value) and "no run was signalled" in str(err.value)
    for before in (as_int, as_str):
        after = WorkflowRun.objects.get(pk=before.pk)
        assert after.status == WorkflowStatus.SUSPENDED and after.waiting_signal == "rules:shared"
        assert after.data == before.data and after.wait_seq == before.wait_seq
        assert signals_in_history(dev, after) == 0
    # A payload both accept still works afterwards.
    assert engine.signal("rules:shared", {"count": 5}) == 2
    as_int, as_str = dev.wait_until_finished(as_int), dev.wait_until_finished(as_str)
    assert as_int.data == {"count": 5} and as_str.data == {"count": 5}


def test_refused_payload_for_the_review_example(dev):
    run = dev.wait_until(engine.start("review"), suspended_on("review_completed"))
    with pytest.raises(SignalPayloadError):
        engine.signal("review_completed", {"reviewer_name": "Jane", "approved": "perhaps"})
    after = WorkflowRun.objects.get(pk=run.pk)
    assert after.status == WorkflowStatus.SUSPENDED and after.data == run.data
    assert signals_in_history(dev, run) == 0
    assert engine.signal("review_completed", {"reviewer_name": "Jane", "approved": True}) == 1
    assert dev.wait_until_finished(run).data["reviewer_name"] == "Jane"


# ------------------------------------------------------------------------ semantics: "Goto targets"


def test_goto_by_name_and_by_bound_method(dev):
    run = dev.wait_until_finished(engine.start("rules_goto"))
    assert run.status == WorkflowStatus.COMPLETED, run.error
    assert run.data["path"] == ["start", "by_name", "by_method"]


@pytest.mark.parametrize("target", ["nowhere", "helper"])
def test_goto_to_a_non_step_fails_naming_workflow_step_and_target(dev, target):
    run = dev.wait_until_finished(engine.start("rules_goto", target=target))
    assert run.status == WorkflowStatus.FAILED
    assert "rules_goto" in run.error and "'start'" in run.error and repr(target) in run.error
    assert "not a @step" in run.error
    assert rows(run) == [("start", "failed")]
    assert StepExecution.objects.get(run_id=run.pk).error == run.error


# ------------------------------------------------------ semantics: "Sleep runs the same step again"


def test_sleep_runs_the_same_step_again_without_history_rows(dev):
    run = engine.start("rules_sleep_loop", sleep_ms=1000, times=2)
    waiting = dev.wait_until(run, lambda r: r.status == WorkflowStatus.WAITING)
    assert waiting.current_step == "tick" and waiting.wake_at is not None
    assert waiting.data["loops"] == 1 and rows(waiting) == []
    run = dev.wait_until_finished(run)
    assert run.status == WorkflowStatus.COMPLETED, run.error
    assert run.data["loops"] == 2
    assert rows(run) == [("tick", "completed"), ("done", "completed")]


# ------------------------------------- return-form waits (semantics: "Gate waits and return waits")


def test_wait_forms_are_the_same():
    assert wait("x") == wait.for_signal("x")
    assert wait("x").signal == "x"
    assert wait_for_event("X").signal == "event:X" == wait.for_event("X").signal
    assert wait_for_event("X").event == "X"


def test_return_form_wait_resumes_at_the_next_declared_step_and_completes_after_the_last(dev):
    signal = f"rules:resume:{uuid.uuid4().hex}"
    run = engine.start("rules_wait_resume", signal=signal)
    run = dev.wait_until(run, suspended_on(signal))
    assert run.current_step == "ask" and rows(run) == []  # suspending records no row (semantics: "Step history")
    assert engine.signal(signal, {"value": "first"}) == 1
    run = dev.wait_until(run, suspended_on(signal + ":end"))
    assert run.current_step == "last_wait"
    assert engine.signal(signal + ":end", {"value": "second"}) == 1
    run = dev.wait_until_finished(run)
    assert run.status == WorkflowStatus.COMPLETED, run.error
    assert run.data["path"] == ["ask", "after_ask:first", "last_wait"]
    assert run.data["value"] == "second"  # the last payload merged on completion
    assert run.progress == 1.0 and run.waiting_signal == ""
    assert rows(run) == [("after_ask", "completed")]


# ----------------------------------------------------------------------- semantics: "Wait timeouts"


def test_wait_timeout_goes_to_on_timeout(dev):
    signal = f"rules:timeout:{uuid.uuid4().hex}"
    run = engine.start("rules_wait_timeout", signal=signal, with_fallback=True)
    run = dev.wait_until_finished(run)
    assert run.status == WorkflowStatus.COMPLETED, run.error
    assert run.data["outcome"] == "timed out"
    assert rows(run) == [("timed_out", "completed")]


def test_wait_timeout_without_on_timeout_fails_the_run(dev):
    signal = f"rules:timeout:{uuid.uuid4().hex}"
    run = engine.start("rules_wait_timeout", signal=signal, with_fallback=False)
    run = dev.wait_until_finished(run)
    assert run.status == WorkflowStatus.FAILED
    assert f"timed out waiting for '{signal}'" in run.error
    assert rows(run) == [("ask", "failed")]
    assert run.waiting_signal == ""


def test_signal_before_the_timeout_wins(dev):
    signal = f"rules:timeout:{uuid.uuid4().hex}"
    run = engine.start("rules_wait_timeout", signal=signal, timeout_ms=20000)
    dev.wait_until(run, suspended_on(signal))
    assert engine.signal(signal) == 1
    run = dev.wait_until_finished(run)
    assert run.data["outcome"] == "answered", run.error


# --------------------------------------------------------------------- semantics: "Signal delivery"


def test_signal_returns_how_many_runs_it_reached(dev):
    signal = f"rules:count:{uuid.uuid4().hex}"
    runs = [engine.start("rules_wait_resume", signal=signal) for _ in range(3)]
    for run in runs:
        dev.wait_until(run, suspended_on(signal))
    assert engine.signal(signal + ":nobody") == 0
    assert engine.signal(signal) == 3
    for run in runs:
        dev.wait_until(run, suspended_on(signal + ":end"))
    assert engine.signal(signal) == 0  # nobody waits on it any more
    assert engine.signal(signal + ":end") == 3
    for run in runs:
        assert dev.wait_until_finished(run).status == WorkflowStatus.COMPLETED


def test_signal_run_id_targets_one_run(dev):
    signal = f"rules:one:{uuid.uuid4().hex}"
    first = engine.start("rules_wait_resume", signal=signal)
    second = engine.start("rules_wait_resume", signal=signal)
    dev.wait_until(first, suspended_on(signal))
    dev.wait_until(second, suspended_on(signal))
    assert engine.signal(signal, {"value": "only"}, run_id=first.pk) == 1
    first = dev.wait_until(first, suspended_on(signal + ":end"))
    assert first.data["path"][-2] == "after_ask:only"
    second = WorkflowRun.objects.get(pk=second.pk)
    assert second.status == WorkflowStatus.SUSPENDED and second.waiting_signal == signal
    assert signals_in_history(dev, second) == 0
    assert engine.signal(signal, run_id=first.pk) == 0  # it no longer waits on that signal
    terminate(dev, first)
    terminate(dev, second)


def test_signal_nothing_is_buffered_for_later_waiters(dev):
    """A signal sent while the run is still working (not yet waiting) reaches nobody, later neither."""
    token = uuid.uuid4().hex
    signal = f"rules:early:{token}"
    assert engine.signal(signal, {"value": "before start"}) == 0
    run = engine.start("rules_slow_then_wait", token=token, signal=signal)
    assert rw.STEP_ENTERED[token].wait(timeout=20), "the step never started"
    assert engine.signal(signal, {"value": "while working"}) == 0
    rw.STEP_RELEASE[token].set()
    run = dev.wait_until(run, suspended_on(signal))
    assert signals_in_history(dev, run) == 0
    assert WorkflowRun.objects.get(pk=run.pk).status == WorkflowStatus.SUSPENDED
    assert engine.signal(signal, {"value": "after waiting"}) == 1
    run = dev.wait_until_finished(run)
    assert run.status == WorkflowStatus.COMPLETED, run.error
    assert run.data["value"] == "after waiting"
    assert signals_in_history(dev, run) == 1


def test_signal_reaches_only_suspended_waiters_of_that_name(dev):
    signal = f"rules:name:{uuid.uuid4().hex}"
    run = dev.wait_until(engine.start("rules_wait_resume", signal=signal), suspended_on(signal))
    assert engine.signal(signal + "x") == 0 and engine.signal(signal[:-1]) == 0
    assert signals_in_history(dev, run) == 0
    terminate(dev, run)


# ----------------------------------------------------------------- semantics: "Waits are race-free"


def test_signal_sent_as_soon_as_the_projection_says_suspended_is_not_lost(dev):
    """Signal each run the moment its row says SUSPENDED (often before the workflow applied the wait)."""
    signal = f"rules:race:{uuid.uuid4().hex}"
    runs = [engine.start("rules_wait_resume", signal=signal) for _ in range(10)]
    pending = {run.pk for run in runs}
    deadline = time.monotonic() + 30
    while pending and time.monotonic() < deadline:
        ready = set(
            WorkflowRun.objects.filter(
                pk__in=pending, status=WorkflowStatus.SUSPENDED, waiting_signal=signal
            ).values_list("pk", flat=True)
        )
        for pk in ready:
            assert engine.signal(signal, {"value": str(pk)}, run_id=pk) == 1
        pending -= ready
    assert not pending, f"runs {sorted(pending)} never suspended"
    for run in runs:
        run = dev.wait_until(run, suspended_on(signal + ":end"))
        assert run.data["path"][-2] == f"after_ask:{run.pk}"
    assert engine.signal(signal + ":end") == len(runs)
    for run in runs:
        assert dev.wait_until_finished(run).status == WorkflowStatus.COMPLETED


def test_signal_sent_before_the_workflow_applied_the_wait_is_not_lost(dev):
    """The step itself signals from a side thread the instant its projection says SUSPENDED.

    That signal usually reaches Temporal before the workflow has processed the step's result
    (seen in the history: the signal lands before the workflow task that applies the wait), so
    this drives the race a wait must survive (semantics: "Waits are race-free"); without the
    early-signal buffer these runs hang.
    """
    runs = []
    for _ in range(20):
        token = uuid.uuid4().hex
        runs.append((token, engine.start("rules_race", token=token, signal=f"rules:race:{token}")))
    raced = 0
    for token, run in runs:
        run = dev.wait_until_finished(run)
        assert run.status == WorkflowStatus.COMPLETED, run.error
        assert run.data["value"] == "raced" and rw.RACE_SENT[token] == 1
        events = [e.event_type for e in dev.history(run).events]
        signalled = events.index(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)
        step_done = events.index(EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)
        applied = events.index(EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, step_done)
        raced += signalled < applied
    assert raced >= 1, "no run received its signal before applying the wait: the race was not exercised"


# ---------------------------------------------------------------------------- semantics: "Progress"


def test_progress_clamped_left_by_waits_gotos_and_sleeps_complete_sets_one(dev):
    token = uuid.uuid4().hex
    signal = f"rules:progress:{token}"
    run = engine.start("rules_progress", token=token, signal=signal)
    run = dev.wait_until(run, suspended_on(signal))
    assert run.progress == 0.25 and run.current_step == "p2"
    assert run.current_step_display["progress"] == 0.25
    assert engine.signal(signal) == 1
    run = dev.wait_until_finished(run)
    assert run.status == WorkflowStatus.COMPLETED, run.error
    assert run.data["seen"] == {"p4": 0.25, "p5": 1.0, "p6": 0.0, "slept": 1, "after_sleep": 0.0}
    assert run.progress == 1.0


def test_goto_progress_is_clamped_when_built():
    assert goto("x", progress=7).progress == 1.0
    assert goto("x", progress=-3).progress == 0.0
    assert goto("x", progress=0.5).progress == 0.5
    assert goto("x").progress is None


# ------------------------------------------------------------------------ semantics: "Step retries"


def test_exhausted_retries_fail_the_run_with_a_failed_row(dev):
    run = dev.wait_until_finished(engine.start("rules_retry_exhaust"))
    assert run.status == WorkflowStatus.FAILED
    # max_attempts counts every attempt, and failed attempts kept the count
    # (semantics: "Failed attempts keep their context").
    assert run.data["attempts"] == 3
    assert "always_fails" in run.error and "3 attempts" in run.error and "boom on attempt 3" in run.error
    failed = StepExecution.objects.get(run_id=run.pk)
    assert (failed.step_name, failed.status) == ("always_fails", "failed")
    assert "boom on attempt 3" in failed.error


def test_default_retry_of_the_workflow_applies(dev):
    run = dev.wait_until_finished(engine.start("rules_retry_default"))
    assert run.status == WorkflowStatus.FAILED
    assert run.data["attempts"] == 2 and "2 attempts" in run.error


def test_retry_attempts_count_afresh_for_each_step(dev):
    run = dev.wait_until_finished(engine.start("rules_retry_per_step"))
    assert run.status == WorkflowStatus.COMPLETED, run.error
    assert run.data == {"first_attempts": 2, "second_attempts": 2}


def test_temporal_unavailable_inside_a_step_is_retried_not_fatal(dev):
    """TemporalUnavailableError is transient: unlike programming errors it must not fail the run."""
    run = dev.wait_until_finished(engine.start("rules_temporal_hiccup"))
    assert run.status == WorkflowStatus.COMPLETED, run.error
    assert run.data["attempts"] == 2


def test_backoff_delays_and_waiting_while_backing_off(dev):
    run = engine.start("rules_retry_backoff")
    waiting = dev.wait_until(run, lambda r: r.status == WorkflowStatus.WAITING)
    assert waiting.current_step == "flaky" and waiting.waiting_signal == ""
    # wake_at is when the retry is due: base_delay (1s) after the failed attempt.
    assert abs((waiting.wake_at - waiting.updated_at).total_seconds() - 1.0) < 0.1
    assert waiting.current_step_display["step_type"] == "waiting"
    run = dev.wait_until_finished(run)
    assert run.status == WorkflowStatus.COMPLETED, run.error
    t1, t2, t3 = run.data["attempt_times"]
    # min(base_delay * backoff_factor ** (k - 1), max_delay): 1s, then 2s.
    assert 0.9 <= t2 - t1 < 1.9, t2 - t1
    assert 1.9 <= t3 - t2 < 3.5, t3 - t2
    assert rows(run) == [("flaky", "completed")]


def test_retry_policy_defaults_and_delays():
    r = Retry()
    assert (r.max_attempts, r.base_delay, r.max_delay, r.backoff_factor) == (
        3,
        rw.timedelta(seconds=1),
        rw.timedelta(minutes=5),
        2.0,
    )
    r = Retry(max_attempts=10, base_delay=rw.timedelta(seconds=2), max_delay=rw.timedelta(seconds=10))
    assert [r.delay_before(k).total_seconds() for k in (2, 3, 4, 5)] == [2, 4, 8, 10]


# ---------------------------------------------------------- semantics: "Steps return a step result"


@pytest.mark.parametrize(("kind", "shown"), [("none", "None"), ("string", "'done'")])
def test_a_non_result_fails_naming_workflow_step_and_value(dev, kind, shown):
    run = dev.wait_until_finished(engine.start("rules_bad_result", kind=kind))
    assert run.status == WorkflowStatus.FAILED
    assert "rules_bad_result" in run.error and "'produce'" in run.error
    assert f"returned {shown}" in run.error and "not a step result" in run.error
    assert rows(run) == [("produce", "failed")]


# ------------------------------------------------------------------------ semantics: "Step history"


def test_history_rows_for_goto_and_complete_none_for_sleep_and_suspend(dev):
    signal = f"rules:history:{uuid.uuid4().hex}"
    run = engine.start("rules_history", signal=signal)
    run = dev.wait_until(run, suspended_on(signal))
    assert run.data["slept"] is True
    assert rows(run) == [("first", "completed"), ("sleeper", "completed")]
    assert engine.signal(signal) == 1
    run = dev.wait_until_finished(run)
    assert run.status == WorkflowStatus.COMPLETED, run.error
    # sleeper slept once (no row), then went on (row); waiter suspended (no row).
    assert rows(run) == [("first", "completed"), ("sleeper", "completed"), ("last", "completed")]


def test_run_subflow_records_a_completed_row(dev):
    run = dev.wait_until_finished(engine.start("rules_parent"))
    assert run.status == WorkflowStatus.COMPLETED, run.error
    assert run.data["child_status"] == "completed"
    assert rows(run) == [("spawn", "completed"), ("after", "completed")]
    child = WorkflowRun.objects.get(parent_id=run.pk)
    assert child.status == WorkflowStatus.COMPLETED and rows(child) == [("work", "completed")]


# ---------------------------------------------------------------------------- starting runs


def test_start_in_a_rolled_back_transaction_leaves_no_run_and_no_workflow(dev):
    class Rollback(Exception):
        pass

    with pytest.raises(Rollback), transaction.atomic():
        run = engine.start("user_onboarding", user_id=1)
        workflow_id = run.temporal_workflow_id
        raise Rollback
    assert workflow_id
    assert not WorkflowRun.objects.filter(pk=run.pk).exists()
    with pytest.raises(RPCError) as err:
        describe(dev, workflow_id)
    assert err.value.status == RPCStatusCode.NOT_FOUND


def test_start_in_a_committed_transaction_starts_on_commit(dev):
    with transaction.atomic():
        run = engine.start("user_onboarding", user_id=2)
        with pytest.raises(RPCError) as err:
            describe(dev, run.temporal_workflow_id)  # not before the commit
        assert err.value.status == RPCStatusCode.NOT_FOUND
    assert describe(dev, run.temporal_workflow_id).id == run.temporal_workflow_id
    run = dev.wait_until_finished(run)
    assert run.status == WorkflowStatus.COMPLETED, run.error
    assert run.temporal_run_id


@pytest.fixture
def unreachable_temporal(dev):
    """Point the engine at a closed port for one test, then restore the test server's client."""
    saved = dict(automation_settings.overrides)
    automation_settings.overrides.update(TEMPORAL_ADDRESS="127.0.0.1:1", START_ATTEMPTS=2)
    bridge.set_client(None)
    try:
        yield
    finally:
        automation_settings.overrides.clear()
        automation_settings.overrides.update(saved)
        dev.activate()


def test_a_start_temporal_never_received_is_reported_on_the_run(unreachable_temporal):
    started = time.monotonic()
    with pytest.raises(TemporalUnavailableError) as err:
        engine.start("user_onboarding", user_id=3)
    assert time.monotonic() - started < 10
    run = WorkflowRun.objects.get(name="user_onboarding", data__user_id=3)
    assert run.status == WorkflowStatus.FAILED and run.finished_at is not None
    assert err.value.run_id == run.pk and err.value.workflow == "user_onboarding"
    for part in ("user_onboarding", str(run.pk), "127.0.0.1:1", "2 attempts", "TEMPORAL_ADDRESS", "retry_current_step"):
        assert part in run.error, part
    assert str(err.value) == run.error


def test_a_start_the_server_refuses_is_reported_on_the_run(dev):
    """The server is up but refuses the start (unknown namespace)."""
    saved = dict(automation_settings.overrides)
    automation_settings.overrides.update(
        TEMPORAL_ADDRESS=dev.client.service_client.config.target_host,
        TEMPORAL_NAMESPACE="rules-no-such-namespace",
        START_ATTEMPTS=1,
    )
    bridge.set_client(None)
    try:
        with pytest.raises(TemporalUnavailableError) as err:
            engine.start("user_onboarding", user_id=5)
    finally:
        automation_settings.overrides.clear()
        automation_settings.overrides.update(saved)
        dev.activate()
    run = WorkflowRun.objects.get(pk=err.value.run_id)
    assert run.status == WorkflowStatus.FAILED
    assert "rules-no-such-namespace" in run.error and "after 1 attempt" in run.error


def test_a_start_on_commit_that_never_lands_is_reported_on_the_run(unreachable_temporal):
    with transaction.atomic():
        run = engine.start("user_onboarding", user_id=4)
    run.refresh_from_db()
    assert run.status == WorkflowStatus.FAILED and "could not start on Temporal" in run.error

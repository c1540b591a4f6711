"""Bad input at the boundary: a clear error naming the problem and the fix, and nothing changed.

``engine.start`` / ``engine.signal`` refuse before a row is written or a signal is sent;
``Retry`` refuses at construction; a bad value built inside a step fails that run with an
error naming the workflow and the step. (Bad ``@workflow`` classes: ``test_definition.py``.)
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from temporalio.api.enums.v1 import EventType

from django_ai.automation.workflows.core import Retry, engine
from django_ai.automation.workflows.models import WorkflowRun, WorkflowStatus
from facade import InvalidInputError, SignalPayloadError, UnknownWorkflowError
from tests.testapp import rule_workflows  # noqa: F401  (registers the rules_* workflows)


@pytest.fixture
def no_new_rows(db):
    """Assert the test created no WorkflowRun."""
    before = WorkflowRun.objects.count()
    yield
    assert WorkflowRun.objects.count() == before


# ---------------------------------------------------------------------------- engine.start


@pytest.mark.usefixtures("no_new_rows")
def test_start_unknown_workflow_names_it_and_the_fix():
    with pytest.raises(UnknownWorkflowError) as err:
        engine.start("user_onbording", user_id=1)
    message = str(err.value)
    assert "'user_onbording'" in message and "user_onboarding" in message  # lists what exists
    assert "WORKFLOW_MODULES" in message and "workflows/automations" in message
    assert err.value.workflow == "user_onbording"


@pytest.mark.usefixtures("no_new_rows")
@pytest.mark.parametrize("name", ["", None, 42])
def test_start_needs_a_workflow_name(name):
    with pytest.raises(InvalidInputError, match="needs a workflow name"):
        engine.start(name)


@pytest.mark.usefixtures("no_new_rows")
def test_start_kwargs_that_fail_the_context():
    with pytest.raises(InvalidInputError) as err:
        engine.start("user_onboarding", user_id="not a number")
    message = str(err.value)
    assert "'user_onboarding'" in message and "user_id" in message and "Context" in message
    assert "Pass values of the Context's field types" in message


@pytest.mark.usefixtures("no_new_rows")
def test_start_kwargs_that_create_context_does_not_take():
    with pytest.raises(InvalidInputError) as err:
        engine.start("user_onboarding", uid=1)
    message = str(err.value)
    assert "create_context(user_id: int)" in message and "['uid']" in message
    assert "Pass the arguments create_context takes" in message


@pytest.mark.usefixtures("no_new_rows")
def test_start_missing_required_context_field_without_create_context():
    with pytest.raises(InvalidInputError) as err:
        engine.start("order_fulfillment")
    assert "order_id" in str(err.value) and "'order_fulfillment'" in str(err.value)


@pytest.mark.usefixtures("no_new_rows")
def test_start_unknown_kwarg_without_create_context_is_refused():
    """A typo must not be dropped silently: Context(**kwargs) would ignore it."""
    with pytest.raises(InvalidInputError) as err:
        engine.start("order_fulfillment", order_id=1, shiped=True)
    message = str(err.value)
    assert "'order_fulfillment'" in message and "shiped" in message and "order_id" in message


# ---------------------------------------------------------------------------- engine.signal


@pytest.mark.parametrize("name", ["", "   ", None, 3])
def test_signal_needs_a_non_empty_name(name):
    with pytest.raises(InvalidInputError, match="non-empty signal name"):
        engine.signal(name)


@pytest.mark.parametrize("payload", [["approved"], "approved", 1, ("a", 1)])
def test_signal_payload_must_be_a_dict(payload):
    with pytest.raises(InvalidInputError) as err:
        engine.signal("review_completed", payload)
    assert "must be a dict of Context fields or None" in str(err.value)
    assert type(payload).__name__ in str(err.value)


def _signals(env, run) -> int:
    return sum(1 for e in env.history(run).events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)


def test_bad_signals_leave_a_waiting_run_untouched(dev):
    run = engine.start("review")
    run = dev.wait_until(run, lambda r: r.status == WorkflowStatus.SUSPENDED and r.waiting_signal == "review_completed")
    for name, payload in (("", {}), ("review_completed", ["x"]), ("review_completed", "x")):
        with pytest.raises(InvalidInputError):
            engine.signal(name, payload)
    with pytest.raises(SignalPayloadError) as err:
        engine.signal("review_completed", {"approved": "perhaps", "reviewer_name": "Jane"})
    message = str(err.value)
    assert "'review'" in message and f"run {run.pk}" in message and "approved" in message
    assert "Send values of the Context's field types" in message
    after = WorkflowRun.objects.get(pk=run.pk)
    assert (after.status, after.waiting_signal, after.data, after.wait_seq) == (
        WorkflowStatus.SUSPENDED,
        "review_completed",
        run.data,
        run.wait_seq,
    )
    assert _signals(dev, run) == 0
    assert engine.signal("review_completed", {"approved": True}) == 1
    assert dev.wait_until_finished(run).status == WorkflowStatus.COMPLETED


# ---------------------------------------------------------------------------- Retry


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"max_attempts": 0}, "max_attempts must be at least 1, got 0"),
        ({"max_attempts": -2}, "max_attempts must be at least 1"),
        ({"max_attempts": "3"}, "max_attempts must be an int, got '3'"),
        ({"max_attempts": 2.5}, "max_attempts must be an int"),
        ({"max_attempts": True}, "max_attempts must be an int"),
        ({"base_delay": timedelta(seconds=-1)}, "base_delay must be positive"),
        ({"base_delay": timedelta(0)}, "base_delay must be positive"),
        ({"max_delay": timedelta(seconds=-1)}, "max_delay must be positive"),
        ({"base_delay": 5}, "base_delay must be a timedelta, got 5"),
        ({"max_delay": "1m"}, "max_delay must be a timedelta"),
        ({"backoff_factor": 0.5}, "backoff_factor must be at least 1.0, got 0.5"),
        ({"backoff_factor": "2"}, "backoff_factor must be a number"),
        ({"backoff_factor": None}, "backoff_factor must be a number"),
        (
            {"base_delay": timedelta(minutes=10), "max_delay": timedelta(minutes=1)},
            "max_delay (0:01:00) must not be below base_delay",
        ),
    ],
)
def test_invalid_retry_is_refused_at_construction(kwargs, problem):
    with pytest.raises(InvalidInputError) as err:
        Retry(**kwargs)
    assert str(err.value).startswith("invalid Retry: ")
    assert problem in str(err.value)


def test_invalid_retry_lists_every_problem():
    with pytest.raises(InvalidInputError) as err:
        Retry(max_attempts=0, base_delay=timedelta(seconds=-1), backoff_factor=0)
    message = str(err.value)
    assert "max_attempts" in message and "base_delay" in message and "backoff_factor" in message


def test_valid_retry_edges():
    Retry(max_attempts=1, backoff_factor=1.0)
    Retry(base_delay=timedelta(seconds=3), max_delay=timedelta(seconds=3), backoff_factor=1)


# ---------------------------------------------------------------------------- bad values built in a step


@pytest.mark.parametrize(
    ("kind", "problem"),
    [
        ("negative_sleep", "sleep() duration must be zero or more, got -1 day, 23:59:55"),
        ("empty_wait", "the signal name to wait for must be a non-empty string"),
        ("on_timeout_without_timeout", "on_timeout='produce' needs a timeout="),
        ("bad_progress", "goto(progress=...) must be a number from 0.0 to 1.0, got 'half'"),
        ("on_timeout_non_step", "on_timeout='nowhere' is not a @step of this workflow"),
    ],
)
def test_a_bad_result_built_in_a_step_fails_the_run_naming_the_step(dev, kind, problem):
    run = dev.wait_until_finished(engine.start("rules_bad_result", kind=kind))
    assert run.status == WorkflowStatus.FAILED
    assert "workflow 'rules_bad_result'" in run.error and "step 'produce'" in run.error and f"run {run.pk}" in run.error
    assert problem in run.error
    assert run.step_executions.get().status == "failed"


def test_signal_payload_values_are_sent_as_json(dev):
    """Decimal and date values (valid for the Context) reach the run instead of crashing the send."""
    run = engine.start("rules_payment_signal", signal="rules:paid:json")
    dev.wait_until(run, lambda r: r.status == WorkflowStatus.SUSPENDED and r.waiting_signal == "rules:paid:json")
    assert engine.signal("rules:paid:json", {"amount": Decimal("12.30"), "paid_on": date(2026, 1, 2)}) == 1
    run = dev.wait_until_finished(run)
    assert run.status == WorkflowStatus.COMPLETED, run.error
    assert Decimal(run.data["amount"]) == Decimal("12.30") and run.data["paid_on"] == "2026-01-02"


def test_signal_payload_that_is_not_json_is_refused_and_nothing_sent(dev):
    run = engine.start("rules_payment_signal", signal="rules:paid:object")
    run = dev.wait_until(
        run, lambda r: r.status == WorkflowStatus.SUSPENDED and r.waiting_signal == "rules:paid:object"
    )
    with pytest.raises(InvalidInputError) as err:
        engine.signal("rules:paid:object", {"amount": Decimal("1"), "note": object()})
    assert "JSON" in str(err.value) and "'rules:paid:object'" in str(err.value)
    after = WorkflowRun.objects.get(pk=run.pk)
    assert after.status == WorkflowStatus.SUSPENDED and after.data == run.data
    assert _signals(dev, run) == 0
    assert engine.signal("rules:paid:object", {"amount": "2"}) == 1
    assert dev.wait_until_finished(run).status == WorkflowStatus.COMPLETED

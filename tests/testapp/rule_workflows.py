"""Workflows that each exercise one behaviour rule of docs/semantics.md, for the rule tests.

Every name starts with ``rules_`` so it never collides with the guide examples registered in
``tests/testapp/workflows.py``. The guide examples that live here (``rules_api_integration``,
``rules_finalize_order``, ``rules_progress_guide``) keep the guide's code as written; the
workflow name is prefixed, the Context the guide asks for is spelled out, ``api_integration``
gets a start step, and each progress step notes the progress it was entered with.

Side effects are faked by module-level stand-ins (the worker runs in the test process), keyed
by a ``token`` in the Context so tests never see each other's counts.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal
from types import SimpleNamespace

from django.utils import timezone
from pydantic import BaseModel

from django_ai.automation.workflows.core import (
    Retry,
    complete,
    fail,
    get_context,
    goto,
    on_fail,
    run_subflow,
    sleep,
    step,
    wait,
    workflow,
)
from django_ai.automation.workflows.models import WorkflowRun
from facade import TemporalUnavailableError

# ---------------------------------------------------------------------------- stand-ins
API_RESPONSES: dict[str, list[int]] = defaultdict(list)
"""Status codes ``make_api_call`` answers per endpoint, in order (200 once the list is empty)."""
API_CALLS: dict[str, int] = defaultdict(int)

STEP_ENTERED: dict[str, threading.Event] = defaultdict(threading.Event)
"""Set when a blocking step starts, so a test knows the step is executing."""
STEP_RELEASE: dict[str, threading.Event] = defaultdict(threading.Event)
"""Set by a test to let a blocking step return."""


def make_api_call(endpoint: str) -> SimpleNamespace:
    """Stand-in for the guide's ``make_api_call``: scripted status codes, counted."""
    API_CALLS[endpoint] += 1
    codes = API_RESPONSES[endpoint]
    return SimpleNamespace(status_code=codes.pop(0) if codes else 200)


def own_run_progress(token: str) -> float:
    """The projected progress of the run whose Context carries ``token``."""
    return WorkflowRun.objects.values_list("progress", flat=True).get(data__token=token)


# ---------------------------------------------------------------------------- guide examples
@workflow(
    "rules_api_integration",
    default_retry=Retry(
        max_attempts=5,
        base_delay=timedelta(seconds=2),
        max_delay=timedelta(minutes=5),
        backoff_factor=2.0,
    ),
)
class ApiIntegrationWorkflow:
    """Guide, "Workflow-Level Retry Policy" + "Step-Level Retry Override"."""

    class Context(BaseModel):
        endpoint: str
        finished: bool = False

    @step(start=True)
    def begin(self):
        return goto(self.call_external_api)

    @step(retry=Retry(max_attempts=10, base_delay=timedelta(seconds=1)))
    def call_external_api(self):
        ctx = get_context()
        response = make_api_call(ctx.endpoint)
        if response.status_code != 200:
            raise Exception(f"API call failed: {response.status_code}")
        return goto(self.next_step)

    @step()
    def next_step(self):
        get_context().finished = True
        return complete()


@workflow("rules_finalize_order")
class FinalizeOrderWorkflow:
    """Guide, "Context Merging in complete()"."""

    class Context(BaseModel):  # the guide's OrderContext, plus the total it reads
        calculated_total: Decimal = Decimal("0")
        final_total: Decimal = Decimal("0")
        completion_timestamp: str = ""
        order_status: str = "pending"

    @step(start=True)
    def finalize_order(self):
        ctx = get_context()

        # These kwargs merge into context fields
        return complete(
            final_total=ctx.calculated_total,
            completion_timestamp=timezone.now().isoformat(),
            order_status="completed",
            display_title="Order Complete!",
            display_subtitle=f"Total: ${ctx.calculated_total}",
        )


@workflow("rules_progress_guide")
class ProgressGuideWorkflow:
    """Guide, "Progress Tracking", with each step noting the progress it was entered with."""

    class Context(BaseModel):
        token: str
        seen: list[float] = []

    @step(start=True)
    def step_one(self):
        get_context().seen.append(own_run_progress(get_context().token))
        return goto(self.step_two, progress=0.25)

    @step()
    def step_two(self):
        get_context().seen.append(own_run_progress(get_context().token))
        return goto(self.step_three, progress=0.50)

    @step()
    def step_three(self):
        get_context().seen.append(own_run_progress(get_context().token))
        return goto(self.step_four, progress=0.75)

    @step()
    def step_four(self):
        get_context().seen.append(own_run_progress(get_context().token))
        return complete()  # Automatically sets progress to 1.0


# ------------------------------------------------------ semantics: "Where the Context is available"
@workflow("rules_context_identity")
class ContextIdentityWorkflow:
    class Context(BaseModel):
        in_step_same: bool = False
        in_on_fail_same: bool = False
        fail_it: bool = False

    @step(start=True)
    def check(self):
        ctx = get_context()
        ctx.in_step_same = ctx is self.context
        if ctx.fail_it:
            return fail("asked to fail")
        return complete()

    @on_fail
    def compensate(self, run):
        ctx = get_context()
        ctx.in_on_fail_same = ctx is self.context


# ------------------------------------------------------------------------------------------ retries
# (semantics: "Failed attempts keep their context", semantics: "Step retries")
@workflow("rules_checkout_ops", default_retry=Retry(max_attempts=3, base_delay=timedelta(milliseconds=100)))
class CheckoutOpsLikeWorkflow:
    """The automations guide's CheckoutOpsWF retry steps, as a plain workflow with short delays."""

    class Context(BaseModel):
        reservation_id: int
        fail_times: int = 1
        notified: bool = False
        attempts: int = 0
        final_state: str | None = None

    @step(start=True, retry=Retry(max_attempts=5, base_delay=timedelta(milliseconds=100)))
    def notify_housekeeping(self):
        ctx = get_context()
        ctx.attempts += 1
        if ctx.attempts <= ctx.fail_times:
            raise RuntimeError("transient failure")  # triggers per-step retry
        ctx.notified = True
        return goto(self.finalize)

    @step()
    def finalize(self):
        ctx = get_context()
        if not ctx.notified:
            return fail("Housekeeping was not notified")
        ctx.final_state = "ok"
        return complete(final_state="ok")


@workflow("rules_retry_exhaust")
class RetryExhaustWorkflow:
    class Context(BaseModel):
        attempts: int = 0

    @step(start=True, retry=Retry(max_attempts=3, base_delay=timedelta(milliseconds=100)))
    def always_fails(self):
        ctx = get_context()
        ctx.attempts += 1
        raise RuntimeError(f"boom on attempt {ctx.attempts}")


@workflow("rules_retry_default", default_retry=Retry(max_attempts=2, base_delay=timedelta(milliseconds=100)))
class RetryDefaultWorkflow:
    """No step-level retry: the workflow's default_retry decides (2 attempts, not 3)."""

    class Context(BaseModel):
        attempts: int = 0

    @step(start=True)
    def always_fails(self):
        ctx = get_context()
        ctx.attempts += 1
        raise RuntimeError(f"boom on attempt {ctx.attempts}")


@workflow("rules_retry_backoff")
class RetryBackoffWorkflow:
    """Fails twice, then succeeds: delays before retries 2 and 3 are 1s and 2s
    (semantics: "Step retries")."""

    class Context(BaseModel):
        attempt_times: list[float] = []

    @step(start=True, retry=Retry(max_attempts=3, base_delay=timedelta(seconds=1), backoff_factor=2.0))
    def flaky(self):
        ctx = get_context()
        ctx.attempt_times.append(time.time())
        if len(ctx.attempt_times) < 3:
            raise RuntimeError(f"transient failure {len(ctx.attempt_times)}")
        return complete()


@workflow("rules_retry_per_step")
class RetryPerStepWorkflow:
    """Each step may fail once of its 2 attempts: the attempt count starts afresh per step."""

    class Context(BaseModel):
        first_attempts: int = 0
        second_attempts: int = 0

    @step(start=True, retry=Retry(max_attempts=2, base_delay=timedelta(milliseconds=100)))
    def first(self):
        ctx = get_context()
        ctx.first_attempts += 1
        if ctx.first_attempts < 2:
            raise RuntimeError("first fails once")
        return goto(self.second)

    @step(retry=Retry(max_attempts=2, base_delay=timedelta(milliseconds=100)))
    def second(self):
        ctx = get_context()
        ctx.second_attempts += 1
        if ctx.second_attempts < 2:
            raise RuntimeError("second fails once")
        return complete()


@workflow("rules_temporal_hiccup")
class TemporalHiccupWorkflow:
    """A step whose engine call hit an unreachable Temporal once: a transient error, retried."""

    class Context(BaseModel):
        attempts: int = 0

    @step(start=True, retry=Retry(max_attempts=3, base_delay=timedelta(milliseconds=100)))
    def call_engine(self):
        ctx = get_context()
        ctx.attempts += 1
        if ctx.attempts == 1:
            # What engine.start/engine.signal raise while the server is briefly down.
            raise TemporalUnavailableError("could not reach Temporal at localhost:7233")
        return complete()


# ------------------------------------------------------------------------ semantics: "Goto targets"
@workflow("rules_goto")
class GotoWorkflow:
    class Context(BaseModel):
        target: str = "by_name"  # which way start leaves: by_name, nowhere, helper
        path: list[str] = []

    @step(start=True)
    def start(self):
        ctx = get_context()
        ctx.path.append("start")
        if ctx.target == "helper":
            return goto(self.helper)
        if ctx.target == "nowhere":
            return goto("nowhere")
        return goto("by_name")

    @step()
    def by_name(self):
        get_context().path.append("by_name")
        return goto(self.by_method)

    @step()
    def by_method(self):
        get_context().path.append("by_method")
        return complete()

    def helper(self):
        """Not a step."""


# ------------------------------------------------------ semantics: "Sleep runs the same step again"
@workflow("rules_sleep_loop")
class SleepLoopWorkflow:
    class Context(BaseModel):
        loops: int = 0
        sleep_ms: int = 200
        times: int = 3

    @step(start=True)
    def tick(self):
        ctx = get_context()
        ctx.loops += 1
        if ctx.loops < ctx.times:
            return sleep(timedelta(milliseconds=ctx.sleep_ms))
        return goto(self.done)

    @step()
    def done(self):
        return complete()


# -------------------------------------------------------------------------------------------- waits
# (semantics: "Gate waits and return waits", "Signal delivery", "Waits are race-free")
@workflow("rules_wait_resume")
class WaitResumeWorkflow:
    """``ask`` waits; the run resumes at the next step in declaration order (not ``declared_first``)."""

    class Context(BaseModel):
        signal: str = "rules:resume"
        value: str = ""
        path: list[str] = []

    @step()
    def declared_first(self):
        get_context().path.append("declared_first")
        return complete()

    @step(start=True)
    def ask(self):
        ctx = get_context()
        ctx.path.append("ask")
        return wait(ctx.signal)

    @step()
    def after_ask(self):
        ctx = get_context()
        ctx.path.append(f"after_ask:{ctx.value}")
        return goto(self.last_wait)

    @step()
    def last_wait(self):
        ctx = get_context()
        ctx.path.append("last_wait")
        return wait.for_signal(ctx.signal + ":end")


@workflow("rules_wait_timeout")
class WaitTimeoutWorkflow:
    class Context(BaseModel):
        signal: str = "rules:timeout"
        with_fallback: bool = True
        timeout_ms: int = 500
        outcome: str = ""

    @step(start=True)
    def ask(self):
        ctx = get_context()
        timeout = timedelta(milliseconds=ctx.timeout_ms)
        if ctx.with_fallback:
            return wait.for_signal(ctx.signal, timeout=timeout, on_timeout=self.timed_out)
        return wait.for_signal(ctx.signal, timeout=timeout)

    @step()
    def answered(self):
        return complete(outcome="answered")

    @step()
    def timed_out(self):
        return complete(outcome="timed out")


@workflow("rules_slow_then_wait")
class SlowThenWaitWorkflow:
    """``work`` blocks until the test releases it, then waits on ``signal``."""

    class Context(BaseModel):
        token: str
        signal: str
        value: str = ""

    @step(start=True)
    def work(self):
        ctx = get_context()
        STEP_ENTERED[ctx.token].set()
        if not STEP_RELEASE[ctx.token].wait(timeout=20):
            return fail("the test never released the step")
        return wait(ctx.signal)

    @step()
    def done(self):
        return complete()


def _signal_when_suspended(token: str, signal: str) -> None:
    """From a side thread: signal the run the instant its row says it waits on ``signal``."""
    from django.db import connection

    from django_ai.automation.workflows.core import engine

    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            pk = (
                WorkflowRun.objects.filter(data__token=token, status="suspended", waiting_signal=signal)
                .values_list("pk", flat=True)
                .first()
            )
            if pk is not None:
                RACE_SENT[token] = engine.signal(signal, {"value": "raced"}, run_id=pk)
                return
            time.sleep(0.001)
    finally:
        connection.close()


RACE_SENT: dict[str, int] = {}


@workflow("rules_race")
class RaceWorkflow:
    """``ask`` returns a wait and, from a side thread, signals it as soon as the projection
    says SUSPENDED: usually before the workflow has applied the wait (semantics: "Waits are race-free")."""

    class Context(BaseModel):
        token: str
        signal: str
        value: str = ""

    @step(start=True)
    def ask(self):
        ctx = get_context()
        threading.Thread(target=_signal_when_suspended, args=(ctx.token, ctx.signal), daemon=True).start()
        return wait(ctx.signal)

    @step()
    def done(self):
        return complete()


@workflow("rules_shared_int")
class SharedIntWorkflow:
    class Context(BaseModel):
        count: int = 0

    @step(start=True)
    def ask(self):
        return wait("rules:shared")


@workflow("rules_shared_str")
class SharedStrWorkflow:
    """Accepts a payload that ``rules_shared_int`` refuses."""

    class Context(BaseModel):
        count: str | int = ""

    @step(start=True)
    def ask(self):
        return wait("rules:shared")


@workflow("rules_payment_signal")
class PaymentSignalWorkflow:
    """A Context with non-JSON field types, filled by a signal."""

    class Context(BaseModel):
        signal: str = "rules:paid"
        amount: Decimal = Decimal("0")
        paid_on: date | None = None

    @step(start=True)
    def ask(self):
        return wait(get_context().signal)


# ---------------------------------------------------------------------------- semantics: "Progress"
@workflow("rules_progress")
class ProgressWorkflow:
    class Context(BaseModel):
        token: str
        signal: str = "rules:progress"
        seen: dict[str, float] = {}

    @step(start=True)
    def p1(self):
        return goto(self.p2, progress=0.25)

    @step()
    def p2(self):
        return wait(get_context().signal)  # a wait leaves the progress as it is

    @step()
    def p3(self):
        return goto(self.p4)  # a goto without progress leaves it too

    @step()
    def p4(self):
        ctx = get_context()
        ctx.seen["p4"] = own_run_progress(ctx.token)
        return goto(self.p5, progress=7)  # clamped to 1.0

    @step()
    def p5(self):
        ctx = get_context()
        ctx.seen["p5"] = own_run_progress(ctx.token)
        return goto(self.p6, progress=-3)  # clamped to 0.0

    @step()
    def p6(self):
        ctx = get_context()
        ctx.seen["p6"] = own_run_progress(ctx.token)
        if "slept" not in ctx.seen:
            ctx.seen["slept"] = 1
            return sleep(timedelta(milliseconds=50))  # a sleep leaves it too
        ctx.seen["after_sleep"] = own_run_progress(ctx.token)
        return complete()


# ---------------------------------------------------------- semantics: "Steps return a step result"
@workflow("rules_bad_result")
class BadResultWorkflow:
    class Context(BaseModel):
        kind: str = "none"

    @step(start=True)
    def produce(self):
        kind = get_context().kind
        if kind == "none":
            return None
        if kind == "string":
            return "done"
        if kind == "negative_sleep":
            return sleep(timedelta(seconds=-5))
        if kind == "empty_wait":
            return wait("")
        if kind == "on_timeout_without_timeout":
            return wait("rules:never", on_timeout=self.produce)
        if kind == "on_timeout_non_step":
            return wait("rules:never", timeout=timedelta(hours=1), on_timeout="nowhere")
        if kind == "bad_progress":
            return goto(self.produce, progress="half")
        return complete()


@workflow("rules_complete_merge")
class CompleteMergeWorkflow:
    class Context(BaseModel):
        count: int = 0
        kind: str = "unknown_keys"

    @step(start=True)
    def produce(self):
        if get_context().kind == "bad_value":
            return complete(count="not a number")
        return complete(not_a_field="ignored", count=3, display_title="Done")


# ------------------------------------------------------------------------ semantics: "Step history"
@workflow("rules_history")
class HistoryWorkflow:
    class Context(BaseModel):
        signal: str = "rules:history"
        slept: bool = False
        end: str = "complete"  # or "fail"

    @step(start=True)
    def first(self):
        return goto(self.sleeper)

    @step()
    def sleeper(self):
        ctx = get_context()
        if not ctx.slept:
            ctx.slept = True
            return sleep(timedelta(milliseconds=50))
        return goto(self.waiter)

    @step()
    def waiter(self):
        return wait(get_context().signal)

    @step()
    def last(self):
        if get_context().end == "fail":
            return fail("the reviewer said no")
        return complete()


@workflow("rules_child")
class ChildWorkflow:
    class Context(BaseModel):
        n: int = 0

    @step(start=True)
    def work(self):
        get_context().n += 1
        return complete()


@workflow("rules_parent")
class ParentWorkflow:
    class Context(BaseModel):
        child_status: str = ""
        active_subworkflow_run_id: int | None = None

    @step(start=True)
    def spawn(self):
        return run_subflow(ChildWorkflow, on_complete=self.after, n=1)

    @step()
    def after(self, subflow_result):
        get_context().child_status = subflow_result.status
        return complete()


@workflow("rules_go_twice")
class GoTwiceWorkflow:
    """Waits on the same signal twice: a repeat aimed at the first wait must not answer the second
    (semantics: "Waits are race-free")."""

    class Context(BaseModel):
        who: str = ""
        seen: list[str] = []

    @step(start=True)
    def first(self):
        return wait.for_signal("rules_go")

    @step()
    def second(self):
        ctx = get_context()
        ctx.seen.append(ctx.who)
        return wait.for_signal("rules_go")

    @step()
    def done(self):
        ctx = get_context()
        ctx.seen.append(ctx.who)
        return complete()


# ---------------------------------------------------------------------------- cancel mid-step
SLOW_STEP_STARTED = threading.Event()


@workflow("rules_slow_step")
class RulesSlowStep:
    """One step that takes a while: the run is cancelled while its activity is in flight."""

    class Context(BaseModel):
        seconds: float = 2.0

    @step(start=True)
    def slow(self):
        SLOW_STEP_STARTED.set()
        time.sleep(get_context().seconds)
        return complete()

"""Long sleep loops continue as new before their history grows large, losing nothing."""

from datetime import timedelta

from pydantic import BaseModel

from django_ai.automation.workflows.core import complete, get_context, sleep, step, wait, workflow
from django_ai.automation.workflows.models import WorkflowStatus
from facade.testing import TemporalTestEnvironment


@workflow("ticker")
class TickerWorkflow:
    class Context(BaseModel):
        ticks: int = 0
        until: int = 10
        note: str = ""

    @step(start=True)
    def tick(self):
        ctx = get_context()
        ctx.ticks += 1
        if ctx.ticks < ctx.until:
            return sleep(timedelta(milliseconds=10))
        return wait.for_signal("ticker:stop")

    @step()
    def done(self):
        return complete()


def test_sleep_loop_continues_as_new_and_keeps_state(transactional_db):
    # Suggest continue-as-new after 30 events (the default is thousands).
    args = ["--dynamic-config-value", "limit.historyCount.suggestContinueAsNew=30"]
    with TemporalTestEnvironment(dev_server_args=args) as env:
        from django_ai.automation.workflows.core import engine

        run = engine.start("ticker")
        run = env.wait_until(run, lambda r: r.status == WorkflowStatus.SUSPENDED, timeout=60)
        assert run.data["ticks"] == 10
        assert engine.signal("ticker:stop", {"note": "bye"}) == 1
        run = env.wait_until_finished(run, timeout=30)
        assert run.status == WorkflowStatus.COMPLETED, run.error
        assert run.data["note"] == "bye"
        assert list(run.step_executions.values_list("step_name", flat=True)) == ["done"]

        from temporal_worker import client as bridge

        async def runs_of_workflow():
            handle = env.client.get_workflow_handle(run.temporal_workflow_id)
            history = await handle.fetch_history()  # the latest run in the chain
            first = history.events[0].workflow_execution_started_event_attributes
            return first.continued_execution_run_id, len(history.events)

        continued_from, events = bridge.run_sync(runs_of_workflow())
        assert continued_from, "the run never continued as new"
        assert events < 60  # without continue-as-new one history would hold ~90

        # The timeline follows the chain back: one run, every tick (semantics: "Timeline").
        env.wait_closed(run)
        timeline = engine.timeline(run.pk)
        assert len(timeline.executions) > 1 and timeline.note == ""
        steps = [(e.step, e.outcome.value) for e in timeline.entries if e.kind == "step"]
        assert steps == [("tick", "slept")] * 9 + [("tick", "waited"), ("done", "completed")]
        runs = [e.outcome.value for e in timeline.entries if e.kind == "run"]
        assert runs == ["started"] + ["continued"] * (len(timeline.executions) - 1) + ["completed"]

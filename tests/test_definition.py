"""``@workflow`` validates a class when it is decorated and reports every problem at once,
naming the class (and method) and the fix (semantics: "On-fail handlers and definition errors")."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

import pytest
from pydantic import BaseModel

from django_ai.automation.workflows.core import (
    Retry,
    complete,
    goto,
    on_fail,
    step,
    wait,
    workflow,
)
from facade import WorkflowDefinitionError, registry
from temporal_worker.spec import compile_spec


@pytest.fixture(autouse=True)
def isolated_registry():
    """Classes declared here never leak into the process registry."""
    with registry.isolated():
        yield


def problems_of(excinfo) -> list[str]:
    """The problems, without the ``test_x.<locals>.`` prefix of classes declared in a test."""
    return [re.sub(r"\S*<locals>\.", "", p) for p in excinfo.value.problems]


# ---------------------------------------------------------------------------- one problem each


def test_guide_bad_example_two_on_fail_handlers():
    """The guide's "This will raise an error at workflow registration time" example, as written."""
    with pytest.raises(WorkflowDefinitionError) as err:
        # fmt: off
        @workflow("bad_example")
        class BadWorkflow:
            @on_fail
            def cleanup1(self, run): pass  # noqa: E701

            @on_fail
            def cleanup2(self, run): pass  # Error: multiple @on_fail handlers  # noqa: E701
        # fmt: on

    assert "bad_example" not in registry
    message = str(err.value)
    assert message.startswith("workflow 'bad_example' is not valid:")
    assert "BadWorkflow has multiple @on_fail handlers (cleanup1, cleanup2)" in message
    assert "only one is allowed, merge them" in message


def test_two_on_fail_handlers_on_an_otherwise_valid_class():
    with pytest.raises(WorkflowDefinitionError) as err:

        @workflow("rules_def_two_on_fail")
        class TwoOnFail:
            class Context(BaseModel):
                pass

            @step(start=True)
            def go(self):
                return complete()

            @on_fail
            def first(self, run):
                pass

            @on_fail
            def second(self, run):
                pass

    assert problems_of(err) == [
        "TwoOnFail has multiple @on_fail handlers (first, second): only one is allowed, merge them"
    ]


def test_no_start_step():
    with pytest.raises(WorkflowDefinitionError) as err:

        @workflow("rules_def_no_start")
        class NoStart:
            class Context(BaseModel):
                pass

            @step()
            def go(self):
                return complete()

    assert problems_of(err) == ["NoStart has no start step: mark the first step @step(start=True)"]


def test_no_steps_at_all():
    with pytest.raises(WorkflowDefinitionError) as err:

        @workflow("rules_def_no_steps")
        class NoSteps:
            class Context(BaseModel):
                pass

            def go(self):
                return complete()

    assert problems_of(err) == ["NoSteps has no steps: decorate methods with @step(), one of them @step(start=True)"]


def test_two_start_steps():
    with pytest.raises(WorkflowDefinitionError) as err:

        @workflow("rules_def_two_starts")
        class TwoStarts:
            class Context(BaseModel):
                pass

            @step(start=True)
            def a(self):
                return goto(self.b)

            @step(start=True)
            def b(self):
                return complete()

    assert problems_of(err) == ["TwoStarts has 2 start steps (a, b): keep start=True on one"]


def test_missing_context():
    with pytest.raises(WorkflowDefinitionError) as err:

        @workflow("rules_def_no_context")
        class NoContext:
            @step(start=True)
            def go(self):
                return complete()

    assert problems_of(err) == [
        "NoContext has no Context: add a nested `class Context(BaseModel): ...` with the run's fields"
    ]


@pytest.mark.parametrize("kind", ["plain", "dataclass", "not_a_class"])
def test_non_pydantic_context(kind):
    if kind == "plain":

        class Ctx:
            x: int = 0
    elif kind == "dataclass":

        @dataclass
        class Ctx:
            x: int = 0
    else:
        Ctx = {"x": 0}

    with pytest.raises(WorkflowDefinitionError) as err:

        @workflow("rules_def_bad_context")
        class BadContext:
            Context = Ctx

            @step(start=True)
            def go(self):
                return complete()

    assert problems_of(err) == ["BadContext.Context must subclass pydantic.BaseModel"]


def test_on_fail_that_is_also_a_step():
    with pytest.raises(WorkflowDefinitionError) as err:

        @workflow("rules_def_on_fail_step")
        class OnFailStep:
            class Context(BaseModel):
                pass

            @step(start=True)
            def go(self):
                return complete()

            @on_fail
            @step()
            def cleanup(self, run):
                pass

    assert problems_of(err) == [
        "OnFailStep.cleanup is both @on_fail and @step: the on_fail handler is not a step, remove @step"
    ]


def test_gate_on_timeout_to_a_non_step():
    with pytest.raises(WorkflowDefinitionError) as err:

        @workflow("rules_def_gate_timeout")
        class GateTimeout:
            class Context(BaseModel):
                pass

            @step(start=True)
            def go(self):
                return goto(self.gated)

            @wait("rules:gate", timeout=timedelta(hours=1), on_timeout="nowhere")
            @step()
            def gated(self):
                return complete()

    assert problems_of(err) == [
        "GateTimeout.gated: on_timeout='nowhere' is not a step of this workflow (steps: go, gated)"
    ]


def test_gate_without_step():
    with pytest.raises(WorkflowDefinitionError) as err:

        @workflow("rules_def_gate_no_step")
        class GateNoStep:
            class Context(BaseModel):
                pass

            @step(start=True)
            def go(self):
                return complete()

            @wait("rules:gate")
            def gated(self):
                return complete()

    assert problems_of(err) == ["GateNoStep.gated has @wait/@wait_for_event but no @step(): add @step()"]


def test_retry_that_is_not_a_retry():
    with pytest.raises(WorkflowDefinitionError) as err:

        @workflow("rules_def_bad_retry", default_retry={"max_attempts": 3})
        class BadRetry:
            class Context(BaseModel):
                pass

            @step(start=True, retry=3)
            def go(self):
                return complete()

    assert problems_of(err) == [
        "default_retry must be a Retry(...), got {'max_attempts': 3}",
        "BadRetry.go: @step(retry=...) must be a Retry(...), got 3",
    ]


def test_create_context_that_is_not_callable():
    with pytest.raises(WorkflowDefinitionError) as err:

        @workflow("rules_def_bad_factory")
        class BadFactory:
            class Context(BaseModel):
                pass

            create_context = "nope"

            @step(start=True)
            def go(self):
                return complete()

    assert problems_of(err) == ["BadFactory.create_context must be a @classmethod"]


@pytest.mark.parametrize("bare", [False, True], ids=["@step()", "@step"])
def test_async_def_steps_are_refused_where_they_are_written(bare):
    """A step runs in a worker thread, never on an event loop: an `async def` would hand the
    worker an un-awaited coroutine, so the decorator refuses it with the fix."""
    with pytest.raises(WorkflowDefinitionError) as err:

        class AsyncSteps:
            class Context(BaseModel):
                pass

            if bare:

                @step
                async def fetch(self):
                    return complete()
            else:

                @step(start=True)
                async def fetch(self):
                    return complete()

    assert problems_of(err) == [
        "@step AsyncSteps.fetch is `async def`: steps run in a worker thread where the ORM is usable, "
        "so write `def fetch(self, ...)` (call async code from it with asgiref's async_to_sync)"
    ]
    assert str(err.value).startswith("workflow 'test_async_def_steps_are_refused_where_they_are_written.<locals>")


def test_async_def_on_fail_is_refused():
    with pytest.raises(WorkflowDefinitionError, match=r"@on_fail .*cleanup is `async def`"):

        class AsyncCleanup:
            @on_fail
            async def cleanup(self, run):
                pass


@pytest.mark.parametrize("name", ["", "   ", None, 7])
def test_workflow_needs_a_name(name):
    with pytest.raises(WorkflowDefinitionError) as err:

        @workflow(name)
        class Nameless:
            class Context(BaseModel):
                pass

            @step(start=True)
            def go(self):
                return complete()

    assert "needs a non-empty name string" in str(err.value) and "Nameless" in str(err.value)


def test_a_name_used_by_another_class():
    @workflow("rules_def_taken")
    class First:
        class Context(BaseModel):
            pass

        @step(start=True)
        def go(self):
            return complete()

    with pytest.raises(WorkflowDefinitionError) as err:

        @workflow("rules_def_taken")
        class Second:
            class Context(BaseModel):
                pass

            @step(start=True)
            def go(self):
                return complete()

    message = str(err.value)
    assert "First" in message and "Second" in message and "must use another name" in message
    assert registry.get("rules_def_taken").cls is First


# ---------------------------------------------------------------------------- all at once


def test_every_problem_is_reported_at_once():
    with pytest.raises(WorkflowDefinitionError) as err:

        @workflow("rules_def_everything_wrong")
        class EverythingWrong:
            @step(start=True, retry="often")
            def a(self):
                return complete()

            @step(start=True)
            def b(self):
                return complete()

            @on_fail
            def undo(self, run):
                pass

            @on_fail
            @step()
            def undo_again(self, run):
                pass

            @wait("rules:x", timeout=timedelta(minutes=1), on_timeout="missing")
            @step()
            def c(self):
                return complete()

    problems = problems_of(err)
    assert len(problems) == 6, problems
    assert all("EverythingWrong" in p for p in problems)
    message = str(err.value)
    for fragment in (
        "has no Context",
        "a: @step(retry=...) must be a Retry(...), got 'often'",
        "has 2 start steps (a, b)",
        "undo_again is both @on_fail and @step",
        "multiple @on_fail handlers (undo, undo_again)",
        "c: on_timeout='missing' is not a step",
    ):
        assert fragment in message, fragment
    assert "rules_def_everything_wrong" not in registry


# ---------------------------------------------------------------------------- a valid class


def test_a_valid_class_is_registered_unchanged_with_its_spec():
    retry = Retry(max_attempts=2)

    @workflow("rules_def_valid", version="3", default_retry=retry)
    class Valid:
        class Context(BaseModel):
            n: int = 0

        @step
        def second(self):
            return complete()

        @step(start=True, title="Begin here", visible=False)
        def first(self):
            return goto(self.second)

        @on_fail
        def undo(self, run):
            pass

        def helper(self):
            pass

    assert isinstance(Valid, type) and Valid.helper  # the class itself, not a wrapper
    definition = registry.get("rules_def_valid")
    assert definition.cls is Valid and definition.version == "3"
    assert definition.start_step == "first" and definition.on_fail == "undo"
    assert list(definition.steps) == ["second", "first"]  # declaration order
    assert definition.steps["first"].retry is retry and definition.steps["second"].retry is retry
    spec = compile_spec(definition)
    assert spec["start"] == "first" and spec["order"] == ["second", "first"]
    assert spec["steps"]["first"]["title"] == "Begin here" and spec["steps"]["first"]["visible"] is False
    assert spec["steps"]["second"]["title"] == "second"

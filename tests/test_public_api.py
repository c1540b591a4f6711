"""The public surface, pinned: what ``facade`` exports and what the documented paths import.

Adding or removing a public name must be a deliberate change of this file.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import facade

FACADE_ALL = [
    "ActionRequest",
    "AgentManager",
    "AutomationError",
    "ClaimError",
    "ContextUnavailableError",
    "DatabaseUnavailableError",
    "Engine",
    "EventDefinition",
    "FieldDisplayConfig",
    "FieldGroup",
    "InvalidInputError",
    "Retry",
    "RunStateError",
    "SignalPayloadError",
    "StepDisplayMetadata",
    "StepResult",
    "StepResultError",
    "StepStatus",
    "SubflowResult",
    "TemporalUnavailableError",
    "UnknownWorkflowError",
    "WorkflowDefinitionError",
    "WorkflowStatus",
    "agent",
    "claims",
    "complete",
    "engine",
    "event_workflow",
    "fail",
    "get_context",
    "goto",
    "handler",
    "on_event",
    "on_event_cancelled",
    "on_event_created",
    "on_fail",
    "registry",
    "run_subflow",
    "sleep",
    "statezero_action",
    "step",
    "wait",
    "wait_for_event",
    "workflow",
]

# What the guides import from each documented path.
DOCUMENTED = {
    "django_ai.automation.workflows.core": [
        "workflow",
        "step",
        "get_context",
        "complete",
        "goto",
        "fail",
        "sleep",
        "wait",
        "wait_for_event",
        "engine",
        "Retry",
        "on_fail",
        "run_subflow",
        "SubflowResult",
        "WorkflowStatus",
        "event_workflow",
    ],
    "django_ai.automation.events.definitions": ["EventDefinition"],
    "django_ai.automation.events.callbacks": ["on_event", "on_event_created", "on_event_cancelled"],
    "django_ai.automation.events.models": ["Event"],
    "django_ai.automation.events.claims": ["hold", "release"],
    "django_ai.automation.agents.core": ["agent", "handler", "AgentManager"],
    "django_ai.automation.workflows.models": ["WorkflowRun", "StepExecution", "WorkflowStatus"],
    "django_ai.automation.workflows.metadata": ["StepDisplayMetadata", "FieldGroup", "FieldDisplayConfig"],
}

GUIDE = Path(__file__).resolve().parents[2] / "shared" / "spec" / "workflows-guide.md"
AUTOMATIONS_GUIDE = GUIDE.with_name("automations-guide.md")


def test_facade_all_is_pinned():
    assert sorted(facade.__all__) == facade.__all__, "keep __all__ sorted"
    assert facade.__all__ == FACADE_ALL


def test_every_exported_name_exists():
    for name in facade.__all__:
        assert getattr(facade, name, None) is not None, name


def test_every_facade_module_declares_all():
    for info in pkgutil.iter_modules(facade.__path__):
        module = importlib.import_module(f"facade.{info.name}")
        assert isinstance(getattr(module, "__all__", None), list), f"facade.{info.name} has no __all__"
        for name in module.__all__:
            assert hasattr(module, name), f"facade.{info.name}.__all__ lists missing {name}"


@pytest.mark.parametrize("path", sorted(DOCUMENTED))
def test_documented_paths_export_what_the_guide_imports(path):
    module = importlib.import_module(path)
    for name in DOCUMENTED[path]:
        assert name in module.__all__, f"{path}.__all__ lacks {name}"
        value = getattr(module, name)
        if hasattr(facade, name):
            assert value is getattr(facade, name), f"{path}.{name} is not facade.{name}"


def test_documented_core_exports_exactly_the_guide_names():
    core = importlib.import_module("django_ai.automation.workflows.core")
    assert sorted(core.__all__) == sorted(DOCUMENTED["django_ai.automation.workflows.core"])


def test_models_are_the_projection_models():
    from django_ai.automation.workflows import models
    from django_bridge import models as bridge_models

    assert models.WorkflowRun is bridge_models.WorkflowRun
    assert models.StepExecution is bridge_models.StepExecution


@pytest.mark.skipif(not GUIDE.exists(), reason="the guides live in shared/, beside the repository (CI has them)")
def test_every_workflows_import_line_of_the_guide_runs():
    """Each ``from django_ai.automation.workflows.X import a, b`` line of the guide, executed."""
    lines = re.findall(r"^from (django_ai\.automation\.workflows\.\w+) import (.+)$", GUIDE.read_text(), re.M)
    assert len(lines) >= 10
    for path, names in lines:
        module = importlib.import_module(path)
        for name in (n.strip() for n in names.split(",")):
            assert hasattr(module, name), f"from {path} import {name}"


def test_errors_share_one_root():
    from facade import _errors

    for name in _errors.__all__:
        assert issubclass(getattr(_errors, name), facade.AutomationError)
    assert issubclass(facade.SignalPayloadError, facade.InvalidInputError)


@pytest.mark.skipif(
    not AUTOMATIONS_GUIDE.exists(), reason="the guides live in shared/, beside the repository (CI has them)"
)
def test_every_events_and_workflows_import_line_of_the_automations_guide_runs():
    """Each events/workflows import line of the automations guide, executed (agents are not built yet)."""
    text = AUTOMATIONS_GUIDE.read_text()
    lines = re.findall(r"^from (django_ai\.automation\.(?:workflows|events)\.\w+) import (.+)$", text, re.M)
    assert len(lines) >= 5
    for path, names in lines:
        module = importlib.import_module(path)
        for name in (n.strip() for n in names.strip("()").split(",") if n.strip()):
            assert hasattr(module, name), f"from {path} import {name}"

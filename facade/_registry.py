"""The registry of workflow definitions, and discovery of the modules that declare them."""

from __future__ import annotations

import contextlib
import importlib
import pkgutil
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ._definition import WorkflowDefinition
from ._errors import UnknownWorkflowError, WorkflowDefinitionError
from ._events import Callback, Phase

if TYPE_CHECKING:
    from ._agent_definition import AgentDefinition

__all__ = ["Registry", "discover_workflow_modules", "registry"]

DISCOVERED_MODULE_NAMES = ("workflows", "automations")


class Registry:
    """Workflows and agents by name (one namespace: both are Temporal workflow types), and the
    event callbacks."""

    def __init__(self) -> None:
        self._definitions: dict[str, WorkflowDefinition] = {}
        self._callbacks: dict[str, Callback] = {}
        self._agents: dict[str, AgentDefinition] = {}

    def register(self, definition: WorkflowDefinition) -> None:
        self._check_free(definition.name, definition.cls)
        self._definitions[definition.name] = definition

    def _check_free(self, name: str, cls: type) -> None:
        """Workflows and agents share one namespace: both are Temporal workflow types."""
        existing = self._definitions.get(name) or self._agents.get(name)
        if existing is not None and _origin(existing.cls) != _origin(cls):
            raise WorkflowDefinitionError(
                name,
                [
                    f"the name is already used by {_origin(existing.cls)} (agents and workflows share one "
                    f"namespace: both are Temporal workflow types); {_origin(cls)} must use another name"
                ],
            )

    def get(self, name: str) -> WorkflowDefinition:
        try:
            return self._definitions[name]
        except KeyError:
            known = ", ".join(sorted(self._definitions)) or "none"
            raise UnknownWorkflowError(
                f"no workflow is registered as {name!r} (registered: {known}). Check the name, and that "
                "the module declaring it is an app's workflows/automations module or is listed in "
                "AUTOMATION['WORKFLOW_MODULES'].",
                workflow=name,
            ) from None

    def names(self) -> list[str]:
        return sorted(self._definitions)

    def register_agent(self, definition: AgentDefinition) -> None:
        self._check_free(definition.name, definition.cls)
        self._agents[definition.name] = definition

    def agent(self, name: str) -> AgentDefinition:
        try:
            return self._agents[name]
        except KeyError:
            known = ", ".join(sorted(self._agents)) or "none"
            raise UnknownWorkflowError(
                f"no agent is registered as {name!r} (registered: {known}). Check the name, and that the "
                "module declaring it is an app's workflows/automations module or is listed in "
                "AUTOMATION['WORKFLOW_MODULES']; a worker started before the agent was added must be restarted.",
                workflow=name,
            ) from None

    def agents(self, event_name: str | None = None) -> list[AgentDefinition]:
        """The agents listening to ``event_name`` (spawning on it or handling it); all when None."""
        return [a for a in self._agents.values() if event_name is None or event_name in a.event_names()]

    def agent_names(self) -> list[str]:
        return sorted(self._agents)

    def register_callback(self, callback: Callback) -> None:
        # Keyed by where the function lives: importing a module twice registers nothing twice.
        self._callbacks[f"{callback.phase}:{callback.name}"] = callback

    def callbacks(self, event_name: str | None = None, phase: Phase | None = None) -> list[Callback]:
        """Callbacks of ``event_name`` (all events when None) for ``phase``, in declaration order."""
        return [
            c
            for c in self._callbacks.values()
            if (event_name is None or c.event_name == event_name) and (phase is None or c.phase == phase)
        ]

    def callback(self, phase: Phase, name: str) -> Callback:
        try:
            return self._callbacks[f"{phase}:{name}"]
        except KeyError:
            raise UnknownWorkflowError(
                f"no {phase} callback {name!r} is registered; restart the worker after adding callbacks."
            ) from None

    def event_workflows(self, event_name: str | None = None) -> list[WorkflowDefinition]:
        """The ``@event_workflow`` definitions triggered by ``event_name`` (all when None)."""
        return [
            d
            for d in self._definitions.values()
            if d.trigger is not None and (event_name is None or d.trigger.event_name == event_name)
        ]

    def subscribed_events(self) -> dict[str, list[str]]:
        """Every event name something listens to, with who listens (for the system checks)."""
        found: dict[str, list[str]] = {}
        for c in self._callbacks.values():
            found.setdefault(c.event_name, []).append(f"@on_event callback {c.name}")
        for d in self._definitions.values():
            if d.trigger is not None:
                found.setdefault(d.trigger.event_name, []).append(f"@event_workflow {d.name}")
            for s in d.steps.values():
                if s.gate is not None and s.gate.event:
                    found.setdefault(s.gate.event, []).append(f"wait_for_event gate {d.name}.{s.name}")
        for a in self._agents.values():
            found.setdefault(a.spawn_on, []).append(f"agent {a.name} (spawn_on)")
            for h in a.handlers.values():
                found.setdefault(h.event_name, []).append(f"agent handler {a.name}.{h.name}")
        return found

    def __contains__(self, name: object) -> bool:
        return name in self._definitions

    @contextlib.contextmanager
    def isolated(self) -> Iterator[Registry]:
        """Use a fresh, empty registry inside the block.

        For tests that declare workflows under names already taken elsewhere (the guides
        reuse ``order_fulfillment`` and ``user_registration``): declare them inside the block.
        Workers in this process resolve names through the same registry.
        """
        saved = self._definitions, self._callbacks, self._agents
        self._definitions, self._callbacks, self._agents = {}, {}, {}
        try:
            yield self
        finally:
            self._definitions, self._callbacks, self._agents = saved


def _origin(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


registry = Registry()


def discover_workflow_modules(app_modules: list[str], extra_modules: list[str]) -> list[str]:
    """Import each app's ``workflows``/``automations`` module (and package submodules).

    Returns the names of the modules imported.
    """
    imported: list[str] = []
    candidates = [f"{app}.{name}" for app in app_modules for name in DISCOVERED_MODULE_NAMES]
    for module_name in candidates:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue
            raise
        imported.append(module_name)
        imported.extend(_import_submodules(module))
    for module_name in extra_modules:
        module = importlib.import_module(module_name)
        imported.append(module_name)
        imported.extend(_import_submodules(module))
    return imported


def _import_submodules(module: object) -> list[str]:
    path = getattr(module, "__path__", None)
    if path is None:
        return []
    prefix = module.__name__ + "."  # type: ignore[attr-defined]
    names = []
    for info in pkgutil.walk_packages(path, prefix):
        importlib.import_module(info.name)
        names.append(info.name)
    return names

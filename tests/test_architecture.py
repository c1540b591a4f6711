"""The import rules of docs/architecture.md, beyond import-linter's contracts (run by `make test`).

import-linter checks layers and cycles between siblings; this checks the whole module graph:
no cycle at all once the documented upward edges (lazy, commented) are set aside, and that the
interpreter workflow's modules stay free of Django and user code when imported for real.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("facade", "temporal_worker", "django_bridge", "django_ai")


def upward_edges() -> set[tuple[str, str]]:
    """The upward edges the layers contract lists as ignored (each one lazy and commented)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = next(c for c in config["contracts"] if c["type"] == "layers")
    edges = set()
    for expression in layers["ignore_imports"]:
        importer, imported = (part.strip() for part in expression.split("->"))
        edges.add((importer, imported))
    return edges


def strongly_connected(graph: grimp.ImportGraph, skip: set[tuple[str, str]]) -> list[set[str]]:
    """Tarjan's algorithm over the module graph: every group of modules that import each other."""
    modules = sorted(m for m in graph.modules if m.split(".")[0] in PACKAGES)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []
    counter = 0

    def visit(module: str) -> None:
        nonlocal counter
        index[module] = low[module] = counter
        counter += 1
        stack.append(module)
        on_stack.add(module)
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            if imported.split(".")[0] not in PACKAGES or (module, imported) in skip:
                continue
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == module:
                    break
            if len(group) > 1:
                groups.append(group)

    for module in modules:
        if module not in index:
            visit(module)
    return groups


def test_the_upward_edges_are_the_documented_seven():
    assert upward_edges() == {
        ("facade", "temporal_worker.engine"),
        ("facade", "temporal_worker.actions"),
        ("facade", "temporal_worker.agents"),
        ("facade", "temporal_worker.claims"),
        ("facade.testing", "temporal_worker.testing"),
        ("django_bridge.models", "temporal_worker.engine"),
        ("django_bridge.models", "temporal_worker.dispatch"),
    }


def test_no_import_cycles_once_the_upward_edges_are_set_aside():
    graph = grimp.build_graph(*PACKAGES)
    assert strongly_connected(graph, upward_edges()) == []


def test_the_cycle_check_sees_a_cycle():
    """The check above can fail: with the upward edges counted, the models and the engine form one."""
    graph = grimp.build_graph(*PACKAGES)
    groups = strongly_connected(graph, set())
    assert any({"django_bridge.models", "temporal_worker.engine"} <= group for group in groups)


def test_the_interpreter_and_the_declarations_import_no_django():
    """Imported in a fresh interpreter, the sandboxed and declaration modules load no Django."""
    code = (
        "import sys\n"
        "import temporal_worker.workflows, temporal_worker.protocol, temporal_worker.transitions\n"
        "import facade\n"
        "from django_ai.automation.workflows import metadata\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('django', 'django_bridge', 'rest_framework'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


# The worker runs the library's workflows outside temporalio's sandbox (temporal_worker.worker:
# they are deterministic by construction). What keeps that true is that importing them loads
# nothing but the standard library, temporalio and these pure modules of ours.
WORKFLOW_MODULES_MAY_LOAD = {
    "temporal_worker",
    "temporal_worker.workflows",
    "temporal_worker.workflows.interpreter",
    "temporal_worker.workflows.events",
    "temporal_worker.workflows.agent",
    "temporal_worker.workflows.timing",
    "temporal_worker.protocol",
    "temporal_worker.transitions",
    "temporal_worker.display",
}


def modules_loaded_by(module: str) -> list[str]:
    """What importing ``module`` in a fresh interpreter loads beyond the standard library,
    temporalio (and what temporalio itself loads) and ``WORKFLOW_MODULES_MAY_LOAD``."""
    code = (
        "import sys, importlib\n"
        "import temporalio.workflow, temporalio.common, temporalio.exceptions, temporalio.worker\n"
        "before = set(sys.modules)\n"
        f"importlib.import_module({module!r})\n"
        "print('\\n'.join(sorted(set(sys.modules) - before)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return sorted(
        name
        for name in out.stdout.split()
        if name.split(".")[0] not in sys.stdlib_module_names
        and not name.startswith("_sysconfigdata")  # the standard library's, named by platform
        and name.split(".")[0] != "temporalio"
        and name not in WORKFLOW_MODULES_MAY_LOAD
    )


def test_the_unsandboxed_workflows_load_only_the_standard_library_temporalio_and_pure_modules():
    """No Django, pydantic, declaration layer or user code: nothing that could make them non-deterministic."""
    assert modules_loaded_by("temporal_worker.workflows") == []


def test_the_workflow_module_check_sees_a_worker_side_module():
    """The check above can fail: compiling specs needs the declaration layer, and with it pydantic."""
    loaded = modules_loaded_by("temporal_worker.spec")
    assert "facade" in loaded and any(name.startswith("pydantic") for name in loaded)

"""The layering of the code, written down here and checked: no import circles between modules, no
two-way ties between packages, and each layer imports only the layers below it.

Layers, lowest first (docs/architecture.md explains why):

1. ``boomerang.config``, ``boomerang.contract`` — settings and the raw contract, imported by all.
2. ``boomerang.warehouse`` — opening DuckDB, the Python-owned tables, dbt, the serving snapshot.
3. ``boomerang.ingest``, ``boomerang.rewards``, ``boomerang.world``, ``boomerang.reports`` — the
   library's concerns; they use the warehouse layer and never the model code.
4. ``ml`` — the model code; it may use the library (the warehouse layer, the page helper).
5. ``boomerang.pipeline``, ``boomerang.cli`` — orchestration: the only ``boomerang`` modules that
   import ``ml``.
6. ``dags`` (wiring only: the step lists of ``boomerang.pipeline``) and ``devtools`` (bench, local
   Airflow, demo), which nothing in the runtime imports.

Imports inside functions count: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from boomerang.config import PROJECT_ROOT

PACKAGES = ("boomerang", "ml", "devtools")
ORCHESTRATION = {"boomerang.pipeline", "boomerang.cli"}
LIBRARY_PACKAGES = ("boomerang.ingest", "boomerang.rewards", "boomerang.world", "boomerang.reports")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PROJECT_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(path): path
        for package in PACKAGES
        for path in sorted((PROJECT_ROOT / package).rglob("*.py"))
    }


MODULES = _modules()


def _imports(path: Path) -> set[str]:
    """The project modules ``path`` imports, at module level or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from package import module` names a module; `from module import thing` does not
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            # the longest project module the name starts with
            while name and name not in MODULES:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


GRAPH = {name: _imports(path) - {name} for name, path in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _package(module: str) -> str:
    """The unit of the package-level rule: a boomerang sub-package, else the top-level package."""
    parts = module.split(".")
    if parts[0] == "boomerang" and len(parts) > 2:
        return ".".join(parts[:2])
    return module if parts[0] == "boomerang" else parts[0]


def test_the_checker_sees_every_kind_of_import():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    # a lazy import inside a function is a dependency too
    assert "ml.registry" in GRAPH["boomerang.pipeline"]
    assert "boomerang.warehouse.db" in GRAPH["ml.score"]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_module_imports(module: str):
    importlib.import_module(module)


def test_no_import_circles_between_modules():
    assert _cycles(GRAPH) == []


def test_no_two_way_ties_between_packages():
    packages: dict[str, set[str]] = {}
    for module, imported in GRAPH.items():
        packages.setdefault(_package(module), set()).update(
            _package(name) for name in imported if _package(name) != _package(module)
        )
    assert _cycles(packages) == []


def test_only_orchestration_imports_the_model_code():
    wrong = {
        module: sorted(name for name in imported if name.split(".")[0] == "ml")
        for module, imported in GRAPH.items()
        if module.startswith("boomerang") and module not in ORCHESTRATION
    }
    assert {module: names for module, names in wrong.items() if names} == {}


def test_the_model_code_never_imports_orchestration_or_devtools():
    wrong = {
        module: sorted(name for name in imported if name in ORCHESTRATION or name.startswith("devtools"))
        for module, imported in GRAPH.items()
        if module.startswith("ml")
    }
    assert {module: names for module, names in wrong.items() if names} == {}


def test_the_runtime_never_imports_devtools():
    wrong = {
        module: sorted(name for name in imported if name.startswith("devtools"))
        for module, imported in GRAPH.items()
        if not module.startswith("devtools")
    }
    assert {module: names for module, names in wrong.items() if names} == {}


def test_the_warehouse_layer_imports_no_library_concern():
    wrong = {
        module: sorted(name for name in imported if name.startswith(LIBRARY_PACKAGES))
        for module, imported in GRAPH.items()
        if module.startswith("boomerang.warehouse")
    }
    assert {module: names for module, names in wrong.items() if names} == {}


def test_config_and_contract_import_nothing_of_the_project():
    assert GRAPH["boomerang.config"] == set()
    assert GRAPH["boomerang.contract"] <= {"boomerang.config"}


@pytest.mark.parametrize("path", sorted((PROJECT_ROOT / "dags").glob("*.py")), ids=lambda p: p.stem)
def test_dag_files_only_wire_the_declared_steps(path: Path):
    imported = {
        node.module
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and node.module
    } | {
        alias.name
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    project = {name for name in imported if name.split(".")[0] in PACKAGES}
    assert project == {"boomerang.pipeline"}
    tasks = [
        node
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef) and any("task" in ast.unparse(d) for d in node.decorator_list)
    ]
    assert tasks == [], "tasks come from boomerang.pipeline's step list, not from bodies in the DAG file"


def test_importing_the_library_has_no_side_effects(tmp_path):
    """No folder, file or connection appears when every runtime module is imported."""
    code = (
        "import importlib\n"
        f"for name in {sorted(m for m in MODULES if not m.startswith('devtools'))!r}:\n"
        "    importlib.import_module(name)\n"
    )
    subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        check=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "BOOMERANG_HOME": str(tmp_path / "home")},
    )
    assert list(tmp_path.iterdir()) == []

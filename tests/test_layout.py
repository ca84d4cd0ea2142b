"""The layout's import rules: what runs inside the functions never imports
the driver or scikit-learn, the stores know no executor, and no module
imports itself back through another."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sklearn_serverless"
ROOT = PACKAGE.name

#: Packages whose code runs inside the functions (or on both sides).
WORKER_SIDE = ("_worker", "_algorithms", "_state", "_channel", "_common", "_datasets")
#: Packages that only the driver runs.
DRIVER_SIDE = ("_driver", "_base", "cluster", "linear_model", "preprocessing",
               "model_selection", "distributed")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in _runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            # ``from . import _x`` imports the submodule _x, not the package's code
            submodules = {f"{module}.{alias.name}" for alias in node.names
                          if _file_of(f"{module}.{alias.name}") is not None}
            found.update(submodules or {module})
    return found


def _runtime_nodes(tree: ast.AST):
    """Every node, except under ``if TYPE_CHECKING:`` (imports for type hints
    only, never run)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            yield from (n for child in node.orelse for n in ast.walk(child))
            continue
        yield node
        yield from _runtime_nodes(node)


def _file_of(module: str) -> Path | None:
    if module.split(".")[0] != ROOT:
        return None
    path = PACKAGE.parent.joinpath(*module.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


MODULES = {_module_name(path): _imports(path) for path in PACKAGE.rglob("*.py")}


def _area(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _in(module: str, areas: tuple[str, ...]) -> bool:
    return module.split(".")[0] == ROOT and _area(module) in areas


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _in(m, WORKER_SIDE)))
def test_worker_side_imports_neither_driver_nor_sklearn(module):
    bad = sorted(m for m in MODULES[module]
                 if _in(m, DRIVER_SIDE) or m.split(".")[0] == "sklearn")
    assert not bad, f"{module} runs inside the functions but imports {bad}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _in(m, ("_state",))))
def test_stores_know_no_executor(module):
    bad = sorted(m for m in MODULES[module]
                 if m.split(".")[0] == "lithops"
                 or _in(m, ("_worker", "_channel", "_driver", "_algorithms")))
    assert not bad, f"the store module {module} imports {bad}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _in(m, ("_common",))))
def test_common_modules_are_leaves(module):
    bad = sorted(m for m in MODULES[module]
                 if m.split(".")[0] == ROOT and not _in(m, ("_common",)))
    assert not bad, f"{module} must import nothing of the package, imports {bad}"


def test_no_import_cycles():
    graph = {module: {m for m in imports if m in MODULES and m != module}
             for module, imports in MODULES.items()}
    # A submodule's import of its own package's __init__ is how Python
    # imports it, not a dependency of the code: only explicit edges count.
    cycles = []
    state = dict.fromkeys(graph, 0)
    stack: list[str] = []

    def visit(module):
        state[module] = 1
        stack.append(module)
        for child in sorted(graph[module]):
            if state[child] == 1:
                cycles.append(stack[stack.index(child):] + [child])
            elif state[child] == 0:
                visit(child)
        stack.pop()
        state[module] = 2

    for module in sorted(graph):
        if state[module] == 0:
            visit(module)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_worker_modules_import_no_sklearn_when_run():
    # The public API too: a user's worker code imports it inside the functions.
    worker_modules = sorted(m for m in MODULES if _in(m, WORKER_SIDE)
                            and not m.endswith("_compiled")) + [f"{ROOT}.distributed"]
    code = ("import importlib, sys\n"
            f"for name in {worker_modules!r}:\n"
            "    importlib.import_module(name)\n"
            "bad = [m for m in sys.modules if m.split('.')[0] == 'sklearn'\n"
            "       or m.startswith('sklearn_serverless.') and m.split('.')[1] in "
            f"{DRIVER_SIDE[:-1]!r}]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True)

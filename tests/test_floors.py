"""The house's floors: each package imports only from the floors below it, and no module imports
itself back through others (lazy imports inside functions included)."""

from __future__ import annotations

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLOORS = ("planners", "worldmodel", "benchmarks", "cli")
"""Bottom to top: a module may import from its own floor and the ones before it."""


def modules() -> dict:
    """``{dotted module name: path}`` of every module of the project."""
    found = {"cli": os.path.join(ROOT, "cli.py")}
    for package in FLOORS[:-1]:
        for folder, _, files in os.walk(os.path.join(ROOT, package)):
            for name in files:
                if name.endswith(".py"):
                    path = os.path.join(folder, name)
                    dotted = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                    found[dotted.removesuffix(".__init__")] = path
    return found


def imports(name: str, path: str, known: dict) -> set:
    """The project modules ``name`` imports anywhere in its body (relative imports resolved)."""
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            submodules = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known]
            targets = submodules if node.module is None else [base, *submodules]  # from . import x: x only
        else:
            continue
        out.update(t for t in targets if t in known and t != name)
    return out


GRAPH = {name: imports(name, path, modules()) for name, path in modules().items()}


def floor(name: str) -> int:
    return FLOORS.index(name.split(".")[0])


@pytest.mark.parametrize("name", sorted(GRAPH))
def test_a_module_imports_only_its_floor_and_those_below(name):
    above = sorted(t for t in GRAPH[name] if floor(t) > floor(name))
    assert not above, f"{name} imports {above} from a floor above it"


def test_no_import_cycles():
    """No module reaches itself again through the modules it imports (a depth-first search)."""

    def path_back(start: str) -> list | None:
        stack, seen = [(start, [start])], set()
        while stack:
            name, path = stack.pop()
            for nxt in GRAPH[name]:
                if nxt == start:
                    return path + [nxt]
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, path + [nxt]))
        return None

    cycles = [" -> ".join(path) for path in map(path_back, sorted(GRAPH)) if path]
    assert not cycles, "import cycles:\n" + "\n".join(cycles)

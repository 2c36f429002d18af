"""What ``pip install .`` installs: every package of the source tree (a sub-package left out of the
distribution imports from the checkout but not from an installed wmplan)."""

from __future__ import annotations

import importlib.metadata
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def source_packages() -> list:
    """``planners/runtime/__init__.py``-style paths of every package of the project."""
    found = []
    for top in ("planners", "worldmodel", "benchmarks"):
        for folder, _, files in os.walk(os.path.join(ROOT, top)):
            if "__init__.py" in files:
                found.append(os.path.relpath(os.path.join(folder, "__init__.py"), ROOT).replace(os.sep, "/"))
    return sorted(found)


def test_an_installed_wmplan_holds_every_package_of_the_source_tree():
    try:
        installed = {str(path) for path in importlib.metadata.files("wmplan") or []}
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("wmplan is not installed")
    if "planners/__init__.py" not in installed:
        pytest.skip("wmplan is installed in editable mode: its files are the checkout's")
    missing = [path for path in source_packages() if path not in installed]
    assert not missing, f"pip install . leaves out {missing}: list them in pyproject.toml"
    assert "cli.py" in installed

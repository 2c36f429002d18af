"""The public surface of ``planners``: a short ``__all__`` of importable names; internals by module path only."""

from __future__ import annotations

import importlib
import inspect

import planners

NAMES = {
    "RandomShooting", "CEM", "ICEM", "MPPI", "GradientPlanner", "CEMGradient", "Planner", "SamplingPlanner",
    "Box", "Discrete", "Plan", "PlannerState", "Dynamics", "rollout", "KnownReward", "Propagation",
    "EnsembleDynamics", "PLANNERS", "make_planner", "planner_class", "SequenceEvaluator",
}


def test_all_is_at_most_twenty_one_distinct_importable_names():
    assert len(planners.__all__) == len(set(planners.__all__)) <= 21, planners.__all__
    assert set(planners.__all__) == NAMES
    namespace: dict = {}
    exec("from planners import *", namespace)
    assert set(namespace) - {"__builtins__"} == NAMES


def test_new_planners_subclass_exported_base_classes():
    assert issubclass(planners.SamplingPlanner, planners.Planner)
    for name in ("RandomShooting", "CEM", "ICEM", "MPPI"):
        assert issubclass(getattr(planners, name), planners.SamplingPlanner), name
    exported = {getattr(planners, name) for name in NAMES if inspect.isclass(getattr(planners, name))}
    for cls in planners.PLANNERS.values():  # exported, or a preset of an exported planner (cem-classic) by module path
        assert cls in exported or (cls.__bases__[0] in exported and cls.__module__.startswith("planners.")), cls


def test_internals_are_reachable_by_module_path_only():
    for name in ("execution", "shift", "WarmStart", "make_evaluate", "blas", "elf_slots", "memory"):
        assert not hasattr(planners, name), name
    assert callable(importlib.import_module("planners.base").shift)
    assert callable(importlib.import_module("planners.dynamics").make_evaluate)
    runtime = importlib.import_module("planners.runtime")
    assert {"activate", "blas", "elf_slots", "memory", "streams"} <= set(vars(runtime))

"""Planners by name: the one list that the CLI, the benchmarks and users' scripts share."""

from __future__ import annotations

from .cem import CEM, ICEM, ClassicCEM
from .gradient import CEMGradient, GradientPlanner
from .mppi import MPPI, ClassicMPPI
from .random_shooting import RandomShooting

__all__ = ["PLANNERS", "planner_class", "make_planner"]

PLANNERS = {
    "random-shooting": RandomShooting,
    "cem": CEM,
    "icem": ICEM,
    "mppi": MPPI,
    "gradient": GradientPlanner,
    "cem-gd": CEMGradient,
    "cem-classic": ClassicCEM,
    "mppi-classic": ClassicMPPI,
}
"""Name -> planner class, in the order they are listed to users."""


def planner_class(name: str):
    """The planner class called ``name``; ``ValueError`` naming the choices for an unknown one."""
    try:
        return PLANNERS[name]
    except KeyError:
        raise ValueError(f"unknown planner {name!r}; choose from {', '.join(PLANNERS)}") from None


def make_planner(name: str, dynamics, action_space, **options):
    """``PLANNERS[name](dynamics, action_space, **options)``, options that are ``None`` left out (the planner's defaults)."""
    return planner_class(name)(dynamics, action_space, **{k: v for k, v in options.items() if v is not None})

"""Batched model-predictive planners over any MLX dynamics ``f(state [B, S], action [B, A]) -> (next_state [B, S], reward [B])``.

Planners: :class:`RandomShooting`, :class:`CEM` (and the iCEM preset :class:`ICEM`), :class:`MPPI`,
:class:`GradientPlanner` and the CEM + gradient hybrid :class:`CEMGradient`. Each works with
``Discrete`` and ``Box`` action spaces::

    planner = CEM(env, env.action_space, horizon=15, num_samples=1000)
    action = planner.act(state)          # [E, S] -> [E, A], warm-started from the previous call
    plan = planner.optimize(state)       # Plan(actions [E, H, A], expected_return [E])
"""

from . import execution  # first: points MLX's float32 matmuls at a fast BLAS (any import order)
from .base import Plan, Planner, PlannerState, WarmStart, shift
from .cem import CEM, ICEM
from .dynamics import Dynamics, KnownReward, make_evaluate, rollout
from .gradient import CEMGradient, GradientPlanner
from .mppi import MPPI
from .random_shooting import RandomShooting
from .registry import PLANNERS, make_planner, planner_class
from .spaces import Box, Discrete
from .propagation import EnsembleDynamics, Propagation

__all__ = [
    "Box",
    "CEM",
    "CEMGradient",
    "Discrete",
    "Dynamics",
    "EnsembleDynamics",
    "EnsembleDynamics",
    "GradientPlanner",
    "ICEM",
    "KnownReward",
    "MPPI",
    "PLANNERS",
    "Plan",
    "Planner",
    "PlannerState",
    "Propagation",
    "RandomShooting",
    "WarmStart",
    "execution",
    "make_evaluate",
    "make_planner",
    "planner_class",
    "rollout",
    "shift",
]

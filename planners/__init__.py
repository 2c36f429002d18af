"""Batched model-predictive planners over any MLX dynamics ``f(state [B, S], action [B, A]) -> (next_state [B, S], reward [B])``.

Planners: :class:`RandomShooting`, :class:`CEM` (and the iCEM preset :class:`ICEM`), :class:`MPPI`,
:class:`GradientPlanner` and the CEM + gradient hybrid :class:`CEMGradient`. Each works with
``Discrete`` and ``Box`` action spaces::

    planner = CEM(env, env.action_space, horizon=15, num_samples=1000)
    action = planner.act(state)          # [E, S] -> [E, A], warm-started from the previous call
    plan = planner.optimize(state)       # Plan(actions [E, H, A], expected_return [E])
"""

from . import blas as _blas

_blas.activate()  # before mlx.core is imported anywhere below

from . import execution  # noqa: E402
from .base import Plan, Planner, WarmStart, shift  # noqa: E402
from .cem import CEM, ICEM  # noqa: E402
from .dynamics import Dynamics, make_evaluate, rollout  # noqa: E402
from .gradient import CEMGradient, GradientPlanner  # noqa: E402
from .mppi import MPPI  # noqa: E402
from .propagation import EnsembleDynamics, Propagation  # noqa: E402
from .random_shooting import RandomShooting  # noqa: E402
from .registry import PLANNERS, make_planner, planner_class  # noqa: E402
from .spaces import Box, Discrete  # noqa: E402

__all__ = [
    "Box",
    "CEM",
    "CEMGradient",
    "Discrete",
    "Dynamics",
    "EnsembleDynamics",
    "GradientPlanner",
    "ICEM",
    "MPPI",
    "PLANNERS",
    "Plan",
    "Planner",
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

"""Batched model-predictive planners over any MLX dynamics ``f(state [B, S], action [B, A]) -> (next_state [B, S], reward [B])``.

Planners: :class:`RandomShooting`, :class:`CEM` (and the iCEM preset :class:`ICEM`), :class:`MPPI`,
:class:`GradientPlanner` and the CEM + gradient hybrid :class:`CEMGradient`, by name through
:data:`PLANNERS` / :func:`make_planner`; the textbook variants for comparisons with published baselines
by name only (``cem-classic``, ``mppi-classic``: :class:`planners.cem.ClassicCEM`, :class:`planners.mppi.ClassicMPPI`). Each works with ``Discrete`` and ``Box`` action spaces::

    planner = CEM(env, env.action_space, horizon=15, samples=1000)
    action = planner.act(state)          # [E, S] -> [E, A], warm-started from the previous call
    plan = planner.optimize(state)       # Plan(actions [E, H, A], expected_return [E])

:func:`rollout` is the imagination loop; :class:`KnownReward` pairs a learned step with a known
reward; :class:`Propagation` and :class:`EnsembleDynamics` plan over an ensemble of models;
:class:`SequenceEvaluator` plugs in a black-box simulator that scores whole action sequences
(``evaluate(start, actions [E, N, H, A]) -> returns [E, N]``) in place of step dynamics. A new
planner subclasses :class:`SamplingPlanner` (sample, score, refit) or :class:`Planner`.

Internals are reachable by module path (``planners.base.shift``, ``planners.dynamics.make_evaluate``);
how work executes on this machine (BLAS, CPU streams, memory estimates) lives in
:mod:`planners.runtime`, whose :func:`~planners.runtime.activate` runs here, once, so that any import
of ``planners`` (or of a package that uses it) gives MLX's matmuls the fast BLAS, in any import order.
"""

from . import runtime
from .base import Plan, Planner, PlannerState, SamplingPlanner
from .cem import CEM, ICEM
from .dynamics import Dynamics, KnownReward, rollout
from .gradient import CEMGradient, GradientPlanner
from .mppi import MPPI
from .propagation import EnsembleDynamics, Propagation
from .random_shooting import RandomShooting
from .sequence import SequenceEvaluator
from .registry import PLANNERS, make_planner, planner_class
from .spaces import Box, Discrete

__all__ = [
    "CEM",
    "ICEM",
    "MPPI",
    "CEMGradient",
    "GradientPlanner",
    "RandomShooting",
    "Planner",
    "SamplingPlanner",
    "Box",
    "Discrete",
    "Plan",
    "PlannerState",
    "Dynamics",
    "SequenceEvaluator",
    "rollout",
    "KnownReward",
    "Propagation",
    "EnsembleDynamics",
    "PLANNERS",
    "make_planner",
    "planner_class",
]

runtime.activate()  # the one call: MLX's float32 matmuls on an optimised CBLAS, whatever was imported first

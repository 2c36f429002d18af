"""Each environment's budgets, in one frozen record per environment module (``env.defaults``).

    DEFAULTS = EnvDefaults(
        training=TrainingBudget(...),                 # wmplan train
        planning=PlanningDefaults(horizon=40, samples=1000),
        mbrl=MbrlBudget(...),                         # wmplan mbrl
        benchmark=BenchmarkDefaults(score="cost_ratio", controller_name="swing-up", controller=..., success=...),
    )

Only the environment's module writes these values; everything else reads them from ``env.defaults``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, Mapping, Optional

import numpy as np

from .scores import SCORES

@dataclass(frozen=True)
class TrainingBudget:
    """What ``wmplan train --env NAME`` spends on an environment's world model by default
    (the field defaults are the seed's particle budget).

    Attributes:
        episodes, steps: random-action episodes and steps each (``episodes * steps`` transitions).
        epochs, batch_size: training passes and batch size.
        hidden: the trunk's hidden layer sizes.
        reward_hidden: the reward head's hidden size.
        angles: whether the model takes the environment's ``angles`` as ``(cos, sin)`` inputs.
        reward_from_state: whether the reward head also reads the state before the step.
        ensemble: members of the model: ``1`` one :class:`worldmodel.WorldModel`, ``K > 1`` an
            :class:`worldmodel.EnsembleWorldModel` of ``K`` such models, each trained on its own bootstrap
            of the data (planning then uses their mean).
    """

    episodes: int = 400
    steps: int = 50
    epochs: int = 20
    batch_size: int = 128
    hidden: tuple = (128, 128)
    reward_hidden: int = 32
    angles: bool = False
    reward_from_state: bool = False
    ensemble: int = 1


@dataclass(frozen=True)
class PlanningDefaults:
    """How planners plan in this environment by default.

    Attributes:
        horizon, samples: planning horizon and sequences per planning call.
        options: extra keyword options of every planner here, e.g. a terminal value or ``iterations``
            (``wmplan mbrl``'s default too): a mapping, or a function ``options(env) -> dict`` where they
            depend on the instance; ``None``: none.
        demo_start: the start ``[S]`` of ``wmplan plan`` and ``rollout``; ``None``: where
            ``env.reset(1, seed)`` puts it.
    """

    horizon: int
    samples: int
    options: Optional[Mapping[str, Any] | Callable[[Any], dict]] = None
    demo_start: Optional[tuple] = None

    def planner_options(self, env) -> dict:
        """The options of :attr:`options` for ``env``, as a dict."""
        if self.options is None:
            return {}
        return dict(self.options(env) if callable(self.options) else self.options)


@dataclass(frozen=True)
class MbrlBudget:
    """What ``wmplan mbrl --env NAME`` spends by default: the model-based RL loop's schedule.

    Attributes:
        random_episodes, random_steps: the random-action episodes the run starts from, and the steps
            of each (``None``: the environment's episode length).
        episodes_per_round: episodes planned with the current model in every round.
        rounds: rounds of planning, adding data and retraining after the random start.
        ensemble: members of the world model (``1``: one model).
        first_train_steps, train_steps: gradient steps on the random data, then after every round.
        batch_size, lr: Adam's batches and learning rate.
        normalization: ``"refit"`` (statistics fit again on all data before every training) or ``"fixed"``.
        eval_episodes: closed-loop episodes from the benchmark's starts after every round.
        planner, propagation: the planner's name and how an ensemble imagines (``planners.Propagation``'s mode).
        known_reward: plan with the env's ``reward(state, action, next_state)`` in place of the model's
            reward head (the model still learns it; ``False``: the learned reward, as for the classic envs).
    """

    random_episodes: int = 2
    random_steps: Optional[int] = None
    episodes_per_round: int = 1
    rounds: int = 10
    ensemble: int = 1
    first_train_steps: int = 1000
    train_steps: int = 500
    batch_size: int = 128
    lr: float = 1e-3
    normalization: str = "refit"
    eval_episodes: int = 20
    known_reward: bool = False
    planner: str = "cem"
    propagation: str = "tsinf"


@dataclass(frozen=True)
class Optimum:
    """The exact optimum of an environment's episodes.

    Attributes:
        returns: ``returns(env, starts [E, S], steps) -> [E]`` best returns (float64).
        plan: ``plan(env, start [S], steps) -> (best return, actions [steps, A])``.
        solver: how it is found, in words (benchmark JSON's ``optimal_solver``).
    """

    returns: Callable[..., np.ndarray]
    plan: Callable[..., tuple]
    solver: str


@dataclass(frozen=True)
class BenchmarkDefaults:
    """What the benchmark asks of an environment.

    Attributes:
        score: the key of its score in :data:`worldmodel.envs.scores.SCORES` (by the sign of its rewards).
        controller_name, controller: the hand-written controller's row name and
            ``controller(env, state [E, S]) -> actions [E, A]`` float32; ``None`` for none.
        success: ``success(env, states [E, T + 1, S], terminated [E]) -> [E]`` bool, or ``None``.
        final_distance: ``final_distance(env, states [E, T + 1, S]) -> [E]``: distance to a position
            goal at the end (the particle's ``|x|``), or ``None``.
        optimum: the exact optimum where it is known (:class:`Optimum`), else ``None``: the benchmark
            then plans a reference with a large budget.
    """

    score: str
    controller_name: Optional[str] = None
    controller: Optional[Callable[..., np.ndarray]] = None
    success: Optional[Callable[..., np.ndarray]] = None
    final_distance: Optional[Callable[..., np.ndarray]] = None
    optimum: Optional[Optimum] = None

    def __post_init__(self):
        if self.score not in SCORES:
            raise ValueError(f"unknown score {self.score!r}; choose from {', '.join(SCORES)}")
        if (self.controller_name is None) != (self.controller is None):
            raise ValueError("give a controller and its row name together, or neither")


@dataclass(frozen=True)
class EnvDefaults:
    """One environment's budgets: ``training``, ``planning``, ``mbrl``, ``benchmark``."""

    training: TrainingBudget
    planning: PlanningDefaults
    benchmark: BenchmarkDefaults
    mbrl: MbrlBudget = field(default_factory=MbrlBudget)

    def __post_init__(self):
        kinds = {"training": TrainingBudget, "planning": PlanningDefaults, "benchmark": BenchmarkDefaults, "mbrl": MbrlBudget}
        for f in fields(self):
            if not isinstance(getattr(self, f.name), kinds[f.name]):
                raise ValueError(f"{f.name} must be a {kinds[f.name].__name__}, got {getattr(self, f.name)!r}")

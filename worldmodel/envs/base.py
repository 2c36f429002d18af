"""What every environment knows: the :class:`Environment` base class.

An environment is its true dynamics as a batched MLX function (the planners' ``Dynamics``
contract) plus what a benchmark or a training run needs around it: the action space, start
states, training-data draws, termination, episode length and planning budgets, the benchmark's
score column, hand-written controller, success test and (where one is known) exact optimum, and
for the Gymnasium copies the id they mirror and the encoding between Gymnasium and planner arrays.
Gymnasium itself is imported only by :meth:`Environment.make_gym_env`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping, Optional

import mlx.core as mx
import numpy as np

from planners.runtime import streams
from planners.spaces import Box, Discrete

NO_OPTIONS: Mapping[str, Any] = MappingProxyType({})


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

    (The model options are :class:`worldmodel.WorldModel`'s.)
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
class MbrlBudget:
    """What ``wmplan mbrl --env NAME`` spends by default: the model-based RL loop's schedule.

    Attributes:
        random_episodes, random_steps: the random-action episodes the run starts from, and the steps
            of each (``None``: the environment's episode length).
        episodes_per_iteration: episodes planned with the current model in every iteration.
        iterations: planning iterations after the random start.
        ensemble: members of the world model (``1``: one model).
        first_train_steps, train_steps: gradient steps on the random data, then after every iteration.
        batch_size, lr: Adam's batches and learning rate.
        normalization: ``"refit"`` (statistics fit again on all data before every training) or ``"fixed"``.
        eval_episodes: closed-loop episodes from the benchmark's starts after every iteration.
    """

    random_episodes: int = 2
    random_steps: Optional[int] = None
    episodes_per_iteration: int = 1
    iterations: int = 10
    ensemble: int = 1
    first_train_steps: int = 1000
    train_steps: int = 500
    batch_size: int = 128
    lr: float = 1e-3
    normalization: str = "refit"
    eval_episodes: int = 20


class Environment(ABC):
    """An environment with true batched dynamics ``env(state [B, S], action [B, A]) -> (next_state [B, S], reward [B])``.

    All MLX arrays are float32; all numpy arrays returned are float32 unless said otherwise.
    Actions are one-hot (or probability) vectors ``[B, n]`` for a ``Discrete(n)`` space -- a
    probability vector applies the expected force or torque, which is what gradient planners
    feed -- and floats ``[B, A]`` for a ``Box``.

    Class attributes every environment sets:
        name: its name in the registry (``worldmodel.envs.get_env``).
        gym_id: the Gymnasium id it mirrors, or ``None``.
        state_dim: ``S``.
        state_names: ``S`` names of the state variables (start-state CSV headers, printouts, plots).
        action_name: what an action applies (``"torque"``, ``"force"``, ...), for printouts and plots.
        angles: indices of the state variables that are angles free to turn (period ``2 pi``); may be empty.
        state_low, state_high: ``[S]`` bounds of the box :meth:`sample_states` draws training states from.
        steps: episode length (Gymnasium's ``max_episode_steps``).
        horizon, samples: default planning horizon and sequences per planning call in benchmarks.
        planner_options: extra keyword options that suit planners here (may be empty).
        training: the default :class:`TrainingBudget` of a learned model.
        mbrl: the default :class:`MbrlBudget` of a model-based RL run.
        termination: ``None`` if episodes never end, else the method
            ``termination(next_state [B, S]) -> [B]`` bool (pass it to a planner as ``termination=``).
        rollout_streams: CPU streams a rollout of these dynamics is split over (see
            ``planners.dynamics.rollout``): ``1``, as a step is a few element-wise operations.
        gym_state_dtype: the numpy dtype Gymnasium keeps ``env.unwrapped.state`` in.
        score: the benchmark's score of a row against the reference returns (see
            ``benchmarks.scores``): ``"cost_ratio"`` for rewards that are never positive,
            ``"return_ratio"`` for rewards that are never negative, ``"gap"`` for mixed signs.
        controller_name: the benchmark row name of :meth:`controller`, or ``None`` (no controller).

    Instances set ``action_space`` (``Discrete`` or ``Box``).
    """

    name: str
    gym_id: Optional[str] = None
    state_dim: int
    state_names: tuple
    action_name: str = "action"
    angles: tuple = ()
    state_low: tuple
    state_high: tuple
    steps: int
    horizon: int
    samples: int
    planner_options: Mapping[str, Any] = NO_OPTIONS
    training: TrainingBudget
    mbrl: MbrlBudget = MbrlBudget()
    termination = None
    rollout_streams = 1
    gym_state_dtype = np.float64
    score: str
    controller_name: Optional[str] = None
    action_space: Discrete | Box

    # -- true dynamics -------------------------------------------------------------------------

    def __call__(self, state: mx.array, action: mx.array) -> tuple[mx.array, mx.array]:
        """One step: ``state [B, S]``, ``action [B, A]`` -> ``(next_state [B, S], reward [B])``.

        :meth:`step` compiled with ``mx.compile`` where MLX can compile here (its element-wise
        operations fused: planning is 2-9x faster); it is traced again for each new shape or dtype
        of the inputs. Where MLX cannot (no C++ compiler for its CPU kernels), :meth:`step` itself.
        """
        if self._compiled_step is None:
            self._compiled_step = mx.compile(self.step) if streams.compile_works() else self.step
        return self._compiled_step(state, action)

    _compiled_step = None

    def step(self, state: mx.array, action: mx.array) -> tuple[mx.array, mx.array]:
        """:meth:`__call__` without compiling: ``(next_state [B, S], reward [B])``."""
        next_state = self.next_state(state, action)
        return next_state, self.reward(state, action, next_state)

    @abstractmethod
    def next_state(self, state: mx.array, action: mx.array) -> mx.array:
        """``state [B, S]``, ``action [B, A]`` -> ``next_state [B, S]``."""

    @abstractmethod
    def reward(self, state: mx.array, action: mx.array, next_state: mx.array) -> mx.array:
        """The reward ``[B]`` of the step ``state [B, S] --action [B, A]--> next_state [B, S]``.

        Known rewards let a learned next-state model plan (``planners.KnownReward(model, env.reward)``).
        """

    # -- states and actions --------------------------------------------------------------------

    @abstractmethod
    def sample_starts(self, rng: np.random.Generator, num: int) -> np.ndarray:
        """``num`` start states ``[num, S]`` from the distribution of Gymnasium's ``reset``."""

    @abstractmethod
    def hard_starts(self) -> np.ndarray:
        """A few deliberately hard start states ``[K, S]``."""

    def default_starts(self, num: int, seed: int = 0) -> np.ndarray:
        """``num`` benchmark starts ``[num, S]``: the hard starts first, then draws of :meth:`sample_starts`."""
        if num < 1:
            raise ValueError(f"need num >= 1 starts, got {num}")
        hard = self.hard_starts()[:num]
        rest = self.sample_starts(np.random.default_rng(seed), num - len(hard))
        return np.concatenate([hard, rest]).astype(np.float32)

    def benchmark_starts(self, num: int, seed: int = 0) -> np.ndarray:
        """The benchmark's starts ``[num, S]``: episode ``i`` starts where Gymnasium's ``reset(seed=seed + i)``
        puts it (:meth:`sample_starts` from ``np.random.default_rng(seed + i)``, Gymnasium's own generator)."""
        if num < 1:
            raise ValueError(f"need num >= 1 starts, got {num}")
        return np.concatenate([self.sample_starts(np.random.default_rng(seed + i), 1) for i in range(num)])

    def demo_start(self, seed: int = 0) -> np.ndarray:
        """The start ``[S]`` of ``wmplan plan`` and ``rollout``: where ``reset(seed=seed)`` puts the env."""
        return self.benchmark_starts(1, seed)[0]

    def sample_states(self, rng: np.random.Generator, num: int) -> np.ndarray:
        """``num`` training states ``[num, S]``, uniform over ``[state_low, state_high]``."""
        return uniform_box(rng, self.state_low, self.state_high, num)

    def sample_actions(self, rng: np.random.Generator, num: int) -> np.ndarray:
        """``num`` uniformly random actions ``[num, A]``: one-hot rows, or floats within the ``Box``."""
        space = self.action_space
        if isinstance(space, Discrete):
            return np.eye(space.n, dtype=np.float32)[rng.integers(0, space.n, size=num)]
        return rng.uniform(space.low, space.high, size=(num, space.dim)).astype(np.float32)

    def zero_action(self) -> Optional[np.ndarray]:
        """The action ``[A]`` float32 that applies nothing (one-hot of the value 0, or zeros inside the
        ``Box``), or ``None`` where the space has none (e.g. CartPole's pushes of -10 and +10)."""
        space = self.action_space
        if isinstance(space, Discrete):
            values = space.values if space.values is not None else ()
            zeros = [i for i, value in enumerate(values) if value == 0]
            return np.eye(space.n, dtype=np.float32)[zeros[0]] if zeros else None
        if np.all(space.low <= 0) and np.all(space.high >= 0):
            return np.zeros(space.dim, dtype=np.float32)
        return None

    def describe_action(self, action) -> str:
        """One action ``[A]`` as text: the value of a ``Discrete`` action (``+1``, ``-10``), else the floats."""
        action = np.asarray(action)
        space = self.action_space
        if isinstance(space, Discrete):
            index = int(np.argmax(action))
            return f"{space.values[index]:+g}" if space.values is not None else str(index)
        return ",".join(f"{a:+.3f}" for a in action)

    def encode_action(self, value: float) -> np.ndarray:
        """The action ``[A]`` float32 of one number: the one-hot of that ``Discrete`` value, or ``[value]``
        in a one-dimensional ``Box``; ``ValueError`` for anything else."""
        space = self.action_space
        if isinstance(space, Discrete):
            values = space.values if space.values is not None else tuple(range(space.n))
            if value not in values:
                raise ValueError(f"{self.name}'s actions are {', '.join(f'{v:+g}' for v in values)}, got {value:g}")
            return np.eye(space.n, dtype=np.float32)[list(values).index(value)]
        if space.dim != 1 or not (np.isfinite(value) and space.low[0] <= value <= space.high[0]):
            raise ValueError(f"{self.name}'s actions are numbers in [{space.low[0]:g}, {space.high[0]:g}], got {value:g}")
        return np.array([value], dtype=np.float32)

    # -- benchmark extras ----------------------------------------------------------------------

    def controller(self, state: np.ndarray) -> np.ndarray:
        """The hand-written controller (see ``controller_name``): ``state [E, S]`` -> actions ``[E, A]`` float32."""
        raise NotImplementedError(f"environment {self.name!r} has no hand-written controller")

    def success(self, states: np.ndarray, terminated: np.ndarray) -> Optional[np.ndarray]:
        """``[E]`` bool: which episodes succeeded, from their states ``[E, T + 1, S]`` and whether each
        ended by termination ``[E]``; ``None`` where the environment defines no success."""
        return None

    def final_abs_x(self, states: np.ndarray) -> Optional[np.ndarray]:
        """``[E]`` distance to the goal at the end of ``states [E, T + 1, S]``, where the env has one position goal; else ``None``."""
        return None

    @property
    def has_optimum(self) -> bool:
        """Whether :meth:`optimal_returns` knows the exact optimum (else benchmarks plan a reference)."""
        return False

    def optimal_returns(self, starts, steps: int) -> Optional[np.ndarray]:
        """Exact best returns ``[E]`` of ``steps``-step episodes from ``starts [E, S]``, or ``None`` (unknown)."""
        return None

    def optimal_plan(self, start, steps: int):
        """``(best return, actions [steps, A])`` from ``start [S]``, or ``None`` (unknown)."""
        return None

    def config(self) -> dict:
        """The constructor options, so that ``get_env(env.name, **env.config())`` rebuilds it."""
        return {}

    # -- Gymnasium -----------------------------------------------------------------------------

    def gym_options(self) -> dict:
        """Keyword arguments ``gymnasium.make`` needs for the same physics (e.g. Pendulum's ``g``)."""
        return {}

    def make_gym_env(self, **kwargs):
        """The real Gymnasium environment ``gymnasium.make(gym_id, ...)`` (``kwargs``: e.g. ``render_mode``)."""
        if self.gym_id is None:
            raise ValueError(f"environment {self.name!r} has no Gymnasium counterpart")
        try:
            import gymnasium
        except ImportError:
            raise ImportError("make_gym_env needs gymnasium: pip install 'wmplan[gym]'") from None
        return gymnasium.make(self.gym_id, **self.gym_options(), **kwargs)

    def state_from_obs(self, obs) -> np.ndarray:
        """The planner state ``[..., S]`` float32 of Gymnasium observations ``[..., O]`` (here the observation is the state)."""
        return np.asarray(obs, dtype=np.float32)

    def gym_action(self, action):
        """What ``gym_env.step`` takes for one planner action ``[A]``: the index of the largest
        entry for ``Discrete`` (an ``int``), else the float32 array ``[A]`` (Gymnasium clips it)."""
        action = np.asarray(action)
        if isinstance(self.action_space, Discrete):
            return int(np.argmax(action))
        return action.astype(np.float32).reshape(self.action_space.shape)

    def gym_state(self, gym_env) -> np.ndarray:
        """The Gymnasium env's internal Markov state ``[S]`` (float64), the planner state of this environment."""
        return np.array(gym_env.unwrapped.state, dtype=np.float64)

    def set_gym_state(self, gym_env, state) -> None:
        """Put the Gymnasium env in planner state ``state [S]`` (for exact comparisons of one step)."""
        gym_env.unwrapped.state = np.array(state, dtype=self.gym_state_dtype).reshape(self.state_dim)

    def __repr__(self):
        options = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({options})"


def uniform_box(rng: np.random.Generator, low, high, num: int) -> np.ndarray:
    """``num`` draws ``[num, S]`` float32, uniform over the box ``[low, high]`` (each ``[S]``)."""
    low = np.asarray(low, dtype=np.float64)
    return rng.uniform(low, np.asarray(high, dtype=np.float64), size=(num, low.size)).astype(np.float32)

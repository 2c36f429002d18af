"""What every environment is: the :class:`Environment` base class, dynamics plus task.

An environment is its true dynamics as a batched MLX function (the planners' ``Dynamics``
contract) plus its task: the action space, reward, termination, episode length, the state's names,
bounds and angles, and its start states (:meth:`Environment.reset`, and the benchmark's set
:meth:`Environment.benchmark_starts`). Its budgets (training, planning, MBRL, benchmark) are one
record, ``env.defaults`` (:mod:`worldmodel.envs.defaults`); how it mirrors a Gymnasium environment
is ``env.gymnasium`` (:mod:`worldmodel.envs.gymnasium`, the adapter).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Optional

import mlx.core as mx
import numpy as np

from planners.runtime import streams
from planners.spaces import Box, Discrete

from .defaults import EnvDefaults, MbrlBudget, TrainingBudget  # noqa: F401  (the budgets' old home)
from .gymnasium import GymSpec


class Environment(ABC):
    """An environment with true batched dynamics ``env(state [B, S], action [B, A]) -> (next_state [B, S], reward [B])``.

    All MLX arrays are float32; all numpy arrays returned are float32 unless said otherwise.
    Actions are one-hot (or probability) vectors ``[B, n]`` for a ``Discrete(n)`` space -- a
    probability vector applies the expected force or torque, which is what gradient planners
    feed -- and floats ``[B, A]`` for a ``Box``.

    Class attributes every environment sets:
        name: its name in the registry (``worldmodel.envs.get_env``).
        state_dim: ``S``.
        state_names: ``S`` names of the state variables (start-state CSV headers, printouts, plots).
        action_name: what an action applies (``"torque"``, ``"force"``, ...), for printouts and plots.
        angles: indices of the state variables that are angles free to turn (period ``2 pi``); may be empty.
        state_low, state_high: ``[S]`` bounds of the box :meth:`sample_states` draws training states from.
        start_low, start_high: ``[S]`` bounds of the box :meth:`reset` draws starts from (Gymnasium's reset).
        steps: episode length (Gymnasium's ``max_episode_steps``).
        termination: ``None`` if episodes never end, else the method
            ``termination(next_state [B, S]) -> [B]`` bool (pass it to a planner as ``termination=``).
        rollout_streams: CPU streams a rollout of these dynamics is split over (see
            ``planners.dynamics.rollout``): ``1``, as a step is a few element-wise operations.
        defaults: the budgets (:class:`~worldmodel.envs.defaults.EnvDefaults`), its module's ``DEFAULTS``.
        gymnasium: how it mirrors a Gymnasium environment (:class:`~worldmodel.envs.gymnasium.GymSpec`), or ``None``.
        mlx_copy: whether :meth:`step` is an MLX copy of the dynamics (``False`` for MuJoCo's envs, which
            run in Gymnasium only: see :mod:`worldmodel.envs.mujoco_base`).

    Instances set ``action_space`` (``Discrete`` or ``Box``).
    """

    name: str
    state_dim: int
    state_names: tuple
    action_name: str = "action"
    angles: tuple = ()
    state_low: tuple
    state_high: tuple
    start_low: tuple
    start_high: tuple
    steps: int
    termination = None
    rollout_streams = 1
    defaults: EnvDefaults
    gymnasium: Optional[GymSpec] = None
    mlx_copy = True
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

    def true_dynamics(self):
        """What planners imagine with for the ``true`` dynamics: the env itself (its MLX copy), or ``None``
        where there is no copy to plan with (MuJoCo's envs: their ``planners.SequenceEvaluator``)."""
        return self if self.mlx_copy else None

    def close(self) -> None:
        """Release what :meth:`true_dynamics` started (nothing here; MuJoCo's envs stop their rollout threads)."""

    true_dynamics_read = None
    """What a planner on :meth:`true_dynamics` is handed in Gymnasium's episodes (the runner's ``policy_read``):
    ``None``, the planner state; ``"physics"``, MuJoCo's full physics state."""

    # -- states and actions --------------------------------------------------------------------

    def reset(self, num: int, seed: int = 0) -> mx.array:
        """``num`` start states ``[num, S]`` from ``np.random.default_rng(seed)``, distributed as Gymnasium's
        ``reset``: ``reset(1, seed)`` is where Gymnasium's ``reset(seed=seed)`` puts the environment."""
        if num < 1:
            raise ValueError(f"reset needs num >= 1, got {num}")
        return mx.array(self._draw_starts(np.random.default_rng(seed), num))

    def _draw_starts(self, rng: np.random.Generator, num: int) -> np.ndarray:
        """``num`` draws ``[num, S]`` float32 of the reset distribution: uniform over ``[start_low, start_high]``."""
        return uniform_box(rng, self.start_low, self.start_high, num)

    def benchmark_starts(self, num: int, seed: int = 0) -> np.ndarray:
        """The benchmark's starts ``[num, S]`` float32: episode ``i`` starts where Gymnasium's
        ``reset(seed=seed + i)`` puts it (``reset(1, seed + i)``)."""
        if num < 1:
            raise ValueError(f"need num >= 1 starts, got {num}")
        return np.concatenate([np.array(self.reset(1, seed + i)) for i in range(num)])

    def sample_states(self, rng: np.random.Generator, num: int) -> np.ndarray:
        """``num`` training states ``[num, S]`` float32, uniform over ``[state_low, state_high]``.

        Not a start distribution: the training data cover the whole state box (episodes from
        ``reset`` alone would rarely visit, say, the pendulum upright or fast), and the draws share
        one generator with the random actions of :func:`worldmodel.data.generate`.
        """
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

    def config(self) -> dict:
        """The constructor options, so that ``get_env(env.name, **env.config())`` rebuilds it."""
        return {}

    def __repr__(self):
        options = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({options})"


def uniform_box(rng: np.random.Generator, low, high, num: int) -> np.ndarray:
    """``num`` draws ``[num, S]`` float32, uniform over the box ``[low, high]`` (each ``[S]``)."""
    low = np.asarray(low, dtype=np.float64)
    return rng.uniform(low, np.asarray(high, dtype=np.float64), size=(num, low.size)).astype(np.float32)

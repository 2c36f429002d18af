"""The seed's 1-D particle, batched in MLX: the one home of its constants.

State ``[x, v]``; a push ``a`` in {-1, 0, +1} (or in [-1, 1] for the continuous variant)::

    v' = clip(v + accel a, -v_limit, v_limit)        accel = 0.1, v_limit = 1.0
    x' = clip(x + v', -x_limit, x_limit)             x_limit = 1.5
    r  = -|x'|

Besides the dynamics this module holds everything the benchmark asks the particle for: its hard
starts, its hand-written ``feedback`` controller, its success test and, for the discrete pushes,
the exact optimum (:mod:`worldmodel.envs.particle_optimal`, which reads the constants from the
env it is given). It has no Gymnasium counterpart and never terminates.
"""

from __future__ import annotations

import mlx.core as mx
import numpy as np

from planners.spaces import Box, Discrete

from .base import Environment, MbrlBudget, TrainingBudget

ACCEL = 0.1
X_LIMIT = 1.5
V_LIMIT = 1.0
PUSHES = (-1.0, 0.0, 1.0)
FEEDBACK_GAIN = 3.0  # the feedback controller pushes against x + gain * v ...
FEEDBACK_DEADBAND = 0.05  # ... when that is farther than this from 0
SUCCESS_RADIUS = 0.1  # success: |x| below this ...
SUCCESS_WINDOW = 10  # ... in each of the last states


class Particle(Environment):
    """The particle: ``env(state [B, 2], action [B, A]) -> (next_state [B, 2], reward [B])``.

    Args:
        continuous: if ``True`` the action is a push in ``[-1, 1]`` (``[B, 1]``, clipped), else a
            one-hot vector over the pushes (-1, 0, +1) (``[B, 3]``). A probability vector is
            accepted too: its expected push is applied (the relaxation gradient planners use).
        accel: velocity change per unit push. Default: ``0.1``.
        x_limit: walls at ``±x_limit``. Default: ``1.5``.
        v_limit: speed limit. Default: ``1.0``.
    """

    name = "particle"
    state_dim = 2
    state_names = ("x", "v")
    action_name = "push"
    training = TrainingBudget()
    # 20 random episodes of 5 steps from uniform starts cover the box (2 of 50 steps spend ~82% of them
    # against a wall); an ensemble planned with TS-infinity; enough gradient steps to fit the small data.
    mbrl = MbrlBudget(random_episodes=20, random_steps=5, iterations=4, ensemble=5, first_train_steps=3000,
                      train_steps=2000)
    steps = 50
    horizon = 15
    samples = 500
    score = "cost_ratio"
    controller_name = "feedback"
    rollout_streams = 1  # a handful of tiny element-wise ops a step: splitting rows costs more than it gains

    def __init__(self, continuous: bool = False, accel: float = ACCEL, x_limit: float = X_LIMIT, v_limit: float = V_LIMIT):
        if not all(np.isfinite(c) and c > 0 for c in (accel, x_limit, v_limit)):
            raise ValueError(f"accel, x_limit and v_limit must be positive, got {accel}, {x_limit}, {v_limit}")
        self.continuous = bool(continuous)
        self.accel = float(accel)
        self.x_limit = float(x_limit)
        self.v_limit = float(v_limit)
        if self.continuous:
            self.action_space = Box(-1.0, 1.0, shape=(1,))
        else:
            self.action_space = Discrete(3, values=PUSHES)
        self._pushes = mx.array(PUSHES, dtype=mx.float32)

    @property
    def state_low(self) -> tuple:
        return (-self.x_limit, -self.v_limit)

    @property
    def state_high(self) -> tuple:
        return (self.x_limit, self.v_limit)

    @property
    def action_dim(self) -> int:
        """Length of one action vector: 3 (one-hot pushes) or 1 (continuous)."""
        return self.action_space.dim

    def config(self) -> dict:
        """The constructor arguments, as stored in checkpoints."""
        return {"continuous": self.continuous, "accel": self.accel, "x_limit": self.x_limit, "v_limit": self.v_limit}

    # -- dynamics ------------------------------------------------------------------------------

    def push(self, action: mx.array) -> mx.array:
        """Pushes ``[B]`` from actions ``[B, 3]`` (one-hot/probabilities) or ``[B, 1]`` (continuous)."""
        if self.continuous:
            return mx.clip(action[..., 0], -1.0, 1.0)
        return action @ self._pushes

    def step(self, state: mx.array, action: mx.array) -> tuple[mx.array, mx.array]:
        """One step: ``state [B, 2]``, ``action [B, A]`` -> ``(next_state [B, 2], reward [B])``."""
        x, v = state[..., 0], state[..., 1]
        v_next = mx.clip(v + self.accel * self.push(action), -self.v_limit, self.v_limit)
        x_next = mx.clip(x + v_next, -self.x_limit, self.x_limit)
        return mx.stack([x_next, v_next], axis=-1), -mx.abs(x_next)

    def next_state(self, state: mx.array, action: mx.array) -> mx.array:
        return self.step(state, action)[0]

    def reward(self, state: mx.array, action: mx.array, next_state: mx.array) -> mx.array:
        """``-|x'|`` of the step (computed again from ``state`` and ``action``; ``next_state`` is not read)."""
        return self.step(state, action)[1]

    # -- states --------------------------------------------------------------------------------

    def reset(self, num: int, seed: int = 0) -> mx.array:
        """``num`` start states ``[num, 2]``, uniform over the box: x ~ U[-x_limit, x_limit], v ~ U[-v_limit, v_limit]."""
        if num < 1:
            raise ValueError(f"reset needs num >= 1, got {num}")
        return mx.array(self.sample_states(np.random.default_rng(seed), num))

    def sample_states(self, rng: np.random.Generator, num: int) -> np.ndarray:
        """``num`` states ``[num, 2]`` float32, uniform over the whole box (both walls, both speed limits).

        All ``num`` x values are drawn first, then the v values (the seed's order, which the default
        model's training data and the benchmark's starts follow).
        """
        x = rng.uniform(-self.x_limit, self.x_limit, size=num)
        v = rng.uniform(-self.v_limit, self.v_limit, size=num)
        return np.stack([x, v], axis=-1).astype(np.float32)

    def sample_starts(self, rng: np.random.Generator, num: int) -> np.ndarray:
        """Uniform over the whole box, as :meth:`reset`."""
        return self.sample_states(rng, num)

    def hard_starts(self) -> np.ndarray:
        """At a wall moving outward at full speed (both walls), at a wall at rest (both), at rest in
        the centre, at rest two thirds of the way to the right wall (the seed's demo start)."""
        x, v = self.x_limit, self.v_limit
        return np.array([[x, v], [-x, -v], [x, 0.0], [-x, 0.0], [0.0, 0.0], [x * 2 / 3, 0.0]], dtype=np.float32)

    def benchmark_starts(self, num: int, seed: int = 0) -> np.ndarray:
        """The benchmark's starts ``[num, 2]``: the hard starts, then uniform draws from ``default_rng(seed)``."""
        return self.default_starts(num, seed)

    def demo_start(self, seed: int = 0) -> np.ndarray:
        """The start ``[2]`` of ``wmplan plan`` and ``rollout``: at rest, two thirds of the way to the right wall."""
        return self.hard_starts()[-1]

    # -- benchmark extras ----------------------------------------------------------------------

    def controller(self, state: np.ndarray) -> np.ndarray:
        """``feedback``: push against ``s = x + 3 v`` when ``|s| > 0.05``, else do nothing.

        Args:
            state: ``[E, 2]``.
        Returns:
            actions ``[E, A]`` float32 (one-hot pushes, or the pushes themselves when continuous).
        """
        s = state[:, 0] + FEEDBACK_GAIN * state[:, 1]
        pushes = np.where(np.abs(s) > FEEDBACK_DEADBAND, -np.sign(s), 0.0)
        if self.continuous:
            return pushes[:, None].astype(np.float32)
        return np.array(one_hot_pushes(pushes))

    def success(self, states: np.ndarray, terminated: np.ndarray) -> np.ndarray:
        """``[E]`` bool: ``|x| < 0.1`` in each of the last 10 states (all of them if fewer) of ``states [E, T + 1, 2]``."""
        return np.all(np.abs(states[:, -SUCCESS_WINDOW:, 0]) < SUCCESS_RADIUS, axis=1)

    def final_abs_x(self, states: np.ndarray) -> np.ndarray:
        """``[E]`` |x| of the last states of ``states [E, T + 1, 2]``."""
        return np.abs(states[:, -1, 0])

    @property
    def has_optimum(self) -> bool:
        """The discrete pushes have an exact optimum (:mod:`~worldmodel.envs.particle_optimal`); continuous ones do not."""
        return not self.continuous

    def optimal_returns(self, starts, steps: int):
        """Exact best returns ``[E]`` (float64) of ``steps``-step episodes from ``starts [E, 2]``
        (:func:`~worldmodel.envs.particle_optimal.optimal_returns`); ``None`` for continuous pushes."""
        if self.continuous:
            return None
        from .particle_optimal import optimal_returns

        return optimal_returns(self, starts, steps)

    def optimal_plan(self, start, steps: int):
        """``(best return, actions [steps, 3])`` from ``start [2]``
        (:func:`~worldmodel.envs.particle_optimal.optimal_plan`); ``None`` for continuous pushes."""
        if self.continuous:
            return None
        from .particle_optimal import optimal_plan

        best, pushes = optimal_plan(self, start, steps)
        return best, np.array(one_hot_pushes(pushes))

    def __repr__(self):
        return f"ParticleEnv(continuous={self.continuous})"


ParticleEnv = Particle
"""The name wmplan's API has used for the particle since the seed (``worldmodel.ParticleEnv``)."""


def one_hot_pushes(pushes) -> mx.array:
    """One-hot actions ``[..., 3]`` from pushes in {-1, 0, +1} (any array-like of ints)."""
    pushes = np.asarray(pushes)
    index = np.clip(np.searchsorted(PUSHES, pushes), 0, len(PUSHES) - 1)
    if pushes.size and np.any(np.asarray(PUSHES)[index] != pushes):
        raise ValueError(f"pushes must be -1, 0 or +1, got {sorted(set(pushes.ravel().tolist()))}")
    return mx.array(np.eye(len(PUSHES), dtype=np.float32)[index])

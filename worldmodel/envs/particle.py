"""The seed's 1-D particle, batched in MLX: the one home of its constants.

State ``[x, v]``; a push ``a`` in {-1, 0, +1} (or in [-1, 1] for the continuous variant)::

    v' = clip(v + accel a, -v_limit, v_limit)        accel = 0.1, v_limit = 1.0
    x' = clip(x + v', -x_limit, x_limit)             x_limit = 1.5
    r  = -|x'|

Besides the dynamics this module holds everything the benchmark asks the particle for (its
``DEFAULTS``): its hard starts, its hand-written ``feedback`` controller, its success test and, for
the discrete pushes, the exact optimum (:mod:`worldmodel.envs.particle_optimal`, which reads the
constants from the env it is given). It has no Gymnasium counterpart and never terminates.
"""

from __future__ import annotations

from dataclasses import replace

import mlx.core as mx
import numpy as np

from planners.spaces import Box, Discrete

from .base import Environment
from .defaults import BenchmarkDefaults, EnvDefaults, MbrlBudget, Optimum, PlanningDefaults, TrainingBudget

ACCEL = 0.1
X_LIMIT = 1.5
V_LIMIT = 1.0
PUSHES = (-1.0, 0.0, 1.0)
FEEDBACK_GAIN = 3.0  # the feedback controller pushes against x + gain * v ...
FEEDBACK_DEADBAND = 0.05  # ... when that is farther than this from 0
SUCCESS_RADIUS = 0.1  # success: |x| below this ...
SUCCESS_WINDOW = 10  # ... in each of the last states




def feedback(env: "Particle", state: np.ndarray) -> np.ndarray:
    """``feedback``: push against ``s = x + 3 v`` when ``|s| > 0.05``, else do nothing.

    Args:
        state: ``[E, 2]``.
    Returns:
        actions ``[E, A]`` float32 (one-hot pushes, or the pushes themselves when continuous).
    """
    s = state[:, 0] + FEEDBACK_GAIN * state[:, 1]
    pushes = np.where(np.abs(s) > FEEDBACK_DEADBAND, -np.sign(s), 0.0)
    if env.continuous:
        return pushes[:, None].astype(np.float32)
    return np.array(one_hot_pushes(pushes))


def success(env: "Particle", states: np.ndarray, terminated: np.ndarray) -> np.ndarray:
    """``[E]`` bool: ``|x| < 0.1`` in each of the last 10 states (all of them if fewer) of ``states [E, T + 1, 2]``."""
    return np.all(np.abs(states[:, -SUCCESS_WINDOW:, 0]) < SUCCESS_RADIUS, axis=1)


def final_abs_x(env: "Particle", states: np.ndarray) -> np.ndarray:
    """``[E]`` |x| of the last states of ``states [E, T + 1, 2]``."""
    return np.abs(states[:, -1, 0])


def optimal_returns(env: "Particle", starts, steps: int) -> np.ndarray:
    """Exact best returns ``[E]`` (float64) of ``steps``-step episodes from ``starts [E, 2]`` of the
    discrete particle (:func:`~worldmodel.envs.particle_optimal.optimal_returns`)."""
    from .particle_optimal import optimal_returns as solve

    return solve(env, starts, steps)


def optimal_plan(env: "Particle", start, steps: int):
    """``(best return, actions [steps, 3])`` from ``start [2]`` (:func:`~worldmodel.envs.particle_optimal.optimal_plan`)."""
    from .particle_optimal import optimal_plan as solve

    best, pushes = solve(env, start, steps)
    return best, np.array(one_hot_pushes(pushes))


BENCHMARK = BenchmarkDefaults(score="cost_ratio", controller_name="feedback", controller=feedback, success=success,
                              final_distance=final_abs_x)
DEFAULTS = EnvDefaults(
    training=TrainingBudget(),
    planning=PlanningDefaults(horizon=15, samples=500, demo_start=(1.0, 0.0)),
    # 20 random episodes of 5 steps from uniform starts cover the box (2 of 50 steps spend ~82% of them
    # against a wall); an ensemble planned with TS-infinity; enough gradient steps to fit the small data.
    mbrl=MbrlBudget(random_episodes=20, random_steps=5, rounds=4, ensemble=5, first_train_steps=3000, train_steps=2000),
    benchmark=replace(BENCHMARK, optimum=Optimum(optimal_returns, optimal_plan, "lattice enumeration + backward induction")),
)
"""The discrete particle's budgets; the continuous one's are the same without the exact optimum (:data:`CONTINUOUS_DEFAULTS`)."""
CONTINUOUS_DEFAULTS = replace(DEFAULTS, benchmark=BENCHMARK)


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
    steps = 50
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

    start_low, start_high = state_low, state_high  # reset: uniform over the whole box

    @property
    def defaults(self) -> EnvDefaults:
        """:data:`DEFAULTS`, or :data:`CONTINUOUS_DEFAULTS` (no exact optimum) for continuous pushes."""
        return CONTINUOUS_DEFAULTS if self.continuous else DEFAULTS

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

    def _draw_starts(self, rng: np.random.Generator, num: int) -> np.ndarray:
        """Uniform over the whole box, as :meth:`sample_states`."""
        return self.sample_states(rng, num)

    def sample_states(self, rng: np.random.Generator, num: int) -> np.ndarray:
        """``num`` states ``[num, 2]`` float32, uniform over the whole box (both walls, both speed limits).

        All ``num`` x values are drawn first, then the v values (the seed's order, which the default
        model's training data and the benchmark's starts follow).
        """
        x = rng.uniform(-self.x_limit, self.x_limit, size=num)
        v = rng.uniform(-self.v_limit, self.v_limit, size=num)
        return np.stack([x, v], axis=-1).astype(np.float32)

    def _hard_starts(self) -> np.ndarray:
        x, v = self.x_limit, self.v_limit
        return np.array([[x, v], [-x, -v], [x, 0.0], [-x, 0.0], [0.0, 0.0], [x * 2 / 3, 0.0]], dtype=np.float32)

    def benchmark_starts(self, num: int, seed: int = 0) -> np.ndarray:
        """The benchmark's starts ``[num, 2]``: six hard ones first (at a wall moving outward at full speed,
        both walls; at a wall at rest, both; at rest in the centre; at rest two thirds of the way to the
        right wall, the seed's demo start), then ``reset(num - 6, seed)``."""
        if num < 1:
            raise ValueError(f"need num >= 1 starts, got {num}")
        hard = self._hard_starts()[:num]
        if len(hard) == num:
            return hard
        return np.concatenate([hard, np.array(self.reset(num - len(hard), seed))]).astype(np.float32)

ParticleEnv = Particle
"""The particle's old name (``worldmodel.ParticleEnv``), kept as an alias of :class:`Particle`."""


def one_hot_pushes(pushes) -> mx.array:
    """One-hot actions ``[..., 3]`` from pushes in {-1, 0, +1} (any array-like of ints)."""
    pushes = np.asarray(pushes)
    index = np.clip(np.searchsorted(PUSHES, pushes), 0, len(PUSHES) - 1)
    if pushes.size and np.any(np.asarray(PUSHES)[index] != pushes):
        raise ValueError(f"pushes must be -1, 0 or +1, got {sorted(set(pushes.ravel().tolist()))}")
    return mx.array(np.eye(len(PUSHES), dtype=np.float32)[index])

"""Gymnasium's InvertedPendulum-v5 (keep a pole upright on a cart): MuJoCo physics, planner state = observation.

Observation ``[x, theta, x_dot, theta_dot]`` (``qpos`` then ``qvel``: cart position, pole angle,
their velocities), action a force ``[B, 1]`` in ``[-3, 3]``, ``dt = 0.04`` s (two MuJoCo steps of
0.02 s). The reward is 1 for every step after which the pole is still up, and 0 on the terminating
step, which is the one whose next observation has ``|theta| > 0.2`` or a non-finite number
(1000 steps at most: a perfect episode returns 1000). Reset: ``qpos`` and ``qvel`` each
``U[-0.01, 0.01]``.

Every imagined sequence that keeps the pole up earns the same, so planners get a tie-breaker, a
terminal value (:meth:`InvertedPendulum.terminal_value`, a planning option like the acrobot's): a
small cost, below one step's reward, of ending away from the middle, tilted or moving. Without it
the planner picks among the tied sequences by chance, and the cart drifts into its rail's end.
The true dynamics (MuJoCo's rollouts) get the same value of their final state (:meth:`InvertedPendulum.final_value`).
"""

from __future__ import annotations

import mlx.core as mx
import numpy as np

from planners.spaces import Box

from .defaults import BenchmarkDefaults, EnvDefaults, MbrlBudget, PlanningDefaults, TrainingBudget
from .mujoco_base import MujocoEnvironment, mujoco_spec

MAX_FORCE = 3.0
ANGLE_LIMIT = 0.2
RESET_NOISE = 0.01
VALUE_WEIGHTS = (0.1, 1.0, 0.01, 0.01)  # terminal value -(these . (x, theta, x_dot, theta_dot)^2)
PD_GAINS = (1.0, 10.0, 1.0, 2.0)  # force = x, theta, x_dot, theta_dot . these (theta > 0: push to +x)


def reset_physics(rng: np.random.Generator, qpos0: np.ndarray, qvel0: np.ndarray) -> tuple:
    """``(qpos, qvel)`` of one reset: each ``+ U[-0.01, 0.01]``, ``qpos`` drawn first (Gymnasium's order)."""
    qpos = qpos0 + rng.uniform(low=-RESET_NOISE, high=RESET_NOISE, size=qpos0.size)
    qvel = qvel0 + rng.uniform(low=-RESET_NOISE, high=RESET_NOISE, size=qvel0.size)
    return qpos, qvel


def physics_of_obs(obs: np.ndarray) -> tuple:
    """``(qpos [2], qvel [2])`` of an observation ``[4]``: its halves."""
    return obs[:2], obs[2:4]


def pd(env: "InvertedPendulum", state: np.ndarray) -> np.ndarray:
    """``pd``: the force ``x + 10 theta + x_dot + 2 theta_dot``, clipped to ``[-3, 3]``: PD on the pole's
    angle (push the cart under the pole), with terms that keep the cart near the middle.

    Args:
        state: ``[E, 4]`` observations.
    Returns:
        forces ``[E, 1]`` float32.
    """
    force = state @ np.array(PD_GAINS, dtype=np.float32)
    return np.clip(force, -MAX_FORCE, MAX_FORCE)[:, None].astype(np.float32)


def stayed_up(env: "InvertedPendulum", states: np.ndarray, terminated: np.ndarray) -> np.ndarray:
    """``[E]`` bool: the pole stayed up, i.e. the episode did not terminate."""
    return ~np.asarray(terminated, dtype=bool)


DEFAULTS = EnvDefaults(
    training=TrainingBudget(episodes=20, steps=500, epochs=30, batch_size=256, hidden=(200, 200)),
    planning=PlanningDefaults(horizon=15, samples=100,
                              options=lambda env: {"terminal_value": env.terminal_value, "iterations": 3}),
    mbrl=MbrlBudget(random_episodes=10, episodes_per_round=1, rounds=15, ensemble=1, first_train_steps=2000,
                    train_steps=2000, batch_size=128, lr=3e-3, eval_episodes=3),
    benchmark=BenchmarkDefaults(score="return_ratio", controller_name="pd", controller=pd, success=stayed_up),
)


class InvertedPendulum(MujocoEnvironment):
    """InvertedPendulum-v5: observations ``[B, 4]``, forces ``[B, 1]``; reward and termination in MLX."""

    name = "inverted-pendulum"
    state_dim = 4
    state_names = ("x", "theta", "x_dot", "theta_dot")
    action_name = "force"
    steps = 1000
    defaults = DEFAULTS
    gymnasium = mujoco_spec("InvertedPendulum-v5", physics_of_obs)
    reset_physics = staticmethod(reset_physics)

    def __init__(self):
        super().__init__()
        self.action_space = Box(-MAX_FORCE, MAX_FORCE, shape=(1,))

    def reward(self, state: mx.array, action: mx.array, next_state: mx.array) -> mx.array:
        """``[B]``: 1 where the step leaves the pole up, 0 on the terminating step."""
        return 1.0 - self.termination(next_state).astype(mx.float32)

    def terminal_value(self, state: mx.array) -> mx.array:
        """``[B]``: ``-(0.1 x^2 + theta^2 + 0.01 x_dot^2 + 0.01 theta_dot^2)`` of observations ``[B, 4]`` (see the module)."""
        return -(state**2) @ mx.array(VALUE_WEIGHTS, dtype=mx.float32)

    def final_value(self, final: np.ndarray) -> np.ndarray:
        """:meth:`terminal_value` of MuJoCo's final ``(qpos, qvel)`` ``[B, 4]`` (the observation): the true dynamics' tie-breaker."""
        return np.array(self.terminal_value(mx.array(final, dtype=mx.float32)), dtype=np.float64)

    def termination(self, next_state: mx.array) -> mx.array:
        """``[B]`` bool: ``|theta| > 0.2`` or a non-finite number in the observation ``[B, 4]``."""
        finite = mx.all(mx.abs(next_state) < float("inf"), axis=-1)
        return (mx.abs(next_state[..., 1]) > ANGLE_LIMIT) | ~finite

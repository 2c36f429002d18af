"""Gymnasium's MountainCarContinuous-v0 (drive an underpowered car up the right hill), batched in MLX.

State ``[position, velocity]`` (Gymnasium's ``env.unwrapped.state``, which it keeps in float32),
action a force ``a`` (``[B, 1]``; the dynamics clip it to ``[-1, 1]``)::

    v' = clip(v + 0.0015 clip(a, -1, 1) - 0.0025 cos(3 p), -0.07, 0.07)
    p' = clip(p + v', -1.2, 0.6);  v' = 0 if p' = -1.2 and v' < 0      (the left wall stops the car)

The episode ends at the goal, ``p' >= 0.45`` and ``v' >= 0`` (999 steps at most). The reward is
``100`` on reaching the goal minus ``0.1 a^2`` every step -- of the action as given, unclipped, as
in Gymnasium. The observation is the state.
"""

from __future__ import annotations

import mlx.core as mx
import numpy as np

from planners.spaces import Box

from .base import Environment
from .defaults import BenchmarkDefaults, EnvDefaults, PlanningDefaults, TrainingBudget
from .gymnasium import GymSpec

MIN_POSITION = -1.2
MAX_POSITION = 0.6
MAX_SPEED = 0.07
GOAL_POSITION = 0.45
GOAL_VELOCITY = 0.0
POWER = 0.0015
HILL = 0.0025  # gravity along the track: -HILL cos(3 p)
GOAL_REWARD = 100.0
ACTION_COST = 0.1
START_POSITIONS = (-0.6, -0.4)  # reset: position ~ U[-0.6, -0.4], velocity 0


def follow_velocity(env: "MountainCar", state: np.ndarray) -> np.ndarray:
    """``follow-velocity``: the full force in the direction of the velocity (forward at rest), which
    rocks the car ever higher until it crosses the right hill.

    Args:
        state: ``[E, 2]``.
    Returns:
        forces ``[E, 1]`` float32 in {-1, +1}.
    """
    high, low = env.action_space.high[0], env.action_space.low[0]
    return np.where(state[:, 1:2] >= 0, high, low).astype(np.float32)


def reached_goal(env: "MountainCar", states: np.ndarray, terminated: np.ndarray) -> np.ndarray:
    """``[E]`` bool: the car reached the goal (the episode terminated)."""
    return np.asarray(terminated, dtype=bool)


DEFAULTS = EnvDefaults(
    training=TrainingBudget(episodes=1000, steps=50, epochs=30, batch_size=256, hidden=(64, 64)),
    planning=PlanningDefaults(horizon=100, samples=500),
    # rewards of both signs: 100 at the goal, -0.1 a^2 every step
    benchmark=BenchmarkDefaults(score="gap", controller_name="follow-velocity", controller=follow_velocity,
                                success=reached_goal),
)
GYMNASIUM = GymSpec("MountainCarContinuous-v0", state_dtype=np.float32)


class MountainCar(Environment):
    """MountainCarContinuous-v0: ``env(state [B, 2], action [B, 1]) -> (next_state [B, 2], reward [B])``."""

    name = "mountaincar"
    state_dim = 2
    state_names = ("position", "velocity")
    action_name = "force"
    state_low = (MIN_POSITION, -MAX_SPEED)
    state_high = (MAX_POSITION, MAX_SPEED)
    start_low, start_high = (START_POSITIONS[0], 0.0), (START_POSITIONS[1], 0.0)  # reset: position ~ U[-0.6, -0.4], velocity 0
    steps = 999
    defaults = DEFAULTS
    gymnasium = GYMNASIUM

    def __init__(self):
        self.action_space = Box(-1.0, 1.0, shape=(1,))

    def next_state(self, state: mx.array, action: mx.array) -> mx.array:
        position, velocity = state[..., 0], state[..., 1]
        force = mx.clip(action[..., 0], -1.0, 1.0)
        velocity = mx.clip(velocity + force * POWER - HILL * mx.cos(3 * position), -MAX_SPEED, MAX_SPEED)
        position = mx.clip(position + velocity, MIN_POSITION, MAX_POSITION)
        velocity = mx.where((position == MIN_POSITION) & (velocity < 0), 0.0, velocity)
        return mx.stack([position, velocity], axis=-1)

    def termination(self, next_state: mx.array) -> mx.array:
        """``[B]`` bool: at the goal on the right hill, not rolling back."""
        return (next_state[..., 0] >= GOAL_POSITION) & (next_state[..., 1] >= GOAL_VELOCITY)

    def reward(self, state: mx.array, action: mx.array, next_state: mx.array) -> mx.array:
        goal = self.termination(next_state).astype(mx.float32)
        return GOAL_REWARD * goal - ACTION_COST * action[..., 0] ** 2

"""Gymnasium's HalfCheetah-v5 (run forward): MuJoCo physics, planner state = observation.

Observation ``[17]``: ``qpos[1:]`` (root height and angle, six joint angles: the x position is left
out) then ``qvel`` (root x, z and angular speed, six joint speeds); action six torques ``[B, 6]`` in
``[-1, 1]``; ``dt = 0.05`` s (five MuJoCo steps of 0.01 s), 1000 steps, no termination. The reward
is ``(x' - x) / dt - 0.1 |a|^2``: the forward part needs the x position, which the observation
lacks, and the root's x speed of the next observation is not it (it is the last substep's speed:
off by 0.23 on average, 0.86 at worst, over 300 random steps with the reward's spread 0.66), so
there is no reward copy here: the learned model predicts the reward. Reset: ``qpos`` ``+ U[-0.1,
0.1]``, ``qvel`` ``+ 0.1 N(0, 1)``.
"""

from __future__ import annotations

import mlx.core as mx
import numpy as np

from planners.spaces import Box

from .defaults import BenchmarkDefaults, EnvDefaults, MbrlBudget, PlanningDefaults, TrainingBudget
from .mujoco_base import MujocoEnvironment, mujoco_spec

RESET_NOISE = 0.1
CONTROL_COST = 0.1


def reset_physics(rng: np.random.Generator, qpos0: np.ndarray, qvel0: np.ndarray) -> tuple:
    """``(qpos [9], qvel [9])`` of one reset: ``qpos + U[-0.1, 0.1]``, then ``qvel + 0.1 N(0, 1)``."""
    qpos = qpos0 + rng.uniform(low=-RESET_NOISE, high=RESET_NOISE, size=qpos0.size)
    qvel = qvel0 + RESET_NOISE * rng.standard_normal(qvel0.size)
    return qpos, qvel


def physics_of_obs(obs: np.ndarray) -> tuple:
    """``(qpos [9], qvel [9])`` of an observation ``[17]``, the x position at 0 (the dynamics do not depend on it)."""
    return np.concatenate([[0.0], obs[:8]]), obs[8:17]


def control_cost(action: mx.array) -> mx.array:
    """``[B]``: ``0.1 |a|^2`` of actions ``[B, 6]``, the part of the reward the observation gives."""
    return CONTROL_COST * mx.sum(action**2, axis=-1)


DEFAULTS = EnvDefaults(
    training=TrainingBudget(episodes=20, steps=1000, epochs=30, batch_size=256, hidden=(200, 200)),
    # iCEM 100 x 3 iterations over 15 steps (0.75 s) on 3 members, TS-inf: 40,000 planning calls (20 collected
    # and 20 evaluation episodes) must fit in about an hour on 2 cores (measured in docs/mujoco.md)
    planning=PlanningDefaults(horizon=15, samples=100, options={"iterations": 3}),
    mbrl=MbrlBudget(random_episodes=2, episodes_per_round=1, rounds=18, ensemble=3, first_train_steps=2000,
                    train_steps=1000, batch_size=256, lr=1e-3, eval_episodes=1, planner="icem"),
    benchmark=BenchmarkDefaults(score="gap"),  # rewards of both signs
)


class HalfCheetah(MujocoEnvironment):
    """HalfCheetah-v5: observations ``[B, 17]``, torques ``[B, 6]``; the reward is learned (see the module)."""

    name = "half-cheetah"
    state_dim = 17
    state_names = ("rootz", "rooty", "bthigh", "bshin", "bfoot", "fthigh", "fshin", "ffoot",
                   "rootx_dot", "rootz_dot", "rooty_dot", "bthigh_dot", "bshin_dot", "bfoot_dot",
                   "fthigh_dot", "fshin_dot", "ffoot_dot")
    action_name = "torque"
    steps = 1000
    defaults = DEFAULTS
    gymnasium = mujoco_spec("HalfCheetah-v5", physics_of_obs)
    reset_physics = staticmethod(reset_physics)
    has_reward_copy = False

    def __init__(self):
        super().__init__()
        self.action_space = Box(-1.0, 1.0, shape=(6,))

    def reward(self, state: mx.array, action: mx.array, next_state: mx.array) -> mx.array:
        raise ValueError("half-cheetah's forward reward needs the x position, which its observation lacks: "
                         "the learned model predicts the reward")

"""Gymnasium's Pendulum-v1 (swing up and balance), batched in MLX.

State ``[theta, theta_dot]`` (Gymnasium's ``env.unwrapped.state``; ``theta = 0`` is upright and is
not wrapped), action a torque ``u`` in ``[-2, 2]`` (``[B, 1]``, clipped as Gymnasium clips it)::

    theta_dot' = clip(theta_dot + (3 g / (2 l) sin(theta) + 3 / (m l^2) u) dt, -8, 8)
    theta'     = theta + theta_dot' dt
    r          = -(normalize(theta)^2 + 0.1 theta_dot^2 + 0.001 u^2)    (of the state before the step)

with ``normalize(theta)`` in ``[-pi, pi)``, ``dt = 0.05``, ``m = l = 1``. Episodes never end
(200 steps). Observations are ``[cos(theta), sin(theta), theta_dot]``.
"""

from __future__ import annotations

import math

import mlx.core as mx
import numpy as np

from planners.spaces import Box

from .base import Environment
from .defaults import BenchmarkDefaults, EnvDefaults, PlanningDefaults, TrainingBudget
from .gymnasium import GymSpec

MAX_SPEED = 8.0
MAX_TORQUE = 2.0
DT = 0.05
MASS = 1.0
LENGTH = 1.0
START_HIGH = (math.pi, 1.0)  # reset: theta ~ U[-pi, pi], theta_dot ~ U[-1, 1]
CATCH_ANGLE = 0.6  # the swing-up controller balances (PD) within this angle of upright, else pumps energy
PD_GAINS = (10.0, 2.0)  # torque -(k_theta theta + k_dot theta_dot): theta'' = -15 theta - 6 theta_dot near the top
UPRIGHT = 0.1  # success: |theta| below this ...
UPRIGHT_WINDOW = 10  # ... in each of the last states


def angle_normalize(theta: mx.array) -> mx.array:
    """Angles ``[...]`` mapped into ``[-pi, pi)``."""
    return (theta + math.pi) % (2 * math.pi) - math.pi


def swing_up(env: "Pendulum", state: np.ndarray) -> np.ndarray:
    """``swing-up``: pump energy, then balance with PD near the top.

    The energy ``E = I theta_dot^2 / 2 + (m g l / 2) cos(theta)`` (``I = m l^2 / 3``) changes at the
    rate ``u theta_dot``, so the full torque in the direction of ``theta_dot`` (against it once
    ``E`` exceeds the upright energy ``m g l / 2``) pumps it to the top; within 0.6 rad of upright
    the torque is ``-(10 theta + 2 theta_dot)``, clipped to the torque limit.

    Args:
        state: ``[E, 2]`` (``theta`` need not be wrapped).
    Returns:
        torques ``[E, 1]`` float32.
    """
    theta = (state[:, 0] + math.pi) % (2 * math.pi) - math.pi
    theta_dot = state[:, 1]
    top = MASS * env.g * LENGTH / 2
    energy = MASS * LENGTH**2 / 6 * theta_dot**2 + top * np.cos(theta)
    direction = np.where(theta_dot >= 0, 1.0, -1.0) * np.where(energy <= top, 1.0, -1.0)
    balance = np.clip(-(PD_GAINS[0] * theta + PD_GAINS[1] * theta_dot), -MAX_TORQUE, MAX_TORQUE)
    return np.where(np.abs(theta) < CATCH_ANGLE, balance, MAX_TORQUE * direction)[:, None].astype(np.float32)


def upright(env: "Pendulum", states: np.ndarray, terminated: np.ndarray) -> np.ndarray:
    """``[E]`` bool: upright, ``|theta| < 0.1`` (wrapped), in each of the last 10 states of ``states [E, T + 1, 2]``."""
    theta = (states[:, -UPRIGHT_WINDOW:, 0] + math.pi) % (2 * math.pi) - math.pi
    return np.all(np.abs(theta) < UPRIGHT, axis=1)


def state_from_obs(obs: np.ndarray) -> np.ndarray:
    """``[cos, sin, theta_dot]`` ``[..., 3]`` -> ``[theta, theta_dot]`` ``[..., 2]``, ``theta`` in ``[-pi, pi]``.

    Gymnasium's own ``theta`` is not wrapped; the two differ by whole turns, which change
    neither the dynamics nor the reward.
    """
    theta = np.arctan2(obs[..., 1], obs[..., 0])
    return np.stack([theta, obs[..., 2]], axis=-1)


DEFAULTS = EnvDefaults(
    training=TrainingBudget(episodes=1000, steps=50, epochs=60, batch_size=256, hidden=(64, 64), reward_hidden=128,
                            angles=True, reward_from_state=True),
    # 30 steps (1.5 s) do not see a whole swing-up from hanging at rest: whether the first swing is
    # enough is then a coin flip of the planner's noise (CEM/iCEM/MPPI: -310 to -500 from reset seeds
    # 4 and 10); 40 steps swing up at once (iCEM -228 and -241). 300 samples x 3 iterations return what
    # 1000 x 5 did (learned model, seeds 0-19: CEM -130.6 vs -130.2, MPPI -130.6 vs -130.6) in about a
    # tenth of the planning time (docs/performance.md)
    planning=PlanningDefaults(horizon=40, samples=300, options={"iterations": 3}),
    benchmark=BenchmarkDefaults(score="cost_ratio", controller_name="swing-up", controller=swing_up, success=upright),  # rewards never positive
)
GYMNASIUM = GymSpec("Pendulum-v1", options=("g",), state_from_obs=state_from_obs)


class Pendulum(Environment):
    """Pendulum-v1: ``env(state [B, 2], action [B, 1]) -> (next_state [B, 2], reward [B])``.

    Args:
        g: gravity. Default: ``10.0`` (Gymnasium's default).
    """

    name = "pendulum"
    state_dim = 2
    state_names = ("theta", "theta_dot")
    action_name = "torque"
    angles = (0,)
    state_low = (-math.pi, -MAX_SPEED)
    state_high = (math.pi, MAX_SPEED)
    start_low = (-START_HIGH[0], -START_HIGH[1])
    start_high = START_HIGH
    steps = 200
    defaults = DEFAULTS
    gymnasium = GYMNASIUM

    def __init__(self, g: float = 10.0):
        if not (math.isfinite(g) and g > 0):
            raise ValueError(f"g must be a positive finite number, got {g!r}")
        self.g = float(g)
        self.action_space = Box(-MAX_TORQUE, MAX_TORQUE, shape=(1,))

    def config(self) -> dict:
        return {"g": self.g}

    @staticmethod
    def torque(action: mx.array) -> mx.array:
        """Torques ``[B]`` from actions ``[B, 1]``, clipped to ``[-2, 2]``."""
        return mx.clip(action[..., 0], -MAX_TORQUE, MAX_TORQUE)

    def next_state(self, state: mx.array, action: mx.array) -> mx.array:
        theta, theta_dot = state[..., 0], state[..., 1]
        accel = 3 * self.g / (2 * LENGTH) * mx.sin(theta) + 3.0 / (MASS * LENGTH**2) * self.torque(action)
        theta_dot = mx.clip(theta_dot + accel * DT, -MAX_SPEED, MAX_SPEED)
        return mx.stack([theta + theta_dot * DT, theta_dot], axis=-1)

    def reward(self, state: mx.array, action: mx.array, next_state: mx.array) -> mx.array:
        theta, theta_dot = state[..., 0], state[..., 1]
        u = self.torque(action)
        return -(angle_normalize(theta) ** 2 + 0.1 * theta_dot**2 + 0.001 * u**2)

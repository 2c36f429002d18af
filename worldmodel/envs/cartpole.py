"""Gymnasium's CartPole-v1 (keep a pole upright on a cart), batched in MLX.

State ``[x, x_dot, theta, theta_dot]`` (Gymnasium's ``env.unwrapped.state``), actions one-hot over
(push left, push right) with force ``F = -10`` or ``+10`` (a probability vector applies the
expected force). One explicit Euler step of ``tau = 0.02`` s::

    temp   = (F + m_p l theta_dot^2 sin(theta)) / (m_c + m_p)
    theta_acc = (g sin(theta) - cos(theta) temp) / (l (4/3 - m_p cos(theta)^2 / (m_c + m_p)))
    x_acc  = temp - m_p l theta_acc cos(theta) / (m_c + m_p)
    x' = x + tau x_dot,  x_dot' = x_dot + tau x_acc,  theta' = theta + tau theta_dot,  theta_dot' = theta_dot + tau theta_acc

with ``g = 9.8``, ``m_c = 1``, ``m_p = 0.1``, ``l = 0.5`` (half the pole). The reward is 1 every
step, the terminating one included; the episode ends when ``|x'| > 2.4`` or ``|theta'| > 12 deg``
(500 steps at most). The observation is the state.
"""

from __future__ import annotations

import math

import mlx.core as mx
import numpy as np

from planners.spaces import Discrete

from .base import Environment
from .defaults import BenchmarkDefaults, EnvDefaults, PlanningDefaults, TrainingBudget
from .gymnasium import GymSpec

GRAVITY = 9.8
MASS_CART = 1.0
MASS_POLE = 0.1
TOTAL_MASS = MASS_CART + MASS_POLE
HALF_LENGTH = 0.5
POLE_MASS_LENGTH = MASS_POLE * HALF_LENGTH
FORCE_MAG = 10.0
TAU = 0.02
X_THRESHOLD = 2.4
THETA_THRESHOLD = 12 * 2 * math.pi / 360
START_HIGH = 0.05  # reset: every state variable ~ U[-0.05, 0.05]
FORCES = (-FORCE_MAG, FORCE_MAG)  # of actions 0 and 1, Gymnasium's order
PD_WEIGHTS = (0.1, 0.5, 1.0, 0.5)  # the pd controller pushes right when (x, x_dot, theta, theta_dot) . these > 0


def pd(env: "CartPole", state: np.ndarray) -> np.ndarray:
    """``pd``: push right when ``theta + 0.5 theta_dot + 0.1 x + 0.5 x_dot > 0``, else left: PD on the
    pole's angle, with small terms that bring the cart back to the middle.

    Args:
        state: ``[E, 4]``.
    Returns:
        one-hot actions ``[E, 2]`` float32.
    """
    right = state @ np.array(PD_WEIGHTS, dtype=np.float32) > 0
    return np.eye(len(FORCES), dtype=np.float32)[right.astype(np.int64)]


def pole_stayed_up(env: "CartPole", states: np.ndarray, terminated: np.ndarray) -> np.ndarray:
    """``[E]`` bool: the pole stayed up, i.e. the episode did not terminate."""
    return ~np.asarray(terminated, dtype=bool)


DEFAULTS = EnvDefaults(
    training=TrainingBudget(episodes=1000, steps=50, epochs=30, batch_size=256, hidden=(32, 32)),
    # every surviving sequence ties (reward 1 a step): 30 steps (0.6 s) see the cart's drift too late
    # (CEM reached 133-231 steps); 60 reach 500 (seeds 0-2)
    planning=PlanningDefaults(horizon=60, samples=300),
    benchmark=BenchmarkDefaults(score="return_ratio", controller_name="pd", controller=pd,
                                success=pole_stayed_up),  # rewards never negative
)
# setting a state also forgets a past termination, so that the next step rewards 1 as on a fresh episode
GYMNASIUM = GymSpec("CartPole-v1", reset_attributes={"steps_beyond_terminated": None})


class CartPole(Environment):
    """CartPole-v1: ``env(state [B, 4], action [B, 2]) -> (next_state [B, 4], reward [B])``."""

    name = "cartpole"
    state_dim = 4
    state_names = ("x", "x_dot", "theta", "theta_dot")
    action_name = "force"
    # training states: positions and angles up to the termination thresholds, speeds a random policy reaches
    state_low = (-X_THRESHOLD, -3.0, -THETA_THRESHOLD, -3.5)
    state_high = (X_THRESHOLD, 3.0, THETA_THRESHOLD, 3.5)
    start_low, start_high = (-START_HIGH,) * 4, (START_HIGH,) * 4
    steps = 500
    defaults = DEFAULTS
    gymnasium = GYMNASIUM

    def __init__(self):
        self.action_space = Discrete(2, values=FORCES)
        self._forces = mx.array(FORCES, dtype=mx.float32)

    def force(self, action: mx.array) -> mx.array:
        """Forces ``[B]`` of one-hot (or probability) actions ``[B, 2]``."""
        return action @ self._forces

    def next_state(self, state: mx.array, action: mx.array) -> mx.array:
        x, x_dot, theta, theta_dot = (state[..., i] for i in range(4))
        cos, sin = mx.cos(theta), mx.sin(theta)
        temp = (self.force(action) + POLE_MASS_LENGTH * theta_dot**2 * sin) / TOTAL_MASS
        theta_acc = (GRAVITY * sin - cos * temp) / (HALF_LENGTH * (4.0 / 3.0 - MASS_POLE * cos**2 / TOTAL_MASS))
        x_acc = temp - POLE_MASS_LENGTH * theta_acc * cos / TOTAL_MASS
        return mx.stack(
            [x + TAU * x_dot, x_dot + TAU * x_acc, theta + TAU * theta_dot, theta_dot + TAU * theta_acc], axis=-1
        )

    def reward(self, state: mx.array, action: mx.array, next_state: mx.array) -> mx.array:
        return mx.ones(next_state.shape[:-1], dtype=mx.float32)

    def termination(self, next_state: mx.array) -> mx.array:
        """``[B]`` bool: the cart left the track or the pole fell past 12 degrees."""
        return (mx.abs(next_state[..., 0]) > X_THRESHOLD) | (mx.abs(next_state[..., 2]) > THETA_THRESHOLD)

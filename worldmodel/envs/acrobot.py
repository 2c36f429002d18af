"""Gymnasium's Acrobot-v1 (swing the tip of a two-link chain above a line), batched in MLX.

State ``[theta1, theta2, theta1_dot, theta2_dot]`` (Gymnasium's ``env.unwrapped.state``;
``theta1 = 0`` hangs down, ``theta2`` is relative to link 1), actions one-hot over the torques
(-1, 0, +1) on the joint between the links (a probability vector applies the expected torque).
One step integrates the equations of motion (Sutton and Barto's book version, as Gymnasium) with
one classic Runge-Kutta step of ``dt = 0.2`` (Gymnasium's ``rk4`` over ``t = [0, dt]``), then
wraps both angles into ``[-pi, pi]`` and clips the speeds to ``4 pi`` and ``9 pi``. The episode
ends when ``-cos(theta1') - cos(theta1' + theta2') > 1`` (the tip above the line one link length
over the pivot); the reward is -1 per step and 0 on the terminating step (500 steps at most).
Observations are ``[cos theta1, sin theta1, cos theta2, sin theta2, theta1_dot, theta2_dot]``.

Planning objective. The reward says nothing until the tip is over the line: every imagined
sequence that does not get there within the horizon has the same return, ``-horizon``, and the
planners wander (CEM on the true dynamics, 50 steps x 500 samples: mean return -246 over 20
episodes). The planners therefore get a terminal value (``DEFAULTS.planning.options``),
:meth:`Acrobot.terminal_value`: the chain's mechanical energy above hanging at rest, in joules,
times ``ENERGY_VALUE`` reward units per joule. Pumping energy in is how the tip gets up; an
imagined episode that reaches the goal ends there and takes no terminal value, and it still wins
because getting there sooner is worth a full unit a step. Measured in Gymnasium (reset seeds
0-19, CEM 50 x 500, true dynamics): energy -62.0 +- 2.4; the tip's height ``0.5 (-cos theta1 -
cos(theta1 + theta2))`` instead -67.5 +- 4.1; no terminal value but iCEM over 100 steps: see the
README.
"""

from __future__ import annotations

import math

import mlx.core as mx
import numpy as np

from planners.spaces import Discrete

from .base import Environment
from .defaults import BenchmarkDefaults, EnvDefaults, PlanningDefaults, TrainingBudget
from .gymnasium import GymSpec

DT = 0.2
LINK_LENGTH_1 = 1.0
MASS_1 = 1.0
MASS_2 = 1.0
COM_1 = 0.5  # centre of mass of link 1 from its pivot
COM_2 = 0.5
MOMENT = 1.0  # moment of inertia of either link
GRAVITY = 9.8
MAX_VEL_1 = 4 * math.pi
MAX_VEL_2 = 9 * math.pi
TORQUES = (-1.0, 0.0, 1.0)  # of actions 0, 1, 2, Gymnasium's order
START_HIGH = 0.1  # reset: every state variable ~ U[-0.1, 0.1]
ENERGY_VALUE = 0.05  # terminal value: reward units per joule of mechanical energy


def wrap(x: mx.array, low: float, high: float) -> mx.array:
    """``x`` shifted by whole periods ``high - low`` into ``[low, high]`` (values already inside stay)."""
    period = high - low
    above = x - period * mx.ceil((x - high) / period)
    below = x + period * mx.ceil((low - x) / period)
    return mx.where(x > high, above, mx.where(x < low, below, x))


def mechanical_energy(s: mx.array) -> mx.array:
    """Kinetic plus potential energy ``[B]`` of states ``s [B, 4]`` in joules, zero hanging down at rest."""
    theta1, theta2, dtheta1, dtheta2 = (s[..., i] for i in range(4))
    # heights of the two centres of mass above their lowest points
    rise1 = COM_1 * (1 - mx.cos(theta1))
    rise2 = LINK_LENGTH_1 * (1 - mx.cos(theta1)) + COM_2 * (1 - mx.cos(theta1 + theta2))
    potential = GRAVITY * (MASS_1 * rise1 + MASS_2 * rise2)
    # the inertia matrix [[d1, d2], [d2, d3]] of the equations of motion below
    d1 = MASS_1 * COM_1**2 + MASS_2 * (LINK_LENGTH_1**2 + COM_2**2 + 2 * LINK_LENGTH_1 * COM_2 * mx.cos(theta2)) + 2 * MOMENT
    d2 = MASS_2 * (COM_2**2 + LINK_LENGTH_1 * COM_2 * mx.cos(theta2)) + MOMENT
    d3 = MASS_2 * COM_2**2 + MOMENT
    kinetic = 0.5 * (d1 * dtheta1**2 + 2 * d2 * dtheta1 * dtheta2 + d3 * dtheta2**2)
    return potential + kinetic


def derivatives(s: mx.array, torque: mx.array) -> mx.array:
    """Time derivative ``[B, 4]`` of states ``s [B, 4]`` under joint torques ``[B]``."""
    theta1, theta2, dtheta1, dtheta2 = (s[..., i] for i in range(4))
    d1 = MASS_1 * COM_1**2 + MASS_2 * (LINK_LENGTH_1**2 + COM_2**2 + 2 * LINK_LENGTH_1 * COM_2 * mx.cos(theta2)) + 2 * MOMENT
    d2 = MASS_2 * (COM_2**2 + LINK_LENGTH_1 * COM_2 * mx.cos(theta2)) + MOMENT
    phi2 = MASS_2 * COM_2 * GRAVITY * mx.cos(theta1 + theta2 - math.pi / 2.0)
    phi1 = (
        -MASS_2 * LINK_LENGTH_1 * COM_2 * dtheta2**2 * mx.sin(theta2)
        - 2 * MASS_2 * LINK_LENGTH_1 * COM_2 * dtheta2 * dtheta1 * mx.sin(theta2)
        + (MASS_1 * COM_1 + MASS_2 * LINK_LENGTH_1) * GRAVITY * mx.cos(theta1 - math.pi / 2)
        + phi2
    )
    ddtheta2 = (torque + d2 / d1 * phi1 - MASS_2 * LINK_LENGTH_1 * COM_2 * dtheta1**2 * mx.sin(theta2) - phi2) / (
        MASS_2 * COM_2**2 + MOMENT - d2**2 / d1
    )
    ddtheta1 = -(d2 * ddtheta2 + phi1) / d1
    return mx.stack([dtheta1, dtheta2, ddtheta1, ddtheta2], axis=-1)


def energy_pump(env: "Acrobot", state: np.ndarray) -> np.ndarray:
    """``energy-pump``: the full torque in the direction of the joint's speed ``theta2_dot`` (-1 when
    it is 0). The torque's power ``torque * theta2_dot`` is then never negative: every step adds
    energy until the tip swings over the line.

    Args:
        state: ``[E, 4]``.
    Returns:
        one-hot actions ``[E, 3]`` float32 (torque -1 or +1).
    """
    torque = np.where(state[:, 3] > 0, max(TORQUES), min(TORQUES))
    return np.eye(len(TORQUES), dtype=np.float32)[[TORQUES.index(t) for t in torque]]


def reached_line(env: "Acrobot", states: np.ndarray, terminated: np.ndarray) -> np.ndarray:
    """``[E]`` bool: the tip reached the line (the episode terminated)."""
    return np.asarray(terminated, dtype=bool)


def state_from_obs(obs: np.ndarray) -> np.ndarray:
    """``[cos1, sin1, cos2, sin2, theta1_dot, theta2_dot]`` ``[..., 6]`` -> the state ``[..., 4]``."""
    theta1 = np.arctan2(obs[..., 1], obs[..., 0])
    theta2 = np.arctan2(obs[..., 3], obs[..., 2])
    return np.stack([theta1, theta2, obs[..., 4], obs[..., 5]], axis=-1)


DEFAULTS = EnvDefaults(
    # an ensemble of 5 plans far better than one model (CEM at 15 steps, seeds 0-9: -74.8 vs -109.2): the
    # members' mean halves the speeds' one-step error (held-out MSE of theta2_dot 0.071 vs 0.136)
    training=TrainingBudget(episodes=1000, steps=50, epochs=30, batch_size=256, angles=True, ensemble=5),
    # 15 steps (3 s) with the energy terminal value: the true dynamics plan as well as over 50 (CEM, reset
    # seeds 0-9: -63.4 vs -62), and a learned model's errors compound over fewer steps (the default
    # ensemble, seeds 0-19: -73.5 at 15, -92.4 at 50 on seeds 0-9)
    planning=PlanningDefaults(horizon=15, samples=500, options=lambda env: {"terminal_value": env.terminal_value}),
    benchmark=BenchmarkDefaults(score="cost_ratio", controller_name="energy-pump", controller=energy_pump,
                                success=reached_line),  # rewards never positive
)
GYMNASIUM = GymSpec("Acrobot-v1", state_from_obs=state_from_obs)


class Acrobot(Environment):
    """Acrobot-v1: ``env(state [B, 4], action [B, 3]) -> (next_state [B, 4], reward [B])``."""

    name = "acrobot"
    state_dim = 4
    state_names = ("theta1", "theta2", "theta1_dot", "theta2_dot")
    action_name = "torque"
    angles = (0, 1)
    # training states: every angle, speeds up to half the clip limits (a swing-up in closed loop stays
    # within 4 and 8 rad/s; a step at 9 pi rad/s turns link 2 by more than pi, past what a change can tell)
    state_low = (-math.pi, -math.pi, -MAX_VEL_1 / 2, -MAX_VEL_2 / 2)
    state_high = (math.pi, math.pi, MAX_VEL_1 / 2, MAX_VEL_2 / 2)
    start_low, start_high = (-START_HIGH,) * 4, (START_HIGH,) * 4
    steps = 500
    defaults = DEFAULTS
    gymnasium = GYMNASIUM

    def __init__(self):
        self.action_space = Discrete(3, values=TORQUES)
        self._torques = mx.array(TORQUES, dtype=mx.float32)

    def terminal_value(self, state: mx.array) -> mx.array:
        """``ENERGY_VALUE`` times the mechanical energy ``[B]`` of ``state [B, 4]`` (any angles: periodic in them)."""
        return ENERGY_VALUE * mechanical_energy(state)

    def torque(self, action: mx.array) -> mx.array:
        """Torques ``[B]`` of one-hot (or probability) actions ``[B, 3]``."""
        return action @ self._torques

    def next_state(self, state: mx.array, action: mx.array) -> mx.array:
        torque = self.torque(action)
        k1 = derivatives(state, torque)
        k2 = derivatives(state + DT / 2 * k1, torque)
        k3 = derivatives(state + DT / 2 * k2, torque)
        k4 = derivatives(state + DT * k3, torque)
        s = state + DT / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
        return mx.stack(
            [
                wrap(s[..., 0], -math.pi, math.pi),
                wrap(s[..., 1], -math.pi, math.pi),
                mx.clip(s[..., 2], -MAX_VEL_1, MAX_VEL_1),
                mx.clip(s[..., 3], -MAX_VEL_2, MAX_VEL_2),
            ],
            axis=-1,
        )

    def termination(self, next_state: mx.array) -> mx.array:
        """``[B]`` bool: the tip is more than one link length above the pivot."""
        theta1, theta2 = next_state[..., 0], next_state[..., 1]
        return -mx.cos(theta1) - mx.cos(theta1 + theta2) > 1.0

    def reward(self, state: mx.array, action: mx.array, next_state: mx.array) -> mx.array:
        return self.termination(next_state).astype(mx.float32) - 1.0

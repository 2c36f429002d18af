"""Open-loop rollouts that put the true physics and a model's imagination side by side."""

from __future__ import annotations

import mlx.core as mx
import numpy as np

from .env import one_hot_pushes


def open_loop(dynamics, start, actions: mx.array) -> tuple[np.ndarray, np.ndarray]:
    """Roll ``dynamics`` from ``start [B, S]`` under fixed ``actions [B, T, A]``, feeding back its own states.

    Returns:
        states ``[B, T + 1, S]`` (the start first) and rewards ``[B, T]``, as numpy float32.
    """
    state = mx.array(start)
    states, rewards = [state], []
    for t in range(actions.shape[1]):
        state, reward = dynamics(state, actions[:, t])
        states.append(state)
        rewards.append(reward)
    out = mx.stack(states, axis=1), mx.stack(rewards, axis=1)
    mx.eval(*out)
    return np.array(out[0]), np.array(out[1])


def compare_open_loop(env, model, start, pushes) -> tuple[np.ndarray, np.ndarray]:
    """The particle from ``start = (x0, v0)`` under ``pushes [T]`` in ``env`` and in ``model``.

    Returns:
        two arrays ``[T, 3]`` (true, imagined): row ``t`` holds x and v at time ``t`` and the reward of step ``t``.
    """
    start = mx.array([start], dtype=mx.float32)
    actions = one_hot_pushes(pushes)[None]
    rows = []
    for dynamics in (env, model):
        states, rewards = open_loop(dynamics, start, actions)
        rows.append(np.concatenate([states[0, :-1], rewards[0, :, None]], axis=1))
    return rows[0], rows[1]

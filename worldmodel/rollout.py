"""Open-loop rollouts that put the true physics and a model's imagination side by side."""

from __future__ import annotations

import mlx.core as mx
import numpy as np

from planners.dynamics import rollout


def open_loop(dynamics, start, actions: mx.array) -> tuple[np.ndarray, np.ndarray]:
    """Roll ``dynamics`` from ``start [B, S]`` under fixed ``actions [B, T, A]``, feeding back its own states.

    Returns:
        states ``[B, T + 1, S]`` (the start first) and rewards ``[B, T]``, as numpy float32.
    """
    _, states, rewards = rollout(dynamics, start, actions, return_trajectory=True)
    mx.eval(states, rewards)
    return np.array(states), np.array(rewards)


def compare_open_loop(env, model, start, actions) -> tuple[np.ndarray, np.ndarray]:
    """One start ``[S]`` under fixed ``actions [T, A]`` in ``env`` and in ``model`` (each feeding back its own states).

    Returns:
        two arrays ``[T, S + 1]`` (true, imagined): row ``t`` holds the state at time ``t`` and the reward of step ``t``.
    """
    start = mx.array(np.asarray(start, dtype=np.float32)[None])
    actions = mx.array(np.asarray(actions, dtype=np.float32)[None])
    rows = []
    for dynamics in (env, model):
        states, rewards = open_loop(dynamics, start, actions)
        rows.append(np.concatenate([states[0, :-1], rewards[0, :, None]], axis=1))
    return rows[0], rows[1]

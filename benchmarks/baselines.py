"""Policies that need no planner, for the benchmark table: ``policy(state [E, 2]) -> pushes [E]``."""

from __future__ import annotations

import numpy as np


def zero_policy(state: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Never push: pushes ``[E]`` of zeros."""
    return np.zeros(len(state), dtype=np.int64)


def random_policy(state: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Uniformly random pushes ``[E]`` in {-1, 0, +1}."""
    return rng.integers(-1, 2, size=len(state))


def feedback_policy(state: np.ndarray, rng: np.random.Generator, gain: float = 3.0, deadband: float = 0.05) -> np.ndarray:
    """A hand-written PD-like controller: push against ``s = x + gain * v`` when ``|s| > deadband``.

    Args:
        state: ``[E, 2]`` (x, v).
    Returns:
        pushes ``[E]`` in {-1, 0, +1}.
    """
    s = state[:, 0] + gain * state[:, 1]
    return np.where(np.abs(s) > deadband, -np.sign(s), 0.0).astype(np.int64)


BASELINES = {"random-policy": random_policy, "zero": zero_policy, "feedback": feedback_policy}

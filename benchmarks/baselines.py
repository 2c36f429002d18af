"""Policies that need no planner, for the benchmark table: ``policy(state [E, 2], rng) -> pushes [E]``.

``rng`` is a numpy ``Generator`` or, for per-episode randomness, a sequence of them, one per row
of ``state`` (see :func:`episode_rngs`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def episode_rngs(seed: int, episode_ids) -> list:
    """One ``Generator`` per episode, seeded by ``(seed, episode index)``: an episode's draws do not
    depend on which other episodes are run with it (or in which process)."""
    return [np.random.default_rng([int(seed), int(i)]) for i in episode_ids]


def zero_policy(state: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Never push: pushes ``[E]`` of zeros."""
    return np.zeros(len(state), dtype=np.int64)


def random_policy(state: np.ndarray, rng: np.random.Generator | Sequence[np.random.Generator]) -> np.ndarray:
    """Uniformly random pushes ``[E]`` in {-1, 0, +1}: from one generator, or one draw from each episode's."""
    if isinstance(rng, np.random.Generator):
        return rng.integers(-1, 2, size=len(state))
    if len(rng) != len(state):
        raise ValueError(f"random_policy got {len(rng)} generators for {len(state)} episodes")
    return np.array([r.integers(-1, 2) for r in rng], dtype=np.int64)


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

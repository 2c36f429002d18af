"""Policies that need no planner, for the benchmark table: each is a ``policy(state [E, S]) -> actions [E, A]``.

Every environment gets ``random-policy`` (uniform actions), ``zero`` where its action space has an
action that applies nothing, and its hand-written controller where it has one
(``env.controller_name``: the particle's ``feedback``, the pendulum's ``swing-up``, ...).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from planners.spaces import Discrete

from .closed_loop import Policy


def episode_rngs(seed: int, episode_ids) -> list:
    """One ``Generator`` per episode, seeded by ``(seed, episode index)``: an episode's draws do not
    depend on which other episodes are run with it (or in which process)."""
    return [np.random.default_rng([int(seed), int(i)]) for i in episode_ids]


def random_policy(env, rngs: Sequence[np.random.Generator]) -> Policy:
    """Uniformly random actions, one draw per step from each episode's own generator (``rngs``, one per row).

    ``Discrete(n)``: the one-hot of ``rng.integers(0, n)``; ``Box``: ``rng.uniform(low, high)``.
    """
    space = env.action_space

    def policy(state: np.ndarray) -> np.ndarray:
        if len(rngs) != len(state):
            raise ValueError(f"random_policy got {len(rngs)} generators for {len(state)} episodes")
        if isinstance(space, Discrete):
            return np.eye(space.n, dtype=np.float32)[[int(r.integers(0, space.n)) for r in rngs]].reshape(len(state), space.n)
        return np.array([r.uniform(space.low, space.high) for r in rngs], dtype=np.float32).reshape(len(state), space.dim)

    return policy


def constant_policy(action: np.ndarray) -> Policy:
    """The same action ``[A]`` in every episode and step."""
    action = np.asarray(action, dtype=np.float32)
    return lambda state: np.tile(action, (len(state), 1))


def baselines(env, seed: int, episode_ids) -> dict:
    """The baseline rows of ``env``: name -> policy, for the episodes ``episode_ids`` (global indices)."""
    rows = {"random-policy": random_policy(env, episode_rngs(seed, episode_ids))}
    zero = env.zero_action()
    if zero is not None:
        rows["zero"] = constant_policy(zero)
    if env.controller_name is not None:
        rows[env.controller_name] = env.controller
    return rows

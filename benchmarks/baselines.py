"""Policies that need no planner, for the benchmark table: each is a ``policy(state [E, S]) -> actions [E, A]``.

Every environment gets ``random-policy`` (uniform actions), ``zero`` where its action space has an
action that applies nothing, and its hand-written controller where it has one
(``env.defaults.benchmark.controller_name``: the particle's ``feedback``, the pendulum's ``swing-up``, ...).
The random policy lives with the episode runner (:func:`worldmodel.envs.runner.random_policy`), which
data collection and the MBRL loop share.
"""

from __future__ import annotations

import numpy as np

from worldmodel.envs.runner import Policy, episode_rngs, random_policy

__all__ = ["baselines", "constant_policy", "controller_policy", "episode_rngs", "random_policy"]


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
    controller = controller_policy(env)
    if controller is not None:
        rows[env.defaults.benchmark.controller_name] = controller
    return rows


def controller_policy(env) -> Policy | None:
    """``env``'s hand-written controller (``env.defaults.benchmark.controller``) as a policy, or ``None``."""
    controller = env.defaults.benchmark.controller
    return None if controller is None else lambda state: controller(env, state)

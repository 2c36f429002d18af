"""Closed-loop episodes in the true environment, all episodes stepped together."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import mlx.core as mx
import numpy as np

SUCCESS_RADIUS = 0.1
SUCCESS_WINDOW = 10


@dataclass
class Episodes:
    """Outcome of ``E`` episodes of ``T`` steps.

    Attributes:
        returns: ``[E]`` summed rewards (float64).
        states: ``[E, T + 1, 2]`` visited states, the start first.
        pushes: ``[E, T]`` applied pushes in {-1, 0, +1}.
        plan_seconds: wall time spent choosing actions, summed over the ``T`` steps.
        imagined: imagined transitions evaluated by the planner (0 for baselines).
    """

    returns: np.ndarray
    states: np.ndarray
    pushes: np.ndarray
    plan_seconds: float = 0.0
    imagined: int = 0

    @property
    def final_abs_x(self) -> np.ndarray:
        """``[E]`` |x| at the end."""
        return np.abs(self.states[:, -1, 0])

    @property
    def success(self) -> np.ndarray:
        """``[E]`` bool: |x| < 0.1 in each of the last 10 states (all of them if fewer)."""
        return np.all(np.abs(self.states[:, -SUCCESS_WINDOW:, 0]) < SUCCESS_RADIUS, axis=1)


class CountingDynamics:
    """Wraps a dynamics function and counts the transitions it is asked for (``B`` per call)."""

    def __init__(self, dynamics):
        self.dynamics = dynamics
        self.count = 0

    def __call__(self, state, action):
        self.count += int(np.prod(state.shape[:-1]))
        return self.dynamics(state, action)

    def __getattr__(self, name):  # expose e.g. action_space of the wrapped dynamics
        return getattr(self.dynamics, name)


def run_episodes(
    choose: Callable[[mx.array], np.ndarray],
    env,
    starts: np.ndarray,
    steps: int,
    on_step: Callable[[], None] | None = None,
) -> Episodes:
    """Step ``E`` episodes together for ``steps`` steps in ``env``.

    Args:
        choose: ``state [E, 2] (mx) -> pushes [E]`` in {-1, 0, +1}; called once per step for all episodes.
        env: the true dynamics (``ParticleEnv``).
        starts: ``[E, 2]`` start states.
        on_step: called after every step (progress bars).
    """
    state = mx.array(np.asarray(starts, dtype=np.float32))
    eye = mx.array(np.eye(3, dtype=np.float32))
    states, pushes, rewards = [np.array(state)], [], []
    plan_seconds = 0.0
    for _ in range(steps):
        start = time.perf_counter()
        push = np.asarray(choose(state), dtype=np.int64)
        if push.shape != (len(starts),) or np.any(np.abs(push) > 1):
            raise ValueError(f"a policy returned pushes of shape {push.shape} with values outside -1, 0, +1")
        plan_seconds += time.perf_counter() - start
        state, reward = env(state, eye[mx.array(push + 1)])
        mx.eval(state, reward)
        states.append(np.array(state))
        pushes.append(push)
        rewards.append(np.array(reward, dtype=np.float64))
        if on_step:
            on_step()
    return Episodes(
        returns=np.sum(rewards, axis=0),
        states=np.stack(states, axis=1),
        pushes=np.stack(pushes, axis=1),
        plan_seconds=plan_seconds,
    )


def planner_chooser(planner, env_ids=None) -> Callable[[mx.array], np.ndarray]:
    """Adapts a planner with a one-hot ``Discrete(3)`` action space to ``choose(state) -> pushes [E]``.

    ``env_ids``: the global indices ``[E]`` of the episodes (the planner's per-environment key
    streams; default ``0 .. E-1``).
    """

    def choose(state):
        action = planner.act(state, env_ids)
        return np.array(mx.argmax(action, axis=-1)).astype(np.int64) - 1  # argmax is unsigned

    return choose

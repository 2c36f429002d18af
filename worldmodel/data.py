"""Transition datasets: generation from any environment, ``.npz`` save and load."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass

import mlx.core as mx
import numpy as np

from .files import open_output


class DatasetError(ValueError):
    """A dataset file that is missing, unreadable or of the wrong shape."""


@dataclass
class Transitions:
    """``N`` transitions: states ``[N, S]``, actions ``[N, A]``, next_states ``[N, S]``, rewards ``[N]`` (float32)."""

    states: np.ndarray
    actions: np.ndarray
    next_states: np.ndarray
    rewards: np.ndarray

    def __post_init__(self):
        n = len(self.states)
        ok = (
            self.states.ndim == 2
            and self.next_states.shape == self.states.shape
            and self.actions.ndim == 2
            and len(self.actions) == n
            and self.rewards.shape == (n,)
        )
        if not ok:
            raise DatasetError(
                f"inconsistent transition shapes: states {self.states.shape}, actions {self.actions.shape}, "
                f"next_states {self.next_states.shape}, rewards {self.rewards.shape}"
            )

    def __len__(self) -> int:
        return len(self.states)

    def subset(self, index: np.ndarray) -> "Transitions":
        return Transitions(self.states[index], self.actions[index], self.next_states[index], self.rewards[index])

    def save(self, path: str) -> None:
        """Write an ``.npz`` (atomically; see :func:`worldmodel.files.open_output`)."""
        with open_output(path, "wb", suffix=".npz") as f:
            np.savez(f, states=self.states, actions=self.actions, next_states=self.next_states, rewards=self.rewards)

    @classmethod
    def load(cls, path: str) -> "Transitions":
        try:
            with open(path, "rb") as f, np.load(f) as data:  # our own handle: closed even when np.load fails
                arrays = {k: np.asarray(data[k], dtype=np.float32) for k in ("states", "actions", "next_states", "rewards")}
        except FileNotFoundError:
            raise DatasetError(f"no dataset at {path}") from None
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
            raise DatasetError(f"cannot read dataset {path}: {err}") from None
        return cls(**arrays)


def generate(env, episodes: int = 400, steps: int = 50, seed: int = 0) -> Transitions:
    """Random-action episodes from uniformly drawn starts, all episodes stepped together.

    Args:
        env: an environment with ``sample_states(rng, n) [n, S]``, ``sample_actions(rng, n) [n, A]`` and
            ``env(state, action) -> (next_state, reward)`` (e.g. ``ParticleEnv``).
        episodes, steps: ``episodes * steps`` transitions in all. Defaults: the seed's 400 x 50.
        seed: the numpy seed for starts and actions.

    Returns:
        ``Transitions`` ordered step-major (all episodes' step 0, then step 1, ...).
    """
    if episodes < 1 or steps < 1:
        raise ValueError(f"episodes and steps must be >= 1, got {episodes} and {steps}")
    rng = np.random.default_rng(seed)
    state = env.sample_states(rng, episodes)
    parts = []
    for _ in range(steps):
        action = env.sample_actions(rng, episodes)
        next_state, reward = env(mx.array(state), mx.array(action))
        next_state, reward = np.array(next_state), np.array(reward)
        parts.append((state, action, next_state, reward))
        state = next_state
    return Transitions(*(np.concatenate(column) for column in zip(*parts)))


def uniform_transitions(env, num: int, seed: int) -> Transitions:
    """``num`` single transitions from states uniform over the whole box and uniform actions: a test set."""
    rng = np.random.default_rng(seed)
    states, actions = env.sample_states(rng, num), env.sample_actions(rng, num)
    next_states, rewards = env(mx.array(states), mx.array(actions))
    return Transitions(states, actions, np.array(next_states), np.array(rewards))

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

    @classmethod
    def concatenate(cls, parts) -> "Transitions":
        """One dataset of the transitions of ``parts`` (a non-empty sequence of :class:`Transitions`), in order."""
        parts = list(parts)
        if not parts:
            raise DatasetError("concatenate needs at least one dataset")
        return cls(*(np.concatenate([getattr(p, name) for p in parts]) for name in ("states", "actions", "next_states", "rewards")))

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


SOURCES = ("mlx", "gym")
"""Where :func:`generate` steps the episodes: the environment's MLX dynamics, or Gymnasium itself."""


def generate(env, episodes: int = 400, steps: int = 50, seed: int = 0, source: str = "mlx") -> Transitions:
    """Random-action episodes from uniformly drawn training states, all episodes stepped together.

    Every row of the batch records ``steps`` transitions. In an environment that terminates
    (``env.termination`` is not ``None``) the terminating transition is recorded and its row starts
    a new episode from a fresh draw of ``env.sample_states``; the episodes never terminate otherwise.

    Args:
        env: an environment with ``sample_states(rng, n) [n, S]``, ``sample_actions(rng, n) [n, A]`` and
            ``env(state, action) -> (next_state, reward)`` (e.g. ``ParticleEnv``, or any of
            :mod:`worldmodel.envs`).
        episodes, steps: ``episodes * steps`` transitions in all. Defaults: the seed's 400 x 50.
        seed: the numpy seed for starts and actions.
        source: ``"mlx"`` (the MLX dynamics, batched) or ``"gym"`` (``episodes`` Gymnasium
            environments stepped in a Python loop: see :class:`GymBatch`). Both draw the same starts and
            actions for a seed, so they record the same episodes up to float rounding.

    Returns:
        ``Transitions`` ordered step-major (all rows' step 0, then step 1, ...).
    """
    if episodes < 1 or steps < 1:
        raise ValueError(f"episodes and steps must be >= 1, got {episodes} and {steps}")
    if source not in SOURCES:
        raise ValueError(f"unknown data source {source!r}; choose from {', '.join(SOURCES)}")
    rng = np.random.default_rng(seed)
    state = env.sample_states(rng, episodes)
    batch = MlxBatch(env) if source == "mlx" else GymBatch(env, episodes, seed)
    parts = []
    try:
        batch.start(np.arange(episodes), state)
        for _ in range(steps):
            action = env.sample_actions(rng, episodes)
            next_state, reward, done = batch.step(state, action)
            parts.append((state, action, next_state, reward))
            state = next_state
            if done.any():
                rows = np.flatnonzero(done)
                state = state.copy()
                state[rows] = env.sample_states(rng, len(rows))
                batch.start(rows, state[rows])
    finally:
        batch.close()
    return Transitions(*(np.concatenate(column) for column in zip(*parts)))


class MlxBatch:
    """Steps all rows at once with the environment's MLX dynamics (and its ``termination``, if any)."""

    def __init__(self, env):
        self.env = env
        self.termination = getattr(env, "termination", None)

    def start(self, rows: np.ndarray, states: np.ndarray) -> None:
        """Rows ``[K]`` begin new episodes in ``states [K, S]`` (nothing to do: the state is the row's)."""

    def step(self, state: np.ndarray, action: np.ndarray):
        """``state [E, S]``, ``action [E, A]`` -> ``(next_state [E, S], reward [E], terminated [E] bool)``."""
        next_state, reward = self.env(mx.array(state), mx.array(action))
        done = self.termination(next_state) if self.termination is not None else mx.zeros(reward.shape, dtype=mx.bool_)
        return np.array(next_state), np.array(reward), np.array(done)

    def close(self) -> None:
        pass


class GymBatch:
    """Steps ``E`` Gymnasium environments (``env.make_gym_env()``) in a Python loop.

    Each episode begins with ``reset(seed=...)``, a seed of its own drawn from ``(seed, episode
    number)``, then the environment is put in the episode's start state (``env.set_gym_state``); a
    step records Gymnasium's Markov state (``env.gym_state``), reward and ``terminated``.
    """

    def __init__(self, env, rows: int, seed: int):
        self.env, self.seed, self.started = env, seed, 0
        self.gym_envs = [env.make_gym_env() for _ in range(rows)]

    def start(self, rows: np.ndarray, states: np.ndarray) -> None:
        """Rows ``[K]`` begin new episodes in ``states [K, S]``."""
        for row, state in zip(rows, states):
            reset_seed = np.random.SeedSequence((self.seed, self.started)).generate_state(1)[0]
            self.gym_envs[row].reset(seed=int(reset_seed))
            self.env.set_gym_state(self.gym_envs[row], state)
            self.started += 1

    def step(self, state: np.ndarray, action: np.ndarray):
        """``state [E, S]`` (the rows' own), ``action [E, A]`` -> ``(next_state [E, S], reward [E], terminated [E] bool)``."""
        next_state = np.empty(state.shape, dtype=np.float32)
        reward = np.empty(len(state), dtype=np.float32)
        done = np.zeros(len(state), dtype=bool)
        for row, gym_env in enumerate(self.gym_envs):
            _, reward[row], done[row], _, _ = gym_env.step(self.env.gym_action(action[row]))
            next_state[row] = self.env.gym_state(gym_env)
        return next_state, reward, done

    def close(self) -> None:
        for gym_env in self.gym_envs:
            gym_env.close()


def uniform_transitions(env, num: int, seed: int) -> Transitions:
    """``num`` single transitions from states uniform over the whole box and uniform actions: a test set."""
    rng = np.random.default_rng(seed)
    states, actions = env.sample_states(rng, num), env.sample_actions(rng, num)
    next_states, rewards = env(mx.array(states), mx.array(actions))
    return Transitions(states, actions, np.array(next_states), np.array(rewards))

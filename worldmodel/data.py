"""Transition datasets: random-action collection from any environment, ``.npz`` save and load."""

from __future__ import annotations

import warnings
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
    def from_episodes(cls, episodes, step_major: bool = False) -> "Transitions":
        """The real transitions of ``episodes`` (:class:`~worldmodel.envs.runner.Episodes`): each episode's
        steps up to its length, episode by episode (or, ``step_major``, all rows' step 0, then step 1, ...)."""
        steps = episodes.rewards.shape[1]
        taken = np.arange(steps)[None, :] < episodes.lengths[:, None]  # [E, T]
        next_states = episodes.next_states if episodes.next_states is not None else episodes.states[:, 1:]
        columns = (episodes.states[:, :-1], episodes.actions, next_states, episodes.rewards)
        if step_major:
            columns, taken = [np.swapaxes(c, 0, 1) for c in columns], taken.T
        return cls(*(c[taken].astype(np.float32) for c in columns))

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


def generate(env, episodes: int = 400, steps: int = 50, seed: int = 0, runner: str = "mlx", *, source: str | None = None) -> Transitions:
    """Random-action episodes from uniformly drawn training states, all episodes stepped together:
    the episode runner (:func:`~worldmodel.envs.runner.run_episodes`) with a random policy.

    Every row of the batch records ``steps`` transitions. In an environment that terminates
    (``env.termination`` is not ``None``) the terminating transition is recorded and its row starts
    a new episode from a fresh draw of ``env.sample_states``; the episodes never terminate otherwise.
    One generator, ``np.random.default_rng(seed)``, draws the starts, then every step's actions
    (``env.sample_actions``) followed by that step's new starts.

    Args:
        env: an environment (any of :mod:`worldmodel.envs`).
        episodes, steps: ``episodes * steps`` transitions in all. Defaults: the seed's 400 x 50.
        seed: the numpy seed for starts and actions.
        runner: ``"mlx"`` (the MLX dynamics, batched) or ``"gymnasium"`` (``episodes`` Gymnasium
            environments, each episode from ``reset(seed=...)`` with a seed drawn from ``(seed, episode
            number)``, then put in its start state; Gymnasium's Markov state is recorded). Both draw
            the same starts and actions for a seed, so they record the same episodes up to float rounding.
        source: the old name of ``runner`` (``"gym"`` for ``"gymnasium"``); deprecated.

    Returns:
        ``Transitions`` ordered step-major (all rows' step 0, then step 1, ...).
    """
    from .envs.runner import RUNNERS, check_recording, run_episodes

    if source is not None or runner == "gym":
        warnings.warn("generate(source=...) and 'gym' are deprecated: pass runner='mlx' or runner='gymnasium'",
                      DeprecationWarning, stacklevel=2)
        runner = source if source is not None else runner
        runner = "gymnasium" if runner == "gym" else runner
    if episodes < 1 or steps < 1:
        raise ValueError(f"episodes and steps must be >= 1, got {episodes} and {steps}")
    if runner not in RUNNERS:
        raise ValueError(f"unknown runner {runner!r}; choose from {', '.join(RUNNERS)}")
    check_recording(env, episodes, steps, next_states=True)  # before the starts are drawn
    rng = np.random.default_rng(seed)
    starts = env.sample_states(rng, episodes)
    reset_seeds = (lambda number: int(np.random.SeedSequence((seed, number)).generate_state(1)[0]))
    ran = run_episodes(lambda state: env.sample_actions(rng, len(state)), env, starts, steps, runner=runner,
                       seeds=reset_seeds, restart=lambda rows: env.sample_states(rng, len(rows)), read="state")
    return Transitions.from_episodes(ran, step_major=True)


def uniform_transitions(env, num: int, seed: int) -> Transitions:
    """``num`` single transitions from states uniform over the whole box and uniform actions: a test set."""
    rng = np.random.default_rng(seed)
    states, actions = env.sample_states(rng, num), env.sample_actions(rng, num)
    next_states, rewards = env(mx.array(states), mx.array(actions))
    return Transitions(states, actions, np.array(next_states), np.array(rewards))

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
        if dynamics is env and not env.mlx_copy:
            states, rewards = gymnasium_open_loop(env, np.array(start[0]), np.array(actions[0]))
        else:
            states, rewards = open_loop(dynamics, start, actions)
        rows.append(np.concatenate([states[0, :-1], rewards[0, :, None]], axis=1))
    return rows[0], rows[1]


def gymnasium_open_loop(env, start: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`open_loop` of one start ``[S]`` under ``actions [T, A]`` in Gymnasium's env (an env without an MLX
    copy: MuJoCo's), put in the start first: states ``[1, T + 1, S]`` and rewards ``[1, T]`` (a terminated
    episode's last state repeats, its rewards are 0)."""
    from .envs.runner import run_episodes

    steps = iter(actions)
    episodes = run_episodes(lambda state: next(steps)[None], env, start[None], len(actions), runner="gymnasium",
                            seeds=[0], set_starts=True)
    return episodes.states.astype(np.float32), episodes.rewards.astype(np.float32)


def parse_actions(env, text: str) -> np.ndarray:
    """``"+1,0,-1"`` -> actions ``[T, A]`` float32 of ``env`` (its ``Discrete`` values, or numbers in its ``Box``);
    ``ValueError`` ``"actions must be a comma-separated list; ..."`` else."""
    try:
        return np.stack([env.encode_action(float(tok)) for tok in text.replace(" ", "").split(",")])
    except ValueError as err:
        detail = str(err) if "actions are" in str(err) else f"{env.name}'s actions are numbers"
        raise ValueError(f"actions must be a comma-separated list; {detail}, got {text!r}") from None


def comparison_lines(env, actions, true: np.ndarray, imagined: np.ndarray) -> list[str]:
    """What ``wmplan rollout`` prints of :func:`compare_open_loop`: one line per step (the action, the true and
    the imagined state and reward), then the largest |error| of each column."""
    names = [*env.state_names, "r"]

    def row(values):
        return ", ".join(f"{n}={v:+.3f}" for n, v in zip(names, values))

    lines = [f"t={t:02d} a={env.describe_action(action)} | TRUE {row(true[t])}  ||  MODEL {row(imagined[t])}"
             for t, action in enumerate(actions)]
    err = np.abs(true - imagined).max(axis=0)
    return [*lines, f"Max |error| over {len(actions)} steps: " + ", ".join(f"{n} = {e:.4f}" for n, e in zip(names, err))]

"""Optional plots (the ``plot`` extra: matplotlib); the core never imports this module."""

from __future__ import annotations

import numpy as np

from planners.spaces import Discrete
from worldmodel.files import open_output


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str) -> None:
    plt = _pyplot()
    try:
        with open_output(path, "wb", suffix=".png") as f:
            fig.savefig(f, format="png", dpi=100)
    finally:
        plt.close(fig)


def plot_returns(result: dict, path: str) -> None:
    """Box plot of the per-episode returns of every benchmark row, saved as PNG to ``path``."""
    plt = _pyplot()
    rows = result["rows"]
    labels = [r["planner"] + (f"\n({r['dynamics']})" if r["dynamics"] else "") for r in rows]
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(rows)), 4.5))
    ax.boxplot([r["returns"] for r in rows], showmeans=True)
    ax.set_xticks(range(1, len(rows) + 1), labels, fontsize=8)
    ax.set_ylabel("episode return")
    ax.set_title(f"{result['config']['env']['name']}: returns over {len(rows[0]['returns'])} episodes")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    _save(fig, path)


def applied(env, actions: np.ndarray) -> np.ndarray:
    """What actions ``[T, A]`` apply, ``[T, K]``: the value of each one-hot ``Discrete`` action (``K = 1``), else the actions."""
    space = env.action_space
    if isinstance(space, Discrete):
        values = np.asarray(space.values if space.values is not None else range(space.n), dtype=np.float64)
        return values[np.argmax(actions, axis=1)][:, None]
    return np.asarray(actions)


def plot_episode(env, true_states: np.ndarray, imagined_states: np.ndarray, actions: np.ndarray, path: str, title: str = "") -> None:
    """One episode of ``env``, one panel per state variable and one for the actions, saved as PNG to ``path``.

    Args:
        true_states: ``[T + 1, S]`` the states the episode visited, the start first.
        imagined_states: ``[T, S]`` the planner's one-step predictions (state ``t + 1`` as imagined at step ``t``),
            or ``None`` (a sequence evaluator predicts none).
        actions: ``[T, A]`` the applied actions.
    """
    plt = _pyplot()
    names = env.state_names
    t = np.arange(len(true_states))
    fig, axes = plt.subplots(len(names) + 1, 1, sharex=True, figsize=(7, 1.5 * (len(names) + 1) + 0.6))
    for k, (ax, name) in enumerate(zip(axes, names)):
        ax.plot(t, true_states[:, k], "-o", ms=2, label="true")
        if imagined_states is not None:
            ax.plot(t[1:], imagined_states[:, k], "x--", ms=3, label="imagined (one step ahead)")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    values = applied(env, actions)
    for k in range(values.shape[1]):
        axes[-1].step(t[:-1], values[:, k], where="post")
    if isinstance(env.action_space, Discrete) and env.action_space.values is not None:
        axes[-1].set_yticks(sorted(env.action_space.values))
    axes[-1].set_ylabel(env.action_name)
    axes[-1].set_xlabel("step")
    axes[-1].grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def plot_learning_curve(result: dict, path: str) -> None:
    """A model-based RL run's learning curve (:func:`worldmodel.mbrl.run_mbrl`), saved as PNG to ``path``:
    the evaluation's mean return after every round and the return of every collected episode
    against the environment steps so far, with the planner on the true dynamics, the exact optimum
    (where known) and the model of the random data alone (round 0) as horizontal references."""
    plt = _pyplot()
    curve, references, config = result["curve"], result["references"], result["config"]
    steps = [entry["env_steps"] for entry in curve]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(steps, [entry["eval_mean_return"] for entry in curve], "-o", ms=4, label=f"eval: {config['planner']} with the model")
    collected = [(entry["env_steps"], r) for entry in curve for r in entry["train_returns"]]
    ax.plot(*zip(*collected), "x", ms=5, alpha=0.6, label="collected episodes")
    if references["true_dynamics"] is not None:
        ax.axhline(references["true_dynamics"]["mean_return"], color="C2", ls="--", label=f"{config['planner']} with the true dynamics")
    if references["optimal"] is not None:
        ax.axhline(references["optimal"]["mean_return"], color="k", ls=":", label="optimal")
    if curve:
        ax.axhline(curve[0]["eval_mean_return"], color="C3", ls="-.", label="random-data model (round 0)")
    ax.set_xlabel("environment steps (random ones included)")
    ax.set_ylabel("return per episode")
    ax.set_title(f"{result['env']['name']}: model-based RL, seed {config['seed']}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)

"""Optional plots (the ``plot`` extra: matplotlib); the core never imports this module."""

from __future__ import annotations

import numpy as np

from worldmodel.files import open_output


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_returns(result: dict, path: str) -> None:
    """Box plot of the per-episode returns of every benchmark row, saved as PNG to ``path``."""
    plt = _pyplot()
    rows = result["rows"]
    labels = [r["planner"] + (f"\n({r['dynamics']})" if r["dynamics"] else "") for r in rows]
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(rows)), 4.5))
    ax.boxplot([r["returns"] for r in rows], showmeans=True)
    ax.set_xticks(range(1, len(rows) + 1), labels, fontsize=8)
    ax.set_ylabel("episode return")
    ax.set_title(f"Returns over {len(rows[0]['returns'])} episodes")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    try:
        with open_output(path, "wb", suffix=".png") as f:
            fig.savefig(f, format="png", dpi=120)
    finally:
        plt.close(fig)


def plot_episode(true_states: np.ndarray, imagined_states: np.ndarray, pushes: np.ndarray, path: str, title: str = "") -> None:
    """x, v and the pushes over time: the true trajectory ``[T + 1, 2]`` and the planner's one-step
    predictions ``[T, 2]`` (state ``t + 1`` as imagined at step ``t``), saved as PNG to ``path``."""
    plt = _pyplot()
    t = np.arange(len(true_states))
    fig, axes = plt.subplots(3, 1, sharex=True, figsize=(7, 6))
    for ax, k, name in ((axes[0], 0, "x"), (axes[1], 1, "v")):
        ax.plot(t, true_states[:, k], "-o", ms=3, label="true")
        ax.plot(t[1:], imagined_states[:, k], "x--", ms=4, label="imagined (one step ahead)")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    axes[2].step(t[:-1], pushes, where="post")
    axes[2].set_ylabel("push")
    axes[2].set_yticks([-1, 0, 1])
    axes[2].set_xlabel("step")
    fig.suptitle(title)
    fig.tight_layout()
    try:
        with open_output(path, "wb", suffix=".png") as f:
            fig.savefig(f, format="png", dpi=120)
    finally:
        plt.close(fig)

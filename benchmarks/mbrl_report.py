"""A model-based RL run's result (:func:`worldmodel.mbrl.run_mbrl`) as text: a table of the rounds, the references."""

from __future__ import annotations

import numpy as np
from tabulate import tabulate

HEADERS = ("round", "env steps", "train return", "eval return (mean ± std)", "cost ratio", "train loss")


def _ratio(value) -> str:
    return "-" if value is None else f"{value:.4f}"


def curve_table(result: dict) -> str:
    """The curve as a plain-text table; the train return is the mean over the iteration's episodes."""
    rows = [
        (
            entry["round"],
            entry["env_steps"],
            f"{np.mean(entry['train_returns']):.3f}",
            f"{entry['eval_mean_return']:.3f} ± {np.std(entry['eval_returns']):.3f}",
            _ratio(entry["eval_cost_ratio"]),
            f"{entry['train_loss']:.2e}",
        )
        for entry in result["curve"]
    ]
    return tabulate(rows, headers=HEADERS, disable_numparse=True)


def references_line(result: dict) -> str:
    """The horizontal references of the curve: the planner on the true dynamics, the optimum, the random-data model."""
    config, references = result["config"], result["references"]
    true = references["true_dynamics"]
    parts = [] if true is None else [f"{config['planner']} with the true dynamics {true['mean_return']:.3f}"
                                     + ("" if true["cost_ratio"] is None else f" (cost ratio {true['cost_ratio']:.4f})")]
    if references["optimal"] is not None:
        parts.append(f"optimal {references['optimal']['mean_return']:.3f}")
    if result["curve"]:
        parts.append(f"the random-data model (round 0) {result['curve'][0]['eval_mean_return']:.3f}")
    episodes = len(result["curve"][0]["eval_returns"]) if result["curve"] else len(true["returns"]) if true else 0
    return f"Eval over {episodes} episodes from the benchmark's starts; references: " + ", ".join(parts)

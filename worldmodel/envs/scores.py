"""How a benchmark row is scored against the reference returns (the exact optimum, or the reference planner).

Each environment names its score (``env.defaults.benchmark.score``) by the sign of its rewards:

- ``cost_ratio`` (rewards never positive: particle, pendulum, acrobot): sum of costs / sum of the
  reference's costs, cost = -return; 1.0 is the reference, larger is worse.
- ``return_ratio`` (rewards never negative: cartpole): sum of returns / sum of the reference's
  returns; 1.0 is the reference, smaller is worse.
- ``gap`` (rewards of both signs: mountaincar): the reference's mean return minus the row's;
  0 is the reference, larger is worse.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


def cost_ratio(returns: np.ndarray, reference: np.ndarray) -> float | None:
    """``sum(-returns) / sum(-reference)`` (``[E]`` each); 1.0 when both cost nothing, ``None`` when undefined."""
    cost, reference_cost = float(-returns.sum()), float(-reference.sum())
    if reference_cost > 0:
        return cost / reference_cost
    return 1.0 if cost <= 0 else None


def return_ratio(returns: np.ndarray, reference: np.ndarray) -> float | None:
    """``sum(returns) / sum(reference)`` (``[E]`` each); ``None`` unless the reference's sum is positive."""
    total = float(reference.sum())
    return float(returns.sum()) / total if total > 0 else None


def gap(returns: np.ndarray, reference: np.ndarray) -> float | None:
    """``mean(reference) - mean(returns)`` (``[E]`` each)."""
    return float(reference.mean()) - float(returns.mean())


@dataclass(frozen=True)
class Score:
    """One score: its JSON field ``key``, table ``header``, ``definition`` (``{reference}``: the
    reference row's name) and ``compute(returns [E], reference [E]) -> float | None``."""

    key: str
    header: str
    definition: str
    compute: Callable[[np.ndarray, np.ndarray], float | None]


SCORES = {
    score.key: score
    for score in (
        Score("cost_ratio", "cost ratio", "cost ratio = sum of costs / sum of {reference} costs", cost_ratio),
        Score("return_ratio", "return ratio", "return ratio = sum of returns / sum of {reference} returns", return_ratio),
        Score("gap", "gap", "gap = {reference} mean return - mean return", gap),
    )
}
"""Every score by its key (``env.defaults.benchmark.score``); each row of a benchmark carries all keys, the env's one filled."""

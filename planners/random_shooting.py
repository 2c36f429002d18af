"""Random shooting: the best of uniformly random action sequences."""

from __future__ import annotations

import mlx.core as mx

from .base import SamplingPlanner

__all__ = ["RandomShooting"]


class RandomShooting(SamplingPlanner):
    """Imagine ``samples`` uniformly random sequences per environment and keep the best.

    Sequences are uniform over the space (one-hot for ``Discrete``, uniform in the bounds for
    ``Box``); the first population also holds the previous call's shifted plan. Each of the
    ``iterations`` draws a fresh population; the best sequence over all of them is the plan.

    Args:
        dynamics, action_space, seed, discount, terminal_value, termination: see :class:`~planners.base.Planner`.
        horizon: plan length. Default: ``15``.
        samples: sequences per environment and iteration (``num_samples``: its deprecated name). Default: ``1000``.
        iterations: independent populations per call. Default: ``1``.
    """

    def __init__(self, dynamics, action_space, *, horizon: int = 15, samples: int = 1000, iterations: int = 1, **options):
        super().__init__(dynamics, action_space, horizon=horizon, samples=samples, iterations=iterations, **options)

    def _sample(self, key: mx.array, params, envs: int) -> mx.array:
        return self.distribution.random(key, envs, self.samples, self.horizon)

    def _update(self, params, samples, returns):
        return params, None

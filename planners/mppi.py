"""Model-predictive path integral control (MPPI), for continuous and discrete actions."""

from __future__ import annotations

import mlx.core as mx

from .base import Plan, SamplingPlanner, check_float, evaluate_plan
from .distributions import blend, select

__all__ = ["MPPI", "ClassicMPPI"]


class MPPI(SamplingPlanner):
    """Reweight the sampling distribution by ``softmax(returns / temperature)``; repeat.

    ``Box``: the mean becomes the weighted mean of the sampled sequences; the noise ``init_std``
    stays. ``Discrete``: the per-step probabilities become the weighted action frequencies. The
    update is smoothed, ``params = momentum * old + (1 - momentum) * reweighted``. The plan is the
    final mean (most likely actions), or the best sequence evaluated when that is better.

    Args:
        dynamics, action_space, seed, discount, terminal_value, termination: see :class:`~planners.base.Planner`.
        horizon: plan length. Default: ``15``.
        samples: sequences per environment and iteration (``num_samples``: its deprecated name). Default: ``1000``.
        iterations: reweightings per call. Default: ``5``.
        temperature: ``lambda > 0``, in units of return (with ``normalize``, in standard deviations of
            each population's returns). Default: ``1.0``.
        momentum: weight of the old parameters in each update, in ``[0, 1)``. Default: ``0.2``.
        init_std: ``Box`` only: noise standard deviation, as a fraction of the half-width. Default: ``1.0``.
        spread: ``Discrete`` only: weight of the uniform distribution mixed into the warm start. Default: ``0.5``.
        noise_beta: colored-noise exponent along the horizon (see :class:`~planners.cem.CEM`). Default: ``2.0``.
        colored_fraction: fraction of each population drawn with colored noise. Default: ``0.25``.
        keep_best: return the best sequence evaluated where it beats the final mean (``False``: the
            mean, as textbook MPPI does). Default: ``True``.
        normalize: weigh by ``softmax((returns - max) / (temperature * std))``, ``std`` the spread of each
            environment's sampled (finite) returns, so that ``temperature`` is scale-free: the same value
            fits rewards in any units (for returns spread normally, the weights' effective sample size is
            about ``N exp(-1 / temperature**2)``). Default: ``False`` (``temperature`` in return units).
    """

    def __init__(
        self,
        dynamics,
        action_space,
        *,
        horizon: int = 15,
        samples: int = 1000,
        iterations: int = 5,
        temperature: float = 1.0,
        momentum: float = 0.2,
        init_std: float = 1.0,
        spread: float = 0.5,
        noise_beta: float = 2.0,
        colored_fraction: float = 0.25,
        keep_best: bool = True,
        normalize: bool = False,
        **options,
    ):
        super().__init__(
            dynamics, action_space, horizon=horizon, samples=samples, iterations=iterations,
            init_std=init_std, spread=spread, noise_beta=noise_beta,
            colored_fraction=colored_fraction, **options,
        )
        self.temperature = check_float("temperature", temperature, 0.0, float("inf"), low_open=True)
        self.momentum = check_float("momentum", momentum, 0.0, 1.0, high_open=True)
        self.keep_best = bool(keep_best)
        if normalize not in (True, False):
            raise ValueError(f"normalize must be True or False, got {normalize!r}")
        self.normalize = bool(normalize)

    def _update(self, params, samples, returns):
        valid = mx.isfinite(mx.max(returns, axis=1))
        logits = spread_normalized(returns) if self.normalize else returns
        weights = mx.softmax(mx.where(valid[:, None], logits, 0.0) / self.temperature, axis=1)
        reweighted = self.distribution.fit(samples, weights)[:1] + params[1:]  # new mean / probs, same noise
        return select(valid, blend(params, reweighted, self.momentum), params), None

    def _finish(self, state, params, best, key, call) -> Plan:
        mode = evaluate_plan(call, state, self.distribution.mode(params))
        if not self.keep_best:
            return mode
        better = mode.expected_return >= best.expected_return
        return Plan(mx.where(better[:, None, None], mode.actions, best.actions), mx.maximum(mode.expected_return, best.expected_return))


def spread_normalized(returns: mx.array) -> mx.array:
    """``(returns - max) / std`` per environment (row) of ``returns [E, N]``, over the finite returns
    (``-inf`` and NaN stay out of both; a row of equal returns gives zeros)."""
    finite = mx.isfinite(returns)
    count = mx.maximum(mx.sum(finite, axis=1, keepdims=True), 1)
    kept = mx.where(finite, returns, 0.0)
    mean = mx.sum(kept, axis=1, keepdims=True) / count
    std = mx.sqrt(mx.sum(mx.where(finite, mx.square(returns - mean), 0.0), axis=1, keepdims=True) / count)
    top = mx.max(mx.where(finite, returns, -mx.inf), axis=1, keepdims=True)
    return (returns - top) / mx.maximum(std, SPREAD_FLOOR)


SPREAD_FLOOR = 1e-12
"""The smallest return spread divided by: a population whose returns all tie gets equal weights."""


class ClassicMPPI(MPPI):
    """Textbook MPPI (Williams et al., 2017), for comparisons with published baselines: white Gaussian
    noise (``noise_beta=0``), the mean replaced by the reweighted mean at every update (``momentum=0``)
    and the final mean returned (``keep_best=False``). Every :class:`MPPI` option can still be given;
    the budgets (``horizon``, ``samples``, ``iterations``: Williams et al. update once per step) are MPPI's.
    """

    def __init__(self, dynamics, action_space, *, noise_beta: float = 0.0, momentum: float = 0.0, keep_best: bool = False, **options):
        super().__init__(dynamics, action_space, noise_beta=noise_beta, momentum=momentum, keep_best=keep_best, **options)

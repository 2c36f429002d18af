"""The cross-entropy method, with the iCEM improvements as options."""

from __future__ import annotations

from typing import Optional

import mlx.core as mx

from .base import Plan, SamplingPlanner, check_float, evaluate_plan
from .distributions import blend, select
from .spaces import Box

__all__ = ["CEM", "ICEM", "ClassicCEM"]


class CEM(SamplingPlanner):
    """Cross-entropy method: sample, keep the elites, refit the distribution to them; repeat.

    ``Discrete``: per-step categorical probabilities refitted to the elites' action frequencies.
    ``Box``: per-step Gaussians refitted to the elites' mean and standard deviation. The refit is
    smoothed, ``params = momentum * old + (1 - momentum) * elite_fit``. Elites with non-finite
    returns get no weight.

    Args:
        dynamics, action_space, seed, discount, terminal_value, termination: see :class:`~planners.base.Planner`.
        horizon: plan length. Default: ``15``.
        samples: population size per iteration (``num_samples``: its deprecated name). Default: ``1000``.
        iterations: refits per call. Default: ``5``.
        elite_fraction: fraction of the population refitted to, in ``(0, 1]``. Default: ``0.1``.
        momentum: weight of the old parameters in each refit, in ``[0, 1)``. Default: ``0.1``.
        init_std: ``Box`` only: initial standard deviation, as a fraction of the half-width. Default: ``1.0``.
        noise_beta: colored-noise exponent along the horizon (iCEM; for ``Discrete``, correlated
            quantiles, see :class:`~planners.distributions.Categorical`). Default: ``2.0``.
        colored_fraction: fraction of each population drawn with colored noise, the rest white:
            colored sequences cross plateaus (e.g. braking for ten steps), white ones fine-tune.
            Default: ``0.25``.
        keep_elites: fraction of the elites carried into the next iteration's population (iCEM),
            in ``[0, 1]``. Default: ``0``.
        shift_elites: also carry them, shifted by one step, into the next call (iCEM). Default: ``False``.
        keep_best: return the best sequence evaluated rather than the final distribution's mode
            (iCEM). Default: ``True``.
    """

    def __init__(
        self,
        dynamics,
        action_space,
        *,
        horizon: int = 15,
        samples: int = 1000,
        iterations: int = 5,
        elite_fraction: float = 0.1,
        momentum: float = 0.1,
        init_std: float = 1.0,
        noise_beta: float = 2.0,
        colored_fraction: float = 0.25,
        keep_elites: float = 0.0,
        shift_elites: bool = False,
        keep_best: bool = True,
        **options,
    ):
        super().__init__(
            dynamics, action_space, horizon=horizon, samples=samples, iterations=iterations,
            init_std=init_std, noise_beta=noise_beta, colored_fraction=colored_fraction, **options,
        )
        self.elite_fraction = check_float("elite_fraction", elite_fraction, 0.0, 1.0, low_open=True)
        self.momentum = check_float("momentum", momentum, 0.0, 1.0, high_open=True)
        self.keep_elites = check_float("keep_elites", keep_elites, 0.0, 1.0)
        self.num_elites = max(1, round(self.elite_fraction * self.samples))
        self.num_kept = round(self.keep_elites * self.num_elites)
        self.shift_elites = bool(shift_elites)
        self.keep_best = bool(keep_best)

    def _update(self, params, samples, returns):
        order = mx.argsort(-returns, axis=1)[:, : self.num_elites]  # best first; -inf last
        elite_returns = mx.take_along_axis(returns, order, axis=1)
        elites = mx.take_along_axis(samples, order[:, :, None, None], axis=1)
        finite = mx.isfinite(elite_returns).astype(mx.float32)
        count = mx.sum(finite, axis=1, keepdims=True)
        fitted = self.distribution.fit(elites, finite / mx.maximum(count, 1.0))
        params = select(count[:, 0] > 0, blend(params, fitted, self.momentum), params)
        return params, (elites[:, : self.num_kept] if self.num_kept else None)

    def _finish(self, state, params, best, key, call) -> Plan:
        return best if self.keep_best else evaluate_plan(call, state, self.distribution.mode(params))


class ICEM(CEM):
    """:class:`CEM` with the iCEM improvements on (Pinneri et al., 2020).

    Defaults: ``keep_elites=0.3``, ``shift_elites=True``, ``keep_best=True``, ``noise_beta=2.0``
    with the whole population colored for ``Box`` actions (``colored_fraction=1.0``, as in the
    paper) and a quarter of it for ``Discrete`` ones (``0.25``: fully correlated discrete sequences
    fine-tune poorly). Every :class:`CEM` option can still be given.
    """

    def __init__(self, dynamics, action_space, *, colored_fraction: Optional[float] = None, keep_elites: float = 0.3, shift_elites: bool = True, **options):
        if colored_fraction is None:
            colored_fraction = 1.0 if isinstance(action_space, Box) else 0.25
        super().__init__(
            dynamics, action_space, colored_fraction=colored_fraction, keep_elites=keep_elites,
            shift_elites=shift_elites, **options,
        )


class ClassicCEM(CEM):
    """Textbook CEM as model-based RL papers run it (PETS, Chua et al., 2018; mbrl-lib's ``CEMOptimizer``,
    without its truncation of the Gaussian), for comparisons with published baselines: white Gaussian noise
    (``noise_beta=0``), the elites refitted with the old parameters' weight ``momentum=0.1``, nothing
    carried between iterations or calls but the shifted mean, and the final mean returned
    (``keep_best=False``). Every :class:`CEM` option can still be given; the budgets are CEM's.
    """

    def __init__(self, dynamics, action_space, *, noise_beta: float = 0.0, keep_best: bool = False, **options):
        super().__init__(dynamics, action_space, noise_beta=noise_beta, keep_best=keep_best, **options)

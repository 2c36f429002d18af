"""Gradient planning: Adam on action sequences through ``mx.grad`` of the imagined return."""

from __future__ import annotations

import mlx.core as mx
import mlx.optimizers as optim

from .base import Plan, Planner, SearchCall, candidates, check_float, check_int, improve, inject, next_fits
from .cem import CEM
from .dynamics import rollout

__all__ = ["GradientPlanner", "CEMGradient", "refine"]


def refine(
    planner: Planner, state: mx.array, samples: mx.array, best: Plan, steps: int, learning_rate: float, call: SearchCall
) -> Plan:
    """Improve sequences ``samples [E, M, H, A]`` by ``steps`` Adam steps on their imagined returns.

    The sequences are optimised in free parameters (logits under a softmax for ``Discrete`` -- the
    dynamics get the probability vectors -- or ``tanh``-squashed values for ``Box``). After every
    step the hard sequences (arg-max one-hot, or the values) are evaluated, and ``best`` is replaced
    per environment where one of them is better. Non-finite returns and gradients count as zero
    in the step and as ``-inf`` in the selection; the hard sequences are scored by ``call.evaluate``,
    and ``call.sync`` runs after every step (on the eager path it evaluates the optimiser's state,
    so the backward graphs do not pile up); with ``call.deadline``, the steps stop when the next
    would overrun it. Returns the best :class:`Plan`.
    """
    space = planner.distribution
    envs, num, horizon, dim = samples.shape
    starts = mx.repeat(state, num, axis=0)

    def loss(free):
        actions = space.relax(free).reshape(envs * num, horizon, dim)
        returns = rollout(
            planner.search_dynamics,
            starts,
            actions,
            planner.discount,
            planner.terminal_value,
            streams=planner.streams,
            termination=planner.termination,
        )
        return -mx.sum(mx.where(mx.isfinite(returns), returns, 0.0))

    gradient = mx.grad(loss)
    optimizer = optim.Adam(learning_rate=learning_rate)
    params = {"free": space.unconstrain(samples)}
    best = improve(best, samples, call.evaluate(state, samples))
    for _ in range(steps):
        grad = gradient(params["free"])
        params = optimizer.apply_gradients({"free": mx.where(mx.isfinite(grad), grad, 0.0)}, params)
        hard = space.harden(space.relax(params["free"]))
        best = improve(best, hard, call.evaluate(state, hard))
        call.sync(params, optimizer.state, best)
        if not next_fits(call, best):
            break
    return best


class GradientPlanner(Planner):
    """Gradient ascent (Adam) on ``samples`` action sequences per environment at once.

    The sequences start from the distribution around the warm start (random for the first call;
    the shifted plan itself is one of them) and follow ``mx.grad`` of the imagined return; the best
    hard sequence seen is the plan. Discrete actions are relaxed through a softmax over logits and
    the plan takes the arg-max. See :class:`CEMGradient` for the CEM + gradient hybrid.

    Args:
        dynamics, action_space, seed, discount, terminal_value, termination: see :class:`~planners.base.Planner`.
            The dynamics must be differentiable with ``mx.grad``.
        horizon: plan length. Default: ``15``.
        samples: sequences optimised in parallel per environment (``num_samples``: its deprecated name). Default: ``100``.
        iterations: Adam steps per call. Default: ``30``.
        learning_rate: Adam step size on the free parameters (logits / pre-``tanh``). Default: ``0.1``.
        init_std: ``Box`` only: spread of the starting sequences, as a fraction of the half-width. Default: ``1.0``.
    """

    differentiates = True
    iterations_update_populations = False  # its iterations are Adam steps: an env's default iterations are not for it

    def __init__(
        self,
        dynamics,
        action_space,
        *,
        horizon: int = 15,
        samples: int = 100,
        iterations: int = 30,
        learning_rate: float = 0.1,
        init_std: float = 1.0,
        **options,
    ):
        super().__init__(dynamics, action_space, horizon=horizon, samples=samples, iterations=iterations, init_std=init_std, **options)
        self.learning_rate = check_float("learning_rate", learning_rate, 0.0, float("inf"), low_open=True)

    def _gradient_rows(self, envs: int) -> int:
        return envs * self.samples

    def _search(self, state, warm, key, call):
        envs = state.shape[0]
        samples = self.distribution.sample(key, self._initial(envs, warm), self.samples)
        samples = inject(samples, candidates(warm))
        return refine(self, state, samples, self._first_guess(envs, warm), self.iterations, self.learning_rate, call), None


class CEMGradient(CEM):
    """CEM, then Adam refinement of its result (the CEM + gradient hybrid).

    After the :class:`CEM` iterations, the best sequence and ``num_elites - 1`` draws from the final
    distribution are refined with :func:`refine`; the best hard sequence found is the plan.

    Args:
        grad_iterations: Adam steps after CEM. Default: ``10``.
        learning_rate: Adam step size. Default: ``0.1``.
        **options: every :class:`CEM` option.
    """

    differentiates = True

    def __init__(self, dynamics, action_space, *, grad_iterations: int = 10, learning_rate: float = 0.1, **options):
        super().__init__(dynamics, action_space, **options)
        self.grad_iterations = check_int("grad_iterations", grad_iterations, minimum=0)
        self.learning_rate = check_float("learning_rate", learning_rate, 0.0, float("inf"), low_open=True)

    def _gradient_rows(self, envs: int) -> int:
        return envs * self.num_elites

    def planned_iterations(self) -> int:
        """CEM's iterations and the Adam steps after them."""
        return self.iterations + self.grad_iterations

    def _finish(self, state, params, best, key, call) -> Plan:
        best = super()._finish(state, params, best, key, call)
        if call.deadline is not None and not call.deadline.fits():
            return best  # no time left for a gradient step
        samples = inject(self.distribution.sample(key, params, self.num_elites), best.actions[:, None])
        return refine(self, state, samples, best, self.grad_iterations, self.learning_rate, call)

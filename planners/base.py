"""Machinery every planner shares: the :class:`Plan`, option checks, warm start and shift, NaN fallback."""

from __future__ import annotations

import numbers
import warnings
from typing import NamedTuple, Optional

import mlx.core as mx

from .distributions import make_distribution
from .dynamics import Dynamics, TerminalValue, make_evaluate

__all__ = ["Plan", "Planner", "shift", "WarmStart"]


class Plan(NamedTuple):
    """The result of :meth:`Planner.optimize`.

    Attributes:
        actions: planned action sequences ``[E, H, A]`` (one-hot for ``Discrete``).
        expected_return: their imagined returns ``[E]`` (``-inf`` where no finite return was found).
    """

    actions: mx.array
    expected_return: mx.array


class WarmStart(NamedTuple):
    """What one call hands to the next: the shifted plan ``[E, H, A]`` and, optionally, shifted
    elite sequences ``[E, K, H, A]`` (iCEM)."""

    actions: mx.array
    elites: Optional[mx.array] = None


def shift(actions: mx.array) -> mx.array:
    """Advance plans ``[..., H, A]`` by one step: drop the first action, repeat the last one.

    ``[a0, a1, ..., a_{H-1}] -> [a1, ..., a_{H-1}, a_{H-1}]``.
    """
    return mx.concatenate([actions[..., 1:, :], actions[..., -1:, :]], axis=-2)


def check_int(name: str, value, minimum: int = 1) -> int:
    """``value`` as an int, or ``ValueError`` naming it when it is not an integer ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_float(name: str, value, low: float, high: float, *, low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a float, or ``ValueError`` naming it when it lies outside the interval."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok:
        value = float(value)
        ok = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be a number in {interval}, got {value!r}")
    return value


class Planner:
    """Model-predictive control over any batched dynamics; subclasses write only the search.

    Args:
        dynamics: ``(state [B, S], action [B, A]) -> (next_state [B, S], reward [B])`` (:class:`Dynamics`).
        action_space: ``Discrete(n)`` or ``Box(low, high)``.
        horizon: plan length ``H``.
        num_samples: sequences ``N`` imagined per environment and iteration.
        iterations: search iterations per call.
        seed: seed of the planner's random key; the same seed gives the same actions.
        discount: weight ``discount**t`` of the reward at step ``t``. Default: ``1.0``.
        terminal_value: optional ``V(state [B, S]) -> [B]`` added after the last step.

    Use :meth:`act` for one MPC step (warm-started from the previous call's shifted plan),
    :meth:`optimize` for the whole :class:`Plan`, :meth:`reset` to forget the warm start.
    """

    def __init__(
        self,
        dynamics: Dynamics,
        action_space,
        *,
        horizon: int,
        num_samples: int,
        iterations: int,
        seed: int = 0,
        discount: float = 1.0,
        terminal_value: Optional[TerminalValue] = None,
        **distribution_options,
    ):
        if not callable(dynamics):
            raise ValueError(f"dynamics must be callable (state, action) -> (next_state, reward), got {dynamics!r}")
        if terminal_value is not None and not callable(terminal_value):
            raise ValueError(f"terminal_value must be callable or None, got {terminal_value!r}")
        self.dynamics = dynamics
        self.action_space = action_space
        self.horizon = check_int("horizon", horizon)
        self.num_samples = check_int("num_samples", num_samples)
        self.iterations = check_int("iterations", iterations)
        self.seed = check_int("seed", seed, minimum=0)
        self.discount = check_float("discount", discount, 0.0, 1.0, low_open=True)
        self.terminal_value = terminal_value
        self.distribution = make_distribution(action_space, horizon=self.horizon, **distribution_options)
        self.evaluate = make_evaluate(dynamics, discount=self.discount, terminal_value=terminal_value)
        self._key = mx.random.key(self.seed)
        self._warm: Optional[WarmStart] = None

    @property
    def warm_start(self) -> Optional[WarmStart]:
        """The shifted previous plan the next call starts from, or ``None`` after :meth:`reset`."""
        return self._warm

    def reset(self) -> None:
        """Forget the warm start (call it when a new episode begins)."""
        self._warm = None

    def act(self, state) -> mx.array:
        """One MPC step for ``E`` environments: ``state [E, S] -> action [E, A]``."""
        return self.optimize(state).actions[:, 0]

    def optimize(self, state) -> Plan:
        """Plan from ``state [E, S]``: a :class:`Plan` with ``actions [E, H, A]`` and ``expected_return [E]``."""
        state = mx.array(state, dtype=mx.float32)
        if state.ndim != 2:
            raise ValueError(f"state must be [E, S], got shape {tuple(state.shape)}")
        warm = self._warm if self._warm is not None and self._warm.actions.shape[0] == state.shape[0] else None
        self._key, key = mx.random.split(self._key)
        plan, elites = self._search(state, warm, key)
        plan = self._fallback(plan, warm, state.shape[0])
        self._warm = WarmStart(shift(plan.actions), None if elites is None else shift(elites))
        mx.eval(plan, self._warm, self._key)
        return plan

    def _search(self, state: mx.array, warm: Optional[WarmStart], key: mx.array):
        """Return ``(Plan, elites [E, K, H, A] or None)`` for ``state [E, S]``; subclasses implement it."""
        raise NotImplementedError

    def _fallback(self, plan: Plan, warm: Optional[WarmStart], envs: int) -> Plan:
        """Where no finite return was found, keep the previous (shifted) plan and warn."""
        failed = ~mx.isfinite(plan.expected_return)
        if not mx.any(failed).item():
            return plan
        warnings.warn(
            f"planner found no finite imagined return for {mx.sum(failed).item()} of {envs} environment(s); "
            "keeping the previous plan",
            RuntimeWarning,
            stacklevel=3,
        )
        previous = warm.actions if warm is not None else self.distribution.mode(self.distribution.initial(envs, self.horizon))
        actions = mx.where(failed[:, None, None], previous, plan.actions)
        return Plan(actions, mx.where(failed, -mx.inf, plan.expected_return))

    def _initial(self, envs: int, warm: Optional[WarmStart]):
        """Distribution parameters to start from: around the warm start, else the space's default."""
        if warm is None:
            return self.distribution.initial(envs, self.horizon)
        return self.distribution.around(warm.actions)

    def _first_guess(self, envs: int, warm: Optional[WarmStart]) -> Plan:
        """The best plan before searching: the warm start (or the initial mode), of unknown return."""
        actions = warm.actions if warm is not None else self.distribution.mode(self.distribution.initial(envs, self.horizon))
        return Plan(actions, mx.full((envs,), -mx.inf))

    def __repr__(self):
        return (
            f"{type(self).__name__}(horizon={self.horizon}, num_samples={self.num_samples}, "
            f"iterations={self.iterations}, action_space={self.action_space!r})"
        )


def candidates(warm: Optional[WarmStart]) -> Optional[mx.array]:
    """Sequences ``[E, K, H, A]`` to place in the first population: the shifted plan and elites."""
    if warm is None:
        return None
    plan = warm.actions[:, None]
    return plan if warm.elites is None else mx.concatenate([plan, warm.elites], axis=1)


def inject(samples: mx.array, extra: Optional[mx.array]) -> mx.array:
    """Replace the last ``K`` of ``samples [E, N, H, A]`` with ``extra [E, K, H, A]`` (at most ``N``)."""
    if extra is None:
        return samples
    keep = min(extra.shape[1], samples.shape[1])
    return mx.concatenate([samples[:, : samples.shape[1] - keep], extra[:, :keep]], axis=1)


def improve(best: Plan, samples: mx.array, returns: mx.array) -> Plan:
    """``best`` replaced, per environment, by the best of ``samples [E, N, H, A]`` where that is better."""
    index = mx.argmax(returns, axis=1)[:, None]
    top_return = mx.take_along_axis(returns, index, axis=1)[:, 0]
    top = mx.take_along_axis(samples, index[:, :, None, None], axis=1)[:, 0]
    better = top_return > best.expected_return
    return Plan(mx.where(better[:, None, None], top, best.actions), mx.where(better, top_return, best.expected_return))


class SamplingPlanner(Planner):
    """A population search: sample ``[E, N, H, A]``, evaluate, keep the best, refit; ``iterations`` times.

    Subclasses write :meth:`_sample`, :meth:`_update` and, optionally, :meth:`_finish`. The first
    population holds the warm start (shifted plan and elites), so a plan is never lost between calls.
    """

    shift_elites = False  # hand the sequences carried by the last iteration to the next call

    def _search(self, state, warm, key):
        envs = state.shape[0]
        params = self._initial(envs, warm)
        best = self._first_guess(envs, warm)
        extra = candidates(warm)
        *step_keys, finish_key = mx.random.split(key, self.iterations + 1)
        for step_key in step_keys:
            samples = inject(self._sample(step_key, params, envs), extra)
            returns = self.evaluate(state, samples)
            best = improve(best, samples, returns)
            params, extra = self._update(params, samples, returns)
            mx.eval(params, best, extra)
        return self._finish(state, params, best, finish_key), (extra if self.shift_elites else None)

    def _sample(self, key: mx.array, params, envs: int) -> mx.array:
        """A population ``[E, N, H, A]``."""
        return self.distribution.sample(key, params, self.num_samples)

    def _update(self, params, samples: mx.array, returns: mx.array):
        """New distribution parameters and the sequences ``[E, K, H, A]`` (or ``None``) to carry on."""
        raise NotImplementedError

    def _finish(self, state: mx.array, params, best: Plan, key: mx.array) -> Plan:
        """The plan to return: by default the best sequence evaluated."""
        return best

    def _evaluate_plan(self, state: mx.array, actions: mx.array) -> Plan:
        """``actions [E, H, A]`` with their returns."""
        return Plan(actions, self.evaluate(state, actions[:, None])[:, 0])

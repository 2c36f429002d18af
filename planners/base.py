"""Machinery every planner shares: the :class:`Plan`, option checks, warm start and shift, NaN fallback."""

from __future__ import annotations

import numbers
import warnings
from typing import NamedTuple, Optional

import mlx.core as mx
import numpy as np

from .distributions import make_distribution
from .dynamics import Dynamics, TerminalValue, make_evaluate

__all__ = ["Plan", "Planner", "shift", "WarmStart", "env_key", "split_keys", "PerEnvDraws"]


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


def env_key(seed: int, env_id: int) -> np.ndarray:
    """The first random key ``[2]`` uint32 of environment ``env_id``: a function of ``(seed, env_id)`` only."""
    return np.random.SeedSequence([int(seed), int(env_id)]).generate_state(2, dtype=np.uint32)


def split_keys(keys: mx.array, num: int) -> list:
    """Split per-environment keys ``[E, 2]`` into ``num`` arrays of keys ``[E, 2]``, row by row."""
    parts = mx.vmap(lambda k: mx.random.split(k, num))(keys)  # [E, num, 2]
    return [parts[:, i] for i in range(num)]


class PerEnvDraws:
    """A distribution whose draws take one key per environment (``[E, 2]``), generated per row.

    ``sample`` and ``random`` run the wrapped distribution's own code for one environment under
    ``mx.vmap`` over the keys (and the parameters), so an environment's draws depend on its own key
    only, never on which other environments share the batch. A single key (``[2]``) is passed
    through unchanged. Every other attribute is the wrapped distribution's.
    """

    def __init__(self, distribution):
        self.wrapped = distribution

    def sample(self, key: mx.array, params, num: int) -> mx.array:
        if key.ndim == 1:
            return self.wrapped.sample(key, params, num)
        one = lambda k, *p: self.wrapped.sample(k, tuple(x[None] for x in p), num)[0]  # noqa: E731
        return mx.vmap(one)(key, *params)

    def random(self, key: mx.array, envs: int, num: int, horizon: int) -> mx.array:
        if key.ndim == 1:
            return self.wrapped.random(key, envs, num, horizon)
        if key.shape[0] != envs:
            raise ValueError(f"got {key.shape[0]} keys for {envs} environments")
        return mx.vmap(lambda k: self.wrapped.random(k, 1, num, horizon)[0])(key)

    def __getattr__(self, name):
        return getattr(self.wrapped, name)

    def __repr__(self):
        return f"PerEnvDraws({self.wrapped!r})"


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


_DISTRIBUTION_RANGES = {  # option: (low, high, low end open)
    "init_std": (0.0, float("inf"), True),
    "spread": (0.0, 1.0, False),
    "noise_beta": (0.0, float("inf"), False),
    "colored_fraction": (0.0, 1.0, False),
}


class Planner:
    """Model-predictive control over any batched dynamics; subclasses write only the search.

    Args:
        dynamics: ``(state [B, S], action [B, A]) -> (next_state [B, S], reward [B])`` (:class:`Dynamics`).
        action_space: ``Discrete(n)`` or ``Box(low, high)``.
        horizon: plan length ``H``.
        num_samples: sequences ``N`` imagined per environment and iteration.
        iterations: search iterations per call.
        seed: seed of the planners' random keys. Every environment has its own key stream, started
            from ``(seed, env id)`` and split once per call, so the same seed and env ids give the
            same actions whatever other environments are planned in the same batch.
        discount: weight ``discount**t`` of the reward at step ``t``. Default: ``1.0``.
        terminal_value: optional ``V(state [B, S]) -> [B]`` added after the last step.
        streams: CPU streams the imagined rows are split over (see :func:`~planners.dynamics.rollout`);
            ``1`` for dynamics whose rows are not independent (batch statistics). Default ``None``:
            the dynamics' ``rollout_streams`` attribute, else ``$WMPLAN_CPU_STREAMS``, else the
            CPU cores (1 on a GPU).
        propagation: optional :class:`~planners.propagation.Propagation`: ``dynamics`` is then an
            ensemble (:class:`~planners.propagation.EnsembleDynamics`) and every sequence is imagined
            by particles whose returns are aggregated (the search still sees returns ``[E, N]``); the
            particles' draws come from the environments' key streams. Gradient planners follow
            ``mx.grad`` of the members' mean and select with the propagated returns.
        **distribution_options: for :func:`~planners.distributions.make_distribution` (subclasses
            name the ones they use: ``init_std``, ``spread``, ``noise_beta``, ``colored_fraction``).

    Use :meth:`act` for one MPC step (warm-started from the previous call's shifted plan),
    :meth:`optimize` for the whole :class:`Plan`, :meth:`reset` to forget the warm start. Both take
    optional ``env_ids`` ``[E]``: distinct global indices of the environments (default
    ``0 .. E-1``); a share of the episodes planned elsewhere (another process) with their global ids
    gets exactly the noise, and so the actions, it gets in one batch with all of them.
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
        streams: Optional[int] = None,
        propagation=None,
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
        for name, value in distribution_options.items():
            if name not in _DISTRIBUTION_RANGES:
                raise TypeError(f"{type(self).__name__}() got an unexpected keyword argument {name!r}")
            low, high, low_open = _DISTRIBUTION_RANGES[name]
            distribution_options[name] = check_float(name, value, low, high, low_open=low_open)
        self.distribution = PerEnvDraws(make_distribution(action_space, horizon=self.horizon, **distribution_options))
        self.streams = None if streams is None else check_int("streams", streams)
        if propagation is not None and not callable(getattr(propagation, "make_evaluate", None)):
            raise ValueError(f"propagation must be a planners.Propagation or None, got {propagation!r}")
        self.propagation = propagation
        if propagation is None:
            self.evaluate = make_evaluate(dynamics, discount=self.discount, terminal_value=terminal_value, streams=self.streams)
        else:
            self.evaluate = propagation.make_evaluate(dynamics, discount=self.discount, terminal_value=terminal_value, streams=self.streams)
        self._streams: dict = {}  # env id -> its next key [2] (uint32), for ids not in the last call
        self._keys: Optional[mx.array] = None  # next keys [E, 2] of the last call's environments
        self._key_ids: Optional[np.ndarray] = None  # their ids [E]
        self._warm: Optional[WarmStart] = None
        self._warm_ids: Optional[np.ndarray] = None

    @property
    def warm_start(self) -> Optional[WarmStart]:
        """The shifted previous plan the next call starts from, or ``None`` after :meth:`reset`."""
        return self._warm

    def reset(self) -> None:
        """Forget the warm start (call it when a new episode begins); the key streams go on."""
        self._warm = None
        self._warm_ids = None

    def act(self, state, env_ids=None) -> mx.array:
        """One MPC step for ``E`` environments: ``state [E, S] -> action [E, A]`` (``env_ids``: see :meth:`optimize`)."""
        return self.optimize(state, env_ids).actions[:, 0]

    def optimize(self, state, env_ids=None) -> Plan:
        """Plan from ``state [E, S]``: a :class:`Plan` with ``actions [E, H, A]`` and ``expected_return [E]``.

        ``env_ids``: ``[E]`` distinct non-negative integers naming the environments (default
        ``0 .. E-1``). Each one's random draws come from its own key stream; the warm start is
        used only when the ids are those of the previous call.
        """
        state = mx.array(state, dtype=mx.float32)
        if state.ndim != 2:
            raise ValueError(f"state must be [E, S], got shape {tuple(state.shape)}")
        ids = self._check_ids(env_ids, state.shape[0])
        warm = self._warm if self._warm is not None and np.array_equal(self._warm_ids, ids) else None
        pairs = mx.vmap(lambda k: mx.random.split(k))(self._stream_keys(ids))  # [E, 2, 2]
        self._keys, self._key_ids, key = pairs[:, 0], ids, pairs[:, 1]
        if self.propagation is not None:
            key = self.evaluate.start(key)  # a share of each environment's key for its particles
        plan, elites = self._search(state, warm, key)
        plan = self._fallback(plan, warm, state.shape[0])
        self._warm = WarmStart(shift(plan.actions), None if elites is None else shift(elites))
        self._warm_ids = ids
        mx.eval(plan, self._warm, self._keys)
        return plan

    @staticmethod
    def _check_ids(env_ids, envs: int) -> np.ndarray:
        if env_ids is None:
            return np.arange(envs, dtype=np.int64)
        ids = np.asarray(env_ids)
        if ids.shape != (envs,) or (envs and (ids.dtype.kind not in "iu" or ids.min() < 0)):
            raise ValueError(f"env_ids must be {envs} non-negative integers (one per state), got {env_ids!r}")
        ids = ids.astype(np.int64)
        if len(np.unique(ids)) != envs:
            raise ValueError(f"env_ids must be distinct, got {env_ids!r}")
        return ids

    def _stream_keys(self, ids: np.ndarray) -> mx.array:
        """The next keys ``[E, 2]`` of environments ``ids``: continued, or started from ``(seed, id)``."""
        if self._keys is not None and np.array_equal(ids, self._key_ids):
            return self._keys
        if self._keys is not None:  # other environments now: keep the last ones' streams for later
            self._streams.update(zip(self._key_ids.tolist(), np.array(self._keys)))
        rows = [self._streams.get(i) for i in ids.tolist()]
        rows = [env_key(self.seed, i) if row is None else row for i, row in zip(ids.tolist(), rows)]
        return mx.array(np.stack(rows).astype(np.uint32)) if rows else mx.zeros((0, 2), dtype=mx.uint32)

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
        actions = mx.where(failed[:, None, None], self._first_guess(envs, warm).actions, plan.actions)
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
        *step_keys, finish_key = split_keys(key, self.iterations + 1)
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

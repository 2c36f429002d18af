"""Machinery every planner shares: the pure core (:meth:`Planner.init`, :meth:`Planner.step`), the
:class:`Plan`, option checks, warm start and shift, the NaN fallback, and the whole-call compile."""

from __future__ import annotations

import numbers
import time
import warnings
from typing import Callable, NamedTuple, Optional

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from .checks import check_float, check_int
from .deadline import Deadline, SearchInfo, check_time_budget
from .distributions import make_distribution
from .dynamics import (
    DecodedActions, Dynamics, Evaluate, TerminalValue, Termination, check_options, check_sizes, make_evaluate,
)
from .runtime.memory import check_fits
from .sequence import SequenceEvaluator, check_start, refuse_step_options
from .spaces import Box, Discrete
from .runtime.streams import compile_works

__all__ = ["Plan", "Planner", "PlannerState", "SearchCall", "shift", "WarmStart", "env_key", "split_keys", "PerEnvDraws"]


MAX_ENV_ID = np.iinfo(np.int64).max
"""The largest environment id (ids are held as int64)."""


class Plan(NamedTuple):
    """The result of :meth:`Planner.step` and :meth:`Planner.optimize`.

    Attributes:
        actions: planned action sequences ``[E, H, A]`` in the form the dynamics receive: one-hot for
            ``Discrete`` (inside a search always), the values ``[E, H, D]`` for ``Discrete(values=..., one_hot=False)``.
        expected_return: their imagined returns ``[E]`` (``-inf`` where no finite return was found).
    """

    actions: mx.array
    expected_return: mx.array


class WarmStart(NamedTuple):
    """What one call hands to the next: the shifted plan ``[E, H, A]`` and, optionally, shifted
    elite sequences ``[E, K, H, A]`` (iCEM), as the search holds them (one-hot for ``Discrete``)."""

    actions: mx.array
    elites: Optional[mx.array] = None


class PlannerState(NamedTuple):
    """What a planner carries from one call to the next for ``E`` environments, one row each.

    Attributes:
        keys: the next random key ``[E, 2]`` (uint32) of each environment's stream.
        ids: the environments' ids ``[E]`` (int64 numpy): global indices, distinct.
        warm: the shifted previous plan (and elites) to start from, or ``None``.

    A value, not a handle: :meth:`Planner.step` returns a new one. Rows
    can be selected (:meth:`rows`) and joined (:meth:`concatenate`), so a controller can be sharded
    over processes and put back together, and saved with :meth:`to_arrays` / :meth:`from_arrays`.
    """

    keys: mx.array
    ids: np.ndarray
    warm: Optional[WarmStart] = None

    @property
    def envs(self) -> int:
        """``E``, the number of environments (rows)."""
        return len(self.ids)

    def rows(self, index) -> "PlannerState":
        """The state of the environments at ``index`` (an int array, a list or a slice) only."""
        index = np.arange(len(self.ids))[index]
        take = mx.array(index.astype(np.int64))
        warm = None
        if self.warm is not None:
            elites = None if self.warm.elites is None else self.warm.elites[take]
            warm = WarmStart(self.warm.actions[take], elites)
        return PlannerState(self.keys[take], self.ids[index], warm)

    @staticmethod
    def concatenate(states) -> "PlannerState":
        """One state holding the rows of ``states`` in order (warm starts kept only if all have them)."""
        states = list(states)
        if not states:
            raise ValueError("concatenate needs at least one PlannerState")
        ids = np.concatenate([s.ids for s in states])
        if len(np.unique(ids)) != len(ids):
            raise ValueError("cannot concatenate planner states that share environment ids")
        warm = None
        if all(s.warm is not None for s in states):
            elites = [s.warm.elites for s in states]
            warm = WarmStart(
                mx.concatenate([s.warm.actions for s in states]),
                None if any(e is None for e in elites) else mx.concatenate(elites),
            )
        return PlannerState(mx.concatenate([s.keys for s in states]), ids, warm)

    def without_warm_start(self) -> "PlannerState":
        """The same key streams, no warm start (a new episode)."""
        return self._replace(warm=None)

    def to_arrays(self) -> dict:
        """A dict of MLX arrays (for ``mx.savez``); :meth:`from_arrays` reads it back."""
        arrays = {"keys": self.keys, "ids": mx.array(self.ids)}
        if self.warm is not None:
            arrays["warm_actions"] = self.warm.actions
            if self.warm.elites is not None:
                arrays["warm_elites"] = self.warm.elites
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict) -> "PlannerState":
        """The state :meth:`to_arrays` wrote (e.g. ``mx.load`` of a ``.npz``)."""
        try:
            keys, ids = mx.array(arrays["keys"]).astype(mx.uint32), np.array(arrays["ids"]).astype(np.int64)
        except KeyError as err:
            raise ValueError(f"not a planner state: no {err.args[0]!r} array") from None
        if keys.shape != (len(ids), 2):
            raise ValueError(f"not a planner state: keys of shape {tuple(keys.shape)} for {len(ids)} ids")
        warm = None
        if "warm_actions" in arrays:
            warm = WarmStart(mx.array(arrays["warm_actions"]), mx.array(arrays["warm_elites"]) if "warm_elites" in arrays else None)
        return cls(keys, ids, warm)


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


class SearchCall(NamedTuple):
    """What one planning call's search works with.

    Attributes:
        evaluate: ``evaluate(state [E, S], actions [E, N, H, A]) -> returns [E, N]`` for this call
            (with an ensemble, bound to the call's particle keys).
        sync: ``sync(*arrays)`` between a gradient planner's Adam steps: ``mx.eval`` on the eager
            path (the backward graphs would pile up otherwise), nothing when the whole call is
            compiled into one program. Population searches build one graph and never call it
            (an eval per iteration measured no faster, with the same peak memory).
        deadline: the call's :class:`~planners.deadline.Deadline` when it has a time budget: the
            search asks ``deadline.next_fits(*arrays)`` after each iteration and stops when it says
            no; ``None`` (no budget): every iteration runs and nothing is evaluated in between.
    """

    evaluate: Evaluate
    sync: Callable
    deadline: Optional[Deadline] = None


def next_fits(call: SearchCall, *arrays) -> bool:
    """Whether the search may run another iteration: always without a deadline (nothing is
    evaluated), else :meth:`~planners.deadline.Deadline.next_fits` of the arrays the last one made."""
    return call.deadline is None or call.deadline.next_fits(*arrays)


def _no_sync(*arrays) -> None:
    """Between iterations of a compiled call: nothing (the search stays one graph)."""


POPULATION_COPIES = 4
"""float32 copies of a population ``[E, N, H, A]`` alive at once in a search step (measured: about 2.7)."""
ROW_BYTES = 512
"""Bytes per imagined row besides the populations: states, returns, the dynamics' temporaries
(measured: about 370 with wmplan's folded world model)."""
GRADIENT_STEP_BYTES = 1280
"""Bytes per row and step a gradient planner keeps for the backward pass (measured: about 1190)."""

NOISE_BETA_MAX = 10.0
"""The largest colored-noise exponent taken: ``1/f**10`` noise is already nearly constant along the
horizon, and the basis overflows (NaN samples) for exponents in the hundreds."""

_DISTRIBUTION_RANGES = {  # option: (low, high, low end open)
    "init_std": (0.0, float("inf"), True),
    "spread": (0.0, 1.0, False),
    "noise_beta": (0.0, NOISE_BETA_MAX, False),
    "colored_fraction": (0.0, 1.0, False),
}


class Planner:
    """Model-predictive control over any batched dynamics; subclasses write only the search.

    Args:
        dynamics: ``(state [B, S], action [B, A]) -> (next_state [B, S], reward [B])`` (:class:`Dynamics`),
            or a :class:`~planners.sequence.SequenceEvaluator` (a black-box simulator scoring whole
            sequences; not for the gradient planners, and without the step dynamics' options
            ``discount``, ``terminal_value``, ``termination``, ``propagation``, ``streams`` and
            ``compile=True``): the start given to :meth:`act`, :meth:`optimize` and :meth:`step` is
            then handed to it untouched (any array ``[E, ...]``) instead of read as ``[E, S]`` float32.
        action_space: ``Discrete(n)`` or ``Box(low, high, shape=(A,))`` (a ``Box`` of two scalar
            bounds and no shape takes ``A`` from the dynamics' declared ``action_dim``). With
            ``Discrete(values=..., one_hot=False)`` the dynamics receive the actions' values ``[B, D]``
            and :meth:`act` / :meth:`optimize` return them (the search itself stays one-hot).
        horizon: plan length ``H``.
        samples: sequences ``N`` imagined per environment and iteration (``num_samples``: its old
            name, still accepted with a ``DeprecationWarning``).
        iterations: search iterations per call.
        seed: seed of the planners' random keys. Every environment has its own key stream, started
            from ``(seed, env id)`` and split once per call, so the same seed and env ids give the
            same actions whatever other environments are planned in the same batch.
        discount: weight ``discount**t`` of the reward at step ``t``. Default: ``1.0``.
        terminal_value: optional ``V(state [B, S]) -> [B]`` added after the last step.
        termination: optional ``done(next_state [B, S]) -> [B]`` bool: imagined episodes end there
            (that step's reward counts, later ones and the terminal value do not; see
            :func:`~planners.dynamics.rollout`).
        streams: CPU streams the imagined rows are split over (see :func:`~planners.dynamics.rollout`);
            ``1`` for dynamics whose rows are not independent (batch statistics). Default ``None``:
            the dynamics' ``rollout_streams`` attribute, else ``$WMPLAN_CPU_STREAMS``, else the
            CPU cores (1 on a GPU).
        propagation: optional :class:`~planners.propagation.Propagation`: ``dynamics`` is then an
            ensemble (:class:`~planners.propagation.EnsembleDynamics`) and every sequence is imagined
            by particles whose returns are aggregated (the search still sees returns ``[E, N]``); the
            particles' draws come from the environments' key streams. Gradient planners follow
            ``mx.grad`` of the members' mean and select with the propagated returns.
        compile: run each planning call as one ``mx.compile``-d program (``True``), the plain way
            (``False``), or as measured fastest for this planner (``None``, the class's
            :attr:`compile_by_default`). Where MLX cannot compile here
            (:func:`~planners.runtime.streams.compile_works`), the plain way. The numbers measured
            bit-identical here (CEM, iCEM, MPPI, random shooting, gradient, ensembles); a compiled
            program may fuse element-wise operations, so elsewhere they may differ in the last bits.
            Dynamics that are an ``nn.Module`` are read afresh every call (their weights may
            change); arrays held by other dynamics are frozen into the program at its first call.
        time_budget_ms: plan within this many milliseconds per call: the search evaluates each
            iteration as it ends and stops when the next one, estimated as its slowest so far,
            would overrun the budget (at least one iteration runs, at most ``iterations``), then
            returns its best plan so far; :attr:`last_search` says how many ran. Such calls run
            eagerly (``compile`` applies to calls without a budget). ``act``, ``optimize`` and
            ``step`` take a ``time_budget_ms=`` of their own for one call. Default: ``None``, no
            budget: every iteration runs, with no host sync inside the search.
        **distribution_options: for :func:`~planners.distributions.make_distribution` (subclasses
            name the ones they use: ``init_std``, ``spread``, ``noise_beta``, ``colored_fraction``).

    The pure core: :meth:`init` ``(env_ids) -> PlannerState`` and :meth:`step` ``(state,
    planner_state) -> (Plan, PlannerState)``, which leaves the planner unchanged. On top, the
    stateful :meth:`act` (one MPC step, warm-started from the previous call's shifted plan) and
    :meth:`optimize` (the whole :class:`Plan`) keep a :class:`PlannerState` in the planner;
    :meth:`reset` forgets the warm start. Both take optional ``env_ids`` ``[E]``: distinct global
    indices of the environments (default ``0 .. E-1``); a share of the episodes planned elsewhere
    (another process) with their global ids gets exactly the noise, and so the actions, it gets in
    one batch with all of them.

    After each call, :attr:`last_search` (a :class:`~planners.deadline.SearchInfo`) says how many
    iterations the search ran and how long the call took.
    """

    differentiates = False
    """Whether the search follows gradients through the dynamics (then it needs step dynamics)."""

    iterations_update_populations = True
    """Whether ``iterations`` counts updates of a sampled population (CEM, MPPI, ...), so that an
    environment's default number of them applies; ``False`` where it counts something else
    (:class:`~planners.GradientPlanner`'s Adam steps)."""

    compile_by_default = False
    """Whether ``compile=None`` compiles each call. Off for every planner, as measured on the Linux
    CPU backend (speed_compare's MLP, CEM and MPPI, three interleaved runs on 2 shared cores): once
    built, a compiled call took 0.74-0.97x the time at (N, H) = (1000, 15) and 0.92-1.13x at
    (16384, 30), but building it costs a C++ kernel compile on the first call of a process (~18 s)
    and a trace per new planner and warm-start shape (0.1-2.5 s). ``compile=True`` pays off for
    long control loops at small sizes."""

    def __init__(
        self,
        dynamics: Dynamics,
        action_space,
        *,
        horizon: int,
        iterations: int,
        samples: Optional[int] = None,
        num_samples: Optional[int] = None,
        seed: int = 0,
        discount: float = 1.0,
        terminal_value: Optional[TerminalValue] = None,
        streams: Optional[int] = None,
        termination: Optional[Termination] = None,
        propagation=None,
        compile: Optional[bool] = None,
        time_budget_ms: Optional[float] = None,
        **distribution_options,
    ):
        self.discount, self.streams = check_options(dynamics, discount, terminal_value, streams, termination)
        if isinstance(dynamics, SequenceEvaluator):
            refuse_step_options(
                type(self).__name__, differentiates=self.differentiates, discount=self.discount, terminal_value=terminal_value,
                termination=termination, streams=streams, propagation=propagation, compile=compile,
            )
        self.dynamics = dynamics
        self.action_space = action_space = sized_space(action_space, dynamics)
        self.search_dynamics = search_dynamics(dynamics, action_space)
        self.horizon = check_int("horizon", horizon)
        self.samples = population_size(samples, num_samples)
        self.iterations = check_int("iterations", iterations)
        self.seed = check_int("seed", seed, minimum=0)
        self.terminal_value = terminal_value
        self.termination = termination
        for name, value in distribution_options.items():
            if name not in _DISTRIBUTION_RANGES:
                raise TypeError(f"{type(self).__name__}() got an unexpected keyword argument {name!r}")
            low, high, low_open = _DISTRIBUTION_RANGES[name]
            distribution_options[name] = check_float(name, value, low, high, low_open=low_open)
        self.distribution = PerEnvDraws(make_distribution(action_space, horizon=self.horizon, **distribution_options))
        check_sizes(dynamics, action_size=action_space.dynamics_dim, source=f"action_space {action_space!r}")
        if propagation is not None and not callable(getattr(propagation, "make_evaluate", None)):
            raise ValueError(f"propagation must be a planners.Propagation or None, got {propagation!r}")
        self.propagation = propagation
        if isinstance(dynamics, SequenceEvaluator):
            self.evaluate = self.search_dynamics  # already the objective: checked returns [E, N]
        else:
            build = make_evaluate if propagation is None else propagation.make_evaluate
            self.evaluate = build(
                self.search_dynamics, discount=self.discount, terminal_value=terminal_value, streams=self.streams,
                termination=termination,
            )
        if compile not in (None, True, False):
            raise ValueError(f"compile must be True, False or None, got {compile!r}")
        self.compile = compile
        self.time_budget_ms = check_time_budget(time_budget_ms)
        self.last_search: Optional[SearchInfo] = None  # what the last call's search did (a record, not state)
        self._compiled: dict = {}  # (warm start?, elites?) -> the mx.compile-d call (a cache)
        self._state: Optional[PlannerState] = None  # the last call's environments (stateful use)
        self._parked: dict = {}  # env id -> its next key [2] (uint32), for ids not in the last call
        self._memory_checked: Optional[int] = None  # the number of environments last checked

    @property
    def num_samples(self) -> int:
        """The population size :attr:`samples` (its old name)."""
        return self.samples

    @property
    def warm_start(self) -> Optional[WarmStart]:
        """The shifted previous plan the next call starts from, or ``None`` after :meth:`reset`."""
        return None if self._state is None else self._state.warm

    @property
    def state(self) -> Optional[PlannerState]:
        """The :class:`PlannerState` the stateful :meth:`act` / :meth:`optimize` carry (``None`` before the first call)."""
        return self._state

    def reset(self) -> None:
        """Forget the warm start (call it when a new episode begins); the key streams go on."""
        if self._state is not None:
            self._state = self._state.without_warm_start()

    def init(self, env_ids) -> PlannerState:
        """A fresh :class:`PlannerState` for environments ``env_ids`` ``[E]``: keys from ``(seed, id)``, no warm start."""
        ids = self._check_ids(env_ids, len(np.atleast_1d(np.asarray(env_ids))))
        keys = [env_key(self.seed, i) for i in ids.tolist()]
        return PlannerState(mx.array(np.stack(keys)) if keys else mx.zeros((0, 2), dtype=mx.uint32), ids)

    init_state = init  # its former name

    def step(self, state, planner_state: PlannerState, *, time_budget_ms: Optional[float] = None) -> tuple[Plan, PlannerState]:
        """Plan from ``state [E, S]`` and ``planner_state`` (one row each; see :meth:`init`): ``(Plan, next PlannerState)``.

        Pure: the planner is left unchanged (but for the record :attr:`last_search`), so the same
        arguments give the same result. The search builds one graph (no host synchronisation
        inside it, with :attr:`compile` one compiled program); it is evaluated once at the end, and
        only then is the fallback warned about: where no finite imagined return was found, the
        plan is the warm start (or the initial mode) with return ``-inf``, and a ``RuntimeWarning``
        says for how many. ``time_budget_ms``: this call's budget (default: the planner's
        :attr:`time_budget_ms`); with one, each iteration is evaluated as it ends, and the search
        stops when the next would overrun it.
        """
        budget = self.time_budget_ms if time_budget_ms is None else check_time_budget(time_budget_ms)
        started = time.perf_counter()
        state = self._start(state)
        envs = state.shape[0]
        self._check_state(planner_state, envs)
        if not self._sequences:
            check_sizes(self.dynamics, state_size=state.shape[1])
        if envs == 0:  # nothing to plan for: no search, no change to the warm start or the keys
            return Plan(mx.zeros((0, self.horizon, self.action_space.dynamics_dim)), mx.zeros((0,))), planner_state
        if envs != self._memory_checked:  # a cache: the check reads the machine's free memory
            self.check_memory(envs)
            self._memory_checked = envs
        deadline = None if budget is None else Deadline(budget)
        plan, after, failed = self._call(state, planner_state, deadline)
        plan = plan._replace(actions=self.action_space.to_dynamics(plan.actions))  # what the dynamics receive
        mx.eval(plan, after.keys, after.warm, failed)
        iterations = self.planned_iterations() if deadline is None else deadline.iterations
        self.last_search = SearchInfo(iterations, time.perf_counter() - started, budget)
        count = int(np.sum(np.array(failed)))
        if count:
            warnings.warn(
                f"planner found no finite imagined return for {count} of {envs} environment(s); keeping the previous plan",
                RuntimeWarning,
                stacklevel=2,
            )
        return plan, after

    def act(self, state, env_ids=None, *, time_budget_ms: Optional[float] = None) -> mx.array:
        """One MPC step for ``E`` environments: ``state [E, S] -> action [E, A]`` (``env_ids``, ``time_budget_ms``: see :meth:`optimize`)."""
        return self.optimize(state, env_ids, time_budget_ms=time_budget_ms).actions[:, 0]

    def optimize(self, state, env_ids=None, *, planner_state=None, time_budget_ms: Optional[float] = None) -> Plan:
        """Plan from ``state [E, S]``: a :class:`Plan` with ``actions [E, H, A]`` and ``expected_return [E]``.

        ``env_ids``: ``[E]`` distinct integers in ``[0, 2**63 - 1]`` naming the environments (default
        ``0 .. E-1``). Each one's random draws come from its own key stream; the warm start is
        used only when the ids are those of the previous call. The planner keeps the next
        :class:`PlannerState` (:attr:`state`); :meth:`step` is the pure form.
        ``time_budget_ms``: this call's time budget (default: the planner's; see :class:`Planner`).
        """
        if planner_state is not None:
            raise TypeError("optimize() no longer takes planner_state=; use step(state, planner_state) -> (Plan, PlannerState)")
        state = self._start(state)
        ids = self._check_ids(env_ids, state.shape[0])
        plan, self._state = self.step(state, self._continued(ids), time_budget_ms=time_budget_ms)
        return plan

    def planned_iterations(self) -> int:
        """Iterations a call runs without a time budget (:attr:`iterations`)."""
        return self.iterations

    def _call(self, state: mx.array, planner_state: PlannerState, deadline: Optional[Deadline] = None) -> tuple:
        """The search as one graph: ``(Plan, next PlannerState, failed [E] bool)``, compiled where :meth:`compiles`
        (and no ``deadline``: a search that may stop early runs eagerly, iteration by iteration)."""
        warm = planner_state.warm
        if deadline is not None or not self.compiles():
            plan, keys, warm, failed = self._graph(state, planner_state.keys, warm, mx.eval, deadline)
            return plan, PlannerState(keys, planner_state.ids, warm), failed
        shape = (warm is not None, warm is not None and warm.elites is not None)
        if shape not in self._compiled:
            weights = self.dynamics.state if isinstance(self.dynamics, nn.Module) else None  # read at every call
            self._compiled[shape] = mx.compile(lambda *arrays: self._flat_graph(shape, *arrays), inputs=weights)
        arrays = [state, planner_state.keys] + ([] if warm is None else [warm.actions]) + ([warm.elites] if shape[1] else [])
        out = self._compiled[shape](*arrays)
        elites = out[4] if len(out) == 6 else None
        return Plan(out[0], out[1]), PlannerState(out[2], planner_state.ids, WarmStart(out[3], elites)), out[-1]

    def compiles(self) -> bool:
        """Whether :meth:`step` runs each call as one ``mx.compile``-d program (see the ``compile`` option)."""
        wanted = type(self).compile_by_default if self.compile is None else self.compile
        return wanted and not self._sequences and compile_works()

    @property
    def _sequences(self) -> bool:
        """Whether the dynamics are a :class:`~planners.sequence.SequenceEvaluator`."""
        return isinstance(self.dynamics, SequenceEvaluator)

    def _start(self, state):
        """The start states as the dynamics take them: float32 ``[E, S]`` for step dynamics, untouched for a sequence evaluator."""
        return check_start(state) if self._sequences else _states(state)

    def _flat_graph(self, shape: tuple, state, keys, *warm_arrays) -> list:
        """:meth:`_graph` on and to flat lists of arrays (what ``mx.compile`` traces)."""
        warm = WarmStart(warm_arrays[0], warm_arrays[1] if shape[1] else None) if shape[0] else None
        plan, keys, warm, failed = self._graph(state, keys, warm, _no_sync)
        elites = [] if warm.elites is None else [warm.elites]
        return [plan.actions, plan.expected_return, keys, warm.actions, *elites, failed]

    def _graph(self, state: mx.array, keys: mx.array, warm: Optional[WarmStart], sync: Callable, deadline=None) -> tuple:
        """One planning call, pure: ``(Plan, next keys [E, 2], next WarmStart, failed [E] bool)``."""
        envs = state.shape[0]
        pairs = mx.vmap(lambda k: mx.random.split(k))(keys)  # [E, 2, 2]
        key = pairs[:, 1]
        evaluate = self.evaluate
        if self.propagation is not None:
            evaluate, key = self.evaluate.bind(key)  # a share of each environment's key for its particles
        plan, elites = self._search(state, warm, key, SearchCall(evaluate, sync, deadline))
        failed = ~mx.isfinite(plan.expected_return)  # keep the previous plan there (warned about after the call)
        actions = mx.where(failed[:, None, None], self._first_guess(envs, warm).actions, plan.actions)
        plan = Plan(actions, mx.where(failed, -mx.inf, plan.expected_return))
        warm = WarmStart(shift(plan.actions), None if elites is None else shift(elites))
        return plan, pairs[:, 0], warm, failed

    def _check_state(self, planner_state, envs: int) -> None:
        if not isinstance(planner_state, PlannerState):
            raise ValueError(f"planner_state must be a PlannerState (see Planner.init), got {type(planner_state).__name__}")
        if planner_state.envs != envs or tuple(planner_state.keys.shape) != (envs, 2):
            raise ValueError(f"planner_state holds {planner_state.envs} environment(s), the state {envs}")
        warm = planner_state.warm
        if warm is not None and tuple(warm.actions.shape) != (envs, self.horizon, self.action_space.dim):
            raise ValueError(
                f"planner_state's warm start has shape {tuple(warm.actions.shape)}, "
                f"expected {(envs, self.horizon, self.action_space.dim)}"
            )

    def memory_estimate(self, envs: int) -> int:
        """Rough peak bytes of one :meth:`optimize` call for ``envs`` environments (:mod:`planners.runtime.memory`):
        the populations, each imagined row (with ``propagation``, each particle's row on each member that steps
        it) and, for gradient planners, every step kept for the backward pass."""
        population = 4 * POPULATION_COPIES * self.horizon * self.action_space.dim
        if self._sequences:  # the evaluator's own memory: what it declares, and the actions it is handed
            return envs * self.samples * (population + self.dynamics.memory_per_sequence(self.horizon, self.action_space.dim))
        imagined = self._imagined_rows(envs, self.samples) * ROW_BYTES
        differentiated = self._gradient_rows(envs) // max(envs, 1)  # sequences per environment
        kept = self._imagined_rows(envs, differentiated) * self.horizon * GRADIENT_STEP_BYTES
        return envs * self.samples * population + imagined + kept

    def _particles_named(self) -> str:
        """`` x P particles`` with ``propagation``, else nothing (for messages)."""
        if self.propagation is None:
            return ""
        return f" x {self.propagation.particle_count(self.evaluate.ensemble.ensemble_size)} particles"

    def _imagined_rows(self, envs: int, sequences: int) -> int:
        """Rows the dynamics step when ``envs`` environments imagine ``sequences`` sequences each."""
        if self.propagation is None:
            return envs * sequences
        return envs * self.evaluate.member_rows(sequences)

    def check_memory(self, envs: int) -> None:
        """:class:`~planners.runtime.memory.MemoryBudgetError` when planning for ``envs`` environments would need
        more memory than is available (:meth:`optimize` checks this itself before its first search)."""
        check_fits(
            self.memory_estimate(envs),
            f"planning {envs} environment(s) x {self.samples} samples x horizon {self.horizon}{self._particles_named()}",
        )

    def _gradient_rows(self, envs: int) -> int:
        """Sequences differentiated at once (``0``: the planner takes no gradients)."""
        return 0

    @staticmethod
    def _check_ids(env_ids, envs: int) -> np.ndarray:
        if env_ids is None:
            return np.arange(envs, dtype=np.int64)
        ids = np.asarray(env_ids)
        if ids.shape != (envs,) or (envs and (ids.dtype.kind not in "iu" or ids.min() < 0 or ids.max() > MAX_ENV_ID)):
            raise ValueError(
                f"env_ids must be {envs} integers in [0, 2**63 - 1] (one per state), got {env_ids!r}"
            )
        ids = ids.astype(np.int64)
        if len(np.unique(ids)) != envs:
            raise ValueError(f"env_ids must be distinct, got {env_ids!r}")
        return ids

    def _continued(self, ids: np.ndarray) -> PlannerState:
        """The stateful planner's state for environments ``ids``: the last call's if the ids are the
        same, else their parked (or fresh) key streams and no warm start."""
        if self._state is not None and np.array_equal(ids, self._state.ids):
            return self._state
        if self._state is not None:  # other environments now: park the last ones' streams for later
            self._parked.update(zip(self._state.ids.tolist(), np.array(self._state.keys)))
        return PlannerState(self._fresh_keys(ids), ids)

    def _fresh_keys(self, ids: np.ndarray) -> mx.array:
        """Keys ``[E, 2]`` of environments ``ids``: parked ones continued, others started from ``(seed, id)``."""
        rows = [self._parked.get(i) for i in ids.tolist()]
        rows = [env_key(self.seed, i) if row is None else row for i, row in zip(ids.tolist(), rows)]
        return mx.array(np.stack(rows).astype(np.uint32)) if rows else mx.zeros((0, 2), dtype=mx.uint32)

    def _search(self, state: mx.array, warm: Optional[WarmStart], key: mx.array, call: SearchCall):
        """Return ``(Plan, elites [E, K, H, A] or None)`` for ``state [E, S]``; subclasses implement it.

        Build a graph only: no ``.item()``, numpy conversion or ``mx.eval`` (``call.sync`` between
        gradient steps and :func:`next_fits` between iterations are the places that may evaluate)."""
        raise NotImplementedError

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
            f"{type(self).__name__}(horizon={self.horizon}, samples={self.samples}, "
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

    def _search(self, state, warm, key, call):
        envs = state.shape[0]
        params = self._initial(envs, warm)
        best = self._first_guess(envs, warm)
        extra = candidates(warm)
        *step_keys, finish_key = split_keys(key, self.iterations + 1)
        for step_key in step_keys:
            samples = inject(self._sample(step_key, params, envs), extra)
            returns = call.evaluate(state, samples)
            best = improve(best, samples, returns)
            params, extra = self._update(params, samples, returns)
            if not next_fits(call, best, params, extra):
                break
        return self._finish(state, params, best, finish_key, call), (extra if self.shift_elites else None)

    def _sample(self, key: mx.array, params, envs: int) -> mx.array:
        """A population ``[E, N, H, A]``."""
        return self.distribution.sample(key, params, self.samples)

    def _update(self, params, samples: mx.array, returns: mx.array):
        """New distribution parameters and the sequences ``[E, K, H, A]`` (or ``None``) to carry on."""
        raise NotImplementedError

    def _finish(self, state: mx.array, params, best: Plan, key: mx.array, call: SearchCall) -> Plan:
        """The plan to return: by default the best sequence evaluated."""
        return best


def evaluate_plan(call: SearchCall, state: mx.array, actions: mx.array) -> Plan:
    """``actions [E, H, A]`` with their returns under ``call.evaluate``."""
    return Plan(actions, call.evaluate(state, actions[:, None])[:, 0])


def search_dynamics(dynamics, action_space):
    """The dynamics as the search calls them, with its one-hot actions for a ``Discrete`` space: ``dynamics``
    itself, or behind :meth:`~planners.spaces.Discrete.decode` for ``Discrete(values=..., one_hot=False)``."""
    if isinstance(action_space, Discrete) and not action_space.one_hot:
        if isinstance(dynamics, SequenceEvaluator):
            return dynamics.decoding(action_space.decode)
        return DecodedActions(dynamics, action_space.decode, action_space.dim)
    return dynamics


def sized_space(action_space, dynamics):
    """``action_space``, a ``Box`` of open size (scalar bounds, no shape) given the dynamics' declared
    ``action_dim``; ``ValueError`` with both fixes when the dynamics declare none."""
    if not isinstance(action_space, Box) or action_space.shape is not None:
        return action_space
    declared = getattr(dynamics, "action_dim", None)
    if isinstance(declared, numbers.Integral) and not isinstance(declared, bool) and declared >= 1:
        return action_space.sized(int(declared))
    raise ValueError(action_space.open_size_message(" (the dynamics declare no action_dim)"))


def population_size(samples: Optional[int], num_samples: Optional[int] = None) -> int:
    """The population size from ``samples`` or its deprecated name ``num_samples`` (a ``DeprecationWarning``)."""
    name = "samples"
    if num_samples is not None:
        warnings.warn("num_samples= is deprecated; use samples=", DeprecationWarning, stacklevel=4)
        samples, name = num_samples, "num_samples"
    if samples is None:
        raise ValueError("samples (the population size) must be given")
    return check_int(name, samples)


def _states(state) -> mx.array:
    """``state`` as float32 ``[E, S]``, else ``ValueError``."""
    state = mx.array(state, dtype=mx.float32)
    if state.ndim != 2:
        raise ValueError(f"state must be [E, S], got shape {tuple(state.shape)}")
    return state

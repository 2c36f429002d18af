"""Imagining with an ensemble: particles, trajectory sampling, and risk-aware returns (PETS).

    propagation = Propagation("tsinf", particles=10, aggregate="cvar", alpha=0.2)
    planner = CEM(ensemble, space, horizon=15, samples=500, propagation=propagation)

Each action sequence is imagined by ``P`` particles; the planner sees one return per sequence, the
particles' returns aggregated, so the search itself does not change.

Modes (Chua et al., 2018):

* ``"expectation"``: every step is the members' mean (all ``K`` members on every row); ``P = 1``
  suffices unless the heads' noise is sampled (then the members share each row's draw and the step
  is the mean of their samples).
* ``"ts1"``: every particle takes a freshly drawn member at every step.
* ``"tsinf"``: every particle keeps one member for the whole horizon.

Members are dealt so that each steps exactly a ``1 / K`` share of an environment's ``N * P``
particles (padded up to a multiple of ``K``; the padding is computed and dropped): one batched
product per layer, ``members(state [K, rows / K, S], ...)``, steps them all.

* ``tsinf`` deals evenly: particle ``j`` of an environment (``j = n * P + p``) rides member
  ``(j + shift) % K`` with one random shift per environment and call. A sequence's ``P`` particles
  meet the members as evenly as can be (``P`` different ones when ``P <= K``, each ``P / K`` times
  when ``K`` divides ``P``), so sequences are compared over the same members and CEM's elites are
  not the sequences whose particles happened to draw optimistic members. (PETS and mbrl-lib draw
  members at random, which planned markedly worse here: see the README's ensemble section.)
* ``ts1`` deals by a fresh random permutation of the slots at every step (as mbrl-lib does): each
  particle's member is uniform at every step, each member still steps a ``1 / K`` share.

Determinism: every draw (the permutations and the heads' noise) of environment ``e`` comes from
that environment's key alone, handed to the evaluate by the planner from its per-environment key
stream, so the same seed and env ids give the same actions in any batch composition.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Optional, Protocol, runtime_checkable

import mlx.core as mx

from .checks import check_float, check_int
from .dynamics import RowStep, TerminalValue, Termination, check_members_output, finite_or_neg_inf, imagine, rows_named
from .runtime.streams import CHUNK_ROWS

__all__ = ["EnsembleDynamics", "Propagation", "PropagatingEvaluate", "MODES", "AGGREGATES", "propagate"]

MODES = ("expectation", "ts1", "tsinf")
AGGREGATES = ("mean", "mean-std", "cvar")


@runtime_checkable
class EnsembleDynamics(Protocol):
    """``K`` dynamics models stepped together.

    ``members(state, action, noise=None) -> (next_state [K, B, S], reward [K, B])`` with ``state
    [K, B, S]`` and ``action [K, B, A]`` (member ``k`` on row block ``k``) or ``[B, ...]`` (every
    member on the same rows). ``noise``: standard-normal draws ``[K, B, S + 1]`` (or broadcastable),
    scaled by a probabilistic member's predicted standard deviation (state dims, then the reward).
    Attributes: ``ensemble_size`` (``K``) and, optionally, ``probabilistic`` (bool; default ``False``).
    Called like any :class:`~planners.dynamics.Dynamics`, it steps with the members' mean (what
    gradient planners differentiate). ``EnsembleWorldModel`` and its ``folded()`` snapshot fit.
    """

    ensemble_size: int

    def members(self, state: mx.array, action: mx.array, noise: Optional[mx.array] = None) -> tuple[mx.array, mx.array]: ...

    def __call__(self, state: mx.array, action: mx.array) -> tuple[mx.array, mx.array]: ...


@dataclass(frozen=True)
class Propagation:
    """How sequences are imagined with an ensemble, and how the particles' returns become one.

    Args:
        mode: ``"expectation"``, ``"ts1"`` or ``"tsinf"`` (see the module). Default: ``"tsinf"``.
        particles: ``P`` per sequence. Default ``None``: ``K`` for ``ts1``/``tsinf``, 1 for ``expectation``.
        sample_noise: draw from the probabilistic heads instead of taking their means. Default: ``False``.
        aggregate: ``"mean"``; ``"mean-std"`` (``mean - beta * std`` over the particles, the population
            std); or ``"cvar"`` (mean of the worst ``ceil(alpha * P)`` particle returns). Default: ``"mean"``.
        beta: risk aversion of ``"mean-std"``, ``>= 0``. Default: ``1.0``.
        alpha: tail fraction of ``"cvar"``, in ``(0, 1]``. Default: ``0.1``.
    """

    mode: str = "tsinf"
    particles: Optional[int] = None
    sample_noise: bool = False
    aggregate: str = "mean"
    beta: float = 1.0
    alpha: float = 0.1

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"propagation mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.aggregate not in AGGREGATES:
            raise ValueError(f"aggregate must be one of {', '.join(AGGREGATES)}, got {self.aggregate!r}")
        if self.particles is not None:
            check_int("particles", self.particles)
        check_float("beta", self.beta, 0.0, float("inf"))
        check_float("alpha", self.alpha, 0.0, 1.0, low_open=True)

    def particle_count(self, ensemble_size: int) -> int:
        """``P`` for an ensemble of ``ensemble_size`` members."""
        if self.particles is not None:
            return int(self.particles)
        return 1 if self.mode == "expectation" else int(ensemble_size)

    def member_rows(self, sequences: int, ensemble_size: int) -> int:
        """Rows the members step per environment when it imagines ``sequences`` sequences (for memory
        estimates): its particles padded to whole members (``W``), every member on every one of them
        (``K * W``) for ``expectation``."""
        width = _width(sequences * self.particle_count(ensemble_size), ensemble_size, self.mode)
        return width * (ensemble_size if self.mode == "expectation" else 1)

    def reduce(self, returns: mx.array) -> mx.array:
        """Aggregate particle returns ``[..., P]`` into ``[...]``; a non-finite particle makes the result ``-inf``."""
        returns = finite_or_neg_inf(returns)
        mean = returns.mean(axis=-1)
        if self.aggregate == "mean":
            return finite_or_neg_inf(mean)
        if self.aggregate == "mean-std":
            std = mx.sqrt(mx.maximum(((returns - mean[..., None]) ** 2).mean(axis=-1), 0.0))
            return finite_or_neg_inf(mean - self.beta * std)
        worst = max(1, math.ceil(self.alpha * returns.shape[-1] - 1e-9))  # 1e-9: alpha * P exact despite rounding
        return finite_or_neg_inf(mx.sort(returns, axis=-1)[..., :worst].mean(axis=-1))

    def make_evaluate(
        self,
        ensemble: EnsembleDynamics,
        *,
        discount: float = 1.0,
        terminal_value: Optional[TerminalValue] = None,
        streams: Optional[int] = None,
        termination: Optional[Termination] = None,
    ) -> "PropagatingEvaluate":
        """The planners' objective for ``ensemble`` under this propagation (see :class:`PropagatingEvaluate`)."""
        return PropagatingEvaluate(
            ensemble, self, discount=discount, terminal_value=terminal_value, streams=streams, termination=termination
        )


class PropagatingEvaluate:
    """``evaluate(state [E, S], actions [E, N, H, A]) -> returns [E, N]`` with particles, fed per-environment keys.

    :meth:`bind` takes the planning call's keys ``[E, 2]`` (one per environment), keeps a share for
    the particles and hands the rest back to the search with the call's evaluate; every evaluation
    then splits each environment's particle key once, so environment ``e``'s draws depend only on
    its key and on how many evaluations came before in the call. :class:`~planners.base.Planner`
    does this when given ``propagation=``; :meth:`start` and calling the object are the stateful form.

    Args:
        ensemble: an :class:`EnsembleDynamics`.
        propagation: the :class:`Propagation`.
        discount, terminal_value, streams, termination: as for :func:`~planners.dynamics.make_evaluate`;
            the streams split the environments (never one environment's particles).
    """

    def __init__(self, ensemble, propagation: Propagation, *, discount=1.0, terminal_value=None, streams=None, termination=None):
        if not isinstance(ensemble, EnsembleDynamics):
            raise ValueError(
                f"propagation needs an ensemble with members() and ensemble_size (e.g. EnsembleWorldModel), got {ensemble!r}"
            )
        check_int("ensemble_size", ensemble.ensemble_size)
        check_members_signature(ensemble)
        if propagation.sample_noise and not getattr(ensemble, "probabilistic", False):
            raise ValueError("sample_noise needs a probabilistic ensemble (EnsembleWorldModel(probabilistic=True))")
        self.ensemble, self.propagation = ensemble, propagation
        self.discount, self.terminal_value, self.streams = discount, terminal_value, streams
        self.termination = termination
        self._bound = None  # the evaluate of the last start()

    def member_rows(self, sequences: int) -> int:
        """Rows the members step per environment for ``sequences`` sequences (:meth:`Propagation.member_rows`)."""
        return self.propagation.member_rows(sequences, self.ensemble.ensemble_size)

    def bind(self, keys: mx.array) -> tuple:
        """``(evaluate, search keys [E, 2])`` for one planning call with per-environment keys ``[E, 2]``.

        ``evaluate(state [E, S], actions [E, N, H, A]) -> [E, N]`` owns the particles' share of the
        keys (nothing is stored here, so a planner's call stays pure); the rest goes to the search.
        """
        pairs = mx.vmap(lambda k: mx.random.split(k))(keys)
        particle_keys = [pairs[:, 1]]

        def evaluate(state: mx.array, actions: mx.array) -> mx.array:
            envs = actions.shape[0]
            if particle_keys[0].shape[0] != envs:
                raise ValueError(f"bound to {particle_keys[0].shape[0]} environment(s), asked to evaluate {envs}")
            split = mx.vmap(lambda k: mx.random.split(k))(particle_keys[0])
            particle_keys[0] = split[:, 0]
            size = self.ensemble.ensemble_size
            particles = self.propagation.particle_count(size)
            width = _width(actions.shape[1] * particles, size, self.propagation.mode)
            with rows_named(envs, actions.shape[1], particles, rows=envs * width):
                returns = propagate(
                    self.ensemble, self.propagation, state, actions, split[:, 1],
                    discount=self.discount, terminal_value=self.terminal_value, streams=self.streams,
                    termination=self.termination,
                )
            return self.propagation.reduce(returns)

        return evaluate, pairs[:, 0]

    def start(self, keys: mx.array) -> mx.array:
        """Begin evaluating by calls (``self(state, actions)``) with keys ``[E, 2]``; returns the search's keys.
        (:meth:`bind` is the form that keeps no state.)"""
        self._bound, search_keys = self.bind(keys)
        return search_keys

    def __call__(self, state: mx.array, actions: mx.array) -> mx.array:
        if self._bound is None:
            raise ValueError(f"call start(keys [{actions.shape[0]}, 2]) before evaluating environments with particles")
        return self._bound(state, actions)


def propagate(
    ensemble: EnsembleDynamics,
    propagation: Propagation,
    state: mx.array,
    actions: mx.array,
    keys: mx.array,
    *,
    discount: float = 1.0,
    terminal_value: Optional[TerminalValue] = None,
    streams: Optional[int] = None,
    termination: Optional[Termination] = None,
) -> mx.array:
    """Every particle's imagined return: ``returns [E, N, P]``.

    Args:
        ensemble: an :class:`EnsembleDynamics` of ``K`` members.
        state: start states ``[E, S]``.
        actions: sequences ``[E, N, H, A]``.
        keys: one key per environment ``[E, 2]``: all of environment ``e``'s draws come from ``keys[e]``.
        discount, terminal_value: reward at step ``t`` weighs ``discount**t``; ``V(state [B, S]) -> [B]``
            is added with weight ``discount**H``.
        streams: CPU streams the environments are split over (``None``: the CPU cores).
        termination: optional ``done(next_state [B, S]) -> [B]`` bool: a particle that reaches a
            terminal state keeps it, adds no later reward and no terminal value (as in
            :func:`~planners.dynamics.rollout`).
    """
    state = mx.array(state, dtype=mx.float32)
    actions = mx.array(actions, dtype=mx.float32)
    if state.ndim != 2 or actions.ndim != 4 or actions.shape[0] != state.shape[0] or tuple(keys.shape) != (state.shape[0], 2):
        raise ValueError(
            f"propagate needs state [E, S], actions [E, N, H, A] and keys [E, 2], got "
            f"{tuple(state.shape)}, {tuple(actions.shape)} and {tuple(keys.shape)}"
        )
    envs, num, horizon, _ = actions.shape
    size = ensemble.ensemble_size
    particles = propagation.particle_count(size)
    width = _width(num * particles, size, propagation.mode)
    # [E, 2H + 1, 2]: the first deal, then per step t its noise (2t + 1) and the next deal (2t + 2)
    step_keys = mx.vmap(lambda k: mx.random.split(k, 2 * horizon + 1))(keys)
    return imagine(
        lambda first, stop: ParticleStep(ensemble, propagation, particles, width, actions[first:stop], step_keys[first:stop]),
        mx.repeat(state, width, axis=0),
        horizon,
        discount=discount,
        terminal_value=terminal_value,
        termination=termination,
        streams=streams,
        group=width,
    )


def _width(particles: int, size: int, mode: str) -> int:
    """Rows per environment: the particles, padded to a multiple of ``K`` when members are dealt out."""
    return particles if mode == "expectation" else size * -(-particles // size)


def _deal(keys: mx.array, width: int) -> mx.array:
    """Per environment a random permutation ``[E, W]``: slot ``s`` holds particle ``order[s]`` (``>= N*P``: padding)."""
    return mx.vmap(lambda k: mx.random.permutation(width, key=k))(keys).astype(mx.int32)


def _deal_evenly(keys: mx.array, width: int, size: int) -> mx.array:
    """Like :func:`_deal`, but particle ``j`` goes to member ``(j + shift) % K``, one random shift per environment.

    Slot ``s`` is row ``i = s % M`` of member ``k = s // M`` (``M = W / K``) and holds particle
    ``i * K + (k - shift) % K``: a permutation of ``0 .. W - 1``.
    """
    rows = width // size
    shift = mx.vmap(lambda k: mx.random.randint(0, size, (), key=k))(keys)  # [E]
    slot = mx.arange(width, dtype=mx.int32)
    return (slot % rows) * size + (slot // rows - shift[:, None]) % size


class ParticleStep(RowStep):
    """The step transform of :func:`propagate` for a shard of ``E`` environments: rows ``[E * W, S]``,
    environment ``e``'s ``W`` slots holding its particles in the order its current deal gives.

    Args:
        actions: sequences ``[E, N, H, A]``; particle ``j`` imagines sequence ``j // P``.
        keys: ``[E, 2H + 1, 2]``: the first deal, then per step ``t`` its noise (``2t + 1``) and,
            for ``ts1``, the next deal (``2t + 2``).
    """

    def __init__(self, ensemble, propagation: Propagation, particles: int, width: int, actions: mx.array, keys: mx.array):
        self.ensemble, self.propagation, self.particles, self.width = ensemble, propagation, particles, width
        self.actions, self.keys = actions, keys
        self.envs, num = actions.shape[:2]
        self.count = num * particles
        if propagation.mode == "tsinf":
            self.order = _deal_evenly(keys[:, 0], width, ensemble.ensemble_size)
        elif propagation.mode == "ts1":
            self.order = _deal(keys[:, 0], width)
        else:
            self.order = mx.broadcast_to(mx.arange(width, dtype=mx.int32), (self.envs, width))

    def moves(self, t: int) -> Optional[mx.array]:
        """``ts1`` deals again before every step after the first; the particles' rows move along."""
        if self.propagation.mode != "ts1" or t == 0:
            return None
        new = _deal(self.keys[:, 2 * t], self.width)
        source = mx.take_along_axis(mx.argsort(self.order, axis=1), new % self.count, axis=1)  # [E, W]
        self.order = new
        return (source + mx.arange(self.envs, dtype=mx.int32)[:, None] * self.width).reshape(-1)

    def __call__(self, t: int, state: mx.array) -> tuple[mx.array, mx.array]:
        envs, width = self.envs, self.width
        x = state.reshape(envs, width, -1)
        sequence = (self.order % self.count) // self.particles  # [E, W] the sequence each slot imagines
        action = mx.take_along_axis(self.actions[:, :, t], sequence[..., None], axis=1)  # [E, W, A]
        noise = None
        if self.propagation.sample_noise:
            outputs = x.shape[-1] + 1  # noise per state dimension and the reward
            noise = mx.vmap(lambda k: mx.random.normal((width, outputs), key=k))(self.keys[:, 2 * t + 1])
        dealt = self.propagation.mode != "expectation"
        next_x, reward = (_dealt_step if dealt else _mean_step)(self.ensemble, x, action, noise)
        return next_x.reshape(envs * width, -1), reward.reshape(envs * width)

    def finish(self, total: mx.array) -> mx.array:
        """Every particle's return ``[E, N, P]`` from the slots' returns ``[E * W]``."""
        slot = mx.argsort(self.order, axis=1)[:, : self.count]  # where each particle ended
        num = self.count // self.particles
        return mx.take_along_axis(total.reshape(self.envs, self.width), slot, axis=1).reshape(self.envs, num, self.particles)


def check_members_signature(ensemble) -> None:
    """``ValueError`` naming the :class:`EnsembleDynamics` protocol when ``ensemble.members`` cannot be
    called as ``members(state, action, noise)`` (e.g. it lacks the ``noise`` argument)."""
    try:
        signature = inspect.signature(ensemble.members)
    except (TypeError, ValueError):  # no signature to read (a builtin): the call will tell
        return
    try:
        signature.bind(None, None, None)
    except TypeError:
        raise ValueError(
            f"{type(ensemble).__name__}.members{signature} does not fit the EnsembleDynamics protocol: "
            f"members(state, action, noise=None) -> (next_state [K, B, S], reward [K, B])"
        ) from None


def _to_members(x: mx.array, size: int) -> mx.array:
    """``[E, K * M, ...] -> [K, E * M, ...]``: slot ``s`` of an environment belongs to member ``s // M``."""
    envs, width = x.shape[:2]
    x = x.reshape(envs, size, width // size, *x.shape[2:])
    return mx.swapaxes(x, 0, 1).reshape(size, envs * (width // size), *x.shape[3:])


def _from_members(x: mx.array, envs: int) -> mx.array:
    """The inverse of :func:`_to_members`: ``[K, E * M, ...] -> [E, K * M, ...]``."""
    size, rows = x.shape[:2]
    x = x.reshape(size, envs, rows // envs, *x.shape[2:])
    return mx.swapaxes(x, 0, 1).reshape(envs, rows // envs * size, *x.shape[3:])


def _check_members(state, next_state, reward):
    if tuple(next_state.shape) != tuple(state.shape) or tuple(reward.shape) != tuple(state.shape[:-1]):
        raise ValueError(
            f"ensemble members returned next_state {tuple(next_state.shape)} and reward {tuple(reward.shape)}, "
            f"expected {tuple(state.shape)} and {tuple(state.shape[:-1])}"
        )


def _members_in_chunks(ensemble, state, action, noise, axis: int):
    """``ensemble.members`` on rows along ``axis`` of the inputs (0: shared rows, 1: per member), in slices of
    ``CHUNK_ROWS // K`` rows when there are more than twice as many, so the ``[K, rows, hidden]`` temporaries
    stay cache-sized (see :mod:`planners.runtime.streams`). Returns ``([K, R, S], [K, R])``."""
    rows, chunk = state.shape[axis], max(1, CHUNK_ROWS // ensemble.ensemble_size)
    if rows <= 2 * chunk:
        return check_members_output(ensemble.members(state, action, noise))
    take = lambda x, i: None if x is None else (x[i : i + chunk] if axis == 0 else x[:, i : i + chunk])  # noqa: E731
    parts = [check_members_output(ensemble.members(take(state, i), take(action, i), take(noise, i))) for i in range(0, rows, chunk)]
    return mx.concatenate([p[0] for p in parts], axis=1), mx.concatenate([p[1] for p in parts], axis=1)


def _dealt_step(ensemble, x, action, noise):
    """Each slot stepped by its own member: ``x [E, W, S], action [E, W, A] -> ([E, W, S], reward [E, W])``."""
    envs, size = x.shape[0], ensemble.ensemble_size
    state = _to_members(x, size)
    noise = None if noise is None else _to_members(noise, size)
    next_state, reward = _members_in_chunks(ensemble, state, _to_members(action, size), noise, axis=1)
    _check_members(state, next_state, reward)
    return _from_members(next_state.astype(mx.float32), envs), _from_members(reward.astype(mx.float32), envs)


def _mean_step(ensemble, x, action, noise):
    """Every slot stepped by the members' mean: ``x [E, W, S], action [E, W, A] -> ([E, W, S], reward [E, W])``."""
    envs, width, dim = x.shape
    state = x.reshape(envs * width, dim)
    noise = None if noise is None else noise.reshape(envs * width, dim + 1)
    next_state, reward = _members_in_chunks(ensemble, state, action.reshape(envs * width, -1), noise, axis=0)
    size = ensemble.ensemble_size
    _check_members(mx.broadcast_to(state, (size, *state.shape)), next_state, reward)
    return next_state.astype(mx.float32).mean(axis=0).reshape(envs, width, dim), reward.astype(mx.float32).mean(axis=0).reshape(envs, width)

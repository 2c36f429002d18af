"""What planners imagine with: the dynamics contract, batched rollouts, and the objective builder."""

from __future__ import annotations

import functools
import numbers
from contextlib import contextmanager
from typing import Callable, Optional, Protocol, runtime_checkable

import mlx.core as mx
import numpy as np

from .checks import check_float, check_int, first_line
from .runtime.memory import MemoryBudgetError
from .runtime.streams import CHUNK_ROWS, MIN_SHARD_ROWS, in_chunks, map_rows_in_steps

__all__ = [
    "Dynamics", "TerminalValue", "Termination", "Evaluate", "KnownReward", "CheckedDynamics", "check_options",
    "check_sizes", "check_output", "check_members_output", "check_termination", "check_terminal_value", "check_step",
    "rollout", "imagine", "RowStep", "ActionStep", "make_evaluate", "rows_named", "DecodedActions",
]


@runtime_checkable
class Dynamics(Protocol):
    """One imagined step, batched: ``(state [B, S], action [B, A]) -> (next_state [B, S], reward [B])``.

    ``ParticleEnv``, a trained ``WorldModel``, any ``nn.Module`` or plain function with this call
    signature fits. Actions are one-hot (or probability) vectors for ``Discrete`` spaces (their
    values ``[B, D]`` for ``Discrete(values=..., one_hot=False)``) and floats within the bounds for
    ``Box`` spaces. All arrays are float32 MLX arrays (numpy arrays returned
    are converted). An optional attribute ``rollout_streams`` (int) tells :func:`rollout` how many
    CPU streams suit the dynamics; optional ``state_dim`` and ``action_dim`` (ints) are checked
    against the states and actions the dynamics are given.
    """

    def __call__(self, state: mx.array, action: mx.array) -> tuple[mx.array, mx.array]: ...


TerminalValue = Callable[[mx.array], mx.array]
"""``terminal_value(state [B, S]) -> value [B]``, added (discounted) after the last imagined step."""

Termination = Callable[[mx.array], mx.array]
"""``termination(next_state [B, S]) -> done [B]`` (bool): the imagined episode ends on reaching ``next_state``.

The reward of the step that reaches it counts; later steps hold the state and add nothing, and no
terminal value is added."""

Evaluate = Callable[[mx.array, mx.array], mx.array]
"""``evaluate(state [E, S], actions [E, N, H, A]) -> returns [E, N]``; non-finite returns are ``-inf``."""


def check_step(state: mx.array, next_state: mx.array, reward: mx.array) -> None:
    """Raise ``ValueError`` unless ``next_state`` has ``state``'s shape and ``reward`` is ``[B]``.

    Shapes are known without evaluating anything, so this costs nothing.
    """
    batch = state.shape[0]
    if tuple(next_state.shape) != tuple(state.shape):
        raise ValueError(
            f"dynamics returned next_state of shape {tuple(next_state.shape)}, expected {tuple(state.shape)}"
        )
    if tuple(reward.shape) != (batch,):
        raise ValueError(f"dynamics returned reward of shape {tuple(reward.shape)}, expected ({batch},)")


def check_options(dynamics, discount, terminal_value, streams, termination=None) -> tuple[float, Optional[int]]:
    """``(discount, streams)`` checked as planners and :func:`rollout` take them; ``ValueError`` naming a bad one.

    ``dynamics``, ``terminal_value`` and ``termination`` (the last two or ``None``) must be callable,
    ``discount`` in ``(0, 1]``, ``streams`` ``None`` or an integer ``>= 1``.
    """
    if not callable(dynamics):
        raise ValueError(f"dynamics must be callable (state, action) -> (next_state, reward), got {dynamics!r}")
    if terminal_value is not None and not callable(terminal_value):
        raise ValueError(f"terminal_value must be callable or None, got {terminal_value!r}")
    if termination is not None and not callable(termination):
        raise ValueError(f"termination must be callable or None, got {termination!r}")
    discount = check_float("discount", discount, 0.0, 1.0, low_open=True)
    return discount, (None if streams is None else check_int("streams", streams))


def check_sizes(dynamics, state_size: Optional[int] = None, action_size: Optional[int] = None, source: str = "") -> None:
    """``ValueError`` when the dynamics declare a ``state_dim`` or ``action_dim`` (ints) other than the sizes given.

    ``source`` says where the action size comes from (e.g. ``"action_space Discrete(n=2)"``).
    """
    for attribute, size, name in (("state_dim", state_size, "states"), ("action_dim", action_size, "actions")):
        declared = getattr(dynamics, attribute, None)
        if size is not None and isinstance(declared, numbers.Integral) and not isinstance(declared, bool) and declared != size:
            where = f" ({source})" if source and name == "actions" else ""
            raise ValueError(f"{name} of size {size}{where} do not fit the dynamics, which declare {attribute}={declared}")


def check_output(output, state: mx.array) -> tuple[mx.array, mx.array]:
    """What dynamics returned for ``state [B, S]``, as MLX arrays ``(next_state [B, S], reward [B])``.

    Numpy arrays (and scalars) of real numbers are converted to float32 MLX arrays; anything else
    -- not a pair, not an array, complex numbers, the wrong shapes -- is a ``ValueError`` that says
    what was expected and what came back.
    """
    if not isinstance(output, (tuple, list)) or len(output) != 2:
        got = f"a {type(output).__name__} of {len(output)} values" if isinstance(output, (tuple, list)) else _describe(output)
        raise ValueError(f"dynamics must return a pair (next_state [B, S], reward [B]), got {got}")
    next_state, reward = _as_array("next_state", output[0]), _as_array("reward", output[1])
    check_step(state, next_state, reward)
    return next_state, reward


def _as_array(name: str, value, source: str = "dynamics") -> mx.array:
    """``value`` as an MLX array of real numbers (numpy converted to float32), else ``ValueError``
    naming ``source`` (who returned it) and ``name`` (what it is)."""
    if isinstance(value, mx.array):
        if mx.issubdtype(value.dtype, mx.complexfloating):
            raise ValueError(f"{source} returned {name} of dtype {value.dtype}, expected real numbers (float32)")
        return value
    if isinstance(value, (np.ndarray, np.generic)) and value.dtype.kind in "biuf":
        return mx.array(np.asarray(value, dtype=np.float32))
    raise ValueError(f"{source} returned {name} as {_describe(value)}, expected an MLX (or numpy) array of real numbers")


def check_members_output(output) -> tuple[mx.array, mx.array]:
    """What an ensemble's ``members()`` returned, as MLX arrays ``(next_state [K, B, S], reward [K, B])``
    (numpy converted to float32; anything but a pair of arrays of real numbers is a ``ValueError``)."""
    source = "ensemble members()"
    if not isinstance(output, (tuple, list)) or len(output) != 2:
        got = f"a {type(output).__name__} of {len(output)} values" if isinstance(output, (tuple, list)) else _describe(output)
        raise ValueError(f"{source} must return a pair (next_state [K, B, S], reward [K, B]), got {got}")
    return _as_array("next_state", output[0], source), _as_array("reward", output[1], source)


def check_termination(done, rows: int) -> mx.array:
    """What ``termination`` returned for ``rows`` states: a bool MLX array ``[rows]`` (numpy bools
    converted), else a ``ValueError`` saying what was expected -- 0/1 numbers included, so that a
    probability or a reward is never read as "done"."""
    if isinstance(done, (np.ndarray, np.generic)) and done.dtype.kind == "b":
        done = mx.array(np.asarray(done))
    if not isinstance(done, (mx.array, np.ndarray, np.generic)):
        raise ValueError(f"termination returned {_describe(done)}, expected an MLX (or numpy) array [{rows}] of booleans")
    if tuple(done.shape) != (rows,):
        raise ValueError(f"termination returned shape {tuple(done.shape)}, expected ({rows},)")
    if done.dtype != mx.bool_:
        raise ValueError(
            f"termination returned {str(done.dtype).replace('mlx.core.', '')} values, expected booleans [{rows}] "
            f"(a comparison such as mx.abs(next_state[:, 0]) > 1; 0/1 numbers are not read as done)"
        )
    return done


def check_terminal_value(value, rows: int) -> mx.array:
    """What ``terminal_value`` returned for ``rows`` states: a float32 MLX array ``[rows]`` (numpy converted),
    else a ``ValueError`` saying what was expected."""
    value = _as_array("values", value, "terminal_value")
    if tuple(value.shape) != (rows,):
        raise ValueError(f"terminal_value returned shape {tuple(value.shape)}, expected ({rows},)")
    return value.astype(mx.float32)


def _describe(value) -> str:
    """A short description of a returned value for error messages."""
    if value is None:
        return "None"
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return f"a {type(value).__module__.split('.')[0]} array of shape {tuple(value.shape)} and dtype {value.dtype}"
    return f"a {type(value).__name__}"


class CheckedDynamics:
    """``dynamics`` whose every output passes :func:`check_output`; other attributes are the wrapped one's.

    A call that raises ``ValueError``, ``TypeError`` or ``IndexError`` (such as MLX's shape errors
    from inside a model given actions of the wrong size) becomes a ``ValueError`` naming the
    shapes of the state and action it was given.
    """

    def __init__(self, dynamics):
        self.dynamics = dynamics

    def __call__(self, state: mx.array, action: mx.array) -> tuple[mx.array, mx.array]:
        try:
            output = self.dynamics(state, action)
        except (ValueError, TypeError, IndexError) as err:
            detail = first_line(err)
            raise ValueError(
                f"dynamics failed on state of shape {tuple(state.shape)} and action of shape {tuple(action.shape)} "
                f"(does the action space fit the dynamics?): {detail}"
            ) from err
        return check_output(output, state)

    def __getattr__(self, name):
        if name == "dynamics":  # not set yet (e.g. while unpickling)
            raise AttributeError(name)
        return getattr(self.dynamics, name)


def rollout(
    dynamics: Dynamics,
    state: mx.array,
    actions: mx.array,
    discount: float = 1.0,
    terminal_value: Optional[TerminalValue] = None,
    return_trajectory: bool = False,
    streams: Optional[int] = None,
    termination: Optional[Termination] = None,
    *,
    chunk_rows: int = CHUNK_ROWS,
    min_shard_rows: int = MIN_SHARD_ROWS,
):
    """Imagine action sequences from start states.

    Args:
        dynamics: ``(state [B, S], action [B, A]) -> (next_state [B, S], reward [B])``.
        state: start states ``[B, S]``.
        actions: action sequences ``[B, H, A]``.
        discount: reward at step ``t`` is weighted ``discount**t``. Default: ``1.0``.
        terminal_value: optional ``V(state [B, S]) -> [B]``, added with weight ``discount**H``.
        return_trajectory: also return the states and rewards.
        streams: split the ``B`` rows into up to this many contiguous shards, each rolled out on its
            own CPU stream (thread) -- the rows must be independent, as they are for any per-sample
            dynamics. ``None``: the dynamics' own ``rollout_streams`` attribute if it has one (e.g.
            ``1`` for very light dynamics), else :func:`planners.runtime.streams.default_count` (the CPU
            cores; 1 on a GPU). ``1`` also keeps each step in one call: use it for dynamics that
            mix the batch. Otherwise a step over many rows runs in slices (:mod:`planners.runtime.streams`).
        termination: optional ``done(next_state [B, S]) -> [B]`` bool. A row that reaches a
            terminal state is absorbed there: the reward of the step that reached it counts, its
            later steps keep the state and add nothing (their rewards read ``0`` in the
            trajectory), and it gets no terminal value.
        chunk_rows: within a shard, a step over more than twice this many rows runs in slices of
            this many (:func:`planners.runtime.streams.in_chunks`; not with ``streams=1``).
        min_shard_rows: rows per shard at least (:func:`planners.runtime.streams.shards`).

    Returns:
        ``returns [B]``, or ``(returns [B], states [B, H+1, S], rewards [B, H])`` on request.
        ``returns = sum_t alive_t discount**t r_t + alive_H discount**H V(s_H)``, where ``alive_t``
        is 1 until the step after the first terminal state and 0 from then on (1 throughout
        without ``termination``).

    Raises:
        ValueError: bad options (as :func:`check_options`), sizes other than the dynamics declare
            (:func:`check_sizes`), or dynamics that fail or return something else than
            ``(next_state [B, S], reward [B])`` (:class:`CheckedDynamics`).
    """
    state = mx.array(state, dtype=mx.float32)
    actions = mx.array(actions, dtype=mx.float32)
    if state.ndim != 2 or actions.ndim != 3 or actions.shape[0] != state.shape[0]:
        raise ValueError(
            f"rollout needs state [B, S] and actions [B, H, A], got {tuple(state.shape)} and {tuple(actions.shape)}"
        )
    discount, streams = check_options(dynamics, discount, terminal_value, streams, termination)
    check_sizes(dynamics, state.shape[1], actions.shape[2])
    dynamics = dynamics if isinstance(dynamics, CheckedDynamics) else CheckedDynamics(dynamics)
    if streams is None:
        streams = getattr(dynamics, "rollout_streams", None)
    chunk = None if streams == 1 else check_int("chunk_rows", chunk_rows)
    return imagine(
        lambda start, stop: ActionStep(dynamics, actions[start:stop], chunk),
        state,
        actions.shape[1],
        discount=discount,
        terminal_value=terminal_value,
        termination=termination,
        return_trajectory=return_trajectory,
        streams=streams,
        min_shard_rows=check_int("min_shard_rows", min_shard_rows),
    )


class RowStep:
    """How one shard of rows takes its imagined steps in :func:`imagine`; subclasses write ``__call__``.

    ``step(t, state [B, S]) -> (next_state [B, S], reward [B])`` is step ``t``. :meth:`moves` may
    reorder the rows before a step (the loop moves their states, returns and alive flags along),
    and :meth:`finish` turns the shard's returns ``[B]`` into its result.
    """

    def __call__(self, t: int, state: mx.array) -> tuple[mx.array, mx.array]:
        raise NotImplementedError

    def moves(self, t: int) -> Optional[mx.array]:
        """Row indices ``[B]`` (int32) to gather the rows by before step ``t``, or ``None`` (they stay)."""
        return None

    def finish(self, total: mx.array):
        """The shard's result from its returns ``[B]`` (the rows' final order): by default the returns."""
        return total


class ActionStep(RowStep):
    """Step ``t`` of every row with its own action ``actions[:, t]`` (``actions [B, H, A]``); steps over
    more than ``2 * chunk_rows`` rows run in slices of ``chunk_rows`` (:func:`planners.runtime.streams.in_chunks`;
    ``None``: one call per step)."""

    def __init__(self, dynamics: Dynamics, actions: mx.array, chunk_rows: Optional[int] = CHUNK_ROWS):
        self.dynamics, self.actions, self.chunk_rows = dynamics, actions, chunk_rows

    def __call__(self, t: int, state: mx.array) -> tuple[mx.array, mx.array]:
        if self.chunk_rows is not None:
            return in_chunks(self.dynamics, state, self.actions[:, t], self.chunk_rows)
        return self.dynamics(state, self.actions[:, t])


def imagine(
    shard_step: Callable[[int, int], RowStep],
    state: mx.array,
    horizon: int,
    *,
    discount: float = 1.0,
    terminal_value: Optional[TerminalValue] = None,
    termination: Optional[Termination] = None,
    return_trajectory: bool = False,
    streams: Optional[int] = None,
    group: int = 1,
    min_shard_rows: int = MIN_SHARD_ROWS,
):
    """THE imagination loop: ``horizon`` steps of rows ``state [B, S]``, with termination, discount and terminal value.

    The rows are split into contiguous shards (each on its own CPU stream, kept in lockstep by
    :func:`planners.runtime.streams.map_rows_in_steps`) of whole groups of ``group`` rows (``B`` a
    multiple of it; e.g. one environment's particles). ``shard_step(first, stop)`` builds the
    :class:`RowStep` of groups ``first .. stop - 1``: plain dynamics (:class:`ActionStep`) or an
    ensemble's particles (:mod:`planners.propagation`). Options as :func:`rollout`
    (``min_shard_rows``: rows per shard at least, rounded up to whole groups).

    Returns:
        the shards' :meth:`RowStep.finish` results joined along axis 0 (``returns [B]`` by default),
        and with ``return_trajectory`` also ``states [B, H+1, S]`` and ``rewards [B, H]``.
    """
    minimum = max(1, -(-min_shard_rows // group))
    parts = map_rows_in_steps(
        lambda first, stop: _imagine_rows(
            shard_step(first, stop), state[first * group : stop * group], horizon,
            discount, terminal_value, termination, return_trajectory,
        ),
        state.shape[0] // group,
        streams,
        minimum=minimum,
    )
    if len(parts) == 1:
        return parts[0]
    if not return_trajectory:
        return mx.concatenate(parts, axis=0)
    return tuple(mx.concatenate(pieces, axis=0) for pieces in zip(*parts))


def _imagine_rows(step: RowStep, state, horizon, discount, terminal_value, termination, return_trajectory):
    """:func:`imagine` of one shard on the current stream: a generator that yields each step's
    ``[state, total(, alive)]`` and returns the shard's result (see :func:`planners.runtime.streams.map_rows_in_steps`)."""
    total = None  # the first reward starts the sum; no multiply while the weight is 1 (fewer ops per step)
    alive = None  # [B] float32, 1 until a row has terminated, then 0; None: all alive (or no termination)
    states, rewards = [state], []
    weight = 1.0
    for t in range(horizon):
        index = step.moves(t)
        if index is not None:  # rows moved: their states, returns and alive flags go along
            state, total, alive = (None if x is None else mx.take(x, index, axis=0) for x in (state, total, alive))
        next_state, reward = step(t, state)
        if t == 0:
            check_step(state, next_state, reward)
        next_state = next_state.astype(mx.float32)
        reward = reward.astype(mx.float32)
        if alive is not None:  # terminated rows: absorbed, no reward (even a NaN one from past the end)
            reward = mx.where(alive > 0, reward, 0.0)
            next_state = mx.where(alive[:, None] > 0, next_state, state)
        if termination is not None:
            done = check_termination(termination(next_state), state.shape[0])
            going = 1.0 - done.astype(mx.float32)
            alive = going if alive is None else alive * going
        state = next_state
        weighted = reward if weight == 1.0 else weight * reward
        total = weighted if total is None else total + weighted
        weight *= discount
        if return_trajectory:
            states.append(state)
            rewards.append(reward)
        yield [state, total] if alive is None else [state, total, alive]
    if total is None:  # no steps
        total = mx.zeros((state.shape[0],), dtype=mx.float32)
    if terminal_value is not None:
        value = check_terminal_value(terminal_value(state), state.shape[0])
        total = total + weight * (value if alive is None else mx.where(alive > 0, value, 0.0))
    total = step.finish(total)
    if not return_trajectory:
        return total
    reward_array = mx.stack(rewards, axis=1) if rewards else mx.zeros((state.shape[0], 0), dtype=mx.float32)
    return total, mx.stack(states, axis=1), reward_array


def make_evaluate(
    dynamics: Dynamics,
    *,
    discount: float = 1.0,
    terminal_value: Optional[TerminalValue] = None,
    streams: Optional[int] = None,
    termination: Optional[Termination] = None,
) -> Evaluate:
    """Turn dynamics into the planners' objective ``evaluate(state [E, S], actions [E, N, H, A]) -> [E, N]``.

    All ``E * N`` sequences run in one batched rollout (``[E*N, S]`` per step), split over
    ``streams`` as in :func:`rollout`; ``termination`` ends imagined episodes as there. NaN or
    infinite returns become ``-inf``, so they are never chosen and never weigh in a refit.
    """

    def evaluate(state: mx.array, actions: mx.array) -> mx.array:
        envs, num, horizon, dim = actions.shape
        starts = mx.repeat(state, num, axis=0)
        with rows_named(envs, num):
            returns = rollout(
                dynamics,
                starts,
                actions.reshape(envs * num, horizon, dim),
                discount,
                terminal_value,
                streams=streams,
                termination=termination,
            )
        return finite_or_neg_inf(returns.reshape(envs, num))

    return evaluate


_ROW_ERRORS = ("dynamics ", "ensemble members", "termination returned", "terminal_value returned")
"""How the errors that quote the imagined rows (what the user's callables saw or returned) begin."""


@contextmanager
def rows_named(envs: int, samples: int, particles: int = 1, rows: Optional[int] = None):
    """A ``ValueError`` raised inside about what the user's callables saw or returned (it quotes the
    flattened rows) says where those rows come from: ``"... (3 environments × 50 samples = 150 rows)"``. ``rows``: when
    not ``envs * samples * particles`` (particles padded to whole ensemble members)."""
    try:
        yield
    except ValueError as err:
        if isinstance(err, MemoryBudgetError) or not str(err).startswith(_ROW_ERRORS):
            raise
        plural = lambda count, noun: f"{count} {noun}" + ("" if count == 1 else "s")  # noqa: E731
        parts = f"{plural(envs, 'environment')} × {plural(samples, 'sample')}"
        parts += f" × {plural(particles, 'particle')}" if particles != 1 else ""
        total = envs * samples * particles
        count = f"{total} rows" if rows is None or rows == total else f"{total} rows, padded to {rows}"
        raise ValueError(f"{err} (the planner imagines {parts} = {count})") from err


def finite_or_neg_inf(returns: mx.array) -> mx.array:
    """``returns`` with NaN and ``±inf`` replaced by ``-inf``."""
    return mx.where(mx.isfinite(returns), returns, -mx.inf)


class KnownReward:
    """Dynamics from a model of the next state only and a known reward function (as PETS plans).

    ``KnownReward(model, reward)(state [B, S], action [B, A]) -> (next_state [B, S], reward [B])`` with
    ``next_state = model(state, action)`` and ``reward = reward(state, action, next_state)``.

    Args:
        model: ``(state [B, S], action [B, A]) -> next_state [B, S]``, e.g. a learned dynamics-only model.
        reward: ``(state [B, S], action [B, A], next_state [B, S]) -> [B]``.

    The model's ``state_dim``, ``action_dim`` and ``rollout_streams`` attributes, those it has, are
    the adapter's too (so sizes are checked and a ``Box`` of open size is sized as with the model).
    """

    FORWARDED = ("state_dim", "action_dim", "rollout_streams")

    def __init__(self, model: Callable, reward: Callable):
        if not callable(model) or not callable(reward):
            raise ValueError(f"KnownReward needs a callable model and reward, got {model!r} and {reward!r}")
        self.model = model
        self.reward = reward
        for name in self.FORWARDED:
            value = getattr(model, name, None)
            if value is not None:
                setattr(self, name, value)

    def __call__(self, state: mx.array, action: mx.array) -> tuple[mx.array, mx.array]:
        next_state = self.model(state, action)
        return next_state, self.reward(state, action, next_state)

    def __repr__(self):
        return f"KnownReward({self.model!r}, {self.reward!r})"


class DecodedActions:
    """Dynamics that receive decoded actions, called with the search's own (one-hot) actions.

    ``DecodedActions(dynamics, decode, search_dim)(state [B, S], action [B, n])`` is
    ``dynamics(state, decode(action))``; an ensemble's ``members(state, action, ...)`` likewise
    (its signature is the wrapped one's). The wrapper declares ``action_dim = search_dim``; other
    attributes (``state_dim``, ``rollout_streams``, ``ensemble_size``, ...) are the wrapped one's.
    Planners build it for ``Discrete(values=..., one_hot=False)``.
    """

    def __init__(self, dynamics, decode: Callable[[mx.array], mx.array], search_dim: int):
        self.dynamics, self.decode, self.action_dim = dynamics, decode, int(search_dim)
        members = getattr(dynamics, "members", None)
        if callable(members):

            @functools.wraps(members)
            def decoded_members(state, action, *args, **kwargs):
                return members(state, decode(action), *args, **kwargs)

            self.members = decoded_members

    def __call__(self, state: mx.array, action: mx.array) -> tuple[mx.array, mx.array]:
        return self.dynamics(state, self.decode(action))

    def __getattr__(self, name):
        if name in ("dynamics", "decode"):  # not set yet (e.g. while unpickling)
            raise AttributeError(name)
        return getattr(self.dynamics, name)

    def __repr__(self):
        return f"DecodedActions({self.dynamics!r})"

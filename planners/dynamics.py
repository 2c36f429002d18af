"""What planners imagine with: the dynamics contract, batched rollouts, and the objective builder."""

from __future__ import annotations

from typing import Callable, Optional, Protocol, runtime_checkable

import mlx.core as mx

from . import execution

__all__ = ["Dynamics", "TerminalValue", "Termination", "Evaluate", "KnownReward", "check_step", "rollout", "make_evaluate"]


@runtime_checkable
class Dynamics(Protocol):
    """One imagined step, batched: ``(state [B, S], action [B, A]) -> (next_state [B, S], reward [B])``.

    ``ParticleEnv``, a trained ``WorldModel``, any ``nn.Module`` or plain function with this call
    signature fits. Actions are one-hot (or probability) vectors for ``Discrete`` spaces and floats
    within the bounds for ``Box`` spaces. All arrays are float32 MLX arrays. An optional attribute
    ``rollout_streams`` (int) tells :func:`rollout` how many CPU streams suit the dynamics.
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


def rollout(
    dynamics: Dynamics,
    state: mx.array,
    actions: mx.array,
    discount: float = 1.0,
    terminal_value: Optional[TerminalValue] = None,
    return_trajectory: bool = False,
    streams: Optional[int] = None,
    termination: Optional[Termination] = None,
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
            ``1`` for very light dynamics), else :func:`planners.execution.default_count` (the CPU
            cores; 1 on a GPU). ``1`` also keeps each step in one call: use it for dynamics that
            mix the batch. Otherwise a step over many rows runs in slices (:mod:`planners.execution`).
        termination: optional ``done(next_state [B, S]) -> [B]`` bool. A row that reaches a
            terminal state is absorbed there: the reward of the step that reached it counts, its
            later steps keep the state and add nothing (their rewards read ``0`` in the
            trajectory), and it gets no terminal value.

    Returns:
        ``returns [B]``, or ``(returns [B], states [B, H+1, S], rewards [B, H])`` on request.
        ``returns = sum_t alive_t discount**t r_t + alive_H discount**H V(s_H)``, where ``alive_t``
        is 1 until the step after the first terminal state and 0 from then on (1 throughout
        without ``termination``).
    """
    state = mx.array(state, dtype=mx.float32)
    actions = mx.array(actions, dtype=mx.float32)
    if state.ndim != 2 or actions.ndim != 3 or actions.shape[0] != state.shape[0]:
        raise ValueError(
            f"rollout needs state [B, S] and actions [B, H, A], got {tuple(state.shape)} and {tuple(actions.shape)}"
        )
    if streams is None:
        streams = getattr(dynamics, "rollout_streams", None)
    step = dynamics if streams == 1 else (lambda s, a: execution.in_chunks(dynamics, s, a))
    parts = execution.map_rows(
        lambda start, stop: _rollout_rows(
            step, state[start:stop], actions[start:stop], discount, terminal_value, return_trajectory, termination
        ),
        state.shape[0],
        streams,
    )
    if len(parts) == 1:
        return parts[0]
    if not return_trajectory:
        return mx.concatenate(parts, axis=0)
    return tuple(mx.concatenate(pieces, axis=0) for pieces in zip(*parts))


def _rollout_rows(dynamics, state, actions, discount, terminal_value, return_trajectory, termination=None):
    """:func:`rollout` of one shard on the current stream."""
    total = None  # the first reward starts the sum; no multiply while the weight is 1 (fewer ops per step)
    alive = None  # [B] float32, 1 until a row has terminated, then 0; None: all alive (or no termination)
    states, rewards = [state], []
    weight = 1.0
    for t in range(actions.shape[1]):
        next_state, reward = dynamics(state, actions[:, t])
        if t == 0:
            check_step(state, next_state, reward)
        next_state = next_state.astype(mx.float32)
        reward = reward.astype(mx.float32)
        if alive is not None:  # terminated rows: absorbed, no reward (even a NaN one from past the end)
            reward = mx.where(alive > 0, reward, 0.0)
            next_state = mx.where(alive[:, None] > 0, next_state, state)
        if termination is not None:
            done = termination(next_state)
            if t == 0 and tuple(done.shape) != (state.shape[0],):
                raise ValueError(f"termination returned shape {tuple(done.shape)}, expected ({state.shape[0]},)")
            going = 1.0 - done.astype(mx.float32)
            alive = going if alive is None else alive * going
        state = next_state
        weighted = reward if weight == 1.0 else weight * reward
        total = weighted if total is None else total + weighted
        weight *= discount
        if return_trajectory:
            states.append(state)
            rewards.append(reward)
    if total is None:  # no steps
        total = mx.zeros((state.shape[0],), dtype=mx.float32)
    if terminal_value is not None:
        value = terminal_value(state)
        if tuple(value.shape) != (state.shape[0],):
            raise ValueError(f"terminal_value returned shape {tuple(value.shape)}, expected ({state.shape[0]},)")
        value = value.astype(mx.float32)
        total = total + weight * (value if alive is None else mx.where(alive > 0, value, 0.0))
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

    The model's ``rollout_streams`` attribute, if it has one, is the adapter's too.
    """

    def __init__(self, model: Callable, reward: Callable):
        if not callable(model) or not callable(reward):
            raise ValueError(f"KnownReward needs a callable model and reward, got {model!r} and {reward!r}")
        self.model = model
        self.reward = reward
        streams = getattr(model, "rollout_streams", None)
        if streams is not None:
            self.rollout_streams = streams

    def __call__(self, state: mx.array, action: mx.array) -> tuple[mx.array, mx.array]:
        next_state = self.model(state, action)
        return next_state, self.reward(state, action, next_state)

    def __repr__(self):
        return f"KnownReward({self.model!r}, {self.reward!r})"

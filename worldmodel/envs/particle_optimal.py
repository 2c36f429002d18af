"""Exact optimal returns of the discrete particle (:class:`~worldmodel.envs.particle.Particle`), by
enumerating the reachable lattice.

From one start the particle (pushes in {-1, 0, +1}) reaches finitely many states, so the best
return of a ``T``-step episode is found exactly:

1. forward: level ``t`` holds the states after ``t`` steps; expand every state by the three
   pushes and de-duplicate the children to get level ``t + 1``;
2. backward: ``V_T = 0`` and ``V_t(s) = max_a [r(s, a) + V_{t+1}(s')]``.

The dynamics are those of the particle env given (its own ``accel``, ``x_limit``, ``v_limit`` and
pushes), reproduced bit for bit in numpy float32 (``v' = clip(v + float32(accel) * a)``, then
``x' = clip(x + v')``, ``r = -|x'|``). Many
starts are solved at once: every state carries its start's index, which is part of its
de-duplication key, so nothing loops over states or starts, only over the ``T`` levels.

De-duplication keys round ``x`` and ``v`` to a 1e-5 grid (``KEY_RESOLUTION``). Different push
orders reach the same state with floats that differ in the last bits; the key merges such states,
equal up to float rounding, and keeps one of them. The value error that causes is ~1e-6 per
merge (float32 noise); a start's lattice offsets can also bring two truly distinct states closer
than the grid, which are then merged too. Measured on 100 random starts at ``T = 50``: returns
(about -10) move by at most 2e-5 between a 1e-5 and a 1e-6 grid. Returns are summed in float64.

Cost: the lattice of one start grows to ~11k states per level by ``T = 50``; 100 starts x 50
steps take 1.5-2.5 s on 2 CPU cores and ~0.6 GB of memory (the lattice is kept for the
backward pass), so :func:`optimal_returns` solves ``CHUNK`` starts at a time.
"""

from __future__ import annotations

import numbers

import numpy as np


KEY_RESOLUTION = 1e-5  # grid of the de-duplication key, for x and v
TIE_TOLERANCE = 1e-6  # action values this close count as tied in optimal_plan
CHUNK = 100  # starts solved together by optimal_returns (memory grows with the chunk)


def _check(env, steps):
    """``(pushes, accel, x_limit, v_limit)`` of the discrete particle ``env``; ``ValueError`` for a bad ``steps`` or env.

    ``pushes`` ``[3]`` int64: the env's push values in tie-break order -- argmax takes the first best,
    so ties go to the smallest push in size (0), then to the negative one (-1, then +1)."""
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if getattr(env, "continuous", True):
        raise ValueError(f"the exact optimum needs the discrete particle, got {env!r}")
    pushes = np.array(sorted(env.action_space.values, key=lambda p: (abs(p), p)), dtype=np.int64)
    return pushes, env.accel, env.x_limit, env.v_limit


def _as_starts(starts) -> np.ndarray:
    """``starts`` as a finite float32 array ``[E, 2]``, or ``ValueError``."""
    arr = np.asarray(starts, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"starts must be an [E, 2] array of (x, v), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"starts must be finite, got {arr[~np.all(np.isfinite(arr), axis=1)].tolist()}")
    return arr


def _unique(key):
    """De-duplicate int64 keys ``[N]``: ``(first [U], inverse [N])``, the groups in key order.

    The keys come as three runs (one per push), each already sorted, so the stable sort
    (timsort) only merges runs: level ``t + 1`` is kept in key order, which makes the children
    of each push sorted again (the dynamics are monotone in ``(v, x)`` for a fixed push).
    """
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    new = np.empty(len(key), dtype=bool)
    new[0] = True
    np.not_equal(sorted_key[1:], sorted_key[:-1], out=new[1:])
    group_starts = np.flatnonzero(new)
    dtype = np.int32 if len(key) < 2**31 else np.int64
    inverse = np.empty(len(key), dtype=dtype)
    inverse[order] = np.repeat(np.arange(len(group_starts), dtype=dtype), np.diff(group_starts, append=len(key)))
    return order[group_starts], inverse


def _solve(starts: np.ndarray, steps: int, pushes: np.ndarray, accel: float, x_limit: float, v_limit: float, keep: bool = False):
    """Enumerate and solve the lattices of all starts ``[E, 2]`` (float32).

    Level 0 is ``starts`` itself (``N_0 = E``, state ``e`` is start ``e``); the last level is not
    de-duplicated (its values are 0), so ``N_T = 3 N_{T-1}``.

    Returns:
        ``(values, children, arrivals)``: ``values`` ``[E]`` float64, the optimal returns;
        ``children[t]`` ``[3, N_t]`` ints, the index in level ``t + 1`` of each push's successor
        (rows in the order of ``pushes``, see :func:`_check`), for ``t < steps``; with ``keep``, ``arrivals[t]`` ``[N_{t+1}]``
        float64, ``-|x| + V_{t+1}`` of each state of level ``t + 1`` (``None`` without ``keep``).
        The reward of a step is ``-|x|`` of the state it arrives in.
    """
    dv = (np.float32(accel) * pushes.astype(np.float32))[:, None]  # [3, 1], as the env's accel * push
    lo_v, hi_v = np.float32(-v_limit), np.float32(v_limit)
    lo_x, hi_x = np.float32(-x_limit), np.float32(x_limit)
    # Key of a state: (start index, v, x) with x and v rounded to the KEY_RESOLUTION grid, one int64.
    scale = 1.0 / KEY_RESOLUTION
    x_max, v_max = int(np.ceil(x_limit * scale)) + 1, int(np.ceil(v_limit * scale)) + 1
    nx, nv = 2 * x_max + 1, 2 * v_max + 1
    if len(starts) * nx * nv >= 2**62:
        raise ValueError(f"too many starts for one int64 key per state: {len(starts)}; solve them in chunks")
    x, v = starts[:, 0], starts[:, 1]
    owner = np.arange(len(starts), dtype=np.int64)  # [N_t] start index of each state
    children, xs = [], []  # xs[t]: x of level t + 1, [N_{t+1}] float32
    for t in range(steps):
        v_next = np.clip(v + dv, lo_v, hi_v)  # [3, N_t] float32
        x_next = np.clip(x + v_next, lo_x, hi_x)
        if t == steps - 1:
            children.append(np.arange(x_next.size).reshape(3, -1))
            xs.append(x_next.reshape(-1))
            break
        vi = np.rint(v_next * scale).astype(np.int64)
        xi = np.rint(x_next * scale).astype(np.int64)
        first, inverse = _unique((((owner * nv + v_max) + vi) * nx + x_max + xi).reshape(-1))
        children.append(inverse.reshape(3, -1))
        x, v, owner = x_next.reshape(-1)[first], v_next.reshape(-1)[first], owner[first % len(owner)]
        xs.append(x)
    arrivals = [] if keep else None
    values = np.zeros(len(xs[-1]))  # V_T
    for t in reversed(range(steps)):
        arrival = values - np.abs(xs.pop().astype(np.float64))  # [N_{t+1}]
        if keep:
            arrivals.append(arrival)
        q = arrival[children[t]]  # [3, N_t]
        values = np.maximum(np.maximum(q[0], q[1]), q[2])  # V_t
    if keep:
        arrivals.reverse()
    return values, children, arrivals


def lattice_sizes(env, starts, steps: int) -> list[int]:
    """Number of distinct states ``N_t`` (all starts together) at levels ``t = 0 .. steps - 1``."""
    constants = _check(env, steps)
    return [child.shape[1] for child in _solve(_as_starts(starts), steps, *constants)[1]]


def optimal_returns(env, starts, steps: int) -> np.ndarray:
    """Exact best return of a ``steps``-step episode from each start, ``CHUNK`` starts at a time.

    Args:
        env: the discrete :class:`~worldmodel.envs.particle.Particle` (its constants are used).
        starts: array-like ``[E, 2]`` of start states ``(x, v)`` (cast to float32, must be finite).
        steps: episode length ``T >= 1``.

    Returns:
        ``[E]`` float64: ``max`` over push sequences of ``sum_t -|x_t|`` (``t = 1 .. T``).
    """
    constants = _check(env, steps)
    starts = _as_starts(starts)
    parts = [_solve(starts[i : i + CHUNK], steps, *constants)[0] for i in range(0, len(starts), CHUNK)]
    return np.concatenate([np.zeros(0), *parts])


def optimal_plan(env, start, steps: int):
    """An optimal push sequence from one start.

    Args:
        env: the discrete :class:`~worldmodel.envs.particle.Particle`.
        start: array-like ``[2]``, the start state ``(x, v)``.
        steps: episode length ``T >= 1``.

    Returns:
        ``(ret, pushes)``: the optimal return (float) and ``pushes`` ``[steps]`` int64 in
        {-1, 0, +1} achieving it. Ties (action values within ``TIE_TOLERANCE``) go to the push 0,
        then -1, deterministically.
    """
    constants = _check(env, steps)
    start = np.asarray(start, dtype=np.float32)
    if start.shape != (2,):
        raise ValueError(f"start must be one state (x, v) of shape (2,), got shape {start.shape}")
    values, children, arrivals = _solve(_as_starts(start[None]), steps, *constants, keep=True)
    node, plan = 0, np.empty(steps, dtype=np.int64)
    for t in range(steps):
        q = arrivals[t][children[t][:, node]]  # [3]
        best = int(np.argmax(q >= q.max() - TIE_TOLERANCE))  # first action within tolerance
        plan[t] = constants[0][best]
        node = children[t][best, node]
    return float(values[0]), plan

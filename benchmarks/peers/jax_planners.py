"""JAX peer for the speed comparison: CEM and MPPI written the way JAX sampling-MPC libraries write them.

The same MLP and weights as every other worker (:mod:`benchmarks.peers.mlp_weights`, checked against
the float64 numpy forward pass), float32 on the CPU. The planners follow the hand-written torch ones
in :mod:`benchmarks.peers.torch_planners` step for step — same population, elites, clipping and
update rules, same MPPI noise and temperature — but in the style of JAX sampling-based MPC (hydrax
and the like): **one** ``jax.jit`` over the whole planning call (sampling, rollout, elite selection /
softmax weighting, refit), the rollout a ``lax.scan`` over the horizon with all N samples batched in
each step, and the random key threaded through the call (the next key comes back with the plan, so
a timed call is exactly one dispatch of one compiled program).

Two ways to loop over CEM's iterations inside the jit (``--impl``):

- ``scan`` — ``lax.scan`` over the iterations (one compiled loop body; the default);
- ``unrolled`` — a Python ``for`` loop inside the traced function (XLA sees all iterations inline).

Both draw the same keys, so they return the same plan. MPPI has one iteration: the two are the same.
On 2 busy x86-64 cores the two ran equally fast within the noise (CEM (1000, 15): 21.0 vs 20.8 ms,
median of 15 calls in 3 interleaved rounds); ``scan`` compiles in about half the time, so it is
the default.

Compile time is **not** in the timings: the first call of each case compiles (its wall time is
reported as ``compile_ms``), then :func:`common.time_calls` makes its untimed warm-up calls before
the timed ones. XLA's CPU backend picks its own thread count (one per core by default;
``XLA_FLAGS`` changes it).

Run as a worker (prints one ``SPEED_COMPARE_JSON`` line)::

    python -m benchmarks.peers.jax_planners --weights W.npz --impl scan|unrolled [--repeats 20]
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from . import common, mlp_weights

IMPLS = ("scan", "unrolled")
Params = dict[str, jax.Array]


def load_params(params: dict[str, np.ndarray]) -> Params:
    """The six weight arrays (``w`` as ``[in, out]``) as float32 JAX arrays; probe entries dropped."""
    return {
        f"{kind}{name}": jnp.asarray(params[f"{kind}{name}"], dtype=jnp.float32)
        for name in mlp_weights.LAYERS
        for kind in ("w", "b")
    }


def mlp(params: Params, state: jax.Array, action: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(state [B, 2], action [B, 1]) -> (next_state [B, 2], reward [B])``, 3 -> 128 -> 128 -> 3, ReLU."""
    h = jnp.concatenate([state, action], axis=-1)
    last = len(mlp_weights.LAYERS) - 1
    for i, name in enumerate(mlp_weights.LAYERS):
        h = h @ params[f"w{name}"] + params[f"b{name}"]
        if i < last:
            h = jax.nn.relu(h)
    return h[:, : mlp_weights.STATE_DIM], h[:, mlp_weights.STATE_DIM]


def rollout_returns(params: Params, state: jax.Array, actions: jax.Array, model: Callable = mlp) -> jax.Array:
    """Sum of rewards of ``actions [H, N, A]`` (time-major) from ``state [1, S]``: ``[N]``, a ``lax.scan`` over H
    of ``model(params, state [N, S], action [N, A]) -> (next_state, reward [N])`` (default: the speed MLP)."""
    n = actions.shape[1]

    def step(carry, action):
        s, total = carry
        s, r = model(params, s, action)
        return (s, total + r), None

    start = (jnp.broadcast_to(state, (n, state.shape[-1])), jnp.zeros((n,), actions.dtype))
    (_, total), _ = lax.scan(step, start, actions)
    return total


def _sample(key: jax.Array, mean: jax.Array, std, num_samples: int, low: float, high: float) -> jax.Array:
    """``clip(mean + std x noise, low, high)``: ``[H, N, A]`` around ``mean [H, 1, A]`` (``std`` a float or ``[H, 1, A]``)."""
    horizon, _, action_dim = mean.shape
    noise = jax.random.normal(key, (horizon, num_samples, action_dim), dtype=jnp.float32)
    return jnp.clip(noise * std + mean, low, high)


def _initial_mean(warm, horizon: int, action_dim: int) -> jax.Array:
    """The search's starting mean ``[H, 1, A]``: zeros, or ``warm [H, A]`` (a shifted previous plan)."""
    if warm is None:
        return jnp.zeros((horizon, 1, action_dim), jnp.float32)
    return jnp.asarray(warm, jnp.float32).reshape(horizon, 1, action_dim)


def make_cem(
    num_samples: int,
    horizon: int,
    *,
    iterations: int = common.CEM_ITERATIONS,
    elite_fraction: float = common.CEM_ELITE_FRACTION,
    init_std: float = common.CEM_INIT_STD,
    low: float = common.ACTION_LOW,
    high: float = common.ACTION_HIGH,
    loop: str = "scan",
    step: Callable = mlp,
) -> Callable:
    """A jitted ``plan(params, state [1, S], key, warm=None) -> (mean [H, A], mean elite return, next key)``
    (``warm [H, A]``: the starting mean instead of 0; ``step``: the model, ``model(params, state, action)``).

    Gaussian CEM on ``[H, A]`` as in ``torch_planners.plan_cem``: mean 0, std ``init_std x (high -
    low) / 2``; each iteration samples N clipped sequences, keeps the ``round(elite_fraction x N)``
    best returns (``lax.top_k``) and refits mean and (population, ``ddof=0``) std to those elites.
    ``loop`` is ``"scan"`` (``lax.scan`` over the iterations) or ``"unrolled"`` (a Python loop).
    """
    if loop not in IMPLS:
        raise ValueError(f"loop must be one of {IMPLS}, not {loop!r}")
    action_dim = mlp_weights.ACTION_DIM
    num_elites = max(1, int(round(elite_fraction * num_samples)))

    def iteration(params, state, carry, key):
        mean, std = carry
        actions = _sample(key, mean, std, num_samples, low, high)
        returns = rollout_returns(params, state, actions, step)
        values, indices = lax.top_k(returns, num_elites)
        elites = jnp.take(actions, indices, axis=1)  # [H, K, A]
        return (elites.mean(axis=1, keepdims=True), elites.std(axis=1, keepdims=True)), values.mean()

    def plan(params, state, key, warm=None):
        keys = jax.random.split(key, iterations + 1)
        state = state.reshape(1, -1).astype(jnp.float32)
        carry = (_initial_mean(warm, horizon, action_dim),
                 jnp.full((horizon, 1, action_dim), init_std * (high - low) / 2, jnp.float32))
        if loop == "scan":
            carry, elite_returns = lax.scan(lambda c, k: iteration(params, state, c, k), carry, keys[1:])
            elite_return = elite_returns[-1]
        else:
            for i in range(iterations):
                carry, elite_return = iteration(params, state, carry, keys[1 + i])
        return carry[0][:, 0], elite_return, keys[0]

    return jax.jit(plan)


def make_mppi(
    num_samples: int,
    horizon: int,
    *,
    iterations: int = common.MPPI_ITERATIONS,
    noise_std: float = common.MPPI_NOISE_STD,
    temperature: float = common.MPPI_TEMPERATURE,
    low: float = common.ACTION_LOW,
    high: float = common.ACTION_HIGH,
    loop: str = "scan",
    step: Callable = mlp,
) -> Callable:
    """A jitted ``plan(params, state [1, S], key, warm=None) -> (mean [H, A], expected return, next key)``
    (``warm`` and ``step`` as for :func:`make_cem`).

    MPPI as in ``torch_planners.plan_mppi``: from mean 0, sample ``clip(mean + noise_std x noise)``,
    roll out, weight by ``softmax(returns / temperature)``, and set the mean to the weighted average
    of the sampled sequences; the expected return is ``weights . returns``.
    """
    if loop not in IMPLS:
        raise ValueError(f"loop must be one of {IMPLS}, not {loop!r}")
    action_dim = mlp_weights.ACTION_DIM

    def iteration(params, state, mean, key):
        actions = _sample(key, mean, noise_std, num_samples, low, high)
        returns = rollout_returns(params, state, actions, step)
        weights = jax.nn.softmax(returns / temperature)  # [N]
        return jnp.einsum("n,hna->ha", weights, actions)[:, None, :], weights @ returns

    def plan(params, state, key, warm=None):
        keys = jax.random.split(key, iterations + 1)
        state = state.reshape(1, -1).astype(jnp.float32)
        mean = _initial_mean(warm, horizon, action_dim)
        if loop == "scan" and iterations > 1:
            mean, expected = lax.scan(lambda m, k: iteration(params, state, m, k), mean, keys[1:])
            expected = expected[-1]
        else:
            for i in range(iterations):
                mean, expected = iteration(params, state, mean, keys[1 + i])
        return mean[:, 0], expected, keys[0]

    return jax.jit(plan)


def make_planner(case: common.Case, loop: str = "scan") -> Callable:
    """The jitted planning call for ``case`` (CEM or MPPI) with the shared settings."""
    factory = make_cem if case.planner == "CEM" else make_mppi
    return factory(case.samples, case.horizon, iterations=case.iterations, loop=loop)


_matmul = jax.jit(jnp.matmul)


def _matmul_seconds(size: int) -> float:
    ka, kb = jax.random.split(jax.random.key(size))
    a = jax.random.normal(ka, (size, size), jnp.float32)
    b = jax.random.normal(kb, (size, size), jnp.float32)
    jax.block_until_ready((a, b))
    start = time.perf_counter()
    _matmul(a, b).block_until_ready()
    return time.perf_counter() - start


def main() -> None:
    args = common.parse_args(__doc__.splitlines()[0], impls=IMPLS)
    jax.config.update("jax_platforms", "cpu")
    params_np = mlp_weights.load(args.weights)
    params = load_params(params_np)
    next_state, reward = jax.jit(mlp)(params, jnp.asarray(params_np["probe_state"]), jnp.asarray(params_np["probe_action"]))
    probe_error = mlp_weights.probe_error(params_np, np.asarray(next_state), np.asarray(reward))
    state = jnp.asarray([common.START_STATE], dtype=jnp.float32)

    results = []
    for case in common.selected_cases(args.cases):
        plan = make_planner(case, loop=args.impl)
        last = {"key": jax.random.key(0)}

        def call(plan=plan, last=last):
            out = plan(params, state, last["key"])
            jax.block_until_ready(out)
            last["plan"], last["key"] = out[:2], out[2]
            return out

        start = time.perf_counter()
        call()  # traces and compiles: not timed
        compile_ms = (time.perf_counter() - start) * 1e3
        timing = common.time_calls(call, args.repeats, common.warmup_calls(case))
        results.append(common.case_result(
            case, timing, expected_return=float(last["plan"][1]), compile_ms=compile_ms,
        ))

    peak = common.best_gflops(_matmul_seconds)
    common.emit(
        args.impl, f"jax {jax.__version__}", results, peak,
        extra={"probe_error": probe_error, "backend": jax.default_backend(),
               "devices": [str(d) for d in jax.devices()], "xla_flags": os.environ.get("XLA_FLAGS", "")},
    )


if __name__ == "__main__":
    main()

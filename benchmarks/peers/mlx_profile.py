"""Where the time of one wmplan planning call goes on the MLX CPU backend.

    python -m benchmarks.peers.mlx_profile [--samples 16384] [--horizon 30] [--repeats 10]

For one (N, H) it times, in one process:

1. ``planner.optimize`` for CEM (5 iterations) and MPPI (1 iteration), each MLP formulation;
2. the batched rollout alone (``planners.rollout``: H model steps over N sequences), so
   ``planner overhead = optimize - iterations x rollout``;
3. every operation of one folded model step in isolation (concatenate, the three matmuls, the two
   ReLUs, the planner's reward accumulation), and the same GEMMs through numpy's OpenBLAS, to see
   how close the isolated pieces come to the whole step and which of them dominate;
4. the planner's own per-iteration operations (sampling, clipping, sorting, elite gathering, refit).

Times are the minimum over ``--repeats`` runs (the least disturbed by other work on a shared
machine); each ``mx.eval`` also pays a fixed synchronisation cost of a few microseconds.
"""

from __future__ import annotations

import argparse
import os
import time

import mlx.core as mx
import numpy as np
from tabulate import tabulate

import planners

from . import common, mlp_weights
from .mlx_planners import MODELS, FoldedMLP, make_planner


def best_ms(fn, repeats: int, warmup: int = 2) -> float:
    """Minimum wall time of ``mx.eval(fn())`` in ms."""
    for _ in range(warmup):
        mx.eval(fn())
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        mx.eval(fn())
        best = min(best, time.perf_counter() - start)
    return best * 1e3


def numpy_best_ms(fn, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best * 1e3


def profile(num_samples: int, horizon: int, repeats: int, weights: str | None) -> None:
    params = mlp_weights.make_weights() if weights is None else mlp_weights.load(weights)
    n, h = num_samples, horizon
    state = mx.array([common.START_STATE], dtype=mx.float32)
    starts = mx.broadcast_to(state, (n, mlp_weights.STATE_DIM))
    actions = mx.random.uniform(-1.0, 1.0, (n, h, mlp_weights.ACTION_DIM), key=mx.random.key(0))
    mx.eval(starts, actions)
    flop_step = n * mlp_weights.flops_per_transition() / 1e9

    print(f"N={n}, H={h}; MLX {mx.__version__}, BLAS: {planners.runtime.blas.status().name}; "
          f"load average {os.getloadavg()[0]:.2f}; min of {repeats} runs\n")

    # 1 + 2: whole calls and rollouts, per formulation.
    rows = []
    for name, cls in MODELS.items():
        model = cls(params)
        roll = best_ms(lambda: planners.rollout(model, starts, actions), repeats)
        for planner_name, iters in (("CEM", common.CEM_ITERATIONS), ("MPPI", common.MPPI_ITERATIONS)):
            case = common.Case(planner_name, n, h, iters)
            planner = make_planner(case, model)
            call = best_ms(lambda: planner.optimize(state).actions, repeats)
            rollouts = iters * roll
            rows.append([
                f"{planner_name} x{iters}", name, f"{call:.2f}", f"{rollouts:.2f}", f"{call - rollouts:.2f}",
                f"{100 * (call - rollouts) / call:.0f}%", f"{roll / h:.3f}", f"{flop_step / (roll / h / 1e3):.0f}",
            ])
    print(tabulate(rows, headers=["call", "model", "optimize ms", "iters x rollout ms", "planner overhead ms",
                                  "overhead %", "ms / model step", "GFLOP/s in rollout"],
                   disable_numparse=True, stralign="right"))

    # Graph building (Python) alone, for the folded model.
    model = FoldedMLP(params)
    start = time.perf_counter()
    for _ in range(repeats):
        graph = planners.rollout(model, starts, actions)
    build = (time.perf_counter() - start) / repeats * 1e3
    mx.eval(graph)

    # 3: one folded step, op by op.
    step_total = best_ms(lambda: planners.rollout(model, starts, actions), repeats) / h
    s, a = mx.array(starts), actions[:, 0]
    ones = mx.ones((n, 1))
    x = mx.concatenate([s, a, ones], axis=-1)
    h1 = mx.maximum(x @ model.w1, 0.0)
    h2 = mx.maximum(h1 @ model.w2, 0.0)
    z1, z2 = x @ model.w1, h1 @ model.w2
    out = h2 @ model.w3
    total = mx.zeros((n,))
    mx.eval(x, h1, h2, z1, z2, out, total)
    many = max(repeats, 50)
    ops = [
        ("concat(state, action, 1)  [N,4]", best_ms(lambda: mx.concatenate([s, a, mx.ones((n, 1))], axis=-1), many), 0),
        ("matmul 1  [N,4] @ [4,129]", best_ms(lambda: x @ model.w1, many), 2 * n * 4 * 129),
        ("relu 1  [N,129]", best_ms(lambda: mx.maximum(z1, 0.0), many), 0),
        ("matmul 2  [N,129] @ [129,129]", best_ms(lambda: h1 @ model.w2, many), 2 * n * 129 * 129),
        ("relu 2  [N,129]", best_ms(lambda: mx.maximum(z2, 0.0), many), 0),
        ("matmul 3  [N,129] @ [129,3]", best_ms(lambda: h2 @ model.w3, many), 2 * n * 129 * 3),
        ("return += reward  [N]", best_ms(lambda: total + 1.0 * out[:, 2], many), 0),
    ]
    sync = best_ms(lambda: total, many)
    w1, w2, w3 = (np.array(w) for w in (model.w1, model.w2, model.w3))
    xn, h1n, h2n = np.array(x), np.array(h1), np.array(h2)
    numpy_ms = {
        "matmul 1  [N,4] @ [4,129]": numpy_best_ms(lambda: xn @ w1, many),
        "matmul 2  [N,129] @ [129,129]": numpy_best_ms(lambda: h1n @ w2, many),
        "matmul 3  [N,129] @ [129,3]": numpy_best_ms(lambda: h2n @ w3, many),
        "relu 1  [N,129]": numpy_best_ms(lambda: np.maximum(h1n, 0.0), many),
    }
    op_sum = sum(t for _, t, _ in ops)
    rows = [[name, f"{t:.3f}", f"{100 * t / op_sum:.0f}%", f"{flop / t / 1e6:.0f}" if flop else "",
             f"{numpy_ms[name]:.3f}" if name in numpy_ms else ""] for name, t, flop in ops]
    rows.append(["sum of isolated ops", f"{op_sum:.3f}", "100%", f"{flop_step / op_sum * 1e3:.0f}", ""])
    rows.append(["measured step inside the rollout", f"{step_total:.3f}", "", f"{flop_step / step_total * 1e3:.0f}", ""])
    rows.append(["(mx.eval of an evaluated array: sync cost)", f"{sync:.3f}", "", "", ""])
    rows.append(["(building the rollout graph in Python, per step)", f"{build / h:.3f}", "", "", ""])
    print()
    print(tabulate(rows, headers=["one folded model step, op by op", "ms", "share", "GFLOP/s", "numpy ms"],
                   disable_numparse=True, stralign="right"))

    # 4: the planner's own work per iteration (CEM), at [1, N, H, 1].
    dist = make_planner(common.Case("CEM", n, h, 1), model).distribution
    params0 = dist.initial(1, h)
    samples = dist.sample(mx.random.key(1), params0, n)
    returns = mx.random.normal((1, n))
    mx.eval(samples, returns)
    k = max(1, round(common.CEM_ELITE_FRACTION * n))
    order = mx.argsort(-returns, axis=1)[:, :k]
    elites = mx.take_along_axis(samples, order[:, :, None, None], axis=1)
    mx.eval(order, elites)
    weights_k = mx.full((1, k), 1.0 / k)
    rows = [
        ["sample normal + clip  [1,N,H,1]", f"{best_ms(lambda: dist.sample(mx.random.key(2), params0, n), many):.3f}"],
        ["argsort returns  [1,N]", f"{best_ms(lambda: mx.argsort(-returns, axis=1), many):.3f}"],
        ["gather elites  [1,K,H,1]", f"{best_ms(lambda: mx.take_along_axis(samples, order[:, :, None, None], axis=1), many):.3f}"],
        ["refit mean/std (einsum)", f"{best_ms(lambda: dist.fit(elites, weights_k), many):.3f}"],
        ["repeat start state  [N,2]", f"{best_ms(lambda: mx.repeat(state, n, axis=0), many):.3f}"],
    ]
    print()
    print(tabulate(rows, headers=["planner work per iteration (outside the model)", "ms"], disable_numparse=True, stralign="right"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=16384)
    parser.add_argument("--horizon", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--weights", help=".npz from benchmarks.peers.mlp_weights (default: generate, seed 0)")
    args = parser.parse_args()
    profile(args.samples, args.horizon, args.repeats, args.weights)


if __name__ == "__main__":
    main()

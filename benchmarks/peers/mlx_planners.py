"""The wmplan (MLX) side of the speed comparison: the shared MLP as ``mlx.nn.Module``s, planned with
the public ``planners.CEM`` / ``planners.MPPI`` classes.

Two formulations of the same function (both loaded from :mod:`benchmarks.peers.mlp_weights`):

- :class:`LinearMLP` — what a user writes: ``nn.Linear`` layers (``mx.addmm`` inside), ``nn.relu``.
- :class:`FoldedMLP` — the same network with every bias folded into its GEMM: the input carries a
  constant 1 (``concat(state, action, 1)``), and each hidden layer one extra unit that stays 1
  (``relu(1) = 1``), so a step is three matmuls, two ReLUs and one concatenate — no bias adds. On
  Linux MLX runs element-wise ops on one thread while the matmuls use both cores (OpenBLAS), so
  every element-wise pass over ``[N, 128]`` removed is time saved (see ``speed_compare --profile``).

``import planners`` puts MLX's float32 matmuls on OpenBLAS, in any import order (MLX's Linux wheel
otherwise multiplies with the single-threaded reference BLAS, about 6 GFLOP/s).

Run as a worker (prints one ``SPEED_COMPARE_JSON`` line)::

    python -m benchmarks.peers.mlx_planners --weights W.npz --impl folded|linear [--repeats 20]
"""

from __future__ import annotations

import time

import mlx.core as mx
import mlx.nn as nn
import numpy as np

import planners

from . import common, mlp_weights


class LinearMLP(nn.Module):
    """``(state [B, 2], action [B, 1]) -> (next_state [B, 2], reward [B])`` with ``nn.Linear`` layers."""

    def __init__(self, params: dict[str, np.ndarray]):
        super().__init__()
        sizes = mlp_weights.layer_sizes()
        self.layers = [nn.Linear(i, o) for i, o in zip(sizes[:-1], sizes[1:])]
        for layer, name in zip(self.layers, mlp_weights.LAYERS):
            layer.weight = mx.array(params[f"w{name}"].T)  # MLX keeps [out, in]
            layer.bias = mx.array(params[f"b{name}"])
        self.state_dim = mlp_weights.STATE_DIM
        self.freeze()

    def __call__(self, state: mx.array, action: mx.array) -> tuple[mx.array, mx.array]:
        h = mx.concatenate([state, action], axis=-1)
        for layer in self.layers[:-1]:
            h = nn.relu(layer(h))
        out = self.layers[-1](h)
        return out[:, : self.state_dim], out[:, self.state_dim]


class FoldedMLP(nn.Module):
    """The same MLP with biases folded into the GEMMs through a constant-1 unit (three matmuls a step).

    ``w1 [S+A+1, H1+1]``, ``w2 [H1+1, H2+1]``, ``w3 [H2+1, S+1]`` (stored ``[in, out]``, so ``x @ w``):
    the last input row of each holds the bias, the last output column of the hidden layers passes
    the constant 1 on.
    """

    def __init__(self, params: dict[str, np.ndarray]):
        super().__init__()
        names = mlp_weights.LAYERS
        folded = []
        for i, name in enumerate(names):
            w, b = params[f"w{name}"], params[f"b{name}"]
            hidden = i < len(names) - 1
            fan_in, fan_out = w.shape
            m = np.zeros((fan_in + 1, fan_out + (1 if hidden else 0)), dtype=np.float32)
            m[:fan_in, :fan_out] = w
            m[fan_in, :fan_out] = b
            if hidden:
                m[fan_in, fan_out] = 1.0  # the constant unit: 1 in, 1 out
            folded.append(mx.array(m))
        self.w1, self.w2, self.w3 = folded
        self.state_dim = mlp_weights.STATE_DIM
        self.freeze()

    def __call__(self, state: mx.array, action: mx.array) -> tuple[mx.array, mx.array]:
        ones = mx.ones((state.shape[0], 1), dtype=state.dtype)
        x = mx.concatenate([state, action, ones], axis=-1)
        h = mx.maximum(x @ self.w1, 0.0)
        h = mx.maximum(h @ self.w2, 0.0)
        out = h @ self.w3
        return out[:, : self.state_dim], out[:, self.state_dim]


MODELS = {"folded": FoldedMLP, "linear": LinearMLP, "compiled": FoldedMLP}  # compiled: each call one mx.compile program


def make_planner(case: common.Case, model, seed: int = 0, compile: bool = False):
    """``planners.CEM`` / ``planners.MPPI`` with the settings the torch peers use (``compile``: the planner's option)."""
    space = planners.Box(common.ACTION_LOW, common.ACTION_HIGH, shape=(mlp_weights.ACTION_DIM,))
    sizes = dict(horizon=case.horizon, samples=case.samples, iterations=case.iterations, seed=seed, compile=compile)
    if case.planner == "CEM":
        return planners.CEM(
            model, space, elite_fraction=common.CEM_ELITE_FRACTION, init_std=common.CEM_INIT_STD, momentum=0.0, **sizes
        )
    return planners.MPPI(model, space, temperature=common.MPPI_TEMPERATURE, init_std=common.MPPI_NOISE_STD, **sizes)


def _matmul_seconds(size: int) -> float:
    a = mx.random.normal((size, size), key=mx.random.key(size))
    b = mx.random.normal((size, size), key=mx.random.key(size + 1))
    mx.eval(a, b)
    start = time.perf_counter()
    mx.eval(a @ b)
    return time.perf_counter() - start


def main() -> None:
    args = common.parse_args(__doc__.splitlines()[0], impls=tuple(MODELS))
    if not hasattr(planners, "CEM") or not hasattr(planners, "MPPI"):
        raise SystemExit("planners.CEM / planners.MPPI are not available in this checkout")
    params = mlp_weights.load(args.weights)
    model = MODELS[args.impl](params)
    next_state, reward = model(mx.array(params["probe_state"]), mx.array(params["probe_action"]))
    probe_error = mlp_weights.probe_error(params, np.array(next_state), np.array(reward))
    state = mx.array([common.START_STATE], dtype=mx.float32)

    results = []
    for case in common.selected_cases(args.cases):
        planner = make_planner(case, model, compile=args.impl == "compiled")
        last = {}

        def call(planner=planner, last=last):
            last["plan"] = plan = planner.optimize(state)
            mx.eval(plan.actions, plan.expected_return)  # optimize() already evaluates; kept for clarity
            return plan

        timing = common.time_calls(call, args.repeats, common.warmup_calls(case))
        results.append(common.case_result(case, timing, expected_return=float(last["plan"].expected_return[0])))

    peak = common.best_gflops(_matmul_seconds)
    blas = planners.runtime.blas.status()
    common.emit(
        args.impl, f"mlx {mx.__version__}", results, peak,
        extra={"probe_error": probe_error, "blas": blas.name + (f" {blas.kernels} kernels" if blas.kernels else ""),
               "blas_active": blas.active},
    )


if __name__ == "__main__":
    main()

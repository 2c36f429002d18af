"""Torch peers for the speed comparison: hand-written CEM/MPPI, and the ``pytorch_mppi`` package.

Both plan with :class:`TorchMLP` (the weights of :mod:`benchmarks.peers.mlp_weights`), float32 on
the CPU with ``torch.set_num_threads(2)``, under ``torch.inference_mode()``. The hand-written
planners are meant as a fair, competent baseline: one batched rollout over all N samples per step,
time-major action tensors (``actions[t]`` is contiguous), in-place sampling/clipping, ``topk`` for
the elites and a softmax for MPPI's weights.

``pytorch_mppi.MPPI`` wants ``dynamics(state, action) -> next_state`` and ``running_cost(state,
action) -> cost``; it calls the cost right after the dynamics of the same step, on the new state.
:class:`CachedRewardDynamics` evaluates the MLP **once** per step in ``dynamics`` and hands the
cached ``-reward`` of that same transition to ``running_cost`` (no second MLP call).

Run as a worker (prints one ``SPEED_COMPARE_JSON`` line)::

    python -m benchmarks.peers.torch_planners --weights W.npz --impl handwritten|pytorch_mppi [--repeats 20]
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import common, mlp_weights

THREADS = 2


class TorchMLP(nn.Module):
    """``(state [B, 2], action [B, 1]) -> (next_state [B, 2], reward [B])``, 3 -> 128 -> 128 -> 3, ReLU."""

    def __init__(self, params: dict[str, np.ndarray]):
        super().__init__()
        sizes = mlp_weights.layer_sizes()
        self.layers = nn.ModuleList(nn.Linear(i, o) for i, o in zip(sizes[:-1], sizes[1:]))
        with torch.no_grad():
            for layer, name in zip(self.layers, mlp_weights.LAYERS):
                layer.weight.copy_(torch.from_numpy(params[f"w{name}"].T.copy()))  # torch keeps [out, in]
                layer.bias.copy_(torch.from_numpy(params[f"b{name}"]))
        self.requires_grad_(False)
        self.state_dim = mlp_weights.STATE_DIM

    def forward(self, state: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.cat((state, action), dim=-1)
        for layer in self.layers[:-1]:
            h = F.relu(layer(h), inplace=True)  # F.linear = one addmm (bias folded into the GEMM's beta)
        out = self.layers[-1](h)
        return out[:, : self.state_dim], out[:, self.state_dim]


def _rollout_returns(model: TorchMLP, state: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """Sum of rewards of ``actions [H, N, A]`` (time-major) from ``state [1, S]``: ``[N]``."""
    horizon, n = actions.shape[0], actions.shape[1]
    s = state.expand(n, -1)
    total = torch.zeros(n, dtype=actions.dtype)
    for t in range(horizon):
        s, r = model(s, actions[t])
        total += r
    return total


@torch.inference_mode()
def plan_cem(
    model: TorchMLP,
    state: torch.Tensor,
    *,
    num_samples: int,
    horizon: int,
    iterations: int = common.CEM_ITERATIONS,
    elite_fraction: float = common.CEM_ELITE_FRACTION,
    init_std: float = common.CEM_INIT_STD,
    low: float = common.ACTION_LOW,
    high: float = common.ACTION_HIGH,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """CEM over a Gaussian on ``[H, A]`` action sequences: returns ``(mean [H, A], mean elite return)``."""
    action_dim = mlp_weights.ACTION_DIM
    state = state.reshape(1, -1).to(torch.float32)
    mean = torch.zeros(horizon, 1, action_dim)
    std = torch.full((horizon, 1, action_dim), init_std * (high - low) / 2)
    num_elites = max(1, int(round(elite_fraction * num_samples)))
    actions = torch.empty(horizon, num_samples, action_dim)
    elite_return = torch.tensor(float("nan"))
    for _ in range(iterations):
        actions.normal_(generator=generator).mul_(std).add_(mean).clamp_(low, high)
        returns = _rollout_returns(model, state, actions)
        top = torch.topk(returns, num_elites, sorted=False)
        elites = actions.index_select(1, top.indices)  # [H, K, A]
        mean = elites.mean(dim=1, keepdim=True)
        std = elites.std(dim=1, keepdim=True, unbiased=False)
        elite_return = top.values.mean()
    return mean[:, 0], elite_return


@torch.inference_mode()
def plan_mppi(
    model: TorchMLP,
    state: torch.Tensor,
    *,
    num_samples: int,
    horizon: int,
    iterations: int = common.MPPI_ITERATIONS,
    noise_std: float = common.MPPI_NOISE_STD,
    temperature: float = common.MPPI_TEMPERATURE,
    low: float = common.ACTION_LOW,
    high: float = common.ACTION_HIGH,
    mean: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """MPPI: sample noise around ``mean [H, A]``, roll out, softmax-weight by return, update the mean."""
    action_dim = mlp_weights.ACTION_DIM
    state = state.reshape(1, -1).to(torch.float32)
    mean = torch.zeros(horizon, 1, action_dim) if mean is None else mean.reshape(horizon, 1, action_dim).clone()
    actions = torch.empty(horizon, num_samples, action_dim)
    expected = torch.tensor(float("nan"))
    for _ in range(iterations):
        actions.normal_(generator=generator).mul_(noise_std).add_(mean).clamp_(low, high)
        returns = _rollout_returns(model, state, actions)
        weights = torch.softmax(returns / temperature, dim=0)  # [N]
        mean = torch.einsum("n,hna->ha", weights, actions).unsqueeze(1)
        expected = torch.dot(weights, returns)
    return mean[:, 0], expected


class CachedRewardDynamics:
    """Adapts :class:`TorchMLP` to ``pytorch_mppi``: one MLP call per step, its reward cached for the cost."""

    def __init__(self, model: TorchMLP):
        self.model = model
        self._reward: torch.Tensor | None = None

    def dynamics(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        next_state, self._reward = self.model(state, action)
        return next_state

    def running_cost(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        # pytorch_mppi calls this with the state that dynamics() just returned: the reward is that step's.
        return -self._reward


def make_pytorch_mppi(model: TorchMLP, *, num_samples: int, horizon: int):
    """A ``pytorch_mppi.MPPI`` controller with the shared settings (noise std, temperature, bounds, U = 0)."""
    from pytorch_mppi import MPPI

    adapter = CachedRewardDynamics(model)
    return MPPI(
        adapter.dynamics,
        adapter.running_cost,
        nx=mlp_weights.STATE_DIM,
        noise_sigma=torch.eye(mlp_weights.ACTION_DIM) * common.MPPI_NOISE_STD**2,
        num_samples=num_samples,
        horizon=horizon,
        lambda_=common.MPPI_TEMPERATURE,
        u_min=torch.full((mlp_weights.ACTION_DIM,), common.ACTION_LOW),
        u_max=torch.full((mlp_weights.ACTION_DIM,), common.ACTION_HIGH),
        U_init=torch.zeros(horizon, mlp_weights.ACTION_DIM),
    )


def _matmul_seconds(size: int) -> float:
    g = torch.Generator().manual_seed(size)
    a, b = torch.randn(size, size, generator=g), torch.randn(size, size, generator=g)
    start = time.perf_counter()
    torch.mm(a, b)
    return time.perf_counter() - start


def main() -> None:
    args = common.parse_args(__doc__.splitlines()[0], impls=("handwritten", "pytorch_mppi"))
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    params = mlp_weights.load(args.weights)
    model = TorchMLP(params).eval()
    with torch.inference_mode():
        next_state, reward = model(torch.from_numpy(params["probe_state"]), torch.from_numpy(params["probe_action"]))
    probe_error = mlp_weights.probe_error(params, next_state.numpy(), reward.numpy())
    state = torch.tensor([common.START_STATE], dtype=torch.float32)
    generator = torch.Generator().manual_seed(0)

    results = []
    for case in common.selected_cases(args.cases):
        if args.impl == "pytorch_mppi":
            if case.planner != "MPPI":
                continue
            controller = make_pytorch_mppi(model, num_samples=case.samples, horizon=case.horizon)

            def call(controller=controller):
                with torch.inference_mode():
                    return controller.command(state[0], shift_nominal_trajectory=False)

            def expected_return(controller=controller):
                return float(-(controller.omega * controller.cost_total).sum())  # includes its action-noise cost
        else:
            planner = plan_cem if case.planner == "CEM" else plan_mppi
            last = {}

            def call(planner=planner, case=case, last=last):
                last["plan"] = planner(
                    model, state, num_samples=case.samples, horizon=case.horizon,
                    iterations=case.iterations, generator=generator,
                )
                return last["plan"]

            def expected_return(last=last):
                return float(last["plan"][1])

        timing = common.time_calls(call, args.repeats, common.warmup_calls(case))
        results.append(common.case_result(case, timing, expected_return=expected_return()))

    peak = common.best_gflops(_matmul_seconds)
    common.emit(
        args.impl, f"torch {torch.__version__}", results, peak,
        extra={"threads": torch.get_num_threads(), "probe_error": probe_error,
               "blas": _torch_blas(), **({"pytorch_mppi": _pytorch_mppi_version()} if args.impl == "pytorch_mppi" else {})},
    )


def _torch_blas() -> str:
    config = torch.__config__.show()
    for line in config.splitlines():
        if "BLAS_INFO" in line:
            return line.split("=", 1)[-1].strip().rstrip(",")
    return "mkldnn" if torch.backends.mkldnn.is_available() else "unknown"


def _pytorch_mppi_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pytorch-mppi")
    except PackageNotFoundError:
        return "unknown"


if __name__ == "__main__":
    main()

"""What every speed-comparison worker shares (numpy only): the cases, planner settings, timing and output.

A worker is a module run as ``python -m benchmarks.peers.<worker> --weights W.npz --repeats R``; it
plans each case of :data:`CASES` from one state, times ``R`` calls after warm-up, and prints one
line ``SPEED_COMPARE_JSON {...}`` (see :func:`emit`) that :mod:`benchmarks.speed_compare` reads.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from . import mlp_weights

MARKER = "SPEED_COMPARE_JSON "

# Planner settings shared by all implementations (actions live in [-1, 1]; one state planned).
START_STATE = (0.5, -0.25)
ACTION_LOW, ACTION_HIGH = -1.0, 1.0
CEM_ITERATIONS = 5
CEM_ELITE_FRACTION = 0.1
CEM_INIT_STD = 0.5  # per action, in units of the action range [-1, 1]
MPPI_ITERATIONS = 1
MPPI_NOISE_STD = 0.5
MPPI_TEMPERATURE = 1.0


@dataclass(frozen=True)
class Case:
    """One planning call: ``planner`` in {"CEM", "MPPI"}, N samples, H horizon, optimisation iterations."""

    planner: str
    samples: int
    horizon: int
    iterations: int

    @property
    def key(self) -> str:
        return f"{self.planner} N={self.samples} H={self.horizon}"

    @property
    def transitions(self) -> int:
        """MLP evaluations per planning call: iterations x N x H."""
        return self.iterations * self.samples * self.horizon

    @property
    def gflop(self) -> float:
        """GFLOP of MLP matmuls per call (2 x MACs per transition x transitions)."""
        return self.transitions * mlp_weights.flops_per_transition() / 1e9


CASES = (
    Case("CEM", 1000, 15, CEM_ITERATIONS),
    Case("CEM", 16384, 30, CEM_ITERATIONS),
    Case("MPPI", 1000, 15, MPPI_ITERATIONS),
    Case("MPPI", 16384, 30, MPPI_ITERATIONS),
)


def warmup_calls(case: Case) -> int:
    """Untimed calls before timing: a few for the small case (allocator, thread pools, caches)."""
    return 5 if case.transitions * 4 < 2_000_000 else 2


def time_calls(call: Callable[[], object], repeats: int, warmup: int) -> dict:
    """Run ``call`` ``warmup`` times untimed, then ``repeats`` times timed (ms). ``call`` must block until done."""
    for _ in range(warmup):
        call()
    times = []
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeats):
            start = time.perf_counter()
            call()
            times.append((time.perf_counter() - start) * 1e3)
    finally:
        if gc_was_enabled:
            gc.enable()
    ordered = sorted(times)
    quartiles = statistics.quantiles(ordered, n=4) if len(ordered) >= 2 else [ordered[0]] * 3
    return {
        "median_ms": statistics.median(ordered),
        "min_ms": ordered[0],
        "p25_ms": quartiles[0],
        "p75_ms": quartiles[2],
        "times_ms": times,
    }


def best_gflops(matmul: Callable[[int], float], sizes=(1024, 2048), repeats: int = 5) -> dict:
    """Best rate over ``sizes`` of ``matmul(size) -> seconds`` (best of ``repeats`` each), in GFLOP/s."""
    rates = {}
    for size in sizes:
        matmul(size)  # warm up
        best = min(matmul(size) for _ in range(repeats))
        rates[str(size)] = 2.0 * size**3 / best / 1e9
    return {"gflops": max(rates.values()), "by_size": rates}


def parse_args(description: str, impls: tuple[str, ...] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--weights", required=True, help=".npz from benchmarks.peers.mlp_weights")
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per case (median reported)")
    parser.add_argument("--cases", default="all", help="comma-separated case indices into CASES, or 'all'")
    if impls:
        parser.add_argument("--impl", choices=impls, default=impls[0])
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


def selected_cases(spec: str) -> list[Case]:
    if spec == "all":
        return list(CASES)
    return [CASES[int(i)] for i in spec.split(",") if i.strip()]


def emit(impl: str, framework: str, results: list[dict], peak: dict, extra: dict | None = None) -> None:
    """Print the worker's one-line JSON result for the parent process."""
    payload = {
        "impl": impl,
        "framework": framework,
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "pid": os.getpid(),
        "peak": peak,
        "results": results,
        **(extra or {}),
    }
    sys.stdout.write(MARKER + json.dumps(payload) + "\n")
    sys.stdout.flush()


def case_result(case: Case, timing: dict, **extra) -> dict:
    out = {"case": asdict(case), "key": case.key, "transitions": case.transitions, "gflop": case.gflop, **timing}
    out["gflops"] = case.gflop / (timing["median_ms"] / 1e3)
    out.update(extra)
    return out

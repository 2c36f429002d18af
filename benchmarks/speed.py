"""Planning throughput: one planning call from one state, timed per (planner, N, H)."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

import mlx.core as mx

import planners
from worldmodel.checks import at_least
from worldmodel.envs import env_record
from worldmodel.recipe import demo_start

from .suite import CountingDynamics


def grid_sizes(text: str, name: str) -> list[int]:
    """``"256,1024"`` -> ``[256, 1024]`` (the sizes ``name`` of a speed grid); ``ValueError`` unless positive integers."""
    try:
        values = [int(tok) for tok in text.split(",") if tok.strip()]
    except ValueError:
        raise ValueError(f"{name} must be comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise ValueError(f"{name} must be positive integers, got {text!r}")
    return values


def check_speed_settings(names: tuple, samples: str, horizons: str, iterations, repeats: int) -> tuple:
    """``(names, samples, horizons)`` of ``wmplan speed``, the grids parsed: ``ValueError`` naming the bad value's option."""
    at_least(1, iterations=iterations, repeats=repeats)
    for name in names:
        planners.planner_class(name)
    return names, grid_sizes(samples, "samples"), grid_sizes(horizons, "horizons")


def run_speed(model, env, names, samples, horizons, iterations, repeats: int, device, log: Callable[[str], None] | None = None) -> dict:
    """``wmplan speed``: the folded ``model``'s planning speed (:func:`measure_planning`) against the measured float32
    matmul peak, progress to ``log``. Returns the JSON-ready result (:func:`write_speed` prints and writes it)."""
    model, blas, peak = model.folded(), planners.runtime.blas.status(), planners.runtime.blas.measure_matmul_gflops()
    rows = measure_planning(model, env, names, samples, horizons, iterations, repeats, peak, log=log)
    return {"device": device, "env": env_record(env), "blas": blas.name, "matmul_peak_gflops": peak, "rows": rows,
            "flops_per_transition": model.flops_per_transition(), "env_repr": repr(env)}


def write_speed(result: dict, json_path=None, echo: Callable[[str], None] = print) -> None:
    """``wmplan speed``'s output: the device, BLAS, peak and model, the table (:func:`speed_table`), the JSON if asked for."""
    from .report import write_outputs

    echo(f"Device: {result['device']}\nBLAS: {result['blas']}; float32 matmul peak (1024x1024): {result['matmul_peak_gflops']:.1f} "
         f"GFLOP/s; model: {result['flops_per_transition']} FLOP per transition; env: {result['env_repr']}")
    echo(speed_table(result["rows"]))
    write_outputs(result, json_path, announce=echo)


def measure_planning(model, env, names, sizes, horizons, iterations, repeats: int, peak_gflops: float,
                     log: Callable[[str], None] | None = None) -> list[dict]:
    """Median time of ``repeats`` ``optimize`` calls (after one warm-up) for every planner x N x H.

    The planners plan ``model`` in ``env``'s action space, with its termination, from its demo start;
    ``log`` gets a line per cell as it is measured (progress).

    Returns:
        rows with ``ms_per_call``, ``transitions_per_s`` (imagined transitions the planner asked the
        model for, per second), ``gflops`` (the model's matmul FLOPs per second) and ``percent_of_peak``.
    """
    flops = model.flops_per_transition()
    state = mx.array(demo_start(env)[None])  # [1, S]
    cells = []  # every planner is built and its memory checked before the first one is timed
    for name in names:
        for horizon in horizons:
            for samples in sizes:
                counted = CountingDynamics(model)
                options = {"horizon": horizon, "samples": samples}
                if iterations is not None:
                    options["iterations"] = iterations
                planner = planners.make_planner(name, counted, env.action_space, seed=0, termination=env.termination, **options)
                planner.check_memory(state.shape[0])
                cells.append((name, horizon, samples, counted, planner))
    rows = []
    for number, (name, horizon, samples, counted, planner) in enumerate(cells, 1):
        planner.optimize(state)  # warm-up
        counted.count = 0
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            planner.optimize(state)
            times.append(time.perf_counter() - start)
        seconds = statistics.median(times)
        per_call = counted.count / repeats
        gflops = per_call * flops / seconds / 1e9
        rows.append({
            "planner": name, "samples": samples, "horizon": horizon, "iterations": planner.iterations,
            "ms_per_call": 1000 * seconds, "transitions_per_s": per_call / seconds,
            "gflops": gflops, "percent_of_peak": 100 * gflops / peak_gflops,
        })
        if log:
            log(f"[{number}/{len(cells)}] {name} N={samples} H={horizon}: {1000 * seconds:.1f} ms per call")
    return rows


def speed_table(rows: list[dict]) -> str:
    """The rows of :func:`measure_planning` as the table ``wmplan speed`` prints."""
    from tabulate import tabulate

    return tabulate(
        [(r["planner"], r["samples"], r["horizon"], r["iterations"], f"{r['ms_per_call']:.1f}",
          f"{r['transitions_per_s']:.3g}", f"{r['gflops']:.1f}", f"{r['percent_of_peak']:.0f}%") for r in rows],
        headers=("planner", "N", "H", "iters", "ms/call", "transitions/s", "GFLOP/s", "of peak"),
        disable_numparse=True,
    )


def machine_lines() -> list[str]:
    """What ``wmplan --version`` prints: wmplan's and MLX's versions and device, the active BLAS (its route and
    threads), the CPU streams rollouts split over, and the measured float32 matmul GFLOP/s.

    Raises:
        ValueError: a malformed ``WMPLAN_CPU_STREAMS`` (or another runtime setting).
    """
    from importlib.metadata import PackageNotFoundError, version

    from planners.runtime import blas, streams

    try:
        wmplan = version("wmplan")
    except PackageNotFoundError:
        wmplan = "unknown"
    status, gflops, threads = blas.status(), blas.measure_matmul_gflops(), blas.threads()
    setting = os.environ.get("WMPLAN_BLAS_THREADS", "").strip()  # read once at import; shown only when given
    coretype = " (set by OPENBLAS_CORETYPE)" if status.kernels and os.environ.get("OPENBLAS_CORETYPE") else ""
    return [
        f"wmplan {wmplan} (mlx {mx.__version__}, device {mx.default_device()})",
        f"BLAS: {status.name}{'' if status.active else ' — ' + (status.message or 'not optimised')}"
        + (f", {status.kernels} kernels" if status.kernels else "") + coretype + f", route: {status.route}"
        + (f", {threads} thread(s)" + (f" (WMPLAN_BLAS_THREADS={setting})" if setting else "") if threads else ""),
        f"Rollouts split over {streams.default_count()} CPU stream(s) (WMPLAN_CPU_STREAMS)"
        if mx.default_device() == mx.cpu else "Rollouts on one GPU stream",
        f"float32 matmul 1024x1024: {gflops:.1f} GFLOP/s",
    ]

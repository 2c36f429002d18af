"""Planning throughput: one planning call from one state, timed per (planner, N, H)."""

from __future__ import annotations

import statistics
import time

import mlx.core as mx

import planners
from worldmodel.recipe import demo_start

from .suite import CountingDynamics


def measure_planning(model, env, names, sizes, horizons, iterations, repeats: int, peak_gflops: float) -> list[dict]:
    """Median time of ``repeats`` ``optimize`` calls (after one warm-up) for every planner x N x H.

    The planners plan ``model`` in ``env``'s action space, with its termination, from its demo start.

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
    for name, horizon, samples, counted, planner in cells:
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
    return rows

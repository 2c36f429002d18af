"""Side-by-side planning speed: hand-written torch, ``pytorch_mppi``, JAX and wmplan (MLX), same MLP, same weights.

    python -m benchmarks.speed_compare [--repeats 20] [--json PATH]

One planning call from a batch of one state, for CEM (5 iterations) and MPPI (1 iteration) at
(N, H) = (1000, 15) and (16384, 30). The network is 3 -> 128 -> 128 -> 3 (state 2 + action 1 in,
next state 2 + reward 1 out, ReLU), built from one ``.npz`` of numpy weights (seed 0) by every
framework, each checked against a float64 numpy forward pass. Every implementation runs in its
own process (torch and MLX in one process slow each other down), times ``--repeats`` calls after
warm-up and reports the median; compile time (JAX's ``jit``) falls in the untimed warm-up and is
reported apart. The ratio columns are ``peer ms / wmplan ms``: above 1 wmplan is faster, below 1
the peer is. GFLOP/s counts the MLP's matmuls only
(``2 x MACs per transition x transitions per call``) and is set against the best float32
1024^2 / 2048^2 matmul rate measured by the same framework in the same process.

torch and JAX are never required: without them (``pip install ".[peers]"`` adds torch,
pytorch-mppi and jax) their columns are skipped. The workers live in :mod:`benchmarks.peers`; the
JAX one (:mod:`benchmarks.peers.jax_planners`) jits each whole planning call, with ``lax.scan`` over
the horizon and over CEM's iterations (``--workers jax_unrolled``: a Python loop over the
iterations inside the jit instead).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tabulate import tabulate

from .peers import common, mlp_weights

ROOT = Path(__file__).resolve().parent.parent  # the folder holding the benchmarks package


@dataclass(frozen=True)
class Worker:
    """One column of the table: a module run in its own process with ``--impl``."""

    name: str
    label: str
    module: str
    impl: str
    needs: tuple[str, ...]
    planners: tuple[str, ...] = ("CEM", "MPPI")

    def available(self) -> str | None:
        """``None`` when it can run, else why not."""
        missing = [m for m in self.needs if importlib.util.find_spec(m) is None]
        return f"{', '.join(missing)} not installed" if missing else None


TORCH = Worker("torch", "hand-written torch", "benchmarks.peers.torch_planners", "handwritten", ("torch",))
PYTORCH_MPPI = Worker(
    "pytorch_mppi", "pytorch_mppi", "benchmarks.peers.torch_planners", "pytorch_mppi", ("torch", "pytorch_mppi"), ("MPPI",)
)
JAX = Worker("jax", "JAX", "benchmarks.peers.jax_planners", "scan", ("jax",))
JAX_UNROLLED = Worker(  # MPPI has one iteration: the same program as "jax"
    "jax_unrolled", "JAX (unrolled CEM)", "benchmarks.peers.jax_planners", "unrolled", ("jax",), ("CEM",)
)
WMPLAN = Worker("wmplan", "wmplan (MLX)", "benchmarks.peers.mlx_planners", "folded", ("mlx",))
WMPLAN_LINEAR = Worker("wmplan_linear", "wmplan (MLX, nn.Linear)", "benchmarks.peers.mlx_planners", "linear", ("mlx",))
WMPLAN_COMPILED = Worker("wmplan_compiled", "wmplan (MLX, compiled)", "benchmarks.peers.mlx_planners", "compiled", ("mlx",))
WORKERS = {w.name: w for w in (TORCH, PYTORCH_MPPI, JAX, JAX_UNROLLED, WMPLAN, WMPLAN_LINEAR, WMPLAN_COMPILED)}
DEFAULT_WORKERS = ("torch", "pytorch_mppi", "jax", "wmplan")


def _cpu_seconds() -> float | None:
    """Busy CPU seconds of the whole machine so far (``/proc/stat``), or ``None`` where unavailable."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def run_worker(worker: Worker, weights: Path, repeats: int, cases: str, timeout: float | None = None) -> dict:
    """Run one worker process; its parsed JSON (plus how busy the rest of the machine was), or ``{"error": ...}``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    command = [sys.executable, "-m", worker.module, "--weights", str(weights), "--repeats", str(repeats),
               "--impl", worker.impl, "--cases", cases]
    busy0, own0 = _cpu_seconds(), _children_cpu_seconds()
    start = time.perf_counter()
    try:
        proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    wall = time.perf_counter() - start
    busy1, own1 = _cpu_seconds(), _children_cpu_seconds()
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(common.MARKER):
            result = json.loads(line[len(common.MARKER):])
            result["wall_s"] = wall
            if busy0 is not None and busy1 is not None:
                others = max(0.0, (busy1 - busy0) - (own1 - own0))
                result["others_cpu_fraction"] = others / (wall * (os.cpu_count() or 1))
            return result
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
    return {"error": f"exit code {proc.returncode}: " + " | ".join(tail)}


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cpu_busy(seconds: float = 2.0) -> float | None:
    """Fraction of all CPUs busy over ``seconds`` (from ``/proc/stat``), or ``None`` where unavailable."""

    def sample():
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:9]]
        return sum(fields), fields[3] + fields[4]  # total, idle + iowait

    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except (OSError, ValueError):
        return None
    return 1.0 - (idle1 - idle0) / max(total1 - total0, 1)


def wait_for_quiet(max_seconds: float, threshold: float = 0.1, checks: int = 3) -> float | None:
    """Wait (at most ``max_seconds``) until the CPUs are idle for ``checks`` samples in a row; last busy fraction."""
    deadline = time.monotonic() + max_seconds
    quiet, busy = 0, None
    while time.monotonic() < deadline:
        busy = cpu_busy()
        if busy is None:
            return None
        quiet = quiet + 1 if busy < threshold else 0
        if quiet >= checks:
            break
    return busy


def merge_rounds(rounds: list[dict]) -> dict:
    """Pool the per-call times of several runs of one worker (``--rounds``); medians recomputed."""
    ok = [r for r in rounds if "error" not in r]
    if not ok:
        return rounds[-1]
    if len(ok) == 1:
        return ok[0]
    merged = dict(ok[0])
    merged["peak"] = max((r["peak"] for r in ok), key=lambda p: p["gflops"])
    results = []
    for i, first in enumerate(ok[0]["results"]):
        times = [t for r in ok for t in r["results"][i]["times_ms"]]
        case = common.Case(**first["case"])
        timing = _summary(times)
        extra = {k: first[k] for k in ("expected_return", "compile_ms") if k in first}
        results.append(common.case_result(case, timing, **extra))
    merged["results"] = results
    merged["rounds"] = len(ok)
    merged["others_cpu_fraction"] = max(r.get("others_cpu_fraction", 0.0) for r in ok)
    return merged


def _summary(times: list[float]) -> dict:
    import statistics

    ordered = sorted(times)
    q = statistics.quantiles(ordered, n=4) if len(ordered) >= 2 else [ordered[0]] * 3
    return {"median_ms": statistics.median(ordered), "min_ms": ordered[0], "p25_ms": q[0], "p75_ms": q[2], "times_ms": times}


def build_tables(cases: list[common.Case], runs: dict[str, dict], names: list[str]):
    """Two tables ``(header, rows)``: ms per call with time ratios against wmplan; GFLOP/s with % of peak.

    The peak is the machine's: the best fp32 matmul rate any worker measured (wmplan's own matmul
    probe runs on one BLAS thread, so its single-process figure is about half the machine's).
    """
    by_key = {name: {r["key"]: r for r in runs[name].get("results", [])} for name in names}
    ratio_names = [n for n in names if not n.startswith("wmplan")] if "wmplan" in names else []
    label = {n: WORKERS[n].label for n in names}
    time_header = ["planner (N, H)", *(f"{label[n]} ms" for n in names), *(f"{label[n]} / wmplan" for n in ratio_names)]
    rate_header = ["planner (N, H)", "GFLOP / call", *(f"{label[n]} GFLOP/s (% machine peak)" for n in names)]
    peak = max((runs[n].get("peak", {}).get("gflops") or 0.0 for n in names), default=0.0)
    time_rows, rate_rows = [], []
    for case in cases:
        name = f"{case.planner} x{case.iterations} ({case.samples}, {case.horizon})"
        cells = {n: by_key[n].get(case.key) for n in names}
        base = cells.get("wmplan")
        time_row = [name, *(f"{c['median_ms']:.1f}" if c else "–" for c in cells.values())]
        time_row += [f"{cells[n]['median_ms'] / base['median_ms']:.2f}" if cells[n] and base else "–" for n in ratio_names]
        rate_row = [name, f"{case.gflop:.2f}"]
        for n in names:
            c = cells[n]
            rate_row.append(f"{c['gflops']:.0f} ({100 * c['gflops'] / peak:.0f}%)" if c and peak else "–")
        time_rows.append(time_row)
        rate_rows.append(rate_row)
    return (time_header, time_rows), (rate_header, rate_rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per case (median reported). Default: 20")
    parser.add_argument("--json", type=Path, help="also write every timing to this JSON file")
    parser.add_argument(
        "--workers", default=",".join(DEFAULT_WORKERS),
        help=f"comma-separated columns from {', '.join(WORKERS)}. Default: {','.join(DEFAULT_WORKERS)}",
    )
    parser.add_argument("--cases", default="all", help="comma-separated indices into the case list, or 'all'")
    parser.add_argument("--rounds", type=int, default=1, help="run the workers this many times, interleaved, pooling their calls")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds allowed per worker process")
    parser.add_argument(
        "--wait-quiet", type=float, default=0.0, metavar="SECONDS",
        help="before each worker, wait up to this long for the CPUs to be idle (shared machines). Default: 0",
    )
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.rounds < 1:
        parser.error("--repeats and --rounds must be at least 1")
    names = [n.strip() for n in args.workers.split(",") if n.strip()]
    unknown = [n for n in names if n not in WORKERS]
    if unknown:
        parser.error(f"unknown worker {unknown[0]!r}; choose from {', '.join(WORKERS)}")
    cases = common.selected_cases(args.cases)

    skipped = {}
    for name in names:
        reason = WORKERS[name].available()
        if reason:
            skipped[name] = reason
            print(f"skipping {WORKERS[name].label}: {reason} (pip install \".[peers]\" for the torch and JAX columns)")
    active = [n for n in names if n not in skipped]
    if not active:
        print("nothing to run")
        return 1

    load_before = os.getloadavg()
    rounds: dict[str, list[dict]] = {n: [] for n in active}
    with tempfile.TemporaryDirectory(prefix="wmplan-speed-") as tmp:
        weights = mlp_weights.save(Path(tmp) / "mlp.npz")
        for r in range(args.rounds):
            for name in active:
                worker = WORKERS[name]
                worker_cases = ",".join(
                    str(common.CASES.index(c)) for c in cases if c.planner in worker.planners
                )
                if not worker_cases:
                    continue
                if args.wait_quiet > 0:
                    busy = wait_for_quiet(args.wait_quiet)
                    if busy is not None and busy >= 0.1:
                        print(f"(CPUs still {100 * busy:.0f}% busy after waiting {args.wait_quiet:.0f} s)", flush=True)
                print(f"[{r + 1}/{args.rounds}] {worker.label} ...", end=" ", flush=True)
                result = run_worker(worker, weights, args.repeats, worker_cases, args.timeout)
                if "error" in result:
                    print(result["error"], flush=True)
                else:
                    others = result.get("others_cpu_fraction")
                    note = f" (other processes used {100 * others:.0f}% of the CPUs meanwhile)" if others and others > 0.05 else ""
                    print(f"{result['wall_s']:.0f} s{note}", flush=True)
                rounds[name].append(result)
    load_after = os.getloadavg()
    runs = {n: merge_rounds(rs) for n, rs in rounds.items() if rs}
    for n in skipped:
        runs[n] = {"error": skipped[n], "skipped": True}
    shown = [n for n in names if n in runs and "error" not in runs[n]]

    (time_header, time_rows), (rate_header, rate_rows) = build_tables(cases, runs, shown)
    print()
    print(f"Median ms of {args.repeats * args.rounds} planning calls (after warm-up) from one state, float32, "
          f"{os.cpu_count()} CPU cores ({platform.machine()}); each framework in its own process. "
          "'x / wmplan' >= 1 means wmplan is at least as fast.")
    print(tabulate(time_rows, headers=time_header, disable_numparse=True, stralign="right"))
    print()
    print(tabulate(rate_rows, headers=rate_header, disable_numparse=True, stralign="right"))
    print()
    print(f"MLP: {' -> '.join(map(str, mlp_weights.layer_sizes()))}, "
          f"{mlp_weights.flops_per_transition():,} FLOP per transition (2 x MACs); "
          "GFLOP/s = that x transitions per call / median time.")
    peaks = []
    for n in shown:
        p = runs[n]["peak"]
        sizes = ", ".join(f"{s}²: {g:.0f}" for s, g in p["by_size"].items())
        peaks.append(f"{WORKERS[n].label} ({runs[n]['framework']}): {p['gflops']:.0f} GFLOP/s ({sizes})")
    print("fp32 matmul peak, best of 5, measured in each worker process (the best of them is the machine peak):")
    for line in peaks:
        print(f"  {line}")
    for n in shown:
        extra = [f"probe error {runs[n]['probe_error']:.1e}"]
        if "blas" in runs[n]:
            extra.append(f"BLAS {runs[n]['blas'].split(',')[0]}")
        if "threads" in runs[n]:
            extra.append(f"threads {runs[n]['threads']}")
        compiles = [r for r in runs[n]["results"] if "compile_ms" in r]
        if compiles:
            first = ", ".join(f"{r['key']}: {r['compile_ms'] / 1e3:.1f} s" for r in compiles)
            extra.append(f"first call with compilation, not timed ({first})")
        print(f"  {WORKERS[n].label}: " + ", ".join(extra))
    for n, r in runs.items():
        if "error" in r and not r.get("skipped"):
            print(f"{WORKERS[n].label} failed: {r['error']}")
    disturbed = {n: runs[n]["others_cpu_fraction"] for n in shown if runs[n].get("others_cpu_fraction", 0) > 0.05}
    if disturbed:
        detail = ", ".join(f"{WORKERS[n].label} {100 * f:.0f}%" for n, f in disturbed.items())
        print(f"note: other processes used the CPUs while workers ran ({detail} of the machine); "
              "those timings are noisy — rerun on a quiet machine, or with --wait-quiet 600 / --rounds 3.")

    if args.json:
        payload = {
            "repeats": args.repeats,
            "rounds": args.rounds,
            "cases": [c.key for c in cases],
            "flops_per_transition": mlp_weights.flops_per_transition(),
            "load_average": {"before": load_before, "after": load_after},
            "cpu_count": os.cpu_count(),
            "machine": platform.machine(),
            "runs": runs,
            "tables": {
                "time": {"header": time_header, "rows": time_rows},
                "rate": {"header": rate_header, "rows": rate_rows},
            },
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2))
        print(f"wrote {args.json}")
    return 0 if all("error" not in runs[n] or runs[n].get("skipped") for n in runs) else 1


if __name__ == "__main__":
    sys.exit(main())

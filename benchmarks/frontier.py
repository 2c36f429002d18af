"""The planning frontier: what return each planner buys for its planning time per step, against its peers.

Each planner runs closed-loop episodes on the benchmark's starts (:func:`benchmarks.suite.prepare_run`) at every
point of a grid of budgets (horizon x samples x iterations), imagining with the env's learned model. Every
episode's state is planned in its own call, as a controller of one system plans, and each call is timed: a
point's ``ms_per_step`` is the mean planning time of one control step. The peers (``pytorch_mppi``, mbrl-lib,
the hand-written JAX planners; :mod:`benchmarks.peers.closed_loop`) plan the same episodes with the same model,
each in its own process, their time measured there.

A point is *dominated* when another point of its planner is at least as fast and at least as good (one of the
two strictly); the others are the planner's front. A peer's point is *beaten* when some wmplan point reaches at
least its return in at most its time. Per peer planner, :func:`dominance_ratios` gives the time the fastest
wmplan point needs to reach the peer's best return over the peer's time at that return (< 1: wmplan is faster).

A wmplan planner name with :data:`COMPILED` appended (``cem+compile``) is that planner with ``compile=True``:
each call one ``mx.compile``-d program (its trace and kernel build fall in the untimed warm-up calls).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import mlx.core as mx
import numpy as np
from tabulate import tabulate

import planners
from worldmodel.checks import at_least, check_seed
from worldmodel.envs import env_record
from worldmodel.envs.runner import run_episodes

from .suite import BenchmarkConfig, make_planner, prepare_run

WMPLAN = "wmplan"
DEFAULT_PLANNERS = ("cem", "mppi")
DEFAULT_EPISODES = 5
SAMPLE_FRACTIONS = (0.1, 0.3, 1.0)
"""The default grid's samples: these fractions of the env's planning samples (``env.defaults.planning``)."""
DEFAULT_ITERATIONS = (1, 3)
COMPILED = "+compile"


def planner_and_compile(name: str) -> tuple:
    """``"cem+compile"`` -> ``("cem", True)``, ``"cem"`` -> ``("cem", False)``; ``ValueError`` for an unknown planner."""
    base = name[: -len(COMPILED)] if name.endswith(COMPILED) else name
    planners.planner_class(base)  # ValueError naming the choices
    return base, base != name


def grid_values(text, name: str) -> tuple:
    """``"100,300"`` (or ``(100, 300)``) -> ``(100, 300)``: a grid option's values, each once; ``ValueError`` unless
    positive integers."""
    text = text if isinstance(text, str) else ",".join(map(str, text))
    try:
        values = tuple(dict.fromkeys(int(tok) for tok in str(text).split(",") if tok.strip()))
    except ValueError:
        raise ValueError(f"{name} must be comma-separated positive integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise ValueError(f"{name} must be comma-separated positive integers, got {text!r}")
    return values


@dataclass
class FrontierConfig:
    """What to sweep. ``samples`` ``None``: :data:`SAMPLE_FRACTIONS` of the env's samples; ``horizons`` ``None``:
    the env's horizon; ``steps`` ``None``: the env's episode length; ``peers``: names from
    :data:`benchmarks.peers.closed_loop.PEERS`, each running all its planners over the same grid."""

    planners: tuple = DEFAULT_PLANNERS
    samples: tuple | None = None
    iterations: tuple = DEFAULT_ITERATIONS
    horizons: tuple | None = None
    episodes: int = DEFAULT_EPISODES
    steps: int | None = None
    seed: int = 0
    model: str | None = None
    runner: str | None = None
    peers: tuple = ()

    def __post_init__(self):
        from .peers.client import check_peers

        for name in self.planners:
            planner_and_compile(name)
        if not self.planners:
            raise ValueError("planners must name at least one planner")
        for name in ("samples", "iterations", "horizons"):
            if getattr(self, name) is not None:
                setattr(self, name, grid_values(getattr(self, name), name))
        at_least(1, episodes=self.episodes, steps=self.steps)
        check_seed(self.seed)
        check_peers(self.peers)

    def grid(self, env) -> list:
        """The points ``(horizon, samples, iterations)`` for ``env``, cheapest first within each horizon."""
        planning = env.defaults.planning
        samples = self.samples or tuple(dict.fromkeys(max(1, round(f * planning.samples)) for f in SAMPLE_FRACTIONS))
        return [(h, n, i) for h in (self.horizons or (planning.horizon,)) for n in samples for i in self.iterations]

    def benchmark_config(self, env) -> BenchmarkConfig:
        """The :class:`~benchmarks.suite.BenchmarkConfig` of the grid's largest point (for ``prepare_run``'s checks)."""
        h, n, i = (max(values) for values in zip(*self.grid(env)))
        names = tuple(planner_and_compile(name)[0] for name in self.planners)
        return BenchmarkConfig(planners=names, dynamics=("model",), episodes=self.episodes, steps=self.steps, horizon=h,
                               samples=n, iterations=i, seed=self.seed, model=self.model, runner=self.runner)


class OneStatePerCall:
    """A wmplan planner as an episode policy that plans each episode's state in its own call (its pure
    ``step`` with that episode's :class:`~planners.PlannerState`: its key stream and warm start), timing
    each call (after ``warmup`` untimed ones); :attr:`ms` holds every call's milliseconds."""

    def __init__(self, planner, starts: np.ndarray, warmup: int = 2):
        self.planner, self.ms = planner, []
        self.states = [planner.init([i]) for i in range(len(starts))]
        spare = planner.init([len(starts)])  # untimed calls with a state of its own: the episodes' draws stay the same
        for _ in range(warmup):
            plan, spare = planner.step(mx.array(starts[:1]), spare)
            mx.eval(plan.actions)

    def __call__(self, states: np.ndarray) -> np.ndarray:
        actions = []
        for i, state in enumerate(states):
            start = time.perf_counter()
            plan, self.states[i] = self.planner.step(mx.array(state[None]), self.states[i])
            actions.append(np.array(plan.actions[0, 0]))  # the action, computed: what a controller waits for
            self.ms.append(1e3 * (time.perf_counter() - start))
        return np.stack(actions)


def measure_frontier(config: FrontierConfig, env, device=None, log: Callable[[str], None] | None = None) -> dict:
    """:func:`run_frontier` on ``env``'s benchmark starts with ``config.model`` (the env's default learned model,
    trained if missing; :func:`benchmarks.suite.prepare_run`), the machine and ``device`` in its config."""
    from .speed import machine_lines

    bench = config.benchmark_config(env)
    env, model, starts = prepare_run(bench, env, env.name, log=log or (lambda line: None))
    config.model = bench.model
    start = time.perf_counter()
    result = run_frontier(config, env, model, starts, log)
    result["config"].update(device=str(device), wall_seconds=round(time.perf_counter() - start, 1), machine=machine_lines(),
                            cpus=os.cpu_count(), load_average=os.getloadavg())
    return result


def _point(peer: str, planner: str, size: tuple, returns: np.ndarray, ms: list) -> dict:
    horizon, samples, iterations = size
    return {"peer": peer, "planner": planner, "horizon": horizon, "samples": samples, "iterations": iterations,
            "returns": [float(r) for r in returns], "mean_return": float(np.mean(returns)),
            "std_return": float(np.std(returns)), "ms_per_step": float(np.mean(ms)),
            "p90_ms": float(np.percentile(ms, 90)), "calls": len(ms)}


def run_frontier(config: FrontierConfig, env, model, starts: np.ndarray, log: Callable[[str], None] | None = None) -> dict:
    """Every planner (wmplan's, then each peer's) at every grid point on ``model`` (the folded learned model)
    in closed loop from ``starts [E, S]`` in ``env``. Returns ``{"config", "points", "ratios"}`` (JSON-ready),
    the points marked (:func:`mark_dominated`) and the peers' ratios (:func:`dominance_ratios`)."""
    bench = config.benchmark_config(env).for_env(env)
    steps, grid, ids = bench.steps, config.grid(env), np.arange(len(starts))
    runs = [(WMPLAN, name) for name in config.planners]
    if config.peers:
        from .peers.closed_loop import PEERS

        runs += [(peer, name) for peer in config.peers for name in PEERS[peer]]
    sizes = {run: ([(15, 100, 1)] if run[1] == "mppi-defaults" else grid) for run in runs}
    total, points = sum(len(s) for s in sizes.values()), []

    def episodes(policy, peer, name, size):
        start = time.perf_counter()
        ep = run_episodes(policy, env, starts, steps, runner=bench.runner, seeds=config.seed + ids, set_starts=False)
        points.append(_point(peer, name, size, ep.returns, policy.ms))
        if log:
            p = points[-1]
            log(f"[{len(points)}/{total}] {peer} {name} H={size[0]} N={size[1]} I={size[2]}: return {p['mean_return']:.2f} "
                f"± {p['std_return']:.2f}, {p['ms_per_step']:.2f} ms/step ({time.perf_counter() - start:.0f} s)")

    for peer, name in runs:
        if peer == WMPLAN:
            for size in sizes[(peer, name)]:
                base, compiled = planner_and_compile(name)
                planner = make_planner(base, model, env, bench, horizon=size[0], samples=size[1], iterations=size[2],
                                       compile=compiled or None)
                episodes(OneStatePerCall(planner, np.asarray(starts, np.float32)), peer, name, size)
    versions = {}
    with tempfile.TemporaryDirectory(prefix="wmplan-frontier-") as folder:
        if config.peers:
            from .peers.client import PeerProcess
            from .peers.model_export import export_model

            path = Path(folder) / "model.npz"
            np.savez(path, **export_model(model, env))
        for peer in config.peers:
            with PeerProcess(peer, path) as process:
                versions[peer] = process.versions
                for name in (n for p, n in runs if p == peer):
                    for size in sizes[(peer, name)]:
                        policy = process.policy(name, horizon=size[0], samples=size[1], iterations=size[2],
                                                episodes=len(starts), seed=config.seed)
                        episodes(policy, peer, name, size)
    mark_dominated(points)
    record = {**asdict(config), "grid": grid, "steps": steps, "episodes": len(starts), "runner": bench.runner,
              "env": env_record(env), "peer_versions": versions}
    return {"config": record, "points": points, "ratios": dominance_ratios(points)}


def _beats(a: dict, b: dict) -> bool:
    """Whether ``a`` is at least as fast and as good as ``b`` and strictly one of the two."""
    at_least = a["ms_per_step"] <= b["ms_per_step"] and a["mean_return"] >= b["mean_return"]
    return at_least and (a["ms_per_step"] < b["ms_per_step"] or a["mean_return"] > b["mean_return"])


def mark_dominated(points: list) -> list:
    """Set each point's ``dominated`` (another point of its peer and planner beats it) and, for a peer's point,
    ``beaten`` (some wmplan point is at least as fast and reaches at least its return); ``points`` returned."""
    ours = [p for p in points if p["peer"] == WMPLAN]
    for p in points:
        group = [q for q in points if (q["peer"], q["planner"]) == (p["peer"], p["planner"]) and q is not p]
        p["dominated"] = any(_beats(q, p) for q in group)
        p["beaten"] = None if p["peer"] == WMPLAN else any(
            q["ms_per_step"] <= p["ms_per_step"] and q["mean_return"] >= p["mean_return"] for q in ours)
    return points


def fastest_reaching(points: list, target: float) -> dict | None:
    """The fastest wmplan point with a mean return of at least ``target`` (``None``: none reaches it)."""
    reaching = [p for p in points if p["peer"] == WMPLAN and p["mean_return"] >= target]
    return min(reaching, key=lambda p: p["ms_per_step"]) if reaching else None


def dominance_ratios(points: list) -> list:
    """Per peer planner: its best point (highest mean return, the faster on a tie), the fastest wmplan point
    reaching that return, and ``ratio`` = that wmplan point's ms/step / the peer's (``None`` where no wmplan point
    reaches it)."""
    rows = []
    for peer, name in dict.fromkeys((p["peer"], p["planner"]) for p in points if p["peer"] != WMPLAN):
        group = [p for p in points if (p["peer"], p["planner"]) == (peer, name)]
        best = max(group, key=lambda p: (p["mean_return"], -p["ms_per_step"]))
        ours = fastest_reaching(points, best["mean_return"])
        rows.append({"peer": peer, "planner": name, "best_return": best["mean_return"], "peer_ms": best["ms_per_step"],
                     "peer_point": _size(best), "wmplan_ms": ours and ours["ms_per_step"],
                     "wmplan_point": ours and f"{ours['planner']} {_size(ours)}",
                     "ratio": ours and ours["ms_per_step"] / best["ms_per_step"]})
    return rows


def _size(p: dict) -> str:
    return f"H={p['horizon']} N={p['samples']} I={p['iterations']}"


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def frontier_table(result: dict) -> str:
    """Every point, wmplan's first, each planner's by time: return, ms/step, front or dominated, and for a peer's
    point whether a wmplan point beats it; then the per-peer ratios."""
    points = sorted(result["points"], key=lambda p: (p["peer"] != WMPLAN, p["peer"], p["planner"], p["ms_per_step"]))
    rows = [[p["peer"], p["planner"], p["horizon"], p["samples"], p["iterations"],
             f"{p['mean_return']:.2f} ± {p['std_return']:.2f}", f"{p['ms_per_step']:.2f}",
             "dominated" if p["dominated"] else "front", {None: "-", True: "yes", False: "NO"}[p["beaten"]]]
            for p in points]
    table = tabulate(rows, headers=["peer", "planner", "H", "N", "I", "return (mean ± std)", "ms/step", "own front",
                                    "wmplan beats"], disable_numparse=True)
    ratios = [[r["peer"], r["planner"], f"{r['best_return']:.2f}", f"{r['peer_ms']:.2f} ({r['peer_point']})",
               "not reached" if r["wmplan_ms"] is None else f"{r['wmplan_ms']:.2f} ({r['wmplan_point']})",
               _fmt(r["ratio"], ".2f")] for r in result["ratios"]]
    if ratios:
        table += "\n\n" + tabulate(ratios, headers=["peer", "planner", "best return", "its ms/step",
                                                    "wmplan ms/step to reach it", "ratio (< 1: wmplan faster)"],
                                   disable_numparse=True)
    return table


def footer(result: dict) -> str:
    """``5 episodes x 200 steps in ...; ms/step: ...``: what the points are."""
    c = result["config"]
    return (f"{c['episodes']} episodes x {c['steps']} steps of {c['env']['name']} ({c['runner']} runner) from the "
            f"benchmark's starts, the learned model; ms/step: mean planning time of one episode's state, one call each")


def report(result: dict) -> str:
    """What ``wmplan frontier`` prints: :func:`frontier_table` and :func:`footer`."""
    return f"{frontier_table(result)}\n{footer(result)}"


def write_frontier(result: dict, json_path=None, plot_path=None, echo: Callable[[str], None] = print) -> None:
    """``wmplan frontier``'s output: :func:`report` to ``echo``, then the JSON and the plot where asked for."""
    from .report import write_outputs

    echo(report(result))
    write_outputs(result, json_path, plot_path, plot_frontier, announce=echo)


def plot_frontier(result: dict, path: str) -> None:
    """Mean return vs ms/step (log x) of every point: each planner's front as a line, dominated points hollow;
    wmplan solid, peers dashed. Saved as PNG to ``path`` (the ``plot`` extra)."""
    from .plots import _pyplot, _save

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    for k, key in enumerate(dict.fromkeys((p["peer"], p["planner"]) for p in result["points"])):
        group = sorted((p for p in result["points"] if (p["peer"], p["planner"]) == key), key=lambda p: p["ms_per_step"])
        front = [p for p in group if not p["dominated"]]
        style = "-" if key[0] == WMPLAN else "--"
        color = f"C{k % 10}"
        ax.plot([p["ms_per_step"] for p in front], [p["mean_return"] for p in front], style, marker="o", color=color,
                label=f"{key[0]} {key[1]}", linewidth=2.2 if key[0] == WMPLAN else 1.2)
        hollow = [p for p in group if p["dominated"]]
        ax.scatter([p["ms_per_step"] for p in hollow], [p["mean_return"] for p in hollow], facecolors="none",
                   edgecolors=color, s=30)
    ax.set_xscale("log")
    ax.set_xlabel("planning ms per control step (one state per call)")
    ax.set_ylabel(f"mean return over {result['config']['episodes']} episodes")
    ax.set_title(f"{result['config']['env']['name']}: return vs planning time (hollow: dominated)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)

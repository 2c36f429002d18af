"""The benchmark: planners x dynamics sources in closed loop, baselines, the exact optimum."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

import planners
from worldmodel.distributed import World, all_max, all_sum, gather_rows, share

from .baselines import BASELINES, episode_rngs
from .closed_loop import CountingDynamics, Episodes, planner_chooser, run_episodes
from .optimal import optimal_returns

DYNAMICS = ("model", "true")
DEFAULT_PLANNERS = ("cem", "mppi", "random-shooting")
OPTIMAL_CHUNK = 100  # starts solved together (memory grows with the chunk)


@dataclass
class BenchmarkConfig:
    """What to run. ``None`` sizes use each planner's own defaults."""

    planners: tuple = DEFAULT_PLANNERS
    dynamics: tuple = DYNAMICS
    episodes: int = 20
    steps: int = 50
    horizon: int | None = None
    samples: int | None = 500
    iterations: int | None = None
    seed: int = 0
    model: str | None = None
    init_states: str | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        for name in self.planners:
            planners.planner_class(name)  # ValueError naming the choices
        bad = [d for d in self.dynamics if d not in DYNAMICS]
        if bad:
            raise ValueError(f"unknown dynamics {bad[0]!r}; choose from {', '.join(DYNAMICS)}")
        if not self.planners or not self.dynamics:
            raise ValueError("give at least one planner and one dynamics source")
        for name in ("episodes", "steps", "horizon", "samples", "iterations"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")

    def to_dict(self) -> dict:
        return asdict(self)


def make_planner(name: str, dynamics, action_space, config: BenchmarkConfig):
    """Build planner ``name`` with the config's sizes (``None`` keeps the planner's default)."""
    return planners.make_planner(name, dynamics, action_space, horizon=config.horizon, num_samples=config.samples,
                                 iterations=config.iterations, seed=config.seed)


def check_memory(config: BenchmarkConfig, env, episodes: int) -> None:
    """:class:`~planners.memory.MemoryBudgetError` when a planner of ``config`` would need more memory
    than is available to plan ``episodes`` environments together (each is built and checked; none runs)."""
    for name in config.planners:
        make_planner(name, env, env.action_space, config).check_memory(max(1, episodes))


def run_benchmark(
    config: BenchmarkConfig,
    env,
    model,
    starts: np.ndarray,
    on_step: Callable[[], None] | None = None,
    world: World | None = None,
) -> dict:
    """Run every planner on every dynamics source, then the baselines and the optimum.

    Every episode's randomness depends on ``(config.seed, episode index)`` only: planners draw from
    per-environment key streams (``env_ids``) and the random policy from one generator per episode.

    Args:
        env: the true environment (``ParticleEnv``); episodes always run in it.
        model: the learned dynamics (needed when ``"model"`` is in ``config.dynamics``).
        starts: ``[E, 2]`` start states.
        on_step: called after each closed-loop step of each run (progress).
        world: with ``K > 1`` processes (:func:`worldmodel.distributed.world`), each rank runs its
            contiguous share of the episodes; the episodes are gathered on every rank (per-episode
            returns identical to one process's), the planning time is the slowest rank's and the
            imagined transitions are summed over the ranks.

    Returns:
        ``{"config": {...}, "rows": [...]}`` as described in the README (JSON-ready).
    """
    steps = config.steps
    w = world or World()
    part = share(len(starts), w.rank, w.size)
    local, ids = starts[part], np.arange(part.start, part.stop)
    sources = {"model": model, "true": env}
    check_memory(config, env, len(local))
    runs: list[tuple[str, str | None, Episodes]] = []
    for name in config.planners:
        for source in config.dynamics:
            counted = CountingDynamics(sources[source])
            planner = make_planner(name, counted, env.action_space, config)
            episodes = _run_share(planner_chooser(planner, ids), env, local, steps, on_step)
            episodes.imagined = counted.count
            runs.append((name, source, episodes))
    for name, policy in BASELINES.items():
        rngs = episode_rngs(config.seed, ids)
        runs.append((name, None, _run_share(lambda s, p=policy, r=rngs: p(np.array(s), r), env, local, steps, on_step)))

    optimal = np.concatenate(
        [np.zeros(0)]
        + [optimal_returns(local[i : i + OPTIMAL_CHUNK], steps) for i in range(0, len(local), OPTIMAL_CHUNK)]
    )
    if w.size > 1:
        optimal = gather_rows(optimal, len(starts), w)
        runs = [(name, source, _gather(ep, len(starts), w)) for name, source, ep in runs]
    optimal_cost = float(-optimal.sum())
    rows = [_row(name, source, ep, optimal_cost, steps) for name, source, ep in runs]
    rows.append(_optimal_row(optimal, optimal_cost))
    means = {(r["planner"], r["dynamics"]): r["mean_return"] for r in rows}
    for row in rows:
        if row["dynamics"] == "model" and (row["planner"], "true") in means:
            row["model_gap"] = means[(row["planner"], "true")] - row["mean_return"]
    config_dict = config.to_dict()
    config_dict.update(episodes=len(starts), optimal_solver="lattice enumeration + backward induction", processes=w.size)
    return {"config": config_dict, "rows": rows}


def _run_share(choose, env, starts: np.ndarray, steps: int, on_step) -> Episodes:
    """:func:`run_episodes`, or no episodes at all for an empty share (more processes than episodes)."""
    if len(starts):
        return run_episodes(choose, env, starts, steps, on_step)
    return Episodes(np.zeros(0), np.zeros((0, steps + 1, 2), np.float32), np.zeros((0, steps), np.int64))


def _gather(ep: Episodes, total: int, w: World) -> Episodes:
    """All ranks' episodes in episode order; plan time of the slowest rank, imagined transitions summed."""
    return Episodes(
        returns=gather_rows(ep.returns, total, w),
        states=gather_rows(ep.states, total, w),
        pushes=gather_rows(ep.pushes, total, w),
        plan_seconds=all_max(ep.plan_seconds, w),
        imagined=int(round(all_sum(ep.imagined, w))),
    )


def _ratio(cost: float, optimal_cost: float) -> float | None:
    if optimal_cost > 0:
        return cost / optimal_cost
    return 1.0 if cost <= 0 else None


def _row(name: str, source: str | None, ep: Episodes, optimal_cost: float, steps: int) -> dict:
    planned = source is not None
    return {
        "planner": name,
        "dynamics": source,
        "returns": [float(r) for r in ep.returns],
        "mean_return": float(ep.returns.mean()),
        "std_return": float(ep.returns.std()),
        "cost_ratio": _ratio(float(-ep.returns.sum()), optimal_cost),
        "mean_final_abs_x": float(ep.final_abs_x.mean()),
        "success_rate": float(ep.success.mean()),
        "model_gap": None,
        "ms_per_step": 1000.0 * ep.plan_seconds / steps if planned else None,
        "imagined_per_s": ep.imagined / ep.plan_seconds if planned and ep.plan_seconds > 0 else None,
    }


def _optimal_row(optimal: np.ndarray, optimal_cost: float) -> dict:
    return {
        "planner": "optimal",
        "dynamics": None,
        "returns": [float(r) for r in optimal],
        "mean_return": float(optimal.mean()),
        "std_return": float(optimal.std()),
        "cost_ratio": _ratio(optimal_cost, optimal_cost),
        "mean_final_abs_x": None,
        "success_rate": None,
        "model_gap": None,
        "ms_per_step": None,
        "imagined_per_s": None,
    }

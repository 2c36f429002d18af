"""The benchmark: planners x dynamics sources in closed loop, baselines, and the reference row.

The reference is the exact optimum where the environment knows it (the discrete particle:
``optimal``), else ``reference``: :data:`REFERENCE_PLANNER` planning with the true dynamics with
:data:`REFERENCE_SCALE` times the run's samples and iterations (by default 2x the env's samples and
2x CEM's 5 iterations), run in the same episodes as every other row.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import mlx.core as mx
import numpy as np

import planners
from planners.deadline import check_time_budget
from worldmodel.checks import at_least, check_seed
from worldmodel.distributed import World, all_max, all_sum, gather_rows, share
from worldmodel.envs import env_record
from worldmodel.envs.gymnasium import gym_id, gymnasium_version
from worldmodel.envs.runner import Episodes, check_recording, choose_runner, describe_runner, run_episodes
from worldmodel.envs.scores import SCORES
from worldmodel.recipe import load_model_for, planner_for

from .baselines import baselines

DYNAMICS = ("model", "true")
DEFAULT_PLANNERS = ("cem", "mppi", "random-shooting")
REFERENCE_PLANNER = "cem"
REFERENCE_SCALE = 2
"""The ``reference`` row: ``REFERENCE_PLANNER`` on the true dynamics, this many times the run's samples and iterations."""


@dataclass
class BenchmarkConfig:
    """What to run. ``None`` sizes are the environment's (``env.steps``, ``env.defaults.planning``'s horizon and samples)
    and each planner's own iterations; ``runner`` ``None`` picks Gymnasium's env where there is one.
    ``time_budget_ms``: every planner row plans each step within it (``planners.Planner``'s option; the
    reference row keeps its full budget)."""

    planners: tuple = DEFAULT_PLANNERS
    dynamics: tuple = DYNAMICS
    episodes: int = 20
    steps: int | None = None
    horizon: int | None = None
    samples: int | None = None
    iterations: int | None = None
    seed: int = 0
    model: str | None = None
    init_states: str | None = None
    runner: str | None = None
    propagation: str | None = None
    particles: int | None = None
    time_budget_ms: float | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        for name in self.planners:
            planners.planner_class(name)  # ValueError naming the choices
        bad = [d for d in self.dynamics if d not in DYNAMICS]
        if bad:
            raise ValueError(f"unknown dynamics {bad[0]!r}; choose from {', '.join(DYNAMICS)}")
        if not self.planners or not self.dynamics:
            raise ValueError("give at least one planner and one dynamics source")
        at_least(1, episodes=self.episodes, steps=self.steps, horizon=self.horizon, samples=self.samples,
                 iterations=self.iterations, particles=self.particles)
        check_seed(self.seed)
        self.time_budget_ms = check_time_budget(self.time_budget_ms)
        if self.propagation is not None:
            planners.Propagation(self.propagation)  # ValueError naming the modes
        elif self.particles is not None:
            raise ValueError("particles needs --propagation")

    def model_options(self, model) -> dict:
        """Planner options for the ``model`` rows: ``propagation=`` when ``propagation`` is set and ``model``
        is an ensemble of ``K > 1`` members (``planners.EnsembleDynamics``), else none (a single model ignores it)."""
        if self.propagation is None or getattr(model, "ensemble_size", 1) < 2 or not isinstance(model, planners.EnsembleDynamics):
            return {}
        return {"propagation": planners.Propagation(self.propagation, particles=self.particles)}

    def for_env(self, env) -> "BenchmarkConfig":
        """A copy with the sizes left to the environment filled in (``steps``, ``horizon``, ``samples``)
        and the runner chosen (:func:`~worldmodel.envs.runner.choose_runner`)."""
        planning = env.defaults.planning
        return BenchmarkConfig(**{
            **asdict(self),
            "steps": self.steps or env.steps,
            "horizon": self.horizon or planning.horizon,
            "samples": self.samples or planning.samples,
            "runner": choose_runner(env, self.runner),
        })

    def to_dict(self) -> dict:
        return asdict(self)


class CountingDynamics:
    """Wraps a dynamics function and counts the transitions it is asked for (``B`` per call)."""

    def __init__(self, dynamics):
        self.dynamics = dynamics
        self.count = 0

    def __call__(self, state, action):
        self.count += int(np.prod(state.shape[:-1]))
        return self.dynamics(state, action)

    def members(self, state, action, noise=None):
        """An ensemble's members (``planners.EnsembleDynamics``), counting one transition per member and row."""
        next_state, reward = self.dynamics.members(state, action, noise)
        self.count += int(np.prod(next_state.shape[:-1]))
        return next_state, reward

    def __getattr__(self, name):  # expose e.g. action_space of the wrapped dynamics
        return getattr(self.dynamics, name)


class CountingEvaluator(planners.SequenceEvaluator):
    """Wraps a ``planners.SequenceEvaluator`` (MuJoCo's true dynamics) and counts the transitions it is asked
    for (``E * N * H`` per call), handing it the same arrays."""

    def __init__(self, evaluator: planners.SequenceEvaluator):
        super().__init__(self._evaluate, action_dim=evaluator.action_dim, as_numpy=evaluator.as_numpy,
                         bytes_per_step=evaluator.bytes_per_step)
        self.evaluator = evaluator
        self.count = 0

    def _evaluate(self, start, actions):
        self.count += int(np.prod(actions.shape[:3]))
        return self.evaluator.evaluate(start, actions)


def counting(dynamics):
    """``dynamics`` wrapped to count its imagined transitions (``.count``): :class:`CountingEvaluator` or :class:`CountingDynamics`."""
    return CountingEvaluator(dynamics) if isinstance(dynamics, planners.SequenceEvaluator) else CountingDynamics(dynamics)


class SearchLog:
    """A planner as a policy (``worldmodel.envs.runner.Policy``: ``planner.act``) that keeps, per step, the
    call's planning time (ms) and its search's iterations (``planner.last_search``)."""

    def __init__(self, planner, env_ids=None):
        self.planner, self.env_ids = planner, env_ids
        self.ms: list = []
        self.iterations: list = []

    def __call__(self, state: np.ndarray) -> np.ndarray:
        return np.array(self._plan(state).actions[:, 0])

    def _plan(self, state: np.ndarray):
        start = time.perf_counter()
        plan = self.planner.optimize(state, self.env_ids)
        self.ms.append(1000.0 * (time.perf_counter() - start))
        self.iterations.append(self.planner.last_search.iterations)
        return plan

    def summary(self, w: World | None = None) -> dict:
        """``step_ms_p50``, ``step_ms_p99`` (the slowest rank's) and ``iterations_per_step`` (mean over the steps)."""
        w = w or World()
        ms = np.array(self.ms) if self.ms else np.zeros(1)
        mean = all_sum(float(np.sum(self.iterations)), w) / max(all_sum(len(self.iterations), w), 1)
        return {"step_ms_p50": all_max(np.percentile(ms, 50), w), "step_ms_p99": all_max(np.percentile(ms, 99), w),
                "iterations_per_step": mean}


class PlanRecorder(SearchLog):
    """A :class:`SearchLog` that also keeps what it planned at every step.

    Attributes:
        expected_returns: per step, the plan's imagined returns ``[E]``.
        predicted: per step, the next states ``[E, S]`` that ``dynamics`` (what the planner imagines
            with) predicts for the chosen actions.
    """

    def __init__(self, planner, dynamics, env_ids=None):
        super().__init__(planner, env_ids)
        self.dynamics = dynamics
        self.expected_returns: list = []
        self.predicted: list = []

    def __call__(self, state: np.ndarray) -> np.ndarray:
        plan = self._plan(state)  # what act() does, keeping the plan's return
        action = plan.actions[:, 0]
        self.expected_returns.append(np.array(plan.expected_return))
        if not isinstance(self.dynamics, planners.SequenceEvaluator):  # a black box predicts no next state
            predicted, _ = self.dynamics(mx.array(state), action)
            self.predicted.append(np.array(predicted))
        return np.array(action)

    def predictions(self, episode: int = 0) -> np.ndarray | None:
        """The one-step predictions ``[T, S]`` of one episode (row ``episode`` of every step's ``[E, S]``);
        ``None`` for a sequence evaluator."""
        return np.stack(self.predicted)[:, episode] if self.predicted else None


def plan_episode(name: str, dynamics: str, source, env, config: BenchmarkConfig, start, given: bool, echo,
                 plot_path=None, intro: str = ""):
    """One closed-loop episode of planner ``name`` imagining with ``source`` (``dynamics``: ``"model"`` or
    ``"true"``) from ``start [S]`` (``given``: set it in Gymnasium too), printed through ``echo`` step by step
    as each step ends, next to the optimum where the env knows it; ``plot_path``: the episode drawn to a PNG.
    ``config`` is already the env's (:meth:`BenchmarkConfig.for_env`). Returns the :class:`Episodes`."""
    from .plots import plot_episode
    from .report import EpisodeLines, state_text

    check_dynamics(config, env)
    check_recording(env, 1, config.steps)  # before the optimum is solved for as many steps
    recorder = PlanRecorder(make_planner(name, source, env, config), source)
    optimum = env.defaults.benchmark.optimum
    best = optimum.plan(env, start, config.steps) if optimum is not None else None
    echo(f"{intro}{name} planning with the {dynamics} dynamics in {describe_runner(config.runner, env.name, gym_id(env))} "
         f"from ({state_text(env, start)}), {config.steps} steps" + (f"; optimal return {best[0]:.3f}" if best else ""))
    searches = recorder if config.time_budget_ms is not None else None
    lines = EpisodeLines(env, recorder.expected_returns, start, best, echo=echo, searches=searches)  # each step as it ends
    ep = run_episodes(recorder, env, start[None], config.steps, runner=config.runner, seeds=[config.seed],
                      set_starts=given, on_transition=lines, policy_read=env.true_dynamics_read if dynamics == "true" else None)
    lines.summary(ep)
    if plot_path:
        length = int(ep.lengths[0])
        predicted = recorder.predictions()
        plot_episode(env, ep.states[0, : length + 1], None if predicted is None else predicted[:length], ep.actions[0, :length], plot_path,
                     title=f"{env.name}: {name} planning with the {dynamics} dynamics, return {ep.returns[0]:.2f}")
        echo(f"Wrote {plot_path}")
    return ep


def make_planner(name: str, dynamics, env, config: BenchmarkConfig, **overrides):
    """Planner ``name`` on ``dynamics`` for ``env`` (:func:`worldmodel.recipe.planner_for`) with ``config``'s
    sizes and seed, then ``overrides``; ``None`` keeps the env's or the planner's own default."""
    sizes = {"horizon": config.horizon, "samples": config.samples, "iterations": config.iterations, "seed": config.seed,
             "time_budget_ms": config.time_budget_ms}
    return planner_for(name, dynamics, env, **{**sizes, **overrides})


def reference_planner(dynamics, env, config: BenchmarkConfig):
    """The ``reference`` row's planner: :data:`REFERENCE_PLANNER` with :data:`REFERENCE_SCALE` times the
    samples and iterations that ``config`` (or the env, or the planner's defaults) gives it, and no time budget."""
    base = make_planner(REFERENCE_PLANNER, dynamics, env, config)
    return make_planner(REFERENCE_PLANNER, dynamics, env, config, samples=REFERENCE_SCALE * base.samples,
                        iterations=REFERENCE_SCALE * base.iterations, time_budget_ms=None)


def reference_name(env) -> str | None:
    """The reference row's name: ``optimal`` (exact), ``reference`` (a planner with a large budget on the
    true dynamics: the MLX copy, or MuJoCo itself), or ``None`` where the env has neither (no true dynamics to plan with)."""
    if env.defaults.benchmark.optimum is not None:
        return "optimal"
    return "reference" if env.true_dynamics() is not None else None


def count_runs(config: BenchmarkConfig, env) -> int:
    """Closed-loop runs of one benchmark (for progress bars): planner rows, baselines, a reference planner."""
    return len(config.planners) * len(config.dynamics) + len(baselines(env, config.seed, [])) + (reference_name(env) == "reference")


def check_dynamics(config: BenchmarkConfig, env) -> None:
    """``ValueError`` when ``config`` asks for the true dynamics of an env that has none to plan with."""
    if "true" in config.dynamics and env.true_dynamics() is None:
        raise ValueError(f"{env.name} has no true dynamics to plan with (no MLX copy of its physics): use --dynamics model")


def check_memory(config: BenchmarkConfig, env, episodes: int, model=None) -> None:
    """:class:`~planners.runtime.memory.MemoryBudgetError` when a planner of ``config`` (or the reference planner)
    would need more memory than is available to plan ``episodes`` environments together (each is built
    and checked; none runs), or recording the episodes would. With ``model``, its rows are checked as they will
    run (an ensemble's particles)."""
    check_dynamics(config, env)
    check_recording(env, episodes, config.for_env(env).steps)
    truth = env.true_dynamics()
    built = [make_planner(name, truth, env, config) for name in config.planners] if truth is not None else []
    options = config.model_options(model) if model is not None and "model" in config.dynamics else {}
    if options:
        built += [make_planner(name, model, env, config, **options) for name in config.planners]
    if reference_name(env) == "reference":
        built.append(reference_planner(truth, env, config))
    for planner in built:
        planner.check_memory(max(1, episodes))


def prepare_run(config: BenchmarkConfig, env, env_name: str, world=None, log: Callable[[str], None] = print) -> tuple:
    """``(env, model, starts [E, S])`` of a benchmark, its memory checked before a model is trained or loaded:
    the starts (``config.init_states``' rows, else the env's benchmark starts), and with ``"model"`` dynamics
    the folded model of ``config.model`` (the env's default one, trained if missing) and the env it was trained
    on. Propagation asked of a single model is dropped, with a note to ``log``."""
    from .starts import read_init_states

    starts = read_init_states(config.init_states, env) if config.init_states else None
    check_memory(config.for_env(env), env, config.episodes if starts is None else len(starts))
    starts = env.benchmark_starts(config.episodes, config.seed) if starts is None else starts
    model = None
    if "model" in config.dynamics:
        model, config.model, env = load_model_for(env_name, config.model, world, log=log)
        model = model.folded()  # the same function, normalizations folded into the weights: faster planning
        if config.propagation is not None and not config.model_options(model):
            log(f"Note: --propagation {config.propagation} ignored: the model is a single model, not an ensemble.")
            config.propagation = config.particles = None
        starts = read_init_states(config.init_states, env) if config.init_states else starts  # the model's env's box
    return env, model, starts


def run_benchmark(
    config: BenchmarkConfig,
    env,
    model,
    starts: np.ndarray,
    on_step: Callable[[int], None] | None = None,
    world: World | None = None,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Run every planner on every dynamics source, then the baselines and the reference row.

    Every episode's randomness depends on ``(config.seed, episode index)`` only: planners draw from
    per-environment key streams (``env_ids``), the random policy from one generator per episode, and
    Gymnasium's episode ``i`` starts from ``reset(seed=config.seed + i)``.

    Args:
        config: what to run (sizes left at ``None`` are the env's; see :meth:`BenchmarkConfig.for_env`).
        env: the environment (:class:`~worldmodel.envs.base.Environment`); episodes run in it
            (Gymnasium's, or its MLX copy: ``config.runner``).
        model: the learned dynamics (needed when ``"model"`` is in ``config.dynamics``).
        starts: ``[E, S]`` start states (the MLX runner's; Gymnasium's runner sets them only when
            ``config.init_states`` gave them, else it keeps its own ``reset``'s, which equal them).
        on_step: called with the number of closed-loop steps done (progress).
        log: called with a line per run (planner and dynamics, baseline, reference) as it ends (progress).
        world: with ``K > 1`` processes (:func:`worldmodel.distributed.world`), each rank runs its
            contiguous share of the episodes; the episodes are gathered on every rank (per-episode
            returns identical to one process's), the planning time is the slowest rank's and the
            imagined transitions are summed over the ranks.

    Returns:
        ``{"config": {...}, "rows": [...]}`` as described in the README (JSON-ready).
    """
    config = config.for_env(env)
    steps = config.steps
    w = world or World()
    part = share(len(starts), w.rank, w.size)
    local, ids = np.asarray(starts, np.float32)[part], np.arange(part.start, part.stop)
    sources = {"model": model, "true": env.true_dynamics()}
    check_memory(config, env, len(local), model)

    def episodes(policy, policy_read=None) -> Episodes:
        if not len(local):  # more processes than episodes: this one has none
            return Episodes.empty(env, steps)
        return run_episodes(policy, env, local, steps, runner=config.runner, seeds=config.seed + ids,
                            set_starts=config.init_states is not None, on_step=on_step, policy_read=policy_read)

    searches = {}  # (name, source) -> SearchLog.summary()

    def planned(planner_of, source, name):
        counted = counting(sources[source])
        log = SearchLog(planner_of(counted), ids)
        ep = episodes(log, env.true_dynamics_read if source == "true" else None)
        ep.imagined = counted.count
        searches[name, source] = log.summary(w)
        return ep

    runs: list[tuple[str, str | None, Episodes]] = []
    total, clock = count_runs(config, env), time.perf_counter()

    def done(name, source, ep):
        nonlocal clock
        runs.append((name, source, ep))
        if log:
            what = name + ("" if source is None else f" with the {source} dynamics")
            mean = f", mean return {ep.returns.mean():.3f}" if w.size == 1 and len(ep.returns) else ""
            log(f"[{len(runs)}/{total}] {what}: {len(ep.returns)} episodes in {time.perf_counter() - clock:.1f} s{mean}")
        clock = time.perf_counter()

    for name in config.planners:
        for source in config.dynamics:
            options = config.model_options(model) if source == "model" else {}
            done(name, source, planned(lambda d, n=name, o=options: make_planner(n, d, env, config, **o), source, name))
    for name, policy in baselines(env, config.seed, ids).items():
        done(name, None, episodes(policy))
    reference, exact = reference_name(env), env.defaults.benchmark.optimum
    if exact is not None:
        optimum = gather_rows(exact.returns(env, local, steps), len(starts), w)
    elif reference is not None:
        done(reference, "true", planned(lambda d: reference_planner(d, env, config), "true", reference))
    if w.size > 1:
        runs = [(name, source, _gather(ep, len(starts), w)) for name, source, ep in runs]
    reference_returns = optimum if exact is not None else runs[-1][2].returns if reference is not None else None

    rows = [{**_row(env, name, source, ep, reference_returns), **searches.get((name, source), _NO_SEARCH)}
            for name, source, ep in runs]
    if exact is not None:
        rows.append(_optimal_row(env, optimum))
    means = {(r["planner"], r["dynamics"]): r["mean_return"] for r in rows}
    for row in rows:
        if row["dynamics"] == "model" and (row["planner"], "true") in means:
            row["model_gap"] = means[(row["planner"], "true")] - row["mean_return"]
    record = {"config": _config_record(config, env, len(starts), w), "rows": rows}
    env.close()  # MuJoCo's true dynamics: their rollout threads stop (built again if asked for)
    return record


def _config_record(config: BenchmarkConfig, env, episodes: int, w: World) -> dict:
    record = config.to_dict()
    bench = env.defaults.benchmark
    record.update(episodes=episodes, env=env_record(env), gym_id=gym_id(env), score=bench.score, processes=w.size)
    if config.runner == "gymnasium":
        record["gymnasium"] = gymnasium_version()
    if bench.optimum is not None:
        record["optimal_solver"] = bench.optimum.solver
    elif reference_name(env) is not None:
        planner = reference_planner(env.true_dynamics(), env, config)
        record["reference"] = {"planner": REFERENCE_PLANNER, "dynamics": "true", "horizon": planner.horizon,
                               "samples": planner.samples, "iterations": planner.iterations}
    return record


def _gather(ep: Episodes, total: int, w: World) -> Episodes:
    """All ranks' episodes in episode order; plan time of the slowest rank, imagined transitions summed."""
    return Episodes(
        returns=gather_rows(ep.returns, total, w),
        rewards=gather_rows(ep.rewards, total, w),
        states=gather_rows(ep.states, total, w),
        actions=gather_rows(ep.actions, total, w),
        lengths=gather_rows(ep.lengths, total, w),
        terminated=gather_rows(ep.terminated, total, w),
        plan_seconds=all_max(ep.plan_seconds, w),
        imagined=int(round(all_sum(ep.imagined, w))),
    )


def _scores(env, returns: np.ndarray, reference: np.ndarray | None) -> dict:
    """Every score key; the env's own one computed (``None`` too without ``reference``), the others ``None``."""
    own = env.defaults.benchmark.score
    return {key: (score.compute(returns, reference) if key == own and reference is not None else None)
            for key, score in SCORES.items()}


def _mean(values) -> float | None:
    return None if values is None else float(np.mean(values))


def _measure(test, env, *arrays) -> float | None:
    """The mean of ``test(env, *arrays)`` (a benchmark record's ``success`` or ``final_distance``), ``None`` without one."""
    return None if test is None else _mean(test(env, *arrays))


def _row(env, name: str, source: str | None, ep: Episodes, reference: np.ndarray) -> dict:
    planned = source is not None
    calls = int(ep.lengths.max()) if len(ep.lengths) else 0  # planning calls: until the last episode ended
    return {
        "planner": name,
        "dynamics": source,
        "returns": [float(r) for r in ep.returns],
        "mean_return": float(ep.returns.mean()),
        "std_return": float(ep.returns.std()),
        **_scores(env, ep.returns, reference),
        "mean_final_abs_x": _measure(env.defaults.benchmark.final_distance, env, ep.states),
        "success_rate": _measure(env.defaults.benchmark.success, env, ep.states, ep.terminated),
        "model_gap": None,
        "ms_per_step": 1000.0 * ep.plan_seconds / calls if planned and calls else None,
        "imagined_per_s": ep.imagined / ep.plan_seconds if planned and ep.plan_seconds > 0 else None,
        "episode_lengths": [int(n) for n in ep.lengths],
        "mean_length": float(ep.lengths.mean()),
    }


_NO_SEARCH = {"step_ms_p50": None, "step_ms_p99": None, "iterations_per_step": None}
"""The planning-time fields of a row that did not plan (baselines, the optimum)."""


def _optimal_row(env, optimal: np.ndarray) -> dict:
    return {
        "planner": "optimal",
        "dynamics": None,
        "returns": [float(r) for r in optimal],
        "mean_return": float(optimal.mean()),
        "std_return": float(optimal.std()),
        **_scores(env, optimal, optimal),
        "mean_final_abs_x": None,
        "success_rate": None,
        "model_gap": None,
        "ms_per_step": None,
        "imagined_per_s": None,
        "episode_lengths": None,
        "mean_length": None,
        **_NO_SEARCH,
    }

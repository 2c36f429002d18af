"""The model-based RL loop: plan with the current world model in the real environment, add the new
transitions, retrain from the current weights, evaluate; a run-folder snapshot after every round.

    config = MbrlConfig(env="particle", seed=0)
    result = run_mbrl(config, "runs/particle", log=print)    # {"config", "references", "curve", ...}
    result = run_mbrl(dataclasses.replace(config, rounds=8), "runs/particle", resume=True)   # continue it

Round 0 records ``random_episodes`` random-action episodes and trains a new model on them
(``first_train_steps`` gradient steps). Round ``i >= 1`` plans ``episodes_per_round`` episodes
with the model of round ``i - 1``, adds their transitions and trains ``train_steps`` more steps
from the current weights and Adam moments (:class:`~worldmodel.train.ContinualTrainer`).
After every round the model is evaluated: the same planner in closed loop from the benchmark's
starts of the environment (the same starts, and the same planner noise, every round). So the
curve's first point is the model of the random data alone; the references are the same planner on
the true dynamics and, where the environment knows it, the exact optimum. (``iterations`` is not
a word of this loop: it means a planner's iterations per planning call, here ``plan_iterations``.)

All episodes, random or planned, run through the one episode runner
(:func:`worldmodel.envs.runner.run_episodes`) in the real environment: Gymnasium's where the
environment mirrors one and Gymnasium is installed, else the MLX copy (``runner``).

Randomness: every draw of round ``i`` comes from generators seeded by ``(seed, i)`` (training
batches) or ``(seed, episode number)`` (starts, Gymnasium reset seeds, random actions), the model's
initial weights from ``seed``; only the collecting planner's key streams carry over from one
round to the next, and the run folder keeps them. A resumed run therefore continues exactly as
one that was never interrupted: the same curve and the same weights.
"""

from __future__ import annotations

import inspect
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace

import mlx.core as mx
import numpy as np

import planners
from planners.propagation import MODES

from .checks import at_least, check_seed, positive_finite
from .data import Transitions
from .envs import env_record, get_env
from .envs.gymnasium import gym_id
from .envs.runner import Episodes, check_recording, choose_runner, describe_runner, planner_policy, random_policy, run_episodes
from .envs.scores import cost_ratio
from .recipe import default_home, model_for, model_sizes_for, planner_for
from .files import OutputError, check_distinct_outputs
from .folded import KnownRewardModel
from .run_folder import MANIFEST, RunFolder, RunFolderError, holds_run, owns, snapshot_name
from .train import NORMALIZATIONS, ContinualTrainer, check_training

COLLECT_IDS = 1_000_000
"""Env ids of the collecting planner's episodes (``COLLECT_IDS + j``): key streams apart from the evaluation's ``0 .. E-1``."""

RESUMABLE = ("rounds",)
"""Settings a resumed run may change."""

RENAMED = {"iterations": "rounds", "episodes_per_iteration": "episodes_per_round"}
"""Old names of settings in run records (``run.json``) written before the loop's count was called ``rounds``."""


@dataclass
class MbrlConfig:
    """A model-based RL run. ``None`` takes the environment's ``defaults.mbrl``
    (:class:`~worldmodel.envs.defaults.MbrlBudget`; for the planner's sizes, its ``defaults.planning``
    and the planner's own iterations); ``runner`` ``None`` picks Gymnasium's env where there is one.

    Attributes:
        env: the environment's name (:func:`worldmodel.envs.get_env`).
        seed: seeds everything (see the module).
        rounds, random_episodes, random_steps, episodes_per_round, ensemble,
        first_train_steps, train_steps, batch_size, lr, normalization, eval_episodes: see
            :class:`~worldmodel.envs.defaults.MbrlBudget`.
        propagation, particles: how an ensemble (``ensemble > 1``) imagines (default: the budget's, TS∞): ``planners.Propagation(mode,
            particles=P)``; ignored for one model.
        planner: the planner's name (``planners.PLANNERS``; default: the budget's, CEM).
        horizon, samples, plan_iterations: the planner's sizes.
        runner: ``"gymnasium"`` or ``"mlx"``: where episodes run.
    """

    env: str = "particle"
    seed: int = 0
    rounds: int | None = None
    random_episodes: int | None = None
    random_steps: int | None = None
    episodes_per_round: int | None = None
    ensemble: int | None = None
    first_train_steps: int | None = None
    train_steps: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    normalization: str | None = None
    eval_episodes: int | None = None
    propagation: str | None = None
    particles: int | None = None
    planner: str | None = None
    horizon: int | None = None
    samples: int | None = None
    plan_iterations: int | None = None
    runner: str | None = None

    def __post_init__(self):
        get_env(self.env)  # ValueError naming the choices
        if self.planner is not None:
            planners.planner_class(self.planner)
        if self.propagation is not None and self.propagation not in MODES:
            raise ValueError(f"propagation must be one of {', '.join(MODES)}, got {self.propagation!r}")
        if self.normalization is not None and self.normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {', '.join(NORMALIZATIONS)}, got {self.normalization!r}")
        check_seed(self.seed)
        at_least(0, rounds=self.rounds)
        at_least(1, **{name: getattr(self, name) for name in (
            "random_episodes", "random_steps", "episodes_per_round", "ensemble", "first_train_steps", "train_steps",
            "batch_size", "eval_episodes", "particles", "horizon", "samples", "plan_iterations")})
        positive_finite(lr=self.lr)

    def resolved(self, env) -> "MbrlConfig":
        """A copy with every ``None`` filled in for ``env`` (its budget, sizes, the runner that can run it)."""
        budget, planning = env.defaults.mbrl, env.defaults.planning
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in ("rounds", "random_episodes", "episodes_per_round", "ensemble", "first_train_steps",
                     "train_steps", "batch_size", "lr", "normalization", "eval_episodes", "planner", "propagation"):
            if values[name] is None:
                values[name] = getattr(budget, name)
        values["random_steps"] = values["random_steps"] or budget.random_steps or env.steps
        values["horizon"] = values["horizon"] or planning.horizon
        values["samples"] = values["samples"] or planning.samples
        if values["plan_iterations"] is None:  # the env's planning options, else the planner's own default
            values["plan_iterations"] = planning.planner_options(env).get("iterations", default_iterations(values["planner"]))
        values["runner"] = choose_runner(env, self.runner)
        return MbrlConfig(**values)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "MbrlConfig":
        """Build from a dict (e.g. a run's record), keeping only known keys; the old names of
        :data:`RENAMED` (run records written before ``rounds``) are read as the new ones."""
        known = {f.name for f in fields(cls)}
        values = {RENAMED.get(k, k): v for k, v in values.items()}
        return cls(**{k: v for k, v in values.items() if k in known})


def default_iterations(planner: str) -> int:
    """The planner's own default iterations per planning call (from the first class in its MRO that names
    them: iCEM passes its options on to CEM's)."""
    for cls in planners.planner_class(planner).__mro__:
        parameter = inspect.signature(cls.__init__).parameters.get("iterations")
        if parameter is not None:
            return parameter.default
    raise ValueError(f"planner {planner!r} has no iterations")


def default_run_folder(env_name: str) -> str:
    """``$WMPLAN_HOME/mbrl-NAME`` (``$WMPLAN_HOME`` is created if missing): where ``wmplan mbrl`` runs by default."""
    home = default_home()
    os.makedirs(home, exist_ok=True)
    return os.path.join(home, f"mbrl-{env_name}")


def check_outputs(folder: str, outputs: dict, resume: bool, how: str = "resume=True") -> None:
    """Before any work: :class:`~worldmodel.files.OutputError` when the run folder ``folder`` and the other
    ``outputs`` ``{name: path}`` would overwrite each other or the run's own files, or when a new run (not
    ``resume``) would replace the run ``folder`` holds (``how``: how to resume instead)."""
    check_distinct_outputs({"--out": folder, **outputs})
    for name, path in outputs.items():
        if path is not None and owns(folder, path):
            raise OutputError(f"{name} {path} is one of the run folder's own files: write it outside {MANIFEST} "
                              "and the iteration-NNNN snapshots")
    if not resume and holds_run(folder):  # a new run would replace it: nothing is touched
        raise OutputError(f"--out {existing_run_message(folder, how)}")


def existing_run_message(folder: str, resume: str = "resume=True") -> str:
    """Why a fresh run into ``folder``, which holds a run, is refused, and what to do instead (``resume``: how to resume)."""
    return f"{folder} holds a run: pass {resume} to continue it, or choose another folder"


CURVE_FIELDS = {"round": "an integer", "env_steps": "an integer", "train_returns": "a list of numbers",
                "eval_mean_return": "a number", "eval_cost_ratio": "a number or null", "eval_returns": "a list of numbers",
                "train_loss": "a number"}
"""Every entry of a run record's ``curve``: its fields and what each holds (``round`` was ``iteration`` before b765683's rename)."""

REFERENCE_FIELDS = {"true_dynamics": {"returns": "a list of numbers", "mean_return": "a number", "cost_ratio": "a number or null"},
                    "optimal": {"returns": "a list of numbers", "mean_return": "a number"}}
"""A run record's ``references``: each reference's fields (``optimal`` is null for an env without a known optimum,
``true_dynamics`` for one without true dynamics to plan with: ``env.true_dynamics()`` is ``None``)."""

_KINDS = {
    "an integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "a number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "a number or null": lambda v: v is None or _KINDS["a number"](v),
    "a string": lambda v: isinstance(v, str),
    "a string or null": lambda v: v is None or isinstance(v, str),
    "an integer or null": lambda v: v is None or _KINDS["an integer"](v),
    "a list of numbers": lambda v: isinstance(v, list) and all(_KINDS["a number"](x) for x in v),
}


def _config_kinds() -> dict:
    """Each :class:`MbrlConfig` field -> what a run record's ``config`` may hold there."""
    kinds = {"int": "an integer", "int | None": "an integer or null", "str": "a string", "str | None": "a string or null",
             "float | None": "a number or null"}
    return {f.name: kinds[str(f.type)] for f in fields(MbrlConfig)}


def check_record(record: dict, number: int, where: str) -> None:
    """:class:`~worldmodel.run_folder.RunFolderError` naming the field unless ``record`` is an MBRL run's record after
    round ``number``: ``config`` (known fields of the right kinds), ``env``, ``runner``, ``references`` and ``curve`` (one
    entry per round ``0 .. number``), read before any work. ``where``: the run folder, for the message."""

    def bad(field: str, expected: str, value) -> RunFolderError:
        return RunFolderError(f"corrupt run folder {where}: run.json's record.{field} must be {expected}, got {value!r:.60}")

    def fields_of(value, field: str, kinds: dict, renamed: dict, optional: bool = False) -> None:
        if not isinstance(value, dict):
            raise bad(field, "an object", value)
        value = {renamed.get(k, k): v for k, v in value.items()}
        for name, kind in kinds.items():
            if name not in value and optional:
                continue
            if name not in value or not _KINDS[kind](value[name]):
                raise bad(f"{field}.{name}", kind, value.get(name, "missing"))

    fields_of(record.get("config", "missing"), "config", _config_kinds(), RENAMED, optional=True)  # a missing setting: its default
    if not isinstance(record.get("env"), dict):
        raise bad("env", "an object", record.get("env", "missing"))
    if not isinstance(record.get("runner"), str):
        raise bad("runner", "a string", record.get("runner", "missing"))
    references = record.get("references")
    if not isinstance(references, dict):
        raise bad("references", "an object", references if "references" in record else "missing")
    if references.get("true_dynamics", "missing") is not None:  # null: an env without true dynamics to plan with
        fields_of(references.get("true_dynamics", "missing"), "references.true_dynamics", REFERENCE_FIELDS["true_dynamics"], {})
    if references.get("optimal") is not None:
        fields_of(references["optimal"], "references.optimal", REFERENCE_FIELDS["optimal"], {})
    curve = record.get("curve")
    if not isinstance(curve, list) or len(curve) != number + 1:
        raise bad("curve", f"a list of {number + 1} entries (rounds 0 to {number})", curve if "curve" in record else "missing")
    for i, entry in enumerate(curve):
        fields_of(entry, f"curve[{i}]", CURVE_FIELDS, {"iteration": "round"})


def saved_config(folder: str) -> MbrlConfig:
    """The settings of the run in ``folder`` (:class:`~worldmodel.run_folder.RunFolderError` if there is none or its
    record is not an MBRL run's, :func:`check_record`)."""
    manifest = RunFolder(folder).read_manifest()
    record = manifest["record"]
    check_record(record, manifest["iteration"], folder)
    try:
        return MbrlConfig.from_dict(record["config"])
    except (KeyError, TypeError, ValueError) as err:
        raise RunFolderError(f"corrupt run folder {folder}: its settings {err}") from None


def resume_config(folder: str, **changes) -> MbrlConfig:
    """The settings of the run in ``folder`` with ``changes``, which may differ from the run's own only in
    :data:`RESUMABLE` (``ValueError`` ``"NAME VALUE differs from the run's SAVED"`` else)."""
    saved = saved_config(folder)
    for name, value in sorted(changes.items()):
        if name not in RESUMABLE and value != getattr(saved, name):
            raise ValueError(f"{name} {value} differs from the run's {getattr(saved, name)!r}")
    return replace(saved, **changes)


@dataclass
class _Run:
    """What the loop carries from one round to the next (and the run folder keeps)."""

    round: int
    model: object
    trainer: ContinualTrainer
    data: Transitions | None
    collector: planners.PlannerState | None
    record: dict


def run_mbrl(config: MbrlConfig, folder: str, *, resume: bool = False, log: Callable[[str], None] | None = None) -> dict:
    """Run (or with ``resume`` continue) the loop of ``config`` up to ``config.rounds``, snapshotting
    into the run folder ``folder`` (:class:`~worldmodel.run_folder.RunFolder`) after every round.

    Args:
        config: the run's settings; on ``resume`` they must equal the run's own except ``rounds``.
        folder: the run folder (created if missing; its parent must exist). A fresh run is refused
            in a folder that holds a run (:func:`~worldmodel.run_folder.holds_run`): nothing of it is lost.
        resume: continue the run in ``folder`` from its last snapshot (runs written before
            ``rounds`` had its name included).
        log: called with one line per round (and one before the first).

    Returns:
        ``{"config", "env", "runner", "references", "curve", "timing", "run_folder", "model"}`` (JSON-ready):
        ``curve`` has one entry per round (``round``, ``env_steps``, ``train_returns``,
        ``eval_mean_return``, ``eval_cost_ratio``, ``eval_returns``, ``train_loss``); ``timing`` one per
        round run in this process or recorded before (``round``, planning ``collect_ms_per_step`` and
        ``eval_ms_per_step``, ``seconds`` of ``collect``, ``train``, ``eval``: wall times, so not part of
        the curve, which a resumed run reproduces exactly); ``model`` is the checkpoint folder of the
        last round's model.

    Raises:
        ValueError: bad settings, or settings that differ from the resumed run's.
        worldmodel.run_folder.RunFolderError: no run to resume, a fresh run into a folder that holds one, a
            corrupt run folder, or one in use.
    """
    env = get_env(config.env)
    config = config.resolved(env)
    log = log or (lambda line: None)
    check_memory(config, env)
    starts = env.benchmark_starts(config.eval_episodes, config.seed)
    with RunFolder(folder) as run_folder:
        if resume:
            run = _resumed(run_folder, config)
            if run.round >= config.rounds:
                log(f"Note: the run in {folder} already has {run.round} rounds, as many as rounds {config.rounds} asks "
                    "for: nothing to run (give more rounds to continue it)")
        else:
            if holds_run(folder):
                raise RunFolderError(existing_run_message(folder))
            run = _fresh(config, env, starts, log)
        optimum = np.asarray(run.record["references"]["optimal"]["returns"]) if _exact(env) else None
        for number in range(run.round + 1, config.rounds + 1):
            entry, timing = _round(config, env, run, number, starts, optimum)
            run.record["curve"].append(entry)
            run.record.setdefault("timing", []).append(timing)
            run.round = number
            about = {"env": run.record["env"], "data": {"transitions": len(run.data), "source": run.record["runner"]},
                     "mbrl": {"round": number, "seed": config.seed}}
            run_folder.save(number, run.model, run.trainer.state_arrays(), run.data, run.collector, run.record, model_extra=about)
            log(round_line(entry, timing))
    model = os.path.join(folder, snapshot_name(run.round), "model")
    return {**run.record, "run_folder": folder, "model": model}


def check_memory(config: MbrlConfig, env) -> None:
    """:class:`~planners.runtime.memory.MemoryBudgetError` when a part of the run of ``config`` (resolved for ``env``)
    would need more memory than is available: the episodes it records, the planners over the episodes they plan
    together (on the true dynamics, and on the model with an ensemble's particles), and the training of round 0
    and of the last round. Checked before any work, from the sizes alone (no model is built)."""
    transitions = config.random_episodes * config.random_steps + config.rounds * config.episodes_per_round * env.steps
    check_recording(env, config.random_episodes, config.random_steps, next_states=True)
    propagation = _propagation(config)
    model_planner = _planner(config, env, _EnsembleSizes(config.ensemble), propagation) if propagation else None
    for episodes in (config.episodes_per_round, config.eval_episodes):
        check_recording(env, episodes, env.steps, next_states=True)
        for planner in (_planner(config, env, env, None), model_planner):
            if planner is not None:
                planner.check_memory(episodes)
    sizes = model_sizes_for(env, config.ensemble)
    for rows, steps in ((config.random_episodes * config.random_steps, config.first_train_steps), (transitions, config.train_steps)):
        check_training(*sizes, config.ensemble, rows, min(config.batch_size, rows), steps)


class _EnsembleSizes:
    """An ensemble of ``size`` members as a planner's memory estimate sees it (its size); never stepped."""

    def __init__(self, size: int):
        self.ensemble_size = size

    def members(self, state, action, noise=None):
        raise NotImplementedError("a stand-in for memory estimates")

    def __call__(self, state, action):
        raise NotImplementedError("a stand-in for memory estimates")


def _fresh(config: MbrlConfig, env, starts: np.ndarray, log) -> _Run:
    """Round ``-1``: a new model and trainer, no data yet, and the references (true-dynamics planner, optimum)."""
    mx.random.seed(config.seed)
    model = model_for(env, ensemble=config.ensemble if config.ensemble > 1 else None)
    trainer = ContinualTrainer(model, lr=config.lr, batch_size=config.batch_size, normalization=config.normalization)
    exact = _exact(env)
    optimum = exact.returns(env, starts, env.steps) if exact is not None else None
    truth = env.true_dynamics()
    true = None if truth is None else _evaluate(config, env, truth, starts, propagation=None)
    env.close()  # MuJoCo's true dynamics: their rollout threads stop
    references = {
        "true_dynamics": None if true is None else {
            "returns": _floats(true.returns), "mean_return": float(true.returns.mean()),
            "cost_ratio": None if optimum is None else cost_ratio(true.returns, optimum)},
        "optimal": None if optimum is None else {"returns": _floats(optimum), "mean_return": float(optimum.mean())},
    }
    record = {
        "config": config.to_dict(),
        "env": env_record(env),
        "runner": describe_runner(config.runner, env.name, gym_id(env)),
        "references": references,
        "curve": [],
        "timing": [],
    }
    log(f"References over {len(starts)} evaluation episodes: {config.planner} with the true dynamics "
        + ("(none: no true dynamics to plan with)" if true is None else f"{references['true_dynamics']['mean_return']:.3f}")
        + ("" if optimum is None else f", optimal {references['optimal']['mean_return']:.3f}"))
    return _Run(-1, model, trainer, None, None, record)


def _resumed(run_folder: RunFolder, config: MbrlConfig) -> _Run:
    """The run in ``run_folder``, continued with ``config`` (which may change only :data:`RESUMABLE`)."""
    snapshot = run_folder.load()
    check_record(snapshot.record, snapshot.number, run_folder.path)
    saved = {RENAMED.get(k, k): v for k, v in snapshot.record.get("config", {}).items()}
    for name, value in config.to_dict().items():
        if name not in RESUMABLE and saved.get(name) != value:
            raise ValueError(f"cannot resume with {name} = {value!r}: the run in {run_folder.path} has {saved.get(name)!r}")
    trainer = ContinualTrainer(snapshot.model, lr=config.lr, batch_size=config.batch_size, normalization=config.normalization)
    trainer.load_state_arrays(snapshot.trainer)
    curve = [{("round" if k == "iteration" else k): v for k, v in entry.items()} for entry in snapshot.record.get("curve", [])]
    record = {**snapshot.record, "config": config.to_dict(), "curve": curve}
    return _Run(snapshot.number, snapshot.model, trainer, snapshot.data, snapshot.planner, record)


def _round(config: MbrlConfig, env, run: _Run, number: int, starts: np.ndarray, optimum) -> tuple[dict, dict]:
    """Round ``number``: collect, retrain, evaluate; updates ``run`` and returns the curve entry and the
    round's timing (planning ms per step of the collected and the evaluation episodes, seconds per phase)."""
    clock = time.perf_counter()
    if number == 0:
        episodes = _random_episodes(config, env)
        steps = config.first_train_steps
    else:
        episodes = _planned_episodes(config, env, run, number)
        steps = config.train_steps
    collected = time.perf_counter()
    new = Transitions.from_episodes(episodes)
    run.data = new if run.data is None else Transitions.concatenate([run.data, new])
    loss = run.trainer.fit(run.data, steps, np.random.default_rng([config.seed, number]))
    trained = time.perf_counter()
    evaluation = _evaluate(config, env, run.model, starts, _propagation(config))
    seconds = {"collect": collected - clock, "train": trained - collected, "eval": time.perf_counter() - trained}
    return {
        "round": number,
        "env_steps": len(run.data),
        "train_returns": _floats(episodes.returns),
        "eval_mean_return": float(evaluation.returns.mean()),
        "eval_cost_ratio": None if optimum is None else cost_ratio(evaluation.returns, optimum),
        "eval_returns": _floats(evaluation.returns),
        "train_loss": loss,
    }, {
        "round": number,
        "collect_ms_per_step": None if number == 0 else ms_per_step(episodes),
        "eval_ms_per_step": ms_per_step(evaluation),
        "seconds": {name: round(value, 3) for name, value in seconds.items()},
    }


def ms_per_step(episodes: Episodes) -> float:
    """Planning milliseconds per step of ``episodes`` (one planning call chooses the actions of all of them)."""
    calls = int(episodes.lengths.max()) if len(episodes.lengths) else 0
    return 1000.0 * episodes.plan_seconds / calls if calls else 0.0


def episode_numbers(config: MbrlConfig, number: int) -> range:
    """The run-wide numbers of the episodes collected in round ``number`` (the random ones are ``0 .. R-1``)."""
    if number == 0:
        return range(config.random_episodes)
    first = config.random_episodes + (number - 1) * config.episodes_per_round
    return range(first, first + config.episodes_per_round)


def episode_starts(env, seed: int, numbers) -> tuple[np.ndarray, np.ndarray]:
    """Reset seeds ``[E]`` of the episodes ``numbers`` (from ``(seed, number)``) and their starts ``[E, S]``:
    where Gymnasium's ``reset(seed=...)`` puts the env (``env.reset(1, seed)``)."""
    seeds = np.array([np.random.SeedSequence([seed, n, 1]).generate_state(1)[0] for n in numbers], dtype=np.int64)
    starts = np.concatenate([np.array(env.reset(1, int(s))) for s in seeds])
    return seeds, starts


def _run(config: MbrlConfig, env, policy, numbers, steps: int) -> Episodes:
    seeds, starts = episode_starts(env, config.seed, numbers)
    return run_episodes(policy, env, starts, steps, runner=config.runner, seeds=seeds, set_starts=False)


def _random_episodes(config: MbrlConfig, env) -> Episodes:
    """Round 0's episodes: uniformly random actions, each episode from its own generator ``(seed, number, 0)``."""
    numbers = episode_numbers(config, 0)
    rngs = [np.random.default_rng([config.seed, n, 0]) for n in numbers]
    return _run(config, env, random_policy(env, rngs), numbers, config.random_steps)


def _planned_episodes(config: MbrlConfig, env, run: _Run, number: int) -> Episodes:
    """Round ``number``'s episodes, planned with the current model; the planner's key streams continue ``run.collector``."""
    planner = _planner(config, env, planning_model(run.model, env), _propagation(config))
    ids = COLLECT_IDS + np.arange(config.episodes_per_round)
    state = planner.init(ids) if run.collector is None else run.collector.without_warm_start()

    def policy(observed: np.ndarray) -> np.ndarray:
        nonlocal state
        plan, state = planner.step(observed, state)
        return np.array(plan.actions[:, 0])

    episodes = _run(config, env, policy, episode_numbers(config, number), env.steps)
    run.collector = state
    return episodes


def _evaluate(config: MbrlConfig, env, dynamics, starts: np.ndarray, propagation) -> Episodes:
    """The planner on ``dynamics`` (a model, or the env's true dynamics) in closed loop from the evaluation ``starts``:
    env ids ``0 .. E-1``, fresh key streams, Gymnasium's ``reset(seed=seed + i)`` (the benchmark's episodes)."""
    learned = hasattr(dynamics, "folded")
    planned = planning_model(dynamics, env) if learned else dynamics
    policy = planner_policy(_planner(config, env, planned, propagation))
    seeds = config.seed + np.arange(len(starts))
    return run_episodes(policy, env, starts, env.steps, runner=config.runner, seeds=seeds, set_starts=False,
                        policy_read=None if learned else env.true_dynamics_read)


def planning_model(model, env):
    """What the planner imagines with: the model's folded snapshot, its reward replaced by the env's known one
    where the env's budget says so (``env.defaults.mbrl.known_reward``: :class:`~worldmodel.folded.KnownRewardModel`)."""
    folded = model.folded()
    return KnownRewardModel(folded, env.reward) if env.defaults.mbrl.known_reward else folded


def _planner(config: MbrlConfig, env, dynamics, propagation):
    overrides = {} if propagation is None else {"propagation": propagation}
    return planner_for(config.planner, dynamics, env, horizon=config.horizon, samples=config.samples,
                       iterations=config.plan_iterations, seed=config.seed, **overrides)


def _exact(env):
    """The env's exact optimum (:class:`~worldmodel.envs.defaults.Optimum`), or ``None``."""
    return env.defaults.benchmark.optimum


def _propagation(config: MbrlConfig):
    """``planners.Propagation`` of an ensemble, ``None`` for one model."""
    if config.ensemble == 1:
        return None
    return planners.Propagation(config.propagation, particles=config.particles)


def _floats(values) -> list:
    return [float(v) for v in values]


def round_line(entry: dict, timing: dict | None = None) -> str:
    """One curve entry (and the round's timing) as a progress line."""
    ratio = "" if entry["eval_cost_ratio"] is None else f" | cost ratio {entry['eval_cost_ratio']:.4f}"
    seconds = None if timing is None else timing["seconds"]
    times = "" if seconds is None else (
        f" | planning {timing['eval_ms_per_step']:.1f} ms/step | s: collect {seconds['collect']:.1f}, "
        f"train {seconds['train']:.1f}, eval {seconds['eval']:.1f}")
    return (f"round {entry['round']} | env steps {entry['env_steps']} | "
            f"train return {np.mean(entry['train_returns']):.3f} | eval return {entry['eval_mean_return']:.3f}"
            f"{ratio} | loss {entry['train_loss']:.2e}{times}")

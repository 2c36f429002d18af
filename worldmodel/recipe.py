"""Defaults and recipes: where models live, a planner with an environment's defaults, the whole job
behind ``wmplan train`` (data, model, training, held-out check, checkpoint), and load-or-train."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable

import mlx.core as mx
import numpy as np

import planners
from planners.runtime.home import wmplan_home
from planners.sequence import STEP_OPTIONS

from .checkpoint import load_model, read_config, save_model
from .data import generate, uniform_transitions
from .envs import Environment, env_has_mlx_copy, env_of_checkpoint, env_record, get_env
from .envs.runner import check_recording
from .model import EnsembleWorldModel, WorldModel, check_weight_count, layer_shapes
from .train import TrainConfig, check_training, one_step_mse, train

HELD_OUT_SIZE = 20_000
HELD_OUT_ROWS = 20
"""Gymnasium envs the held-out episodes of an env without an MLX copy run in (making one takes ~10-40 ms)."""


def default_home() -> str:
    """``$WMPLAN_HOME``, else ``~/.cache/wmplan`` (empty counts as unset): :func:`planners.runtime.home.wmplan_home`."""
    return wmplan_home()


def default_model_path(env_name: str = "particle") -> str:
    """Where commands look for ``env_name``'s model when no ``--model`` is given: ``$WMPLAN_HOME/model``
    for the particle (the seed's), ``$WMPLAN_HOME/model-NAME`` for the others."""
    return os.path.join(default_home(), "model" if env_name == "particle" else f"model-{env_name}")


def demo_start(env: Environment, seed: int = 0) -> np.ndarray:
    """The start ``[S]`` float32 of ``wmplan plan`` and ``rollout``: the env's ``defaults.planning.demo_start``
    (the particle's: at rest, x = 1), else where ``env.reset(1, seed)`` puts it."""
    given = env.defaults.planning.demo_start
    if given is not None:
        return np.array(given, dtype=np.float32)
    return np.array(env.reset(1, seed)[0])


def planner_for(name: str, dynamics, env: Environment, *, horizon: int | None = None, samples: int | None = None,
                iterations: int | None = None, seed: int = 0, **overrides):
    """Planner ``name`` (``planners.PLANNERS``) on ``dynamics`` in ``env``'s action space, with ``env``'s
    termination and planning defaults (``env.defaults.planning``: horizon, samples, options); the sizes
    given, then ``overrides``, replace them, and ``None`` keeps the env's or the planner's own default.
    A ``planners.SequenceEvaluator`` (MuJoCo's true dynamics) gets none of the options of step dynamics
    (``planners.sequence.STEP_OPTIONS``: termination, terminal value, ...): it computes whole returns itself.
    The env's default ``iterations`` are for population searches: the gradient planner keeps its own Adam steps."""
    planning = env.defaults.planning
    env_options = planning.planner_options(env)
    if not planners.planner_class(name).iterations_update_populations:  # the gradient planner's Adam steps
        env_options.pop("iterations", None)
    options = {
        **env_options,
        "horizon": horizon or planning.horizon,
        "samples": samples or planning.samples,
        "iterations": iterations if iterations is not None else env_options.get("iterations"),
        "seed": seed,
        "termination": env.termination,
        **overrides,
    }
    if isinstance(dynamics, planners.SequenceEvaluator):
        options = {k: v for k, v in options.items() if k not in STEP_OPTIONS}
    return planners.make_planner(name, dynamics, env.action_space, **{k: v for k, v in options.items() if v is not None})


def train_runner(env_name: str) -> str:
    """Where ``wmplan train`` collects its data by default: ``"mlx"`` (the env's MLX copy), ``"gymnasium"``
    for an env without one (MuJoCo's)."""
    return "mlx" if env_has_mlx_copy(env_name) else "gymnasium"


def train_config(env: Environment, **settings) -> TrainConfig:
    """The :class:`TrainConfig` of ``env``'s training budget (epochs, batch size), ``settings`` not ``None`` overriding it."""
    budget = env.defaults.training
    return TrainConfig(**{"epochs": budget.epochs, "batch_size": budget.batch_size,
                          **{k: v for k, v in settings.items() if v is not None}})


def model_for(env: Environment, ensemble: int | None = None, probabilistic: bool = False, hidden: tuple | None = None,
              angles: bool | None = None) -> WorldModel:
    """A new, untrained model of ``env`` (weights drawn from MLX's global generator).

    A :class:`WorldModel` with ``env.defaults.training``'s architecture (``hidden``, the reward head, ``angles``
    as ``(cos, sin)`` inputs, the reward read from the state too), or with ``ensemble=K`` an
    :class:`~worldmodel.EnsembleWorldModel` of ``K`` such members (``probabilistic`` heads on request).
    ``hidden`` and ``angles`` override the budget's.
    """
    architecture = _architecture(env, hidden, angles)
    if ensemble is None:
        if probabilistic:
            raise ValueError("probabilistic heads need an ensemble (ensemble=K, K >= 1)")
        return WorldModel(env.state_dim, env.action_space.dim, **architecture)
    return EnsembleWorldModel(ensemble, env.state_dim, env.action_space.dim, probabilistic=probabilistic, **architecture)


def _architecture(env: Environment, hidden: tuple | None, angles: bool | None) -> dict:
    """The :class:`WorldModel` options of ``env``'s training budget, ``hidden`` and ``angles`` overriding it."""
    budget = env.defaults.training
    angles = budget.angles if angles is None else angles
    return {
        "hidden": budget.hidden if hidden is None else hidden,
        "reward_hidden": budget.reward_hidden,
        "angles": env.angles if angles else (),
        "reward_from_state": budget.reward_from_state,
    }


def model_sizes_for(env: Environment, members: int = 1, probabilistic: bool = False, hidden: tuple | None = None,
                    angles: bool | None = None) -> tuple[int, int]:
    """``(weights, layer output units)`` of :func:`model_for`'s model over its ``members``, without building it."""
    architecture = _architecture(env, hidden, angles)
    shapes = layer_shapes(env.state_dim, env.action_space.dim, architecture["hidden"], architecture["reward_hidden"],
                          architecture["angles"], architecture["reward_from_state"], probabilistic)
    return members * sum(i * o + o * bias for i, o, bias in shapes), members * sum(o for _, o, bias in shapes if bias)


def check_training_fits(env: Environment, transitions: int, config: TrainConfig, members: int = 1,
                        probabilistic: bool = False, hidden: tuple | None = None, angles: bool | None = None) -> None:
    """:class:`~planners.runtime.memory.MemoryBudgetError` when training :func:`model_for`'s model on ``transitions``
    rows with ``config`` would need more memory than is available, and ``ValueError`` when the model would have
    more weights than a :class:`WorldModel` takes: checked from the architecture, before any data is collected."""
    parameters, units = model_sizes_for(env, members, probabilistic, hidden, angles)
    rows = transitions - int(round(config.val_fraction * transitions))
    batch = max(1, min(config.batch_size, rows))
    check_training(parameters, units, members, rows, batch, max(1, rows // batch))
    architecture = _architecture(env, hidden, angles)
    check_weight_count(parameters, members, env.state_dim, env.action_space.dim, architecture["hidden"],
                       architecture["reward_hidden"])


def train_world_model(
    out: str,
    episodes: int | None = None,
    steps: int | None = None,
    hidden: tuple | None = None,
    config: TrainConfig | None = None,
    env: Environment | None = None,
    log: Callable[[str], None] | None = print,
    world=None,
    runner: str = "mlx",
    angles: bool | None = None,
    ensemble: int | None = None,
    probabilistic: bool = False,
    source: str | None = None,
) -> tuple[WorldModel, dict]:
    """Generate data, train a :class:`WorldModel`, measure it, save it atomically to ``out``.

    Args:
        out: the checkpoint folder.
        episodes, steps, hidden: data and model sizes. Default: ``env.defaults.training``'s.
        config: training settings. Default: :func:`train_config` of ``env``.
        env: a :mod:`worldmodel.envs` environment. Default: the particle.
        log: where progress lines go (``None``: nowhere).
        world: with a :class:`~worldmodel.distributed.World` of several processes the training is
            data-parallel (see :func:`~worldmodel.train.train`); only rank 0 logs, measures and
            saves, the other ranks write nothing and get empty metrics.
        runner: ``"mlx"`` or ``"gymnasium"``: where the random-action episodes are stepped (:func:`~worldmodel.data.generate`).
        angles: whether the model takes ``env.angles`` as ``(cos, sin)``. Default: ``env.defaults.training.angles``.
        ensemble: ``K > 1`` members: an :class:`~worldmodel.EnsembleWorldModel` (``probabilistic`` heads on
            request), each member trained on its own bootstrap of the data; the held-out error is
            that of the members' mean. ``1``: one :class:`WorldModel`. Default: ``env.defaults.training.ensemble``.
        source: the old name of ``runner`` (``"gym"``); deprecated.

    The checkpoint records ``env`` as :func:`~worldmodel.envs.env_record` gives it: ``{"name": NAME, **options}``.

    Returns:
        The model and its metrics: ``held_out_mse`` per dimension (``[x, v, r]`` for the particle) on
        20,000 transitions (:func:`held_out_transitions`), and its mean.
    """
    if source is not None:
        warnings.warn("train_world_model(source=...) is deprecated: pass runner='mlx' or runner='gymnasium'",
                      DeprecationWarning, stacklevel=2)
        runner = "gymnasium" if source == "gym" else source
    env = env or get_env("particle")
    budget = env.defaults.training
    episodes = budget.episodes if episodes is None else episodes
    steps = budget.steps if steps is None else steps
    config = config or train_config(env)
    root = world is None or world.is_root
    log = log if root else None
    members = budget.ensemble if ensemble is None else ensemble
    check_recording(env, episodes, steps, next_states=True)  # the data, then the model, before either is made
    check_training_fits(env, episodes * steps, config, members, probabilistic, hidden, angles)
    data = generate(env, episodes, steps, seed=config.seed, runner=runner)
    if log:
        log(f"Dataset size: {len(data)} transitions")
    mx.random.seed(config.seed)
    model = model_for(env, ensemble=members if members > 1 else None, probabilistic=probabilistic, hidden=hidden, angles=angles)
    result = train(model, data, config, log=log, world=world)
    if not root:
        return model, {}
    held_out = one_step_mse(model, held_out_transitions(env, seed=config.seed + 1_000_003))
    metrics = {
        "held_out_mse": [float(v) for v in held_out],
        "held_out_mse_mean": float(np.mean(held_out)),
        "train_losses": result.train_losses,
        "val_losses": result.val_losses,
    }
    save_model(
        model,
        out,
        extra={
            "env": env_record(env),
            "data": {"episodes": episodes, "steps": steps, "transitions": len(data), "seed": config.seed, "source": runner},
            "training": {**config.to_dict(), **({"processes": world.size} if world is not None and world.size > 1 else {})},
            "metrics": metrics,
        },
    )
    return model, metrics


def held_out_transitions(env: Environment, seed: int):
    """:data:`HELD_OUT_SIZE` transitions to measure a model on: uniform over the env's training box (one step
    each of its MLX copy), or, for an env without an MLX copy (MuJoCo's), random-action episodes in Gymnasium
    from reset draws (:func:`~worldmodel.data.generate` with another seed): :data:`HELD_OUT_ROWS` of them
    side by side (one Gymnasium env each), each restarting where it terminates."""
    if env.mlx_copy:
        return uniform_transitions(env, HELD_OUT_SIZE, seed=seed)
    return generate(env, HELD_OUT_ROWS, HELD_OUT_SIZE // HELD_OUT_ROWS, seed=seed, runner="gymnasium")


def held_out_line(env: Environment, metrics: dict) -> str:
    """The printed summary of ``metrics["held_out_mse"]``: each state variable, the reward ``r``, the mean."""
    names = (*env.state_names, "r")
    values = ", ".join(f"{name} = {value:.2e}" for name, value in zip(names, metrics["held_out_mse"]))
    kind = "uniform" if env.mlx_copy else "random-action"
    return f"Held-out one-step MSE ({HELD_OUT_SIZE} {kind} transitions): {values}, mean = {metrics['held_out_mse_mean']:.2e}"


def load_or_train_model(path: str | None, world=None, env_name: str = "particle",
                        log: Callable[[str], None] | None = print) -> tuple:
    """``(model, path)``: the model at ``path``; with no path, ``env_name``'s default one
    (:func:`default_model_path`), trained first with the env's default budget if missing (said so to ``log``).

    With several processes (``world``), rank 0 alone trains a missing default model while the
    others wait for it (the path must be visible to every process).
    """
    from .distributed import all_max

    if path is not None:
        return load_model(path), path
    path = default_model_path(env_name)
    missing = not os.path.exists(os.path.join(path, "config.json"))
    several = world is not None and world.size > 1
    if several:
        missing = all_max(float(missing), world) > 0  # every rank takes the same branch
    if missing:
        if world is None or world.is_root:
            if log:
                log(f"No model at {path}: training the default one first (wmplan train --env {env_name}).")
            env = get_env(env_name)
            _, metrics = train_world_model(path, env=env, log=log)
            if log:
                log(held_out_line(env, metrics))
                log(f"Saved model to {path}")
        if several:
            all_max(0.0, world)  # wait until rank 0 has saved it
    return load_model(path), path


def load_model_for(env_name: str, path: str | None, world=None, log: Callable[[str], None] | None = print) -> tuple:
    """``(model, path, env)``: :func:`load_or_train_model` (a missing default model is trained first) and the
    environment the model was trained on (its checkpoint's), which must be ``env_name``; ``ValueError`` else."""
    model, path = load_or_train_model(path, world, env_name, log=log)
    env = env_of_checkpoint(read_config(path))
    if env.name != env_name:
        raise ValueError(f"the model at {path} was trained for {env.name}, not {env_name}; "
                         f"pass --env {env.name} or a model of {env_name}")
    return model, path, env

"""The whole job behind ``wmplan train``: data, model, training, held-out check, checkpoint."""

from __future__ import annotations

import os
from collections.abc import Callable

import mlx.core as mx
import numpy as np

from .checkpoint import save_model
from .data import generate, uniform_transitions
from .ensemble import EnsembleWorldModel
from .env import ParticleEnv
from .model import WorldModel
from .train import TrainConfig, one_step_mse, train

HELD_OUT_SIZE = 20_000


def default_home() -> str:
    """``$WMPLAN_HOME``, else ``~/.cache/wmplan``."""
    return os.environ.get("WMPLAN_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "wmplan")


def default_model_path() -> str:
    """Where commands look for the model when no ``--model`` is given."""
    return os.path.join(default_home(), "model")


def train_world_model(
    out: str,
    episodes: int = 400,
    steps: int = 50,
    hidden: tuple = (128, 128),
    config: TrainConfig | None = None,
    env: ParticleEnv | None = None,
    log: Callable[[str], None] | None = print,
    world=None,
    ensemble: int | None = None,
    probabilistic: bool = False,
) -> tuple[WorldModel | EnsembleWorldModel, dict]:
    """Generate data, train a :class:`WorldModel`, measure it, save it atomically to ``out``.

    With ``ensemble=K`` the model is an :class:`~worldmodel.EnsembleWorldModel` of ``K`` members
    (``probabilistic`` heads on request), each trained on its own bootstrap of the data; the
    held-out error is that of the members' mean.

    With ``world`` (a :class:`~worldmodel.distributed.World` of several processes) the training is
    data-parallel (see :func:`~worldmodel.train.train`); only rank 0 logs, measures and saves, the
    other ranks write nothing and get empty metrics.

    Returns:
        The model and its metrics: ``held_out_mse`` per dimension (``[x, v, r]`` for the particle) on
        20,000 transitions drawn uniformly from the whole state box and all actions, and its mean.
    """
    config = config or TrainConfig()
    root = world is None or world.is_root
    log = log if root else None
    env = env or ParticleEnv()
    data = generate(env, episodes, steps, seed=config.seed)
    if log:
        log(f"Dataset size: {len(data)} transitions")
    mx.random.seed(config.seed)
    if ensemble is None:
        if probabilistic:
            raise ValueError("probabilistic heads need an ensemble (ensemble=K, K >= 1)")
        model = WorldModel(env.state_dim, env.action_space.dim, hidden=hidden)
    else:
        model = EnsembleWorldModel(ensemble, env.state_dim, env.action_space.dim, hidden=hidden, probabilistic=probabilistic)
    result = train(model, data, config, log=log, world=world)
    if not root:
        return model, {}
    held_out = one_step_mse(model, uniform_transitions(env, HELD_OUT_SIZE, seed=config.seed + 1_000_003))
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
            "env": env.config(),
            "data": {"episodes": episodes, "steps": steps, "transitions": len(data), "seed": config.seed},
            "training": {**config.to_dict(), **({"processes": world.size} if world is not None and world.size > 1 else {})},
            "metrics": metrics,
        },
    )
    return model, metrics

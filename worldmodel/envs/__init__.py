"""Environments by name: one module each, holding everything that environment knows.

    env = get_env("pendulum")            # or get_env("particle", continuous=True), ...
    next_state, reward = env(state, action)          # [B, S], [B, A] -> [B, S], [B] (MLX float32)
    starts = env.reset(8, seed=0)                    # [8, S]: Gymnasium's reset distribution
    planning = env.defaults.planning                 # the env's budgets: training, planning, mbrl, benchmark
    planner = CEM(env, env.action_space, horizon=planning.horizon, samples=planning.samples,
                  termination=env.termination)
    episodes = run_episodes(policy, env, starts, env.steps)   # the one episode runner (MLX or Gymnasium)
    env_of_checkpoint(read_config(path)) # the env a checkpoint was trained on (its env_record)

MuJoCo's environments (``inverted-pendulum``, ``reacher``, ``half-cheetah``: :mod:`~worldmodel.envs.mujoco_base`)
have no MLX copy: they run in Gymnasium, and building one without MuJoCo installed is a ``ValueError``
naming the install command.

See :class:`~worldmodel.envs.base.Environment` for what every environment provides, the
:mod:`~worldmodel.envs.gymnasium` adapter for the real Gymnasium environments, and
:mod:`~worldmodel.envs.runner` for episodes.
"""

from __future__ import annotations

import inspect

from .acrobot import Acrobot
from .base import Environment
from .cartpole import CartPole
from .half_cheetah import HalfCheetah
from .inverted_pendulum import InvertedPendulum
from .mountaincar import MountainCar
from .particle import Particle, ParticleEnv
from .pendulum import Pendulum
from .reacher import Reacher

ENVIRONMENTS = {cls.name: cls for cls in (Particle, Pendulum, CartPole, Acrobot, MountainCar,
                                          InvertedPendulum, Reacher, HalfCheetah)}
ENV_NAMES = tuple(ENVIRONMENTS)
MLX_ENV_NAMES = tuple(name for name, cls in ENVIRONMENTS.items() if cls.mlx_copy)
"""The environments with an MLX copy of their dynamics (the others, MuJoCo's, run in Gymnasium only: ``pip install '.[mujoco]'``)."""

__all__ = [
    "ENVIRONMENTS",
    "ENV_NAMES",
    "MLX_ENV_NAMES",
    "Environment",
    "ParticleEnv",
    "env_has_mlx_copy",
    "env_of_checkpoint",
    "env_record",
    "get_env",
    *(cls.__name__ for cls in ENVIRONMENTS.values()),
]


def get_env(name: str, **options) -> Environment:
    """The environment ``name`` (one of :data:`ENV_NAMES`) built with its constructor ``options``.

    Raises:
        ValueError: an unknown name, or an option the environment does not take.
    """
    if name not in ENVIRONMENTS:
        raise ValueError(f"unknown environment {name!r}; choose from {', '.join(ENV_NAMES)}")
    cls = ENVIRONMENTS[name]
    try:
        inspect.signature(cls).bind(**options)
    except TypeError:
        accepted = ", ".join(inspect.signature(cls).parameters)
        takes = f"takes the options {accepted}" if accepted else "takes no options"
        raise ValueError(f"environment {name!r} {takes}; got {', '.join(options)}") from None
    return cls(**options)


def env_has_mlx_copy(name: str) -> bool:
    """Whether the environment ``name`` has an MLX copy of its dynamics (``False`` also for an unknown name)."""
    return name in MLX_ENV_NAMES


def env_record(env: Environment) -> dict:
    """``{"name": NAME, **options}``: what rebuilds ``env`` (:func:`env_of_checkpoint`), as checkpoints and benchmark JSON keep it."""
    return {"name": env.name, **env.config()}


def env_of_checkpoint(config: dict) -> Environment:
    """The environment a checkpoint's ``config.json`` (a dict) was trained on, from its ``"env"`` record.

    The record is ``{"name": NAME, **options}``; one without a name (checkpoints written before
    environments had names) is the particle's.

    Raises:
        ValueError: a record that is not a dict, or that names an unknown environment or option.
    """
    record = config.get("env", {}) if isinstance(config, dict) else None
    if not isinstance(record, dict):
        raise ValueError(f"the checkpoint's env record must be a JSON object, got {record!r}")
    options = {key: value for key, value in record.items() if key != "name"}
    try:
        return get_env(record.get("name", Particle.name), **options)
    except (TypeError, ValueError) as err:
        raise ValueError(f"the checkpoint's env record {record}: {err}") from None

"""What Gymnasium's MuJoCo environments share: the base class :class:`MujocoEnvironment` and its ``GymSpec``.

There is no MLX copy of MuJoCo's physics: episodes run in Gymnasium's own environment (the runner
``"gymnasium"``), a learned model imagines, and the planner state is Gymnasium's observation
``[S]``. Each env module gives its reset distribution (``reset_physics(rng, qpos0, qvel0) -> (qpos,
qvel)``, the same draws as Gymnasium's ``reset_model`` from the same generator) and how an
observation puts the simulator back in its state (``physics_of_obs(obs [S]) -> (qpos, qvel)``: the
observations of these three envs are Markov; HalfCheetah's leaves out the x position, which the
dynamics do not depend on, so it is put at 0).

    env = get_env("reacher")                      # ValueError naming the install command without MuJoCo
    starts = env.reset(8, seed=0)                 # [8, S]: reset(1, s) is Gymnasium's reset(seed=s)'s observation
    physics = physics_state(env, gym_env)         # [P] float64: mj_getState(mjSTATE_FULLPHYSICS)
    set_physics_state(env, gym_env, physics)      # and back (then mj_forward): worldmodel.envs.gymnasium

MuJoCo and Gymnasium are imported only when an environment is built or a physics state is read.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import mlx.core as mx
import numpy as np

from ..extras import install
from .base import Environment
from .gymnasium import GymSpec


def require_mujoco(name: str) -> None:
    """``ValueError`` naming the install command unless MuJoCo and Gymnasium's MuJoCo envs can be imported;
    MuJoCo's warnings then go through Python's ``warnings``, less :data:`SILENCED_WARNINGS`."""
    try:
        import mujoco  # first: Gymnasium's MuJoCo envs raise their own error without it
        import gymnasium.envs.mujoco  # noqa: F401
    except ImportError:
        raise ValueError(f"environment {name!r} needs MuJoCo: {install('mujoco')}") from None
    mujoco.set_mju_user_warning(_warn)


SILENCED_WARNINGS = ("settotalmass",)
"""MuJoCo's warnings not printed: HalfCheetah-v5's model uses a compiler attribute MuJoCo >= 3.17 calls
deprecated, and MuJoCo would print that on every ``gymnasium.make``."""


def _warn(text: str) -> None:
    if not any(part in text for part in SILENCED_WARNINGS):
        warnings.warn(f"MuJoCo: {text}", stacklevel=2)


def read_obs(unwrapped) -> np.ndarray:
    """The observation ``[S]`` float64 of the simulator's current state (Gymnasium's ``_get_obs``)."""
    return np.asarray(unwrapped._get_obs(), dtype=np.float64)


def mujoco_spec(gym_id: str, physics_of_obs: Callable[[np.ndarray], tuple]) -> GymSpec:
    """The ``GymSpec`` of a MuJoCo env: observations are the state, put in through
    ``physics_of_obs(obs [S]) -> (qpos, qvel)``; the full physics state is readable."""

    def write(unwrapped, obs):
        unwrapped.set_state(*physics_of_obs(np.asarray(obs, dtype=np.float64)))

    return GymSpec(gym_id, read_state=read_obs, write_state=write, physics=True, extra="mujoco")


class MujocoEnvironment(Environment):
    """A Gymnasium MuJoCo environment: state = observation ``[S]``, no MLX dynamics (``mlx_copy = False``).

    Subclasses set the class attributes of :class:`~worldmodel.envs.base.Environment` (but not the
    state boxes: training states are reset draws), ``gymnasium`` (:func:`mujoco_spec`) and
    ``reset_physics`` (a ``staticmethod``); ``reward`` and
    ``termination`` are their batched MLX copies where the observation allows.
    """

    mlx_copy = False
    has_reward_copy = True
    """Whether :meth:`reward` is Gymnasium's reward of ``(obs, action, next_obs)`` (HalfCheetah's is not: the model predicts it)."""

    reset_physics: Callable[[np.random.Generator, np.ndarray, np.ndarray], tuple]
    """``reset_physics(rng, qpos0, qvel0) -> (qpos, qvel)``: one reset, drawn from ``rng`` as Gymnasium's ``reset_model`` draws it."""

    true_dynamics_read = "physics"
    final_value = None
    """``value(final [B, nq + nv]) -> [B]`` of ``qpos``, ``qvel``: the true dynamics' tie-breaker (``MujocoEvaluator``'s
    ``terminal_value``), or ``None``."""

    def __init__(self):
        require_mujoco(self.name)
        self._sim = None  # a Gymnasium env of our own, for observations of drawn starts
        self._truth = None  # the MujocoEvaluator, built on first use

    def true_dynamics(self):
        """MuJoCo itself: a :class:`~worldmodel.envs.mujoco_true.MujocoEvaluator` of this env (built on first use,
        one per env, closed by :meth:`close`), which plans from full physics states (``true_dynamics_read``)."""
        if self._truth is None:
            from .mujoco_true import MujocoEvaluator

            self._truth = MujocoEvaluator(self.gymnasium.id, terminal_value=self.final_value)
        return self._truth

    def close(self) -> None:
        """Stop the true dynamics' rollout threads, if they were started (a later :meth:`true_dynamics` starts new ones)."""
        if self._truth is not None:
            self._truth.close()
            self._truth = None

    def simulator(self):
        """This env's own Gymnasium environment's ``unwrapped`` (built on first use)."""
        if self._sim is None:
            from .gymnasium import make_gym_env

            self._sim = make_gym_env(self).unwrapped
        return self._sim

    def _draw_starts(self, rng: np.random.Generator, num: int) -> np.ndarray:
        """``num`` observations ``[num, S]`` float32 of Gymnasium's reset distribution, drawn in turn from ``rng``."""
        sim = self.simulator()
        starts = []
        for _ in range(num):
            sim.set_state(*self.reset_physics(rng, sim.init_qpos.copy(), sim.init_qvel.copy()))
            starts.append(read_obs(sim))
        return np.array(starts, dtype=np.float32)

    def sample_states(self, rng: np.random.Generator, num: int) -> np.ndarray:
        """Training states ``[num, S]``: reset draws (a box over observations would hold impossible ones)."""
        return self._draw_starts(rng, num)

    def next_state(self, state: mx.array, action: mx.array) -> mx.array:
        raise ValueError(f"{self.name} has no MLX copy of its dynamics: it runs in Gymnasium's MuJoCo "
                         "(a learned model, or MuJoCo itself, imagines)")

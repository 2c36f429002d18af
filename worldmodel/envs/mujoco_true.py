"""MuJoCo's own physics as the planners' true dynamics: Gymnasium's MuJoCo tasks rolled out by ``mujoco.rollout``.

No MLX copy of the physics: a planner's imagined sequences are run by MuJoCo itself, in batched,
multi-threaded rollouts (``mujoco.rollout``) from the environments' full physics states, and
scored with Gymnasium's own per-step rewards::

    evaluator = MujocoEvaluator("Reacher-v5")            # or MujocoEvaluator(gym_env)
    planner = ICEM(evaluator, evaluator.action_space, horizon=30, samples=500)
    start = physics_states(gym_envs)                     # [E, nstate] float64 (mjSTATE_FULLPHYSICS)
    action = planner.act(start)                          # [E, A]; step the Gymnasium envs with it

:class:`MujocoEvaluator` is a :class:`planners.SequenceEvaluator`: CEM, iCEM, MPPI and random
shooting take it as their dynamics. Its returns equal the sums of the rewards Gymnasium's ``step``
gives for the same actions from the same state (tests/worldmodel/envs/test_mujoco_true.py), with
each action held for the env's ``frame_skip`` physics steps:

- ``InvertedPendulum-v5``: ``1`` per step while ``|hinge angle| <= 0.2`` and the state is finite;
  the step that ends the episode earns ``0`` and, as the episode is over, so do all later ones.
- ``Reacher-v5``: ``-|fingertip - target| - |action|^2``, the positions after the step (framepos
  sensors added to the evaluator's copy of the model). Gymnasium reads them from the kinematics
  MuJoCo last computed, those of the Runge-Kutta integrator's last stage, a state within one
  physics step of the end: the two agree to about 1e-7 per step.
- ``HalfCheetah-v5``: ``(x after - x before) / dt - 0.1 |action|^2``, ``dt = frame_skip * timestep``.

Weights given to ``gymnasium.make`` (``ctrl_cost_weight=...``) are read from the env's spec.
The start is the full physics state (``mj_getState`` with ``mjSTATE_FULLPHYSICS``), which leaves
out the constraint solver's warm start: where contacts are solved (half-cheetah) the states
agree with the env's to about 1e-13, elsewhere exactly. MuJoCo's rollouts are deterministic, for
any thread count.
"""

from __future__ import annotations

import os
import warnings
import weakref
from dataclasses import dataclass
from typing import Callable, Mapping, Optional

import numpy as np

from planners import Box, SequenceEvaluator

from ..extras import install

__all__ = ["MujocoEvaluator", "MUJOCO_TASKS", "MujocoTask", "physics_state", "physics_states", "set_physics_state", "usable_cores"]


@dataclass(frozen=True)
class Rollouts:
    """What one batch of rollouts gives a task's reward: ``B`` rows, ``H`` env steps of ``F`` physics steps.

    Attributes:
        start: the start states ``[B, nstate]``.
        states: the state after every physics step ``[B, H*F, nstate]``.
        sensors: the sensor values of every physics step ``[B, H*F + 1, nsensor]``, computed at the
            state that step started from (as MuJoCo's ``mj_step`` does; the last row comes from one
            extra physics step, run only for them).
        actions: the env actions ``[B, H, A]`` (float64).
        frame_skip: ``F``.
        qpos: where ``qpos`` starts in a state (after the time; ``qvel`` follows it).
        nq, nv: the lengths of ``qpos`` and ``qvel``.
        dt: one env step's time, ``F * timestep``.
    """

    start: np.ndarray
    states: np.ndarray
    sensors: np.ndarray
    actions: np.ndarray
    frame_skip: int
    qpos: int
    nq: int
    nv: int
    dt: float

    def qpos_after_each_step(self) -> np.ndarray:
        """``qpos`` after each env step ``[B, H, nq]``."""
        return self.states[:, self.frame_skip - 1 :: self.frame_skip, self.qpos : self.qpos + self.nq]

    def sensors_after_each_step(self) -> np.ndarray:
        """The sensor values at the state after each env step ``[B, H, nsensor]``."""
        return self.sensors[:, self.frame_skip :: self.frame_skip]


@dataclass(frozen=True)
class MujocoTask:
    """One Gymnasium MuJoCo task's reward, as a function of its rollouts.

    Attributes:
        weights: the reward's weights by ``gymnasium.make`` keyword, with Gymnasium's defaults.
        rewards: ``(rollouts, weights) -> (rewards [B, H], terminated [B, H] bool or None)``.
        sensors: ``(name, objtype, objname)`` of framepos sensors added to the model (in order).
    """

    weights: Mapping[str, float]
    rewards: Callable[[Rollouts, Mapping[str, float]], tuple]
    sensors: tuple = ()


def _control_cost(actions: np.ndarray) -> np.ndarray:
    return np.sum(np.square(actions), axis=-1)


def _pendulum(rollouts: Rollouts, weights) -> tuple:
    """Gymnasium's InvertedPendulum-v5: ``terminated`` when ``obs = (qpos, qvel)`` is not finite or
    ``|qpos[1]| > 0.2``; the reward is ``not terminated``."""
    f, q = rollouts.frame_skip, rollouts.qpos
    obs = rollouts.states[:, f - 1 :: f, q : q + rollouts.nq + rollouts.nv]
    terminated = ~np.all(np.isfinite(obs), axis=-1) | (np.abs(obs[..., 1]) > 0.2)
    return (~terminated).astype(np.float64), terminated


def _reacher(rollouts: Rollouts, weights) -> tuple:
    """Gymnasium's Reacher-v5: ``-dist_weight |fingertip - target| - control_weight |action|^2``."""
    positions = rollouts.sensors_after_each_step()  # fingertip xyz, target xyz
    distance = np.linalg.norm(positions[..., 0:3] - positions[..., 3:6], axis=-1)
    rewards = -distance * weights["reward_dist_weight"] - _control_cost(rollouts.actions) * weights["reward_control_weight"]
    return rewards, None


def _half_cheetah(rollouts: Rollouts, weights) -> tuple:
    """Gymnasium's HalfCheetah-v5: ``forward_weight (x after - x before) / dt - ctrl_cost_weight |action|^2``."""
    x = rollouts.qpos_after_each_step()[..., 0]
    before = np.concatenate([rollouts.start[:, None, rollouts.qpos], x[:, :-1]], axis=1)
    forward = weights["forward_reward_weight"] * (x - before) / rollouts.dt
    return forward - weights["ctrl_cost_weight"] * _control_cost(rollouts.actions), None


MUJOCO_TASKS = {
    "InvertedPendulum-v5": MujocoTask({}, _pendulum),
    "Reacher-v5": MujocoTask(
        {"reward_dist_weight": 1.0, "reward_control_weight": 1.0}, _reacher,
        sensors=(("fingertip", "xbody", "fingertip"), ("target", "xbody", "target")),
    ),
    "HalfCheetah-v5": MujocoTask({"forward_reward_weight": 1.0, "ctrl_cost_weight": 0.1}, _half_cheetah),
}
"""Gymnasium id -> its reward as :class:`MujocoTask`: the tasks :class:`MujocoEvaluator` knows."""


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask; all cores where that is unknown)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def _mujoco():
    try:
        import mujoco
        import mujoco.rollout
    except ImportError:
        raise ImportError(f"the MuJoCo evaluator needs mujoco: {install('mujoco')}") from None
    return mujoco


def _full_physics(mujoco) -> int:
    return int(mujoco.mjtState.mjSTATE_FULLPHYSICS)


def physics_state(gym_env) -> np.ndarray:
    """The full physics state ``[nstate]`` (float64, ``mjSTATE_FULLPHYSICS``) of a Gymnasium MuJoCo env (wrapped or not)."""
    mujoco = _mujoco()
    env = gym_env.unwrapped
    state = np.empty(mujoco.mj_stateSize(env.model, _full_physics(mujoco)))
    mujoco.mj_getState(env.model, env.data, state, _full_physics(mujoco))
    return state


def physics_states(gym_envs) -> np.ndarray:
    """The full physics states ``[E, nstate]`` of Gymnasium MuJoCo envs: a planner's start with :class:`MujocoEvaluator`."""
    return np.stack([physics_state(env) for env in gym_envs])


def set_physics_state(gym_env, state) -> None:
    """Put a Gymnasium MuJoCo env in the full physics state ``state [nstate]`` (then ``mj_forward``,
    so its kinematics and observation are those of the state, as after ``reset``)."""
    mujoco = _mujoco()
    env = gym_env.unwrapped
    state = np.asarray(state, dtype=np.float64)
    size = mujoco.mj_stateSize(env.model, _full_physics(mujoco))
    if state.shape != (size,):
        raise ValueError(f"a full physics state of this env is [{size}], got shape {state.shape}")
    mujoco.mj_setState(env.model, env.data, state, _full_physics(mujoco))
    mujoco.mj_forward(env.model, env.data)


def _gym_env(env):
    """``(gymnasium id, the unwrapped env, the keywords given to make, an env we made or None)`` for a Gymnasium id or env."""
    if isinstance(env, str):
        try:
            import gymnasium
        except ImportError:
            raise ImportError(f"the MuJoCo evaluator needs gymnasium[mujoco]: {install('mujoco')}") from None
        made = gymnasium.make(env)
        return env, made.unwrapped, dict(made.spec.kwargs), made
    spec = getattr(env, "spec", None)
    if spec is None or not hasattr(env, "unwrapped"):
        raise ValueError(f"MujocoEvaluator needs a Gymnasium id or a Gymnasium env made by gymnasium.make, got {env!r}")
    return spec.id, env.unwrapped, dict(spec.kwargs), None


class MujocoEvaluator(SequenceEvaluator):
    """Returns of action sequences ``[E, N, H, A]`` from full physics states ``[E, nstate]``, by MuJoCo's rollouts.

    Args:
        env: a Gymnasium id (one of :data:`MUJOCO_TASKS`) or a Gymnasium MuJoCo env of one (its
            ``frame_skip``, XML file and reward weights are used; its simulation is not touched).
        threads: rollout threads. Default: :func:`usable_cores`.
        terminal_value: a tie-breaker for the planning objective, ``value(final [B, nq + nv]) -> [B]``
            of ``qpos`` and ``qvel`` (float64) after the last step, added to the return of every
            sequence that did not terminate within the horizon (InvertedPendulum's: every surviving
            sequence earns the same). :meth:`returns` stays Gymnasium's sums; only the planners'
            objective (calling the evaluator) gets the value.

    Calling it, ``evaluator(start, actions)``, gives the planners' checked float32 MLX returns;
    :meth:`returns` gives the float64 numpy ones. Start states come from :func:`physics_states`.
    """

    def __init__(self, env, *, threads: Optional[int] = None, terminal_value: Optional[Callable] = None):
        mujoco = _mujoco()
        gym_id, unwrapped, kwargs, made = _gym_env(env)
        if gym_id not in MUJOCO_TASKS:
            raise ValueError(f"no MuJoCo reward known for {gym_id!r}; known: {', '.join(MUJOCO_TASKS)}")
        task = MUJOCO_TASKS[gym_id]
        self.gym_id, self.task = gym_id, task
        self.weights = {name: float(kwargs.get(name, default)) for name, default in task.weights.items()}
        self.frame_skip = int(unwrapped.frame_skip)
        self.model = _model_with_sensors(mujoco, unwrapped.fullpath, task.sensors)
        if made is not None:
            made.close()
        self.threads = usable_cores() if threads is None else int(threads)
        if self.threads < 1:
            raise ValueError(f"threads must be an integer >= 1, got {threads!r}")
        self.state_size = mujoco.mj_stateSize(self.model, _full_physics(mujoco))
        self.qpos = mujoco.mj_stateSize(self.model, int(mujoco.mjtState.mjSTATE_TIME))
        self._data = [mujoco.MjData(self.model) for _ in range(self.threads)]
        self._pool = mujoco.rollout.Rollout(nthread=self.threads if self.threads > 1 else 0)
        self._closer = weakref.finalize(self, self._pool.close)
        if terminal_value is not None and not callable(terminal_value):
            raise ValueError(f"terminal_value must be callable or None, got {terminal_value!r}")
        self.terminal_value = terminal_value
        recorded = 8 * self.frame_skip * (self.state_size + self.model.nsensordata + self.model.nu)  # states, sensors, controls
        super().__init__(self.objective, action_dim=self.model.nu, bytes_per_step=recorded)

    @property
    def action_space(self) -> Box:
        """The actuators' control range, Gymnasium's action space."""
        low, high = self.model.actuator_ctrlrange.T
        return Box(low, high)

    def returns(self, start, actions) -> np.ndarray:
        """The sums of Gymnasium's rewards ``[E, N]`` (float64) of ``actions [E, N, H, A]`` from ``start [E, nstate]``."""
        return self._rollout(start, actions, value=False)

    def objective(self, start, actions) -> np.ndarray:
        """What the planners maximize ``[E, N]``: :meth:`returns`, plus ``terminal_value`` of the final
        ``(qpos, qvel)`` where the sequence did not terminate (just the returns without one)."""
        return self._rollout(start, actions, value=self.terminal_value is not None)

    def _rollout(self, start, actions, value: bool) -> np.ndarray:
        start = np.asarray(start, dtype=np.float64)
        actions = np.asarray(actions, dtype=np.float64)
        if start.ndim != 2 or start.shape[1] != self.state_size:
            raise ValueError(
                f"start must be full physics states [E, {self.state_size}] of {self.gym_id} (physics_states(envs) gives them), "
                f"got shape {start.shape}"
            )
        if actions.ndim != 4 or actions.shape[0] != start.shape[0] or actions.shape[3] != self.model.nu:
            raise ValueError(f"actions must be [{start.shape[0]}, N, H, {self.model.nu}], got shape {actions.shape}")
        envs, samples, horizon, _ = actions.shape
        if samples * horizon == 0:
            return np.zeros((envs, samples))
        flat = actions.reshape(envs * samples, horizon, -1)
        starts = np.repeat(start, samples, axis=0)
        controls = np.repeat(flat, self.frame_skip, axis=1)  # each action held for frame_skip physics steps
        if self.model.nsensordata:  # one more physics step gives the sensors at the last state
            controls = np.concatenate([controls, controls[:, -1:]], axis=1)
        states, sensors = self._pool.rollout(self.model, self._data, starts, controls)
        states = states[:, : horizon * self.frame_skip]
        rollouts = Rollouts(
            starts, states, sensors, flat, self.frame_skip, self.qpos, self.model.nq, self.model.nv,
            self.frame_skip * self.model.opt.timestep,
        )
        rewards, terminated = self.task.rewards(rollouts, self.weights)
        if terminated is not None:  # the episode is over after the step that terminates: no later rewards
            ended_before = np.cumsum(terminated, axis=1) - terminated > 0
            rewards = np.where(ended_before, 0.0, rewards)
        totals = rewards.sum(axis=1)
        if value:
            final = states[:, -1, self.qpos : self.qpos + self.model.nq + self.model.nv]
            alive = np.ones(len(totals), bool) if terminated is None else ~terminated.any(axis=1)
            totals = totals + np.where(alive, np.asarray(self.terminal_value(final), dtype=np.float64).reshape(-1), 0.0)
        return totals.reshape(envs, samples)

    def close(self) -> None:
        """Stop the rollout threads (also done when the evaluator is garbage-collected)."""
        self._closer()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"MujocoEvaluator({self.gym_id!r}, threads={self.threads})"


def _model_with_sensors(mujoco, xml_path: str, sensors: tuple):
    """The env's model compiled afresh from its XML file, with framepos sensors ``(name, objtype, objname)`` added."""
    spec = mujoco.MjSpec.from_file(xml_path)
    for name, objtype, objname in sensors:
        spec.add_sensor(
            name=f"wmplan_{name}", type=mujoco.mjtSensor.mjSENS_FRAMEPOS,
            objtype=getattr(mujoco.mjtObj, f"mjOBJ_{objtype.upper()}"), objname=objname,
        )
    with warnings.catch_warnings():  # said once already, when Gymnasium loaded the same file
        warnings.filterwarnings("ignore", message="compiler attribute 'settotalmass' is deprecated")
        return spec.compile()

"""Closed-loop episodes in the real environment, all episodes stepped together.

Two runners step the same policies:

- ``"gymnasium"``: Gymnasium's own environment (``env.make_gym_env()``), one per episode; episode
  ``i`` starts from ``reset(seed=seeds[i])``, the policy sees the state read from each observation
  (``env.state_from_obs``), and a terminated episode is no longer stepped.
- ``"mlx"``: the environment's MLX copy, every episode in one batched ``env(state, action)`` call
  per step; a terminated episode keeps its state and earns nothing more (an alive mask).

Either way a policy is called once per step with the states of *all* episodes (terminated ones
too, frozen), so a planner's batch, and with it every episode's actions, does not depend on when
other episodes end. After its end an episode's states repeat its last state and its actions are 0.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import mlx.core as mx
import numpy as np

from planners.spaces import Discrete

RUNNERS = ("gymnasium", "mlx")

Policy = Callable[[np.ndarray], np.ndarray]
"""``policy(state [E, S] float32) -> actions [E, A]``, called once per step for all episodes."""


@dataclass
class Episodes:
    """Outcome of ``E`` episodes of at most ``T`` steps.

    Attributes:
        returns: ``[E]`` summed rewards (float64), none after an episode's end.
        rewards: ``[E, T]`` the rewards of each step (float64), zeros after the end.
        states: ``[E, T + 1, S]`` visited states, the start first; after the end, the last state repeats.
        actions: ``[E, T, A]`` applied actions (one-hot for ``Discrete``); zeros after the end.
        lengths: ``[E]`` steps taken (``T`` unless the episode terminated earlier).
        terminated: ``[E]`` bool: the episode ended by termination (not by running out of steps).
        plan_seconds: wall time spent choosing actions, summed over the steps.
        imagined: imagined transitions evaluated by the planner (0 for baselines).
    """

    returns: np.ndarray
    rewards: np.ndarray
    states: np.ndarray
    actions: np.ndarray
    lengths: np.ndarray
    terminated: np.ndarray
    plan_seconds: float = 0.0
    imagined: int = 0


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


def planner_policy(planner, env_ids=None) -> Policy:
    """A planner as a policy: ``planner.act(state, env_ids)`` (``env_ids``: the global indices ``[E]``
    of the episodes, the planner's per-environment key streams; default ``0 .. E-1``)."""

    def policy(state):
        return np.array(planner.act(state, env_ids))

    return policy


class PlanRecorder:
    """A planner as a policy (:data:`Policy`) that keeps what it planned at every step.

    Attributes:
        expected_returns: per step, the plan's imagined returns ``[E]``.
        predicted: per step, the next states ``[E, S]`` that ``dynamics`` (what the planner imagines
            with) predicts for the chosen actions.
    """

    def __init__(self, planner, dynamics, env_ids=None):
        self.planner, self.dynamics, self.env_ids = planner, dynamics, env_ids
        self.expected_returns: list = []
        self.predicted: list = []

    def __call__(self, state: np.ndarray) -> np.ndarray:
        plan = self.planner.optimize(state, self.env_ids)  # what act() does, keeping the plan's return
        action = plan.actions[:, 0]
        predicted, _ = self.dynamics(mx.array(state), action)
        self.expected_returns.append(np.array(plan.expected_return))
        self.predicted.append(np.array(predicted))
        return np.array(action)

    def predictions(self, episode: int = 0) -> np.ndarray:
        """The one-step predictions ``[T, S]`` of one episode (row ``episode`` of every step's ``[E, S]``)."""
        return np.stack(self.predicted)[:, episode]


def gymnasium_version():
    """The installed Gymnasium's version, or ``None`` when it cannot be imported."""
    try:
        import gymnasium
    except ImportError:
        return None
    return gymnasium.__version__


def describe_runner(runner: str, env_name: str, gym_id: str | None) -> str:
    """Where ``runner`` steps the env ``env_name`` (mirroring ``gym_id``), in words:
    ``Gymnasium's Pendulum-v1 (gymnasium 1.2.0)``, ``the MLX copy of Pendulum-v1``, ``the MLX particle``."""
    if runner == "gymnasium":
        return f"Gymnasium's {gym_id} (gymnasium {gymnasium_version()})"
    return f"the MLX copy of {gym_id}" if gym_id is not None else f"the MLX {env_name}"


def choose_runner(env, requested: str | None = None) -> str:
    """The runner for ``env``: ``requested`` if it can run it, else ``ValueError``; with no request,
    Gymnasium's environment when the env mirrors one and Gymnasium is installed, else the MLX copy."""
    if requested is not None and requested not in RUNNERS:
        raise ValueError(f"unknown runner {requested!r}; choose from {', '.join(RUNNERS)}")
    if requested == "mlx":
        return "mlx"
    if requested == "gymnasium":
        if env.gym_id is None:
            raise ValueError(f"{env.name} has no Gymnasium counterpart; it runs in its MLX copy only (mlx)")
        if gymnasium_version() is None:
            raise ValueError("the gymnasium runner needs gymnasium: pip install 'wmplan[gym]'")
        return "gymnasium"
    return "gymnasium" if env.gym_id is not None and gymnasium_version() is not None else "mlx"


def run_episodes(
    policy: Policy,
    env,
    starts: np.ndarray,
    steps: int,
    runner: str = "mlx",
    seeds=None,
    set_starts: bool = True,
    on_step: Callable[[int], None] | None = None,
) -> Episodes:
    """Step ``E`` episodes together for at most ``steps`` steps with ``runner``.

    Args:
        policy: ``state [E, S] -> actions [E, A]`` (:data:`Policy`).
        env: the environment (:class:`~worldmodel.envs.base.Environment`).
        starts: ``[E, S]`` start states (the MLX runner starts there; Gymnasium's only with ``set_starts``).
        steps: the episodes' length ``T`` (Gymnasium's time limit is set to it).
        runner: ``"mlx"`` or ``"gymnasium"``.
        seeds: ``[E]`` ``reset`` seeds of Gymnasium's episodes (needed by that runner).
        set_starts: Gymnasium only: after ``reset``, put each env in its ``starts`` row
            (``env.set_gym_state``); ``False`` keeps the state ``reset`` drew.
        on_step: called with the number of steps done (progress bars).
    """
    starts = np.asarray(starts, dtype=np.float32)
    if runner == "mlx":
        return _run_mlx(policy, env, starts, steps, on_step)
    if runner == "gymnasium":
        if seeds is None or len(seeds) != len(starts):
            raise ValueError(f"the gymnasium runner needs one reset seed per episode, got {seeds!r}")
        return _run_gymnasium(policy, env, starts, steps, seeds, set_starts, on_step)
    raise ValueError(f"unknown runner {runner!r}; choose from {', '.join(RUNNERS)}")


def _choose(policy: Policy, state: np.ndarray, env) -> tuple[np.ndarray, float]:
    """The policy's actions ``[E, A]`` float32 (one-hot of the largest entry for ``Discrete``) and the seconds it took."""
    start = time.perf_counter()
    actions = np.asarray(policy(state.copy()), dtype=np.float32)
    seconds = time.perf_counter() - start
    shape = (len(state), env.action_space.dim)
    if actions.shape != shape or not np.all(np.isfinite(actions)):
        raise ValueError(f"a policy returned actions of shape {actions.shape} (expected {shape}, finite values)")
    if isinstance(env.action_space, Discrete):
        actions = np.eye(env.action_space.n, dtype=np.float32)[np.argmax(actions, axis=1)]
    return actions, seconds


def _finish(states, actions, rewards, lengths, terminated, steps, plan_seconds, on_step) -> Episodes:
    """Pad the lists of per-step arrays to ``steps`` (states repeat, actions are 0) and stack them."""
    if on_step and len(actions) < steps:
        on_step(steps - len(actions))
    while len(actions) < steps:
        states.append(states[-1])
        actions.append(np.zeros_like(actions[-1]))
    while len(rewards) < steps:
        rewards.append(np.zeros(len(lengths)))
    return Episodes(
        returns=np.sum(rewards, axis=0),  # step by step, in float64
        rewards=np.stack(rewards, axis=1),
        states=np.stack(states, axis=1),
        actions=np.stack(actions, axis=1),
        lengths=lengths,
        terminated=terminated,
        plan_seconds=plan_seconds,
    )


def _run_mlx(policy, env, starts, steps, on_step) -> Episodes:
    state = mx.array(starts)
    count = len(starts)
    alive, terminated = np.ones(count, bool), np.zeros(count, bool)
    lengths = np.zeros(count, np.int64)
    states, actions, rewards = [starts.copy()], [], []
    plan_seconds = 0.0
    for _ in range(steps):
        if not alive.any():
            break
        action, seconds = _choose(policy, np.array(state), env)
        plan_seconds += seconds
        next_state, reward = env(state, mx.array(action))
        done = env.termination(next_state) if env.termination is not None else None
        mx.eval(next_state, reward, *([] if done is None else [done]))
        state = next_state if alive.all() else mx.where(mx.array(alive)[:, None], next_state, state)
        rewards.append(np.where(alive, np.array(reward, dtype=np.float64), 0.0))
        actions.append(np.where(alive[:, None], action, 0.0).astype(np.float32))
        lengths += alive
        if done is not None:
            ended = alive & np.array(done)
            terminated |= ended
            alive &= ~ended
        states.append(np.array(state))
        if on_step:
            on_step(1)
    return _finish(states, actions, rewards, lengths, terminated, steps, plan_seconds, on_step)


def _run_gymnasium(policy, env, starts, steps, seeds, set_starts, on_step) -> Episodes:
    count = len(starts)
    gym_envs = [env.make_gym_env(max_episode_steps=steps) for _ in range(count)]
    try:
        state = np.empty((count, env.state_dim), np.float32)
        for i, gym_env in enumerate(gym_envs):
            obs, _ = gym_env.reset(seed=int(seeds[i]))
            if set_starts:
                env.set_gym_state(gym_env, starts[i])
                state[i] = starts[i]
            else:
                state[i] = env.state_from_obs(obs)
        alive, terminated = np.ones(count, bool), np.zeros(count, bool)
        lengths = np.zeros(count, np.int64)
        states, actions, rewards = [state.copy()], [], []
        plan_seconds = 0.0
        for _ in range(steps):
            if not alive.any():
                break
            action, seconds = _choose(policy, state, env)
            plan_seconds += seconds
            reward, stepped = np.zeros(count), alive.copy()
            for i in np.flatnonzero(stepped):
                obs, reward[i], ended, truncated, _ = gym_envs[i].step(env.gym_action(action[i]))
                state[i] = env.state_from_obs(obs)
                terminated[i] = ended
                alive[i] = not (ended or truncated)
                lengths[i] += 1
            actions.append(np.where(stepped[:, None], action, 0.0).astype(np.float32))
            rewards.append(reward)
            states.append(state.copy())
            if on_step:
                on_step(1)
    finally:
        for gym_env in gym_envs:
            gym_env.close()
    return _finish(states, actions, rewards, lengths, terminated, steps, plan_seconds, on_step)

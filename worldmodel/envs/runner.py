"""The episode runner: any policy, ``E`` episodes stepped together, in the MLX copy or in Gymnasium.

    episodes = run_episodes(policy, env, starts, steps)                       # the MLX copy
    episodes = run_episodes(policy, env, starts, steps, runner="gymnasium", seeds=seed + np.arange(E))

A policy is ``policy(state [E, S] float32) -> actions [E, A]``, called once per step with the states
of *all* episodes (ended ones too, frozen), so a planner's batch, and with it every episode's
actions, does not depend on when other episodes end. The two runners:

- ``"mlx"``: the environment's MLX copy, every episode in one batched ``env(state, action)`` call per
  step; an ended episode keeps its state and earns nothing more.
- ``"gymnasium"``: Gymnasium's own environment, one per episode (:mod:`worldmodel.envs.gymnasium`);
  episode ``k`` starts from ``reset(seed=seeds[k])``, then (``set_starts``) is put in its start
  state; the policy sees the state read from each observation (or, ``read="state"``, Gymnasium's
  Markov state itself), and an ended episode is no longer stepped.

With ``restart`` the episodes never stop: a row whose episode terminates starts a new one from
``restart(rows)`` at once (data collection: :func:`worldmodel.data.generate` is this runner with a
random policy). Everything a benchmark, the MBRL loop or data collection needs comes back as one
:class:`Episodes` record.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Optional

import mlx.core as mx
import numpy as np

from planners.runtime.memory import check_fits
from planners.spaces import Discrete

from ..extras import install
from . import gymnasium as gym_adapter

RUNNERS = ("gymnasium", "mlx")
READS = ("observation", "state", "physics")

Policy = Callable[[np.ndarray], np.ndarray]

RECORD_COPIES = 2
"""Copies of an episode record alive at once: the per-step rows and the stacked arrays (and a dataset's arrays)."""


def recording_bytes(env, episodes: int, steps: int, next_states: bool = False) -> int:
    """Rough bytes of recording ``episodes x steps`` steps of ``env``: states (twice with ``next_states``),
    actions and rewards per step, :data:`RECORD_COPIES` times."""
    per_step = 4 * env.state_dim * (2 if next_states else 1) + 4 * env.action_space.dim + 8
    return RECORD_COPIES * int(episodes) * (int(steps) + 1) * per_step


def check_recording(env, episodes: int, steps: int, next_states: bool = False) -> None:
    """:class:`~planners.runtime.memory.MemoryBudgetError` when recording ``episodes x steps`` steps
    (:func:`recording_bytes`) would need more memory than is available."""
    check_fits(recording_bytes(env, episodes, steps, next_states), f"recording {episodes} episode(s) x {steps} steps")
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
        terminated: ``[E]`` bool: the episode ended by termination (not by running out of steps);
            with ``restart``: a row's episode terminated at least once.
        plan_seconds: wall time spent choosing actions, summed over the steps.
        imagined: imagined transitions evaluated by the planner (0 for baselines).
        next_states: ``[E, T, S]`` the state each step led to, recorded only with ``restart`` (where a
            terminating step's next state is not the next step's state); else ``None``: ``states[:, 1:]``.
    """

    returns: np.ndarray
    rewards: np.ndarray
    states: np.ndarray
    actions: np.ndarray
    lengths: np.ndarray
    terminated: np.ndarray
    plan_seconds: float = 0.0
    imagined: int = 0
    next_states: Optional[np.ndarray] = None

    @classmethod
    def empty(cls, env, steps: int) -> "Episodes":
        """No episodes (``E = 0``) of ``env`` of ``steps`` steps."""
        return cls(np.zeros(0), np.zeros((0, steps)), np.zeros((0, steps + 1, env.state_dim), np.float32),
                   np.zeros((0, steps, env.action_space.dim), np.float32), np.zeros(0, np.int64), np.zeros(0, bool))


def planner_policy(planner, env_ids=None) -> Policy:
    """A planner as a policy: ``planner.act(state, env_ids)`` (``env_ids``: the global indices ``[E]``
    of the episodes, the planner's per-environment key streams; default ``0 .. E-1``)."""

    def policy(state):
        return np.array(planner.act(state, env_ids))

    return policy


def episode_rngs(seed: int, episode_ids) -> list:
    """One ``Generator`` per episode, seeded by ``(seed, episode index)``: an episode's draws do not
    depend on which other episodes are run with it (or in which process)."""
    return [np.random.default_rng([int(seed), int(i)]) for i in episode_ids]


def random_policy(env, rngs: Sequence[np.random.Generator]) -> Policy:
    """Uniformly random actions, one draw per step from each episode's own generator (``rngs``, one per row).

    ``Discrete(n)``: the one-hot of ``rng.integers(0, n)``; ``Box``: ``rng.uniform(low, high)``.
    """
    space = env.action_space

    def policy(state: np.ndarray) -> np.ndarray:
        if len(rngs) != len(state):
            raise ValueError(f"random_policy got {len(rngs)} generators for {len(state)} episodes")
        if isinstance(space, Discrete):
            return np.eye(space.n, dtype=np.float32)[[int(r.integers(0, space.n)) for r in rngs]].reshape(len(state), space.n)
        return np.array([r.uniform(space.low, space.high) for r in rngs], dtype=np.float32).reshape(len(state), space.dim)

    return policy


def describe_runner(runner: str, env_name: str, gym_id: str | None) -> str:
    """Where ``runner`` steps the env ``env_name`` (mirroring ``gym_id``), in words:
    ``Gymnasium's Pendulum-v1 (gymnasium 1.2.0)``, ``the MLX copy of Pendulum-v1``, ``the MLX particle``."""
    if runner == "gymnasium":
        return f"Gymnasium's {gym_id} (gymnasium {gym_adapter.gymnasium_version()})"
    return f"the MLX copy of {gym_id}" if gym_id is not None else f"the MLX {env_name}"


def choose_runner(env, requested: str | None = None) -> str:
    """The runner for ``env``: ``requested`` if it can run it, else ``ValueError``; with no request,
    Gymnasium's environment when the env mirrors one and Gymnasium is installed, else the MLX copy."""
    if requested is not None and requested not in RUNNERS:
        raise ValueError(f"unknown runner {requested!r}; choose from {', '.join(RUNNERS)}")
    if requested == "mlx":
        if not env.mlx_copy:
            raise ValueError(f"{env.name} has no MLX copy; it runs in Gymnasium's {gym_adapter.gym_id(env)} only (gymnasium)")
        return "mlx"
    if requested == "gymnasium" or not env.mlx_copy:
        if env.gymnasium is None:
            raise ValueError(f"{env.name} has no Gymnasium counterpart; it runs in its MLX copy only (mlx)")
        if gym_adapter.gymnasium_version() is None:
            raise ValueError(f"the gymnasium runner needs gymnasium: {install(env.gymnasium.extra)}")
        return "gymnasium"
    return "gymnasium" if env.gymnasium is not None and gym_adapter.gymnasium_version() is not None else "mlx"


def run_episodes(
    policy: Policy,
    env,
    starts: np.ndarray,
    steps: int,
    runner: str = "mlx",
    seeds=None,
    set_starts: bool = True,
    on_step: Callable[[int], None] | None = None,
    restart: Callable[[np.ndarray], np.ndarray] | None = None,
    read: str = "observation",
    policy_read: str | None = None,
    on_transition: Callable[[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray], None] | None = None,
) -> Episodes:
    """Step ``E`` episodes together for at most ``steps`` steps with ``runner``.

    Args:
        policy: ``state [E, S] -> actions [E, A]`` (:data:`Policy`).
        env: the environment (:class:`~worldmodel.envs.base.Environment`).
        starts: ``[E, S]`` start states (the MLX runner starts there; Gymnasium's only with ``set_starts``).
        steps: the episodes' length ``T`` (Gymnasium's time limit is set to it).
        runner: ``"mlx"`` or ``"gymnasium"``.
        seeds: Gymnasium's ``reset`` seeds (needed by that runner): ``[E]``, one per episode, or with
            ``restart`` a function of the episode's number (``0 .. E-1`` for the first episodes, then
            counting on in the order the episodes begin).
        set_starts: Gymnasium only: after ``reset``, put each env in its ``starts`` row; ``False``
            keeps the state ``reset`` drew.
        on_step: called with the number of steps done (progress bars).
        restart: ``restart(rows [K]) -> starts [K, S]``: rows whose episode terminates begin a new one
            there at once (and keep going), instead of ending.
        read: Gymnasium only: what the runner records and the policy sees, ``"observation"``
            (the state read from the observation, as an agent would), ``"state"`` (Gymnasium's
            internal Markov state, exactly) or, for MuJoCo's envs, ``"physics"``: the full physics state
            ``[P]`` (:func:`~worldmodel.envs.gymnasium.physics_state`), which ``starts`` then hold too.
        policy_read: Gymnasium only: hand the policy this read (``"state"`` or ``"physics"``, float64)
            instead of what is recorded (``read``, which ``starts`` keep): a planner on MuJoCo's own
            physics (``env.true_dynamics_read``) plans from the full physics state while the episode
            records observations, as every other row's does.
        on_transition: called after step ``t`` with ``(t, actions [E, A], rewards [E], next_states [E, S],
            alive [E])`` (``alive``: the rows that took the step; the others' values are 0 / their last state), to
            print steps as they end.
    """
    if runner not in RUNNERS:
        raise ValueError(f"unknown runner {runner!r}; choose from {', '.join(RUNNERS)}")
    if read not in READS:
        raise ValueError(f"unknown read {read!r}; choose from {', '.join(READS)}")
    if policy_read not in (None, "state", "physics"):
        raise ValueError(f"unknown policy_read {policy_read!r}; choose from state, physics")
    if policy_read is not None and runner != "gymnasium":
        raise ValueError(f"policy_read={policy_read!r} needs the gymnasium runner")
    check_recording(env, len(starts), steps, next_states=restart is not None)
    starts = np.asarray(starts, dtype=np.float32)
    if runner == "gymnasium":
        if seeds is None or (not callable(seeds) and len(seeds) != len(starts)):
            raise ValueError(f"the gymnasium runner needs one reset seed per episode, got {seeds!r}")
        stepper = _GymnasiumSteps(env, len(starts), steps, seeds, set_starts or restart is not None, read, policy_read)
    else:
        stepper = _MlxSteps(env)
    try:
        return _run(policy, env, starts, steps, stepper, restart, on_step, on_transition)
    finally:
        stepper.close()


def _run(policy, env, starts, steps, stepper, restart, on_step, on_transition=None) -> Episodes:
    count = len(starts)
    state = stepper.start(np.arange(count), starts.copy())
    alive, terminated = np.ones(count, bool), np.zeros(count, bool)
    lengths = np.zeros(count, np.int64)
    states, actions, rewards, next_states = [state.copy()], [], [], []
    plan_seconds = 0.0
    for t in range(steps):
        if not alive.any():
            break
        action, seconds = _choose(policy, stepper.view(state), env)
        plan_seconds += seconds
        next_state, reward, ended, truncated = stepper.step(state, action, alive)
        rewards.append(np.where(alive, reward, 0.0))
        actions.append(np.where(alive[:, None], action, 0.0).astype(np.float32))
        if on_transition:
            on_transition(t, actions[-1], rewards[-1], next_state, alive.copy())
        lengths += alive
        ended &= alive
        terminated |= ended
        state = next_state
        if restart is None:
            alive &= ~(ended | truncated)
        else:
            next_states.append(state.copy())
            rows = np.flatnonzero(ended)
            if len(rows):
                state = state.copy()
                state[rows] = restart(rows)
                state[rows] = stepper.start(rows, state[rows])
        states.append(state.copy())
        if on_step:
            on_step(1)
    if on_step and len(actions) < steps:
        on_step(steps - len(actions))
    while len(actions) < steps:  # every episode ended early: pad (states repeat, actions and rewards are 0)
        states.append(states[-1])
        actions.append(np.zeros_like(actions[-1]))
        rewards.append(np.zeros(count))
    return Episodes(
        returns=np.sum(rewards, axis=0),  # step by step, in float64
        rewards=np.stack(rewards, axis=1),
        states=np.stack(states, axis=1),
        actions=np.stack(actions, axis=1),
        lengths=lengths,
        terminated=terminated,
        plan_seconds=plan_seconds,
        next_states=np.stack(next_states, axis=1) if restart is not None else None,
    )


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


class _MlxSteps:
    """Every row at once through the environment's MLX dynamics (and its ``termination``, if any)."""

    def __init__(self, env):
        self.env = env

    def start(self, rows: np.ndarray, states: np.ndarray) -> np.ndarray:
        """Rows ``[K]`` begin episodes in ``states [K, S]``; returns the states the policy sees."""
        return states

    def view(self, state: np.ndarray) -> np.ndarray:
        """What the policy is handed: the states themselves."""
        return state

    def step(self, state: np.ndarray, action: np.ndarray, alive: np.ndarray):
        """``(next_state [E, S] float32, reward [E] float64, terminated [E], truncated [E])``; ended rows keep their state."""
        next_state, reward = self.env(mx.array(state), mx.array(action))
        done = self.env.termination(next_state) if self.env.termination is not None else None
        mx.eval(next_state, reward, *([] if done is None else [done]))
        next_state = np.array(next_state)
        if not alive.all():
            next_state = np.where(alive[:, None], next_state, state)
        ended = np.array(done) if done is not None else np.zeros(len(state), bool)
        return next_state, np.array(reward, dtype=np.float64), ended, np.zeros(len(state), bool)

    def close(self) -> None:
        pass


class _GymnasiumSteps:
    """One Gymnasium environment per row, stepped in a Python loop."""

    def __init__(self, env, rows: int, steps: int, seeds, set_starts: bool, read: str, policy_read: str | None = None):
        self.env, self.seeds, self.set_starts, self.read, self.policy_read = env, seeds, set_starts, read, policy_read
        self.seen = [None] * rows  # with policy_read: each row's latest state as the policy reads it (float64)
        self.begun = 0
        self.gym_envs = []
        for _ in range(rows):
            self.gym_envs.append(gym_adapter.make_gym_env(env, max_episode_steps=steps))

    def _seed(self, row: int) -> int:
        return int(self.seeds(self.begun) if callable(self.seeds) else self.seeds[row])

    def start(self, rows: np.ndarray, states: np.ndarray) -> np.ndarray:
        """Rows ``[K]`` begin episodes: ``reset(seed=...)``, then put in ``states [K, S]`` (``set_starts``);
        returns the states ``[K, S]`` float32 the policy sees."""
        seen = np.empty_like(states)
        for k, row in enumerate(rows):
            obs, _ = self.gym_envs[row].reset(seed=self._seed(row))
            self.begun += 1
            if self.set_starts and self.read == "physics":
                gym_adapter.set_physics_state(self.env, self.gym_envs[row], states[k])
                seen[k] = states[k]
            elif self.set_starts:
                gym_adapter.set_gym_state(self.env, self.gym_envs[row], states[k])
                seen[k] = states[k]
            else:
                seen[k] = self._read(self.gym_envs[row], obs)
            if self.policy_read is not None:
                self.seen[row] = self._read(self.gym_envs[row], obs, self.policy_read)
        return seen

    def view(self, state: np.ndarray) -> np.ndarray:
        """What the policy is handed: ``state [E, S]``, or with ``policy_read`` every row's latest such read ``[E, P]``."""
        return state if self.policy_read is None else np.stack(self.seen)

    def _read(self, gym_env, obs, read: str | None = None) -> np.ndarray:
        read = read or self.read
        if read == "state":
            return gym_adapter.gym_state(self.env, gym_env)
        if read == "physics":
            return gym_adapter.physics_state(self.env, gym_env)
        return gym_adapter.state_from_obs(self.env, obs)

    def step(self, state: np.ndarray, action: np.ndarray, alive: np.ndarray):
        """Steps the ``alive`` rows: ``(next_state [E, S] float32, reward [E] float64, terminated [E], truncated [E])``."""
        next_state, reward = state.copy(), np.zeros(len(state))
        ended, truncated = np.zeros(len(state), bool), np.zeros(len(state), bool)
        for i in np.flatnonzero(alive):
            gym_env = self.gym_envs[i]
            obs, reward[i], ended[i], truncated[i], _ = gym_env.step(gym_adapter.gym_action(self.env, action[i]))
            next_state[i] = self._read(gym_env, obs)
            if self.policy_read is not None:
                self.seen[i] = self._read(gym_env, obs, self.policy_read)
        return next_state, reward, ended, truncated

    def close(self) -> None:
        for gym_env in self.gym_envs:
            gym_env.close()

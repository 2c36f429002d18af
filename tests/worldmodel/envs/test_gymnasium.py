"""The MLX copies of the classic-control environments against Gymnasium's own ``step``.

Each test puts the Gymnasium env in thousands of random states (float32 values, so both sides start
from the same numbers), steps it once with a random action and compares next state, reward and
``terminated`` with one batched MLX step. The draws lean on the edges (clipping, wrapping, walls,
thresholds), and each test checks that the edges were really reached.

Tolerance: ``|ours - gym| <= ATOL + RTOL |gym|`` with ``ATOL = RTOL = 1e-5`` (our float32 against
Gymnasium's float64; the measured worst cases are 10-100x smaller). One exception: Acrobot's speeds
from states faster than half the speed bounds, where the centripetal terms (speed squared, larger
still in the Runge-Kutta stages) make float32 rounding reach ~1e-4 relative; those rows are held
to ``FAST_ACROBOT_TOL = 3e-4``, all others to 1e-5. Angles that Acrobot wraps into
``[-pi, pi]`` are compared modulo ``2 pi`` (float32 rounding can put a value at ``pi`` on the
other side). ``terminated`` and the rewards that depend on it are compared on the rows whose
next state is not within ``1e-5`` of the termination boundary (float rounding may decide those
either way); the rows left out are counted and must be few.
"""

from __future__ import annotations

import math

import mlx.core as mx
import numpy as np
import pytest

from worldmodel.envs import MLX_ENV_NAMES, get_env
from worldmodel.envs.gymnasium import gym_action, gym_id, gym_state, make_gym_env, set_gym_state, state_from_obs
from tests.conftest import need

gymnasium = need("gymnasium")  # the whole file compares against Gymnasium's own step

ATOL = RTOL = 1e-5
BOUNDARY = 1e-5  # rows this close to a termination boundary may terminate either way
FAST_ACROBOT_TOL = 3e-4  # rtol = atol for Acrobot's speeds from states beyond half the speed bounds
GYM_ENVS = [name for name in MLX_ENV_NAMES if get_env(name).gymnasium is not None]


def gym_steps(env, states: np.ndarray, actions: np.ndarray):
    """Gymnasium's step from each state ``[N, S]`` with each action ``[N, A]``: next states ``[N, S]`` (float64),
    rewards ``[N]`` and ``terminated`` ``[N]``."""
    gym_env = make_gym_env(env)
    gym_env.reset(seed=0)
    raw = gym_env.unwrapped  # its step without the wrappers' per-call checks
    next_states, rewards, terminated = [], [], []
    for state, action in zip(states, actions):
        set_gym_state(env, gym_env, state)
        _, reward, done, truncated, _ = raw.step(gym_action(env, action))
        assert not truncated
        next_states.append(gym_state(env, gym_env))
        rewards.append(reward)
        terminated.append(done)
    gym_env.close()
    return np.array(next_states), np.array(rewards, dtype=np.float64), np.array(terminated)


def mlx_step(env, states: np.ndarray, actions: np.ndarray):
    """One batched MLX step: next states ``[N, S]``, rewards ``[N]``, terminated ``[N]`` (all ``False`` when it never ends)."""
    next_state, reward = env(mx.array(states), mx.array(actions))
    done = mx.zeros(reward.shape, dtype=mx.bool_) if env.termination is None else env.termination(next_state)
    return np.array(next_state), np.array(reward), np.array(done)


def close(ours, gym, what):
    np.testing.assert_allclose(ours, gym, rtol=RTOL, atol=ATOL, err_msg=what)


def angle_gap(a, b):
    """``a - b`` ``[...]`` reduced to ``[-pi, pi)``."""
    return (np.asarray(a, np.float64) - b + math.pi) % (2 * math.pi) - math.pi


def compare(name, states, actions, boundary_distance=None):
    """Step both; check the next states (all rows), and ``terminated`` and rewards away from the boundary.

    Returns ``(ours, gym)`` as ``(next_states, rewards, terminated)`` triples for edge counts.
    """
    env = get_env(name)
    states, actions = states.astype(np.float32), actions.astype(np.float32)
    ours = mlx_step(env, states, actions)
    gym = gym_steps(env, states, actions)
    far = np.ones(len(states), bool) if boundary_distance is None else boundary_distance(gym[0]) > BOUNDARY
    assert far.mean() > 0.99, f"{(~far).sum()} rows next to the termination boundary"
    close(ours[1][far], gym[1][far], f"{name} rewards")
    np.testing.assert_array_equal(ours[2][far], gym[2][far], err_msg=f"{name} terminated")
    return ours, gym


def test_pendulum_matches_gymnasium():
    env = get_env("pendulum")
    rng = np.random.default_rng(0)
    n = 4000
    theta = rng.uniform(-3 * math.pi, 3 * math.pi, n)  # Gymnasium does not wrap theta
    speed = np.where(rng.random(n) < 0.3, rng.choice([-1, 1], n) * rng.uniform(7.5, 8.0, n), rng.uniform(-8, 8, n))
    torque = rng.uniform(-3.0, 3.0, (n, 1))  # beyond +-2: both sides clip
    ours, gym = compare("pendulum", np.stack([theta, speed], 1), torque)
    close(ours[0], gym[0], "pendulum next states")
    assert np.sum(np.abs(torque) > 2) > 500
    assert np.sum(np.abs(gym[0][:, 1]) == 8.0) > 200  # the speed clip binds
    assert np.sum(np.abs(theta) > math.pi) > 1000  # the reward's angle normalization is exercised
    assert not np.any(ours[2]) and not np.any(gym[2])
    assert env.steps == 200


def test_cartpole_matches_gymnasium():
    rng = np.random.default_rng(1)
    n = 4000
    from worldmodel.envs.cartpole import THETA_THRESHOLD, X_THRESHOLD

    states = np.stack(
        [
            rng.uniform(-2.6, 2.6, n),  # around both track ends
            rng.uniform(-3, 3, n),
            rng.uniform(-0.25, 0.25, n),  # around both angle thresholds
            rng.uniform(-3.5, 3.5, n),
        ],
        1,
    )
    actions = np.eye(2)[rng.integers(0, 2, n)]

    def boundary_distance(next_states):
        return np.minimum(np.abs(np.abs(next_states[:, 0]) - X_THRESHOLD), np.abs(np.abs(next_states[:, 2]) - THETA_THRESHOLD))

    ours, gym = compare("cartpole", states, actions, boundary_distance)
    close(ours[0], gym[0], "cartpole next states")
    assert 0.2 < gym[2].mean() < 0.8  # both terminated and running rows, at both thresholds
    assert np.sum(np.abs(gym[0][:, 0]) > X_THRESHOLD) > 300 and np.sum(np.abs(gym[0][:, 2]) > THETA_THRESHOLD) > 300
    np.testing.assert_array_equal(ours[1], 1.0)  # the terminating step is rewarded too


def test_acrobot_matches_gymnasium():
    from worldmodel.envs.acrobot import MAX_VEL_1, MAX_VEL_2

    rng = np.random.default_rng(2)
    n = 2000
    states = np.stack(
        [
            rng.uniform(-math.pi, math.pi, n),
            rng.uniform(-math.pi, math.pi, n),
            rng.uniform(-MAX_VEL_1, MAX_VEL_1, n),
            rng.uniform(-MAX_VEL_2, MAX_VEL_2, n),
        ],
        1,
    )
    actions = np.eye(3)[rng.integers(0, 3, n)]

    def boundary_distance(next_states):
        return np.abs(-np.cos(next_states[:, 0]) - np.cos(next_states[:, 0] + next_states[:, 1]) - 1.0)

    ours, gym = compare("acrobot", states, actions, boundary_distance)
    angles = angle_gap(ours[0][:, :2], gym[0][:, :2])
    assert np.all(np.abs(angles) <= ATOL + RTOL * math.pi), np.abs(angles).max()
    slow = np.all(np.abs(states[:, 2:]) <= np.array([MAX_VEL_1, MAX_VEL_2]) / 2, axis=1)
    assert 0.2 < slow.mean() < 0.3
    close(ours[0][slow, 2:], gym[0][slow, 2:], "acrobot speeds from slower states")
    tol = FAST_ACROBOT_TOL
    np.testing.assert_allclose(ours[0][:, 2:], gym[0][:, 2:], rtol=tol, atol=tol, err_msg="acrobot speeds")
    assert np.all(np.abs(ours[0][:, :2]) <= math.pi + 1e-6)
    wrapped = np.abs(angle_gap(gym[0][:, :2], 0) - (gym[0][:, :2] - states[:, :2])) > 1  # crossed +-pi
    assert np.sum(np.abs(gym[0][:, :2] - states[:, :2]) > math.pi) > 200, "few wrapped angles"
    assert wrapped.any()
    assert np.sum(np.abs(gym[0][:, 2]) == MAX_VEL_1) > 20 and np.sum(np.abs(gym[0][:, 3]) == MAX_VEL_2) > 20
    assert 0.05 < gym[2].mean() < 0.95
    np.testing.assert_array_equal(ours[1], np.where(ours[2], 0.0, -1.0))


def test_mountaincar_matches_gymnasium():
    from worldmodel.envs.mountaincar import GOAL_POSITION, MAX_POSITION, MAX_SPEED, MIN_POSITION

    rng = np.random.default_rng(3)
    n = 1500
    anywhere = np.stack([rng.uniform(MIN_POSITION, MAX_POSITION, n), rng.uniform(-MAX_SPEED, MAX_SPEED, n)], 1)
    left_wall = np.stack([rng.uniform(MIN_POSITION, MIN_POSITION + 0.07, n), rng.uniform(-MAX_SPEED, 0.0, n)], 1)
    goal = np.stack([rng.uniform(GOAL_POSITION - 0.07, MAX_POSITION, n), rng.uniform(-MAX_SPEED, MAX_SPEED, n)], 1)
    states = np.concatenate([anywhere, left_wall, goal])
    actions = rng.uniform(-1.5, 1.5, (3 * n, 1))  # beyond +-1: the force clips, the cost does not

    def boundary_distance(next_states):
        """Distance to the goal's edge: its position, or zero velocity on the goal side."""
        position, velocity = next_states[:, 0], next_states[:, 1]
        return np.minimum(np.abs(position - GOAL_POSITION), np.where(position >= GOAL_POSITION, np.abs(velocity), np.inf))

    ours, gym = compare("mountaincar", states, actions, boundary_distance)
    close(ours[0], gym[0], "mountaincar next states")
    at_wall = gym[0][:, 0] == np.float32(MIN_POSITION)
    assert at_wall.sum() > 300 and np.all(gym[0][at_wall, 1] >= 0) and np.all(ours[0][at_wall, 1] >= 0)
    np.testing.assert_array_equal(ours[0][at_wall], gym[0][at_wall])  # stopped by the wall: velocity exactly 0
    assert np.sum(gym[0][:, 0] == np.float32(MAX_POSITION)) > 50
    assert np.sum(np.abs(gym[0][:, 1]) == np.float32(MAX_SPEED)) > 20
    assert 200 < gym[2].sum() < 2000
    assert np.all(gym[1][gym[2]] > 99) and np.sum(np.abs(actions) > 1) > 1000


@pytest.mark.parametrize("name", GYM_ENVS)
def test_state_from_obs_is_gymnasiums_state(name):
    """Along a random episode the state read from each observation is Gymnasium's internal state
    (angles up to whole turns; the observation is float32)."""
    env = get_env(name)
    gym_env = make_gym_env(env)
    obs, _ = gym_env.reset(seed=4)
    rng = np.random.default_rng(4)
    for _ in range(60):
        state, truth = state_from_obs(env, obs), gym_state(env, gym_env)
        assert state.shape == (env.state_dim,) and state.dtype == np.float32
        gap = state - truth
        if name in ("pendulum", "acrobot"):
            angles = slice(0, 1) if name == "pendulum" else slice(0, 2)
            gap[angles] = angle_gap(state[angles], truth[angles])
        np.testing.assert_allclose(gap, 0.0, atol=1e-6 * (1 + np.abs(truth).max()))
        obs, _, terminated, _, _ = gym_env.step(gym_action(env, env.sample_actions(rng, 1)[0]))
        if terminated:
            obs, _ = gym_env.reset()
    batch = np.stack([obs, obs])  # [..., O] -> [..., S]
    assert state_from_obs(env, batch).shape == (2, env.state_dim)
    gym_env.close()


@pytest.mark.parametrize("name", GYM_ENVS)
def test_starts_cover_gymnasiums_reset_box(name):
    """Our start draws and Gymnasium's resets span the same box (Gymnasium's resets are seeded: no flakes)."""
    env = get_env(name)
    gym_env = make_gym_env(env)
    gym_starts = np.array([(gym_env.reset(seed=seed), gym_state(env, gym_env))[1] for seed in range(500)])
    ours = np.array(env.reset(5000, seed=5))
    assert ours.shape == (5000, env.state_dim) and ours.dtype == np.float32
    width = np.maximum(gym_starts.max(0) - gym_starts.min(0), 1e-12)
    np.testing.assert_allclose(ours.min(0), gym_starts.min(0), atol=0.03 * width.max())
    np.testing.assert_allclose(ours.max(0), gym_starts.max(0), atol=0.03 * width.max())
    assert np.all(ours.min(0) >= gym_starts.min(0) - 0.03 * width) and np.all(ours.max(0) <= gym_starts.max(0) + 0.03 * width)
    hard = env.benchmark_starts(8, seed=0)
    assert hard.ndim == 2 and hard.shape[1] == env.state_dim and hard.dtype == np.float32
    assert np.all(hard >= gym_starts.min(0) - 0.03 * width) and np.all(hard <= gym_starts.max(0) + 0.03 * width)
    gym_env.close()


@pytest.mark.parametrize("name", GYM_ENVS)
def test_spaces_and_episode_length_are_gymnasiums(name):
    env = get_env(name)
    gym_env = make_gym_env(env)
    assert gym_env.spec.id == gym_id(env) and gym_env.spec.max_episode_steps == env.steps
    space = gym_env.action_space
    if isinstance(space, gymnasium.spaces.Discrete):
        assert env.action_space.n == space.n
        assert gym_action(env, np.eye(space.n, dtype=np.float32)[space.n - 1]) == space.n - 1
    else:
        np.testing.assert_array_equal(env.action_space.low, space.low)
        np.testing.assert_array_equal(env.action_space.high, space.high)
        assert space.contains(gym_action(env, np.asarray(env.action_space.high)))
    gym_env.close()


def test_gymnasium_options_reach_the_gym_env():
    env = get_env("pendulum", g=9.81)
    assert make_gym_env(env).unwrapped.g == 9.81
    state, action = np.array([[1.0, 0.5]], np.float32), np.array([[0.3]], np.float32)
    ours, gym = mlx_step(env, state, action), gym_steps(env, state, action)
    close(ours[0], gym[0], "pendulum with g = 9.81")

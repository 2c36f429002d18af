"""ParticleEnv physics against hand-computed values, and the action spaces."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest

from planners.spaces import Box, Discrete
from worldmodel import PUSHES, ParticleEnv, one_hot_pushes


def step(env, states, actions):
    """Numpy in, numpy out: ``env`` on float32 ``states [B, 2]`` and ``actions [B, A]``."""
    next_state, reward = env(mx.array(np.asarray(states, np.float32)), mx.array(np.asarray(actions, np.float32)))
    return np.array(next_state), np.array(reward)


def reference(x, v, a):
    """The seed's equations, by hand, in float64."""
    v2 = min(max(v + 0.1 * a, -1.0), 1.0)
    x2 = min(max(x + v2, -1.5), 1.5)
    return x2, v2, -abs(x2)


# (x, v, push, expected x', expected v', expected r)
CASES = [
    (0.0, 0.0, 1, 0.1, 0.1, -0.1),
    (0.0, 0.0, 0, 0.0, 0.0, 0.0),
    (0.5, -0.2, -1, 0.2, -0.3, -0.2),
    (-0.3, 0.4, 0, 0.1, 0.4, -0.1),
    (1.45, 0.1, 1, 1.5, 0.2, -1.5),  # right wall: 1.45 + 0.2 = 1.65 -> 1.5
    (-1.45, -0.1, -1, -1.5, -0.2, -1.5),  # left wall
    (1.5, 1.0, 1, 1.5, 1.0, -1.5),  # at the wall and the speed limit, pushing outward
    (0.2, 0.95, 1, 1.2, 1.0, -1.2),  # speed limit: 0.95 + 0.1 -> 1.0
    (0.0, -1.0, -1, -1.0, -1.0, -1.0),  # lower speed limit
    (1.0, 0.0, 1, 1.1, 0.1, -1.1),  # the rollout's first step
]


@pytest.mark.parametrize("x, v, push, x_want, v_want, r_want", CASES)
def test_discrete_step_matches_hand_computed(x, v, push, x_want, v_want, r_want):
    assert reference(x, v, push) == pytest.approx((x_want, v_want, r_want), abs=1e-12)
    next_state, reward = step(ParticleEnv(), [[x, v]], one_hot_pushes([push]))
    np.testing.assert_allclose(next_state[0], [x_want, v_want], atol=1e-6)
    np.testing.assert_allclose(reward[0], r_want, atol=1e-6)


def test_batch_matches_reference_and_shapes():
    env = ParticleEnv()
    rng = np.random.default_rng(3)
    states = env.sample_states(rng, 257)
    pushes = rng.integers(-1, 2, size=257)
    next_state, reward = env(mx.array(states), one_hot_pushes(pushes))
    assert next_state.shape == (257, 2) and reward.shape == (257,)
    assert next_state.dtype == mx.float32 and reward.dtype == mx.float32
    want = np.array([reference(float(x), float(v), int(a)) for (x, v), a in zip(states, pushes)])
    np.testing.assert_allclose(np.array(next_state), want[:, :2], atol=1e-6)
    np.testing.assert_allclose(np.array(reward), want[:, 2], atol=1e-6)
    # The walls and speed limits hold for every state.
    assert np.all(np.abs(np.array(next_state)[:, 0]) <= 1.5) and np.all(np.abs(np.array(next_state)[:, 1]) <= 1.0)


def test_soft_action_applies_expected_push():
    env = ParticleEnv()
    next_state, reward = step(env, [[0.0, 0.0], [1.4, 0.9]], [[0.25, 0.25, 0.5], [0.0, 0.5, 0.5]])
    # expected pushes: -0.25 + 0.5 = +0.25 and +0.5
    np.testing.assert_allclose(next_state, [[0.025, 0.025], [1.5, 0.95]], atol=1e-6)
    np.testing.assert_allclose(reward, [-0.025, -1.5], atol=1e-6)


def test_continuous_variant_clips_actions():
    env = ParticleEnv(continuous=True)
    assert isinstance(env.action_space, Box) and env.action_space.dim == 1
    np.testing.assert_array_equal(env.action_space.low, [-1.0])
    np.testing.assert_array_equal(env.action_space.high, [1.0])
    next_state, reward = step(env, [[0.0, 0.0]] * 4, [[0.5], [-0.3], [5.0], [-7.0]])
    np.testing.assert_allclose(next_state, [[0.05, 0.05], [-0.03, -0.03], [0.1, 0.1], [-0.1, -0.1]], atol=1e-6)
    np.testing.assert_allclose(reward, [-0.05, -0.03, -0.1, -0.1], atol=1e-6)
    actions = env.sample_actions(np.random.default_rng(0), 100)
    assert actions.shape == (100, 1) and actions.dtype == np.float32 and np.all(np.abs(actions) <= 1)


def test_discrete_action_space_and_sampled_actions():
    env = ParticleEnv()
    assert env.action_space == Discrete(3, values=PUSHES) and env.action_space.dim == 3
    actions = env.sample_actions(np.random.default_rng(0), 300)
    assert actions.shape == (300, 3) and actions.dtype == np.float32
    np.testing.assert_array_equal(actions.sum(1), 1.0)
    assert set(np.argmax(actions, 1).tolist()) == {0, 1, 2}


def test_reset_in_box_deterministic_per_seed():
    env = ParticleEnv()
    a, b, c = env.reset(1000, seed=7), env.reset(1000, seed=7), env.reset(1000, seed=8)
    assert a.shape == (1000, 2) and a.dtype == mx.float32
    a, b, c = np.array(a), np.array(b), np.array(c)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.all(np.abs(a[:, 0]) <= 1.5) and np.all(np.abs(a[:, 1]) <= 1.0)
    # uniform over the whole box, not a corner of it
    assert a[:, 0].min() < -1.4 and a[:, 0].max() > 1.4 and a[:, 1].min() < -0.9 and a[:, 1].max() > 0.9
    assert env.reset(1).shape == (1, 2)


@pytest.mark.parametrize("num", [0, -3])
def test_reset_bad_num(num):
    with pytest.raises(ValueError, match="num"):
        ParticleEnv().reset(num)


@pytest.mark.parametrize("kwargs", [{"accel": 0}, {"x_limit": -1}, {"v_limit": 0}])
def test_env_rejects_bad_constants(kwargs):
    with pytest.raises(ValueError):
        ParticleEnv(**kwargs)


def test_custom_constants_and_config():
    env = ParticleEnv(accel=0.5, x_limit=2.0, v_limit=0.7)
    assert env.config() == {"continuous": False, "accel": 0.5, "x_limit": 2.0, "v_limit": 0.7}
    next_state, reward = step(env, [[1.8, 0.4], [0.0, 0.0]], one_hot_pushes([1, -1]))
    np.testing.assert_allclose(next_state, [[2.0, 0.7], [-0.5, -0.5]], atol=1e-6)
    np.testing.assert_allclose(reward, [-2.0, -0.5], atol=1e-6)


def test_one_hot_pushes():
    out = one_hot_pushes([[-1, 0], [1, 1]])
    assert out.shape == (2, 2, 3) and out.dtype == mx.float32
    np.testing.assert_array_equal(np.array(out), [[[1, 0, 0], [0, 1, 0]], [[0, 0, 1], [0, 0, 1]]])
    with pytest.raises(ValueError, match="-1, 0 or \\+1"):
        one_hot_pushes([0, 2])
    with pytest.raises(ValueError):
        one_hot_pushes([-2])


def test_discrete_validation():
    assert Discrete(4).dim == 4
    for bad in (1, 0, 2.5):
        with pytest.raises(ValueError):
            Discrete(bad)
    with pytest.raises(ValueError, match="values"):
        Discrete(3, values=(-1, 1))


def test_box_validation_and_shape_inference():
    with pytest.raises(ValueError, match="low <= high"):
        Box(1, 0)
    with pytest.raises(ValueError, match="finite"):
        Box(0, np.inf)
    with pytest.raises(ValueError):
        Box([0, 0], [1, 1, 1])
    with pytest.raises(ValueError):
        Box(0, 1, shape=(2, 2))
    assert Box(-1, 1).shape is None  # scalar bounds, no shape: the size is open (a planner sizes it)
    assert Box(-1, 1, shape=(1,)).shape == (1,)
    box = Box([-1, -2, -3], 1.0)
    assert box.shape == (3,) and box.dim == 3
    np.testing.assert_array_equal(box.high, [1, 1, 1])
    assert box.low.dtype == np.float32
    assert Box(0, 1, shape=(4,)).dim == 4
    assert Box(-1, 1, shape=(1,)) == Box([-1.0], [1.0]) and hash(Box(-1, 1, shape=(1,))) == hash(Box([-1.0], [1.0]))
    assert Box(-1, 1, shape=(1,)) != Box(-1, 2, shape=(1,))

"""The environment registry and what every environment provides (no Gymnasium needed here)."""

from __future__ import annotations

import subprocess
import sys

import mlx.core as mx
import numpy as np
import pytest

from planners import Box, Discrete, KnownReward, rollout
from worldmodel import ParticleEnv
from worldmodel.envs import ENV_NAMES, MLX_ENV_NAMES, Environment, get_env
from worldmodel.envs.gymnasium import gym_id, make_gym_env
from tests.conftest import invoke, one_error_line


def test_registry_names_and_errors():
    assert MLX_ENV_NAMES == ("particle", "pendulum", "cartpole", "acrobot", "mountaincar")
    assert ENV_NAMES == (*MLX_ENV_NAMES, "inverted-pendulum", "reacher", "half-cheetah")
    with pytest.raises(ValueError, match=r"unknown environment 'x'; choose from particle, pendulum, cartpole, acrobot, "
                                         r"mountaincar, inverted-pendulum, reacher, half-cheetah$"):
        get_env("x")
    with pytest.raises(ValueError, match="environment 'cartpole' takes no options; got g"):
        get_env("cartpole", g=9.8)
    with pytest.raises(ValueError, match="environment 'pendulum' takes the options g; got gravity"):
        get_env("pendulum", gravity=9.8)
    with pytest.raises(ValueError, match="g must be a positive"):
        get_env("pendulum", g=-1.0)


@pytest.mark.parametrize("name", MLX_ENV_NAMES)
def test_every_environment_keeps_the_contract(name):
    env = get_env(name)
    assert isinstance(env, Environment) and env.name == name
    assert get_env(name, **env.config()).config() == env.config()
    rng = np.random.default_rng(0)
    states, actions = env.sample_states(rng, 64), env.sample_actions(rng, 64)
    assert states.shape == (64, env.state_dim) and states.dtype == np.float32
    assert np.all(states >= np.array(env.state_low, np.float32)) and np.all(states <= np.array(env.state_high, np.float32))
    assert actions.shape == (64, env.action_space.dim) and actions.dtype == np.float32
    if isinstance(env.action_space, Discrete):
        np.testing.assert_array_equal(actions.sum(1), 1.0)
    else:
        assert np.all(actions >= env.action_space.low) and np.all(actions <= env.action_space.high)
    next_state, reward = env(mx.array(states), mx.array(actions))
    assert next_state.shape == (64, env.state_dim) and reward.shape == (64,)
    assert next_state.dtype == mx.float32 and reward.dtype == mx.float32
    np.testing.assert_array_equal(np.array(reward), np.array(env.reward(mx.array(states), mx.array(actions), next_state)))
    if env.termination is not None:
        done = env.termination(next_state)
        assert done.shape == (64,) and done.dtype == mx.bool_
    starts = env.benchmark_starts(10, seed=1)
    assert starts.shape == (10, env.state_dim) and starts.dtype == np.float32
    np.testing.assert_array_equal(starts, env.benchmark_starts(10, seed=1))
    assert env.steps >= 1 and env.defaults.planning.horizon >= 1 and env.defaults.planning.samples >= 1


@pytest.mark.parametrize("name", MLX_ENV_NAMES)
def test_gradients_through_relaxed_actions_are_finite(name):
    """Gradient planners feed probability vectors (Discrete) or in-bound floats (Box) and differentiate
    through the dynamics. (CartPole's and Acrobot's rewards are constant until termination, so their
    returns alone carry no gradient; the imagined states do.)"""
    env = get_env(name)
    rng = np.random.default_rng(1)
    starts = mx.array(env.benchmark_starts(8, seed=1))
    logits = mx.array(rng.normal(size=(8, 10, env.action_space.dim)).astype(np.float32))

    def loss(free):
        actions = mx.softmax(free, axis=-1) if isinstance(env.action_space, Discrete) else mx.tanh(free)
        total, states, _ = rollout(env, starts, actions, termination=env.termination, return_trajectory=True)
        return mx.sum(total) + mx.sum(states[:, -1])

    grad = np.array(mx.grad(loss)(logits))
    assert np.all(np.isfinite(grad)) and np.any(grad != 0)


@pytest.mark.parametrize("name, forces", [("cartpole", (-10.0, 10.0)), ("acrobot", (-1.0, 0.0, 1.0))])
def test_a_probability_vector_applies_the_expected_force(name, forces):
    env = get_env(name)
    probabilities = mx.array([[0.25, 0.75, 0.0][: len(forces)], [0.1, 0.2, 0.7][: len(forces)]])
    probabilities = probabilities / mx.sum(probabilities, axis=1, keepdims=True)
    expected = np.array(probabilities) @ np.array(forces)
    applied = env.force(probabilities) if name == "cartpole" else env.torque(probabilities)
    np.testing.assert_allclose(np.array(applied), expected, rtol=1e-6)
    if name == "cartpole":  # the Euler step is linear in the force: the next state is the mix of both pushes
        state = mx.array(env.sample_states(np.random.default_rng(2), 2))
        left, _ = env(state, mx.array([[1.0, 0.0]] * 2))
        right, _ = env(state, mx.array([[0.0, 1.0]] * 2))
        p = np.array(probabilities)[:, 1:2]
        np.testing.assert_allclose(np.array(env(state, probabilities)[0]), (1 - p) * np.array(left) + p * np.array(right), atol=1e-6)


def test_known_reward_with_the_true_next_state_is_the_environment():
    for name in MLX_ENV_NAMES:
        env = get_env(name)
        rng = np.random.default_rng(3)
        starts = env.reset(16, seed=3)
        actions = mx.array(np.stack([env.sample_actions(rng, 16) for _ in range(12)], axis=1))
        adapter = KnownReward(env.next_state, env.reward)
        np.testing.assert_array_equal(
            np.array(rollout(adapter, starts, actions, termination=env.termination)),
            np.array(rollout(env, starts, actions, termination=env.termination)),
        )


def test_cartpole_imagined_return_counts_steps_until_the_pole_falls():
    env = get_env("cartpole")
    start = mx.array([[0.0, 0.0, 0.05, 0.0]])
    always_left = mx.array(np.tile([1.0, 0.0], (1, 100, 1)).astype(np.float32))
    total, states, rewards = rollout(env, start, always_left, termination=env.termination, return_trajectory=True)
    fell = int(np.argmax(np.array(env.termination(states[0, 1:]))))  # first step whose next state is terminal
    assert 5 < fell < 60
    assert total.item() == fell + 1  # the step that ends the episode is rewarded
    np.testing.assert_array_equal(np.array(states[0, fell + 1 :]), np.repeat(np.array(states[0, fell + 1 : fell + 2]), 100 - fell, 0))


def test_particle_is_the_particle_env():
    env = get_env("particle", continuous=True)
    assert isinstance(env, ParticleEnv) and env.termination is None and gym_id(env) is None
    assert env.action_space == Box(-1.0, 1.0, shape=(1,)) and env.config()["continuous"] is True
    reference = ParticleEnv(continuous=True)
    state, action = mx.array([[1.2, 0.5], [-0.3, -0.9]]), mx.array([[0.7], [-2.0]])
    for ours, theirs in zip(env(state, action), reference(state, action)):
        np.testing.assert_array_equal(np.array(ours), np.array(theirs))
    np.testing.assert_array_equal(env.benchmark_starts(2), [[1.5, 1.0], [-1.5, -1.0]])
    with pytest.raises(ValueError, match="'particle' has no Gymnasium counterpart"):
        make_gym_env(env)


def test_make_gym_env_without_gymnasium_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "gymnasium", None)  # import gymnasium now raises ImportError
    with pytest.raises(ImportError, match=r"^make_gym_env needs gymnasium: pip install '\.\[gym\]' in the wmplan repository$"):
        make_gym_env(get_env("pendulum"))


def test_the_mlx_dynamics_do_not_import_gymnasium():
    code = (
        "import sys, numpy as np; from worldmodel.envs import ENV_NAMES, MLX_ENV_NAMES, get_env; import mlx.core as mx\n"
        "for name in MLX_ENV_NAMES:\n"
        "    env = get_env(name); rng = np.random.default_rng(0)\n"
        "    mx.eval(env(mx.array(env.sample_states(rng, 4)), mx.array(env.sample_actions(rng, 4))))\n"
        "assert 'gymnasium' not in sys.modules, 'gymnasium was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_the_plain_step_runs_where_mlx_cannot_compile(monkeypatch):
    from planners.runtime import streams
    from worldmodel.envs import get_env

    monkeypatch.setattr(streams, "_COMPILE_WORKS", False)
    env = get_env("pendulum")
    state = mx.array([[0.5, -1.0]])
    action = mx.array([[1.0]])
    next_state, reward = env(state, action)
    assert env._compiled_step == env.step
    expected = env.step(state, action)
    assert mx.array_equal(next_state, expected[0]).item() and mx.array_equal(reward, expected[1]).item()


@pytest.mark.parametrize("name", ["inverted-pendulum", "reacher", "half-cheetah"])
def test_a_mujoco_env_without_mujoco_names_the_install_command(monkeypatch, name):
    monkeypatch.setitem(sys.modules, "mujoco", None)  # import mujoco now raises ImportError
    with pytest.raises(ValueError, match=rf"^environment '{name}' needs MuJoCo: pip install '\.\[mujoco\]' in the wmplan repository$"):
        get_env(name)
    result = invoke("mbrl", "--env", name, "--rounds", "0")
    assert one_error_line(result, 2).endswith("needs MuJoCo: pip install '.[mujoco]' in the wmplan repository")

"""Learning any environment: ``wmplan train --env NAME``, its data, checkpoints and planning with them."""

from __future__ import annotations

import math
import re

import mlx.core as mx
import numpy as np
import pytest

import planners
from worldmodel import ParticleEnv, WorldModel, generate, load_model, one_step_mse, read_config
from worldmodel.data import Transitions
from worldmodel.envs import MLX_ENV_NAMES, env_of_checkpoint, get_env
from worldmodel.features import state_change, wrap_angle
from tests.conftest import invoke, need

TINY = ["--episodes", "12", "--steps", "10", "--epochs", "1", "--hidden", "8"]
HELD_OUT = re.compile(r"^Held-out one-step MSE \(20000 uniform transitions\): (.*), mean = \S+$", re.M)


def seed_generate(env, episodes, steps, seed):
    """The seed's data loop, written out: what ``generate`` must still give for environments that never end."""
    rng = np.random.default_rng(seed)
    state = env.sample_states(rng, episodes)
    parts = []
    for _ in range(steps):
        action = env.sample_actions(rng, episodes)
        next_state, reward = env(mx.array(state), mx.array(action))
        parts.append((state, action, np.array(next_state), np.array(reward)))
        state = parts[-1][2]
    return [np.concatenate(column) for column in zip(*parts)]


@pytest.mark.parametrize("env", [ParticleEnv(), ParticleEnv(continuous=True), get_env("particle")])
def test_particle_data_are_the_seeds(env):
    data = generate(env, 40, 12, seed=0)
    for got, expected in zip((data.states, data.actions, data.next_states, data.rewards), seed_generate(env, 40, 12, 0)):
        np.testing.assert_array_equal(got, expected)


def test_particle_defaults_are_the_seeds():
    """``wmplan train`` with no options: the seed's budget and model (no angle inputs, reward from the next state)."""
    budget = get_env("particle").defaults.training
    assert (budget.episodes, budget.steps, budget.epochs, budget.batch_size, budget.hidden) == (400, 50, 20, 128, (128, 128))
    assert not budget.angles and not budget.reward_from_state and budget.reward_hidden == 32


def test_termination_restarts_rows():
    env = get_env("cartpole")
    episodes, steps = 16, 30
    data = generate(env, episodes, steps, seed=1)
    assert len(data) == episodes * steps
    shape = (steps, episodes, env.state_dim)
    states, next_states = data.states.reshape(shape), data.next_states.reshape(shape)
    done = np.array(env.termination(mx.array(data.next_states))).reshape(steps, episodes)
    assert done[:-1].sum() >= episodes  # random actions topple the pole often
    # a row goes on from its next state unless that step terminated; then it restarts elsewhere
    follows = np.all(states[1:] == next_states[:-1], axis=-1)
    np.testing.assert_array_equal(follows, ~done[:-1])
    assert np.all(np.abs(states[1:][done[:-1]]) <= np.array(env.state_high))
    # the terminating transitions are recorded, with their reward
    assert np.all(data.rewards == 1.0)


def test_gymnasium_runner_records_the_same_episodes():
    need("gymnasium")
    for name in ("cartpole", "mountaincar"):
        env = get_env(name)
        mlx_data, gym_data = generate(env, 6, 25, seed=2), generate(env, 6, 25, seed=2, runner="gymnasium")
        for field in ("states", "actions", "next_states", "rewards"):
            np.testing.assert_allclose(getattr(gym_data, field), getattr(mlx_data, field), atol=1e-4, err_msg=f"{name} {field}")


def test_old_source_keyword_still_works_with_a_deprecation_warning():
    need("gymnasium")
    env = get_env("cartpole")
    with pytest.warns(DeprecationWarning, match="runner='gymnasium'"):
        old = generate(env, 3, 5, seed=2, source="gym")
    new = generate(env, 3, 5, seed=2, runner="gymnasium")
    for field in ("states", "actions", "next_states", "rewards"):
        np.testing.assert_array_equal(getattr(old, field), getattr(new, field))


def test_unknown_runner():
    with pytest.raises(ValueError, match="unknown runner 'tf'; choose from gymnasium, mlx"):
        generate(get_env("pendulum"), 2, 2, runner="tf")


def test_angle_features_and_wrapped_changes():
    model = WorldModel(state_dim=4, action_dim=3, hidden=(8,), angles=(0, 1))
    state = mx.array([[0.5, -3.0, 2.0, -1.0]])
    features = np.array(model.features(state))
    np.testing.assert_allclose(features, [[2.0, -1.0, math.cos(0.5), math.cos(-3.0), math.sin(0.5), math.sin(-3.0)]], rtol=1e-6)
    # a turn more or less is the same input
    np.testing.assert_allclose(np.array(model.features(state + mx.array([2 * math.pi, -2 * math.pi, 0, 0]))), features, atol=1e-5)
    # a step across the wrap is a small change
    before, after = np.array([[3.1, 0.0, 0, 0]], np.float32), np.array([[-3.1, 0.0, 0, 0]], np.float32)
    np.testing.assert_allclose(state_change(before, after, (0,)), [[2 * math.pi - 6.2, 0, 0, 0]], atol=1e-5)
    np.testing.assert_allclose(state_change(before, after), after - before)
    assert float(wrap_angle(np.float32(math.pi))) == pytest.approx(-math.pi)


def test_one_step_mse_counts_angles_modulo_turns():
    class TurnAhead:
        """The true pendulum, its angle a whole turn ahead."""

        angles = (0,)

        def __call__(self, state, action):
            next_state, reward = get_env("pendulum")(state, action)
            return next_state + mx.array([2 * math.pi, 0.0]), reward

    env = get_env("pendulum")
    rng = np.random.default_rng(0)
    states, actions = env.sample_states(rng, 100), env.sample_actions(rng, 100)
    next_states, rewards = env(mx.array(states), mx.array(actions))
    data = Transitions(states, actions, np.array(next_states), np.array(rewards))
    np.testing.assert_allclose(one_step_mse(TurnAhead(), data), 0.0, atol=1e-9)


@pytest.mark.parametrize("name", MLX_ENV_NAMES)
def test_train_each_env(tmp_path, name):
    env = get_env(name)
    out = str(tmp_path / name)
    result = invoke("train", "--env", name, *TINY, "--out", out)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Dataset size: 120 transitions\n")
    values = HELD_OUT.search(result.output).group(1)
    assert [part.split(" = ")[0] for part in values.split(", ")] == [*env.state_names, "r"]
    config = read_config(out)
    assert config["env"] == {"name": name, **env.config()} and env_of_checkpoint(config).config() == env.config()
    assert config["data"]["source"] == "mlx" and config["data"]["transitions"] == 120
    assert config["model"].get("angles", []) == (list(env.angles) if env.defaults.training.angles else [])
    members = env.defaults.training.ensemble
    assert config["model"].get("kind", "single") == ("ensemble" if members > 1 else "single")
    assert config["model"].get("ensemble", 1) == members
    model = load_model(out)
    assert (model.state_dim, model.action_dim) == (env.state_dim, env.action_space.dim)
    planner = planners.CEM(model.folded(), env.action_space, horizon=4, samples=16, iterations=2, termination=env.termination)
    actions = np.array(planner.act(env.benchmark_starts(3)))
    assert actions.shape == (3, env.action_space.dim) and np.all(np.isfinite(actions))


def test_train_from_gymnasium(tmp_path):
    need("gymnasium")
    out = str(tmp_path / "m")
    result = invoke("train", "--env", "acrobot", "--runner", "gymnasium", *TINY, "--out", out)
    assert result.exit_code == 0, result.output
    assert read_config(out)["data"]["source"] == "gymnasium"
    load_model(out)
    old = invoke("train", "--env", "acrobot", "--source", "gym", *TINY, "--out", str(tmp_path / "old"))  # the old spelling
    assert old.exit_code == 0 and "--source is deprecated" in old.output, old.output
    assert read_config(str(tmp_path / "old"))["data"]["source"] == "gymnasium"


def test_ensemble_option_overrides_the_envs_budget(tmp_path):
    assert get_env("acrobot").defaults.training.ensemble == 5
    for name, members in (("acrobot", 1), ("pendulum", 2)):
        out = str(tmp_path / name)
        result = invoke("train", "--env", name, "--ensemble", str(members), *TINY, "--out", out)
        assert result.exit_code == 0, result.output
        model = load_model(out)
        assert getattr(model, "ensemble_size", 1) == members and model.angles == get_env(name).angles


def test_raw_angles_option(tmp_path):
    out = str(tmp_path / "m")
    result = invoke("train", "--env", "pendulum", "--raw-angles", *TINY, "--out", out)
    assert result.exit_code == 0, result.output
    assert "angles" not in read_config(out)["model"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--env", "lunar"], "Invalid value for '--env': unknown environment 'lunar'; choose from particle, pendulum, "),
        (["--source", "tf"], "Invalid value for '--source': unknown source 'tf'; choose from mlx, gym"),
        (["--runner", "tf"], "Invalid value for '--runner': 'tf' is not one of 'mlx', 'gymnasium'"),
        (["--env", "particle", "--runner", "gymnasium"], "Invalid value for '--runner': particle has no Gymnasium counterpart"),
        (["--env", "particle", "--source", "gym"], "Invalid value for '--runner': particle has no Gymnasium counterpart"),
        (["--env", "cartpole", "--angle-features"], "Invalid value for '--angle-features': cartpole has no angles"),
    ],
)
def test_bad_env_or_source(tmp_path, args, message):
    """Usage errors (exit 2, one ``Error:`` line, as an unknown planner), found before any work."""
    out = tmp_path / "m"
    result = invoke("train", *args, *TINY, "--out", str(out))
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and errors[0].startswith("Error: " + message), result.output
    assert "Traceback" not in result.output and "Dataset size" not in result.output and not out.exists()


def test_angle_turns_recover_fast_turns_and_keep_slow_ones():
    """A joint turning up to 4 rad a step (wrapped by its env) gets its true change back; slow ones stay wrapped."""
    from worldmodel.features import angle_turns, state_change, wrap_angle

    rng = np.random.default_rng(0)
    theta, speed = rng.uniform(-np.pi, np.pi, 5000), rng.uniform(-20.0, 20.0, 5000)
    states = np.stack([theta, speed], axis=1)
    next_states = np.stack([wrap_angle(theta + 0.2 * speed), speed], axis=1)
    turns = angle_turns(states, next_states, (0,))[:, 0]
    np.testing.assert_allclose(turns, 0.2 * speed, atol=1e-9)
    assert np.abs(0.2 * speed).max() > 3.5  # the wrap did hide whole turns
    slow = np.stack([wrap_angle(theta + 0.02 * speed), speed], axis=1)
    np.testing.assert_array_equal(angle_turns(states, slow, (0,)), state_change(states, slow, (0,))[:, :1])


@pytest.mark.parametrize("value", ["", None])
def test_an_empty_wmplan_home_is_unset_for_models_runs_and_the_blas_cache_alike(tmp_path, monkeypatch, value):
    """``WMPLAN_HOME=`` (empty) means ~/.cache/wmplan everywhere: one reader, never the current folder."""
    import os

    from planners.runtime import blas
    from planners.runtime.home import wmplan_home
    from worldmodel.mbrl import default_run_folder
    from worldmodel.recipe import default_home, default_model_path

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    if value is None:
        monkeypatch.delenv("WMPLAN_HOME")
    else:
        monkeypatch.setenv("WMPLAN_HOME", value)
    home = str(tmp_path / ".cache" / "wmplan")
    assert wmplan_home() == default_home() == str(blas._cache_root()) == home
    assert default_model_path("pendulum") == os.path.join(home, "model-pendulum")
    assert default_run_folder("particle") == os.path.join(home, "mbrl-particle")
    monkeypatch.setenv("WMPLAN_HOME", str(tmp_path / "mine"))
    assert str(blas._cache_root()) == default_home() == str(tmp_path / "mine")


def test_an_envs_default_iterations_are_for_population_searches_only():
    """The pendulum's budget says 3 iterations: CEM/MPPI/cem-gd get them, the gradient planner keeps its 30 Adam steps."""
    from worldmodel.recipe import planner_for

    env = get_env("pendulum")
    assert env.defaults.planning.planner_options(env)["iterations"] == 3
    for name in ("cem", "icem", "mppi", "cem-gd"):
        assert planner_for(name, env, env).iterations == 3, name
    assert planner_for("gradient", env, env).iterations == planners.GradientPlanner(env, env.action_space).iterations == 30
    assert planner_for("gradient", env, env, iterations=7).iterations == 7
    assert planner_for("cem", env, env, iterations=5).iterations == 5

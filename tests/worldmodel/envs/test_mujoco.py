"""Gymnasium's MuJoCo environments (inverted-pendulum, reacher, half-cheetah) against Gymnasium's own ``step``.

Skipped without the ``mujoco`` extra. Recorded random-action transitions (Gymnasium's observations,
rewards and terminations) are compared with the envs' MLX reward and termination; starts, states
put in from observations and the full physics state are checked against Gymnasium stepping itself.
"""

from __future__ import annotations

import json
import re

import mlx.core as mx
import numpy as np
import pytest

from benchmarks.baselines import baselines
from tests.conftest import invoke, need
from worldmodel.envs import get_env
from worldmodel.envs.gymnasium import gym_state, make_gym_env, physics_state, set_gym_state, set_physics_state
from worldmodel.envs.runner import episode_rngs, random_policy, run_episodes

need("gymnasium")
need("mujoco")

MUJOCO_ENVS = ("inverted-pendulum", "reacher", "half-cheetah")


def recorded(env, episodes: int, steps: int, seed: int = 0):
    """Random-action episodes in Gymnasium, read from the observations: ``(obs, actions, next_obs, rewards, ended)``
    over the steps taken, ``ended``: the step terminated its episode."""
    ep = run_episodes(random_policy(env, episode_rngs(seed, range(episodes))), env, env.benchmark_starts(episodes, seed),
                      steps, runner="gymnasium", seeds=seed + np.arange(episodes), set_starts=False)
    taken = np.arange(steps)[None] < ep.lengths[:, None]
    ended = np.zeros_like(taken)
    ended[np.arange(episodes), ep.lengths - 1] = ep.terminated
    return ep.states[:, :-1][taken], ep.actions[taken], ep.states[:, 1:][taken], ep.rewards[taken], ended[taken]


@pytest.mark.parametrize("name, episodes, steps", [("inverted-pendulum", 20, 100), ("reacher", 4, 50)])
def test_reward_and_termination_copies_agree_with_gymnasiums_step(name, episodes, steps):
    env = get_env(name)
    obs, actions, next_obs, rewards, ended = recorded(env, episodes, steps)
    ours = np.array(env.reward(mx.array(obs), mx.array(actions), mx.array(next_obs)))
    np.testing.assert_allclose(ours, rewards, atol=1e-5)
    if env.termination is not None:
        assert ended.sum() == episodes  # every random inverted-pendulum episode falls within 100 steps
        np.testing.assert_array_equal(np.array(env.termination(mx.array(next_obs))), ended)
    else:
        assert not ended.any()


def test_half_cheetah_has_no_reward_copy():
    env = get_env("half-cheetah")
    assert not env.has_reward_copy and env.termination is None
    with pytest.raises(ValueError, match="the learned model predicts the reward"):
        env.reward(mx.zeros((1, 17)), mx.zeros((1, 6)), mx.zeros((1, 17)))


@pytest.mark.parametrize("name", MUJOCO_ENVS)
def test_starts_are_gymnasiums_reset_and_deterministic(name):
    env = get_env(name)
    gym_env = make_gym_env(env)
    for seed in (0, 5):
        obs, _ = gym_env.reset(seed=seed)
        np.testing.assert_allclose(np.array(env.reset(1, seed))[0], obs, atol=1e-6)
    np.testing.assert_array_equal(np.array(env.reset(6, seed=3)), np.array(env.reset(6, seed=3)))
    assert not np.array_equal(np.array(env.reset(6, seed=3)), np.array(env.reset(6, seed=4)))
    assert env.sample_states(np.random.default_rng(1), 3).shape == (3, env.state_dim)
    gym_env.close()


@pytest.mark.parametrize("name", MUJOCO_ENVS)
def test_a_state_put_in_from_its_observation_steps_as_the_original(name):
    """Exact for inverted-pendulum and half-cheetah; Reacher's fingertip-minus-target after a step is from
    MuJoCo's positions before its last substep's integration (Gymnasium reads ``xpos`` after ``mj_step``),
    so the observation put back, recomputed by ``mj_forward``, differs by ~2e-6."""
    tol = 1e-5 if name == "reacher" else 1e-9
    env = get_env(name)
    original, copy = make_gym_env(env), make_gym_env(env)
    original.reset(seed=1)
    copy.reset(seed=2)
    rng = np.random.default_rng(0)
    for _ in range(5):
        original.step(env.sample_actions(rng, 1)[0])
    set_gym_state(env, copy, gym_state(env, original))
    np.testing.assert_allclose(gym_state(env, copy), gym_state(env, original), atol=tol)
    action = env.sample_actions(rng, 1)[0]
    a, reward_a, *_ = original.step(action)
    b, reward_b, *_ = copy.step(action)
    np.testing.assert_allclose(b, a, atol=tol)
    np.testing.assert_allclose(reward_b, reward_a, atol=tol)


@pytest.mark.parametrize("name", MUJOCO_ENVS)
def test_the_full_physics_state_round_trips(name):
    env = get_env(name)
    gym_env = make_gym_env(env)
    gym_env.reset(seed=0)
    rng = np.random.default_rng(0)
    actions = env.sample_actions(rng, 4)
    saved = physics_state(env, gym_env)
    first = [gym_env.step(a)[:2] for a in actions]
    set_physics_state(env, gym_env, saved)
    np.testing.assert_array_equal(physics_state(env, gym_env), saved)
    again = [gym_env.step(a)[:2] for a in actions]
    for (obs_a, r_a), (obs_b, r_b) in zip(first, again):
        np.testing.assert_allclose(obs_b, obs_a, atol=1e-9)
        assert r_b == pytest.approx(r_a, abs=1e-9)
    with pytest.raises(ValueError, match="has no physics state"):
        physics_state(get_env("pendulum"), gym_env)


def test_the_runner_reads_the_physics_state():
    env = get_env("reacher")
    gym_env = make_gym_env(env)
    gym_env.reset(seed=4)
    size = len(physics_state(env, gym_env))
    ep = run_episodes(lambda s: np.zeros((len(s), 2), np.float32), env, np.zeros((2, size), np.float32), 3,
                      runner="gymnasium", seeds=[4, 5], set_starts=False, read="physics")
    assert ep.states.shape == (2, 4, size)
    np.testing.assert_allclose(ep.states[0, 0], physics_state(env, gym_env), atol=1e-6)


def test_the_runner_hands_the_policy_the_physics_state():
    env, seen = get_env("half-cheetah"), []
    gym_env = make_gym_env(env)
    gym_env.reset(seed=4)

    def policy(state):
        seen.append(state)
        return np.full((len(state), 6), 0.5, np.float32)

    ep = run_episodes(policy, env, env.benchmark_starts(2, 4), 3, runner="gymnasium", seeds=[4, 5], set_starts=False,
                      policy_read="physics")
    assert ep.states.shape == (2, 4, env.state_dim)  # observations recorded
    assert all(s.shape == (2, len(physics_state(env, gym_env))) and s.dtype == np.float64 for s in seen)
    np.testing.assert_array_equal(seen[0][0], physics_state(env, gym_env))
    gym_env.step(np.full(6, 0.5, np.float32))
    np.testing.assert_array_equal(seen[1][0], physics_state(env, gym_env))
    with pytest.raises(ValueError, match="policy_read='physics' needs the gymnasium runner"):
        run_episodes(policy, env, env.benchmark_starts(1, 4), 1, runner="mlx", policy_read="physics")


@pytest.mark.parametrize("name", ["inverted-pendulum", "reacher"])
def test_the_pd_controllers_beat_zero_and_random(name):
    env = get_env(name)
    rows = baselines(env, seed=0, episode_ids=range(3))
    assert list(rows) == ["random-policy", "zero", "pd"]
    returns = {row: run_episodes(policy, env, env.benchmark_starts(3, 0), env.steps, runner="gymnasium",
                                 seeds=np.arange(3), set_starts=False).returns for row, policy in rows.items()}
    assert returns["pd"].min() > max(returns["zero"].max(), returns["random-policy"].max())
    if name == "inverted-pendulum":
        assert np.all(returns["pd"] == 1000)


def test_mbrl_and_resume_on_a_mujoco_env(tmp_path):
    out, curve = str(tmp_path / "run"), str(tmp_path / "curve.json")
    tiny = ("--random-episodes", "2", "--eval-episodes", "1", "--samples", "16", "--horizon", "3", "--iterations", "1",
            "--first-train-steps", "10", "--train-steps", "10", "--ensemble", "1")
    result = invoke("mbrl", "--env", "inverted-pendulum", *tiny, "--rounds", "0", "--out", out)
    assert result.exit_code == 0, result.output
    assert re.search(r"References over 1 evaluation episodes: cem with the true dynamics \d+\.\d{3}", result.output)
    result = invoke("mbrl", "--env", "inverted-pendulum", "--rounds", "1", "--resume", "--out", out, "--json", curve)
    assert result.exit_code == 0, result.output
    assert "Episodes in Gymnasium's InvertedPendulum-v5" in result.output
    record = json.loads(open(curve).read())
    true = record["references"]["true_dynamics"]  # the same tiny CEM on MuJoCo's own physics, 1 episode
    assert len(true["returns"]) == 1 and true["mean_return"] >= 1
    assert [entry["round"] for entry in record["curve"]] == [0, 1]
    assert [t["round"] for t in record["timing"]] == [0, 1] and record["timing"][0]["collect_ms_per_step"] is None
    assert record["timing"][1]["eval_ms_per_step"] > 0 and set(record["timing"][1]["seconds"]) == {"collect", "train", "eval"}


def test_train_and_rollout_on_a_mujoco_env_run_in_gymnasium(tmp_path):
    result = invoke("train", "--env", "reacher", "--episodes", "4", "--steps", "10", "--epochs", "1", "--out", str(tmp_path / "m"))
    assert result.exit_code == 0, result.output
    assert "Held-out one-step MSE (20000 random-action transitions)" in result.output
    result = invoke("rollout", "--env", "reacher", "--model", str(tmp_path / "m"), "--steps", "3")  # the truth: Gymnasium's
    assert result.exit_code == 0, result.output
    assert result.output.count("| TRUE ") == 3 and "Max |error| over 3 steps" in result.output
    result = invoke("train", "--env", "reacher", "--runner", "mlx", "--out", str(tmp_path / "n"))
    assert result.exit_code != 0 and "reacher has no MLX copy" in result.output

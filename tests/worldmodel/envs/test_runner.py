"""The one episode runner (worldmodel.envs.runner), reset(n, seed), and each env module's defaults record."""

from __future__ import annotations

import dataclasses

import mlx.core as mx
import numpy as np
import pytest

from worldmodel import Transitions
from worldmodel.data import generate
from worldmodel.envs import MLX_ENV_NAMES, get_env
from worldmodel.envs.defaults import BenchmarkDefaults, EnvDefaults, MbrlBudget, PlanningDefaults, TrainingBudget
from worldmodel.envs.runner import random_policy, run_episodes
from worldmodel.envs.scores import SCORES
from worldmodel.recipe import planner_for
from tests.conftest import need


def open_loop_policy(actions: np.ndarray):
    """A policy that plays ``actions [E, T, A]`` step by step, whatever the state."""
    step = iter(range(actions.shape[1]))
    return lambda state: actions[:, next(step)]


@pytest.mark.parametrize("name", ["cartpole", "mountaincar", "pendulum"])
def test_mlx_and_gymnasium_runners_give_the_same_episode_for_the_same_actions(name):
    """The same starts and actions: the MLX copy and Gymnasium's own env agree (float32 vs float64 rounding),
    down to which episodes terminate and when."""
    need("gymnasium")
    env = get_env(name)
    steps, starts = 40, env.benchmark_starts(4, seed=2)
    rng = np.random.default_rng(3)
    actions = np.stack([env.sample_actions(rng, 4) for _ in range(steps)], axis=1)
    copy = run_episodes(open_loop_policy(actions), env, starts, steps)
    gym = run_episodes(open_loop_policy(actions), env, starts, steps, runner="gymnasium", seeds=np.arange(4), read="state")
    np.testing.assert_array_equal(copy.lengths, gym.lengths)
    np.testing.assert_array_equal(copy.terminated, gym.terminated)
    np.testing.assert_array_equal(copy.actions, gym.actions)
    np.testing.assert_allclose(copy.states, gym.states, atol=1e-4)
    np.testing.assert_allclose(copy.rewards, gym.rewards, atol=1e-3)
    if name == "cartpole":  # random pushes topple the pole: the episodes' ends are part of the comparison
        assert copy.terminated.any() and (copy.lengths < steps).any()


def test_an_ended_episode_is_frozen_and_padded():
    env = get_env("cartpole")
    left = np.tile(np.array([1.0, 0.0], np.float32), (2, 100, 1))
    ep = run_episodes(open_loop_policy(left), env, env.benchmark_starts(2), 100)
    assert ep.terminated.all() and (ep.lengths < 100).all()
    for i, length in enumerate(ep.lengths):
        np.testing.assert_array_equal(ep.states[i, length:], np.repeat(ep.states[i, length : length + 1], 101 - length, 0))
        assert not ep.actions[i, length:].any() and not ep.rewards[i, length:].any()
        assert ep.returns[i] == length  # CartPole rewards every step, the terminating one too
    assert ep.next_states is None


def test_random_policy_collection_is_the_old_generate():
    """generate() is the runner with a random policy; its output is pinned to what b765683's generate() gave."""
    particle = generate(get_env("particle"), 3, 4, seed=0)
    np.testing.assert_array_equal(particle.states[:4], np.array(
        [[0.4108850657939911, -0.9669447541236877], [-0.690639853477478, 0.62654048204422],
         [-1.3770794868469238, 0.8255111575126648], [-0.556059718132019, -0.9669447541236877]], np.float32))
    np.testing.assert_array_equal(particle.actions[:4], [[0, 1, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1]])
    np.testing.assert_array_equal(particle.rewards[-3:], [-1.5, -1.5, -1.5])
    cartpole = generate(get_env("cartpole"), 4, 40, seed=1)  # terminating rows restart from new draws
    assert float(cartpole.states.astype(np.float64).sum()) == 11.549644536571577
    assert float(cartpole.next_states.astype(np.float64).sum()) == 12.219704108312726
    assert cartpole.actions[:, 1].sum() == 82.0
    np.testing.assert_array_equal(cartpole.next_states[-1], np.array(
        [-0.7169591188430786, -0.48199886083602905, 0.06379301100969315, -0.14195087552070618], np.float32))


def test_gymnasium_collection_is_the_old_generate():
    need("gymnasium")
    car = generate(get_env("mountaincar"), 2, 3, seed=5, runner="gymnasium")
    np.testing.assert_array_equal(car.next_states, np.array(
        [[0.28894445300102234, 0.03993920609354973], [-0.3044622838497162, -0.032048288732767105],
         [0.3269909620285034, 0.038046516478061676], [-0.3394024074077606, -0.03494013473391533],
         [0.36229321360588074, 0.03530225530266762], [-0.37415724992752075, -0.03475483879446983]], np.float32))
    np.testing.assert_array_equal(car.actions[:, 0], np.array(
        [-0.8921386003494263, -0.23326224088668823, -0.18305358290672302, -0.9094496369361877,
         -0.9024845957756042, 0.9983522295951843], np.float32))


def test_transitions_of_episodes_in_either_order():
    env = get_env("particle")
    ep = run_episodes(random_policy(env, [np.random.default_rng(i) for i in range(3)]), env, env.reset(3, seed=1), 5)
    by_episode, by_step = Transitions.from_episodes(ep), Transitions.from_episodes(ep, step_major=True)
    assert len(by_episode) == len(by_step) == 15
    np.testing.assert_array_equal(by_episode.states[:5], ep.states[0, :5])
    np.testing.assert_array_equal(by_step.states[:3], ep.states[:, 0])
    np.testing.assert_array_equal(by_step.next_states[3:6], ep.states[:, 2])


def test_runner_rejects_bad_input():
    env = get_env("particle")
    with pytest.raises(ValueError, match="unknown runner 'gym'; choose from gymnasium, mlx"):
        run_episodes(lambda s: s, env, env.reset(1), 2, runner="gym")
    with pytest.raises(ValueError, match=r"a policy returned actions of shape \(1, 2\)"):
        run_episodes(lambda s: s, env, env.reset(1), 2)


@pytest.mark.parametrize("name", MLX_ENV_NAMES)
def test_reset_is_deterministic_in_the_box(name):
    env = get_env(name)
    a, b, c = env.reset(50, seed=7), env.reset(50, seed=7), env.reset(50, seed=8)
    assert a.shape == (50, env.state_dim) and a.dtype == mx.float32
    np.testing.assert_array_equal(np.array(a), np.array(b))
    assert not np.array_equal(np.array(a), np.array(c))
    assert np.all(np.array(a) >= np.array(env.start_low, np.float32)) and np.all(np.array(a) <= np.array(env.start_high, np.float32))
    with pytest.raises(ValueError, match="reset needs num >= 1, got 0"):
        env.reset(0)


@pytest.mark.parametrize("name", MLX_ENV_NAMES)
def test_each_env_module_has_a_complete_defaults_record(name):
    env = get_env(name)
    defaults = env.defaults
    assert isinstance(defaults, EnvDefaults)
    assert dataclasses.is_dataclass(defaults) and defaults.__dataclass_params__.frozen
    assert isinstance(defaults.training, TrainingBudget) and isinstance(defaults.planning, PlanningDefaults)
    assert isinstance(defaults.mbrl, MbrlBudget) and isinstance(defaults.benchmark, BenchmarkDefaults)
    for record in (defaults.training, defaults.planning, defaults.mbrl, defaults.benchmark):
        assert all(getattr(record, f.name) is not dataclasses.MISSING for f in dataclasses.fields(record))
    assert defaults.planning.horizon >= 1 and defaults.planning.samples >= 1
    assert defaults.benchmark.score in SCORES and defaults.benchmark.controller_name
    planner = planner_for("cem", env, env)  # the planning options fit a planner
    assert planner.horizon == defaults.planning.horizon and planner.samples == defaults.planning.samples
    starts = env.benchmark_starts(3)
    actions = defaults.benchmark.controller(env, starts)
    assert actions.shape == (3, env.action_space.dim) and actions.dtype == np.float32
    ep = run_episodes(lambda s: defaults.benchmark.controller(env, s), env, starts, 3)
    assert defaults.benchmark.success(env, ep.states, ep.terminated).shape == (3,)
    if defaults.planning.demo_start is not None:
        assert len(defaults.planning.demo_start) == env.state_dim
    with pytest.raises(dataclasses.FrozenInstanceError):
        defaults.planning = None


def test_only_the_discrete_particle_knows_its_optimum():
    known = {name for name in MLX_ENV_NAMES if get_env(name).defaults.benchmark.optimum is not None}
    assert known == {"particle"}
    assert get_env("particle", continuous=True).defaults.benchmark.optimum is None
    with pytest.raises(ValueError, match="unknown score 'ratio'"):
        BenchmarkDefaults(score="ratio")

"""The textbook variants by name (``cem-classic``, ``mppi-classic``) and MPPI's scale-free temperature (``normalize``)."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest

import planners
from planners import Box
from planners.cem import CEM, ClassicCEM
from planners.mppi import MPPI, ClassicMPPI, spread_normalized
from worldmodel.envs import ParticleEnv

SMALL = dict(horizon=6, samples=64, iterations=3, seed=2)
STARTS = mx.array([[1.0, 0.0], [-1.5, -1.0], [0.3, 0.5]])


def same_plans(a, b, states=STARTS, calls=2) -> bool:
    for _ in range(calls):  # the warm-started second call too
        pa, pb = a.optimize(states), b.optimize(states)
        if not (np.array_equal(np.array(pa.actions), np.array(pb.actions))
                and np.array_equal(np.array(pa.expected_return), np.array(pb.expected_return))):
            return False
    return True


@pytest.mark.parametrize("continuous", [False, True])
def test_cem_classic_is_cem_with_white_noise_returning_its_mean(continuous):
    env = ParticleEnv(continuous=continuous)
    classic = planners.make_planner("cem-classic", env, env.action_space, **SMALL)
    assert isinstance(classic, ClassicCEM) and classic.distribution.basis is None and not classic.keep_best
    assert classic.momentum == 0.1 and classic.num_kept == 0 and not classic.shift_elites
    spelled_out = CEM(env, env.action_space, noise_beta=0.0, keep_best=False, **SMALL)
    assert same_plans(classic, spelled_out)
    assert not same_plans(planners.make_planner("cem-classic", env, env.action_space, **SMALL),
                          planners.make_planner("cem", env, env.action_space, **SMALL))


@pytest.mark.parametrize("continuous", [False, True])
def test_mppi_classic_is_mppi_with_white_noise_no_smoothing_returning_its_mean(continuous):
    env = ParticleEnv(continuous=continuous)
    classic = planners.make_planner("mppi-classic", env, env.action_space, **SMALL)
    assert isinstance(classic, ClassicMPPI) and classic.distribution.basis is None
    assert classic.momentum == 0.0 and not classic.keep_best
    assert same_plans(classic, MPPI(env, env.action_space, noise_beta=0.0, momentum=0.0, keep_best=False, **SMALL))
    # the textbook plan is the final mean: its return may be below the best sequence the default keeps
    mean_only, best_kept = (MPPI(env, env.action_space, keep_best=k, **SMALL) for k in (False, True))
    a, b = mean_only.optimize(STARTS), best_kept.optimize(STARTS)
    assert np.all(np.array(b.expected_return) >= np.array(a.expected_return))


def test_the_classic_names_are_listed_and_their_options_can_be_changed():
    assert {"cem-classic", "mppi-classic"} <= set(planners.PLANNERS)
    env = ParticleEnv()
    assert planners.make_planner("cem-classic", env, env.action_space, noise_beta=2.0).distribution.basis is not None
    assert planners.make_planner("mppi-classic", env, env.action_space, iterations=1).iterations == 1


def scaled(scale):
    """The continuous particle with its rewards times ``scale``."""
    env = ParticleEnv(continuous=True)

    def dynamics(state, action):
        next_state, reward = env(state, action)
        return next_state, scale * reward

    return dynamics


def test_a_normalized_temperature_gives_the_same_plans_whatever_the_rewards_units():
    space = Box(-1.0, 1.0, shape=(1,))
    # 1024: a power of two, so the scaled returns are exact and the plans must agree to the bit
    unit, big = (MPPI(scaled(s), space, normalize=True, temperature=0.3, **SMALL) for s in (1.0, 1024.0))
    for _ in range(2):
        a, b = unit.optimize(STARTS), big.optimize(STARTS)
        np.testing.assert_array_equal(np.array(a.actions), np.array(b.actions))
        np.testing.assert_array_equal(1024.0 * np.array(a.expected_return), np.array(b.expected_return))
    # a temperature in return units does not carry over: the same value weighs the big rewards far more greedily
    assert not same_plans(MPPI(scaled(1.0), space, **SMALL), MPPI(scaled(1024.0), space, **SMALL), calls=1)


def test_spread_normalized_leaves_non_finite_returns_out():
    out = np.array(spread_normalized(mx.array([[1.0, 2.0, 3.0, -np.inf], [5.0, 5.0, 5.0, 5.0]])))
    np.testing.assert_allclose(out[0, :3], [-2 / np.sqrt(2 / 3), -1 / np.sqrt(2 / 3), 0.0], rtol=1e-6)
    assert out[0, 3] == -np.inf
    np.testing.assert_array_equal(out[1], np.zeros(4))  # ties: equal weights


def test_normalize_default_is_off_and_bad_values_are_refused():
    env = ParticleEnv()
    assert MPPI(env, env.action_space).normalize is False
    with pytest.raises(ValueError, match="normalize must be True or False"):
        MPPI(env, env.action_space, normalize="yes")

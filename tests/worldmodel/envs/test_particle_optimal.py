"""worldmodel.envs.particle_optimal against brute force over all push sequences through the real ParticleEnv."""

from __future__ import annotations

import itertools

import mlx.core as mx
import numpy as np
import pytest

from worldmodel import ParticleEnv, one_hot_pushes
from worldmodel.envs.particle_optimal import optimal_plan, optimal_returns

ENV = ParticleEnv()
STARTS = np.array(
    [
        [0.0, 0.0],  # centre
        [1.5, 1.0],  # right wall, moving outward at full speed
        [-1.5, -1.0],  # left wall, moving outward at full speed
        [0.3, 1.0],  # at the speed limit
        [-0.7, -1.0],
        [1.5, -0.35],  # at a wall, moving inward
    ],
    dtype=np.float32,
)


def _all_starts() -> np.ndarray:
    """``STARTS`` plus five random states, ``[11, 2]`` float32."""
    return np.concatenate([STARTS, ParticleEnv().sample_states(np.random.default_rng(1), 5)])


def _rollout(env: ParticleEnv, starts: np.ndarray, pushes: np.ndarray) -> np.ndarray:
    """Returns ``[E, S]`` of push sequences ``pushes [S, T]`` from ``starts [E, 2]``: one batched env call per step."""
    num_seq, steps = pushes.shape
    state = mx.array(np.repeat(starts, num_seq, axis=0))  # [E * S, 2], start-major
    actions = one_hot_pushes(np.tile(pushes, (len(starts), 1)))  # [E * S, T, 3]
    total = np.zeros(len(starts) * num_seq)
    for t in range(steps):
        state, reward = env(state, actions[:, t])
        total += np.array(reward, dtype=np.float64)
    return total.reshape(len(starts), num_seq)


@pytest.mark.parametrize("steps", [1, 2, 4, 7])
def test_matches_brute_force(steps):
    env = ParticleEnv()
    starts = _all_starts()
    pushes = np.array(list(itertools.product((-1, 0, 1), repeat=steps)))  # [3^T, T]
    brute = _rollout(env, starts, pushes).max(axis=1)
    np.testing.assert_allclose(optimal_returns(ENV, starts, steps), brute, rtol=0, atol=1e-5)


def test_other_env_parameters():
    params = {"accel": 0.25, "x_limit": 1.0, "v_limit": 0.6}
    env = ParticleEnv(**params)
    starts = np.array([[0.9, 0.6], [-0.2, 0.1], [0.0, -0.6]], dtype=np.float32)
    pushes = np.array(list(itertools.product((-1, 0, 1), repeat=6)))
    brute = _rollout(env, starts, pushes).max(axis=1)
    np.testing.assert_allclose(optimal_returns(env, starts, 6), brute, rtol=0, atol=1e-5)


def test_batch_equals_single_starts():
    starts = np.concatenate([_all_starts(), STARTS[:2]])  # repeated starts must not interfere
    batched = optimal_returns(ENV, starts, 12)
    single = np.array([optimal_returns(ENV, s[None], 12)[0] for s in starts])
    np.testing.assert_allclose(batched, single, rtol=0, atol=1e-6)


def test_hand_computed_one_step():
    # From (0.05, 0): push -1 gives v' = -0.1f, x' = 0.05f - 0.1f = -0.05f exactly (0.1f = 2 * 0.05f),
    # push 0 gives x' = 0.05f, push +1 gives x' = 0.15f: the best return is -0.05f, a tie of 0 and -1.
    best = -float(np.float32(0.05))
    assert optimal_returns(ENV, [[0.05, 0.0]], 1)[0] == best
    ret, pushes = optimal_plan(ENV, [0.05, 0.0], 1)
    assert ret == best
    assert pushes.tolist() == [0]  # ties go to the push 0


def test_hand_computed_two_steps():
    # From (0.3, 0): pushes (-1, -1) give x = 0.3 - 0.1 = 0.2, then v = -0.2, x = 0.0.
    x1 = np.float32(0.3) + np.float32(-0.1)
    x2 = x1 + np.float32(-0.1) + np.float32(-0.1)  # v2 = -0.1f - 0.1f = -0.2f exactly
    assert abs(x2) < 1e-7
    best = -float(abs(x1)) - float(abs(x2))
    assert optimal_returns(ENV, [[0.3, 0.0]], 2)[0] == best
    assert optimal_plan(ENV, [0.3, 0.0], 2)[1].tolist() == [-1, -1]


@pytest.mark.parametrize("start", [(1.5, 1.0), (-1.5, -1.0)])
def test_plan_replays_to_its_return(start):
    ret, pushes = optimal_plan(ENV, start, 50)
    assert pushes.shape == (50,) and set(pushes.tolist()) <= {-1, 0, 1}
    replayed = _rollout(ParticleEnv(), np.array([start], dtype=np.float32), pushes[None])[0, 0]
    assert replayed == pytest.approx(ret, abs=1e-4)
    assert ret == pytest.approx(optimal_returns(ENV, [start], 50)[0], abs=1e-9)
    # symmetric starts have the same optimum
    assert ret == pytest.approx(optimal_returns(ENV, [(-start[0], -start[1])], 50)[0], abs=1e-4)


def test_plan_is_deterministic_and_prefers_zero():
    # at rest at the centre, doing nothing is optimal: every step is a tie broken to 0
    ret, pushes = optimal_plan(ENV, [0.0, 0.0], 10)
    assert ret == 0.0
    assert pushes.tolist() == [0] * 10
    np.testing.assert_array_equal(optimal_plan(ENV, [0.7, -0.2], 20)[1], optimal_plan(ENV, [0.7, -0.2], 20)[1])


def test_empty_batch():
    assert optimal_returns(ENV, np.zeros((0, 2)), 5).shape == (0,)


@pytest.mark.parametrize(
    "starts, steps, match",
    [
        ([0.0, 0.0], 3, r"starts must be an \[E, 2\] array"),
        ([[0.0, 0.0, 0.0]], 3, r"starts must be an \[E, 2\] array"),
        ([[0.0, np.nan]], 3, "starts must be finite"),
        ([[np.inf, 0.0]], 3, "starts must be finite"),
        ([[0.0, 0.0]], 0, "steps must be an integer >= 1, got 0"),
        ([[0.0, 0.0]], 2.5, "steps must be an integer >= 1, got 2.5"),
        ([[0.0, 0.0]], True, "steps must be an integer >= 1, got True"),
    ],
)
def test_returns_validation(starts, steps, match):
    with pytest.raises(ValueError, match=match):
        optimal_returns(ENV, starts, steps)


def test_plan_and_parameter_validation():
    with pytest.raises(ValueError, match=r"start must be one state \(x, v\) of shape \(2,\)"):
        optimal_plan(ENV, [[0.0, 0.0]], 3)
    with pytest.raises(ValueError, match="starts must be finite"):
        optimal_plan(ENV, [np.nan, 0.0], 3)
    with pytest.raises(ValueError, match="steps must be an integer >= 1, got -1"):
        optimal_plan(ENV, [0.0, 0.0], -1)
    with pytest.raises(ValueError, match="the exact optimum needs the discrete particle"):
        optimal_returns(ParticleEnv(continuous=True), [[0.0, 0.0]], 3)


def test_the_env_solves_with_its_own_constants():
    """The optimum reads the env's constants: a particle with other ones gets other optima."""
    starts = np.array([[0.9, 0.3], [-0.4, 0.0]], dtype=np.float32)
    strong = ParticleEnv(accel=0.2)
    optimum = strong.defaults.benchmark.optimum
    np.testing.assert_array_equal(optimum.returns(strong, starts, 8), optimal_returns(strong, starts, 8))
    pushes = np.array(list(itertools.product((-1, 0, 1), repeat=8)))
    np.testing.assert_allclose(optimum.returns(strong, starts, 8), _rollout(strong, starts, pushes).max(axis=1), atol=1e-5)
    assert np.all(optimum.returns(strong, starts, 8) > optimum.returns(ENV, starts, 8) + 0.05)
    ret, actions = optimum.plan(strong, starts[0], 8)
    assert actions.shape == (8, 3) and ret == pytest.approx(optimum.returns(strong, starts[:1], 8)[0], abs=1e-9)
    assert ParticleEnv(continuous=True).defaults.benchmark.optimum is None and ParticleEnv().defaults.benchmark.optimum is not None


def test_starts_are_solved_in_chunks_with_the_same_results(monkeypatch):
    from worldmodel.envs import particle_optimal

    starts = _all_starts()
    whole = optimal_returns(ENV, starts, 6)
    monkeypatch.setattr(particle_optimal, "CHUNK", 4)
    np.testing.assert_array_equal(optimal_returns(ENV, starts, 6), whole)

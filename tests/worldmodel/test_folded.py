"""The folded world model computes the WorldModel's function with fewer operations."""

import mlx.core as mx
import numpy as np
import pytest
from mlx.utils import tree_flatten

import planners
from planners.runtime.streams import CHUNK_ROWS, in_chunks
from worldmodel import FoldedWorldModel, ParticleEnv, WorldModel
from tests.conftest import with_statistics


def trained_like(hidden=(128, 128), seed=0):
    """A WorldModel with random weights and non-trivial normalization statistics."""
    mx.random.seed(seed)
    return with_statistics(WorldModel(hidden=hidden), seed)


def batch(rows, seed=1, soft=False):
    rng = np.random.default_rng(seed)
    state = mx.array(rng.uniform([-1.5, -1.0], [1.5, 1.0], size=(rows, 2)).astype(np.float32))
    if soft:
        action = mx.softmax(mx.array(rng.normal(size=(rows, 3)).astype(np.float32)), axis=-1)
    else:
        action = mx.array(np.eye(3, dtype=np.float32)[rng.integers(0, 3, rows)])
    return state, action


@pytest.mark.parametrize("hidden", [(128, 128), (16,), (32, 24, 8)])
@pytest.mark.parametrize("soft", [False, True])
def test_folded_matches_the_world_model(hidden, soft):
    model = trained_like(hidden)
    folded = model.folded()
    state, action = batch(300, soft=soft)
    (n1, r1), (n2, r2) = model(state, action), folded(state, action)
    assert n2.shape == (300, 2) and r2.shape == (300,) and n2.dtype == r2.dtype == mx.float32
    np.testing.assert_allclose(np.array(n2), np.array(n1), rtol=1e-5, atol=2e-6)
    np.testing.assert_allclose(np.array(r2), np.array(r1), rtol=1e-5, atol=2e-6)


def test_large_batches_in_chunks_are_the_same():
    model = trained_like()
    state, action = batch(2 * CHUNK_ROWS + 5)
    n1, r1 = model(state, action)
    n2, r2 = in_chunks(model.folded(), state, action)
    np.testing.assert_allclose(np.array(n2), np.array(n1), rtol=1e-5, atol=2e-6)
    np.testing.assert_allclose(np.array(r2), np.array(r1), rtol=1e-5, atol=2e-6)


def test_folded_is_a_frozen_snapshot():
    model = trained_like()
    folded = model.folded()
    assert isinstance(folded, FoldedWorldModel)
    assert tree_flatten(folded.trainable_parameters()) == []
    assert (folded.state_dim, folded.action_dim) == (2, 3)
    assert folded.flops_per_transition() == model.flops_per_transition()
    state, action = batch(10)
    before = np.array(folded(state, action)[0])
    model.trunk[0].weight = model.trunk[0].weight * 2.0  # later training does not reach the snapshot
    assert np.array_equal(np.array(folded(state, action)[0]), before)


def test_planning_with_the_folded_model_picks_the_same_actions():
    model = trained_like()
    env = ParticleEnv()
    state = env.reset(3, seed=4)
    actions = []
    for dynamics in (model, model.folded()):
        cem = planners.CEM(dynamics, env.action_space, horizon=6, samples=200, iterations=2, seed=1)
        actions.append(np.array(cem.optimize(state).actions))
    assert np.array_equal(actions[0], actions[1])

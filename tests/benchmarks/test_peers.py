"""Speed-comparison peers: the table's columns, and the JAX worker's correctness (skipped without jax)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import speed_compare
from benchmarks.peers import common, mlp_weights
from tests.conftest import need, requires

needs_jax = requires("jax")


def test_jax_worker_is_a_default_column_with_a_ratio_against_wmplan():
    assert speed_compare.JAX.needs == ("jax",) and "jax" in speed_compare.DEFAULT_WORKERS
    case = common.CASES[2]
    runs = {
        "jax": {"results": [{"key": case.key, "median_ms": 3.0, "gflops": 10.0}], "peak": {"gflops": 100.0}},
        "wmplan": {"results": [{"key": case.key, "median_ms": 2.0, "gflops": 15.0}], "peak": {"gflops": 50.0}},
    }
    (header, rows), _ = speed_compare.build_tables([case], runs, ["jax", "wmplan"])
    assert header == ["planner (N, H)", "JAX ms", "wmplan (MLX) ms", "JAX / wmplan"]
    assert rows[0][1:] == ["3.0", "2.0", "1.50"]  # > 1: wmplan is faster


@pytest.fixture(scope="module")
def jax_setup():
    jax = need("jax")
    from benchmarks.peers import jax_planners

    params = mlp_weights.make_weights()
    return jax, jax_planners, params, jax_planners.load_params(params)


@needs_jax
def test_jax_mlp_matches_the_float64_numpy_forward(jax_setup):
    jax, jp, params, jparams = jax_setup
    next_state, reward = jax.jit(jp.mlp)(jparams, params["probe_state"], params["probe_action"])
    assert next_state.dtype == np.float32 and next_state.shape == (mlp_weights.PROBE_ROWS, 2)
    assert mlp_weights.probe_error(params, np.asarray(next_state), np.asarray(reward)) < 1e-5


def _numpy_returns(params, state, actions):
    """float64 rollout of ``actions [H, N, A]`` from ``state [S]``: summed rewards ``[N]``."""
    s = np.broadcast_to(np.asarray(state, np.float64), (actions.shape[1], mlp_weights.STATE_DIM))
    total = np.zeros(actions.shape[1])
    for a in actions:
        s, r = mlp_weights.reference_forward(params, s, a)
        total += r
    return total


def _noise(jax, key, iterations, shape):
    """The normal draws a jax_planners call with ``key`` makes, iteration by iteration."""
    keys = jax.random.split(key, iterations + 1)
    return [np.asarray(jax.random.normal(keys[1 + i], shape), np.float64) for i in range(iterations)]


@needs_jax
@pytest.mark.parametrize("loop", ["scan", "unrolled"])
def test_jax_cem_is_torch_planners_cem_on_the_same_noise(jax_setup, loop):
    """torch_planners.plan_cem's update (clip, top-K, mean and population std), in float64 numpy."""
    jax, jp, params, jparams = jax_setup
    n, horizon, iterations = 64, 4, 3
    key = jax.random.key(7)
    mean, elite_return, next_key = jp.make_cem(n, horizon, iterations=iterations, loop=loop)(
        jparams, np.array([common.START_STATE], np.float32), key
    )
    assert mean.shape == (horizon, 1) and np.all(np.isfinite(mean)) and np.isfinite(elite_return)
    assert np.all(np.abs(mean) <= 1.0)
    assert not np.array_equal(jax.random.key_data(next_key), jax.random.key_data(key))

    k = max(1, round(common.CEM_ELITE_FRACTION * n))
    ref_mean = np.zeros((horizon, 1, 1))
    ref_std = np.full((horizon, 1, 1), common.CEM_INIT_STD * (common.ACTION_HIGH - common.ACTION_LOW) / 2)
    for noise in _noise(jax, key, iterations, (horizon, n, 1)):
        actions = np.clip(noise * ref_std + ref_mean, common.ACTION_LOW, common.ACTION_HIGH)
        returns = _numpy_returns(params, common.START_STATE, actions)
        top = np.argsort(-returns)[:k]
        elites = actions[:, top]
        ref_mean, ref_std = elites.mean(axis=1, keepdims=True), elites.std(axis=1, keepdims=True)
        ref_return = returns[top].mean()
    np.testing.assert_allclose(np.asarray(mean), ref_mean[:, 0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(float(elite_return), ref_return, rtol=1e-4, atol=1e-5)


@needs_jax
def test_jax_mppi_is_torch_planners_mppi_on_the_same_noise(jax_setup):
    """torch_planners.plan_mppi's update (softmax of returns / temperature, weighted mean), in float64 numpy."""
    jax, jp, params, jparams = jax_setup
    n, horizon = 64, 4
    key = jax.random.key(3)
    mean, expected, _ = jp.make_mppi(n, horizon)(jparams, np.array([common.START_STATE], np.float32), key)
    assert mean.shape == (horizon, 1) and np.all(np.isfinite(mean))

    (noise,) = _noise(jax, key, common.MPPI_ITERATIONS, (horizon, n, 1))
    actions = np.clip(noise * common.MPPI_NOISE_STD, common.ACTION_LOW, common.ACTION_HIGH)
    returns = _numpy_returns(params, common.START_STATE, actions)
    logits = returns / common.MPPI_TEMPERATURE
    weights = np.exp(logits - logits.max())
    weights /= weights.sum()
    np.testing.assert_allclose(np.asarray(mean), np.einsum("n,hna->ha", weights, actions), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(float(expected), weights @ returns, rtol=1e-4, atol=1e-5)


@needs_jax
@pytest.mark.slow
def test_jax_worker_process_reports_a_checked_timing(tmp_path):
    weights = mlp_weights.save(tmp_path / "mlp.npz")
    mppi_small = str(common.CASES.index(common.Case("MPPI", 1000, 15, common.MPPI_ITERATIONS)))
    result = speed_compare.run_worker(speed_compare.JAX, weights, repeats=1, cases=mppi_small, timeout=300)
    assert "error" not in result, result
    assert result["framework"].startswith("jax ") and result["probe_error"] < 1e-5
    (case,) = result["results"]
    assert case["median_ms"] > 0 and case["compile_ms"] > 0 and np.isfinite(case["expected_return"])
    assert result["peak"]["gflops"] > 0

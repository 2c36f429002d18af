"""The frontier: grid values, dominance on hand-made points, one-state-per-call episodes, the exported model."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.frontier import (FrontierConfig, OneStatePerCall, dominance_ratios, fastest_reaching, grid_values,
                                 mark_dominated, report, run_frontier)
from benchmarks.peers.model_export import export_model, forward


def point(peer, planner, ms, ret, n=100):
    return {"peer": peer, "planner": planner, "horizon": 15, "samples": n, "iterations": 1, "ms_per_step": ms,
            "mean_return": ret, "std_return": 0.0, "returns": [ret]}


def test_grid_values_parse_and_refuse_bad_ones():
    assert grid_values("100, 300,100", "samples") == (100, 300)
    assert grid_values((5, 1), "iterations") == (5, 1)
    for bad in ("0", "a,2", "", "1,-3", "2.5"):
        with pytest.raises(ValueError, match="samples must be comma-separated positive integers"):
            grid_values(bad, "samples")


def test_config_checks_its_values_and_builds_the_env_grid():
    from worldmodel.envs import get_env

    env = get_env("pendulum")
    config = FrontierConfig(planners=("cem",), samples="50,200", iterations=(1, 3), horizons="10")
    assert config.grid(env) == [(10, 50, 1), (10, 50, 3), (10, 200, 1), (10, 200, 3)]
    default = FrontierConfig().grid(env)  # 0.1, 0.3, 1 x the env's 300 samples at its horizon 40
    assert [p[1] for p in default[::2]] == [30, 90, 300] and {p[0] for p in default} == {40}
    with pytest.raises(ValueError, match="horizons must be"):
        FrontierConfig(horizons="0")
    with pytest.raises(ValueError, match="peers must be among"):
        FrontierConfig(peers=("nope",))
    with pytest.raises(ValueError, match="unknown planner|planner"):
        FrontierConfig(planners=("nope",))


def test_dominated_points_are_those_a_faster_point_of_the_same_planner_beats():
    points = [point("wmplan", "cem", 1.0, -50.0), point("wmplan", "cem", 2.0, -40.0), point("wmplan", "cem", 3.0, -45.0),
              point("wmplan", "cem", 3.0, -40.0), point("wmplan", "mppi", 5.0, -60.0),
              point("jax", "cem", 0.5, -55.0), point("jax", "cem", 2.5, -30.0), point("jax", "cem", 4.0, -41.0)]
    mark_dominated(points)
    assert [p["dominated"] for p in points] == [False, False, True, True, False, False, False, True]
    # mppi's point is slower and worse than cem's, but only its own planner's points count
    assert [p["beaten"] for p in points] == [None] * 5 + [False, False, True]
    assert fastest_reaching(points, -45.0)["ms_per_step"] == 2.0 and fastest_reaching(points, -39.0) is None


def test_dominance_ratio_is_wmplan_time_to_reach_the_peers_best_over_the_peers_time():
    points = mark_dominated([point("wmplan", "cem", 1.0, -50.0), point("wmplan", "mppi", 2.0, -40.0),
                             point("jax", "cem", 4.0, -45.0), point("jax", "cem", 1.0, -60.0),
                             point("torch", "mppi", 1.0, -30.0)])
    jax, torch = dominance_ratios(points)
    assert (jax["best_return"], jax["peer_ms"], jax["wmplan_ms"], jax["ratio"]) == (-45.0, 4.0, 2.0, 0.5)
    assert jax["wmplan_point"].startswith("mppi")
    assert torch["wmplan_ms"] is None and torch["ratio"] is None  # no wmplan point reaches -30
    assert "not reached" in report({"config": {"episodes": 1, "steps": 1, "env": {"name": "x"}, "runner": "mlx"},
                                   "points": points, "ratios": [jax, torch]})


@pytest.fixture(scope="module")
def particle_model(tiny_model_path):
    from worldmodel.recipe import load_model_for

    model, _, env = load_model_for("particle", tiny_model_path)
    return env, model.folded()


def test_one_state_per_call_plays_the_batched_planners_episodes(particle_model):
    from worldmodel.envs.runner import planner_policy, run_episodes
    from worldmodel.recipe import planner_for

    env, model = particle_model
    starts = env.benchmark_starts(3, 0)
    make = lambda: planner_for("cem", model, env, samples=30, iterations=2, horizon=5)  # noqa: E731
    single = OneStatePerCall(make(), starts)
    one = run_episodes(single, env, starts, 6)
    batched = run_episodes(planner_policy(make(), np.arange(3)), env, starts, 6)
    np.testing.assert_allclose(one.returns, batched.returns, atol=1e-5)
    assert len(single.ms) == 3 * 6 and min(single.ms) > 0


def test_a_tiny_grid_runs_and_its_result_round_trips_through_json(particle_model, tmp_path):
    import json

    from benchmarks.frontier import plot_frontier
    from benchmarks.report import write_json
    from tests.conftest import need

    env, model = particle_model
    config = FrontierConfig(planners=("cem", "random-shooting"), samples="8,24", iterations="1", episodes=2, steps=4)
    lines = []
    result = run_frontier(config, env, model, env.benchmark_starts(2, 0), log=lines.append)
    assert len(result["points"]) == 4 and len(lines) == 4 and lines[0].startswith("[1/4] wmplan cem H=15 N=8 I=1")
    assert all(p["calls"] == 2 * 4 and len(p["returns"]) == 2 for p in result["points"])
    assert result["ratios"] == [] and result["config"]["grid"] == [(15, 8, 1), (15, 24, 1)]
    write_json(tmp_path / "f.json", result)
    loaded = json.loads((tmp_path / "f.json").read_text())
    assert report(loaded) == report(result) and loaded["points"] == result["points"]
    need("matplotlib")
    plot_frontier(loaded, str(tmp_path / "f.png"))
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"


def test_the_exported_model_is_the_folded_models_function(particle_model):
    import mlx.core as mx

    from worldmodel.envs import get_env
    from worldmodel.recipe import model_for

    cases = [particle_model]
    pendulum = get_env("pendulum")
    cases.append((pendulum, model_for(pendulum).folded()))  # angles as (cos, sin), reward from both states
    for env, model in cases:
        rng = np.random.default_rng(0)
        state = np.asarray(env.reset(16, 0), np.float32)
        action = rng.uniform(-1, 1, (16, model.action_dim)).astype(np.float32)
        expected = [np.array(x) for x in model(mx.array(state), mx.array(action))]
        arrays = export_model(model, env)
        arrays.update(angles=list(arrays["angles"]), reward_from_state=bool(arrays["reward_from_state"]))
        for got, want in zip(forward(arrays, state, action), expected):
            np.testing.assert_allclose(got, want, atol=1e-5)


def test_the_peers_continuous_push_is_the_one_hot_of_the_nearest_value():
    from benchmarks.peers.model_export import action_bounds, model_actions
    from worldmodel.envs import get_env

    bounds = action_bounds(get_env("particle").action_space)
    assert (bounds["low"], bounds["high"], list(bounds["values"])) == ([-1.0], [1.0], [-1.0, 0.0, 1.0])
    u = np.array([[-0.9], [-0.4], [0.2], [0.7]], np.float32)
    hot = model_actions(u, bounds["values"], lambda i: np.eye(3, dtype=np.float32)[i])
    assert hot.argmax(-1).tolist() == [0, 1, 1, 2]
    box = np.array([[0.3]], np.float32)
    assert model_actions(box, action_bounds(get_env("pendulum").action_space)["values"], None) is box


@pytest.mark.slow
@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_each_peer_framework_computes_the_exported_model(framework, tmp_path):
    from benchmarks.peers import closed_loop
    from benchmarks.peers.model_export import load_exported
    from tests.conftest import need
    from worldmodel.envs import get_env
    from worldmodel.recipe import model_for

    need(framework)
    env = get_env("pendulum")
    np.savez(tmp_path / "m.npz", **export_model(model_for(env).folded(), env))
    arrays = load_exported(tmp_path / "m.npz")
    state = np.asarray(env.reset(8, 1), np.float32)
    u = np.linspace(-2, 2, 8, dtype=np.float32)[:, None]
    want = forward(arrays, state, u)
    if framework == "torch":
        import torch

        got = closed_loop.torch_model(arrays)(torch.from_numpy(state), torch.from_numpy(u))
    else:
        params, step = closed_loop.jax_model(arrays)
        got = step(params, state, u)
    for g, w in zip(got, want):
        np.testing.assert_allclose(np.asarray(g), w, atol=1e-5)


def test_a_compiled_series_plays_the_same_episodes_as_the_plain_one(particle_model):
    """``cem+compile`` is CEM with ``compile=True``: its own series, the same plans (the compiled call is bit-identical)."""
    from benchmarks.frontier import planner_and_compile

    assert planner_and_compile("cem+compile") == ("cem", True) and planner_and_compile("mppi") == ("mppi", False)
    with pytest.raises(ValueError, match="unknown planner 'nope'"):
        FrontierConfig(planners=("nope+compile",))
    env, model = particle_model
    config = FrontierConfig(planners=("cem", "cem+compile"), samples="16", iterations="2", episodes=2, steps=5)
    plain, compiled = run_frontier(config, env, model, env.benchmark_starts(2, 0))["points"]
    assert (plain["planner"], compiled["planner"]) == ("cem", "cem+compile")
    np.testing.assert_allclose(compiled["returns"], plain["returns"], atol=1e-5)

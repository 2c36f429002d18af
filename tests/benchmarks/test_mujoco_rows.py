"""MuJoCo's own physics as the benchmark's and ``plan``'s true dynamics (skipped without the ``mujoco`` extra).

The true rows plan through ``env.true_dynamics()`` (a ``MujocoEvaluator``) from the full physics state
and run in Gymnasium: replaying a row's recorded actions in Gymnasium gives its returns.
"""

from __future__ import annotations

import numpy as np

from benchmarks.suite import BenchmarkConfig, prepare_run, run_benchmark
from tests.conftest import invoke, need
from worldmodel.envs import get_env
from worldmodel.envs.gymnasium import make_gym_env
from worldmodel.envs.mujoco_true import MujocoEvaluator

need("gymnasium")
need("mujoco")

STEPS, SAMPLES, HORIZON = 4, 16, 3


def replayed(env, actions: np.ndarray, seed: int) -> float:
    """Gymnasium's return of ``actions [T, A]`` from ``reset(seed=seed)``."""
    gym_env = make_gym_env(env)
    gym_env.reset(seed=seed)
    total = sum(float(gym_env.step(a)[1]) for a in actions)
    gym_env.close()
    return total


def test_the_true_rows_plan_with_mujoco_from_the_physics_state():
    env = get_env("reacher")
    assert isinstance(env.true_dynamics(), MujocoEvaluator) and env.true_dynamics() is env.true_dynamics()
    config = BenchmarkConfig(planners=("cem",), dynamics=("true",), episodes=2, steps=STEPS, samples=SAMPLES,
                             horizon=HORIZON, iterations=1, seed=3)
    env, model, starts = prepare_run(config, env, "reacher")
    record = run_benchmark(config, env, model, starts)
    rows = {(row["planner"], row["dynamics"]): row for row in record["rows"]}
    assert set(rows) == {("cem", "true"), ("reference", "true"), ("random-policy", None), ("zero", None), ("pd", None)}
    assert record["config"]["reference"] == {"planner": "cem", "dynamics": "true", "horizon": HORIZON, "samples": 2 * SAMPLES,
                                             "iterations": 2}
    cem = rows["cem", "true"]
    assert cem["ms_per_step"] > 0 and cem["imagined_per_s"] > 0 and cem["cost_ratio"] is not None
    assert rows["reference", "true"]["mean_return"] > rows["random-policy", None]["mean_return"]
    assert env._truth is None  # closed when the benchmark was done


def test_true_episodes_replay_in_gymnasium_and_plan_prints_steps():
    from benchmarks.suite import plan_episode

    env = get_env("reacher")
    config = BenchmarkConfig(planners=("cem",), dynamics=("true",), episodes=1, steps=STEPS, samples=SAMPLES,
                             horizon=HORIZON, iterations=1, seed=5).for_env(env)
    lines = []
    start = np.array(env.reset(1, 5))[0]
    ep = plan_episode("cem", "true", env.true_dynamics(), env, config, start, False, lines.append)
    assert ep.states.shape == (1, STEPS + 1, env.state_dim)  # observations recorded, as for the model rows
    np.testing.assert_allclose(ep.states[0, 0], start, atol=1e-6)
    assert abs(replayed(env, ep.actions[0], seed=5) - ep.returns[0]) < 1e-9
    result = invoke("plan", "--env", "reacher", "--dynamics", "true", "--steps", STEPS, "--samples", SAMPLES,
                    "--horizon", HORIZON, "--iterations", 1)
    assert result.exit_code == 0, result.output
    assert "cem planning with the true dynamics in Gymnasium's Reacher-v5" in result.output
    assert sum(line.startswith("t=") for line in result.output.splitlines()) == STEPS and "Return " in result.output
    env.close()

"""``--time-budget-ms`` in ``wmplan benchmark`` and ``wmplan plan``: rows and lines report planning time and iterations."""

from __future__ import annotations

import json

import pytest

from benchmarks.suite import BenchmarkConfig, reference_planner, run_benchmark
from tests.conftest import invoke, one_error_line
from worldmodel.envs import ParticleEnv, get_env


def test_benchmark_rows_report_iterations_and_planning_time_percentiles():
    env = ParticleEnv()
    starts = env.benchmark_starts(3, seed=0)
    config = BenchmarkConfig(planners=("cem",), dynamics=("true",), episodes=3, steps=4, horizon=4, samples=32,
                             iterations=500, time_budget_ms=30.0)
    rows = {r["planner"]: r for r in run_benchmark(config, env, None, starts)["rows"]}
    cem = rows["cem"]
    assert 1 <= cem["iterations_per_step"] < 500  # the deadline, not the 500 iterations, ended every call
    assert 0 < cem["step_ms_p50"] <= cem["step_ms_p99"]
    assert rows["zero"]["iterations_per_step"] is None and rows["optimal"]["step_ms_p99"] is None
    plain = run_benchmark(BenchmarkConfig(planners=("cem",), dynamics=("true",), episodes=3, steps=2, horizon=4,
                                          samples=32, iterations=3), env, None, starts)["rows"][0]
    assert plain["iterations_per_step"] == 3


def test_the_reference_row_plans_without_the_budget():
    env = get_env("pendulum")
    config = BenchmarkConfig(planners=("cem",), dynamics=("true",), time_budget_ms=5.0).for_env(env)
    assert reference_planner(env, env, config).time_budget_ms is None


def test_benchmark_cli_shows_the_columns_and_writes_them(tmp_path):
    out = tmp_path / "r.json"
    result = invoke("benchmark", "--dynamics", "true", "--planners", "cem", "--episodes", "2", "--steps", "3",
                    "--horizon", "4", "--samples", "16", "--iterations", "50", "--time-budget-ms", "20", "--json", out)
    assert result.exit_code == 0, result.output
    assert "p99 ms" in result.output and "iterations" in result.output
    data = json.loads(out.read_text())
    assert data["config"]["time_budget_ms"] == 20.0
    assert 1 <= data["rows"][0]["iterations_per_step"] <= 50


def test_plan_cli_prints_each_steps_time_and_iterations():
    result = invoke("plan", "--dynamics", "true", "--steps", "3", "--horizon", "4", "--samples", "16",
                    "--iterations", "40", "--time-budget-ms", "15")
    assert result.exit_code == 0, result.output
    steps = [line for line in result.output.splitlines() if line.startswith("t=")]
    assert len(steps) == 3 and all(" ms, " in line and " iteration" in line for line in steps)
    assert "iterations per step" in result.output.splitlines()[-1]


@pytest.mark.parametrize("command", ["plan", "benchmark"])
@pytest.mark.parametrize("value", ["0", "-1", "nan"])
def test_a_bad_budget_names_the_option(command, value):
    message = one_error_line(invoke(command, "--dynamics", "true", "--steps", "2", "--time-budget-ms", value), 2)
    assert message.startswith("Invalid value for '--time-budget-ms'"), message

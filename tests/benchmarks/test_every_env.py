"""The benchmark over every environment: runners (Gymnasium's env and the MLX copy), termination in the
closed loop, starts equal to Gymnasium's resets, per-env baselines and scores, and ``--env`` on the CLI."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from click.testing import CliRunner

import planners
from benchmarks.baselines import baselines
from benchmarks.baselines import controller_policy as controller
from benchmarks.report import footer, table
from benchmarks.starts import InitStatesError, read_init_states
from worldmodel.envs.gymnasium import gym_state, make_gym_env
from worldmodel.envs.runner import choose_runner, planner_policy, run_episodes
from worldmodel.envs.scores import SCORES, cost_ratio, gap, return_ratio
from benchmarks.suite import BenchmarkConfig, reference_planner, run_benchmark
from cli import main
from worldmodel.envs import MLX_ENV_NAMES, env_of_checkpoint, env_record, get_env
from tests.conftest import need

GYM_ENVS = [name for name in MLX_ENV_NAMES if get_env(name).gymnasium is not None]
TINY = ["--dynamics", "true", "--planners", "cem", "--episodes", "2", "--steps", "4", "--horizon", "3", "--samples", "8",
        "--iterations", "1"]


def invoke(*args):
    return CliRunner().invoke(main, list(args))


def one_error_line(result, code: int) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and (code == 2 or len(result.output.strip().splitlines()) == 1), result.output
    return errors[0][len("Error: "):]


def always(env, index):
    """A policy that always takes the ``Discrete`` action ``index``."""
    return lambda state: np.tile(np.eye(env.action_space.n, dtype=np.float32)[index], (len(state), 1))


# --- the closed loop ----------------------------------------------------------------------------


@pytest.mark.parametrize("runner", ["mlx", "gymnasium"])
def test_terminated_episodes_stop_earning_and_keep_their_state(runner):
    env = get_env("cartpole")
    starts = env.benchmark_starts(3, seed=0)
    ep = run_episodes(always(env, 0), env, starts, 100, runner=runner, seeds=np.arange(3), set_starts=False)
    assert np.all(ep.lengths < 100) and len(set(ep.lengths.tolist())) > 1 and ep.terminated.all()
    np.testing.assert_array_equal(ep.returns, ep.lengths)  # 1 a step, the terminating one included, none after
    for i, n in enumerate(ep.lengths):
        assert np.all(np.abs(ep.states[i, n, [0, 2]]) > 0) and not np.all(env.defaults.benchmark.success(env, ep.states[i : i + 1], ep.terminated[i : i + 1]))
        np.testing.assert_array_equal(ep.states[i, n:], np.repeat(ep.states[i, n : n + 1], 101 - n, axis=0))
        assert np.all(ep.actions[i, n:] == 0) and np.all(ep.actions[i, :n, 0] == 1) and np.all(ep.rewards[i, n:] == 0)


def test_the_runners_agree_on_gymnasiums_starts():
    """Gymnasium's runner from reset(seed=i) and the MLX copy from env.benchmark_starts take the same
    episodes: a deterministic controller earns the same returns in both (to float32 rounding)."""
    env = get_env("pendulum")
    starts = env.benchmark_starts(3, seed=7)
    gym = run_episodes(controller(env), env, starts, 30, runner="gymnasium", seeds=7 + np.arange(3), set_starts=False)
    copy = run_episodes(controller(env), env, starts, 30, runner="mlx")
    np.testing.assert_allclose(gym.states[:, 0], starts, atol=1e-6)
    np.testing.assert_allclose(gym.returns, copy.returns, rtol=1e-4)


@pytest.mark.parametrize("name", GYM_ENVS)
def test_benchmark_starts_are_gymnasiums_resets(name):
    env = get_env(name)
    gym_env = make_gym_env(env)
    starts = env.benchmark_starts(4, seed=11)
    for i, start in enumerate(starts):
        gym_env.reset(seed=11 + i)
        np.testing.assert_array_equal(start, gym_state(env, gym_env).astype(np.float32))
    gym_env.close()


def test_gymnasium_runner_plans_a_short_episode_and_sets_given_starts():
    env = get_env("mountaincar")
    planner = planners.CEM(env, env.action_space, horizon=3, samples=8, iterations=1, termination=env.termination)
    starts = np.array([[-0.5, 0.01], [0.44, 0.07]], np.float32)  # the second reaches the goal at once
    ep = run_episodes(planner_policy(planner), env, starts, 5, runner="gymnasium", seeds=[0, 1], set_starts=True)
    np.testing.assert_array_equal(ep.states[:, 0], starts)
    assert ep.lengths.tolist() == [5, 1] and ep.terminated.tolist() == [False, True]
    assert ep.returns[1] > 99 and ep.returns[0] < 0 and ep.plan_seconds > 0


def test_an_episode_is_planned_alike_alone_and_with_others():
    """Per-episode key streams and frozen terminated rows: episode 2's actions and return do not depend
    on the episodes planned beside it, nor on when they end."""
    env = get_env("cartpole")
    starts = env.benchmark_starts(3, seed=0)
    starts[0, 2:] = (0.2, 2.0)  # falls at once
    make = lambda: planners.CEM(env, env.action_space, horizon=5, samples=16, iterations=1, seed=3,  # noqa: E731
                                termination=env.termination)
    together = run_episodes(planner_policy(make(), np.arange(3)), env, starts, 30)
    alone = run_episodes(planner_policy(make(), np.array([2])), env, starts[2:], 30)
    assert together.lengths[0] < 30
    np.testing.assert_array_equal(together.actions[2], alone.actions[0])
    assert together.returns[2] == alone.returns[0]


def test_choose_runner(monkeypatch):
    assert choose_runner(get_env("particle")) == "mlx" and choose_runner(get_env("pendulum")) == "gymnasium"
    assert choose_runner(get_env("pendulum"), "mlx") == "mlx"
    with pytest.raises(ValueError, match="particle has no Gymnasium counterpart"):
        choose_runner(get_env("particle"), "gymnasium")
    monkeypatch.setitem(sys.modules, "gymnasium", None)  # import gymnasium now fails
    assert choose_runner(get_env("pendulum")) == "mlx"
    with pytest.raises(ValueError, match=r"needs gymnasium: pip install '\.\[gym\]' in the wmplan repository"):
        choose_runner(get_env("pendulum"), "gymnasium")


# --- baselines, scores, the suite ---------------------------------------------------------------

BASELINE_NAMES = {
    "particle": ["random-policy", "zero", "feedback"],
    "pendulum": ["random-policy", "zero", "swing-up"],
    "cartpole": ["random-policy", "pd"],  # pushes of -10 and +10: no zero action
    "acrobot": ["random-policy", "zero", "energy-pump"],
    "mountaincar": ["random-policy", "zero", "follow-velocity"],
}


@pytest.mark.parametrize("name", MLX_ENV_NAMES)
def test_baselines_per_env_run(name):
    env = get_env(name)
    rows = baselines(env, seed=0, episode_ids=[0, 1])
    assert list(rows) == BASELINE_NAMES[name]
    starts = env.benchmark_starts(2, seed=0)
    for policy in rows.values():
        ep = run_episodes(policy, env, starts, 3)
        assert ep.actions.shape == (2, 3, env.action_space.dim) and np.all(np.isfinite(ep.returns))


@pytest.mark.parametrize("name, steps", [("pendulum", 200), ("cartpole", 200), ("acrobot", 200), ("mountaincar", 200)])
def test_the_hand_written_controllers_do_their_job(name, steps):
    """Swing up and hold, balance, swing the tip over the line, climb the hill: in every episode."""
    env = get_env(name)
    starts = env.benchmark_starts(4, seed=0)
    ep = run_episodes(controller(env), env, starts, steps)
    assert env.defaults.benchmark.success(env, ep.states, ep.terminated).all(), ep.lengths
    randomly = run_episodes(baselines(env, 0, range(4))["random-policy"], env, starts, steps)
    assert ep.returns.mean() > randomly.returns.mean()


def test_scores():
    returns, reference = np.array([-2.0, -4.0]), np.array([-1.0, -2.0])
    assert cost_ratio(returns, reference) == 2.0 and cost_ratio(np.zeros(2), np.zeros(2)) == 1.0
    assert return_ratio(np.array([50.0, 100.0]), np.array([100.0, 200.0])) == 0.5
    assert return_ratio(returns, reference) is None
    assert gap(np.array([80.0, 90.0]), np.array([95.0, 95.0])) == 10.0
    assert {get_env(n).defaults.benchmark.score for n in MLX_ENV_NAMES} <= set(SCORES)


def test_reference_planner_doubles_the_budget():
    env = get_env("pendulum")
    planner = reference_planner(env, env, BenchmarkConfig().for_env(env))
    assert isinstance(planner, planners.CEM) and planner.horizon == env.defaults.planning.horizon
    assert planner.samples == 2 * env.defaults.planning.samples and planner.iterations == 2 * 3  # the env's 3 iterations
    small = reference_planner(env, env, BenchmarkConfig(samples=8, iterations=3, horizon=4).for_env(env))
    assert (small.samples, small.iterations, small.horizon) == (16, 6, 4)


def test_suite_on_cartpole_in_the_mlx_copy():
    env = get_env("cartpole")
    config = BenchmarkConfig(planners=("cem",), dynamics=("true",), episodes=2, steps=30, horizon=4, samples=8,
                             iterations=1, runner="mlx")
    result = run_benchmark(config, env, None, env.benchmark_starts(2, seed=0))
    rows = {r["planner"]: r for r in result["rows"]}
    assert list(rows) == ["cem", "random-policy", "pd", "reference"]
    assert rows["reference"]["dynamics"] == "true" and rows["reference"]["return_ratio"] == 1.0
    assert result["config"]["reference"] == {"planner": "cem", "dynamics": "true", "horizon": 4, "samples": 16, "iterations": 2}
    assert result["config"]["score"] == "return_ratio" and result["config"]["runner"] == "mlx"
    for row in rows.values():
        assert row["cost_ratio"] is None and row["gap"] is None
        assert row["return_ratio"] == pytest.approx(sum(row["returns"]) / sum(rows["reference"]["returns"]))
        assert row["returns"] == [float(n) for n in row["episode_lengths"]]  # 1 a step until the pole falls
    assert rows["pd"]["success_rate"] == 1.0 and rows["random-policy"]["success_rate"] == 0.0
    text = table(result)
    assert "return ratio" in text.splitlines()[0] and "length" in text.splitlines()[0] and "final |x|" not in text
    assert footer(result) == ("2 episodes x 30 steps in the MLX copy of CartPole-v1; "
                              "return ratio = sum of returns / sum of reference returns")


def test_env_of_checkpoint():
    assert env_of_checkpoint({}).config() == get_env("particle").config()  # no record: the seed's particle
    old = {"env": {"continuous": True, "accel": 0.2, "x_limit": 1.5, "v_limit": 1.0}}  # before envs had names
    assert env_of_checkpoint(old).config() == get_env("particle", continuous=True, accel=0.2).config()
    pendulum = env_of_checkpoint({"env": env_record(get_env("pendulum", g=9.81))})
    assert pendulum.name == "pendulum" and pendulum.g == 9.81
    with pytest.raises(ValueError, match="unknown environment 'nope'"):
        env_of_checkpoint({"env": {"name": "nope"}})
    with pytest.raises(ValueError, match="must be a JSON object"):
        env_of_checkpoint({"env": "pendulum"})


def test_init_states_use_the_envs_state_names(tmp_path):
    path = tmp_path / "starts.csv"
    path.write_text("theta,theta_dot\n3.1,0\n-0.5,1.5\n")
    np.testing.assert_allclose(read_init_states(str(path), get_env("pendulum")), [[3.1, 0.0], [-0.5, 1.5]], rtol=1e-6)
    with pytest.raises(InitStatesError, match="the header must be 'x,v' for particle"):
        read_init_states(str(path), get_env("particle"))
    path.write_text("theta,theta_dot\n0,9\n")
    with pytest.raises(InitStatesError, match=r"line 2: \(0.0, 9.0\) is outside the box \|theta\| <= 3.14159, \|theta_dot\| <= 8"):
        read_init_states(str(path), get_env("pendulum"))


# --- the CLI ------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["benchmark", "plan", "rollout", "speed"])
def test_unknown_env_is_one_line(command):
    message = one_error_line(invoke(command, "--env", "nope"), 2)
    assert message.startswith("Invalid value for '--env': unknown environment 'nope'; choose from particle, pendulum")


@pytest.mark.parametrize("command", [["benchmark", *TINY], ["plan", "--dynamics", "true", "--steps", "2"]])
def test_gymnasium_runner_for_the_particle_is_a_usage_error(command):
    message = one_error_line(invoke(*command, "--runner", "gymnasium"), 2)
    assert message == "Invalid value for '--runner': particle has no Gymnasium counterpart; use --runner mlx"


def test_gymnasium_runner_without_gymnasium_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "gymnasium", None)
    message = one_error_line(invoke("benchmark", "--env", "pendulum", *TINY, "--runner", "gymnasium"), 1)
    assert message == "--runner gymnasium: the gymnasium runner needs gymnasium: pip install '.[gym]' in the wmplan repository"


def test_benchmark_json_of_a_gymnasium_env(tmp_path):
    out = tmp_path / "r.json"
    result = invoke("benchmark", "--env", "pendulum", *TINY, "--seed", "3", "--json", str(out))
    assert result.exit_code == 0, result.output
    assert "Gymnasium's Pendulum-v1" in result.output and "cost ratio = sum of costs / sum of reference costs" in result.output
    data = json.loads(out.read_text())
    config = data["config"]
    assert config["env"] == {"name": "pendulum", "g": 10.0} and config["runner"] == "gymnasium"
    assert config["score"] == "cost_ratio" and config["gym_id"] == "Pendulum-v1" and config["gymnasium"]
    assert [r["planner"] for r in data["rows"]] == ["cem", "random-policy", "zero", "swing-up", "reference"]
    assert data["rows"][-1]["cost_ratio"] == 1.0 and all(len(r["returns"]) == 2 for r in data["rows"])
    mlx_out = tmp_path / "m.json"
    result = invoke("benchmark", "--env", "pendulum", *TINY, "--seed", "3", "--runner", "mlx", "--json", str(mlx_out))
    assert result.exit_code == 0, result.output
    copy = json.loads(mlx_out.read_text())
    assert copy["config"]["runner"] == "mlx" and "the MLX copy of Pendulum-v1" in result.output
    zero = lambda d: next(r for r in d["rows"] if r["planner"] == "zero")["returns"]  # noqa: E731
    np.testing.assert_allclose(zero(copy), zero(data), rtol=1e-4)  # same starts, same physics


@pytest.mark.parametrize("runner", ["mlx", "gymnasium"])
def test_benchmark_init_states_of_another_env(tmp_path, runner):
    path = tmp_path / "s.csv"
    path.write_text("x,x_dot,theta,theta_dot\n0,0,0.2,0\n0,0,0,0\n")
    out = tmp_path / "r.json"
    result = invoke("benchmark", "--env", "cartpole", *TINY, "--init-states", str(path), "--runner", runner, "--json", str(out))
    assert result.exit_code == 0, result.output
    lengths = json.loads(out.read_text())["rows"][0]["episode_lengths"]
    assert lengths[0] < 4 and lengths[1] == 4  # the tilted pole falls within the 4 steps


def test_a_model_of_another_env_is_one_line(tiny_model_path):
    message = one_error_line(invoke("benchmark", "--env", "pendulum", *TINY[2:], "--model", tiny_model_path), 1)
    assert message == f"the model at {tiny_model_path} was trained for particle, not pendulum; pass --env particle or a model of pendulum"
    message = one_error_line(invoke("rollout", "--env", "acrobot", "--model", tiny_model_path), 1)
    assert "was trained for particle, not acrobot" in message


def test_each_env_has_its_own_default_model(tmp_path, monkeypatch):
    monkeypatch.setenv("WMPLAN_HOME", str(tmp_path))
    trained = invoke("train", "--env", "cartpole", "--episodes", "4", "--steps", "5", "--epochs", "1")
    assert trained.exit_code == 0, trained.output
    assert (tmp_path / "model-cartpole" / "config.json").exists() and not (tmp_path / "model").exists()
    result = invoke("plan", "--env", "cartpole", "--steps", "2", "--samples", "8", "--iterations", "1")
    assert result.exit_code == 0, result.output
    assert "No model at" not in result.output and not (tmp_path / "model").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--env", "pendulum", "--x0", "0.5"], "Invalid value for '--x0' / '--v0': --x0/--v0 set the particle's x and v; give pendulum's start as --start theta,theta_dot"),
        (["--env", "pendulum", "--start", "1,2,3"], "Invalid value for '--start': the start expected 2 values (theta,theta_dot), got 3"),
        (["--env", "cartpole", "--start", "0,0,x,0"], "Invalid value for '--start': the start expected 4 comma-separated numbers (x,x_dot,theta,theta_dot), got '0,0,x,0'"),
        (["--start", "1,0", "--x0", "1"], "Invalid value for '--start': give the start as --start or as --x0/--v0, not both"),
    ],
)
def test_bad_starts_are_usage_errors(args, message):
    assert one_error_line(invoke("plan", "--dynamics", "true", "--steps", "2", *args), 2) == message


def test_plan_another_env_from_a_given_start(tmp_path):
    result = invoke("plan", "--env", "acrobot", "--dynamics", "true", "--start", "0,0,0,0", "--steps", "3",
                    "--horizon", "3", "--samples", "8", "--iterations", "1")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "Gymnasium's Acrobot-v1" in lines[1] and "from (theta1=+0.000, theta2=+0.000, theta1_dot=+0.000, theta2_dot=+0.000)" in lines[1]
    steps = [line for line in lines if line.startswith("t=")]
    assert len(steps) == 3 and " a=" in steps[0] and "r=-1.000" in steps[0] and "predicted return" in steps[0]
    assert lines[-1] == "Return -3.000"


def test_plan_plot_of_another_env(tmp_path):
    need("matplotlib")
    out = tmp_path / "pendulum.png"
    result = invoke("plan", "--env", "pendulum", "--dynamics", "true", "--steps", "4", "--horizon", "3",
                    "--samples", "8", "--iterations", "1", "--runner", "mlx", "--plot", str(out))
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size < 200_000


def test_speed_plans_in_the_models_action_space(tmp_path):
    """A continuous particle's model plans with Box actions (not one-hot ones of its action size)."""
    from worldmodel import TrainConfig
    from worldmodel.recipe import train_world_model

    path = str(tmp_path / "continuous")
    train_world_model(path, episodes=10, steps=5, hidden=(8, 8), config=TrainConfig(epochs=1), env=get_env("particle", continuous=True), log=None)
    out = tmp_path / "speed.json"
    result = invoke("speed", "--model", path, "--planners", "cem", "--samples", "16", "--horizons", "3", "--repeats", "1",
                    "--json", str(out))
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["env"]["continuous"] is True and data["rows"][0]["transitions_per_s"] > 0


@pytest.mark.parametrize("command", [["benchmark", *TINY], ["plan", "--dynamics", "true", "--steps", "2"]])
def test_mlx_copy_without_gymnasium_says_how_to_get_gymnasium(monkeypatch, command):
    """Without Gymnasium an env that mirrors one runs its MLX copy, with one note on stderr (issue 18 item 21)."""
    monkeypatch.setitem(sys.modules, "gymnasium", None)
    result = invoke(*command, "--env", "pendulum")
    assert result.exit_code == 0, result.output
    note = ("Note: Gymnasium is not installed: episodes run in the MLX copy of Pendulum-v1; for Gymnasium's own: "
            "pip install '.[gym]' in the wmplan repository")
    assert result.stderr.splitlines().count(note) == 1, result.stderr
    assert note not in result.stdout

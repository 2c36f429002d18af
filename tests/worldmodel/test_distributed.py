"""Scale-out: per-environment randomness, the distributed helpers, ``--device``, and real 2-rank runs
under ``mlx.launch --backend ring`` on loopback (a few seconds each)."""

from __future__ import annotations

import json
import os
import random
import re
import socket
import subprocess
import sys
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest

import planners
from benchmarks.baselines import episode_rngs, random_policy
from worldmodel.device import gpu_available
from worldmodel import ParticleEnv
from worldmodel.distributed import LAUNCHER_VARIABLES, World, gather_rows, launched, share
from tests.conftest import invoke

PLANNER_CLASSES = [planners.RandomShooting, planners.CEM, planners.ICEM, planners.MPPI, planners.GradientPlanner, planners.CEMGradient]
SMALL = {"horizon": 4, "samples": 16, "iterations": 2}


def box_dynamics(state, action):
    next_state = state + mx.concatenate([action, action], axis=-1) * 0.1
    return next_state, -mx.abs(next_state[:, 0])


def closed_loop_actions(planner, start, env_ids, steps=4):
    """Actions ``[steps, E, A]`` of a planner stepping ``start`` in closed loop."""
    dynamics = planner.dynamics
    state, actions = mx.array(start), []
    for _ in range(steps):
        action = planner.act(state, env_ids)
        actions.append(np.array(action))
        state, _ = dynamics(state, action)
    return np.stack(actions)


@pytest.mark.parametrize("space", ["discrete", "box"])
@pytest.mark.parametrize("cls", PLANNER_CLASSES, ids=lambda c: c.__name__)
def test_a_share_of_the_environments_gets_the_same_actions(cls, space):
    if space == "discrete":
        dynamics, action_space = ParticleEnv(), ParticleEnv().action_space
    else:
        dynamics, action_space = box_dynamics, planners.Box([-1.0], [1.0])
    start = np.random.default_rng(1).uniform(-1, 1, (4, 2)).astype(np.float32)
    everything = closed_loop_actions(cls(dynamics, action_space, seed=5, **SMALL), start, None)
    share_only = closed_loop_actions(cls(dynamics, action_space, seed=5, **SMALL), start[2:], np.array([2, 3]))
    np.testing.assert_array_equal(everything[:, 2:], share_only)
    again = closed_loop_actions(cls(dynamics, action_space, seed=5, **SMALL), start, np.arange(4))
    np.testing.assert_array_equal(everything, again)  # the default ids are 0 .. E-1


def test_planner_seed_still_decides_and_env_ids_are_checked():
    env = ParticleEnv()
    state = mx.array(np.random.default_rng(2).uniform(-1, 1, (6, 2)).astype(np.float32))
    plans = [planners.RandomShooting(env, env.action_space, seed=s, **SMALL).optimize(state).actions for s in (0, 0, 1)]
    assert mx.array_equal(plans[0], plans[1]).item() and not mx.array_equal(plans[0], plans[2]).item()
    planner = planners.CEM(env, env.action_space, **SMALL)
    for bad in ([0, 1], [0, 0, 1, 2, 3, 4], [-1, 1, 2, 3, 4, 5], [0.5, 1, 2, 3, 4, 5]):
        with pytest.raises(ValueError, match="env_ids"):
            planner.act(state, bad)


def test_key_streams_follow_their_environment_across_calls():
    """Planning env 7 alone, then with others, then alone again continues env 7's own stream."""
    env = ParticleEnv()
    state = mx.array(np.zeros((1, 2), np.float32))
    alone = planners.RandomShooting(env, env.action_space, seed=3, **SMALL)
    mixed = planners.RandomShooting(env, env.action_space, seed=3, **SMALL)
    reference = [np.array(alone.optimize(state, [7]).actions) for _ in range(3)]
    first = np.array(mixed.optimize(state, [7]).actions)
    mixed.optimize(mx.array(np.zeros((2, 2), np.float32)), [1, 2])
    later = [np.array(mixed.optimize(state, [7]).actions) for _ in range(2)]
    for got, want in zip([first, *later], reference):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("continuous", [False, True])
def test_random_policy_draws_per_episode(continuous):
    env = ParticleEnv(continuous=continuous)
    state = np.zeros((5, 2), np.float32)
    full_policy, share_policy = random_policy(env, episode_rngs(0, range(5))), random_policy(env, episode_rngs(0, [3, 4]))
    full = np.stack([full_policy(state) for _ in range(6)])
    share_only = np.stack([share_policy(state[3:]) for _ in range(6)])
    np.testing.assert_array_equal(full[:, 3:], share_only)
    assert full.shape == (6, 5, env.action_space.dim) and full.dtype == np.float32
    if continuous:
        assert np.all(np.abs(full) <= 1.0) and len(np.unique(full)) == full.size
    else:
        np.testing.assert_array_equal(full.sum(-1), 1.0)
        assert set(np.unique(full.argmax(-1))) == {0, 1, 2}


@pytest.mark.parametrize("total,size", [(10, 3), (2, 3), (8, 2), (1, 1)])
def test_shares_are_contiguous_and_cover_everything(total, size):
    parts = [share(total, r, size) for r in range(size)]
    assert parts[0].start == 0 and parts[-1].stop == total
    assert all(a.stop == b.start for a, b in zip(parts, parts[1:]))
    lengths = [p.stop - p.start for p in parts]
    assert max(lengths) - min(lengths) <= 1 and lengths == sorted(lengths, reverse=True)


def test_one_process_world_without_a_launcher(monkeypatch):
    for name in LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert not launched()
    one = World()
    assert (one.rank, one.size, one.is_root) == (0, 1, True)
    rows = np.arange(6.0)
    assert gather_rows(rows, 6, one) is not None and np.array_equal(gather_rows(rows, 6, one), rows)
    assert mx.distributed.is_available() and mx.distributed.init().size() == 1  # silent, size 1


def test_device_option(tmp_path):
    result = invoke("plan", "--dynamics", "true", "--steps", "2", "--horizon", "3", "--samples", "8", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == "Device: cpu"
    if gpu_available():
        pytest.skip("a GPU is available here: the error path cannot be exercised")
    result = invoke("plan", "--dynamics", "true", "--steps", "2", "--device", "gpu")
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: --device gpu: this MLX build sees no GPU"), result.output


# --- real runs under mlx.launch ---------------------------------------------------------------

TRAIN = ["--episodes", "20", "--steps", "10", "--epochs", "3", "--hidden", "16"]
BENCH = ["--planners", "cem,mppi,random-shooting", "--dynamics", "model,true", "--episodes", "5", "--steps", "6",
         "--horizon", "4", "--samples", "16", "--iterations", "2"]
# Each rank runs in its own folder r<rank>, so relative output paths show who wrote what.
PER_RANK = 'mkdir -p "r$MLX_RANK" && cd "r$MLX_RANK" && exec "$0" "$@"'


def launcher() -> list:
    script = Path(sys.executable).parent / "mlx.launch"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from mlx._distributed_utils.launch import main; sys.exit(main())"]


def free_port_pair() -> int:
    """A port ``p`` with ``p`` and ``p + 1`` free on loopback (the ring listens on one per rank)."""
    for _ in range(50):
        port = random.randint(20000, 60000)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port pair")


def launch_two(cwd: Path, *args: str, via: str = "mlx.launch") -> subprocess.CompletedProcess:
    if via == "mlx.launch":
        start = [*launcher(), "-n", "2", "--backend", "ring", "--starting-port", str(free_port_pair())]
    else:  # wmplan's own local launcher, same ring backend
        start = [sys.executable, "-m", "worldmodel.launch", "-n", "2", "--starting-port", str(free_port_pair())]
    command = [*start, "--", "bash", "-c", PER_RANK, sys.executable, "-m", "cli", *args]
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARIABLES}
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0 and "exited with code" not in result.stderr, result.stdout + result.stderr
    return result


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("dist") / "model")
    result = invoke("train", *TRAIN, "--out", path)
    assert result.exit_code == 0, result.output
    return path


@pytest.mark.parametrize("via", ["mlx.launch", "worldmodel.launch"])
def test_two_ranks_benchmark_equals_one_process(tiny_model, tmp_path, via):
    single = tmp_path / "single.json"
    result = invoke("benchmark", *BENCH, "--model", tiny_model, "--json", str(single))
    assert result.exit_code == 0, result.output
    run = launch_two(tmp_path, "benchmark", *BENCH, "--model", tiny_model, "--json", "out.json", via=via)
    assert len(re.findall(r"^optimal ", run.stdout, re.M)) == 1 and run.stdout.count("Wrote out.json") == 1, run.stdout
    assert "Device: cpu; 2 processes (mx.distributed, ring backend)" in run.stdout
    assert os.listdir(tmp_path / "r1") == [] and os.listdir(tmp_path / "r0") == ["out.json"]
    one, two = json.loads(single.read_text()), json.loads((tmp_path / "r0" / "out.json").read_text())
    assert two["config"]["processes"] == 2 and two["config"]["episodes"] == 5
    assert [(r["planner"], r["dynamics"]) for r in two["rows"]] == [(r["planner"], r["dynamics"]) for r in one["rows"]]
    for a, b in zip(one["rows"], two["rows"]):
        assert a["returns"] == b["returns"], (a["planner"], a["dynamics"])  # bit for bit, per episode
        assert a["success_rate"] == b["success_rate"] and a["mean_final_abs_x"] == b["mean_final_abs_x"]


@pytest.mark.parametrize("batch", [32, 37])  # 37: unequal shares (19 + 18), weighted gradients
def test_two_ranks_training_matches_one_process(tmp_path, batch):
    single = tmp_path / "single"
    result = invoke("train", *TRAIN, "--batch-size", str(batch), "--out", str(single))
    assert result.exit_code == 0, result.output
    run = launch_two(tmp_path, "train", *TRAIN, "--batch-size", str(batch), "--out", "model")
    assert run.stdout.count("Saved model to model") == 1 and run.stdout.count("Epoch 01") == 1, run.stdout
    assert os.listdir(tmp_path / "r1") == [] and os.listdir(tmp_path / "r0") == ["model"]
    one = json.loads((single / "config.json").read_text())["metrics"]
    two = json.loads((tmp_path / "r0" / "model" / "config.json").read_text())["metrics"]
    assert len(two["train_losses"]) == 3
    np.testing.assert_allclose(two["train_losses"], one["train_losses"], rtol=1e-5)
    np.testing.assert_allclose(two["val_losses"], one["val_losses"], rtol=1e-4)
    np.testing.assert_allclose(two["held_out_mse"], one["held_out_mse"], rtol=1e-4)


def test_a_hostfile_that_is_a_pipe_or_a_device_is_not_read(tmp_path, monkeypatch):
    """``MLX_HOSTFILE`` naming a named pipe or /dev/zero: no wait for a writer, no endless read; taken as no hostfile."""
    import os

    from worldmodel.distributed import local_processes

    pipe, zero = tmp_path / "hosts", tmp_path / "zero"
    os.mkfifo(pipe)
    zero.symlink_to("/dev/zero")
    for path in (pipe, zero):
        monkeypatch.setenv("MLX_HOSTFILE", str(path))
        for name in ("OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"):
            monkeypatch.delenv(name, raising=False)
        assert local_processes(0, 3) == 3

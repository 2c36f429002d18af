"""Rollouts split into row shards on parallel CPU streams give the one-stream results."""

import json

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest

import planners
from planners.runtime import streams
from worldmodel import ParticleEnv, distributed


class Mlp(nn.Module):
    """A small row-wise model: 2-D state, one-hot of 3 actions."""

    def __init__(self):
        super().__init__()
        mx.random.seed(3)
        self.l1, self.l2 = nn.Linear(5, 64), nn.Linear(64, 3)

    def __call__(self, state, action):
        out = self.l2(nn.relu(self.l1(mx.concatenate([state, action], axis=-1))))
        return state + 0.1 * mx.tanh(out[:, :2]), -mx.abs(out[:, 2])


def random_batch(rows, horizon=6, seed=0):
    rng = np.random.default_rng(seed)
    state = mx.array(rng.uniform(-1, 1, (rows, 2)).astype(np.float32))
    actions = mx.array(np.eye(3, dtype=np.float32)[rng.integers(0, 3, (rows, horizon))])
    return state, actions


@pytest.mark.parametrize("rows,count,minimum", [(10, 4, 1), (1000, 2, 256), (1000, 8, 256), (100, 2, 256), (7, 3, 1)])
def test_shards_cover_the_rows_in_order(rows, count, minimum):
    ranges = streams.shards(rows, count, minimum)
    assert ranges[0][0] == 0 and ranges[-1][1] == rows
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    assert len(ranges) == max(1, min(count, rows // minimum))
    assert len(ranges) == 1 or min(stop - start for start, stop in ranges) >= minimum


@pytest.mark.parametrize("count", [2, 3])
def test_sharded_rollout_equals_one_stream(count):
    model, (state, actions) = Mlp(), random_batch(1537)
    one = planners.rollout(model, state, actions, 0.9, terminal_value=lambda s: s[:, 0], return_trajectory=True, streams=1)
    many = planners.rollout(model, state, actions, 0.9, terminal_value=lambda s: s[:, 0], return_trajectory=True, streams=count)
    for a, b in zip(one, many):
        assert a.shape == b.shape
        np.testing.assert_allclose(np.array(a), np.array(b), rtol=1e-6, atol=1e-6)


def test_sharded_rollout_of_the_env_is_exact():
    env, (state, actions) = ParticleEnv(), random_batch(2048, horizon=10)
    one = planners.rollout(env, state, actions, streams=1)
    many = planners.rollout(env, state, actions, streams=4)
    assert np.array_equal(np.array(one), np.array(many))


def test_gradient_through_sharded_rollout():
    model, (state, actions) = Mlp(), random_batch(1024)

    def loss(a, count):
        return mx.sum(planners.rollout(model, state, a, streams=count))

    g1 = mx.grad(lambda a: loss(a, 1))(actions)
    g2 = mx.grad(lambda a: loss(a, 2))(actions)
    np.testing.assert_allclose(np.array(g1), np.array(g2), rtol=1e-5, atol=1e-6)


def test_shape_error_still_named_in_a_shard():
    state, actions = random_batch(1024)
    with pytest.raises(ValueError, match="expected"):
        planners.rollout(lambda s, a: (s[:, :1], s[:, 0]), state, actions, streams=2)


def test_planner_actions_do_not_depend_on_the_stream_count(monkeypatch):
    model, state = Mlp(), ParticleEnv().reset(4, seed=1)
    plans = []
    for count in ("1", "2"):
        monkeypatch.setenv("WMPLAN_CPU_STREAMS", count)
        cem = planners.CEM(model, planners.Discrete(3), horizon=10, samples=300, iterations=3, seed=5)
        plans.append(cem.optimize(state))
    assert np.array_equal(np.array(plans[0].actions), np.array(plans[1].actions))
    np.testing.assert_allclose(np.array(plans[0].expected_return), np.array(plans[1].expected_return), rtol=1e-6)


@pytest.mark.parametrize("text", ["0", "-2", "two"])
def test_bad_stream_count_is_a_clear_error(monkeypatch, text):
    monkeypatch.setenv("WMPLAN_CPU_STREAMS", text)
    with pytest.raises(ValueError, match="WMPLAN_CPU_STREAMS must be a positive integer"):
        streams.default_count()


def test_default_count_divides_the_cores_among_local_processes(monkeypatch):
    monkeypatch.delenv("WMPLAN_CPU_STREAMS", raising=False)
    monkeypatch.setattr(streams, "_cores", lambda: 8)
    try:
        assert streams.default_count() == 8
        streams.set_process_share(2)
        assert streams.default_count() == 4
        streams.set_process_share(16)
        assert streams.default_count() == 1
    finally:
        streams.set_process_share(1)


def test_local_processes_from_a_ring_hostfile(monkeypatch, tmp_path):
    hostfile = tmp_path / "hosts.json"
    hostfile.write_text(json.dumps([["10.0.0.1:5000"], ["10.0.0.1:5001"], ["10.0.0.2:5000"]]))
    monkeypatch.setenv("MLX_HOSTFILE", str(hostfile))
    for name in ("OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"):
        monkeypatch.delenv(name, raising=False)
    assert distributed.local_processes(0, 3) == 2
    assert distributed.local_processes(2, 3) == 1
    monkeypatch.setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "4")
    assert distributed.local_processes(0, 3) == 4


@pytest.mark.parametrize("command", ["--version", "speed", "plan"])
def test_cli_reports_a_bad_stream_count_in_one_line(monkeypatch, command, tiny_model_path):
    from click.testing import CliRunner

    import cli

    args = {
        "--version": ["--version"],
        "speed": ["speed", "--model", tiny_model_path, "--planners", "cem", "--samples", "16", "--horizons", "2", "--repeats", "1"],
        "plan": ["plan", "--model", tiny_model_path, "--steps", "2", "--horizon", "2", "--samples", "600"],
    }[command]
    monkeypatch.setenv("WMPLAN_CPU_STREAMS", "zero")
    result = CliRunner().invoke(cli.main, args)
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines()[-1] == "Error: WMPLAN_CPU_STREAMS must be a positive integer, got 'zero'"
    assert "Traceback" not in result.output


class BatchCoupled:
    """Dynamics whose reward depends on the whole batch (its mean): rows are not independent."""

    def __call__(self, state, action):
        return state, -mx.abs(state[:, 0] - mx.mean(state[:, 0]))


def test_planner_streams_option_keeps_batch_coupled_dynamics_whole(monkeypatch):
    monkeypatch.setenv("WMPLAN_CPU_STREAMS", "2")
    state, actions = random_batch(1024, horizon=3)
    whole = planners.rollout(BatchCoupled(), state, actions, streams=1)
    split = planners.rollout(BatchCoupled(), state, actions)  # env default: 2 shards, different means
    assert not np.allclose(np.array(whole), np.array(split))
    cem = planners.CEM(BatchCoupled(), planners.Discrete(3), horizon=3, samples=512, iterations=1, streams=1)
    assert cem.streams == 1
    returns = cem.evaluate(state[:2], actions[None, :512].reshape(2, 256, 3, 3))
    expected = planners.rollout(BatchCoupled(), mx.repeat(state[:2], 256, axis=0), actions[:512], streams=1)
    np.testing.assert_allclose(np.array(returns).reshape(-1), np.array(expected), rtol=1e-6)


def test_planner_rejects_a_bad_streams_option():
    with pytest.raises(ValueError, match="streams"):
        planners.CEM(ParticleEnv(), planners.Discrete(3), horizon=3, samples=8, iterations=1, streams=0)


def test_dynamics_can_ask_for_one_stream(monkeypatch):
    monkeypatch.setenv("WMPLAN_CPU_STREAMS", "2")
    seen = []

    class Light:
        rollout_streams = 1

        def __call__(self, state, action):
            seen.append(state.shape[0])
            return state, state[:, 0]

    state, actions = random_batch(1024, horizon=2)
    planners.rollout(Light(), state, actions)
    assert seen == [1024, 1024]  # one shard: every call sees the whole batch
    seen.clear()
    planners.rollout(Light(), state, actions, streams=2)  # an explicit count still wins
    assert seen == [512, 512, 512, 512]
    assert ParticleEnv.rollout_streams == 1


def test_more_streams_than_cores_are_clamped_with_a_warning(monkeypatch):
    monkeypatch.setenv("WMPLAN_CPU_STREAMS", "1000")
    monkeypatch.setattr(streams, "_cores", lambda: 2)
    monkeypatch.setattr(streams, "_WARNED", set())
    with pytest.warns(RuntimeWarning, match="WMPLAN_CPU_STREAMS=1000 is more than the 2 CPU core"):
        assert streams.default_count() == 2



def test_shards_advance_in_lockstep():
    """Each shard takes one step before any takes the next (so every stream's thread has work)."""
    order = []

    def build(start, stop):
        def steps():
            x = mx.arange(start, stop, dtype=mx.float32)
            for t in range(3):
                order.append((start, t))
                x = x * 2.0
                yield [x]
            return x

        return steps()

    parts = streams.map_rows_in_steps(build, 1024, streams=2)
    assert order == [(0, 0), (512, 0), (0, 1), (512, 1), (0, 2), (512, 2)]
    np.testing.assert_array_equal(np.concatenate([np.array(p) for p in parts]), 8.0 * np.arange(1024))
    one = streams.map_rows_in_steps(build, 1024, streams=1)
    np.testing.assert_array_equal(np.array(one[0]), 8.0 * np.arange(1024))


def test_chunk_and_shard_sizes_are_passed_in_and_change_only_how_the_rows_are_split():
    model, seen = Mlp(), []

    def recording(state, action):
        seen.append(state.shape[0])
        return model(state, action)

    state, actions = random_batch(100)
    whole = planners.rollout(recording, state, actions, streams=1)
    assert max(seen) == 100
    seen.clear()
    split = planners.rollout(recording, state, actions, streams=2, chunk_rows=10, min_shard_rows=8)
    assert max(seen) == 10  # two shards of 50 rows, each step in slices of 10
    np.testing.assert_allclose(np.array(split), np.array(whole), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="chunk_rows"):
        planners.rollout(model, state, actions, streams=2, chunk_rows=0)

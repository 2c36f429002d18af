"""World model: data, model, training, checkpoints (and one slow full-budget accuracy check)."""

from __future__ import annotations

import json
import os
import re
import shutil

import mlx.core as mx
import numpy as np
import pytest
from mlx.utils import tree_flatten

from worldmodel import (
    CheckpointError,
    DatasetError,
    ParticleEnv,
    TrainConfig,
    Transitions,
    WorldModel,
    generate,
    load_model,
    one_hot_pushes,
    one_step_mse,
    read_config,
    save_model,
    train,
    uniform_transitions,
)
from worldmodel.checkpoint import CONFIG_NAME
from worldmodel.recipe import HELD_OUT_SIZE, train_world_model
from worldmodel.rollout import open_loop
from worldmodel.train import balanced_weights

TINY = TrainConfig(epochs=2, seed=0)


def tiny_data(seed: int = 0) -> Transitions:
    return generate(ParticleEnv(), episodes=20, steps=10, seed=seed)


def tiny_model(config: TrainConfig = TINY, data: Transitions | None = None):
    mx.random.seed(config.seed)
    model = WorldModel()
    result = train(model, data if data is not None else tiny_data(), config, log=None)
    return model, result


def predict(model, states, actions):
    next_state, reward = model(mx.array(states), mx.array(actions))
    return np.array(next_state), np.array(reward)


@pytest.fixture(scope="module")
def probe():
    """Test inputs spread over the whole state box and all actions."""
    data = uniform_transitions(ParticleEnv(), 64, seed=5)
    return data.states, data.actions


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A small trained model saved once; tests corrupt copies of it."""
    model, _ = tiny_model()
    path = str(tmp_path_factory.mktemp("ckpt") / "model")
    save_model(model, path, extra={"note": "tiny"})
    return model, path


@pytest.fixture
def ckpt_copy(checkpoint, tmp_path):
    path = str(tmp_path / "model")
    shutil.copytree(checkpoint[1], path)
    return path


# ---------------------------------------------------------------------------------------------
# model


def test_worldmodel_call_shapes_and_dtypes():
    model = WorldModel()
    next_state, reward = model(mx.zeros((7, 2)), one_hot_pushes([0] * 7))
    assert next_state.shape == (7, 2) and reward.shape == (7,)
    assert next_state.dtype == mx.float32 and reward.dtype == mx.float32
    other = WorldModel(state_dim=4, action_dim=1, hidden=(16, 8, 4), reward_hidden=5)
    next_state, reward = other(mx.zeros((3, 4)), mx.zeros((3, 1)))
    assert next_state.shape == (3, 4) and reward.shape == (3,)
    assert other.config() == {"state_dim": 4, "action_dim": 1, "hidden": [16, 8, 4], "reward_hidden": 5}
    assert WorldModel(**other.config()).config() == other.config()


@pytest.mark.parametrize(
    "kwargs", [{"state_dim": 0}, {"action_dim": 0}, {"hidden": ()}, {"hidden": (8, 0)}, {"reward_hidden": 0}]
)
def test_worldmodel_rejects_bad_sizes(kwargs):
    with pytest.raises(ValueError, match="positive sizes"):
        WorldModel(**kwargs)


def test_fit_normalization_uses_data_statistics():
    data = tiny_data()
    model = WorldModel()
    model.fit_normalization(data.states, data.next_states, data.rewards)
    np.testing.assert_allclose(np.array(model.state_norm.mean), data.states.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.array(model.delta_norm.std), (data.next_states - data.states).std(0), rtol=1e-5)
    np.testing.assert_allclose(np.array(model.reward_norm.mean), [data.rewards.mean()], rtol=1e-5)
    # Statistics are frozen: not trainable parameters.
    names = {k for k, _ in tree_flatten(model.trainable_parameters())}
    assert not any("norm" in n for n in names) and any("trunk" in n for n in names)


# ---------------------------------------------------------------------------------------------
# data


def test_generate_default_budget_and_structure():
    env = ParticleEnv()
    data = generate(env)  # the seed's 400 episodes x 50 steps
    assert len(data) == 400 * 50 == 20000
    assert data.states.shape == (20000, 2) and data.actions.shape == (20000, 3)
    assert data.next_states.shape == (20000, 2) and data.rewards.shape == (20000,)
    assert all(a.dtype == np.float32 for a in (data.states, data.actions, data.next_states, data.rewards))
    # step-major: step t+1's states are step t's next states, episode by episode
    np.testing.assert_array_equal(data.states[400:], data.next_states[:-400])
    # the transitions are the true physics
    next_state, reward = predict(env, data.states, data.actions)
    np.testing.assert_allclose(data.next_states, next_state, atol=1e-6)
    np.testing.assert_allclose(data.rewards, -np.abs(data.next_states[:, 0]), atol=1e-6)
    np.testing.assert_array_equal(data.actions.sum(1), 1.0)
    # the 400 starts cover the whole box
    starts = data.states[:400]
    assert starts[:, 0].min() < -1.35 and starts[:, 0].max() > 1.35
    assert starts[:, 1].min() < -0.9 and starts[:, 1].max() > 0.9


@pytest.mark.parametrize("episodes, steps", [(20, 10), (7, 3), (1, 1)])
def test_generate_count_is_episodes_times_steps(episodes, steps):
    data = generate(ParticleEnv(), episodes, steps, seed=1)
    assert len(data) == episodes * steps


def test_generate_deterministic_and_validated():
    a, b, c = tiny_data(3), tiny_data(3), tiny_data(4)
    np.testing.assert_array_equal(a.states, b.states)
    np.testing.assert_array_equal(a.actions, b.actions)
    assert not np.array_equal(a.states, c.states)
    with pytest.raises(ValueError):
        generate(ParticleEnv(), episodes=0)
    with pytest.raises(ValueError):
        generate(ParticleEnv(), steps=0)


def test_generate_continuous():
    data = generate(ParticleEnv(continuous=True), 10, 5)
    assert data.actions.shape == (50, 1) and np.all(np.abs(data.actions) <= 1)


def test_uniform_transitions_are_true_and_in_box():
    env = ParticleEnv()
    data = uniform_transitions(env, 500, seed=2)
    assert len(data) == 500
    assert np.all(np.abs(data.states[:, 0]) <= 1.5) and np.all(np.abs(data.states[:, 1]) <= 1.0)
    # the environment is a perfect model of itself
    np.testing.assert_allclose(one_step_mse(env, data), 0.0, atol=1e-12)
    assert one_step_mse(env, data).shape == (3,)


def test_transitions_save_load_round_trip(tmp_path):
    data = tiny_data()
    path = tmp_path / "sub" / "data.npz"
    with pytest.raises(OSError, match="the folder .*sub does not exist"):  # never created silently
        data.save(str(path))
    path.parent.mkdir()
    data.save(str(path))
    assert sorted(os.listdir(path.parent)) == ["data.npz"]  # no temporary file left behind
    back = Transitions.load(str(path))
    for name in ("states", "actions", "next_states", "rewards"):
        np.testing.assert_array_equal(getattr(back, name), getattr(data, name))
        assert getattr(back, name).dtype == np.float32


@pytest.mark.filterwarnings("error::ResourceWarning", "error::pytest.PytestUnraisableExceptionWarning")
def test_transitions_load_errors(tmp_path):
    """Every unreadable file is a DatasetError (and leaves no open file handle behind)."""
    with pytest.raises(DatasetError, match="no dataset"):
        Transitions.load(str(tmp_path / "missing.npz"))
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"this is not a zip file")
    with pytest.raises(DatasetError, match="cannot read"):
        Transitions.load(str(garbage))
    partial = tmp_path / "partial.npz"
    np.savez(partial, states=np.zeros((3, 2)), actions=np.zeros((3, 3)))
    with pytest.raises(DatasetError):
        Transitions.load(str(partial))
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, states=np.zeros((3, 2)), actions=np.zeros((3, 3)), next_states=np.zeros((4, 2)), rewards=np.zeros(3))
    with pytest.raises(DatasetError, match="inconsistent"):
        Transitions.load(str(wrong))
    whole = tmp_path / "whole.npz"
    tiny_data().save(str(whole))
    raw = whole.read_bytes()
    truncated = tmp_path / "truncated.npz"
    for cut in (0, 10, 200, len(raw) // 2, len(raw) - 10):  # an interrupted copy or download
        truncated.write_bytes(raw[:cut])
        with pytest.raises(DatasetError, match="cannot read"):
            Transitions.load(str(truncated))


# ---------------------------------------------------------------------------------------------
# training


def test_training_is_deterministic_per_seed(probe):
    data = tiny_data()
    model_a, a = tiny_model(data=data)
    model_b, b = tiny_model(data=data)
    _, c = tiny_model(TrainConfig(epochs=2, seed=1), data=data)
    assert len(a.train_losses) == len(a.val_losses) == 2
    assert a.num_train + a.num_val == len(data) and a.num_val == 20
    assert a.train_losses == b.train_losses and a.val_losses == b.val_losses
    assert a.train_losses != c.train_losses
    np.testing.assert_array_equal(predict(model_a, *probe)[0], predict(model_b, *probe)[0])
    assert all(np.isfinite(a.train_losses)) and all(np.isfinite(a.val_losses))


def test_training_reduces_error():
    data = tiny_data()
    before = WorldModel()
    before.fit_normalization(data.states, data.next_states, data.rewards)
    model, _ = tiny_model(TrainConfig(epochs=30, seed=0), data=data)
    test = uniform_transitions(ParticleEnv(), 1000, seed=9)
    assert one_step_mse(model, test).mean() < 0.5 * one_step_mse(before, test).mean()


def test_training_without_validation_and_constant_schedule():
    model, result = tiny_model(TrainConfig(epochs=1, val_fraction=0.0, schedule="constant", balance_bins=0, compile=False))
    assert result.num_val == 0 and result.num_train == 200
    assert np.isnan(result.val_losses[0]) and np.isfinite(result.train_losses[0])


def test_train_logs_epoch_lines():
    lines = []
    train(WorldModel(), tiny_data(), TINY, log=lines.append)
    assert len(lines) == 2

    for i, line in enumerate(lines, 1):
        assert re.fullmatch(rf"Epoch {i:02d} \| loss = \d+\.\d{{6}} \| val = \d+\.\d{{6}}", line), line


def test_balanced_weights():
    rng = np.random.default_rng(0)
    common = rng.uniform(0.0, 0.09, size=(90, 2))  # all in the lowest cell
    rare = rng.uniform(0.95, 1.0, size=(10, 2))  # all in the highest cell
    states = np.concatenate([common, rare])
    w = balanced_weights(states, bins=10)
    assert w.shape == (100,)
    assert w.sum() == pytest.approx(1.0)
    # each occupied cell gets the same total weight: a rare state weighs 9x a common one
    assert w[:90].sum() == pytest.approx(0.5) and w[90:].sum() == pytest.approx(0.5)
    assert w[95] == pytest.approx(9 * w[0])
    uniform = balanced_weights(states, bins=0)
    np.testing.assert_allclose(uniform, 0.01)
    # random-action data piles up at the walls; balancing moves weight towards the centre
    data = generate(ParticleEnv(), 100, 50)
    w = balanced_weights(data.states, 10)
    assert w.sum() == pytest.approx(1.0)
    at_wall = np.abs(data.states[:, 0]) > 1.45
    assert at_wall.mean() > 0.2 and w[at_wall].sum() < at_wall.mean()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"epochs": 0},
        {"batch_size": 0},
        {"lr": 0.0},
        {"max_lr": -1.0},
        {"schedule": "cosine"},
        {"val_fraction": 1.0},
        {"val_fraction": -0.1},
        {"balance_bins": -1},
    ],
)
def test_train_config_validation(kwargs):
    with pytest.raises(ValueError):
        TrainConfig(**kwargs)


def test_train_config_dict_round_trip():
    config = TrainConfig(epochs=3, schedule="constant", seed=4)
    assert TrainConfig.from_dict({**config.to_dict(), "unknown": 1}) == config


def test_train_rejects_empty_training_split():
    data = generate(ParticleEnv(), 1, 1)
    with pytest.raises(ValueError, match="no training transitions"):
        train(WorldModel(), data, TrainConfig(val_fraction=0.9), log=None)


# ---------------------------------------------------------------------------------------------
# checkpoints


def test_save_load_gives_identical_predictions(checkpoint, probe):
    model, path = checkpoint
    loaded = load_model(path)
    assert loaded.config() == model.config()
    for want, got in zip(predict(model, *probe), predict(loaded, *probe)):
        np.testing.assert_array_equal(got, want)
    config = read_config(path)
    assert config["note"] == "tiny" and config["weights"].startswith("weights-")
    assert sorted(os.listdir(path)) == sorted([CONFIG_NAME, config["weights"]])


def test_resave_replaces_old_weights(checkpoint, ckpt_copy, probe):
    other, _ = tiny_model(TrainConfig(epochs=2, seed=3))
    save_model(other, ckpt_copy)
    config = read_config(ckpt_copy)
    assert config["weights"] != read_config(checkpoint[1])["weights"]  # named by content
    assert sorted(os.listdir(ckpt_copy)) == sorted([CONFIG_NAME, config["weights"]])
    np.testing.assert_array_equal(predict(load_model(ckpt_copy), *probe)[0], predict(other, *probe)[0])


def _weights_path(path):
    return os.path.join(path, read_config(path)["weights"])


def _garbage_config(path):
    with open(os.path.join(path, CONFIG_NAME), "w") as f:
        f.write("{not json")


def _foreign_config(path):
    with open(os.path.join(path, CONFIG_NAME), "w") as f:
        json.dump({"hello": "world"}, f)


def _edit_config(**changes):
    def edit(path):
        config = read_config(path)
        for key, value in changes.items():
            if callable(value):
                value = value(config)
            config[key] = value
        with open(os.path.join(path, CONFIG_NAME), "w") as f:
            json.dump(config, f)

    return edit


def _truncate_weights(path):
    weights = _weights_path(path)
    with open(weights, "rb") as f:
        data = f.read()
    with open(weights, "wb") as f:
        f.write(data[: len(data) // 2])


def _flip_weight_byte(path):
    weights = _weights_path(path)
    with open(weights, "r+b") as f:
        f.seek(-5, os.SEEK_END)
        byte = f.read(1)
        f.seek(-5, os.SEEK_END)
        f.write(bytes([byte[0] ^ 0xFF]))


def _remove_weights(path):
    os.remove(_weights_path(path))


def _truncate_weights_without_checksum(path):
    _truncate_weights(path)
    _edit_config(weights_sha256=None)(path)


CORRUPTIONS = {
    "missing folder": (lambda path: shutil.rmtree(path), "no checkpoint at"),
    "missing config": (lambda path: os.remove(os.path.join(path, CONFIG_NAME)), "no checkpoint at"),
    "garbage config.json": (_garbage_config, "cannot read config.json"),
    "foreign config.json": (_foreign_config, "not a wmplan world-model config"),
    "weights name not a string": (_edit_config(weights=5), "not a wmplan world-model config"),
    "weights name outside the folder": (_edit_config(weights="../x.safetensors"), "not a wmplan world-model config"),
    "model not a dict": (_edit_config(model=[128, 128]), "not a wmplan world-model config"),
    "weights truncated": (_truncate_weights, "does not match its checksum"),
    "weights modified": (_flip_weight_byte, "does not match its checksum"),
    "weights missing": (_remove_weights, "is missing"),
    "weights truncated, no checksum": (_truncate_weights_without_checksum, "corrupt checkpoint"),
    "wrong architecture": (
        _edit_config(model=lambda c: {**c["model"], "hidden": [64, 64]}),
        "corrupt checkpoint .*shape",
    ),
    "unknown architecture key": (
        _edit_config(model=lambda c: {**c["model"], "layers": 3}),
        "corrupt checkpoint .*layers",
    ),
}


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_corrupt_checkpoint_raises_one_line_error(ckpt_copy, corruption):
    damage, pattern = CORRUPTIONS[corruption]
    damage(ckpt_copy)
    with pytest.raises(CheckpointError, match=pattern) as info:
        load_model(ckpt_copy)
    message = str(info.value)
    assert "\n" not in message and ckpt_copy in message


def test_interrupted_save_keeps_previous_checkpoint(checkpoint, ckpt_copy, probe, monkeypatch):
    model, _ = checkpoint
    old_weights = read_config(ckpt_copy)["weights"]
    other, _ = tiny_model(TrainConfig(epochs=2, seed=7))
    real_replace = os.replace

    def failing_replace(src, dst):
        if os.path.basename(dst) == CONFIG_NAME:
            raise OSError("disk full (simulated)")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="simulated"):
        save_model(other, ckpt_copy)
    monkeypatch.setattr(os, "replace", real_replace)

    assert read_config(ckpt_copy)["weights"] == old_weights
    assert not [name for name in os.listdir(ckpt_copy) if name.startswith(".tmp-")]
    loaded = load_model(ckpt_copy)
    np.testing.assert_array_equal(predict(loaded, *probe)[0], predict(model, *probe)[0])
    # the next save goes through and cleans up every older weights file
    save_model(other, ckpt_copy)
    assert sorted(os.listdir(ckpt_copy)) == sorted([CONFIG_NAME, read_config(ckpt_copy)["weights"]])
    np.testing.assert_array_equal(predict(load_model(ckpt_copy), *probe)[0], predict(other, *probe)[0])


def test_train_world_model_writes_metadata(tmp_path):
    out = str(tmp_path / "m")
    lines = []
    model, metrics = train_world_model(out, episodes=20, steps=10, hidden=(16, 16), config=TINY, log=lines.append)
    assert lines[0] == "Dataset size: 200 transitions" and len(lines) == 3
    config = read_config(out)
    assert config["data"] == {"episodes": 20, "steps": 10, "transitions": 200, "seed": 0, "source": "mlx"}
    assert config["env"] == {"name": "particle", **ParticleEnv().config()} and config["training"] == TINY.to_dict()
    assert config["model"]["hidden"] == [16, 16]
    assert len(metrics["held_out_mse"]) == 3
    assert metrics["held_out_mse_mean"] == pytest.approx(np.mean(metrics["held_out_mse"]))
    assert config["metrics"] == json.loads(json.dumps(metrics))
    test = uniform_transitions(ParticleEnv(), HELD_OUT_SIZE, seed=TINY.seed + 1_000_003)
    np.testing.assert_allclose(one_step_mse(load_model(out), test), metrics["held_out_mse"], rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# full budget


@pytest.mark.slow
def test_full_budget_accuracy(tmp_path):
    """The seed's budget (400 x 50 transitions, 20 epochs) gives an accurate model."""
    model, metrics = train_world_model(str(tmp_path / "full"), config=TrainConfig(seed=0), log=None)
    assert metrics["held_out_mse_mean"] <= 4e-5, metrics["held_out_mse"]
    env = ParticleEnv()
    rng = np.random.default_rng(2024)
    starts = env.sample_states(rng, 500)
    actions = one_hot_pushes(rng.integers(-1, 2, size=(500, 50)))
    true_states, _ = open_loop(env, starts, actions)
    model_states, _ = open_loop(model, starts, actions)
    assert true_states.shape == model_states.shape == (500, 51, 2)
    final_error = np.abs(true_states[:, -1, 0] - model_states[:, -1, 0])
    assert np.median(final_error) <= 0.005, np.percentile(final_error, [50, 90, 99])

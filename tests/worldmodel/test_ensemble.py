"""Ensembles of world models: batched members, folding, bootstrapped training, checkpoints."""

from __future__ import annotations

import json
import os

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from click.testing import CliRunner
from mlx.utils import tree_flatten

from cli import main
from tests.conftest import TINY_TRAIN, with_statistics
from worldmodel import (
    CheckpointError,
    EnsembleWorldModel,
    FoldedWorldModel,
    ParticleEnv,
    TrainConfig,
    WorldModel,
    generate,
    load_model,
    save_model,
    train,
)
from worldmodel.checkpoint import CONFIG_NAME
from worldmodel.model import bound_logvar
from worldmodel.recipe import train_world_model
from worldmodel.train import bootstrap_probabilities, draw_batches


def batch(rows, seed=1, lead=()):
    rng = np.random.default_rng(seed)
    state = rng.uniform([-1.5, -1.0], [1.5, 1.0], size=(*lead, rows, 2)).astype(np.float32)
    action = np.eye(3, dtype=np.float32)[rng.integers(0, 3, (*lead, rows))]
    return mx.array(state), mx.array(action)


def close(a, b, tol=2e-6):
    np.testing.assert_allclose(np.array(a), np.array(b), rtol=1e-5, atol=tol)


def test_members_shapes_and_the_mean():
    mx.random.seed(0)
    model = with_statistics(EnsembleWorldModel(4, hidden=(16, 16), reward_hidden=8))
    state, action = batch(10)
    nexts, rewards = model.members(state, action)
    assert nexts.shape == (4, 10, 2) and rewards.shape == (4, 10)
    next_state, reward = model(state, action)
    assert next_state.shape == (10, 2) and reward.shape == (10,) and next_state.dtype == mx.float32
    close(next_state, nexts.mean(0))
    close(reward, rewards.mean(0))
    assert float(mx.abs(nexts[0] - nexts[1]).max()) > 1e-3  # members start from their own draws


def test_each_member_on_its_own_rows_equals_all_on_the_same_rows():
    mx.random.seed(1)
    model = with_statistics(EnsembleWorldModel(3, hidden=(16,), reward_hidden=8))
    states, actions = batch(6, lead=(3,))  # [3, 6, 2], [3, 6, 3]
    nexts, rewards = model.members(states, actions)
    for k in range(3):
        shared_next, shared_reward = model.members(states[k], actions[k])
        close(nexts[k], shared_next[k])
        close(rewards[k], shared_reward[k])


def test_one_member_equals_its_world_model():
    mx.random.seed(2)
    single = with_statistics(WorldModel(hidden=(32, 16)))
    ensemble = EnsembleWorldModel.from_members([single])
    state, action = batch(50)
    (n1, r1), (n2, r2) = single(state, action), ensemble(state, action)
    close(n2, n1)
    close(r2, r1)
    n3, r3 = ensemble.members(state, action)
    assert n3.shape == (1, 50, 2) and r3.shape == (1, 50)
    close(n3[0], n1)
    close(ensemble.folded()(state, action)[0], n1)


def equal(a, b):
    return np.array_equal(np.array(a), np.array(b))


def test_k1_is_the_single_model():
    """``K = 1`` builds today's single model: nn.Linear layers ([out, in]) drawn in the same order, the seed's config."""
    mx.random.seed(7)
    model = WorldModel(hidden=(16, 12), reward_hidden=8, ensemble=1)
    mx.random.seed(7)
    layers = [nn.Linear(5, 16), nn.Linear(16, 12), nn.Linear(12, 2), nn.Linear(5, 2, bias=False), nn.Linear(5, 8), nn.Linear(8, 1)]
    assert model.config() == WorldModel(hidden=(16, 12), reward_hidden=8).config() == {
        "state_dim": 2, "action_dim": 3, "hidden": [16, 12], "reward_hidden": 8}
    for layer, expected in zip(model.linears(), layers):
        assert isinstance(layer, nn.Linear)
        got, want = dict(tree_flatten(layer.parameters())), dict(tree_flatten(expected.parameters()))
        assert got.keys() == want.keys() and all(equal(got[k], want[k]) for k in want)
    model = with_statistics(model)
    state, action = batch(30)
    next_state, reward = model(state, action)
    assert next_state.shape == (30, 2) and reward.shape == (30,)
    nexts, rewards = model.members(state, action)
    assert nexts.shape == (1, 30, 2) and equal(nexts[0], next_state) and equal(rewards[0], reward)
    again = EnsembleWorldModel.from_members([model])  # an ensemble of one is the model itself
    assert again.ensemble_size == 1 and equal(again(state, action)[0], next_state) and equal(again.folded()(state, action)[1], model.folded()(state, action)[1])


def test_member_k_is_the_single_model_with_its_weights():
    mx.random.seed(3)
    model = with_statistics(EnsembleWorldModel(3, hidden=(16,), reward_hidden=8, probabilistic=True, angles=(1,), reward_from_state=True))
    state, action = batch(40)
    noise = mx.random.normal((3, 40, 3))
    nexts, rewards = model.members(state * 3.0, action, noise)
    singles = [model.member(k) for k in range(3)]
    for k, single in enumerate(singles):
        assert single.ensemble_size == 1
        assert single.config() == {key: v for key, v in model.config().items() if key not in ("kind", "ensemble")}
        next_state, reward = single.members(state * 3.0, action, noise[k : k + 1])
        assert equal(next_state[0], nexts[k]) and equal(reward[0], rewards[k])
        assert equal(single.folded().members(state, action, noise[k : k + 1])[0][0], model.folded().members(state, action, noise)[0][k])
    rebuilt = WorldModel.from_members(singles)
    assert rebuilt.config() == model.config()
    assert all(equal(a, b) for (_, a), (_, b) in zip(tree_flatten(rebuilt.parameters()), tree_flatten(model.parameters())))
    with pytest.raises(ValueError, match="member must be in"):
        model.member(3)
    with pytest.raises(ValueError, match="single models"):
        WorldModel.from_members([model])


@pytest.mark.parametrize("ensemble", [1, 3])
def test_probabilistic_round_trip_with_angles(tmp_path, ensemble):
    mx.random.seed(8)
    model = WorldModel(hidden=(16,), reward_hidden=8, angles=(0,), reward_from_state=True, ensemble=ensemble, probabilistic=True)
    model = with_statistics(model)
    model.min_logvar, model.max_logvar = mx.full((3,), -7.0), mx.full((3,), 0.25)
    save_model(model, str(tmp_path))
    stored = json.loads((tmp_path / CONFIG_NAME).read_text())["model"]
    assert ("kind" in stored) == (ensemble > 1) and stored["probabilistic"] is True and stored["angles"] == [0]
    loaded = load_model(str(tmp_path))
    assert loaded.config() == model.config() and loaded.ensemble_size == ensemble
    state, action = batch(9)
    noise = mx.random.normal((ensemble, 9, 3))
    for a, b in ((loaded, model), (loaded.folded(), model.folded())):
        for x, y in zip(a.members(state * 3.0, action, noise), b.members(state * 3.0, action, noise)):
            assert x.shape[0] == ensemble and equal(x, y)
        assert all(equal(x, y) for x, y in zip(a(state, action), b(state, action)))


def test_from_members_keeps_each_member():
    singles = []
    for seed in range(3):
        mx.random.seed(seed)
        singles.append(with_statistics(WorldModel(hidden=(16,))))
    ensemble = EnsembleWorldModel.from_members(singles)
    state, action = batch(20)
    nexts, rewards = ensemble.members(state, action)
    for k, single in enumerate(singles):
        close(nexts[k], single(state, action)[0])
        close(rewards[k], single(state, action)[1])
    assert ensemble.flops_per_transition() == 3 * singles[0].flops_per_transition()
    with pytest.raises(ValueError, match="architecture"):
        EnsembleWorldModel.from_members([singles[0], WorldModel(hidden=(8,))])
    other = with_statistics(WorldModel(hidden=(16,)), seed=5)
    with pytest.raises(ValueError, match="statistics"):
        EnsembleWorldModel.from_members([singles[0], other])


@pytest.mark.parametrize("options", [{"angles": (1,)}, {"reward_from_state": True}, {"angles": (0, 1), "reward_from_state": True}])
def test_members_with_angles_or_a_state_reward_head_keep_each_world_model(tmp_path, options):
    singles = []
    for seed in range(3):
        mx.random.seed(seed)
        singles.append(with_statistics(WorldModel(hidden=(16,), **options)))
    ensemble = EnsembleWorldModel.from_members(singles)
    assert ensemble.config() == {**singles[0].config(), "kind": "ensemble", "ensemble": 3, "probabilistic": False}
    state, action = batch(30)
    state = state * 3.0  # angles past +-pi too
    for model in (ensemble, ensemble.folded()):
        nexts, rewards = model.members(state, action)
        for k, single in enumerate(singles):
            close(nexts[k], single(state, action)[0])
            close(rewards[k], single(state, action)[1])
    save_model(ensemble, str(tmp_path / "ens"))
    loaded = load_model(str(tmp_path / "ens"))
    assert loaded.angles == ensemble.angles and loaded.reward_from_state == ensemble.reward_from_state
    close(loaded(state, action)[0], ensemble(state, action)[0])


@pytest.mark.parametrize("angles", [(2,), (-1,), (0, 0)])
def test_bad_angles_are_refused_by_both_models(angles):
    for make in (lambda: WorldModel(state_dim=2, angles=angles), lambda: EnsembleWorldModel(2, state_dim=2, angles=angles)):
        with pytest.raises(ValueError, match=r"angles must be distinct state indices in \[0, 2\)"):
            make()
    assert EnsembleWorldModel(2, state_dim=2, angles=(1, 0)).angles == WorldModel(state_dim=2, angles=(1, 0)).angles == (0, 1)


def test_an_environments_ensemble_has_its_single_models_inputs():
    from worldmodel.envs import get_env
    from worldmodel.recipe import model_for

    for name in ("acrobot", "pendulum", "particle"):
        env = get_env(name)
        single, ensemble = model_for(env), model_for(env, ensemble=2)
        assert ensemble.angles == single.angles and ensemble.reward_from_state == single.reward_from_state
        assert ensemble.reward_hidden == single.reward_hidden and ensemble.hidden == single.hidden
        assert ensemble.flops_per_transition() == 2 * single.flops_per_transition()
    assert model_for(get_env("acrobot"), ensemble=2).angles == (0, 1)
    assert model_for(get_env("acrobot"), ensemble=2, angles=False).angles == ()


@pytest.mark.parametrize("probabilistic", [False, True])
@pytest.mark.parametrize("hidden", [(32, 32), (16,), (24, 16, 8)])
def test_folded_ensemble_matches(probabilistic, hidden):
    mx.random.seed(3)
    model = with_statistics(EnsembleWorldModel(3, hidden=hidden, reward_hidden=8, probabilistic=probabilistic))
    folded = model.folded()
    assert isinstance(folded, FoldedWorldModel) and folded.ensemble_size == 3
    state, action = batch(40)
    close(folded(state, action)[0], model(state, action)[0])
    close(folded(state, action)[1], model(state, action)[1])
    states, actions = batch(40, lead=(3,))
    noise = mx.random.normal((3, 40, 3)) if probabilistic else None
    (n1, r1), (n2, r2) = model.members(states, actions, noise), folded.members(states, actions, noise)
    close(n2, n1)
    close(r2, r1)
    assert folded.flops_per_transition() == model.flops_per_transition()


def test_noise_needs_probabilistic_heads():
    model = EnsembleWorldModel(2, hidden=(8,))
    state, action = batch(4)
    for m in (model, model.folded()):
        with pytest.raises(ValueError, match="probabilistic"):
            m.members(state, action, mx.zeros((2, 4, 3)))


def test_noise_moves_probabilistic_outputs_by_their_std():
    mx.random.seed(4)
    model = with_statistics(EnsembleWorldModel(2, hidden=(8,), probabilistic=True))
    state, action = batch(5)
    _, logvar = model.predict_normalized(state, action)
    base, base_r = model.members(state, action)
    moved, moved_r = model.members(state, action, mx.ones((2, 5, 3)))
    std = mx.exp(0.5 * logvar)
    close(moved - base, std[..., :2] * model.delta_norm.std, tol=1e-5)
    close(moved_r - base_r, std[..., 2] * model.reward_norm.std, tol=1e-5)


def test_logvar_bounds_are_soft_and_kept():
    low, high = mx.array([-10.0]), mx.array([0.5])
    raw = mx.array([[-100.0], [-3.0], [100.0]])
    bounded = np.array(bound_logvar(raw, low, high))[:, 0]
    assert -10.0 <= bounded[0] < -9.9 and abs(bounded[1] + 3.0) < 0.05 and 0.4 < bounded[2] < 0.5 + 1e-3


def test_bootstrap_probabilities_and_batches():
    rng = np.random.default_rng(0)
    base = np.full(50, 1 / 50)
    probabilities = bootstrap_probabilities(rng, base, 3)
    assert probabilities.shape == (3, 50)
    np.testing.assert_allclose(probabilities.sum(1), 1.0)
    left_out = probabilities == 0
    assert 0.2 < left_out.mean() < 0.5  # about 1/e of the rows are missing from each bootstrap
    assert not np.array_equal(left_out[0], left_out[1])
    index = draw_batches(rng, probabilities, 200, 64)
    assert index.shape == (200, 3, 64)
    for k in range(3):
        assert probabilities[k, index[:, k]].min() > 0  # only rows of the member's own bootstrap
        counts = np.bincount(index[:, k].ravel(), minlength=50) / index[:, k].size
        np.testing.assert_allclose(counts, probabilities[k], atol=0.01)
    single = draw_batches(np.random.default_rng(0), base, 4, 8)
    np.testing.assert_array_equal(single, np.random.default_rng(0).choice(50, size=(4, 8), p=base, replace=True))


def tiny_data():
    return generate(ParticleEnv(), episodes=20, steps=10, seed=0)


def test_training_makes_members_differ_by_their_bootstraps():
    mx.random.seed(0)
    single = WorldModel(hidden=(32, 32))
    mx.eval(single.parameters())
    model = EnsembleWorldModel.from_members([single] * 3)  # identical starts: only the data differ
    result = train(model, tiny_data(), TrainConfig(epochs=3, seed=0), log=None)
    assert np.all(np.isfinite(result.train_losses)) and result.train_losses[-1] < result.train_losses[0]
    nexts, _ = model.members(*batch(100))
    spread = float(mx.abs(nexts[0] - nexts[1]).max())
    assert spread > 1e-3


@pytest.mark.parametrize("probabilistic", [False, True])
def test_training_loss_sums_the_members(probabilistic):
    mx.random.seed(6)
    model = with_statistics(EnsembleWorldModel(3, hidden=(8,), probabilistic=probabilistic))
    states, actions = batch(5, lead=(3,))
    delta_t, reward_t = mx.random.normal((3, 5, 2)), mx.random.normal((3, 5))
    loss, err2 = model.training_loss(states, actions, delta_t, reward_t)
    mean, logvar = (np.array(v) if v is not None else None for v in model.predict_normalized(states, actions))
    expected_err2 = (mean - np.concatenate([np.array(delta_t), np.array(reward_t)[..., None]], -1)) ** 2
    np.testing.assert_allclose(np.array(err2), expected_err2, rtol=1e-5, atol=1e-6)
    if probabilistic:
        bounds = 0.01 * (np.array(model.max_logvar).sum() - np.array(model.min_logvar).sum())
        expected = (expected_err2 * np.exp(-logvar) + logvar).mean(axis=(1, 2)).sum() + bounds
    else:
        expected = expected_err2.mean(axis=(1, 2)).sum()
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)


def test_probabilistic_training_learns_bounds():
    mx.random.seed(0)
    model = EnsembleWorldModel(2, hidden=(32, 32), probabilistic=True)
    result = train(model, tiny_data(), TrainConfig(epochs=3, seed=0), log=None)
    assert np.all(np.isfinite(result.train_losses))
    assert not np.allclose(np.array(model.max_logvar), 0.5) and not np.allclose(np.array(model.min_logvar), -10.0)
    _, logvar = model.predict_normalized(*batch(20))
    assert float(logvar.max()) <= float(model.max_logvar.max()) + 1e-3
    assert float(logvar.min()) >= float(model.min_logvar.min()) - 1e-3


@pytest.mark.parametrize("probabilistic", [False, True])
def test_checkpoint_round_trip(tmp_path, probabilistic):
    mx.random.seed(5)
    model = with_statistics(EnsembleWorldModel(3, hidden=(16,), reward_hidden=8, probabilistic=probabilistic))
    save_model(model, str(tmp_path))
    with open(tmp_path / CONFIG_NAME) as f:
        assert json.load(f)["model"]["kind"] == "ensemble"
    loaded = load_model(str(tmp_path))
    assert isinstance(loaded, WorldModel) and loaded.ensemble_size == 3 and loaded.config() == model.config()
    states, actions = batch(7, lead=(3,))
    noise = mx.random.normal((3, 7, 3)) if probabilistic else None
    close(loaded.members(states, actions, noise)[0], model.members(states, actions, noise)[0], tol=0)


def test_unknown_model_kind_is_a_checkpoint_error(tmp_path):
    save_model(EnsembleWorldModel(2, hidden=(8,)), str(tmp_path))
    path = tmp_path / CONFIG_NAME
    config = json.loads(path.read_text())
    config["model"]["kind"] = "forest"
    path.write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="unknown model kind 'forest'"):
        load_model(str(tmp_path))


def test_recipe_and_cli_train_an_ensemble(tmp_path):
    out = str(tmp_path / "recipe")
    model, metrics = train_world_model(out, episodes=20, steps=10, hidden=(16, 16), config=TrainConfig(epochs=2), log=None, ensemble=2)
    assert isinstance(model, WorldModel) and model.ensemble_size == 2 and np.isfinite(metrics["held_out_mse_mean"])
    assert load_model(out).ensemble_size == 2
    with pytest.raises(ValueError, match="ensemble"):
        train_world_model(out, episodes=20, steps=10, config=TrainConfig(epochs=1), log=None, probabilistic=True)
    cli_out = str(tmp_path / "cli")
    result = CliRunner().invoke(main, ["train", *TINY_TRAIN, "--ensemble", "3", "--out", cli_out])
    assert result.exit_code == 0, result.output
    loaded = load_model(cli_out)
    assert isinstance(loaded, WorldModel) and loaded.ensemble_size == 3
    assert os.path.exists(os.path.join(cli_out, CONFIG_NAME))
    bad = CliRunner().invoke(main, ["train", *TINY_TRAIN, "--ensemble", "0", "--out", cli_out])
    assert bad.exit_code != 0 and "--ensemble must be >= 1" in bad.output


def test_bad_sizes_are_value_errors():
    with pytest.raises(ValueError, match="ensemble must be an integer >= 1"):
        EnsembleWorldModel(0)
    with pytest.raises(ValueError, match="positive sizes"):
        EnsembleWorldModel(2, hidden=())


def test_ensemble_compare_script(tmp_path, capsys):
    from benchmarks.ensemble_compare import main as compare_main

    path = tmp_path / "compare.json"
    compare_main(["--train-episodes", "5", "--train-steps", "10", "--epochs", "1", "--ensemble", "2", "--particles", "2",
                  "--modes", "tsinf,ts1", "--episodes", "2", "--steps", "2", "--samples", "16", "--json", str(path)])
    result = json.loads(path.read_text())
    assert [row["name"] for row in result["rows"]] == ["single", "ensemble2-mean", "ensemble2-tsinf-P2", "ensemble2-ts1-P2"]
    assert all(row["cost_ratio"] >= 1.0 - 1e-6 for row in result["rows"])  # nothing beats the exact optimum
    assert result["transitions"] == 50 and result["train_seconds"]["ratio"] > 0
    assert "cost ratio" in capsys.readouterr().out

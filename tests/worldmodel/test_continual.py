"""worldmodel.train.ContinualTrainer (warm-started training in fixed step counts) and worldmodel.run_folder (resumable snapshots)."""

from __future__ import annotations

import json
import os

import mlx.core as mx
import numpy as np
import pytest
from mlx.utils import tree_flatten

import planners
from worldmodel import EnsembleWorldModel, ParticleEnv, Transitions, WorldModel, generate, one_step_mse
from worldmodel.train import ContinualTrainer
from worldmodel.run_folder import MANIFEST, RunFolder, RunFolderError


def weights(model) -> dict:
    return {k: np.array(v) for k, v in tree_flatten(model.parameters())}


@pytest.fixture(scope="module")
def data():
    return generate(ParticleEnv(), 8, 20, seed=0)


@pytest.mark.parametrize("build", [lambda: WorldModel(2, 3, hidden=(32, 32)), lambda: EnsembleWorldModel(3, 2, 3, hidden=(32, 32))],
                         ids=["single", "ensemble"])
def test_saved_state_continues_exactly(build, data):
    mx.random.seed(0)
    model = build()
    trainer = ContinualTrainer(model, batch_size=32)
    trainer.fit(data, 30, np.random.default_rng(1))
    copy = build()
    copy.load_weights(list(tree_flatten(model.parameters())))
    resumed = ContinualTrainer(copy, batch_size=32)
    resumed.load_state_arrays(trainer.state_arrays())
    assert resumed.fitted
    first = trainer.fit(data, 20, np.random.default_rng(2))
    second = resumed.fit(data, 20, np.random.default_rng(2))
    assert first == second
    for name, value in weights(model).items():
        np.testing.assert_array_equal(value, weights(copy)[name], err_msg=name)


def test_fit_learns_and_warm_starts(data):
    mx.random.seed(0)
    model = WorldModel(2, 3, hidden=(32, 32))
    trainer = ContinualTrainer(model, batch_size=32)
    first = trainer.fit(data, 100, np.random.default_rng(0))
    second = trainer.fit(data, 100, np.random.default_rng(1))
    assert second < first  # the second call starts where the first stopped
    assert int(trainer.optimizer.state["step"].item()) == 200
    assert one_step_mse(model, data).mean() < 0.5 * first


def test_fixed_and_refit_normalization(data):
    mx.random.seed(0)
    model = WorldModel(2, 3, hidden=(16,))
    fixed = ContinualTrainer(model, normalization="fixed")
    fixed.fit(data.subset(slice(0, 40)), 2, np.random.default_rng(0))
    mean = np.array(model.state_norm.mean)
    fixed.fit(data, 2, np.random.default_rng(0))
    np.testing.assert_array_equal(np.array(model.state_norm.mean), mean)
    refit = ContinualTrainer(model, normalization="refit")
    refit.fit(data, 2, np.random.default_rng(0))
    np.testing.assert_allclose(np.array(model.state_norm.mean), data.states.mean(0), rtol=1e-5)


@pytest.mark.parametrize("options", [{"lr": 0.0}, {"batch_size": 0}, {"normalization": "sometimes"}])
def test_bad_options(options):
    with pytest.raises(ValueError):
        ContinualTrainer(WorldModel(2, 3, hidden=(8,)), **options)


def test_state_of_another_architecture_is_refused(data):
    trainer = ContinualTrainer(WorldModel(2, 3, hidden=(8,)))
    trainer.fit(data, 1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="shape"):
        ContinualTrainer(WorldModel(2, 3, hidden=(16,))).load_state_arrays(trainer.state_arrays())
    with pytest.raises(ValueError, match="not a trainer state"):
        ContinualTrainer(WorldModel(2, 3, hidden=(8,))).load_state_arrays({})


def snapshot_parts(data):
    mx.random.seed(0)
    model = WorldModel(2, 3, hidden=(8,))
    trainer = ContinualTrainer(model)
    trainer.fit(data, 2, np.random.default_rng(0))
    planner = planners.CEM(model, ParticleEnv().action_space, horizon=3, samples=8, iterations=1)
    _, state = planner.step(data.states[:2], planner.init([5, 6]))
    return model, trainer.state_arrays(), state


def test_run_folder_round_trip(tmp_path, data):
    model, trainer, planner_state = snapshot_parts(data)
    path = str(tmp_path / "run")
    with RunFolder(path) as run:
        assert not run.has_run()
        run.save(0, model, trainer, data.subset(slice(0, 10)), None, {"curve": [0]})
        run.save(1, model, trainer, data, planner_state, {"curve": [0, 1]})
    assert sorted(os.listdir(path)) == ["iteration-0001", MANIFEST]  # the older snapshot is gone
    with RunFolder(path) as run:
        snap = run.load()
    assert snap.iteration == 1 and snap.record == {"curve": [0, 1]}
    np.testing.assert_array_equal(snap.data.states, data.states)
    for name, value in weights(model).items():
        np.testing.assert_array_equal(weights(snap.model)[name], value)
    np.testing.assert_array_equal(np.array(snap.planner.keys), np.array(planner_state.keys))
    np.testing.assert_array_equal(snap.planner.ids, [5, 6])
    np.testing.assert_array_equal(np.array(snap.planner.warm.actions), np.array(planner_state.warm.actions))
    assert set(snap.trainer) == set(trainer)


def test_run_folder_errors(tmp_path, data):
    model, trainer, _ = snapshot_parts(data)
    path = str(tmp_path / "run")
    with RunFolder(path) as run:
        with pytest.raises(RunFolderError, match="no run to resume"):
            run.load()
        with pytest.raises(RunFolderError, match="in use"):
            RunFolder(path).__enter__()
        run.save(3, model, trainer, data, None, {})
    with open(os.path.join(path, "iteration-0003", "data.npz"), "ab") as f:
        f.write(b"x")
    with RunFolder(path) as run, pytest.raises(RunFolderError, match="checksum"):
        run.load()
    manifest = os.path.join(path, MANIFEST)
    with open(manifest) as f:
        record = json.load(f)
    with open(manifest, "w") as f:
        json.dump({**record, "format": "wmplan-run/9"}, f)
    with RunFolder(path) as run, pytest.raises(RunFolderError, match="newer wmplan"):
        run.load()
    with open(manifest, "w") as f:
        f.write("{")
    with RunFolder(path) as run, pytest.raises(RunFolderError, match="corrupt"):
        run.load()
    with RunFolder(path) as run:  # a fresh run forgets the old one
        run.clear()
        assert not run.has_run() and os.listdir(path) == []


def test_interrupted_save_keeps_the_previous_snapshot(tmp_path, data, monkeypatch):
    model, trainer, _ = snapshot_parts(data)
    path = str(tmp_path / "run")
    with RunFolder(path) as run:
        run.save(0, model, trainer, data, None, {"at": 0})
        monkeypatch.setattr(Transitions, "save", failing_save)
        with pytest.raises(OSError, match="disk full"):
            run.save(1, model, trainer, data, None, {"at": 1})
    monkeypatch.undo()
    with RunFolder(path) as run:
        snap = run.load()
        assert snap.iteration == 0 and snap.record == {"at": 0}
        run.save(1, model, trainer, data, None, {"at": 1})  # removes the half-written folder first
        assert run.load().iteration == 1



def failing_save(self, path):
    raise OSError("disk full")

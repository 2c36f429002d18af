"""Absurd sizes: estimated memory against the memory available, a one-line error before allocating."""

from __future__ import annotations

import re
import time

import mlx.core as mx
import pytest
from click.testing import CliRunner

from cli import main
from planners import CEM, MPPI, CEMGradient, GradientPlanner, Propagation, RandomShooting
from planners.distributions import colored_noise_basis
from planners.runtime import memory
from planners.runtime.memory import MemoryBudgetError, available_bytes, check_fits, format_bytes
from tests.conftest import invoke, one_error_line
from worldmodel.envs import ParticleEnv

ENV = ParticleEnv()
GB = 10**9


@pytest.fixture
def eight_gb(monkeypatch):
    """A machine with 8 GB available, whatever this one has."""
    monkeypatch.setattr(memory, "available_bytes", lambda: 8 * GB)


def test_available_bytes_is_a_plausible_amount():
    available = available_bytes()
    assert available is None or 10**7 < available < 10**14


def test_check_fits_says_the_estimate_and_what_is_available(eight_gb):
    check_fits(7 * GB, "a small job")
    with pytest.raises(MemoryBudgetError) as info:
        check_fits(54 * GB, "a big job")
    assert str(info.value) == "a big job needs about 54.0 GB of memory, more than the 8.0 GB available"


def test_format_bytes():
    assert [format_bytes(n) for n in (512, 1500, 2.5e6, 9.5e9, 3e12, 4e15)] == [
        "512 B", "1.5 kB", "2.5 MB", "9.5 GB", "3.0 TB", "4000.0 TB"]


def test_estimates_grow_with_every_size_and_with_gradients():
    base = CEM(ENV, ENV.action_space, horizon=15, samples=500)
    estimate = base.memory_estimate(20)
    assert CEM(ENV, ENV.action_space, horizon=30, samples=500).memory_estimate(20) > estimate
    assert CEM(ENV, ENV.action_space, horizon=15, samples=1000).memory_estimate(20) > estimate
    assert base.memory_estimate(40) > estimate
    gradient = GradientPlanner(ENV, ENV.action_space, horizon=15, samples=500).memory_estimate(20)
    assert gradient > 10 * estimate  # every step kept for the backward pass
    hybrid = CEMGradient(ENV, ENV.action_space, horizon=15, samples=500).memory_estimate(20)
    assert estimate < hybrid < gradient  # only the elites are differentiated


class Exploding:
    """Dynamics that fail the test if they are ever called."""

    action_dim = 3

    def __call__(self, state, action):
        raise AssertionError("the planner started imagining")


@pytest.mark.parametrize("cls", [RandomShooting, CEM, MPPI, GradientPlanner], ids=lambda c: c.__name__)
def test_planning_too_many_samples_fails_before_imagining(cls, eight_gb):
    planner = cls(Exploding(), ENV.action_space, horizon=15, samples=100_000_000)
    with pytest.raises(MemoryBudgetError, match=r"planning 20 environment\(s\) x 100000000 samples x horizon 15 "
                                                r"needs about [\d.]+ TB of memory, more than the 8\.0 GB available"):
        planner.optimize(mx.zeros((20, 2)))


def test_a_colored_noise_basis_too_large_fails_before_allocating(eight_gb):
    with pytest.raises(MemoryBudgetError, match=r"colored-noise basis for horizon 100000 needs about 320\.0 GB"):
        colored_noise_basis(100_000, 2.0)
    with pytest.raises(MemoryBudgetError, match="colored-noise basis"):
        MPPI(ENV, ENV.action_space, horizon=100_000)
    assert colored_noise_basis(1000, 2.0).shape == (1000, 1000)  # 32 MB: fine


@pytest.mark.parametrize(
    "args, message",
    [
        (["--samples", "100000000"], r"planning 20 environment\(s\) x 100000000 samples x horizon 15 needs about"),
        (["--horizon", "100000"], "the colored-noise basis for horizon 100000 needs about 320.0 GB"),
        (["--planners", "random-shooting,gradient", "--samples", "100000"], r"planning 20 environment\(s\) x 100000 samples"),
    ],
    ids=["samples", "horizon", "second planner"],
)
def test_benchmark_refuses_absurd_sizes_at_once(eight_gb, args, message):
    start = time.perf_counter()
    result = CliRunner().invoke(main, ["benchmark", "--dynamics", "true", "--steps", "2", *args])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert re.search(message, lines[0]), lines[0]
    assert time.perf_counter() - start < 30


def test_speed_refuses_absurd_sizes_before_timing(eight_gb, tiny_model_path):
    result = CliRunner().invoke(main, ["speed", "--model", tiny_model_path, "--planners", "cem",
                                       "--samples", "256,1000000000", "--horizons", "15", "--repeats", "1"])
    assert result.exit_code == 1, result.output
    assert "1000000000 samples x horizon 15 needs about" in result.output.strip().splitlines()[-1]


class ExplodingEnsemble(Exploding):
    """An ensemble of five members that fails the test if it is ever called."""

    ensemble_size = 5

    def members(self, state, action, noise=None):
        raise AssertionError("the planner started imagining")


def test_particles_and_members_count_in_the_estimate():
    plain = CEM(ENV, ENV.action_space, horizon=15, samples=500).memory_estimate(20)
    with_particles = {
        (mode, particles): CEM(ExplodingEnsemble(), ENV.action_space, horizon=15, samples=500,
                               propagation=Propagation(mode, particles=particles)).memory_estimate(20)
        for mode, particles in [("tsinf", 5), ("tsinf", 50), ("tsinf", 51), ("ts1", 50), ("expectation", 1)]
    }
    assert with_particles["tsinf", 5] > plain
    assert with_particles["tsinf", 50] > 5 * with_particles["tsinf", 5]
    assert with_particles["tsinf", 51] > with_particles["tsinf", 50]  # padded to whole members
    assert with_particles["ts1", 50] == with_particles["tsinf", 50]
    assert with_particles["expectation", 1] == with_particles["tsinf", 5]  # every member steps every row
    gradient = GradientPlanner(ExplodingEnsemble(), ENV.action_space, horizon=15, samples=500,
                               propagation=Propagation("tsinf", particles=50)).memory_estimate(20)
    assert gradient > 10 * GradientPlanner(ENV, ENV.action_space, horizon=15, samples=500).memory_estimate(20)


def test_a_million_particles_fail_before_imagining(eight_gb):
    planner = CEM(ExplodingEnsemble(), ENV.action_space, horizon=15, samples=100,
                  propagation=Propagation("tsinf", particles=10**6))
    with pytest.raises(MemoryBudgetError, match=r"planning 1 environment\(s\) x 100 samples x horizon 15 x 1000000 particles "
                                                r"needs about [\d.]+ GB of memory, more than the 8\.0 GB available"):
        planner.optimize(mx.zeros((1, 2)))


def test_benchmark_refuses_too_many_particles_before_planning(eight_gb, tmp_path):
    path = str(tmp_path / "ensemble")
    trained = invoke("train", "--episodes", "20", "--steps", "10", "--epochs", "2", "--hidden", "16", "--ensemble", "2", "--out", path)
    assert trained.exit_code == 0, trained.output
    start = time.perf_counter()
    result = invoke("benchmark", "--planners", "cem", "--dynamics", "model", "--model", path, "--steps", "2",
                    "--propagation", "tsinf", "--particles", "200000")
    line = one_error_line(result, 1)
    assert re.fullmatch(r"planning 20 environment\(s\) x \d+ samples x horizon \d+ x 200000 particles needs about "
                        r"[\d.]+ TB of memory, more than the 8\.0 GB available", line), line
    assert time.perf_counter() - start < 30


@pytest.mark.parametrize(
    "args, message",
    [
        (["rollout", "--steps", "1000000000"], r"recording 2 episode\(s\) x 1000000000 steps"),
        (["plan", "--dynamics", "true", "--steps", "1000000000"], r"recording 1 episode\(s\) x 1000000000 steps"),
        (["benchmark", "--dynamics", "true", "--episodes", "1000000000"], r"recording 1000000000 episode\(s\) x 50 steps"),
        (["train", "--episodes", "1000000000"], r"recording 1000000000 episode\(s\) x \d+ steps"),
        (["train", "--steps", "1000000000"], r"recording \d+ episode\(s\) x 1000000000 steps"),
    ],
    ids=["rollout steps", "plan steps", "benchmark episodes", "train episodes", "train steps"],
)
def test_episode_sizes_are_refused_before_recording(eight_gb, tiny_model_path, args, message):
    start = time.perf_counter()
    model = ["--model", tiny_model_path] if args[0] == "rollout" else []
    line = one_error_line(invoke(*args, *model), 1)
    assert re.fullmatch(message + r" needs about [\d.]+ [GT]B of memory, more than the 8\.0 GB available", line), line
    assert time.perf_counter() - start < 30


@pytest.mark.parametrize("args, message", [
    (["--ensemble", "1000000000"], r"training 1000000000 member\(s\) of 17,773 weights on 18000 transitions"),
    (["--hidden", "30000"], r"training 1 member\(s\) of 900,270,237 weights on 18000 transitions"),
], ids=["ensemble", "hidden"])
def test_train_refuses_absurd_models_before_collecting_data(eight_gb, args, message, tmp_path):
    result = invoke("train", *args, "--out", tmp_path / "model")
    line = one_error_line(result, 1)
    assert re.match(message + r" \(\d+ batches of 128 drawn at once\) needs about [\d.]+ [GT]B of memory, "
                              r"more than the 8\.0 GB available$", line), line
    assert "Dataset size" not in result.output  # refused before any episode was recorded


def test_training_steps_are_estimated_before_drawing_batches(eight_gb, monkeypatch):
    import numpy as np

    from worldmodel import WorldModel
    from worldmodel.data import generate
    from worldmodel.train import ContinualTrainer, TrainConfig, train

    data = generate(ENV, 4, 10)
    with pytest.raises(MemoryBudgetError, match=r"\(1000000000 batches of 40 drawn at once\) needs about 800\.0 GB"):
        ContinualTrainer(WorldModel(2, 3, hidden=(8, 8))).fit(data, 10**9, np.random.default_rng(0))
    monkeypatch.setattr(memory, "available_bytes", lambda: 10**7)  # 10 MB: a 4 MB model's Adam state does not fit
    with pytest.raises(MemoryBudgetError, match=r"training 1 member\(s\) of 1,\d{3},\d{3} weights on 36 transitions "
                                                r"\(1 batches of 36 drawn at once\) needs about 2\d\.\d MB"):
        train(WorldModel(2, 3, hidden=(1000, 1000)), data, TrainConfig(epochs=1), log=None)


@pytest.mark.parametrize("args, message", [
    (["--first-train-steps", "1000000000"], r"training 1 member\(s\) of [\d,]+ weights on \d+ transitions \(1000000000 batches"),
    (["--train-steps", "1000000000"], r"training 1 member\(s\) of [\d,]+ weights on \d+ transitions \(1000000000 batches"),
    (["--eval-episodes", "100000000"], r"recording 100000000 episode\(s\) x 50 steps"),
    (["--episodes-per-round", "100000000"], r"recording 100000000 episode\(s\) x 50 steps"),
    (["--random-episodes", "1000000000"], r"recording 1000000000 episode\(s\) x \d+ steps"),
], ids=["first train steps", "train steps", "eval episodes", "episodes per round", "random episodes"])
def test_mbrl_refuses_absurd_sizes_before_any_work(eight_gb, tmp_path, args, message):
    start = time.perf_counter()
    result = invoke("mbrl", "--out", tmp_path / "run", "--ensemble", "1", *args)
    line = one_error_line(result, 1)
    assert re.match(message + r".* needs about [\d.]+ [GT]B of memory, more than the 8\.0 GB available$", line), line
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())
    assert time.perf_counter() - start < 30


def test_train_refuses_too_many_weights_before_collecting_data_on_any_machine(monkeypatch, tmp_path):
    monkeypatch.setattr(memory, "available_bytes", lambda: 10**15)  # memory enough: the weights bound refuses
    result = invoke("train", "--hidden", "30000", "--out", tmp_path / "model")
    line = one_error_line(result, 1)
    assert line == ("a WorldModel of 900,270,237 weights is larger than the 268,435,456 allowed (ensemble=1, "
                    "state_dim=2, action_dim=3, hidden=(30000, 30000), reward_hidden=32)"), line
    assert "Dataset size" not in result.output and not (tmp_path / "model").exists()


def test_mbrl_counts_an_ensembles_particles_before_any_work(eight_gb, tmp_path):
    start = time.perf_counter()
    result = invoke("mbrl", "--out", tmp_path / "run", "--ensemble", "3", "--particles", "2000000")
    line = one_error_line(result, 1)
    assert re.fullmatch(r"planning 1 environment\(s\) x \d+ samples x horizon \d+ x 2000000 particles needs about "
                        r"[\d.]+ [GT]B of memory, more than the 8\.0 GB available", line), line
    assert "References" not in result.output  # before the true-dynamics references (the first work)
    assert not (tmp_path / "run").exists()
    assert time.perf_counter() - start < 30

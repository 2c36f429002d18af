"""Propagation: particles through an ensemble (expectation, TS1, TS-inf), risk measures, determinism."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest

from planners import CEM, EnsembleDynamics, Propagation, make_planner
from planners.base import env_key
from planners.dynamics import make_evaluate
from planners.propagation import propagate
from worldmodel import EnsembleWorldModel, ParticleEnv, WorldModel

H = 6


class MeanCall:
    def __call__(self, state, action):
        next_state, reward = self.members(state, action)
        return next_state.mean(0), reward.mean(0)


class Ladder(MeanCall):
    """A toy ensemble whose member ``k`` adds ``k`` to the state and pays reward ``k``: returns show the members used."""

    def __init__(self, size: int):
        self.ensemble_size = size

    def members(self, state, action, noise=None):
        k = mx.arange(self.ensemble_size, dtype=mx.float32)
        lead = (self.ensemble_size, *state.shape[-2:-1])
        k_rows = mx.broadcast_to(k.reshape(-1, *([1] * (len(lead) - 1))), lead)
        return state + k_rows[..., None], k_rows


class Pushed(MeanCall):
    """A toy probabilistic ensemble without matrix products (bit-exact in any batch): member ``k`` drifts by ``0.02 k``."""

    ensemble_size, probabilistic = 3, True

    def members(self, state, action, noise=None):
        push = (action * mx.array([-1.0, 0.0, 1.0])).sum(-1, keepdims=True)
        drift = 0.02 * mx.arange(self.ensemble_size, dtype=mx.float32).reshape(-1, 1, 1)
        next_state = state + 0.1 * push + drift
        if noise is not None:
            next_state = next_state + 0.05 * noise[..., :-1]
        reward = -mx.abs(next_state[..., 0])
        return next_state, reward if noise is None else reward + 0.01 * noise[..., -1]


def keys(ids, seed=0):
    return mx.array(np.stack([env_key(seed, i) for i in ids]).astype(np.uint32))


def actions(envs=2, num=5, horizon=H, seed=0):
    rng = np.random.default_rng(seed)
    return mx.array(np.eye(3, dtype=np.float32)[rng.integers(0, 3, (envs, num, horizon))])


def start(envs=2):
    return mx.zeros((envs, 2))


def test_the_toy_is_an_ensemble():
    assert isinstance(Ladder(3), EnsembleDynamics)
    assert isinstance(EnsembleWorldModel(2, hidden=(8,)), EnsembleDynamics)
    assert isinstance(WorldModel(), EnsembleDynamics) and WorldModel().ensemble_size == 1  # one model: an ensemble of one


@pytest.mark.parametrize("mode", ["expectation", "ts1", "tsinf"])
@pytest.mark.parametrize("num, particles, size", [(5, 4, 4), (3, 2, 4), (1, 1, 3), (7, 3, 2)])
def test_shapes_of_every_mode(mode, num, particles, size):
    returns = propagate(Ladder(size), Propagation(mode, particles=particles), start(3), actions(3, num), keys(range(3)))
    assert returns.shape == (3, num, particles) and returns.dtype == mx.float32


def tsinf_members(num, particles, size, envs=2):
    """The member each particle of ``[E, N, P]`` used, read off the Ladder's returns (H steps of member k pay H * k)."""
    returns = np.array(propagate(Ladder(size), Propagation("tsinf", particles=particles), start(envs), actions(envs, num), keys(range(envs))))
    member = returns / H
    np.testing.assert_array_equal(member, np.round(member))  # never switched
    return member.astype(int)


def test_tsinf_keeps_each_particle_on_one_member_and_spreads_every_sequence_over_all():
    member = tsinf_members(num=5, particles=8, size=4)
    for e in range(2):
        for n in range(5):
            np.testing.assert_array_equal(np.bincount(member[e, n], minlength=4), [2, 2, 2, 2])


def test_tsinf_with_fewer_particles_than_members_and_padding():
    member = tsinf_members(num=7, particles=3, size=4, envs=8)
    assert all(len(set(row)) == 3 for row in member.reshape(-1, 3))  # three different members per sequence
    counts = np.array([np.bincount(m.ravel(), minlength=4) for m in member])
    assert counts.max() - counts.min() <= 1  # 21 particles over 4 members: 5 or 6 each
    assert len({tuple(m.ravel()) for m in member}) > 1  # each environment draws its own shift


def test_ts1_switches_members_between_steps():
    returns = np.array(propagate(Ladder(4), Propagation("ts1", particles=4), start(), actions(2, 5), keys([0, 1])))
    assert np.all((returns >= 0) & (returns <= 3 * H))
    assert np.mean(returns / H != np.round(returns / H)) > 0.5  # most particles mixed members
    assert returns.std() < np.array(propagate(Ladder(4), Propagation("tsinf"), start(), actions(2, 5), keys([0, 1]))).std()


def test_expectation_is_the_members_mean():
    returns = np.array(propagate(Ladder(4), Propagation("expectation", particles=2), start(), actions(), keys([0, 1])))
    np.testing.assert_allclose(returns, H * 1.5)


def test_discount_and_terminal_value():
    prop = Propagation("tsinf", particles=3)
    value = lambda s: 10.0 * s[:, 0]  # noqa: E731
    returns = np.array(propagate(Ladder(3), prop, start(1), actions(1, 4), keys([0]), discount=0.5, terminal_value=value))
    plain = np.array(propagate(Ladder(3), prop, start(1), actions(1, 4), keys([0])))
    k = plain / H  # the same draws: each particle's member
    expected = k * sum(0.5**t for t in range(H)) + 0.5**H * 10.0 * H * k
    np.testing.assert_allclose(returns, expected, rtol=1e-6)


@pytest.mark.parametrize(
    "aggregate, beta, alpha, expected",
    [
        ("mean", 1.0, 0.1, 4.0),
        ("mean-std", 0.5, 0.1, 4.0 - 0.5 * np.sqrt(12.5)),
        ("mean-std", 0.0, 0.1, 4.0),
        ("cvar", 1.0, 0.25, 1.0),
        ("cvar", 1.0, 0.3, 1.5),  # ceil(0.3 * 4) = 2 worst
        ("cvar", 1.0, 0.5, 1.5),
        ("cvar", 1.0, 1.0, 4.0),
    ],
)
def test_risk_measures(aggregate, beta, alpha, expected):
    particle_returns = mx.array([[[10.0, 1.0, 3.0, 2.0]]])
    value = Propagation(aggregate=aggregate, beta=beta, alpha=alpha).reduce(particle_returns)
    assert value.shape == (1, 1)
    np.testing.assert_allclose(float(value[0, 0]), expected, rtol=1e-6)


@pytest.mark.parametrize("aggregate", ["mean", "mean-std", "cvar"])
def test_a_non_finite_particle_makes_the_sequence_minus_inf(aggregate):
    value = Propagation(aggregate=aggregate, alpha=0.5).reduce(mx.array([[1.0, float("nan"), 3.0, 4.0], [1.0, 2.0, 3.0, 4.0]]))
    assert float(value[0]) == -np.inf and np.isfinite(float(value[1]))


@pytest.mark.parametrize("mode", ["expectation", "ts1", "tsinf"])
def test_termination_discount_and_terminal_value_through_the_one_loop(mode):
    # Ladder(2): member 0 stays at 0 paying 0, member 1 climbs 1 per step paying 1; the mean climbs 0.5.
    # done at s >= 1; discount 0.5; V(s) = 10 + s; H = 3.
    done = lambda s: s[:, 0] >= 1.0  # noqa: E731
    value = lambda s: 10.0 + s[:, 0]  # noqa: E731
    prop = Propagation(mode, particles=2)
    returns = np.array(
        propagate(Ladder(2), prop, start(1), actions(1, 1, horizon=3), keys([0]), discount=0.5, terminal_value=value, termination=done)
    )
    if mode == "expectation":  # 0.5 + 0.5 * 0.5, done at step 1: no later reward, no terminal value
        expected = [0.75, 0.75]
    elif mode == "tsinf":  # one particle per member: 0.125 * V(0) never done; 1 done at once
        expected = sorted([0.125 * 10.0, 1.0])
    else:  # ts1: one member per slot and step, so one particle is done at once (1); the other is done at
        # step 1 (0.5) or 2 (0.25) or never (0.125 * V(0))
        rest = returns.ravel().tolist()
        rest.remove(1.0)  # ValueError (a failure) when no particle is done at once
        assert np.isclose(rest[0], [0.5, 0.25, 1.25]).any()
        return
    np.testing.assert_allclose(np.sort(returns.ravel()), expected, rtol=1e-6)


def test_one_member_equals_the_world_model():
    mx.random.seed(0)
    single = WorldModel(hidden=(16, 16))
    mx.eval(single.parameters())
    ensemble = EnsembleWorldModel.from_members([single])
    state = mx.array([[1.0, 0.0], [-0.5, 0.3]])
    seqs = actions(2, 6)
    expected = np.array(make_evaluate(single, discount=0.9)(state, seqs))
    for mode in ("expectation", "ts1", "tsinf"):
        evaluate = Propagation(mode).make_evaluate(ensemble.folded(), discount=0.9)
        evaluate.start(keys([0, 1]))
        np.testing.assert_allclose(np.array(evaluate(state, seqs)), expected, rtol=1e-5, atol=1e-5)


def probabilistic_ensemble():
    mx.random.seed(1)
    return EnsembleWorldModel(3, hidden=(16, 16), reward_hidden=8, probabilistic=True).folded()


def test_sampled_noise_spreads_the_particles():
    model = probabilistic_ensemble()
    state = mx.array([[1.0, 0.0]])
    quiet = np.array(propagate(model, Propagation("expectation", particles=4), state, actions(1, 3), keys([0])))
    noisy = np.array(propagate(model, Propagation("expectation", particles=4, sample_noise=True), state, actions(1, 3), keys([0])))
    assert np.ptp(quiet, axis=-1).max() == 0.0 and np.ptp(noisy, axis=-1).min() > 0.0


@pytest.mark.parametrize("mode", ["expectation", "ts1", "tsinf"])
@pytest.mark.parametrize("noise", [False, True])
@pytest.mark.parametrize("learned", [False, True])
def test_same_actions_in_any_batch_composition(mode, noise, learned):
    """Planning envs [0, 1, 2] together or env 1 alone gives env 1 the same actions; the returns are bit-equal
    with the exact toy and equal up to the matrix products' rounding (which depends on the row count) with a model."""
    model, space = (probabilistic_ensemble() if learned else Pushed()), ParticleEnv().action_space
    prop = Propagation(mode, particles=3, sample_noise=noise, aggregate="cvar", alpha=0.5)
    states = mx.array([[1.0, 0.0], [0.5, 0.2], [-1.0, 0.3]])

    def plan(rows, ids, streams=None):
        planner = CEM(model, space, horizon=5, samples=16, iterations=2, propagation=prop, streams=streams, seed=3)
        first = planner.optimize(states[rows], env_ids=ids)
        return first, planner.optimize(states[rows], env_ids=ids)  # the second call continues the streams

    together = plan(slice(0, 3), [0, 1, 2], streams=2)
    alone = plan(slice(1, 2), [1], streams=1)
    for joint, single in zip(together, alone):
        np.testing.assert_array_equal(np.array(joint.actions[1]), np.array(single.actions[0]))
        np.testing.assert_allclose(np.array(joint.expected_return[1]), np.array(single.expected_return[0]), rtol=1e-6 if learned else 0)


def test_draws_follow_the_key_streams():
    model = probabilistic_ensemble()
    prop = Propagation("ts1", particles=2, sample_noise=True)
    a = np.array(propagate(model, prop, start(1), actions(1, 4), keys([0])))
    b = np.array(propagate(model, prop, start(1), actions(1, 4), keys([0])))
    c = np.array(propagate(model, prop, start(1), actions(1, 4), keys([1])))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("name", ["random-shooting", "mppi", "icem", "cem-gd"])
def test_every_planner_takes_a_propagation(name):
    planner = make_planner(
        name, probabilistic_ensemble(), ParticleEnv().action_space, horizon=4, samples=8, iterations=2,
        propagation=Propagation("tsinf", particles=3, sample_noise=True),
    )
    plan = planner.optimize(mx.array([[1.0, 0.0], [0.0, 0.5]]))
    assert plan.actions.shape == (2, 4, 3) and np.all(np.isfinite(np.array(plan.expected_return)))


def test_errors_a_user_can_cause():
    space = ParticleEnv().action_space
    with pytest.raises(ValueError, match="mode"):
        Propagation("ts2")
    with pytest.raises(ValueError, match="aggregate"):
        Propagation(aggregate="max")
    with pytest.raises(ValueError, match="alpha"):
        Propagation(alpha=0.0)
    with pytest.raises(ValueError, match="particles"):
        Propagation(particles=0)
    with pytest.raises(ValueError, match="beta"):
        Propagation(beta=-1.0)
    with pytest.raises(ValueError, match="members"):
        CEM(ParticleEnv(), space, propagation=Propagation())  # dynamics without members
    with pytest.raises(ValueError, match="probabilistic"):
        CEM(EnsembleWorldModel(2, hidden=(8,)), space, propagation=Propagation(sample_noise=True))
    with pytest.raises(ValueError, match="propagation must be"):
        CEM(Ladder(2), space, propagation="tsinf")
    evaluate = Propagation().make_evaluate(Ladder(2))
    with pytest.raises(ValueError, match="start"):
        evaluate(start(1), actions(1, 2))


class Doubled(Ladder):
    """An ensemble whose members return next states twice too wide."""

    def members(self, state, action, noise=None):
        next_state, reward = super().members(state, action, noise)
        return mx.concatenate([next_state, next_state], axis=-1), reward


@pytest.mark.parametrize("mode, rows", [("expectation", "= 27 rows"), ("tsinf", "= 27 rows, padded to 36")])
def test_ensemble_shape_errors_say_how_the_rows_come_about(mode, rows):
    planner = CEM(Doubled(4), ParticleEnv().action_space, horizon=3, samples=3, iterations=1, propagation=Propagation(mode, particles=3))
    with pytest.raises(ValueError, match=rf"ensemble members returned .* \(the planner imagines 3 environments × 3 samples × 3 particles {rows}\)"):
        planner.act(mx.zeros((3, 2)))


class NumpyLadder(Ladder):
    """The Ladder returning numpy arrays."""

    def members(self, state, action, noise=None):
        next_state, reward = super().members(state, action, noise)
        return np.array(next_state), np.array(reward)


class NoNoise(Ladder):
    """An ensemble whose members() lacks the noise argument."""

    def members(self, state, action):
        return super().members(state, action)


@pytest.mark.parametrize("mode", ["expectation", "tsinf"])
def test_members_returning_numpy_are_converted(mode):
    run = lambda ensemble: propagate(ensemble, Propagation(mode, particles=2), start(2), actions(2, 3), keys(range(2)))  # noqa: E731
    np.testing.assert_array_equal(np.array(run(NumpyLadder(2))), np.array(run(Ladder(2))))


def test_members_of_another_kind_are_refused_naming_the_protocol():
    space = ParticleEnv().action_space
    with pytest.raises(ValueError, match=r"NoNoise.members\(state, action\) does not fit the EnsembleDynamics protocol: "
                       r"members\(state, action, noise=None\)"):
        CEM(NoNoise(2), space, horizon=3, samples=4, propagation=Propagation())

    class Listed(Ladder):
        def members(self, state, action, noise=None):
            return [*super().members(state, action, noise), None]

    planner = CEM(Listed(2), space, horizon=3, samples=4, iterations=1, propagation=Propagation())
    with pytest.raises(ValueError, match=r"ensemble members\(\) must return a pair \(next_state \[K, B, S\], reward \[K, B\]\), got a list of 3 values"):
        planner.act(start(1))

    class Texts(Ladder):
        def members(self, state, action, noise=None):
            return "next", "reward"

    planner = CEM(Texts(2), space, horizon=3, samples=4, iterations=1, propagation=Propagation())
    with pytest.raises(ValueError, match=r"ensemble members\(\) returned next_state as a str, expected an MLX \(or numpy\) array"):
        planner.act(start(1))


def test_streams_split_the_environments_without_changing_anything():
    prop = Propagation("ts1", particles=4, sample_noise=True)
    seqs, ids = actions(12, 16), keys(range(12))
    state = mx.array(np.random.default_rng(0).uniform(-1, 1, (12, 2)).astype(np.float32))
    one = np.array(propagate(Pushed(), prop, state, seqs, ids, streams=1))
    two = np.array(propagate(Pushed(), prop, state, seqs, ids, streams=2))  # 66 rows per env (64 particles, 2 padding): two shards of 6
    np.testing.assert_array_equal(one, two)


@pytest.mark.parametrize("mode", ["expectation", "tsinf"])
def test_large_steps_in_chunks_are_the_same(mode, monkeypatch):
    prop = Propagation(mode, particles=4, sample_noise=True)
    state, seqs, ids = mx.array([[0.3, -0.2], [1.0, 0.5]]), actions(2, 16), keys([0, 1])
    whole = np.array(propagate(Pushed(), prop, state, seqs, ids, streams=1))
    monkeypatch.setattr("planners.runtime.streams.CHUNK_ROWS", 12)  # 4 rows per member and slice: many slices
    np.testing.assert_array_equal(np.array(propagate(Pushed(), prop, state, seqs, ids, streams=1)), whole)


def test_terminated_particles_add_nothing_more():
    """A toy ensemble whose state counts steps: termination after step 2 keeps only two rewards."""
    import planners
    import planners.propagation as propagation

    class Counter:
        ensemble_size = 2

        def members(self, state, action, noise=None):
            shape = state.shape if state.ndim == 3 else (self.ensemble_size, *state.shape)
            state = mx.broadcast_to(state, shape)
            return state + 1.0, mx.ones(shape[:-1])

        def __call__(self, state, action):
            return state + 1.0, mx.ones(state.shape[:1])

    keys = mx.array(np.stack([planners.base.env_key(0, i) for i in range(2)]).astype(np.uint32))
    actions = mx.zeros((2, 3, 5, 1))
    for mode in ("expectation", "ts1", "tsinf"):
        returns = propagation.propagate(
            Counter(), planners.Propagation(mode=mode, particles=2), mx.zeros((2, 1)), actions, keys,
            terminal_value=lambda s: 100.0 * mx.ones(s.shape[:1]), termination=lambda s: s[:, 0] >= 2,
        )
        np.testing.assert_allclose(np.array(returns), 2.0)

"""Action spaces: ``Discrete`` values decoded for the dynamics and the closed loop (``one_hot=False``)."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest

from planners import CEM, Discrete, Propagation
from tests.planners.test_contract import PLANNERS
from worldmodel.envs import ParticleEnv
from worldmodel.envs.particle import PUSHES

PAIRS = [[ax, ay] for ax in (-1.0, 0.0, 1.0) for ay in (-1.0, 0.0, 1.0)]  # nine acceleration pairs
TABLE = mx.array(PAIRS)
GOAL = (1.0, -0.5)


class PointMass:
    """A 2-D point mass steered by an acceleration pair ``[ax, ay]``: ``state [B, 4] = (x, y, vx, vy)``."""

    action_dim = 2

    def __init__(self):
        self.goal = mx.array(GOAL)
        self.seen = []  # the shapes of the actions it was given

    def __call__(self, state, action):
        self.seen.append(tuple(action.shape))
        vel = 0.9 * state[:, 2:] + 0.1 * action
        pos = state[:, :2] + 0.1 * vel
        return mx.concatenate([pos, vel], axis=-1), -mx.linalg.norm(pos - self.goal, axis=-1)


class PointMassEnsemble(PointMass):
    """Three point masses whose accelerations are scaled by 0.9, 1.0 and 1.1 (an ``EnsembleDynamics``)."""

    ensemble_size = 3

    def members(self, state, action, noise=None):
        gain = mx.array([0.9, 1.0, 1.1]).reshape(3, 1, 1)
        state, action = mx.broadcast_to(state, (3, *state.shape[-2:])), gain * action
        steps = [PointMass.__call__(self, state[k], action[k]) for k in range(3)]
        return mx.stack([s for s, _ in steps]), mx.stack([r for _, r in steps])


def test_decode_gives_the_values_of_one_hot_actions():
    space = Discrete(values=PAIRS)
    assert space.n == 9 and space.dim == 9 and space.value_dim == 2 and space.one_hot
    one_hot = np.eye(9, dtype=np.float32)[[4, 8, 0]]
    np.testing.assert_array_equal(space.decode(one_hot), [[0, 0], [1, 1], [-1, -1]])
    decoded = space.decode(mx.array(one_hot)[None])
    assert isinstance(decoded, mx.array) and decoded.shape == (1, 3, 2)
    np.testing.assert_array_equal(np.array(decoded)[0], [[0, 0], [1, 1], [-1, -1]])
    np.testing.assert_allclose(space.decode(np.full(9, 1 / 9)), [0, 0], atol=1e-7)  # probabilities: the mean
    scalar = Discrete(3, values=PUSHES)
    np.testing.assert_array_equal(scalar.decode(np.eye(3)), [[-1], [0], [1]])  # numbers: [..., 1]
    with pytest.raises(ValueError, match=r"decode needs actions \[\.\.\., 9\] \(one-hot\), got shape \(3, 2\)"):
        space.decode(np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"Discrete\(4\) has no values to decode"):
        Discrete(4).decode(np.eye(4))


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(n=3, one_hot=False), r"one_hot=False\) needs values"),
        (dict(values=("left", "right"), one_hot=False), r"numbers or vectors of one length, got \('left', 'right'\)"),
        (dict(values=[[1.0, 2.0], [3.0]], one_hot=False), r"numbers or vectors of one length"),
        (dict(values=[1.0, float("nan")], one_hot=False), r"finite numbers"),
        (dict(values=PAIRS, one_hot=1), r"one_hot must be True or False, got 1"),
        (dict(n=3, values=PAIRS), r"Discrete\(3\) got 9 values"),
        (dict(values=[[1.0, 2.0]]), r"n >= 2 actions, got 1"),
    ],
)
def test_bad_discrete_spaces_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        Discrete(**options)


def test_display_values_keep_the_one_hot_contract():
    space = ParticleEnv().action_space  # the shipped environments: values for display, one-hot dynamics
    assert space == Discrete(3, values=PUSHES) and space.one_hot and space.dynamics_dim == 3
    assert repr(space) == "Discrete(n=3, values=(-1.0, 0.0, 1.0))"
    assert repr(Discrete(values=PUSHES, one_hot=False)).endswith(", one_hot=False)")
    assert Discrete(values=[np.array([1.0, 2.0]), (3.0, 4.0)]).values == ((1.0, 2.0), (3.0, 4.0))  # hashable


@pytest.mark.parametrize("cls", PLANNERS, ids=lambda c: c.__name__)
def test_every_planner_steers_the_point_mass_with_nine_pairs_and_no_glue(cls):
    world = PointMass()
    planner = cls(world, Discrete(values=PAIRS, one_hot=False), horizon=12, samples=100, iterations=3, seed=0)
    state = mx.zeros((1, 4))
    for _ in range(30):
        action = planner.act(state)  # one of the pairs, applied as it is
        assert action.shape == (1, 2) and action.tolist()[0] in PAIRS
        state, reward = world(state, action)
    assert -reward.item() < 0.1  # at the goal
    assert {shape[-1] for shape in world.seen} == {2}  # the dynamics only ever saw pairs
    assert planner.state.warm.actions.shape == (1, 12, 9)  # the search itself stays one-hot


def test_values_for_the_dynamics_plan_exactly_as_a_hand_written_decoder():
    starts = mx.array([[0.0, 0.0, 0.0, 0.0], [0.5, 0.5, 0.2, -0.1]])
    decoded = CEM(PointMass(), Discrete(values=PAIRS, one_hot=False), horizon=8, samples=64, iterations=2, seed=3)
    by_hand = CEM(lambda s, a: PointMass()(s, a @ TABLE), Discrete(9), horizon=8, samples=64, iterations=2, seed=3)
    for _ in range(3):
        plan, glued = decoded.optimize(starts), by_hand.optimize(starts)
        assert plan.actions.shape == (2, 8, 2)
        np.testing.assert_array_equal(np.array(plan.actions), np.array(glued.actions @ TABLE))
        np.testing.assert_array_equal(np.array(plan.expected_return), np.array(glued.expected_return))


def test_scalar_values_plan_as_the_one_hot_particle():
    starts = mx.array([[1.0, 0.0], [-1.5, -1.0]])
    values = CEM(ParticleEnv(continuous=True), Discrete(values=PUSHES, one_hot=False), horizon=6, samples=50, iterations=2, seed=1)
    one_hot = CEM(ParticleEnv(), Discrete(3, values=PUSHES), horizon=6, samples=50, iterations=2, seed=1)
    plan, reference = values.optimize(starts), one_hot.optimize(starts)
    assert plan.actions.shape == (2, 6, 1)
    np.testing.assert_array_equal(np.array(plan.actions), np.array(reference.actions @ mx.array(PUSHES)[:, None]))
    np.testing.assert_array_equal(np.array(plan.expected_return), np.array(reference.expected_return))


def test_ensembles_with_particles_receive_the_values():
    ensemble = PointMassEnsemble()
    propagation = Propagation("tsinf", particles=3)
    planner = CEM(ensemble, Discrete(values=PAIRS, one_hot=False), horizon=6, samples=30, iterations=2, seed=0, propagation=propagation)
    action = planner.act(mx.zeros((2, 4)))
    assert action.shape == (2, 2) and all(row in PAIRS for row in action.tolist())
    assert ensemble.seen and {shape[-1] for shape in ensemble.seen} == {2}


def test_declared_action_size_is_checked_against_the_values():
    class NineWide(PointMass):
        action_dim = 9

    with pytest.raises(ValueError, match=r"actions of size 2 \(action_space Discrete\(n=9, .*one_hot=False\)\) do not fit the dynamics, which declare action_dim=9"):
        CEM(NineWide(), Discrete(values=PAIRS, one_hot=False), horizon=4, samples=8, iterations=1)
    CEM(NineWide(), Discrete(values=PAIRS), horizon=4, samples=8, iterations=1)  # one-hot: 9 fits

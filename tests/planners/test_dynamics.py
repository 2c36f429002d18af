"""What users' dynamics may return, sizes they declare, and options checked alike by planners and ``rollout``."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest

from planners import CEM, MPPI, Box, Discrete, RandomShooting, rollout
from planners.dynamics import check_output
from tests.planners.test_contract import PLANNERS, SMALL
from worldmodel.envs import ParticleEnv

ENV = ParticleEnv()
STATE = mx.array([[1.0, 0.0], [-0.5, 0.2]])
ACTIONS = mx.array(np.eye(3, dtype=np.float32)[[[0, 1, 2], [2, 2, 1]]])  # [2, 3, 3]


def numpy_particle(state, action):
    """The particle, returning numpy float64 arrays as a numpy-based user model might."""
    next_state, reward = ENV(state, action)
    return np.array(next_state).astype(np.float64), np.array(reward).astype(np.float64)


def test_numpy_outputs_are_converted_in_rollout():
    want = np.array(rollout(ENV, STATE, ACTIONS))
    got = rollout(numpy_particle, STATE, ACTIONS)
    assert isinstance(got, mx.array) and got.dtype == mx.float32
    np.testing.assert_allclose(np.array(got), want, rtol=1e-6)


@pytest.mark.parametrize("cls", [RandomShooting, CEM, MPPI], ids=lambda c: c.__name__)
def test_sampling_planners_plan_with_numpy_dynamics(cls):
    plan = cls(numpy_particle, ENV.action_space, **SMALL, seed=1).optimize(STATE)
    same = cls(ENV, ENV.action_space, **SMALL, seed=1).optimize(STATE)
    np.testing.assert_array_equal(np.array(plan.actions), np.array(same.actions))


BAD_OUTPUTS = {
    "None": (lambda s, a: None, r"must return a pair \(next_state \[B, S\], reward \[B\]\), got None"),
    "three values": (lambda s, a: (s, s[:, 0], s), r"got a tuple of 3 values"),
    "one array": (lambda s, a: s, r"got a mlx array of shape \(\d+, 2\) and dtype"),
    "list of floats": (lambda s, a: (s, [0.0] * s.shape[0]), r"reward as a list, expected an MLX \(or numpy\) array"),
    "numpy strings": (lambda s, a: (s, np.array(["a"] * s.shape[0])), r"reward as a numpy array of shape \(\d+,\) and dtype <U1"),
    "complex": (lambda s, a: (s.astype(mx.complex64), s[:, 0]), r"next_state of dtype .*complex64, expected real"),
    "numpy of the wrong shape": (lambda s, a: (np.zeros((s.shape[0], 5)), s[:, 0]), r"next_state of shape \(\d+, 5\)"),
}


@pytest.mark.parametrize("case", list(BAD_OUTPUTS))
def test_bad_outputs_name_what_was_expected(case):
    dynamics, message = BAD_OUTPUTS[case]
    with pytest.raises(ValueError, match=message):
        rollout(dynamics, STATE, ACTIONS)
    with pytest.raises(ValueError, match=message):
        CEM(dynamics, ENV.action_space, **SMALL).optimize(STATE)


def test_check_output_passes_mlx_arrays_through():
    next_state, reward = mx.ones((2, 2)), mx.zeros((2,), dtype=mx.float16)
    out = check_output((next_state, reward), STATE)
    assert out[0] is next_state and out[1] is reward


class Linear(nn.Module):
    """``s' = s + a @ B`` with 2 action inputs, declaring its sizes."""

    state_dim, action_dim = 2, 2

    def __init__(self):
        super().__init__()
        self.B = mx.ones((2, 2))

    def __call__(self, state, action):
        next_state = state + action @ self.B
        return next_state, -mx.sum(next_state**2, axis=-1)


@pytest.mark.parametrize("cls", PLANNERS, ids=lambda c: c.__name__)
def test_declared_action_dim_is_checked_at_construction(cls):
    with pytest.raises(ValueError, match=r"actions of size 3 \(action_space Discrete\(n=3.*declare action_dim=2"):
        cls(Linear(), Discrete(3), **SMALL)
    with pytest.raises(ValueError, match=r"actions of size 3 \(action_space Discrete.*declare action_dim=1"):
        cls(ParticleEnv(continuous=True), Discrete(3), **SMALL)
    cls(Linear(), Box(-1.0, 1.0, shape=(2,)), **SMALL)  # the right size is accepted


@pytest.mark.parametrize("cls", PLANNERS, ids=lambda c: c.__name__)
def test_scalar_box_takes_the_declared_action_dim_or_is_refused(cls):
    planner = cls(Linear(), Box(-1.0, 1.0), **SMALL)  # Linear declares action_dim = 2
    assert planner.action_space == Box(-1.0, 1.0, shape=(2,))
    assert planner.act(STATE).shape == (2, 2)
    broadcasting = lambda s, a: (s + a, -mx.sum(s**2, axis=-1))  # noqa: E731 - would broadcast a [B, 1] action
    with pytest.raises(ValueError, match=r"Box\(-1.0, 1.0\) has scalar bounds and no shape.*"
                       r"write Box\(-1.0, 1.0, shape=\(A,\)\).*or declare action_dim = A on the dynamics"):
        cls(broadcasting, Box(-1.0, 1.0), **SMALL)
    assert cls(broadcasting, Box(-1.0, 1.0, shape=(2,)), **SMALL).act(STATE).shape == (2, 2)


def test_undeclared_action_size_mismatch_names_the_shapes():
    undeclared = lambda s, a: Linear()(s, a)  # noqa: E731 - no action_dim attribute
    with pytest.raises(ValueError, match=r"dynamics failed on state of shape \(\d+, 2\) and action of shape \(\d+, 3\)"
                       r" \(does the action space fit the dynamics\?\): \[matmul\]") as info:
        CEM(undeclared, Discrete(3), **SMALL).optimize(STATE)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("cls", PLANNERS, ids=lambda c: c.__name__)
def test_shape_errors_say_how_the_rows_come_about(cls):
    doubled = lambda s, a: (mx.concatenate([s, s], axis=1), s[:, 0])  # noqa: E731 - next_state [B, 4]
    with pytest.raises(ValueError, match=r"next_state of shape \(150, 4\), expected \(150, 2\) "
                       r"\(the planner imagines 3 environments × 50 samples = 150 rows\)$"):
        cls(doubled, Discrete(3), horizon=4, samples=50, iterations=1).act(mx.zeros((3, 2)))


def test_declared_state_dim_is_checked():
    with pytest.raises(ValueError, match=r"states of size 3 do not fit the dynamics, which declare state_dim=2"):
        CEM(ENV, ENV.action_space, **SMALL).optimize(mx.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"states of size 3 .* state_dim=2"):
        rollout(ENV, mx.zeros((2, 3)), ACTIONS)


@pytest.mark.parametrize("cls", PLANNERS, ids=lambda c: c.__name__)
def test_zero_environments_give_an_empty_plan(cls):
    planner = cls(ENV, ENV.action_space, **SMALL)
    plan = planner.optimize(mx.zeros((0, 2)))
    assert plan.actions.shape == (0, SMALL["horizon"], 3) and plan.expected_return.shape == (0,)
    assert planner.act(mx.zeros((0, 2))).shape == (0, 3)
    assert planner.optimize(STATE).actions.shape == (2, SMALL["horizon"], 3)  # and planning goes on


@pytest.mark.parametrize(
    "options, message",
    [
        ({"streams": 0}, r"streams must be an integer >= 1, got 0"),
        ({"streams": 1.5}, r"streams must be an integer"),
        ({"discount": 5.0}, r"discount must be a number in \(0\.0, 1\.0\], got 5\.0"),
        ({"discount": 0.0}, r"discount must be a number in \(0\.0, 1\.0\]"),
        ({"terminal_value": "zero"}, r"terminal_value must be callable"),
    ],
)
def test_rollout_checks_options_as_the_planners_do(options, message):
    with pytest.raises(ValueError, match=message):
        rollout(ENV, STATE, ACTIONS, **options)
    with pytest.raises(ValueError, match=message):
        CEM(ENV, ENV.action_space, **SMALL, **options)


def test_rollout_rejects_a_non_callable_dynamics():
    with pytest.raises(ValueError, match="dynamics must be callable"):
        rollout(None, STATE, ACTIONS)

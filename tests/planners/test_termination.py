"""Termination in imagination (``rollout``/``make_evaluate``/``Planner``) and the ``KnownReward`` adapter."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest

import planners
from planners import Box, KnownReward, rollout
from planners.dynamics import make_evaluate


def counter(state, action):
    """State ``[count, limit]``: the count goes up by one (plus the action), the reward is the new count."""
    count = state[:, 0] + 1.0 + action[:, 0]
    return mx.stack([count, state[:, 1]], axis=1), count


def reached_limit(next_state):
    """Terminates once the count reaches the row's own limit."""
    return next_state[:, 0] >= next_state[:, 1]


STARTS = mx.array([[0.0, 2.0], [0.0, 10.0], [0.0, 1.0], [5.0, 3.0]])  # end at steps 2, never, 1, 1
ZERO = mx.zeros((4, 5, 1))  # H = 5


def test_returns_stop_after_the_terminating_step():
    returns = rollout(counter, STARTS, ZERO, termination=reached_limit)
    # 1 + 2 (the step reaching 2 counts); 1 + 2 + 3 + 4 + 5; 1; 6 (the first step already terminates)
    np.testing.assert_array_equal(np.array(returns), [3.0, 15.0, 1.0, 6.0])
    np.testing.assert_array_equal(np.array(rollout(counter, STARTS, ZERO)), [15.0, 15.0, 15.0, 40.0])


def test_terminated_rows_are_absorbed():
    _, states, rewards = rollout(counter, STARTS, ZERO, termination=reached_limit, return_trajectory=True)
    np.testing.assert_array_equal(np.array(states[0, :, 0]), [0, 1, 2, 2, 2, 2])
    np.testing.assert_array_equal(np.array(states[2, :, 0]), [0, 1, 1, 1, 1, 1])
    np.testing.assert_array_equal(np.array(states[3, :, 0]), [5, 6, 6, 6, 6, 6])
    np.testing.assert_array_equal(np.array(states[:, :, 1]), np.repeat(np.array(STARTS[:, 1:]), 6, axis=1))
    np.testing.assert_array_equal(np.array(rewards), [[1, 2, 0, 0, 0], [1, 2, 3, 4, 5], [1, 0, 0, 0, 0], [6, 0, 0, 0, 0]])


def test_discount_and_terminal_value_skipped_for_terminated_rows():
    value = lambda s: 100.0 * s[:, 0]  # noqa: E731
    returns = rollout(counter, STARTS, ZERO, discount=0.5, terminal_value=value, termination=reached_limit)
    alive = 1 + 0.5 * 2 + 0.25 * 3 + 0.125 * 4 + 0.0625 * 5 + 0.03125 * 100 * 5
    np.testing.assert_allclose(np.array(returns), [1 + 0.5 * 2, alive, 1.0, 6.0], rtol=1e-6)


def test_actions_after_termination_change_nothing():
    later = np.random.default_rng(0).uniform(0, 3, size=(4, 4, 1)).astype(np.float32)
    first_step = np.array([1.5, 0.5, 0.2, 0.7], dtype=np.float32)[:, None, None]  # start 0: 1 + 1.5 >= 2
    actions = mx.array(np.concatenate([first_step, later], axis=1))
    changed = mx.array(np.concatenate([first_step, 10.0 + later], axis=1))  # all but the first step differ
    ended_at_once = np.array(reached_limit(counter(STARTS, actions[:, 0])[0]))
    assert ended_at_once.tolist() == [True, False, True, True]
    first = np.array(rollout(counter, STARTS, actions, termination=reached_limit))
    again = np.array(rollout(counter, STARTS, changed, termination=reached_limit))
    np.testing.assert_allclose(first[ended_at_once], [2.5, 1.2, 6.7], rtol=1e-6)
    np.testing.assert_array_equal(again[ended_at_once], first[ended_at_once])
    assert first[1] != again[1]


def test_nothing_from_past_the_end_leaks_in():
    """Dynamics or values that are NaN in terminal states do not spoil the returns of rows that ended there."""

    def nan_once_ended(state, action):
        next_state, reward = counter(state, action)
        ended = state[:, 0] >= state[:, 1]
        return mx.where(ended[:, None], mx.nan, next_state), mx.where(ended, mx.nan, reward)

    value = lambda s: mx.where(s[:, 0] >= s[:, 1], mx.nan, 0.0)  # noqa: E731
    starts = STARTS[:3]  # (the last one starts past its limit)
    returns = rollout(nan_once_ended, starts, ZERO[:3], terminal_value=value, termination=reached_limit)
    np.testing.assert_array_equal(np.array(returns), [3.0, 15.0, 1.0])


def test_termination_passes_through_evaluate_streams_and_gradients():
    actions = mx.zeros((2, 3, 5, 1))  # [E, N, H, A]
    starts = STARTS[:2]
    evaluate = make_evaluate(counter, termination=reached_limit, streams=2)
    np.testing.assert_array_equal(np.array(evaluate(starts, actions)), [[3.0] * 3, [15.0] * 3])
    loss = lambda a: mx.sum(rollout(counter, STARTS, a, termination=reached_limit, streams=1))  # noqa: E731
    grad = np.array(mx.grad(loss)(ZERO))[..., 0]
    # d return / d a_t: the number of rewards from step t + 1 on that count (row 0 ends at step 2)
    np.testing.assert_array_equal(grad, [[2, 1, 0, 0, 0], [5, 4, 3, 2, 1], [1, 0, 0, 0, 0], [1, 0, 0, 0, 0]])


def test_termination_shape_and_type_are_checked():
    with pytest.raises(ValueError, match=r"termination returned shape \(4, 1\), expected \(4,\)"):
        rollout(counter, STARTS, ZERO, termination=lambda s: s[:, :1] > 0)
    with pytest.raises(ValueError, match="termination must be callable"):
        planners.CEM(counter, Box(-1, 1), horizon=3, samples=8, termination=True)


def test_callbacks_returning_numpy_are_converted():
    value = lambda s: 100.0 * s[:, 0]  # noqa: E731
    expected = np.array(rollout(counter, STARTS, ZERO, discount=0.5, terminal_value=value, termination=reached_limit))
    got = rollout(
        counter, STARTS, ZERO, discount=0.5,
        terminal_value=lambda s: np.array(value(s), dtype=np.float64),
        termination=lambda s: np.array(reached_limit(s)),
    )
    np.testing.assert_array_equal(np.array(got), expected)


@pytest.mark.parametrize(
    "callback, returned, message",
    [
        ("termination", lambda s: (s[:, 0] >= s[:, 1]).astype(mx.float32),
         r"termination returned float32 values, expected booleans \[\d+\] \(a comparison such as .*0/1 numbers are not read as done\)"),
        ("termination", lambda s: np.array(s[:, 0] >= s[:, 1], dtype=np.float64), r"termination returned float64 values, expected booleans"),
        ("termination", lambda s: True, r"termination returned a bool, expected an MLX \(or numpy\) array \[\d+\] of booleans"),
        ("termination", lambda s: 0.0, r"termination returned a float, expected an MLX \(or numpy\) array \[\d+\] of booleans"),
        ("terminal_value", lambda s: 1.5, r"terminal_value returned values as a float, expected an MLX \(or numpy\) array of real numbers"),
        ("terminal_value", lambda s: False, r"terminal_value returned values as a bool, expected an MLX \(or numpy\) array"),
        ("terminal_value", lambda s: np.zeros((4, 1)), r"terminal_value returned shape \(4, 1\), expected \(\d+,\)"),
    ],
)
def test_callbacks_returning_something_else_are_refused_naming_what_was_expected(callback, returned, message):
    with pytest.raises(ValueError, match=message):
        rollout(counter, STARTS, ZERO, **{callback: returned})
    planner = planners.CEM(counter, Box(-1, 1, shape=(1,)), horizon=5, samples=8, iterations=1, **{callback: returned})
    with pytest.raises(ValueError, match=message):
        planner.act(STARTS)


def cliff(state, action):
    """A walker ``x' = x + a`` paid 1 per step; it falls off (terminates) beyond ``|x| > 1``."""
    return state + action, mx.ones(state.shape[0])


@pytest.mark.parametrize("cls", [planners.CEM, planners.MPPI, planners.RandomShooting])
def test_planners_stay_alive_with_termination(cls):
    starts = mx.array([[0.9], [-0.95]])
    off_edge = lambda s: mx.abs(s[:, 0]) > 1.0  # noqa: E731
    planner = cls(cliff, Box(-0.5, 0.5, shape=(1,)), horizon=8, samples=200, iterations=3, termination=off_edge)
    plan = planner.optimize(starts)
    np.testing.assert_array_equal(np.array(plan.expected_return), [8.0, 8.0])
    _, states, _ = rollout(cliff, starts, plan.actions, return_trajectory=True)
    assert np.all(np.abs(np.array(states)) <= 1.0)


def test_known_reward_adapter():
    model = lambda s, a: s + a  # noqa: E731
    reward = lambda s, a, s2: -mx.sum(s2 * s2, axis=1) - 0.1 * mx.sum(a * a, axis=1) + 0.01 * s[:, 0]  # noqa: E731
    dynamics = KnownReward(model, reward)
    state, action = mx.array([[1.0, 2.0]]), mx.array([[0.5, -1.0]])
    next_state, r = dynamics(state, action)
    np.testing.assert_allclose(np.array(next_state), [[1.5, 1.0]])
    np.testing.assert_allclose(np.array(r), [-(2.25 + 1.0) - 0.1 * 1.25 + 0.01], rtol=1e-6)
    actions = mx.array([[[0.5, -1.0], [-1.5, -1.0]]])
    # states (1.5, 1), then (0, 0): rewards -3.365 + 0.01 and -0.325 + 0.015
    np.testing.assert_allclose(np.array(rollout(dynamics, state, actions)), [-3.375 + 0.01 - 0.325 + 0.015], rtol=1e-6)
    assert not hasattr(dynamics, "rollout_streams")

    class OneStream:
        rollout_streams = 1

        def __call__(self, s, a):
            return s + a

    assert KnownReward(OneStream(), reward).rollout_streams == 1
    assert not hasattr(dynamics, "state_dim") and not hasattr(dynamics, "action_dim")
    with pytest.raises(ValueError, match="callable"):
        KnownReward(model, None)


def test_known_reward_forwards_the_models_sizes_and_streams():
    class Sized:
        state_dim, action_dim, rollout_streams = 2, 2, 1

        def __call__(self, s, a):
            return s + a

    reward = lambda s, a, s2: -mx.sum(s2 * s2, axis=1)  # noqa: E731
    dynamics = KnownReward(Sized(), reward)
    assert (dynamics.state_dim, dynamics.action_dim, dynamics.rollout_streams) == (2, 2, 1)
    with pytest.raises(ValueError, match=r"actions of size 1 .*declare action_dim=2"):
        planners.CEM(dynamics, Box(-1, 1, shape=(1,)), horizon=3, samples=8)
    with pytest.raises(ValueError, match=r"states of size 3 .*declare state_dim=2"):
        rollout(dynamics, mx.zeros((1, 3)), mx.zeros((1, 2, 2)))
    planner = planners.CEM(dynamics, Box(-1, 1), horizon=3, samples=8)  # the open Box sized from the model
    assert planner.act(mx.ones((1, 2))).shape == (1, 2)

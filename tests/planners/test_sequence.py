"""Sequence evaluators: a black-box simulator written in plain numpy (no MLX) as the planners' dynamics."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest

from planners import (
    CEM, ICEM, MPPI, Box, CEMGradient, Discrete, GradientPlanner, Propagation, RandomShooting, SequenceEvaluator, make_planner, rollout,
)
from planners.runtime.memory import MemoryBudgetError

SAMPLING = [CEM, ICEM, MPPI, RandomShooting]
SPEED = 0.2  # how far one action of 1 moves the point
TARGET = 1.0
STARTS = np.array([[0.0], [-0.6]])  # float64 positions [E, 1]


def point_returns(start: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """A point on a line, moved by ``SPEED * action`` per step towards ``TARGET``: ``start [E, 1]``,
    ``actions [E, N, H, 1]`` in [-1, 1] -> returns ``[E, N]``, the negated distances after each step."""
    assert type(start) is np.ndarray and type(actions) is np.ndarray  # the black box never sees MLX
    positions = start[:, None, 0:1] + SPEED * np.cumsum(actions[..., 0], axis=2)  # [E, N, H]
    return -np.abs(positions - TARGET).sum(axis=2)


def point_step(position: np.ndarray, action: np.ndarray) -> np.ndarray:
    """The true environment the plans run in: ``position [E, 1]``, ``action [E, 1]``."""
    return position + SPEED * np.clip(action, -1.0, 1.0)


def closed_loop(planner, steps: int = 10, push=lambda action: action) -> np.ndarray:
    """Where the points are after ``steps`` actions of ``planner`` (``push``: action [E, A] -> push [E, 1])."""
    position = STARTS.copy()
    for _ in range(steps):
        position = point_step(position, push(np.array(planner.act(position))))
    return position


@pytest.mark.parametrize("cls", SAMPLING, ids=lambda c: c.__name__)
def test_sampling_planners_solve_a_numpy_black_box(cls):
    planner = cls(SequenceEvaluator(point_returns, action_dim=1), Box(-1.0, 1.0), horizon=8, samples=200, iterations=3, seed=1)
    final = closed_loop(planner)
    assert np.all(np.abs(final - TARGET) < 0.15), final  # both reached the target and stay (10 steps of 0.2 from 0 and -0.6)
    plan = planner.optimize(final)
    assert plan.actions.shape == (2, 8, 1) and plan.expected_return.dtype == mx.float32
    assert np.all(np.array(plan.expected_return) > -0.8), plan.expected_return  # staying: 8 steps within 0.1


def test_a_discrete_space_sees_one_hot_actions():
    pushes = np.array([-1.0, 0.0, 1.0])

    def returns(start, actions):  # actions [E, N, H, 3] one-hot
        assert np.all(actions.sum(axis=3) == 1.0)
        return point_returns(start, (actions @ pushes)[..., None])

    planner = CEM(SequenceEvaluator(returns, action_dim=3), Discrete(3), horizon=6, samples=100, iterations=3)
    assert np.all(np.abs(closed_loop(planner, push=lambda action: (action @ pushes)[:, None]) - TARGET) < 1e-6)


def test_discrete_values_reach_the_black_box_decoded():
    def returns(start, pushes):  # pushes [E, N, H, 1]: the chosen values, no one-hot
        assert pushes.shape[-1] == 1 and set(np.unique(pushes)) <= {-1.0, 0.0, 1.0}
        return point_returns(start, pushes)

    space = Discrete(values=[-1.0, 0.0, 1.0], one_hot=False)
    planner = CEM(SequenceEvaluator(returns), space, horizon=6, samples=100, iterations=3)
    assert np.all(np.abs(closed_loop(planner) - TARGET) < 1e-6)  # act returns the values themselves


def test_the_start_is_handed_over_untouched_and_actions_as_a_fresh_copy():
    seen = []

    def returns(start, actions):
        seen.append(start)
        out = point_returns(start, actions)
        actions[...] = np.nan  # the evaluator's own copy: writing into it changes nothing for the planner
        return out

    plain = CEM(SequenceEvaluator(point_returns), Box(-1.0, 1.0, shape=(1,)), horizon=5, samples=32, iterations=2)
    writer = CEM(SequenceEvaluator(returns), Box(-1.0, 1.0, shape=(1,)), horizon=5, samples=32, iterations=2)
    plan = writer.optimize(STARTS)
    assert all(start is STARTS for start in seen) and STARTS.dtype == np.float64
    assert np.array_equal(np.array(plan.actions), np.array(plain.optimize(STARTS).actions))


def test_same_seed_same_actions_and_the_pure_step_agrees():
    make = lambda seed: MPPI(SequenceEvaluator(point_returns, action_dim=1), Box(-1.0, 1.0), horizon=6, samples=64, seed=seed)  # noqa: E731
    first, second, other = make(3), make(3), make(4)
    a, b = [np.array(p.optimize(STARTS).actions) for p in (first, second)]
    assert np.array_equal(a, b)
    assert not np.array_equal(a, np.array(other.optimize(STARTS).actions))
    plan, after = make(3).step(STARTS, make(3).init([0, 1]))
    assert np.array_equal(np.array(plan.actions), a) and after.warm is not None


def test_an_mlx_evaluator_gets_mlx_actions_and_may_return_mlx():
    def returns(start, actions):
        assert isinstance(actions, mx.array) and isinstance(start, mx.array)
        return mx.array(point_returns(np.array(start), np.array(actions)))

    planner = make_planner("icem", SequenceEvaluator(returns, action_dim=1, as_numpy=False), Box(-1.0, 1.0), horizon=6, samples=64)
    assert planner.optimize(mx.array(STARTS)).actions.shape == (2, 6, 1)


@pytest.mark.parametrize("cls", [GradientPlanner, CEMGradient], ids=lambda c: c.__name__)
def test_gradient_planners_refuse_a_sequence_evaluator(cls):
    with pytest.raises(ValueError, match=f"^{cls.__name__} follows gradients .* use CEM, ICEM, MPPI or RandomShooting$"):
        cls(SequenceEvaluator(point_returns, action_dim=1), Box(-1.0, 1.0))


@pytest.mark.parametrize(
    "option, value",
    [("discount", 0.9), ("terminal_value", lambda s: s[:, 0]), ("termination", lambda s: s[:, 0] > 1), ("streams", 2),
     ("propagation", Propagation("ts1")), ("compile", True)],
)
def test_step_dynamics_options_are_refused(option, value):
    name = "compile=True" if option == "compile" else option
    with pytest.raises(ValueError, match=f"^{name} does not apply to a sequence evaluator"):
        CEM(SequenceEvaluator(point_returns, action_dim=1), Box(-1.0, 1.0), **{option: value})


def test_plain_options_are_accepted():
    planner = CEM(SequenceEvaluator(point_returns, action_dim=1), Box(-1.0, 1.0), discount=1.0, compile=False, horizon=4, samples=16)
    assert not planner.compiles()
    assert CEM(SequenceEvaluator(point_returns, action_dim=1), Box(-1.0, 1.0), compile=None).compiles() is False


def one_line_error(planner, start=STARTS) -> str:
    with pytest.raises(ValueError) as err:
        planner.optimize(start)
    assert "\n" not in str(err.value)
    return str(err.value)


@pytest.mark.parametrize(
    "bad, message",
    [
        (lambda s, a: point_returns(s, a).ravel(), r"returned returns of shape \(32,\), expected \(2, 16\): 2 environments × 16 samples$"),
        (lambda s, a: point_returns(s, a)[:1], r"shape \(1, 16\), expected \(2, 16\): 2 environments × 16 samples$"),
        (lambda s, a: point_returns(s, a).tolist(), "returned returns as a list, expected an MLX \\(or numpy\\) array"),
        (lambda s, a: point_returns(s, a).astype(complex), "returned returns as a numpy array .* expected an MLX"),
        (lambda s, a: s[:, 5], r"sequence evaluator failed on start of shape \(2, 1\) and actions of shape \(2, 16, 4, 1\): index 5"),
    ],
    ids=["flat", "rows", "list", "complex", "raises"],
)
def test_bad_returns_are_one_line_errors(bad, message):
    planner = RandomShooting(SequenceEvaluator(bad, action_dim=1), Box(-1.0, 1.0), horizon=4, samples=16)
    assert "sequence evaluator" in one_line_error(planner)
    with pytest.raises(ValueError, match=message):
        planner.optimize(STARTS)


def test_a_start_that_is_no_array_is_refused():
    planner = CEM(SequenceEvaluator(point_returns, action_dim=1), Box(-1.0, 1.0), horizon=4, samples=16)
    assert one_line_error(planner, [[0.0], [1.0]]).startswith("a sequence evaluator's start must be an array [E, ...]")
    assert "shape ()" in one_line_error(planner, np.float64(0.0))


def test_all_nan_keeps_the_previous_plan_and_warns():
    planner = CEM(SequenceEvaluator(lambda s, a: np.full(a.shape[:2], np.nan), action_dim=1), Box(-1.0, 1.0), horizon=4, samples=16)
    with pytest.warns(RuntimeWarning, match="no finite imagined return for 2 of 2"):
        plan = planner.optimize(STARTS)
    assert np.all(np.array(plan.actions) == 0.0) and np.all(np.array(plan.expected_return) == -np.inf)


def test_nan_and_inf_returns_are_never_chosen():
    def returns(start, actions):  # every sequence that pushes right first is broken
        out = point_returns(start, actions)
        out[actions[:, :, 0, 0] > 0] = np.nan
        out[actions[:, :, 0, 0] > 0.5] = np.inf
        return out

    plan = CEM(SequenceEvaluator(returns, action_dim=1), Box(-1.0, 1.0), horizon=4, samples=64).optimize(STARTS)
    assert np.all(np.array(plan.actions)[:, 0, 0] <= 0.0) and np.all(np.isfinite(np.array(plan.expected_return)))


def test_action_dim_sizes_an_open_box_and_is_checked():
    assert CEM(SequenceEvaluator(point_returns, action_dim=1), Box(-1.0, 1.0)).action_space.dim == 1
    with pytest.raises(ValueError, match=r"actions of size 2 \(action_space Box.*declare action_dim=1"):
        CEM(SequenceEvaluator(point_returns, action_dim=1), Box(-1.0, 1.0, shape=(2,)))
    with pytest.raises(ValueError, match="action_dim must be an integer >= 1"):
        SequenceEvaluator(point_returns, action_dim=0)
    with pytest.raises(ValueError, match="needs a callable evaluate"):
        SequenceEvaluator(None)


def test_memory_estimate_counts_the_sequences_and_what_the_evaluator_declares():
    make = lambda **kw: CEM(SequenceEvaluator(point_returns, action_dim=1, **kw), Box(-1.0, 1.0), horizon=10, samples=100)  # noqa: E731
    plain, heavy = make(), make(bytes_per_step=1000)
    assert 0 < plain.memory_estimate(3) < 3 * 100 * 10 * 100  # no imagined rows of states: a few copies of the actions
    assert heavy.memory_estimate(3) - plain.memory_estimate(3) == 3 * 100 * 10 * 1000
    huge = CEM(SequenceEvaluator(point_returns, action_dim=1, bytes_per_step=2**40), Box(-1.0, 1.0), horizon=10, samples=100)
    with pytest.raises(MemoryBudgetError, match="needs about"):
        huge.optimize(STARTS)


def test_rollout_refuses_a_sequence_evaluator_as_step_dynamics():
    with pytest.raises(ValueError, match="takes whole sequences, actions \\[E, N, H, A\\].*it is not step dynamics"):
        rollout(SequenceEvaluator(point_returns), mx.zeros((2, 1)), mx.zeros((2, 3, 1)))

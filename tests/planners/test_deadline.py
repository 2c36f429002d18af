"""Planning within a deadline (``time_budget_ms``): iterations that fit, the best plan found, the default path unchanged."""

from __future__ import annotations

import time

import mlx.core as mx
import numpy as np
import pytest

import planners
from planners import Box
from planners.deadline import Deadline, SearchInfo
from worldmodel.envs import ParticleEnv

HORIZON = 4
STEP_MS = 1.0  # fake milliseconds each dynamics call takes: an iteration (one population) is HORIZON of them


class FakeClock:
    """``time.perf_counter`` for :mod:`planners.deadline` that moves only when the slow toy dynamics step."""

    def __init__(self):
        self.now = 1000.0

    def perf_counter(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(planners.deadline, "time", fake)
    return fake


def slow_dynamics(clock):
    """A point mass pushed towards 0 whose every step takes ``STEP_MS`` on ``clock``."""

    def dynamics(state, action):
        clock.now += STEP_MS / 1000.0
        next_state = state + action
        return next_state, -mx.sum(mx.square(next_state), axis=-1)

    return dynamics


def planner(clock, name="cem", **options):
    options = {"horizon": HORIZON, "samples": 16, "iterations": 50, "streams": 1, "seed": 0, **options}
    return planners.make_planner(name, slow_dynamics(clock), Box(-1.0, 1.0, shape=(1,)), **options)


STATES = mx.array([[1.5], [-0.7]])


@pytest.mark.parametrize("budget, expected", [(1.0, 1), (10.0, 2), (12.0, 3), (20.0, 5), (1e6, 50)])
def test_the_search_stops_at_the_last_iteration_that_fits(clock, budget, expected):
    # an iteration takes HORIZON ms: after k of them (k * 4 ms) one more fits while (k + 1) * 4 <= budget;
    # the first always runs, and never more than `iterations`
    cem = planner(clock, time_budget_ms=budget)
    cem.optimize(STATES)
    assert cem.last_search.iterations == expected
    assert cem.last_search.time_budget_ms == budget


@pytest.mark.parametrize("name", ["cem", "icem", "mppi", "random-shooting", "cem-classic", "mppi-classic"])
def test_more_time_buys_more_iterations(clock, name):
    counts = []
    for budget in (2.0, 9.0, 17.0, 41.0):
        search = planner(clock, name, time_budget_ms=budget)
        search.optimize(STATES)
        counts.append(search.last_search.iterations)
    assert counts == sorted(counts) and counts[0] == 1 and counts[-1] == 10


def test_the_plan_is_the_best_sequence_evaluated_within_the_deadline(clock):
    cem = planner(clock, time_budget_ms=14.0)
    seen = []
    evaluate = cem.evaluate

    def recording(state, actions):
        returns = evaluate(state, actions)
        seen.append(returns)
        return returns

    cem.evaluate = recording
    plan = cem.optimize(STATES)
    assert cem.last_search.iterations == 3 == len(seen)
    best = np.max(np.stack([np.array(r) for r in seen]), axis=(0, 2))
    np.testing.assert_array_equal(np.array(plan.expected_return), best)
    np.testing.assert_allclose(np.array(planners.rollout(slow_dynamics(clock), STATES, plan.actions)), best, rtol=1e-6)


def test_a_call_budget_overrides_the_planners_and_none_keeps_every_iteration(clock):
    cem = planner(clock, iterations=7)
    cem.act(STATES, time_budget_ms=10.0)
    assert cem.last_search.iterations == 2
    cem.act(STATES)
    assert cem.last_search == SearchInfo(7, cem.last_search.seconds, None)
    state = cem.init([0, 1])
    _, state = cem.step(STATES, state, time_budget_ms=6.0)
    assert cem.last_search.iterations == 1


def test_a_budget_runs_eagerly_even_when_compile_is_asked(clock):
    cem = planner(clock, compile=True, time_budget_ms=12.0)
    cem.optimize(STATES)
    assert cem.last_search.iterations == 3 and not cem._compiled


def test_gradient_planners_stop_their_adam_steps_too(clock):
    gradient = planner(clock, "gradient", iterations=30, time_budget_ms=12.0)
    gradient.optimize(STATES)
    assert 1 <= gradient.last_search.iterations < 30
    hybrid = planner(clock, "cem-gd", iterations=2, grad_iterations=10, time_budget_ms=1.0)
    hybrid.optimize(STATES)
    assert hybrid.last_search.iterations == 1  # the first CEM iteration; no time left for Adam


@pytest.mark.parametrize("name", list(planners.PLANNERS))
def test_an_ample_budget_gives_the_same_plan_as_none(name):
    env = ParticleEnv()
    options = dict(horizon=5, samples=32, iterations=2, seed=3)
    plain = planners.make_planner(name, env, env.action_space, **options)
    budgeted = planners.make_planner(name, env, env.action_space, time_budget_ms=1e9, **options)
    states = env.reset(3, seed=1)
    for _ in range(2):  # the second call is warm-started
        a, b = plain.optimize(states), budgeted.optimize(states)
        np.testing.assert_array_equal(np.array(a.actions), np.array(b.actions))
        np.testing.assert_array_equal(np.array(a.expected_return), np.array(b.expected_return))
        assert plain.last_search.iterations == budgeted.last_search.iterations == plain.planned_iterations()


def test_a_slow_dynamics_in_real_time_stops_well_before_its_iterations():
    def dynamics(state, action):
        time.sleep(0.002)
        return state + action, -mx.sum(mx.square(state + action), axis=-1)

    cem = planners.CEM(dynamics, Box(-1.0, 1.0, shape=(1,)), horizon=5, samples=8, iterations=200, streams=1,
                       time_budget_ms=60.0)
    cem.optimize(STATES)
    assert 1 <= cem.last_search.iterations < 200
    assert cem.last_search.seconds < 2.0  # 60 ms + one ~10 ms iteration; generous for a loaded machine


@pytest.mark.parametrize("bad", [0, -5.0, "10", True, float("nan")])
def test_a_bad_budget_is_a_value_error_naming_it(bad):
    env = ParticleEnv()
    with pytest.raises(ValueError, match="time_budget_ms must be a number in"):
        planners.CEM(env, env.action_space, time_budget_ms=bad)
    cem = planners.CEM(env, env.action_space, horizon=3, samples=8)
    with pytest.raises(ValueError, match="time_budget_ms"):
        cem.act(env.reset(1, seed=0), time_budget_ms=bad)


def test_deadline_records_iterations_and_fits(clock):
    deadline = Deadline(10.0)
    assert deadline.fits() and deadline.iterations == 0
    clock.now += 0.004
    assert deadline.next_fits(mx.zeros(2), None)  # 4 ms used, 4 more fit in 10
    clock.now += 0.004
    assert not deadline.next_fits() and deadline.iterations == 2

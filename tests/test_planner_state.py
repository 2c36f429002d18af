"""The explicit PlannerState: pure planning calls, sharding by rows, saving and restoring."""

import mlx.core as mx
import numpy as np
import pytest

import planners
from planners import PlannerState
from worldmodel import ParticleEnv

ENV = ParticleEnv()
STARTS = mx.array([[1.0, 0.0], [-1.5, -1.0], [0.3, 0.5], [1.5, 1.0]])


def make(cls=planners.ICEM, **options):
    return cls(ENV, ENV.action_space, horizon=8, num_samples=64, iterations=2, seed=3, **options)


def closed_loop(planner, steps, planner_state=None):
    """Actions [T, E, A] of a short closed loop, stateful (``planner_state=None``) or pure."""
    state, actions = STARTS, []
    for _ in range(steps):
        if planner_state is None:
            action = planner.act(state)
        else:
            plan, planner_state = planner.optimize(state, planner_state=planner_state)
            action = plan.actions[:, 0]
        actions.append(np.array(action))
        state, _ = ENV(state, action)
    return np.stack(actions), planner_state


def test_pure_calls_match_the_stateful_planner_and_leave_it_alone():
    stateful, _ = closed_loop(make(), 4)
    pure_planner = make()
    pure, final = closed_loop(pure_planner, 4, pure_planner.init_state(np.arange(4)))
    assert np.array_equal(stateful, pure)
    assert pure_planner.state is None and pure_planner.warm_start is None
    assert isinstance(final, PlannerState) and final.warm is not None and final.warm.elites is not None


def test_rows_planned_apart_equal_rows_planned_together():
    planner = make()
    whole = planner.init_state(np.arange(4))
    together, after = planner.optimize(STARTS, planner_state=whole)
    first, after_first = planner.optimize(STARTS[:2], planner_state=whole.rows([0, 1]))
    second, after_second = planner.optimize(STARTS[2:], planner_state=whole.rows(slice(2, 4)))
    assert np.array_equal(np.array(together.actions), np.concatenate([np.array(first.actions), np.array(second.actions)]))
    joined = PlannerState.concatenate([after_first, after_second])
    assert np.array_equal(np.array(joined.keys), np.array(after.keys))
    assert np.array_equal(np.array(joined.warm.actions), np.array(after.warm.actions))


def test_a_saved_state_continues_exactly(tmp_path):
    planner = make()
    state = planner.init_state(np.arange(4))
    _, state = planner.optimize(STARTS, planner_state=state)
    mx.savez(str(tmp_path / "controller.npz"), **state.to_arrays())
    restored = PlannerState.from_arrays(mx.load(str(tmp_path / "controller.npz")))
    a, _ = planner.optimize(STARTS, planner_state=state)
    b, _ = make().optimize(STARTS, planner_state=restored)
    assert np.array_equal(np.array(a.actions), np.array(b.actions))


def test_reset_keeps_the_key_streams():
    planner = make(planners.CEM)
    planner.act(STARTS)
    keys = np.array(planner.state.keys)
    planner.reset()
    assert planner.warm_start is None and np.array_equal(np.array(planner.state.keys), keys)


@pytest.mark.parametrize(
    "bad,message",
    [
        ("not a state", "planner_state must be a PlannerState"),
        (lambda p: p.init_state(np.arange(3)), "holds 3 environment"),
    ],
)
def test_bad_planner_states_are_clear_errors(bad, message):
    planner = make(planners.CEM)
    value = bad(planner) if callable(bad) else bad
    with pytest.raises(ValueError, match=message):
        planner.optimize(STARTS, planner_state=value)


def test_env_ids_must_match_the_planner_state():
    planner = make(planners.CEM)
    with pytest.raises(ValueError, match="env_ids differ"):
        planner.optimize(STARTS, env_ids=[4, 5, 6, 7], planner_state=planner.init_state(np.arange(4)))


def test_from_arrays_rejects_other_files():
    with pytest.raises(ValueError, match="not a planner state: no 'keys'"):
        PlannerState.from_arrays({"weights": mx.zeros((2,))})

"""The explicit PlannerState: pure planning calls (init/step), sharding by rows, saving and restoring."""

import warnings

import mlx.core as mx
import numpy as np
from mlx.utils import tree_map
import pytest

import planners
from planners import PlannerState
from planners.runtime.streams import compile_works
from worldmodel import ParticleEnv

ENV = ParticleEnv()
STARTS = mx.array([[1.0, 0.0], [-1.5, -1.0], [0.3, 0.5], [1.5, 1.0]])


def make(cls=planners.ICEM, **options):
    return cls(ENV, ENV.action_space, horizon=8, samples=64, iterations=2, seed=3, **options)


def closed_loop(planner, steps, planner_state=None):
    """Actions [T, E, A] of a short closed loop, stateful (``planner_state=None``) or pure."""
    state, actions = STARTS, []
    for _ in range(steps):
        if planner_state is None:
            action = planner.act(state)
        else:
            plan, planner_state = planner.step(state, planner_state)
            action = plan.actions[:, 0]
        actions.append(np.array(action))
        state, _ = ENV(state, action)
    return np.stack(actions), planner_state


def test_pure_calls_match_the_stateful_planner_and_leave_it_alone():
    stateful, _ = closed_loop(make(), 4)
    pure_planner = make()
    pure, final = closed_loop(pure_planner, 4, pure_planner.init(np.arange(4)))
    assert np.array_equal(stateful, pure)
    assert pure_planner.state is None and pure_planner.warm_start is None
    assert isinstance(final, PlannerState) and final.warm is not None and final.warm.elites is not None


def test_rows_planned_apart_equal_rows_planned_together():
    planner = make()
    whole = planner.init(np.arange(4))
    together, after = planner.step(STARTS, whole)
    first, after_first = planner.step(STARTS[:2], whole.rows([0, 1]))
    second, after_second = planner.step(STARTS[2:], whole.rows(slice(2, 4)))
    assert np.array_equal(np.array(together.actions), np.concatenate([np.array(first.actions), np.array(second.actions)]))
    joined = PlannerState.concatenate([after_first, after_second])
    assert np.array_equal(np.array(joined.keys), np.array(after.keys))
    assert np.array_equal(np.array(joined.warm.actions), np.array(after.warm.actions))


def test_a_saved_state_continues_exactly(tmp_path):
    planner = make()
    state = planner.init(np.arange(4))
    _, state = planner.step(STARTS, state)
    mx.savez(str(tmp_path / "controller.npz"), **state.to_arrays())
    restored = PlannerState.from_arrays(mx.load(str(tmp_path / "controller.npz")))
    a, _ = planner.step(STARTS, state)
    b, _ = make().step(STARTS, restored)
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
        (lambda p: p.init(np.arange(3)), "holds 3 environment"),
    ],
)
def test_bad_planner_states_are_clear_errors(bad, message):
    planner = make(planners.CEM)
    value = bad(planner) if callable(bad) else bad
    with pytest.raises(ValueError, match=message):
        planner.step(STARTS, value)


def test_env_ids_take_the_int64_range_and_say_so_beyond_it():
    planner = make(planners.CEM)
    largest = np.array([2**63 - 1, 0, 5, 7], dtype=np.uint64)  # uint64 within the range is accepted
    assert planner.act(STARTS, env_ids=largest).shape == (4, 3)
    np.testing.assert_array_equal(planner.init(largest).ids, [2**63 - 1, 0, 5, 7])
    for ids in (np.array([2**64 - 1, 0, 5, 7], dtype=np.uint64), np.array([-1, 0, 5, 7])):
        with pytest.raises(ValueError, match=r"env_ids must be 4 integers in \[0, 2\*\*63 - 1\]"):
            planner.act(STARTS, env_ids=ids)
        with pytest.raises(ValueError, match=r"env_ids must be 1 integers in \[0, 2\*\*63 - 1\]"):
            planner.init(ids[:1])


@pytest.mark.parametrize("beta", [float("inf"), 1e6, float("nan")])
def test_absurd_noise_exponents_are_refused_at_construction(beta):
    with pytest.raises(ValueError, match=r"noise_beta must be a number in \[0.0, 10.0\]"):
        make(planners.ICEM, noise_beta=beta)
    assert np.isfinite(np.array(make(planners.ICEM, noise_beta=10.0).act(STARTS))).all()


def test_optimize_refuses_a_planner_state_and_names_step():
    planner = make(planners.CEM)
    with pytest.raises(TypeError, match=r"step\(state, planner_state\)"):
        planner.optimize(STARTS, planner_state=planner.init(np.arange(4)))


@pytest.mark.parametrize("cls", [planners.CEM, planners.ICEM, planners.MPPI, planners.RandomShooting, planners.GradientPlanner])
def test_step_equals_optimize_and_leaves_the_planner_unchanged(cls):
    planner = make(cls)
    planner.act(STARTS)  # the planner now holds a state with a warm start
    held = planner.state
    keys, warm = np.array(held.keys), np.array(held.warm.actions)
    plan, after = planner.step(STARTS, held)
    again, _ = planner.step(STARTS, held)
    assert planner.state is held and np.array_equal(np.array(planner.state.keys), keys)
    assert np.array_equal(np.array(planner.warm_start.actions), warm)
    assert np.array_equal(np.array(plan.actions), np.array(again.actions))
    stateful = planner.optimize(STARTS)  # the stateful call from the same state
    assert np.array_equal(np.array(stateful.actions), np.array(plan.actions))
    assert np.array_equal(np.array(stateful.expected_return), np.array(plan.expected_return))
    assert np.array_equal(np.array(planner.state.keys), np.array(after.keys))


def test_init_state_is_init():
    planner = make(planners.CEM)
    a, b = planner.init([3, 1]), planner.init_state([3, 1])
    assert np.array_equal(np.array(a.keys), np.array(b.keys)) and np.array_equal(a.ids, b.ids)


def test_samples_and_num_samples_build_the_same_planner():
    new = planners.CEM(ENV, ENV.action_space, horizon=5, samples=48, iterations=2)
    with pytest.warns(DeprecationWarning, match="num_samples"):
        old = planners.CEM(ENV, ENV.action_space, horizon=5, num_samples=48, iterations=2)
    assert new.samples == old.samples == old.num_samples == 48
    assert np.array_equal(np.array(new.optimize(STARTS).actions), np.array(old.optimize(STARTS).actions))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # samples= alone warns about nothing
        planners.MPPI(ENV, ENV.action_space, samples=8)


def test_the_fallback_warns_after_the_search_for_nan_dynamics():
    def nan_dynamics(state, action):
        return state * mx.nan, state[:, 0] * mx.nan

    planner = planners.CEM(nan_dynamics, ENV.action_space, horizon=4, samples=16, iterations=2)
    first = planner.init(np.arange(4))
    with pytest.warns(RuntimeWarning, match="no finite imagined return for 4 of 4"):
        plan, after = planner.step(STARTS, first)
    assert np.all(np.array(plan.expected_return) == -np.inf)
    with pytest.warns(RuntimeWarning, match="no finite"):  # the warm start is kept, shifted
        again, _ = planner.step(STARTS, after)
    assert np.array_equal(np.array(again.actions), np.array(after.warm.actions))


def test_from_arrays_rejects_other_files():
    with pytest.raises(ValueError, match="not a planner state: no 'keys'"):
        PlannerState.from_arrays({"weights": mx.zeros((2,))})


@pytest.mark.slow  # the first compiled call of a process builds C++ kernels (seconds)
@pytest.mark.parametrize("cls", [planners.MPPI, planners.ICEM])
def test_a_compiled_call_gives_the_same_numbers(cls):
    if not compile_works():
        pytest.skip("mx.compile cannot build kernels here")
    plain, compiled = make(cls, compile=False), make(cls, compile=True)
    assert compiled.compiles() and not plain.compiles()
    ours, theirs = plain.init(np.arange(4)), compiled.init(np.arange(4))
    for _ in range(2):  # the second call starts from a warm start (another compiled program)
        a, ours = plain.step(STARTS, ours)
        b, theirs = compiled.step(STARTS, theirs)
        assert np.array_equal(np.array(a.actions), np.array(b.actions))
        assert np.array_equal(np.array(a.expected_return), np.array(b.expected_return))
        assert np.array_equal(np.array(ours.keys), np.array(theirs.keys))


@pytest.mark.slow
def test_a_compiled_call_reads_a_modules_weights_afresh():
    if not compile_works():
        pytest.skip("mx.compile cannot build kernels here")
    from worldmodel import WorldModel

    mx.random.seed(0)
    model = WorldModel(hidden=(8,))
    planner = planners.MPPI(model, ENV.action_space, horizon=3, samples=16, iterations=1, compile=True)
    before, _ = planner.step(STARTS, planner.init(np.arange(4)))
    model.update(tree_map(lambda w: w * 2.0, model.parameters()))
    after, _ = planner.step(STARTS, planner.init(np.arange(4)))
    plain, _ = planners.MPPI(model, ENV.action_space, horizon=3, samples=16, iterations=1).step(STARTS, planner.init(np.arange(4)))
    assert not np.array_equal(np.array(before.expected_return), np.array(after.expected_return))
    assert np.array_equal(np.array(after.expected_return), np.array(plain.expected_return))


def test_compile_must_be_a_bool_or_none():
    with pytest.raises(ValueError, match="compile must be True, False or None"):
        make(planners.CEM, compile="yes")

"""The planners' contract, over every planner and both kinds of action space."""

from __future__ import annotations

import warnings

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest

import planners
from planners import Box, Plan, Planner, SamplingPlanner, rollout
from planners.base import shift
from planners.distributions import colored_noise_basis
from worldmodel.envs import ParticleEnv
from worldmodel.envs.particle import one_hot_pushes


def _all_planners():
    """Every concrete planner class the package exports or names in ``PLANNERS`` (found by introspection, so new
    ones are covered)."""
    exported = [getattr(planners, name) for name in planners.__all__] + list(planners.PLANNERS.values())
    found, todo = [], [Planner]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls in exported and cls not in (Planner, SamplingPlanner) and cls not in found:
            found.append(cls)
    return sorted(found, key=lambda c: c.__name__)


PLANNERS = _all_planners()
SPACES = ["discrete", "box"]
SMALL = dict(horizon=5, samples=32, iterations=2)
BOX = Box(-0.5, 0.5, shape=(1,))  # narrower than the push range: the bounds bind
STARTS = mx.array([[1.0, 0.0], [-1.5, -1.0], [0.3, 0.5]])


def test_every_planner_is_found_and_registered():
    names = {cls.__name__ for cls in PLANNERS}
    assert {"RandomShooting", "CEM", "ICEM", "MPPI", "GradientPlanner", "CEMGradient", "ClassicCEM", "ClassicMPPI"} <= names
    assert set(PLANNERS) == set(planners.PLANNERS.values())


def test_unknown_planner_name_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown planner 'cme'; choose from random-shooting, cem"):
        planners.make_planner("cme", lambda s, a: (s, s[:, 0]), Box(-1, 1))


def env_and_space(kind):
    if kind == "discrete":
        env = ParticleEnv()
        return env, env.action_space
    return ParticleEnv(continuous=True), BOX


def make(cls, kind, dynamics=None, **options):
    env, space = env_and_space(kind)
    return cls(dynamics or env, space, **{**SMALL, **options})


class Switchable:
    """The particle, with NaN rewards for chosen actions (``bad``) or for all (``poison``)."""

    def __init__(self, kind):
        self.env, self.space = env_and_space(kind)
        self.poison = False
        self.bad = None

    def __call__(self, state, action):
        next_state, reward = self.env(state, action)
        nan = mx.full(reward.shape, mx.nan)
        if self.poison:
            return next_state, nan
        if self.bad is not None:
            return next_state, mx.where(self.bad(action), nan, reward)
        return next_state, reward


def forbidden(kind):
    """Actions that get a NaN reward: the push +1 (discrete) or pushes above 0.25 (box)."""
    return (lambda a: a[:, 2] > 0.5) if kind == "discrete" else (lambda a: a[:, 0] > 0.25)


contract = pytest.mark.parametrize("kind", SPACES)
every = pytest.mark.parametrize("cls", PLANNERS, ids=lambda c: c.__name__)


@every
@contract
def test_shapes_dtype_and_finiteness(cls, kind):
    planner = make(cls, kind)
    dim = planner.action_space.dim
    plan = planner.optimize(STARTS)
    assert isinstance(plan, Plan)
    assert plan.actions.shape == (3, 5, dim) and plan.actions.dtype == mx.float32
    assert plan.expected_return.shape == (3,) and plan.expected_return.dtype == mx.float32
    assert np.all(np.isfinite(np.array(plan.actions))) and np.all(np.isfinite(np.array(plan.expected_return)))
    action = planner.act(STARTS)
    assert action.shape == (3, dim) and action.dtype == mx.float32
    if kind == "discrete":  # one-hot
        assert np.array_equal(np.sort(np.array(plan.actions), axis=-1)[..., -1], np.ones((3, 5)))
        assert np.array_equal(np.array(plan.actions).sum(-1), np.ones((3, 5)))
    # the expected return is the plan's imagined return
    env, _ = env_and_space(kind)
    np.testing.assert_allclose(np.array(plan.expected_return), np.array(rollout(env, STARTS, plan.actions)), rtol=1e-5, atol=1e-5)


@every
@contract
def test_same_seed_same_actions_other_seed_other_actions(cls, kind):
    flat = lambda s, a: (s, mx.zeros(s.shape[0]))  # noqa: E731  every sequence ties: only the noise decides
    first, again, other = (make(cls, kind, flat, seed=seed) for seed in (0, 0, 1))
    for _ in range(2):  # the warm-started second call too
        a, b, c = (np.array(p.optimize(STARTS).actions) for p in (first, again, other))
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)


@every
def test_box_bounds_hold(cls):
    planner = make(cls, "box")
    for _ in range(3):
        actions = np.array(planner.optimize(STARTS).actions)
        assert np.all(actions >= -0.5) and np.all(actions <= 0.5)
    assert np.any(np.abs(actions) > 0.3)  # pushing hard is right from these starts


@every
@contract
def test_warm_start_is_the_shifted_plan_and_reset_forgets_it(cls, kind, monkeypatch):
    planner = make(cls, kind)
    assert planner.warm_start is None
    first = planner.optimize(STARTS)
    np.testing.assert_array_equal(np.array(planner.warm_start.actions), np.array(shift(first.actions)))

    seen = []
    search = planner._search
    monkeypatch.setattr(planner, "_search", lambda state, warm, *rest: seen.append(warm) or search(state, warm, *rest))
    env, _ = env_and_space(kind)
    state, _ = env(STARTS, first.actions[:, 0])
    second = planner.optimize(state)
    np.testing.assert_array_equal(np.array(seen[0].actions), np.array(shift(first.actions)))
    # the shifted plan is one of the candidates, so the new plan is at least as good
    shifted_return = np.array(rollout(env, state, shift(first.actions)))
    assert np.all(np.array(second.expected_return) >= shifted_return - 1e-5)

    planner.reset()
    assert planner.warm_start is None
    planner.optimize(state)
    assert seen[-1] is None
    # a different number of environments starts cold too
    planner.optimize(state[:2])
    assert seen[-1] is None


@every
@contract
def test_nan_returns_are_never_chosen(cls, kind):
    dynamics = Switchable(kind)
    dynamics.bad = forbidden(kind)
    planner = make(cls, kind, dynamics, samples=64)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        for _ in range(3):
            plan = planner.optimize(STARTS)
            actions = np.array(plan.actions).reshape(-1, plan.actions.shape[-1])
            assert not np.any(np.array(dynamics.bad(mx.array(actions))))
            assert np.all(np.isfinite(np.array(plan.expected_return)))


@every
@contract
def test_all_nan_keeps_the_previous_plan_and_warns(cls, kind):
    dynamics = Switchable(kind)
    planner = make(cls, kind, dynamics)
    first = planner.optimize(STARTS)
    dynamics.poison = True
    with pytest.warns(RuntimeWarning, match="no finite imagined return for 3 of 3"):
        second = planner.optimize(STARTS)
    np.testing.assert_array_equal(np.array(second.actions), np.array(shift(first.actions)))
    assert np.all(np.array(second.expected_return) == -np.inf)
    dynamics.poison = False  # the distribution was not poisoned: planning works again
    third = planner.optimize(STARTS)
    assert np.all(np.isfinite(np.array(third.expected_return)))


def test_all_nan_on_the_first_call_gives_the_default_plan():
    dynamics = Switchable("discrete")
    dynamics.poison = True
    with pytest.warns(RuntimeWarning, match="keeping the previous plan"):
        action = planners.CEM(dynamics, dynamics.space, **SMALL).act(STARTS)
    assert action.shape == (3, 3) and np.all(np.isfinite(np.array(action)))


@every
@contract
@pytest.mark.parametrize(
    "bad, message",
    [
        (lambda s, a: (mx.concatenate([s, s[:, :1]], axis=1), s[:, 0]), r"next_state of shape \((\d+), 3\), expected \(\1, 2\)"),
        (lambda s, a: (s, s[:, :1]), r"reward of shape \((\d+), 1\), expected \(\1,\)"),
    ],
    ids=["next_state", "reward"],
)
def test_wrong_dynamics_shapes_raise(cls, kind, bad, message):
    with pytest.raises(ValueError, match=message):
        make(cls, kind, bad).act(STARTS)


COMMON_BAD = [
    ("samples", 0), ("samples", 0), ("horizon", -1), ("horizon", 2.5), ("iterations", 0), ("seed", -1),
    ("discount", 0.0), ("discount", 1.5),
]
SPECIFIC_BAD = {
    "elite_fraction": [0.0, 1.5], "momentum": [1.0, -0.1], "temperature": [0.0, -1.0],
    "learning_rate": [0.0], "noise_beta": [-1.0, float("inf"), 1e6], "keep_elites": [1.5], "init_std": [0.0],
    "grad_iterations": [-1], "spread": [2.0], "colored_fraction": [1.5],
}


@every
def test_constructor_validation(cls):
    env = ParticleEnv()
    import inspect

    accepted = set()
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            accepted |= set(inspect.signature(klass.__init__).parameters)
    cases = COMMON_BAD + [(name, value) for name, values in SPECIFIC_BAD.items() if name in accepted for value in values]
    for name, value in cases:
        with pytest.raises(ValueError, match=rf"{name}.*{value}"):
            cls(env, env.action_space, **{name: value})
    with pytest.raises(ValueError, match="action_space"):
        cls(env, "three pushes")
    with pytest.raises(ValueError, match="dynamics"):
        cls(None, env.action_space)
    with pytest.raises(TypeError):
        cls(env, env.action_space, horizont=5)  # misspelt options are not swallowed


class LinearQuadratic(nn.Module):
    """``x' = A x + B u``, ``r = -x'^T Q x' - u^T R u``: a user's model of another size (S=4, A=2)."""

    def __init__(self):
        super().__init__()
        rng = np.random.default_rng(0)
        angle = 0.3
        rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        self.A = mx.array((1.05 * np.kron(np.eye(2), rotation)).astype(np.float32))  # slightly unstable
        self.B = mx.array(rng.normal(size=(4, 2)).astype(np.float32) * 0.5)
        self.Q = mx.array(np.diag([1.0, 1.0, 0.5, 0.5]).astype(np.float32))
        self.R = mx.array(0.1 * np.eye(2, dtype=np.float32))

    def __call__(self, state, action):
        next_state = state @ self.A.T + action @ self.B.T
        cost = mx.sum((next_state @ self.Q) * next_state, axis=-1) + mx.sum((action @ self.R) * action, axis=-1)
        return next_state, -cost


@every
def test_any_user_model_linear_quadratic(cls):
    model = LinearQuadratic()
    space = Box(-1.0, 1.0, shape=(2,))
    starts = mx.array([[1.0, -1.0, 0.5, 0.5], [-0.5, 0.8, -1.0, 0.2]])
    planner = cls(model, space, horizon=8, samples=200)
    plan = planner.optimize(starts)
    assert plan.actions.shape == (2, 8, 2)
    zero = np.array(rollout(model, starts, mx.zeros((2, 8, 2))))
    got = np.array(rollout(model, starts, plan.actions))
    np.testing.assert_allclose(np.array(plan.expected_return), got, rtol=1e-4)
    assert np.all(-got < 0.8 * -zero), (got, zero)


@pytest.mark.parametrize("cls", [planners.CEM, planners.MPPI], ids=lambda c: c.__name__)
def test_centres_the_particle(cls):
    env = ParticleEnv()
    planner = cls(env, env.action_space, horizon=15, samples=300)
    state, total = mx.array([[1.0, 0.0]]), 0.0
    for _ in range(30):
        state, reward = env(state, planner.act(state))
        total += reward.item()
    assert abs(state[0, 0].item()) < 0.1
    assert total > -6.0  # the optimal 30-step return is about -5.2


def test_rollout_against_hand_computed_values():
    env = ParticleEnv()
    start = mx.array([[1.0, 0.0]])
    eye = np.eye(3, dtype=np.float32)
    actions = mx.array(eye[[0, 0, 1]][None])  # pushes -1, -1, 0
    # v: -0.1, -0.2, -0.2; x: 0.9, 0.7, 0.5; rewards -0.9, -0.7, -0.5
    np.testing.assert_allclose(np.array(rollout(env, start, actions)), [-2.1], rtol=1e-6)
    value = lambda s: -10.0 * mx.abs(s[:, 0])  # noqa: E731
    total, states, rewards = rollout(env, start, actions, discount=0.5, terminal_value=value, return_trajectory=True)
    # -0.9 - 0.5 * 0.7 - 0.25 * 0.5 + 0.125 * (-10 * 0.5)
    np.testing.assert_allclose(np.array(total), [-2.0], rtol=1e-6)
    np.testing.assert_allclose(np.array(states), [[[1.0, 0.0], [0.9, -0.1], [0.7, -0.2], [0.5, -0.2]]], atol=1e-6)
    np.testing.assert_allclose(np.array(rewards), [[-0.9, -0.7, -0.5]], atol=1e-6)
    with pytest.raises(ValueError, match=r"next_state of shape \(1, 3\), expected \(1, 2\)"):
        rollout(lambda s, a: (mx.zeros((1, 3)), mx.zeros(1)), start, actions)


def test_shift():
    plans = mx.arange(12, dtype=mx.float32).reshape(2, 3, 2)  # [E=2, H=3, A=2]
    np.testing.assert_array_equal(np.array(shift(plans)), [[[2, 3], [4, 5], [4, 5]], [[8, 9], [10, 11], [10, 11]]])
    elites = mx.arange(8, dtype=mx.float32).reshape(1, 2, 2, 2)  # [E, K, H, A]
    np.testing.assert_array_equal(np.array(shift(elites)), [[[[2, 3], [2, 3]], [[6, 7], [6, 7]]]])


def test_colored_noise_has_unit_variance_and_correlates_in_time():
    assert colored_noise_basis(15, 0.0) is None
    basis = colored_noise_basis(15, 2.0)
    np.testing.assert_allclose(np.sum(np.array(basis) ** 2, axis=0), np.ones(15), rtol=1e-5)
    noise = np.array(mx.random.normal((20000, basis.shape[0]), key=mx.random.key(0)) @ basis)
    assert abs(noise.std() - 1.0) < 0.03
    lag1 = np.mean(noise[:, 1:] * noise[:, :-1])
    assert lag1 > 0.5  # white noise: 0


def test_particle_env_is_dynamics_a_planner_can_imagine_with():
    """Two +1 pushes from (1, 0), by hand: v = 0.1, x = 1.1; v = 0.2, x = 1.3; rewards -|x|."""
    returns, states, rewards = planners.rollout(
        ParticleEnv(), mx.array([[1.0, 0.0]]), one_hot_pushes([[1, 1]]), return_trajectory=True
    )
    np.testing.assert_allclose(np.array(states[0]), [[1.0, 0.0], [1.1, 0.1], [1.3, 0.2]], atol=1e-6)
    np.testing.assert_allclose(np.array(rewards[0]), [-1.1, -1.3], atol=1e-6)
    np.testing.assert_allclose(np.array(returns), [-2.4], atol=1e-6)

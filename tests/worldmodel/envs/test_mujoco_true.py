"""The MuJoCo true-dynamics evaluator against Gymnasium's own ``step``: same state, same actions, same returns.

Each test puts a Gymnasium MuJoCo env in a state reached by random steps, takes its full physics
state, scores a few random action sequences with :class:`MujocoEvaluator` and steps the env
through each of them from that state (``set_physics_state``), summing Gymnasium's rewards until
the episode terminates. Inverted pendulum and half-cheetah agree to float64 rounding. Reacher's
distance term is read by Gymnasium from the kinematics of the Runge-Kutta integrator's last stage
(within one physics step of the end state), by the evaluator at the end state: they agree to
``REACHER_STEP_TOL`` per step (measured worst: 9e-5), and the evaluator equals the end-state
reward to rounding.
"""

from __future__ import annotations

import numpy as np
import pytest

from planners import CEM, SequenceEvaluator
from tests.conftest import need

need("gymnasium")
mujoco = need("mujoco")

from worldmodel.envs.mujoco_true import MUJOCO_TASKS, MujocoEvaluator, physics_state, physics_states, set_physics_state  # noqa: E402

import gymnasium  # noqa: E402

HORIZON, SEQUENCES = 25, 5
REACHER_STEP_TOL = 2e-4


def random_start(gym_id: str, seed: int):
    """A Gymnasium env after reset and (but for the pendulum, which would fall) a few random steps."""
    env = gymnasium.make(gym_id)
    env.reset(seed=seed)
    if gym_id != "InvertedPendulum-v5":
        rng = np.random.default_rng(seed)
        for _ in range(5):
            env.step(rng.uniform(env.action_space.low, env.action_space.high))
    return env


def random_actions(env, seed: int) -> np.ndarray:
    """``[1, SEQUENCES, HORIZON, A]`` float64 actions; for the pendulum of growing size, so that some
    sequences keep it up for the whole horizon and others end the episode early."""
    rng = np.random.default_rng(seed)
    low, high = env.action_space.low, env.action_space.high
    actions = rng.uniform(low, high, size=(1, SEQUENCES, HORIZON, len(low)))
    if env.spec.id == "InvertedPendulum-v5":
        actions *= np.linspace(0.0, 0.6, SEQUENCES)[None, :, None, None]
    return actions


def gym_returns(env, start: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gymnasium's summed rewards ``[N]`` of ``actions [N, H, A]`` from ``start``, and the steps each episode lasted."""
    totals, lengths = [], []
    for sequence in actions:
        set_physics_state(env, start)
        total, steps = 0.0, 0
        for action in sequence:
            _, reward, terminated, _, _ = env.step(action)
            total, steps = total + reward, steps + 1
            if terminated:
                break
        totals.append(total)
        lengths.append(steps)
    return np.array(totals), np.array(lengths)


@pytest.mark.parametrize("gym_id", list(MUJOCO_TASKS))
def test_returns_equal_stepping_gymnasium_from_the_same_state(gym_id):
    env = random_start(gym_id, seed=3)
    start, actions = physics_state(env), random_actions(env, seed=4)
    with MujocoEvaluator(gym_id, threads=2) as evaluator:
        ours = evaluator.returns(start[None], actions)
        checked = evaluator(start[None], actions.astype(np.float32))  # as a planner calls it
    theirs, lengths = gym_returns(env, start, actions[0])
    assert ours.shape == (1, SEQUENCES) and ours.dtype == np.float64 and checked.shape == (1, SEQUENCES)
    tolerance = REACHER_STEP_TOL * HORIZON if gym_id == "Reacher-v5" else 1e-9
    np.testing.assert_allclose(ours[0], theirs, rtol=0, atol=tolerance)
    if gym_id == "InvertedPendulum-v5":  # episodes that ended early and ones that lasted: both compared
        assert lengths.min() < HORIZON and lengths.max() == HORIZON and np.array_equal(ours[0], lengths - (lengths < HORIZON))
    env.close()


def test_reacher_is_exact_at_the_end_state_kinematics():
    env = random_start("Reacher-v5", seed=5)
    start, actions = physics_state(env), random_actions(env, seed=6)
    model = env.unwrapped.model
    data, full = mujoco.MjData(model), int(mujoco.mjtState.mjSTATE_FULLPHYSICS)
    expected = []
    for sequence in actions[0]:
        set_physics_state(env, start)
        total = 0.0
        for action in sequence:
            env.step(action)
            mujoco.mj_setState(model, data, physics_state(env), full)
            mujoco.mj_kinematics(model, data)
            total += -np.linalg.norm(data.body("fingertip").xpos - data.body("target").xpos) - np.square(action).sum()
        expected.append(total)
    np.testing.assert_allclose(MujocoEvaluator(env, threads=1).returns(start[None], actions)[0], expected, rtol=0, atol=1e-10)


def test_deterministic_for_any_thread_count_and_batched_by_environment():
    envs = [random_start("HalfCheetah-v5", seed) for seed in (1, 2)]
    start = physics_states(envs)
    actions = np.concatenate([random_actions(envs[0], 7), random_actions(envs[1], 8)])  # [2, N, H, A]
    one, two = MujocoEvaluator("HalfCheetah-v5", threads=1), MujocoEvaluator("HalfCheetah-v5", threads=2)
    returns = one.returns(start, actions)
    assert np.array_equal(returns, two.returns(start, actions)) and np.array_equal(returns, one.returns(start, actions))
    assert np.array_equal(returns[1:], one.returns(start[1:], actions[1:]))  # an environment's rows depend on it alone
    assert np.array_equal(physics_state(envs[0]), start[0])  # the envs themselves were not touched


def test_physics_state_round_trip_and_bad_sizes():
    env = random_start("Reacher-v5", seed=1)
    state = physics_state(env)
    env.step(env.action_space.sample())
    set_physics_state(env, state)
    assert np.array_equal(physics_state(env), state)
    with pytest.raises(ValueError, match=r"a full physics state of this env is \[9\], got shape \(8,\)"):
        set_physics_state(env, state[:-1])


def test_a_planner_keeps_the_pendulum_up_with_mujoco_itself():
    env = gymnasium.make("InvertedPendulum-v5")
    env.reset(seed=0)
    evaluator = MujocoEvaluator(env)
    assert isinstance(evaluator, SequenceEvaluator) and evaluator.action_space.dim == 1
    planner = CEM(evaluator, evaluator.action_space, horizon=10, samples=40, iterations=2, seed=0)
    total = 0.0
    for _ in range(30):
        _, reward, terminated, _, _ = env.step(np.array(planner.act(physics_states([env])))[0])
        total += reward
        assert not terminated
    assert total == 30.0


def test_bad_ids_and_starts_are_one_line_errors():
    with pytest.raises(ValueError, match="no MuJoCo reward known for 'Hopper-v5'; known: InvertedPendulum-v5, Reacher-v5, HalfCheetah-v5"):
        MujocoEvaluator(gymnasium.make("Hopper-v5"))
    evaluator = MujocoEvaluator("InvertedPendulum-v5", threads=1)
    planner = CEM(evaluator, evaluator.action_space, horizon=4, samples=8, iterations=1)
    with pytest.raises(ValueError, match=r"start must be full physics states \[E, 5\] of InvertedPendulum-v5 .*got shape \(1, 4\)$"):
        planner.act(np.zeros((1, 4)))


def test_a_terminal_value_breaks_ties_in_the_objective_only():
    env = random_start("InvertedPendulum-v5", seed=2)
    start, actions = physics_state(env), random_actions(env, seed=4)
    value = lambda final: -np.square(final).sum(axis=1)  # noqa: E731
    with MujocoEvaluator(env, threads=1, terminal_value=value) as valued, MujocoEvaluator(env, threads=1) as plain:
        returns, objective = valued.returns(start[None], actions), valued.objective(start[None], actions)
        assert np.array_equal(returns, plain.returns(start[None], actions))  # Gymnasium's sums, untouched
        assert np.array_equal(plain.objective(start[None], actions), returns)
    up = returns[0] == HORIZON  # kept the pole up: the value of its final (qpos, qvel) added; fallen: nothing
    assert up.any() and not up.all()
    assert np.all(objective[0][up] < returns[0][up]) and np.array_equal(objective[0][~up], returns[0][~up])
    with pytest.raises(ValueError, match="terminal_value must be callable or None"):
        MujocoEvaluator(env, terminal_value=1.0)
    env.close()
